#!/usr/bin/env bash
# Runs the packages given as arguments against the test cluster
# (test/cluster, docs/cluster.md), as root. The cluster is brought up if it
# is not running (built on first use, then cached in /var/cache/remocal-cluster)
# and torn down afterwards only if this script brought it up, so a
# developer's running cluster survives and CI leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=(go run ./test/cluster/cmd/cluster)
if "${cluster[@]}" status >/dev/null 2>&1; then
  was_up=1
else
  was_up=0
fi
teardown() {
  if [ "$was_up" = 0 ]; then
    "${cluster[@]}" down >&2 || echo "e2e: cluster teardown failed" >&2
  fi
}
trap teardown EXIT
# Also refreshes the harness's own images (toolbox) from this checkout.
"${cluster[@]}" up >/dev/null
# One package at a time: they share the cluster's single node.
REMOCAL_CLUSTER=existing go test -race -p 1 ${GOFLAGS_TEST:--count=1} "$@"
