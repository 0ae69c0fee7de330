# pam-mfa without the Debian package:
#   make                      release build and docs
#   make install              install under PREFIX (default /usr/local), into DESTDIR
#   make uninstall            remove exactly what `make install` installed
#   make deb                  build target/deb/pam-mfa_VERSION_ARCH.deb
#   make test                 every test (as root: also end to end)
# After `make install` as root: create the service user and state
# directory (`make setup`), then reload the system bus.
PREFIX ?= /usr/local
DESTDIR ?=
MANIFEST = $(DESTDIR)$(PREFIX)/share/pam-mfa/install-manifest

.PHONY: all docs install setup uninstall deb test bench

all: docs

target/release/mfad:
	bash scripts/build-release.sh

docs: target/release/mfad
	target/release/gen-docs target/docs target/release "$$(git log -1 --format=%cs 2>/dev/null || date -u +%F)" \
	  "$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" >/dev/null

install: docs
	bash scripts/stage.sh "$(DESTDIR)" "$(PREFIX)" > target/install-manifest
	install -D -m 0644 target/install-manifest "$(MANIFEST)"
	@echo "installed; as root run 'make setup' once, then enable the module in /etc/pam.d"

setup:
	getent passwd pam-mfa >/dev/null || useradd --system --user-group --no-create-home \
	  --home-dir /nonexistent --shell /usr/sbin/nologin pam-mfa
	install -d -m 0700 -o pam-mfa -g pam-mfa /var/lib/pam-mfa
	-dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig

uninstall:
	@test -f "$(MANIFEST)" || { echo "no $(MANIFEST): nothing installed here"; exit 1; }
	while read -r f; do rm -f "$(DESTDIR)$$f"; done < "$(MANIFEST)"
	rm -f "$(MANIFEST)"
	@echo "removed; /var/lib/pam-mfa (the enrollments) and the pam-mfa user are kept"

deb:
	bash scripts/build-deb.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh
