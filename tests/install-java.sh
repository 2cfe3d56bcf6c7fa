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
bash "$(dirname "$0")/apt-install.sh" install install-java openjdk-17-jre-headless
if (( $(java_major) >= 17 )); then
    echo "install-java: $(java -version 2>&1 | head -1)"
fi
