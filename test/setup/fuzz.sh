#!/usr/bin/env bash
# Runs each fuzz target briefly: fuzz.sh FUZZTIME PKG:TARGET...
# A failing input is always a failure (the fuzzer saves it under the
# package's testdata/fuzz, where it becomes a regression test). The fuzzing
# engine itself can give up when a worker is starved of CPU on a busy
# machine ("fuzzing process hung or terminated unexpectedly", or the run's
# own deadline reported as "context deadline exceeded" when a worker is
# mid-input as -fuzztime ends); that alone, with no input saved, is
# retried once.
set -uo pipefail
fuzztime=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for spec in "$@"; do
  pkg=${spec%%:*}
  target=${spec##*:}
  for attempt in 1 2; do
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel 1 "$pkg" >"$log" 2>&1; then
      echo "fuzz $target: ok ($fuzztime)"
      continue 2
    fi
    if [ "$attempt" = 1 ] && grep -qE "hung or terminated unexpectedly|^    context deadline exceeded$" "$log" && ! grep -q "Failing input written to" "$log"; then
      echo "fuzz $target: the fuzzing engine lost a worker without a failing input; retrying once" >&2
      continue
    fi
    echo "fuzz $target: FAILED" >&2
    cat "$log" >&2
    exit 1
  done
done
