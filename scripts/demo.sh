#!/usr/bin/env bash
# The main job, in a sandbox: builds pam-mfa, starts a private bus and mfad
# on a temp state directory, enrolls a demo user, and signs in through real
# libpam with a code computed by oathtool (then shows the replay refused).
# Touches nothing outside a temp directory (apart from installing packages).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --locked 2>&1 | tail -n 1
bin=target/debug

work=$(mktemp -d /tmp/pam-mfa-demo.XXXXXX)
cleanup() { kill "${mfad_pid:-}" "${bus_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

me=$(id -un)
sed "s/user=\"pam-mfa\"/user=\"$me\"/" packaging/dbus/io.github.pam_mfa.conf > "$work/policy.conf"
sed -e "s#@LISTEN@#unix:path=$work/bus.sock#" -e "s#@POLICY@#$work/policy.conf#" \
  tests/data/test-bus.conf.in > "$work/bus.conf"
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile 2>/dev/null &
bus_pid=$!
cat > "$work/config.toml" <<TOML
issuer = "pam-mfa demo"
state_dir = "$work/state"
[enroll]
require_account = false
[bus]
address = "unix:path=$work/bus.sock"
service_user = "$me"
TOML
for _ in $(seq 100); do [ -S "$work/bus.sock" ] && break; sleep 0.05; done

echo "== mfad on a private bus ($work/bus.sock)"
"$bin/mfad" --config "$work/config.toml" 2> "$work/mfad.log" &
mfad_pid=$!
for _ in $(seq 100); do grep -q ready "$work/mfad.log" 2>/dev/null && break; sleep 0.05; done

echo "== mfa-enroll --user demo   (the app's part is played by oathtool)"
coproc ENROLL { "$bin/mfa-enroll" --config "$work/config.toml" --user demo 2>&1; }
uri=""
while IFS= read -r line <&"${ENROLL[0]}"; do
  printf '%s\n' "$line"
  case $line in *"URI: "*) uri=${line#*URI: }; break ;; esac
done
secret=$(sed -e 's/.*secret=//' -e 's/&.*//' <<<"$uri")
# The previous step's code (valid within the skew), so that the current
# code is still unused for the sign-in below.
first=$(oathtool --totp --base32 --now="@$(( $(date +%s) - 30 ))" "$secret")
echo "$first" >&"${ENROLL[1]}"
cat <&"${ENROLL[0]}"
echo
printf 'auth required %s max_prompts=1 config=%s\n' "$PWD/$bin/libpam_mfa.so" "$work/config.toml" > "$work/mfa-demo"
code=$(oathtool --totp --base32 "$secret")
echo "== pam_authenticate through libpam with oathtool's code $code"
"$bin/pam-harness" --confdir "$work" --service mfa-demo --user demo --answer "$code" | grep -E '^(prompt|error|result)'
echo "== the same code again (a replay)"
"$bin/pam-harness" --confdir "$work" --service mfa-demo --user demo --answer "$code" | grep -E '^(prompt|error|result)'
echo "== what mfad logged (no codes, no secrets)"
sed -e 's/^[^ ]* *//' "$work/mfad.log"
