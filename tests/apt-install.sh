#!/usr/bin/env bash
# Debian packages some tests need (PostgreSQL, Java, Chromium), for install-*.sh:
#
#   apt-install.sh check WHO PACKAGE...    exit 0 when this can install (root, apt-get); else
#                                          say what is not installed and exit 1
#   apt-install.sh install WHO PACKAGE...  install them quietly (apt's chatter is shown only
#                                          if a step fails); without root or apt-get, say so
#                                          and exit 0: the tests that need them skip themselves
set -euo pipefail
mode=$1 who=$2
shift 2
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    why=$([[ $EUID -ne 0 ]] && echo "not root" || echo "no apt-get")
    echo "$who: $why, so $* not installed: the tests that need it will be skipped"
    [[ $mode == check ]] && exit 1 || exit 0
fi
[[ $mode == check ]] && exit 0
log=$(mktemp -t "$who.XXXXXX.log")
trap 'rm -f "$log"' EXIT
run_quietly() {
    if ! "$@" >>"$log" 2>&1; then
        echo "$who: failed: $*" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}
export DEBIAN_FRONTEND=noninteractive
run_quietly apt-get update -qq
run_quietly apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
echo "$who: installed $*"
