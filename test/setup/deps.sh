#!/usr/bin/env bash
# Installs what building, testing and the demo need on a Debian machine, and
# nothing that is already there. Safe to run repeatedly; quick when all is
# present. Prints the Go binary to use on its last line.
set -euo pipefail

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }

have ip || need_pkgs+=(iproute2)
have dnsmasq || [ -x /usr/sbin/dnsmasq ] || need_pkgs+=(dnsmasq-base)
have redis-server || need_pkgs+=(redis-server)
# The queue-splitting tests run NATS JetStream (operator/internal/queuesplit).
[ -x /usr/sbin/nats-server ] || have nats-server || need_pkgs+=(nats-server)
have unshare || need_pkgs+=(util-linux)
have gcc || need_pkgs+=(gcc libc6-dev)
have curl || need_pkgs+=(curl)
# Programs the end-to-end tests run under remocal exec. Debian's own
# python3 by path: a pyenv python3 on PATH is not what the tests and the
# pyservice example image (Debian's python3.11 and its libraries) use.
[ -x /usr/bin/python3 ] && [ -x /usr/bin/python3.11 ] || need_pkgs+=(python3 python3.11)
# The Postgres example image is built from Debian's PostgreSQL 15 server
# files; the Kubernetes e2e tests run Debian's psql on the laptop side.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_pkgs+=(postgresql-15)
[ -x /usr/bin/psql ] || need_pkgs+=(postgresql-client-15)
have gdb || need_pkgs+=(gdb)
have node || need_pkgs+=(nodejs)
have nsenter || need_pkgs+=(util-linux)
# Programs that resolve names without glibc: a static musl program (musl's
# resolver sends DNS with sendto on an unconnected socket) and busybox's
# nslookup and wget, which the UDP interposition tests run.
have musl-gcc || need_pkgs+=(musl-tools)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx nslookup || need_pkgs+=(busybox-static)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages ${need_pkgs[*]}; run as root (or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # Packages with services (redis-server, postgresql-15) must not start
  # them: the tests run their own servers. policy-rc.d is Debian's switch
  # for that; one the machine already has is left alone.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 || { [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  # Debian's redis-server package starts a system-wide server; the tests
  # start their own inside network namespaces and do not need it.
  if [[ " ${need_pkgs[*]} " == *" redis-server "* ]] && have systemctl; then
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  if [[ " ${need_pkgs[*]} " == *" nats-server "* ]] && have systemctl; then
    systemctl disable --now nats-server >/dev/null 2>&1 || true
  fi
fi

# Go: the machine's toolchain if it is new enough, else Debian's backported
# Go, which fetches the version go.mod asks for from the module proxy.
find_go() {
  for g in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.2*/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] && { echo "$g"; return 0; }
  done
  return 1
}
if ! gobin=$(find_go); then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: no Go toolchain found; install Go 1.26 (https://go.dev/dl) or run as root" >&2
    exit 1
  fi
  echo "deps: installing Go from Debian bookworm-backports" >&2
  echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/remocal-backports.list
  apt-get update -qq >&2
  apt-get install -y -qq -t bookworm-backports golang-1.23-go >&2
  gobin=$(find_go)
fi
echo "$gobin"
