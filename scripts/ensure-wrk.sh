#!/usr/bin/env bash
# Make sure Debian's wrk (the HTTP load generator bench/bench_api.py uses) is installed.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-wrk: wrk is missing; bench/bench_api.py falls back to a slower Python load" \
       "generator (install Debian's 'wrk' package)" >&2
  exit 0
fi
echo "ensure-wrk: installing Debian's wrk" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq wrk >&2
