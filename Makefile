# mkve: build, test and install.  GNU make.
#   make                 build the binaries (release)
#   make test            install what tests need, run every test, lint the man pages
#   make test-nodes      two nodes in two namespaces: all-nodes list, remote creates, migration
#   make test-web        mkve-web in headless Chromium (part of make test)
#   make test-ganeti     a two-node Ganeti cluster running mkve bundles (part of make test)
#   make test-nested     KVM and Xen nodes booted under TCG, mkve-vm making machines inside (part of make test)
#   make demo            build a bundle from the shipped ntp-server template and show it
#   make install         PREFIX=/usr/local DESTDIR= ; install-<tool> for one tool
#   make man             lint the man pages
#   make lint            rustfmt and clippy, warnings as errors
#   make faults          the kill -9, disk-full and race suites, long runs
#   make check-services  every service template answers its client, lxc and qemu (slow)
#   make check-templates build every shipped template for every hypervisor (slow)
#   make deb             the Debian packages (dpkg-buildpackage), checked by lintian
#   make rpm             the ALT spec, parsed and built with Debian's rpm
#   make fuzz            run each fuzzer FUZZ_SECONDS (600), keep its corpus (not in CI)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share/mkve
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# Ganeti's OS definition mkve (mkve-vm(1), GANETI): on Ganeti's search path.
GANETIOSDIR ?= $(PREFIX)/lib/ganeti/os
SYSCONFDIR ?= /etc
DESTDIR    ?=

CARGO      ?= cargo
# Rust from rustup, when cargo is not on PATH.
export PATH := $(PATH):$(HOME)/.cargo/bin
# Where the installed binaries look by default ($MKVE_DATADIR etc. still win).
export MKVE_BUILD_DATADIR := $(DATADIR)
export MKVE_BUILD_CONFDIR := $(SYSCONFDIR)/mkve

RELEASE    := $(or $(CARGO_TARGET_DIR),target)/release
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TOOLS      := mkve-bundle mkve-cache mkve-net mkve-vm mkve-web
MAN1       := man/mkve-bundle.1 man/mkve-cache.1 man/mkve-net.1 man/mkve-vm.1
MAN5       := man/mkve-template.5 man/mkve-bundle.5 man/mkve-bundle-config.5
MAN7       := man/mkve.7
MAN8       := man/mkve-web.8
DEMO       ?= $(or $(CARGO_TARGET_DIR),target)/demo

.PHONY: all deps test test-nodes test-web test-ganeti test-nested install-ganeti-os man lint faults check-services demo check-templates fuzz deb rpm install $(addprefix install-,$(TOOLS)) install-data install-man uninstall clean

# The release build's environment made the same under make demo, make deb
# and make rpm, so that each finds the build before it fresh (cargo builds
# again a crate whose build script read a variable that changed, and all
# that depends on it): SOURCE_DATE_EPOCH is debian/changelog's time, as
# dpkg-buildpackage sets it (ring's and zstd's C objects are reproducible
# with it); PKG_CONFIG_PATH without the system's own directories, which
# rpmbuild appends, and unset when nothing else is in it; and on Debian,
# when CFLAGS is not set, the C compiler flags debhelper gives a package's
# build (dpkg-buildflags: the hardening flags) for the C parts of ring and
# zstd.
BUILD_EPOCH := $(shell dpkg-parsechangelog -STimestamp 2>/dev/null)

all:
	p=$$(printf '%s' "$${PKG_CONFIG_PATH-}" | tr : '\n' | grep -vxE '|/usr/(lib|lib64|share)/pkgconfig' | paste -sd:); \
	if [ -n "$$p" ]; then export PKG_CONFIG_PATH="$$p"; else unset PKG_CONFIG_PATH; fi; \
	if [ -z "$${CFLAGS+set}" ] && command -v dpkg-buildflags >/dev/null; then eval "$$(dpkg-buildflags --export=sh)"; fi; \
	$(if $(BUILD_EPOCH),export SOURCE_DATE_EPOCH=$(BUILD_EPOCH);) \
	$(CARGO) build --release --locked

deps:
	./scripts/deps

# Unit and integration tests, those that need root or the network (marked
# #[ignore], left out of a plain `cargo test`) included, then the end-to-end
# run against a real libvirtd inside a network namespace of the test's own.
# The services suite runs the nine templates on lxc (make check-services
# runs them on qemu too): e2e-lxc.sh, keep.sh, upgrade.sh, pack.sh and
# ganeti.sh each build ntp-server for qemu and ask its guest for the time.
# Each step says how long it took (scripts/timed). The fault suite runs 2
# kill rounds and 4 race rounds of each kind here; make faults runs 20 and
# 50. The suites run the release binaries, those the packages ship (built
# as make demo and make deb build them, so after make demo nothing is
# compiled again); run by hand, a suite takes target/debug's.
SUITE := scripts/timed env MKVE_BINDIR=$(abspath $(RELEASE))
test: deps man
	scripts/timed $(CARGO) test --locked --workspace -- --include-ignored
	scripts/timed $(MAKE) all PREFIX=/usr
	$(SUITE) tests/e2e-lxc.sh
	$(SUITE) tests/publish.sh
	$(SUITE) tests/nodes.sh
	$(SUITE) tests/ganeti.sh
	$(SUITE) tests/web.sh
	$(SUITE) KILL_ROUNDS=2 RACE_ROUNDS=4 tests/faults.sh
	$(SUITE) tests/keep.sh
	$(SUITE) tests/upgrade.sh
	$(SUITE) tests/pack.sh
	$(SUITE) tests/services.sh
	$(SUITE) tests/nested.sh

# Many nodes (mkve-vm(1), NODES): two libvirtds in two network namespaces
# joined by a veth pair, each with its own sshd; list --all-nodes, creates
# on both at once, live and offline migration and their failures
# (tests/nodes.sh). make test runs it.
test-nodes: deps
	$(CARGO) build --locked --workspace
	tests/nodes.sh

# mkve's bundles as Ganeti instances (mkve-vm(1), GANETI): two Ganeti
# nodes in namespaces of the test's own, the OS definition of this tree,
# sync, parameters, hail and a pool address, live migration, a variant out
# of sync, failover through RAPI (tests/ganeti.sh; installs Ganeti's
# packages when missing). make test runs it.
test-ganeti: deps
	$(CARGO) build --locked --workspace
	tests/ganeti.sh

# KVM and Xen for real, nested under QEMU's TCG (tests/nested.sh): the
# virt-node template built by mkve-bundle, booted plainly (a KVM node) and
# as Xen's dom0 (a Xen node); mkve-vm inside makes, starts, probes, stops
# and deletes a kvm and a xen machine. make test runs it.
test-nested: deps
	$(CARGO) build --locked --workspace
	tests/nested.sh

# mkve-web driven by headless Chromium through WebDriver, inside a network
# namespace of its own (tests/web.sh): upload, create, start, console login,
# stop, delete, a tampered bundle refused; screenshots in
# target/web-screenshots. make test runs it.
test-web: deps
	$(CARGO) build --locked --workspace
	tests/web.sh

# Every service template answering its real client on lxc and on qemu
# (TCG): the whole 9 x 2 matrix, closed by its table (service, hypervisor,
# build time, start -> first answer, result). make test runs the nine on
# lxc and two on qemu.
check-services: deps
	$(CARGO) build --locked --workspace
	tests/services.sh -H lxc,qemu

# The fault suites' long runs: 20 kill -9 trials each, 50 rounds of races
# (make test runs 5 and 10).
faults: deps
	$(CARGO) build --locked --workspace
	KILL_ROUNDS=20 RACE_ROUNDS=50 tests/faults.sh

# Each tool alone, with only the features of mkve-core it asks for: a tool
# that reaches for libvirt or gpgme without declaring it fails to build
# (mkve-cache links none of libvirt, gpgme and ureq, mkve-bundle no libvirt,
# mkve-net no gpgme).
LINT_ALONE := mkve-cache mkve-bundle mkve-net

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	for p in $(LINT_ALONE); do $(CARGO) clippy --locked -p $$p --all-targets -- -D warnings || exit 1; done
	! $(CARGO) tree --locked -p mkve-cache -e normal | grep -E ' (virt|gpgme|ureq) v'
	# Imports go one way (issue 25): no circle among mkve-core's files, nor
	# among its folders taken as one room each, nor among mkve-web's files.
	./scripts/import-graph --check crates/mkve-core/src
	./scripts/import-graph --check --rooms crates/mkve-core/src
	./scripts/import-graph --check crates/mkve-web/src

man:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN5) $(MAN7) $(MAN8)

# The main job, end to end: build the ntp-server template for lxc, create
# and start a container from it, show that NTP answers, stop and delete it
# (scripts/demo; libvirtd runs privately in a network namespace, and the
# binaries are pointed at this tree). Its release build is the packages'
# (PREFIX=/usr, the build environment of all), which `make deb`, `make rpm`
# and `make install PREFIX=/usr` then find fresh.
demo: deps
	$(MAKE) all PREFIX=/usr
	scripts/demo $(RELEASE) $(DEMO)

check-templates: deps all
	./scripts/check-templates $(RELEASE)

# The fuzzers (fuzz/README.md), one after the other on one core, each for
# FUZZ_SECONDS; the corpora they grow are minimised into fuzz/corpus and
# crashing inputs kept in fuzz/crashes, which `make test` replays. Slow by
# design, so not part of test or CI.
FUZZ_SECONDS ?= 600

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

install: $(addprefix install-,$(TOOLS)) install-data install-man install-ganeti-os

# Shell completions of tool $(1), generated by running $(2) (clap_complete):
# small scripts that ask the tool itself for candidates, so template names
# and machine IDs complete from what is there when TAB is pressed.
define install-completions
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	COMPLETE=bash $(2) >$(DESTDIR)$(BASHCOMPDIR)/$(1)
	COMPLETE=zsh $(2) >$(DESTDIR)$(ZSHCOMPDIR)/_$(1)
	COMPLETE=fish $(2) >$(DESTDIR)$(FISHCOMPDIR)/$(1).fish
endef

# Always through `all`: the default data directory is compiled in from PREFIX.
install-mkve-bundle: all
	install -D -m 0755 $(RELEASE)/mkve-bundle $(DESTDIR)$(BINDIR)/mkve-bundle
	$(call install-completions,mkve-bundle,$(RELEASE)/mkve-bundle)

install-mkve-cache: all
	install -D -m 0755 $(RELEASE)/mkve-cache $(DESTDIR)$(BINDIR)/mkve-cache
	ln -sf mkve-cache $(DESTDIR)$(BINDIR)/hsh-pack
	install -d $(DESTDIR)$(MANDIR)/man1
	ln -sf mkve-cache.1 $(DESTDIR)$(MANDIR)/man1/hsh-pack.1
	$(call install-completions,mkve-cache,$(RELEASE)/mkve-cache)
	$(call install-completions,hsh-pack,$(DESTDIR)$(BINDIR)/hsh-pack)

install-mkve-net: all
	install -D -m 0755 $(RELEASE)/mkve-net $(DESTDIR)$(BINDIR)/mkve-net
	$(call install-completions,mkve-net,$(RELEASE)/mkve-net)

# libvirt's lxc hook mounts a machine's overlay root before a start mkve
# did not ask for (mkve-vm(1), BASES); libvirtd reads hooks as it starts.
install-mkve-vm: all
	install -D -m 0755 $(RELEASE)/mkve-vm $(DESTDIR)$(BINDIR)/mkve-vm
	install -D -m 0755 packaging/libvirt-hook-lxc $(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/lxc.d/mkve
	$(call install-completions,mkve-vm,$(RELEASE)/mkve-vm)

# With its systemd unit (naming the binary where it is installed) and its
# PAM policy.
install-mkve-web: all
	install -D -m 0755 $(RELEASE)/mkve-web $(DESTDIR)$(BINDIR)/mkve-web
	$(call install-completions,mkve-web,$(RELEASE)/mkve-web)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/bin/mkve-web|$(BINDIR)/mkve-web|' packaging/mkve-web.service >$(DESTDIR)$(SYSTEMDUNITDIR)/mkve-web.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/mkve-web.service
	install -D -m 0644 packaging/mkve-web.pam $(DESTDIR)$(SYSCONFDIR)/pam.d/mkve-web

# The OS definition's scripts name mkve-vm where it is installed (Ganeti
# cleans their environment); variants.list and parameters.list are links to
# what mkve-vm ganeti sync writes under /var/lib/mkve/ganeti.
install-ganeti-os:
	install -d $(DESTDIR)$(GANETIOSDIR)/mkve
	for s in create verify import export rename; do \
	    sed 's|/usr/bin/mkve-vm|$(BINDIR)/mkve-vm|' ganeti/os/mkve/$$s >$(DESTDIR)$(GANETIOSDIR)/mkve/$$s && \
	    chmod 0755 $(DESTDIR)$(GANETIOSDIR)/mkve/$$s || exit 1; \
	done
	install -m 0644 ganeti/os/mkve/ganeti_api_version $(DESTDIR)$(GANETIOSDIR)/mkve/
	cp -P ganeti/os/mkve/variants.list ganeti/os/mkve/parameters.list $(DESTDIR)$(GANETIOSDIR)/mkve/

# Hooks are one script under several names: keep the links (cp -P).
install-data:
	install -d $(DESTDIR)$(DATADIR)/hooks $(DESTDIR)$(DATADIR)/templates $(DESTDIR)$(DATADIR)/hypervisors
	cp -P hooks/* $(DESTDIR)$(DATADIR)/hooks/
	cp -RP templates/. $(DESTDIR)$(DATADIR)/templates/
	cp -RP hypervisors/. $(DESTDIR)$(DATADIR)/hypervisors/

install-man:
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man1 $(MAN1)
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man5 $(MAN5)
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man7 $(MAN7)
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man8 $(MAN8)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS)) $(DESTDIR)$(BINDIR)/hsh-pack $(DESTDIR)$(MANDIR)/man1/hsh-pack.1
	rm -f $(addprefix $(DESTDIR)$(BASHCOMPDIR)/,$(TOOLS) hsh-pack)
	rm -f $(addprefix $(DESTDIR)$(ZSHCOMPDIR)/_,$(TOOLS) hsh-pack)
	rm -f $(addprefix $(DESTDIR)$(FISHCOMPDIR)/,$(addsuffix .fish,$(TOOLS) hsh-pack))
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/mkve-web.service $(DESTDIR)$(SYSCONFDIR)/pam.d/mkve-web
	rm -rf $(DESTDIR)$(GANETIOSDIR)/mkve

clean:
	$(CARGO) clean
	rm -rf $(DEMO)

# The seven Debian packages, built as the distribution would build them, and
# lintian on them (errors and warnings fail); they land in target/deb.
# The release build there is reused (--no-pre-clean: debian/rules clean
# would remove it and build it all again, four minutes in CI, for the same
# `cargo build --release --locked` of the same tree).
deb: deps
	dpkg-buildpackage -b -us -uc --no-pre-clean
	rm -rf target/deb && mkdir -p target/deb
	mv ../mkve_$(VERSION)_*.changes ../mkve_$(VERSION)_*.buildinfo ../mkve-*_$(VERSION)_*.deb target/deb/
	lintian --fail-on error,warning target/deb/mkve_$(VERSION)_*.changes
	scripts/check-deb-deps target/deb

# mkve.spec for ALT Linux, parsed and built with Debian's rpm and the few ALT
# macros it uses (packaging/alt-macros); build dependencies are not checked,
# there being no rpm database here. Packages land in target/rpm/RPMS.
rpm: deps
	rpmspec --load packaging/alt-macros -P mkve.spec >/dev/null
	rm -rf target/rpm && mkdir -p target/rpm/SOURCES
	git archive --prefix=mkve-$(VERSION)/ -o target/rpm/SOURCES/mkve-$(VERSION).tar HEAD
	# Built in place (the spec's %build and %install in this tree): cargo
	# finds `make deb`'s release build (the same PREFIX, the same
	# environment: see all) fresh instead of building it again from a copy.
	CARGO_TARGET_DIR=$(CURDIR)/target \
	    rpmbuild --load packaging/alt-macros --build-in-place \
	    --define '_topdir $(CURDIR)/target/rpm' --define 'debug_package %{nil}' --nodeps -bb mkve.spec
