#!/usr/bin/env bash
# README set-up command 2 (and what .ci/run runs): install what is missing on
# a fresh Debian 12 (as root), then the whole test suite on real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm test
