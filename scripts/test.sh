#!/usr/bin/env bash
# Runs every test of pam-mfa: unit, private-bus integration through real
# libpam, and (as root) end to end with the system bus, sshd and sudo, then
# the Debian package: built, linted, installed, tested, removed, purged,
# and last installed on a Debian 12 booted with systemd (scripts/boot-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --locked 2>&1 | tail -n 3
cargo test --workspace --locked -- --test-threads=2
# Coverage-guided fuzzing of the parsers, short and bounded (the long run:
# bash scripts/fuzz.sh 600).
bash scripts/fuzz.sh 15
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/package-test.sh
  # The package on a Debian 12 booted with systemd (a container).
  bash scripts/boot-test.sh
else
  echo "not root: the package test and the boot test need root and did not run" >&2
  exit 1
fi
