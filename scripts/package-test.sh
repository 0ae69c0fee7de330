#!/usr/bin/env bash
# Builds the .deb, checks it with lintian, installs it with apt (which pulls
# its runtime dependencies), runs the end-to-end SSH and sudo tests against
# the installed files, checks D-Bus activation and the unit, then removes
# and purges it and checks what is left. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "package-test.sh needs root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
for p in lintian systemd; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done

deb=$(bash scripts/build-deb.sh | tail -n 1)
echo "== package: $deb"
dpkg -c "$deb" | awk '{print $1, $6}' | sed 's#\./#/#' > target/deb/contents.txt
echo "== lintian"
lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v "running with root privileges" | tee target/deb/lintian.txt || true
if grep -q '^E:' target/deb/lintian.txt; then
  echo "lintian reports errors" >&2
  exit 1
fi
echo "lintian: $(grep -c '^E:' target/deb/lintian.txt) errors, $(grep -c '^W:' target/deb/lintian.txt) warnings"

echo "== apt-get install ./$deb"
apt-get install -y -qq "./$deb" >/dev/null
dpkg -s pam-mfa | grep -E '^(Status|Version)'

echo "== the languages: the installed programs and man pages"
# Whole outputs captured, then their first lines: not tee'd to /dev/stderr
# (reopening it truncates a log file), not cut by head (under pipefail the
# writer's quiet exit on a closed pipe, 141, would fail the script).
dutch=$(LANG=nl_NL.UTF-8 mfa-enroll --help)
dutch=${dutch%%$'\n'*}
english=$(LANG=C mfa-enroll --help)
english=${english%%$'\n'*}
printf '%s\n%s\n' "$dutch" "$english"
case $dutch in "mfa-enroll - stel"*) ;; *)
  echo "the installed mfa-enroll does not speak Dutch under LANG=nl_NL.UTF-8" >&2; exit 1 ;;
esac
case $english in "mfa-enroll - set up"*) ;; *)
  echo "the installed mfa-enroll does not speak English under LANG=C" >&2; exit 1 ;;
esac
for page in man1/mfa-enroll.1.gz nl/man1/mfa-enroll.1.gz nl/man1/mfa-approve.1.gz man8/mfa-db.8.gz man8/mfa-web.8.gz; do
  [ -f "/usr/share/man/$page" ] || { echo "missing: /usr/share/man/$page" >&2; exit 1; }
done
echo "mfa-enroll speaks English and Dutch; man pages in both"

echo "== the units"
systemd-analyze verify /lib/systemd/system/mfad.service
systemd-analyze security --offline=true /lib/systemd/system/mfad.service | tail -n 1
systemd-analyze verify /lib/systemd/system/mfa-web.service
systemd-analyze security --offline=true /lib/systemd/system/mfa-web.service | tail -n 1
getent passwd pam-mfa-web >/dev/null || { echo "no pam-mfa-web user" >&2; exit 1; }
if [ -e /etc/systemd/system/multi-user.target.wants/mfa-web.service ]; then
  echo "mfa-web is enabled by the package: it must only be installed" >&2; exit 1
fi
/usr/sbin/mfa-web --help | grep -q "phone approver" || { echo "mfa-web --help says nothing" >&2; exit 1; }
echo "mfa-web installed, its user made, not enabled"

started_bus=""
reload() { dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig 2>/dev/null; }
if ! { [ -S /run/dbus/system_bus_socket ] && reload; }; then
  rm -f /run/dbus/system_bus_socket /run/dbus/pid
  mkdir -p /run/dbus
  dbus-uuidgen --ensure
  started_bus=$(dbus-daemon --system --fork --print-pid)
fi
stop_bus() {
  [ -z "$started_bus" ] && return
  kill "$started_bus" 2>/dev/null || true
  rm -f /run/dbus/system_bus_socket /run/dbus/pid
}
trap stop_bus EXIT

echo "== D-Bus activation: the first call starts /usr/sbin/mfad as pam-mfa"
pkill -x mfad 2>/dev/null || true
mfa-enroll --list
if ! pgrep -u pam-mfa -x mfad >/dev/null; then
  echo "D-Bus activation did not start mfad as pam-mfa" >&2
  exit 1
fi
echo "mfad runs as pam-mfa (pid $(pgrep -u pam-mfa -x mfad))"
pkill -x mfad

echo "== end-to-end tests against the installed files"
PAM_MFA_INSTALLED=1 cargo test --locked -p pam-mfa-tests --test e2e_ssh --test e2e_sudo \
  --test e2e_approver_sessions --test e2e_remember -- --test-threads=1

echo "== remove"
apt-get remove -y -qq pam-mfa >/dev/null
left=0
while read -r mode path; do
  case $mode in d*) continue ;; esac
  if [ -e "$path" ]; then echo "still there after remove: $path"; left=1; fi
done < target/deb/contents.txt
if [ "$left" -ne 0 ]; then
  echo "files left after remove" >&2
  exit 1
fi
echo "every file of the package is gone"
[ ! -d /var/lib/pam-mfa ] || echo "kept after remove: /var/lib/pam-mfa (the enrollments)"

echo "== purge (state kept unless asked)"
apt-get purge -y -qq pam-mfa 2>&1 | grep -v '^(Reading\|^Removing' || true
[ -d /var/lib/pam-mfa ] || { echo "purge removed the enrollments without being asked" >&2; exit 1; }
echo "kept after purge: /var/lib/pam-mfa"

echo "== purge when asked"
apt-get install -y -qq "./$deb" >/dev/null
PAM_MFA_PURGE_STATE=yes apt-get purge -y -qq pam-mfa >/dev/null
[ ! -d /var/lib/pam-mfa ] || { echo "PAM_MFA_PURGE_STATE=yes did not remove /var/lib/pam-mfa" >&2; exit 1; }
echo "removed with PAM_MFA_PURGE_STATE=yes: /var/lib/pam-mfa"
if dpkg -L pam-mfa >/dev/null 2>&1; then
  echo "dpkg still lists files of pam-mfa after purge" >&2
  exit 1
fi
echo "dpkg knows no file of pam-mfa"
if getent passwd pam-mfa >/dev/null; then
  echo "kept: the pam-mfa system user (Debian does not remove system users)"
fi
echo "package-test: 1 passed, 0 failed"
