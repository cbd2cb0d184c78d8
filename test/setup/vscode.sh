#!/usr/bin/env bash
# The VS Code extension's toolchain steps, for make (run from the
# repository root):
#   vscode.sh deps     Node 24 (test/setup/node.sh) and extensions/vscode/node_modules
#                      (npm ci from the npm cache, skipped while package-lock.json is unchanged)
#   vscode.sh build    deps, then tsc to extensions/vscode/out and the config schema
#                      into extensions/vscode/schema
#   vscode.sh lint     deps, then tsc --noEmit (strict) and eslint
#   vscode.sh unit     build, then the unit tests (node:test, Node 24); they build
#                      ./cmd/remocal to drive the real daemon unless REMOCAL_BIN names one
#   vscode.sh package VERSION
#                      build, a static linux-x64 remocal into the extension's
#                      bin/linux-x64, then bin/remocal-<extension version>.vsix (vsce)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
ext=$root/extensions/vscode
export npm_config_cache=/var/cache/remocal-vscode/npm
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
PATH="$("$root/test/setup/node.sh" | tail -n1):$PATH"
export PATH

deps() {
  local stamp=$ext/node_modules/.remocal-lock.sha256 want
  want=$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "vscode: npm ci in extensions/vscode" >&2
  (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$stamp"
}

build() {
  deps
  (cd "$ext" && rm -rf out && node_modules/.bin/tsc -p .)
  # jsonValidation points at the schema inside the extension.
  mkdir -p "$ext/schema"
  cp "$root/protocol/config/schema.json" "$ext/schema/config.schema.json"
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  lint)
    deps
    cd "$ext"
    node_modules/.bin/tsc -p . --noEmit
    node_modules/.bin/eslint --max-warnings 0 .
    ;;
  unit)
    build
    cd "$ext"
    node --test --test-timeout=120000 out/test/*.test.js
    ;;
  package)
    version=${2:-dev}
    build
    go=${GO:-/usr/local/go/bin/go}
    mkdir -p "$ext/bin/linux-x64" "$root/bin"
    # Static, so it runs on any linux-x64 whatever its libc.
    (cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$go" build -trimpath \
      -ldflags "-s -w -X main.version=$version" -o "$ext/bin/linux-x64/remocal" ./cmd/remocal)
    extver=$(node -p 'require(process.argv[1]).version' "$ext/package.json")
    (cd "$ext" && node_modules/.bin/vsce package --skip-license --allow-missing-repository \
      -o "$root/bin/remocal-$extver.vsix" >&2)
    echo "$root/bin/remocal-$extver.vsix"
    ;;
  *)
    echo "usage: $0 deps|build|lint|unit|package VERSION" >&2
    exit 2
    ;;
esac
