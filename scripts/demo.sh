#!/usr/bin/env bash
# Starts the whole KREKI platform on this machine with demo data, and prints where to look.
#
# Makes sure PostgreSQL + PostGIS, Redis and Mosquitto run (deploy/local-services.sh), builds
# `kreki`, then runs `kreki demo`: a signing key kept in .kreki/ (so restarts sign nobody out),
# migrations, demo accounts, and every service on http://127.0.0.1:8080 until Ctrl-C, with the
# simulator running against it: simulated volunteers move around central Jakarta and answer
# offers, simulated citizens press panic (alerts noted [SIMULASI]), so the dashboard is alive; a fake
# BMKG serves a CAP 1.2 earthquake warning south of Jakarta, which the dashboard shows as an area.
# Extra arguments go to `kreki demo` (`--no-simulate`, `--sim-alerts-per-minute 6`, ...; see
# `kreki demo --help`); any KREKI_* setting works (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"
export KREKI_LOG__FORMAT="${KREKI_LOG__FORMAT:-pretty}"
# One line per request would bury the banner under the simulator's position reports.
export KREKI_LOG__FILTER="${KREKI_LOG__FILTER:-info,kreki_platform::http=warn,sqlx=warn,tower_http=warn}"

bash deploy/local-services.sh
echo "==> building kreki (the first build takes a few minutes)"
cargo build --bin kreki
exec "$CARGO_TARGET_DIR/debug/kreki" demo "$@"
