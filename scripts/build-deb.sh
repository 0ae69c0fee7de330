#!/usr/bin/env bash
# Builds the Debian package: target/deb/pam-mfa_VERSION_ARCH.deb
#   scripts/build-deb.sh            # VERSION from Cargo.toml
#   scripts/build-deb.sh 0.0.1      # the same files under another package
#                                   # version (the boot test's older build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build-release.sh
version=${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}
arch=$(dpkg --print-architecture)
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
root=target/deb/root-$version
rm -rf target/docs "$root"
target/release/gen-docs target/docs target/release "$date" "$version" >/dev/null

mkdir -p "$root/DEBIAN"
bash scripts/stage.sh "$root" /usr > target/deb/manifest
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in > "$root/DEBIAN/control"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
  > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
deb="target/deb/pam-mfa_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
