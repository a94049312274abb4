#!/usr/bin/env bash
# README set-up command 1: everything needed on a fresh Debian 12 (as root),
# then the main job on a local sandbox of real Pebble + BIND 9 + Postfix.
set -euo pipefail
cd "$(dirname "$0")/.."
# --stop only stops what --keep left running: nothing to install or build.
if [[ "${1:-}" == "--stop" ]]; then exec node --import tsx scripts/sandbox.ts --stop; fi
bash scripts/install-system-deps.sh
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
exec node --import tsx scripts/sandbox.ts "$@"
