#!/usr/bin/env bash
# The release build of everything, then the PAM module alone with the
# `module` profile (Cargo.toml: optimized for size, and built without the
# features only mfad's crates ask of shared dependencies): it runs inside
# sudo, su and sshd. Outputs: target/release/*, target/module/libpam_mfa.so.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked 2>&1 | tail -n 1
cargo build --profile module -p pam_mfa --locked 2>&1 | tail -n 1
