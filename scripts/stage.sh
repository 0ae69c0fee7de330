#!/usr/bin/env bash
# Lays pam-mfa's files out under DESTDIR for PREFIX, from a release build:
#   scripts/stage.sh DESTDIR PREFIX
# Used by the Debian package (PREFIX=/usr) and by `make install`. Prints
# every file it installs, one per line (the uninstall manifest).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: stage.sh DESTDIR PREFIX}
prefix=${2:-/usr/local}
rel=target/release
docs=target/docs

multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
# PAM modules live where the system's own do (Debian: /lib/<multiarch>/security).
pamdir=${PAM_MODULE_DIR:-/lib/$multiarch/security}
if [ "$prefix" = "/usr" ]; then
  unitdir=/lib/systemd/system
else
  unitdir=$prefix/lib/systemd/system
fi
userunitdir=/usr/lib/systemd/user
dbusdir=/usr/share/dbus-1

put() { # put MODE SOURCE TARGET
  install -D -m "$1" "$2" "$dest$3"
  echo "$3"
}
subst() { sed -e "s#/usr/sbin/mfad#$prefix/sbin/mfad#g" -e "s#/usr/sbin/mfa-web#$prefix/sbin/mfa-web#g" -e "s#/usr/bin/mfa-approve#$prefix/bin/mfa-approve#g" "$1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

put 0755 "$rel/mfad" "$prefix/sbin/mfad"
put 0755 "$rel/mfa-enroll" "$prefix/bin/mfa-enroll"
put 0755 "$rel/mfa-approve" "$prefix/bin/mfa-approve"
put 0755 "$rel/mfa-db" "$prefix/sbin/mfa-db"
put 0755 "$rel/mfa-web" "$prefix/sbin/mfa-web"
put 0644 target/module/libpam_mfa.so "$pamdir/pam_mfa.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$dest$prefix/sbin/mfad" "$dest$prefix/sbin/mfa-db" "$dest$prefix/sbin/mfa-web" "$dest$prefix/bin/mfa-enroll" "$dest$prefix/bin/mfa-approve" \
  "$dest$pamdir/pam_mfa.so"

subst packaging/systemd/system/mfad.service > "$tmp/mfad.service"
put 0644 "$tmp/mfad.service" "$unitdir/mfad.service"
subst packaging/systemd/system/mfa-web.service > "$tmp/mfa-web.service"
put 0644 "$tmp/mfa-web.service" "$unitdir/mfa-web.service"
subst packaging/systemd/user/mfa-approve.service > "$tmp/mfa-approve.service"
put 0644 "$tmp/mfa-approve.service" "$userunitdir/mfa-approve.service"
put 0644 packaging/dbus/io.github.pam_mfa.conf "$dbusdir/system.d/io.github.pam_mfa.conf"
subst packaging/dbus/system-services/io.github.pam_mfa.service > "$tmp/activation"
put 0644 "$tmp/activation" "$dbusdir/system-services/io.github.pam_mfa.service"
put 0644 packaging/pam/pam-configs-pam-mfa /usr/share/pam-configs/pam-mfa
# The committed D-Bus API, where clients look for it (as fprintd's).
for f in protocol/dbus/*.xml; do
  put 0644 "$f" "$dbusdir/interfaces/$(basename "$f")"
done

doc=/usr/share/doc/pam-mfa
[ "$prefix" = "/usr" ] || doc=$prefix/share/doc/pam-mfa
put 0644 README.md "$doc/README.md"
put 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n < packaging/debian/changelog > "$tmp/changelog.gz"
put 0644 "$tmp/changelog.gz" "$doc/changelog.gz"
put 0644 "$docs/examples/config.toml" "$doc/examples/config.toml"
for f in packaging/examples/*; do
  put 0644 "$f" "$doc/examples/$(basename "$f")"
done

man=$prefix/share/man
# English pages in man/manN/, the translated ones in man/LANG/manN/.
for page in "$docs"/man*/* "$docs"/*/man*/*; do
  [ -f "$page" ] || continue
  rel=${page#"$docs"/}
  gzip -9n < "$page" > "$tmp/page.gz"
  put 0644 "$tmp/page.gz" "$man/$rel.gz"
done
