#!/usr/bin/env bash
# The boot test: the freshly built package on a Debian 12 booted with
# systemd as PID 1 (systemd-nspawn --boot), checked from inside
# (tests/tests/boot.rs). Makes the Debian root once (cached, see
# scripts/debian-root.sh), the .deb and an older-versioned one for the
# upgrade. Needs root. Fails, saying why, where a container cannot boot.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "boot-test.sh needs root (debootstrap, systemd-nspawn)" >&2; exit 1; }
bash scripts/install-deps.sh

started=$(date +%s)
root=$(bash scripts/debian-root.sh)
echo "== Debian 12 root: $root ($(( $(date +%s) - started )) s)"
# Copies a killed run left behind (none is in use while no container runs).
pgrep -x systemd-nspawn >/dev/null || rm -rf "$(dirname "$root")"/machine-*
deb=$(bash scripts/build-deb.sh | tail -n 1)
# The same files under a lower version: what an upgrade replaces.
old=$(bash scripts/build-deb.sh 0.0.1 | tail -n 1)
echo "== packages: $deb, and $old to upgrade from"

export PAM_MFA_BOOT_ROOT=$root PAM_MFA_DEB=$PWD/$deb PAM_MFA_OLD_DEB=$PWD/$old
cargo test --locked -p pam-mfa-tests --test boot -- --test-threads=1
echo "== boot test: $(( $(date +%s) - started )) s in all"
