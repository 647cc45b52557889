# mkve: build, test and install.  GNU make.
#   make                 build the binaries (release)
#   make test            install what tests need, run every test, lint the man pages
#   make demo            build a bundle from the shipped ntp-server template and show it
#   make install         PREFIX=/usr/local DESTDIR= ; install-<tool> for one tool
#   make man             lint the man pages

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
TOOLS      := mkve-bundle
MAN1       := man/mkve-bundle.1
MAN5       := man/mkve-template.5 man/mkve-bundle.5 man/mkve-bundle-config.5
DEMO       ?= target/demo

.PHONY: all deps test man demo install $(addprefix install-,$(TOOLS)) install-data install-man uninstall clean

all:
	$(CARGO) build --release --locked

deps:
	./scripts/deps

test: deps man
	$(CARGO) test --locked --workspace

man:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN5)

# The main job, end to end: a Debian 12 root with the template's packages
# (mmdebstrap), the template's hooks run in it, a bundle, and its metadata.
demo: deps all
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	mmdebstrap --quiet --variant=minbase \
	  --include="$$(grep -v '^#' templates/ntp-server/packages-lists/lxc | paste -sd,)" \
	  bookworm $(DEMO)/root.tar.zst
	$(RELEASE)/mkve-bundle --no-config --check --hooks hooks templates/ntp-server
	SOURCE_DATE_EPOCH=$$(date +%s) $(RELEASE)/mkve-bundle --no-config --hooks hooks \
	  -H lxc --rootfs $(DEMO)/root.tar.zst --force-no-sign -o $(DEMO)/ntp-server-lxc.bun templates/ntp-server
	$(RELEASE)/mkve-bundle --verify $(DEMO)/ntp-server-lxc.bun --allow-unsigned
	$(RELEASE)/mkve-bundle --info $(DEMO)/ntp-server-lxc.bun | head -n 40

install: $(addprefix install-,$(TOOLS)) install-data install-man

install-mkve-bundle:
	test -x $(RELEASE)/mkve-bundle || $(MAKE) all
	install -D -m 0755 $(RELEASE)/mkve-bundle $(DESTDIR)$(BINDIR)/mkve-bundle

install-data:
	install -d $(DESTDIR)$(DATADIR)/hooks $(DESTDIR)$(DATADIR)/templates
	install -m 0755 hooks/* $(DESTDIR)$(DATADIR)/hooks/
	cp -R templates/. $(DESTDIR)$(DATADIR)/templates/

install-man:
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man1 $(MAN1)
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man5 $(MAN5)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS))
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))

clean:
	$(CARGO) clean
	rm -rf $(DEMO)
