#!/usr/bin/env bash
# Makes (once) a Debian 12 root that boots with systemd, for the boot test,
# and prints its path. The root is cached under $PAM_MFA_CACHE (default
# /var/cache/pam-mfa-test) by a hash of its package list and of this
# script, so it is made again only when either changes. Needs root.
#   scripts/debian-root.sh        # prints e.g. /var/cache/pam-mfa-test/bookworm-1a2b3c4d5e6f
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "debian-root.sh needs root (debootstrap)" >&2; exit 1; }

# What a Debian 12 server with pam-mfa needs around it: systemd as PID 1,
# the system bus, logind sessions (libpam-systemd), each user's session bus
# (dbus-user-session: systemd-run --user), sshd, sudo, cron, and the
# package's own dependencies (dbus, adduser, libpam-runtime); and for the
# fleet case, Debian's PostgreSQL 15 (its cluster made by the package,
# started by systemd).
packages=(
  systemd systemd-sysv dbus libpam-systemd dbus-user-session
  openssh-server openssh-client sudo cron
  adduser libpam-runtime procps util-linux passwd
  postgresql-15
)

export DEBIAN_FRONTEND=noninteractive
for p in debootstrap systemd-container; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
done

cache=${PAM_MFA_CACHE:-/var/cache/pam-mfa-test}
hash=$( { printf '%s\n' "${packages[@]}"; cat "$0"; } | sha256sum | cut -c1-12)
root="$cache/bookworm-$hash"
if [ -f "$root/.complete" ]; then
  echo "$root"
  exit 0
fi

# The mirror this machine's apt already uses for bookworm main.
mirror=$(apt-cache policy | awk '$3 == "bookworm/main" && $2 ~ /^https?:/ { print $2; exit }')
if [ -z "$mirror" ]; then
  apt-get update -qq
  mirror=$(apt-cache policy | awk '$3 == "bookworm/main" && $2 ~ /^https?:/ { print $2; exit }')
fi
[ -n "$mirror" ] || { echo "debian-root.sh: apt knows no mirror for bookworm/main (see /etc/apt/sources.list*)" >&2; exit 1; }

mkdir -p "$cache"
# Older roots (another package list) go; a half-made one is never used.
find "$cache" -mindepth 1 -maxdepth 1 -name 'bookworm-*' ! -name "bookworm-$hash" -exec rm -rf {} +
work="$root.partial"
rm -rf "$work"
echo "making a Debian 12 root in $root (debootstrap, about a minute)" >&2
include=$(IFS=,; echo "${packages[*]}")
if ! debootstrap --variant=minbase --include="$include" bookworm "$work" "$mirror" \
     > "$cache/debootstrap.log" 2>&1; then
  tail -n 20 "$cache/debootstrap.log" >&2
  echo "debootstrap failed (whole log: $cache/debootstrap.log)" >&2
  exit 1
fi

# Made once here, so that every booted copy is the same: a machine id, a
# host name, no root password (root logs in only through nsenter), apt's
# lists emptied (the container has no network).
echo pam-mfa-boot > "$work/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 pam-mfa-boot\n' > "$work/etc/hosts"
systemd-machine-id-setup --root="$work" >/dev/null 2>&1
rm -rf "$work/var/lib/apt/lists/"* "$work/var/cache/apt/"*.bin
touch "$work/.complete"
mv "$work" "$root"
echo "$root"
