#!/usr/bin/env bash
# Installs the Debian 12 packages that mxcert's integration tests run for real
# (Pebble, BIND, PowerDNS, Postfix, Dovecot, etcd, OpenSSL, swaks), and caches the Exim
# package the exim-reload test unpacks. Run as root. Idempotent: when everything
# is already there it only queries dpkg and the cache and exits.
#
# The tests start their own private server instances on loopback ports, so the
# packaged services must not start (they would grab ports 53/25 and, for
# Postfix, demand interactive configuration).
set -euo pipefail

PACKAGES=(
  pebble
  bind9 bind9-utils bind9-dnsutils
  postfix
  # lmdb and cdb tables for the SNI map tests (sni.postfix.type).
  postfix-lmdb postfix-cdb
  openssl
  pdns-server pdns-backend-sqlite3
  sqlite3
  swaks
  ca-certificates
  # systemd-analyze verifies the shipped units in the tests (it need not run).
  systemd
  # python3 -m http.server serves the webroot in the http-01 webroot test.
  python3
  # A private Dovecot instance serves IMAP STARTTLS in the dovecot-reload hook test.
  dovecot-core dovecot-imapd
  # A private unbound validates the signed test zone (dane.validatingResolver test).
  unbound
  # The shared libraries of exim4-daemon-light (its Depends), which the
  # exim-reload test runs unpacked, not installed: installing exim4 would
  # remove Postfix. libidn12 and libgnutls-dane0 are the ones a Postfix host
  # lacks. They must be real installs: LD_LIBRARY_PATH is ignored when the
  # setuid binary re-executes itself on SIGHUP (ld.so(8), secure execution).
  libidn12 libgnutls-dane0 libgnutls30 libdb5.3 libnsl2 libpcre2-8-0 libidn2-0 libcrypt1
  # `npm run deb` builds the Debian package with dpkg-deb (in dpkg itself);
  # the package test checks it with lintian.
  lintian
  # certbot makes real certbot state for the import-certbot test (its timer
  # must not start: policy-rc.d below).
  certbot python3-certbot-dns-rfc2136
  # Fleet mode coordinates through etcd v3; the fleet tests run a private
  # 3-member cluster on loopback (test/env/etcd.ts). The packaged service
  # must neither run nor start at boot: see disable_etcd_service.
  etcd-server etcd-client
  # strace watches the atomic writer's fsync calls in test/unit/atomic-write.test.ts.
  strace
)

# Packages whose services may have been started by a postinst; stopped below.
# etcd is not among them: its init script is handled by disable_etcd_service.
SERVICES=(named bind9 postfix pdns dovecot unbound)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # dpkg's status (not `command -v`) because some packages ship no binary of
  # their own (pdns-backend-sqlite3, ca-certificates).
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

# Debian's bind9 ships an AppArmor profile for /usr/sbin/named that only
# allows its own directories; on a host with AppArmor enabled (a Debian 12 VM,
# unlike most containers) the tests' named could not read the config in its
# temp dir. Extend the profile through its sanctioned local include, for the
# test dirs only, and reload it. No-op when already done or AppArmor is off.
# Extends the AppArmor profile of $1 (e.g. usr.sbin.named) to the test temp
# dirs matching $2 (e.g. /tmp/mxcert-bind-*).
allow_test_dirs() {
  local profile=/etc/apparmor.d/$1
  local local_rules=/etc/apparmor.d/local/$1
  local glob=$2
  local marker='# mxcert integration tests'
  [[ -r /sys/module/apparmor/parameters/enabled ]] || return 0
  [[ "$(cat /sys/module/apparmor/parameters/enabled)" == "Y" ]] || return 0
  [[ -f "$profile" ]] || return 0
  command -v apparmor_parser >/dev/null 2>&1 || return 0
  if ! grep -qF "$marker" "$local_rules" 2>/dev/null; then
    if [[ "$(id -u)" -ne 0 ]]; then
      echo "install-system-deps: need root to extend $local_rules" >&2
      return 1
    fi
    {
      echo "$marker (test/env keeps each server in a temp dir)"
      echo "$glob/ rw,"
      echo "$glob/** rwlk,"
    } >>"$local_rules"
    apparmor_parser -r "$profile"
    echo "install-system-deps: AppArmor profile $1 extended to $glob"
  fi
}

# The exim-reload test (test/env/exim.ts) unpacks exim4-daemon-light from
# this cache with dpkg-deb -x; download it once so CI runs need no network.
EXIM_CACHE=${MXCERT_EXIM_CACHE:-/var/cache/mxcert-test/exim}
cache_exim_deb() {
  local debs=$EXIM_CACHE/debs tmp
  compgen -G "$debs/exim4-daemon-light_*.deb" >/dev/null && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-system-deps: need root to download exim4-daemon-light into $debs" >&2
    return 1
  fi
  mkdir -p "$debs"
  tmp=$(mktemp -d "$debs/.download-XXXXXX")
  # APT::Sandbox::User=root: apt's _apt user cannot write into the root-owned
  # temp dir. Missing or stale package lists (a fresh system, or a security
  # update since the last update): update once and retry.
  if ! (cd "$tmp" && apt-get -o APT::Sandbox::User=root download exim4-daemon-light); then
    apt-get -o DPkg::Lock::Timeout=600 update
    if ! (cd "$tmp" && apt-get -o APT::Sandbox::User=root download exim4-daemon-light); then
      rm -rf "$tmp"
      echo "install-system-deps: cannot download exim4-daemon-light" >&2
      return 1
    fi
  fi
  mv "$tmp"/exim4-daemon-light_*.deb "$debs"/
  rmdir "$tmp"
  echo "install-system-deps: cached $(cd "$debs" && echo exim4-daemon-light_*.deb) in $debs"
}

# The user and group Debian's Exim binary runs as (exim4-base's postinst
# creates them; we do not install exim4-base).
ensure_exim_user() {
  getent group Debian-exim >/dev/null && getent passwd Debian-exim >/dev/null && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-system-deps: need root to create the Debian-exim user" >&2
    return 1
  fi
  getent group Debian-exim >/dev/null || groupadd --system Debian-exim
  getent passwd Debian-exim >/dev/null ||
    useradd --system --gid Debian-exim --home-dir /var/spool/exim4 --no-create-home --shell /usr/sbin/nologin Debian-exim
}

prepare_exim() {
  cache_exim_deb
  ensure_exim_user
}

# etcd-server's postinst enables etcd.service (and the SysV links), so the
# packaged member would start at the next boot with /var/lib/etcd and grab
# 127.0.0.1:2379/2380. The tests never need it: stop it through systemd (which
# stops only the unit's own cgroup) and disable both start paths. Never
# through /etc/init.d/etcd: it is an init-d-script for /usr/bin/etcd and could
# match the test run's private members. Idempotent.
disable_etcd_service() {
  [[ -e /lib/systemd/system/etcd.service || -e /etc/init.d/etcd ]] || return 0
  local enabled=0 running=0
  # is-enabled reads the unit links and needs no running systemd.
  if command -v systemctl >/dev/null 2>&1 && systemctl --quiet is-enabled etcd.service 2>/dev/null; then
    enabled=1
  fi
  compgen -G '/etc/rc[2-5].d/S*etcd' >/dev/null && enabled=1
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]] && systemctl --quiet is-active etcd.service 2>/dev/null; then
    running=1
  fi
  [[ $enabled -eq 0 && $running -eq 0 ]] && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-system-deps: need root to disable the packaged etcd service" >&2
    return 1
  fi
  [[ $running -eq 1 ]] && systemctl stop etcd.service
  # update-rc.d turns the SysV links into K links and, where systemctl
  # exists, disables the systemd unit too; systemctl covers a host without
  # the init script.
  if [[ -x /etc/init.d/etcd ]] && command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null 2>&1; then
    systemctl --quiet disable etcd.service >/dev/null 2>&1 || true
  fi
  echo "install-system-deps: the packaged etcd service is stopped and disabled (tests run their own members)"
}

allow_named_test_dirs() {
  allow_test_dirs usr.sbin.named '/tmp/mxcert-bind-*'
  allow_test_dirs usr.sbin.unbound '/tmp/mxcert-unbound-*'
}

if [[ ${#missing[@]} -eq 0 ]]; then
  allow_named_test_dirs
  disable_etcd_service
  prepare_exim
  echo "install-system-deps: all packages present"
  exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-system-deps: missing packages (${missing[*]}) and not root" >&2
  exit 1
fi

echo "install-system-deps: installing ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
# Without this the postfix postinst asks which mail setup to write.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# invoke-rc.d / deb-systemd-invoke consult policy-rc.d; exit 101 means "do not
# start services". Only create (and later remove) it when none exists, so a
# container's own policy is left as it was.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup_policy() {
  if [[ $created_policy -eq 1 ]]; then
    rm -f "$POLICY"
  fi
}
trap cleanup_policy EXIT
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary: created by mxcert install-system-deps.sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  created_policy=1
fi
# A policy that was already there and forbids starts (a container's, exit
# 101 per invoke-rc.d(8)) kept the services down just as well as ours.
existing_policy_blocks=0
if [[ $created_policy -eq 0 && -x "$POLICY" ]]; then
  rc=0
  "$POLICY" etcd start >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 101 ]] && existing_policy_blocks=1
fi

# Other installs may hold the dpkg lock (CI images, unattended upgrades): wait for it.
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"

blocked_starts=$((created_policy | existing_policy_blocks))
cleanup_policy
created_policy=0

# Best effort: if a service started anyway (e.g. a pre-existing policy-rc.d
# allowed it), stop it so it does not hold ports the tests might want.
# Skipped when our policy-rc.d kept them from starting: Debian's init scripts
# stop by executable (start-stop-daemon --exec /usr/sbin/named), which would
# also kill the private servers of a test run going on at the same time.
for svc in "${SERVICES[@]}"; do
  [[ $blocked_starts -eq 1 ]] && break
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

allow_named_test_dirs
disable_etcd_service
prepare_exim
echo "install-system-deps: done"
