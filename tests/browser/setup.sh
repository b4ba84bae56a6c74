#!/usr/bin/env bash
# Makes sure the browser tests can run: Debian's Chromium, the front end's npm packages
# (playwright-core drives Chromium; it never downloads a browser), and the `pmtiles` package from
# PyPI, with which the tests write a small real PMTiles basemap. Skips what is already there:
# `npm ci` runs only when web/package-lock.json changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

stamp=web/node_modules/.kreki-lock
if [ ! -f "$stamp" ] || ! cmp -s web/package-lock.json "$stamp"; then
  echo "==> npm ci (web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  cp web/package-lock.json "$stamp"
fi

if ! python3 -c "import pmtiles.writer" 2>/dev/null; then
  echo "==> pip install pmtiles (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'pmtiles==3.8.1'
fi
