#!/usr/bin/env bash
# What the JetBrains plugin's core (extensions/jetbrains/core) needs to be
# compiled and tested here: a JDK 17 (javac), Debian's gson (the IntelliJ
# Platform bundles gson, so the core uses it) and Debian's JUnit 5 with its
# console launcher. Installs only what is missing; safe to run repeatedly.
# Prints one line: the classpath of the jars (gson, JUnit), ':'-separated;
# its last entry is the console launcher's jar.
set -euo pipefail

need_pkgs=()
command -v javac >/dev/null 2>&1 || need_pkgs+=(openjdk-17-jdk-headless)
dpkg -s libgoogle-gson-java >/dev/null 2>&1 || need_pkgs+=(libgoogle-gson-java)
dpkg -s junit5 >/dev/null 2>&1 || need_pkgs+=(junit5)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "jetbrains: missing packages ${need_pkgs[*]}; run as root (or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "jetbrains: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

# javac must be 17 or newer: the core is compiled with --release 17.
release=$(javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p')
if [ -z "$release" ] || [ "$release" -lt 17 ]; then
  echo "jetbrains: javac $(javac -version 2>&1) is older than 17; install openjdk-17-jdk-headless and make it the default (update-alternatives --config javac)" >&2
  exit 1
fi

gson=$(dpkg -L libgoogle-gson-java | grep -E '/gson\.jar$' | head -n1)
# The console launcher's standalone jar carries the whole JUnit Platform and
# the Jupiter engine, so tests compile against it alone besides gson.
launcher=$(dpkg -L junit5 | grep -E '/junit-platform-console-standalone[^/]*\.jar$' | head -n1)
for f in "$gson" "$launcher"; do
  if [ -z "$f" ] || [ ! -f "$f" ]; then
    echo "jetbrains: a jar of libgoogle-gson-java or junit5 is missing (gson: '$gson', console launcher: '$launcher'); reinstall them: apt-get install --reinstall libgoogle-gson-java junit5" >&2
    exit 1
  fi
done
echo "$gson:$launcher"
