#!/usr/bin/env bash
# make jetbrains-core-test / the jetbrains-core part of make lint: compiles
# extensions/jetbrains/core (Java 17, -Xlint:all -Werror) into
# bin/jetbrains-core, then, for "test", runs its unit tests with JUnit's
# console launcher and its integration tests through the Go test
# test/e2e/jetbrains (root: the local environment's namespaces).
#   test/setup/jetbrains-core.sh lint|unit|test
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-test}
export PATH=/usr/local/go/bin:$PATH

jars=$(test/setup/jetbrains.sh)
out=bin/jetbrains-core
src=extensions/jetbrains/core/src
rm -rf "$out"
mkdir -p "$out/main" "$out/test"
javac_flags=(--release 17 -Xlint:all -Werror -encoding UTF-8)
find "$src/main/java" -name '*.java' > "$out/main.list"
find "$src/test/java" -name '*.java' > "$out/test.list"
javac "${javac_flags[@]}" -d "$out/main" -cp "$jars" @"$out/main.list"
javac "${javac_flags[@]}" -d "$out/test" -cp "$out/main:$jars" @"$out/test.list"
[ "$mode" = lint ] && exit 0

cp="$PWD/$out/main:$PWD/$out/test:$jars"
launcher=${jars##*:}
# Unit tests: the console launcher's default name pattern (Test*, *Test,
# *Tests) leaves out the integration tests (*IT), which need the daemon.
java -Dremocal.repo="$PWD" -jar "$launcher" -cp "$cp" --scan-classpath "$PWD/$out/test" \
  --fail-if-no-tests --disable-banner --disable-ansi-colors --details=summary
[ "$mode" = unit ] && exit 0

REMOCAL_JETBRAINS_CLASSPATH="$cp" go test -count=1 ${GOTEST_FLAGS:-} ./test/e2e/jetbrains/
