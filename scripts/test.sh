#!/usr/bin/env bash
# Runs every test of pam-mfa: unit, private-bus integration through real
# libpam, and (as root) end to end with the system bus and a real sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --locked 2>&1 | tail -n 3
cargo test --workspace --locked -- --test-threads=2
