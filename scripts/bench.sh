#!/usr/bin/env bash
# The benchmarks (not tests): release build, then pam-mfa-bench as root on
# this machine with real parts; writes BENCHMARKS.md. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench.sh needs root (google-authenticator's module, pamtester)" >&2; exit 1; }
bash scripts/install-deps.sh
for p in libpam-google-authenticator pamtester; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
bash scripts/build-release.sh
export PAM_MFA_TEST_MODULE="$PWD/target/module/libpam_mfa.so"
# The fleet first (files and PostgreSQL side by side, 50 hosts); the main
# run puts its Markdown into BENCHMARKS.md.
rm -f target/bench-fleet.md
target/release/pam-mfa-fleet-bench target/bench-fleet.md
rm -f target/bench-phone.md
target/release/pam-mfa-phone-bench target/bench-phone.md
target/release/pam-mfa-bench BENCHMARKS.md
