#!/usr/bin/env bash
# Runs every test of pam-mfa: unit, private-bus integration through real
# libpam, and (as root) end to end with the system bus, sshd and sudo, then
# the Debian package: built, linted, installed, tested, removed, purged.
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
else
  echo "not root: the package test (scripts/package-test.sh) needs root and did not run" >&2
  exit 1
fi
