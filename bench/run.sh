#!/usr/bin/env bash
# The benchmark in one command (README "Benchmarks"): installs what is missing
# (the peer clients certbot, lego, dehydrated, uacme from Debian packages; the
# sandbox servers Pebble, BIND 9, Postfix; npm dependencies), builds mxcert,
# then runs bench/run.ts. Options go through, e.g. --runs 5 --idle-seconds 60.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-system-deps.sh
bash bench/install-peers.sh
if [ ! -d node_modules ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
npm run build
exec node --import tsx bench/run.ts "$@"
