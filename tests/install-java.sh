#!/usr/bin/env bash
# Install a Java runtime for the Spark tests (tests/spark: pyspark 4 needs Java 17 or later).
#
# Idempotent: exits at once when `java` (on PATH, or in $JAVA_HOME/bin) is version 17 or
# later: the machine's own Java is used. Otherwise installs Debian's headless OpenJDK 17 with
# apt-get, which needs root. Without root or apt-get it prints why and exits 0: the Spark
# tests then skip themselves, saying that Java is missing.
set -euo pipefail

java_major() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
    "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

if (( $(java_major) >= 17 )); then
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "install-java: no Java 17+ and not root, so Java is not installed and the Spark tests will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-java: no Java 17+ and no apt-get, so the Spark tests will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
echo "install-java: installed $(java -version 2>&1 | head -1)"
