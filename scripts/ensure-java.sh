#!/usr/bin/env bash
# Print the JAVA_HOME of a Java runtime that Spark 4.0 (pyspark, the warehouse tests) runs on.
#
# Spark 4.0 runs on Java 17 and 21. Uses `java` on PATH when it is one of those, else a JVM
# of those versions under /usr/lib/jvm; otherwise installs Debian's openjdk-17-jre-headless
# (default-jre-headless where that package is missing) when run as root. Without root and
# without a JVM it prints nothing: the Spark tests are then skipped (a failure when CI=true).
# Log lines go to stderr; only the JAVA_HOME goes to stdout.
set -euo pipefail

major() {  # the major version of the java binary $1 ("1.8.0_x" -> 8, "17.0.15" -> 17)
  local v
  v=$("$1" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1)
  v=${v#1.}
  echo "${v%%[.+-]*}"
}

usable() {  # does the java binary $1 run a Java Spark 4.0 supports?
  [ -x "$1" ] || return 1
  case "$(major "$1" 2>/dev/null)" in 17 | 21) return 0 ;; *) return 1 ;; esac
}

home_of() {  # JAVA_HOME of the java binary $1
  dirname "$(dirname "$(readlink -f "$1")")"
}

find_java() {
  local candidate
  if candidate=$(command -v java) && usable "$candidate"; then home_of "$candidate"; return 0; fi
  for candidate in /usr/lib/jvm/*/bin/java; do
    if usable "$candidate"; then home_of "$candidate"; return 0; fi
  done
  return 1
}

if find_java; then exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-java: no Java 17 or 21 found; the Spark tests will be skipped (install Debian's" \
       "'openjdk-17-jre-headless' package to run them)" >&2
  exit 0
fi
echo "ensure-java: installing Debian's openjdk-17-jre-headless" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
if ! apt-get install -y -qq openjdk-17-jre-headless >&2; then
  echo "ensure-java: openjdk-17-jre-headless unavailable; installing default-jre-headless" >&2
  apt-get install -y -qq default-jre-headless >&2
fi
if find_java; then exit 0; fi
echo "ensure-java: installed a JRE but found no Java 17 or 21 under /usr/lib/jvm" >&2
exit 1
