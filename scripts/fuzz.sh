#!/usr/bin/env bash
# Fuzzes every target in fuzz/fuzz_targets/ for SECONDS each (default 20)
# with cargo-fuzz (libFuzzer, AddressSanitizer, debug assertions and
# overflow checks), starting from the committed seeds in fuzz/corpus/.
#
#   bash scripts/fuzz.sh [SECONDS]
#
# Prints "fuzz TARGET: N execs, no crash" per target; exits non-zero when a
# target crashed (a panic is a crash), after the others ran. libFuzzer saves
# the input in fuzz/artifacts/TARGET/; replay it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-…)
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take the
# nightly flags cargo-fuzz passes (-Zsanitizer, sancov).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: bash scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: installing it" >&2
  cargo install cargo-fuzz --locked
fi

cd fuzz
cargo fuzz build 2>&1 | tail -n 3

logs="target/fuzz-logs"
mkdir -p "$logs"
failed=()
for target in $(cargo fuzz list); do
  # New inputs go to a scratch corpus under target/ (first directory), so
  # the committed seeds in corpus/ stay as they are.
  work="target/corpus/$target"
  mkdir -p "$work" "corpus/$target"
  log="$logs/$target.log"
  status=0
  cargo fuzz run "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
  if [ -z "$execs" ]; then
    execs="$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)"
  fi
  if [ "$status" -eq 0 ]; then
    echo "fuzz $target: ${execs:-?} execs, no crash"
  else
    failed+=("$target")
    echo "fuzz $target: CRASH after ${execs:-?} execs (exit $status); log: fuzz/$log" >&2
    # The panic's location and message, or the sanitizer's report.
    grep -A 1 -E "panicked at|ERROR: AddressSanitizer" "$log" | head -n 8 >&2 || true
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    if [ -n "$artifact" ]; then
      echo "  input: $artifact" >&2
      echo "  replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact)" >&2
    else
      tail -n 20 "$log" >&2
    fi
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]}" >&2
  exit 1
fi
