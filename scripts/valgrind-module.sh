#!/usr/bin/env bash
# Runs pam_mfa.so under valgrind in one long-lived pam-harness process
# (real libpam, pam_start_confdir / pam_authenticate / pam_end per attempt)
# against a private dbus-daemon with the packaged policy and a real mfad:
# right, replayed, wrong and empty codes, recovery codes, unenrolled users,
# mode=auto without an approver, and (as root) pushes approved by a real
# mfa-approve in another login session and a push that expires.
#
# Reports valgrind's ERROR SUMMARY and LEAK SUMMARY. Exit status:
#   0  no invalid read/write/free, no use of uninitialised memory and no
#      definite leak whose stack includes pam_mfa / libpam_mfa
#   1  one of those was found (its stack is printed)
#   2  the run itself went wrong (setup, unexpected PAM results)
# Definite leaks of libpam or glibc themselves (no module frame in the
# stack) are reported separately and do not fail the run.
#
# Environment: PAM_MFA_BIN_DIR (default target/debug; run `cargo build
# --workspace` first), PUSH_USER (a real account for the pushes; as root
# the default mfa-valgrind-push is created if missing; not root: no
# pushes), CODE_USERS (default 6: 7 attempts each), VALGRIND_LOG (where
# the full log is kept; default target/valgrind-module.log), VALGRIND_EXTRA
# (more valgrind options, e.g. --show-leak-kinds=all).
#
#   scripts/valgrind-module.sh --analyse LOG   only reads an existing log
set -euo pipefail
# The module's English texts are read below, whatever the caller's locale.
export LANG=C.UTF-8
unset LC_ALL LC_MESSAGES LANGUAGE
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PAM_MFA_BIN_DIR:-$ROOT/target/debug}"
CODE_USERS="${CODE_USERS:-6}"
VALGRIND_LOG="${VALGRIND_LOG:-$ROOT/target/valgrind-module.log}"
started=$(date +%s)

die() { echo "valgrind-module: $*" >&2; exit 2; }

# Reads a valgrind log ($1) into $2: prints the summaries, the module's
# errors and definite leaks, and those of others; fails (1) when the module
# has any, or when anything read or wrote out of bounds. Records are
# separated by blank `==PID== ` lines.
analyse() {
  local log=$1 dir=$2 our_errors our_leaks invalid
  strip() { sed -E 's/^==[0-9]+== ?//' "$log"; }
  grep -E 'ERROR SUMMARY' "$log" | tail -n 1 | sed -E 's/^==[0-9]+== //' || true
  strip | grep -E '^(HEAP SUMMARY|LEAK SUMMARY| +(in use at exit|total heap usage|definitely lost|indirectly lost|possibly lost|still reachable|suppressed):|All heap blocks)' \
    | sed 's/^/  /' || true
  rm -f "$dir/ours.txt" "$dir/theirs.txt"
  strip | awk -v dir="$dir" '
    function flush() {
      if (rec == "") return
      ours = (rec ~ /pam_mfa|libpam_mfa/)
      if (rec ~ /are definitely lost in loss record/) {
        split(rec, first, " ")
        bytes = first[1]; gsub(/,/, "", bytes)
        if (ours) { ol++; ob += bytes; print rec > (dir "/ours.txt") }
        else { tl++; tb += bytes; print rec > (dir "/theirs.txt") }
      } else if (rec ~ /^(Invalid (read|write|free)|Mismatched free|Source and destination overlap|Conditional jump or move depends on uninitialised|Use of uninitialised value|Syscall param .* uninitialised)/) {
        if (ours) { oe++; print rec > (dir "/ours.txt") }
        else { te++; print rec > (dir "/theirs.txt") }
        if (rec ~ /^Invalid (read|write|free)|^Mismatched free/) inv++
      }
      rec = ""
    }
    /^$/ { flush(); next }
    { rec = rec $0 "\n" }
    END {
      flush()
      printf "module: %d memory errors, %d definite leaks (%d bytes)\n", oe, ol, ob > (dir "/counts")
      printf "not the module (libpam, glibc, the harness): %d memory errors, %d definite leaks (%d bytes)\n", te, tl, tb > (dir "/counts")
      printf "invalid reads/writes/frees anywhere: %d\n", inv > (dir "/counts")
      printf "%d %d %d\n", oe, ol, inv > (dir "/numbers")
    }'
  cat "$dir/counts"
  read -r our_errors our_leaks invalid <"$dir/numbers"
  if [ -s "$dir/theirs.txt" ]; then
    echo "--- reported, not from the module (first stacks):"
    head -n 80 "$dir/theirs.txt" | sed 's/^/  /'
  fi
  if [ -s "$dir/ours.txt" ]; then
    echo "--- from the module:"
    sed 's/^/  /' "$dir/ours.txt"
  fi
  if [ "$our_errors" -gt 0 ] || [ "$our_leaks" -gt 0 ] || [ "$invalid" -gt 0 ]; then
    echo "valgrind-module: FAILED: invalid accesses, uninitialised reads or definite leaks (see above)" >&2
    return 1
  fi
}

if [ "${1:-}" = --analyse ]; then
  # Only read an existing log: scripts/valgrind-module.sh --analyse LOG
  [ -r "${2:-}" ] || die "usage: $0 --analyse VALGRIND_LOG"
  scratch="$(mktemp -d)"
  rc=0
  analyse "$2" "$scratch" || rc=$?
  rm -rf "$scratch"
  exit "$rc"
fi

for name in pam-harness mfad mfa-enroll mfa-approve libpam_mfa.so; do
  [ -e "$BIN/$name" ] || die "$BIN/$name is missing: run \`cargo build --workspace\` first"
done
for tool in dbus-daemon oathtool setpriv; do
  command -v "$tool" >/dev/null || die "$tool not found: bash scripts/install-deps.sh"
done
if ! command -v valgrind >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing valgrind"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

PUSH=no
if [ "$(id -u)" -eq 0 ]; then
  PUSH_USER="${PUSH_USER:-mfa-valgrind-push}"
  if ! id "$PUSH_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group "$PUSH_USER"
  fi
  PUSH=yes
fi

WORK="$(mktemp -d /tmp/pam-mfa-valgrind.XXXXXX)"
chmod 755 "$WORK" # the push user runs mfa-approve and reads the config here
BUS_PID=""
MFAD_PID=""
VG_PID=""
cleanup() {
  for pid in $VG_PID $MFAD_PID $BUS_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_until() { # seconds, command...
  local limit=$(($1 * 10)); shift
  for _ in $(seq "$limit"); do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# The private bus: system-bus defaults and the packaged policy, with the
# service user replaced by the user running this script.
SOCKET="$WORK/bus.sock"
ADDRESS="unix:path=$SOCKET"
sed "s/user=\"pam-mfa\"/user=\"$(id -un)\"/" "$ROOT/packaging/dbus/io.github.pam_mfa.conf" \
  >"$WORK/policy.conf"
sed -e "s|@LISTEN@|$ADDRESS|" -e "s|@POLICY@|$WORK/policy.conf|" \
  "$ROOT/tests/data/test-bus.conf.in" >"$WORK/bus.conf"
dbus-daemon --config-file="$WORK/bus.conf" --nofork --nopidfile >/dev/null 2>"$WORK/bus.log" &
BUS_PID=$!
wait_until 10 test -S "$SOCKET" || die "the bus did not start: $(cat "$WORK/bus.log")"

# mfad. The module's calls are slow under valgrind: a generous bound.
CONF="$WORK/config.toml"
cat >"$CONF" <<EOF
state_dir = "$WORK/state"
[limits]
max_failures = 100
[enroll]
require_account = false
[push]
timeout_seconds = 8
# Many pushes from one process, approved from a plain new session.
approver_session = "different"
request_burst = 1000
request_every_seconds = 1
[bus]
address = "$ADDRESS"
timeout_ms = 20000
service_user = "$(id -un)"
EOF
chmod 644 "$CONF"
cp "$BIN/mfa-approve" "$WORK/mfa-approve"
chmod 755 "$WORK/mfa-approve"
"$BIN/mfad" --config "$CONF" >/dev/null 2>"$WORK/mfad.log" &
MFAD_PID=$!
wait_until 10 grep -q ready "$WORK/mfad.log" || die "mfad did not start: $(cat "$WORK/mfad.log")"

# Enrolls $1 through `mfa-enroll --json`; sets SECRET and RECOVERY (array).
enroll() {
  local user=$1 line secret="" tries
  coproc ENROLL { "$BIN/mfa-enroll" --config "$CONF" --json --user "$user"; }
  local pid=$ENROLL_PID out=${ENROLL[0]} in=${ENROLL[1]}
  IFS= read -r -t 20 line <&"$out" || die "mfa-enroll printed nothing for $user"
  secret=$(grep -o 'secret=[A-Z2-7]*' <<<"$line" | head -n 1 | cut -d= -f2)
  [ -n "$secret" ] || die "no secret in: $line"
  for tries in 1 2 3; do
    # The previous step's code (as the tests' enroll does): it leaves the
    # current and next steps' codes unused.
    oathtool --totp --base32 --now="@$(($(date +%s) - 30))" "$secret" >&"$in"
    IFS= read -r -t 20 line <&"$out" || die "mfa-enroll did not answer for $user"
    case "$line" in *'"wrong_code"'*) continue ;; esac
    break
  done
  eval "exec $in>&-"
  wait "$pid" || die "mfa-enroll failed for $user: $line"
  case "$line" in *'"enrolled"'*) ;; *) die "not enrolled: $line" ;; esac
  SECRET=$secret
  mapfile -t RECOVERY < <(sed 's/.*"recovery_codes":\[//; s/\].*//' <<<"$line" | tr -d '"' | tr ',' '\n')
  [ "${#RECOVERY[@]}" -ge 2 ] || die "no recovery codes in: $line"
}

# A code of the same length that is none of the given ones: digits shifted.
wrong_code() { # base, valid codes...
  local base=$1 k c; shift
  for k in 1 2 3 4 5 6 7 8 9; do
    c=$(tr '0123456789' "$(printf '%s' '01234567890123456789' | cut -c$((k + 1))-$((k + 10)))" <<<"$base")
    case " $* " in *" $c "*) ;; *) echo "$c"; return ;; esac
  done
}

declare -a secrets users recov1 recov2
for i in $(seq 1 "$CODE_USERS"); do
  users+=("vg-user-$i")
  enroll "vg-user-$i"
  secrets+=("$SECRET")
  recov1+=("${RECOVERY[0]}")
  recov2+=("${RECOVERY[1]}")
done
push_wrong=000000
if [ "$PUSH" = yes ]; then
  enroll "$PUSH_USER"
  mapfile -t window < <(oathtool --totp --base32 --now="@$(($(date +%s) - 30))" --window=3 "$SECRET")
  push_wrong=$(wrong_code "${window[1]}" "${window[@]}")
fi

# The PAM services: codes, push, auto (no approver online: asks a code).
MODULE="$BIN/libpam_mfa.so"
mkdir "$WORK/pam.d"
echo "auth required $MODULE config=$CONF" >"$WORK/pam.d/mfa-code"
echo "auth required $MODULE mode=push config=$CONF" >"$WORK/pam.d/mfa-push"
echo "auth required $MODULE mode=auto config=$CONF" >"$WORK/pam.d/mfa-auto"

# The plan: `user answer service expected` per attempt. Time-bound codes
# first: the next step's code is accepted for at least 60 s from now.
PLAN="$WORK/plan"
: >"$PLAN"
add() { echo "$1 $2 $3 $4" >>"$PLAN"; }
now=$(date +%s)
for i in "${!users[@]}"; do
  mapfile -t window < <(oathtool --totp --base32 --now="@$((now - 30))" --window=3 "${secrets[$i]}")
  next=${window[2]}
  add "${users[$i]}" "$next" mfa-code PAM_SUCCESS
  add "${users[$i]}" "$next" mfa-code PAM_AUTH_ERR # replayed
  add "${users[$i]}" "$(wrong_code "$next" "${window[@]}")" mfa-code PAM_AUTH_ERR
done
pushes=()
for i in "${!users[@]}"; do
  add "${users[$i]}" "${recov1[$i]}" mfa-code PAM_SUCCESS
  add "${users[$i]}" "${recov1[$i]}" mfa-code PAM_AUTH_ERR # used up
  add "${users[$i]}" - mfa-code PAM_AUTH_ERR              # empty answer
  add "${users[$i]}" "${recov2[$i]}" mfa-code PAM_SUCCESS
  if [ "$PUSH" = yes ]; then
    case $i in
      0 | 2) add "$PUSH_USER" - mfa-push PAM_SUCCESS; pushes+=(approve) ;;
      4) add "$PUSH_USER" - mfa-push PAM_AUTH_ERR; pushes+=(expire) ;;
      1 | 3 | 5) add "$PUSH_USER" "$push_wrong" mfa-auto PAM_AUTH_ERR ;;
    esac
  fi
done
add vg-not-enrolled 123456 mfa-code PAM_AUTH_ERR
add vg-not-enrolled 123456 mfa-code PAM_AUTH_ERR
cut -d' ' -f1-3 "$PLAN" >"$WORK/users-file"
total=$(wc -l <"$PLAN")

approve() { # number
  local uid
  uid=$(id -u "$PUSH_USER")
  # A new audit login session (as pam_loginuid makes one), then the user.
  sh -c 'echo "$1" > /proc/self/loginuid || exit 97; shift; exec "$@"' sh "$uid" \
    setpriv --reuid="$PUSH_USER" --regid="$PUSH_USER" --init-groups -- \
    "$WORK/mfa-approve" --config "$CONF" --once <<<"$1" >"$WORK/approve.out" 2>&1
}

echo "valgrind-module: $total authentications in one process under valgrind" \
  "($CODE_USERS code users, pushes: $PUSH)"
OUT="$WORK/harness.out"
: >"$OUT"
vg_started=$(date +%s)
valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
  --show-leak-kinds=definite,possible --keep-debuginfo=yes --num-callers=50 \
  ${VALGRIND_EXTRA:-} --log-file="$WORK/valgrind.log" \
  "$BIN/pam-harness" --confdir "$WORK/pam.d" --service mfa-code \
  --users-file "$WORK/users-file" --rhost 192.0.2.7 --tty ssh >"$OUT" 2>"$WORK/harness.err" &
VG_PID=$!
handled=0
approve_failed=0
while kill -0 "$VG_PID" 2>/dev/null; do
  mapfile -t asks < <(grep '^info: Sign-in request' "$OUT" || true)
  while [ "$handled" -lt "${#asks[@]}" ]; do
    number=$(sed -n 's/.*type \([0-9][0-9]*\) in mfa-approve.*/\1/p' <<<"${asks[$handled]}")
    if [ "${pushes[$handled]:-}" = approve ]; then
      approve "$number" || { approve_failed=$((approve_failed + 1)); cat "$WORK/approve.out" >&2; }
    fi
    handled=$((handled + 1))
  done
  sleep 0.2
done
vg_rc=0
wait "$VG_PID" || vg_rc=$?
VG_PID=""
vg_took=$(($(date +%s) - vg_started))
[ -s "$WORK/valgrind.log" ] || die "valgrind wrote no log: $(tail -n 5 "$WORK/harness.err")"
mkdir -p "$(dirname "$VALGRIND_LOG")"
cp "$WORK/valgrind.log" "$VALGRIND_LOG"

# The PAM side: every attempt ended as planned?
mapfile -t expected < <(cut -d' ' -f4 "$PLAN")
mapfile -t results < <(sed -n 's/^result: //p' "$OUT")
success=0 failure=0 other=0 mismatch=0
for i in "${!results[@]}"; do
  case "${results[$i]}" in
    PAM_SUCCESS) success=$((success + 1)) ;;
    PAM_AUTH_ERR) failure=$((failure + 1)) ;;
    *) other=$((other + 1)) ;;
  esac
  if [ "${results[$i]}" != "${expected[$i]:-}" ]; then
    mismatch=$((mismatch + 1))
    echo "  attempt $((i + 1)) ($(sed -n "$((i + 1))p" "$PLAN" | cut -d' ' -f1,3)):" \
      "${results[$i]}, expected ${expected[$i]:-}" >&2
  fi
done
threads=$(sed -n 's/^threads: //p' "$OUT" | paste -sd' ')
fds=$(sed -n 's/^fds: //p' "$OUT" | paste -sd' ')
approved=0 expired=0
for p in "${pushes[@]}"; do
  case $p in approve) approved=$((approved + 1)) ;; expire) expired=$((expired + 1)) ;; esac
done
echo "calls: ${#results[@]} of $total; PAM_SUCCESS $success, PAM_AUTH_ERR $failure, other $other" \
  "(pushes approved with mfa-approve: $approved, left to expire: $expired)"
echo "threads before/after: $threads; fds before/after: $fds"
echo "valgrind: exit status $vg_rc, ${vg_took} s"

analyse "$WORK/valgrind.log" "$WORK" || exit 1
echo "full log: $VALGRIND_LOG; total $(($(date +%s) - started)) s"
if ! grep -q 'ERROR SUMMARY' "$WORK/valgrind.log"; then
  die "valgrind printed no ERROR SUMMARY: $(tail -n 5 "$WORK/harness.err")"
fi
if [ "${#results[@]}" -ne "$total" ] || [ "$mismatch" -gt 0 ] || [ "$approve_failed" -gt 0 ]; then
  die "the run did not go as planned: ${#results[@]} of $total results, $mismatch unexpected, $approve_failed approvals failed"
fi
echo "valgrind-module: OK"
