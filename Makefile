# mkve: build, test and install.  GNU make.
#   make                 build the binaries (release)
#   make test            install what tests need, run every test, lint the man pages
#   make demo            build a bundle from the shipped ntp-server template and show it
#   make install         PREFIX=/usr/local DESTDIR= ; install-<tool> for one tool
#   make man             lint the man pages
#   make check-templates build every shipped template for every hypervisor (slow)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share/mkve
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR    ?=

CARGO      ?= cargo
# Rust from rustup, when cargo is not on PATH.
export PATH := $(PATH):$(HOME)/.cargo/bin
# Where the installed binaries look by default ($MKVE_DATADIR etc. still win).
export MKVE_BUILD_DATADIR := $(DATADIR)
export MKVE_BUILD_CONFDIR := $(SYSCONFDIR)/mkve

RELEASE    := target/release
TOOLS      := mkve-bundle mkve-cache mkve-net mkve-vm
MAN1       := man/mkve-bundle.1 man/mkve-cache.1 man/mkve-net.1 man/mkve-vm.1
MAN5       := man/mkve-template.5 man/mkve-bundle.5 man/mkve-bundle-config.5
MAN7       := man/mkve.7
DEMO       ?= target/demo

.PHONY: all deps test man demo check-templates install $(addprefix install-,$(TOOLS)) install-data install-man uninstall clean

all:
	$(CARGO) build --release --locked

deps:
	./scripts/deps

# Unit and integration tests, then the end-to-end run against a real
# libvirtd inside a network namespace of the test's own.
test: deps man
	$(CARGO) test --locked --workspace
	$(CARGO) build --locked --workspace
	tests/e2e-lxc.sh

man:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN5) $(MAN7)

# The main job, end to end: build the ntp-server template for lxc, create
# and start a container from it, show that NTP answers, stop and delete it
# (scripts/demo; libvirtd runs privately in a network namespace).
demo: deps all
	scripts/demo $(RELEASE) $(DEMO)

check-templates: deps all
	./scripts/check-templates $(RELEASE)/mkve-bundle

install: $(addprefix install-,$(TOOLS)) install-data install-man

# Always through `all`: the default data directory is compiled in from PREFIX.
install-mkve-bundle: all
	install -D -m 0755 $(RELEASE)/mkve-bundle $(DESTDIR)$(BINDIR)/mkve-bundle

install-mkve-cache: all
	install -D -m 0755 $(RELEASE)/mkve-cache $(DESTDIR)$(BINDIR)/mkve-cache
	ln -sf mkve-cache $(DESTDIR)$(BINDIR)/hsh-pack
	install -d $(DESTDIR)$(MANDIR)/man1
	ln -sf mkve-cache.1 $(DESTDIR)$(MANDIR)/man1/hsh-pack.1

install-mkve-net: all
	install -D -m 0755 $(RELEASE)/mkve-net $(DESTDIR)$(BINDIR)/mkve-net

install-mkve-vm: all
	install -D -m 0755 $(RELEASE)/mkve-vm $(DESTDIR)$(BINDIR)/mkve-vm

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

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS)) $(DESTDIR)$(BINDIR)/hsh-pack $(DESTDIR)$(MANDIR)/man1/hsh-pack.1
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7)))

clean:
	$(CARGO) clean
	rm -rf $(DEMO)
