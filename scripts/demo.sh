#!/usr/bin/env bash
# Starts the whole KREKI platform on this machine with demo data, and prints where to look.
#
# Makes sure PostgreSQL + PostGIS, Redis and Mosquitto run (deploy/local-services.sh), builds
# `kreki`, then runs `kreki demo`: a signing key kept in .kreki/ (so restarts sign nobody out),
# migrations, demo accounts, and every service on http://127.0.0.1:8080 until Ctrl-C.
# Extra arguments go to `kreki demo`; any KREKI_* setting works (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"
export KREKI_LOG__FORMAT="${KREKI_LOG__FORMAT:-pretty}"

bash deploy/local-services.sh
echo "==> building kreki (the first build takes a few minutes)"
cargo build --bin kreki
exec "$CARGO_TARGET_DIR/debug/kreki" demo "$@"
