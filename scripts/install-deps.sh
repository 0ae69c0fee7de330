#!/usr/bin/env bash
# Installs the Debian packages pam-mfa builds and tests with. Idempotent;
# needs root (or sudo). Safe to run on a fresh Debian 12.
set -euo pipefail

packages=(
  libpam0g-dev      # links pam_mfa.so and the test harness against libpam
  dbus-daemon       # private test buses and the system bus
  dbus-bin          # dbus-send, to reload the system bus policy
  openssh-server    # the end-to-end sshd
  openssh-client
  oathtool          # an independent TOTP implementation for the tests
  expect            # drives ssh's keyboard-interactive prompt and mfa-enroll's dialogue
  zbar-tools        # zbarimg: an independent QR decoder for the terminal QR code
  libpam-google-authenticator  # writes a real ~/.google_authenticator to import
  sudo              # the end-to-end number-matching test
  cron              # a real cron job trying to approve (it must not)
  tmux              # a second window of the requesting session trying to approve
  valgrind          # the module under valgrind (scripts/valgrind-module.sh)
  util-linux        # runuser, setpriv, unshare
  procps            # pgrep: is mfad (or cron) running
  passwd            # useradd
  postgresql-15     # the fleet store's database; the tests start their own servers
                    # (initdb, pg_ctl, a free port), whatever the package set up
  openssl           # the fleet tests' CA, server and host certificates
  chromium          # the phone approver's tests: headless, with a virtual passkey
  libnss3-tools     # certutil: that browser trusts the tests' own CA
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
