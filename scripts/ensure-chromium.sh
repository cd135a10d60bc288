#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (never a downloaded browser).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: /usr/bin/chromium is missing; browser tests will be skipped" \
       "(install Debian's 'chromium' package to run them)" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium >&2
