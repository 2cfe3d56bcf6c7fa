#!/usr/bin/env bash
# Install Debian's Chromium for the tests that render the HTML reports headless and check
# they fit 1,280 px (tests/pages.py). Idempotent: exits at once when chromium is on PATH.
# Without root or apt-get those tests skip themselves, saying so.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
exec bash "$(dirname "$0")/apt-install.sh" install install-chromium chromium
