#!/usr/bin/env bash
# Installs the peer ACME clients the benchmark compares mxcert with, from
# Debian 12 packages, if they are missing: certbot (+ its RFC 2136 DNS plugin),
# lego, dehydrated, uacme; plus GNU time for peak RSS. Idempotent; run as root.
set -euo pipefail

PACKAGES=(certbot python3-certbot-dns-rfc2136 lego dehydrated uacme time curl bind9-dnsutils python3)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-peers: all peers present"
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-peers: missing packages (${missing[*]}) and not root" >&2
  exit 1
fi
echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# certbot's package ships a systemd timer; nothing must start during install.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup_policy() { if [[ $created_policy -eq 1 ]]; then rm -f "$POLICY"; fi; }
trap cleanup_policy EXIT
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary: created by mxcert bench/install-peers.sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  created_policy=1
fi
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-peers: done"
