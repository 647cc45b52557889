# Sourced by every script that runs mkve's binaries: the suites
# (tests/*.sh), scripts/demo, scripts/check-templates and bench/*.sh.
# Where this tree is, where the binaries are (said once, here), and the
# check the suites count with.
#
#   . "$(dirname "$0")/../tests/harness/lib.sh"
#   use_bins NAME debug|release [DIR]

# This tree, and the private libvirtd the suites start (libvirtd-netns).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
harness=$top/tests/harness/libvirtd-netns

# use_bins WHO PROFILE [DIR]: where mkve's binaries are, in $bin (an
# absolute path) and exported as MKVE_BINDIR, which libvirtd-netns writes
# into libvirt's lxc hook and the service checks read. The directory is
# DIR when given (a script's BINDIR argument), else $MKVE_BINDIR, else
# cargo's PROFILE directory (debug or release) under $CARGO_TARGET_DIR
# (default: target/ of this tree). Nothing is taken from PATH or from a
# build that another target happened to leave: every tool must be in that
# directory, or the script ends here (69) naming the missing one and how
# to build it.
use_bins() {
    local who=$1 profile=$2 dir=${3:-${MKVE_BINDIR:-}} tool build
    [ -n "$dir" ] || dir=${CARGO_TARGET_DIR:-$top/target}/$profile
    case $profile in
        release) build="cargo build --release --workspace, or make" ;;
        *) build="cargo build --workspace" ;;
    esac
    for tool in mkve-bundle mkve-cache mkve-net mkve-vm mkve-web; do
        if [ ! -x "$dir/$tool" ]; then
            echo "$who: $dir/$tool is not built ($build), or set MKVE_BINDIR to the directory of mkve's binaries" >&2
            exit 69
        fi
    done
    bin=$(cd "$dir" && pwd)
    export MKVE_BINDIR=$bin
}

# check WHAT COMMAND...: run COMMAND; "ok - WHAT" and one more passed, or
# "FAIL - WHAT" and one more failed; each line ends with the seconds since
# the suite began ("# at 73 s"), so that a log tells where the time goes.
check() {
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $what  # at $SECONDS s"
    else failed=$((failed + 1)); echo "FAIL - $what  # at $SECONDS s"; fi
}

# The IDs of mkve's machines on the node, on one line.
machines() { "$bin/mkve-vm" list --json | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'; }
# How many DHCP entries the mkve network has.
hosts() { "$bin/mkve-net" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))'; }

# suite_work NAME [--bare]: the suite's work directory, in $work:
# /var/tmp/mkve-NAME.XXXXXX, mode 755 (qemu runs as its own user and must
# reach the disks below). mkve's directories in it are exported
# (MKVE_CONFDIR, MKVE_STATEDIR, MKVE_LOCKDIR; with --bare, none: a suite of
# several nodes gives each its own), with MKVE_DATADIR this tree and
# SOURCE_DATE_EPOCH fixed. The suite's cleanup removes it.
suite_work() {
    work=$(mktemp -d "/var/tmp/mkve-$1.XXXXXX") || exit 1
    chmod 755 "$work"
    export MKVE_DATADIR=$top SOURCE_DATE_EPOCH=1700000000
    if [ "${2:-}" != --bare ]; then
        export MKVE_CONFDIR=$work/etc MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock
    fi
}

# start_node NS: the private libvirtd (libvirtd-netns) in the network
# namespace NS, for mkve's directories as exported; its lxc URI exported as
# LIBVIRT_DEFAULT_URI. A daemon that does not come up ends the suite (69).
start_node() {
    LIBVIRT_DEFAULT_URI=$("$harness" start "$1") || exit 69
    export LIBVIRT_DEFAULT_URI
}

# one_node NAME NS: the prologue of a suite of one node (e2e-lxc, keep,
# upgrade, pack): its work directory (suite_work NAME), the tree's package
# layer cache (MKVE_CACHEDIR, unless set), passed=0 failed=0, the private
# libvirtd in the network namespace NS (start_node; its qemu URI in $qemu)
# and the mkve network in it. On exit, however the suite ends
# (one_node_cleanup): what runs ahead is stopped, the suite's own
# `suite_cleanup` runs when it defines one, every machine on the node's
# lxc and qemu URIs is deleted, then the network, the node, GnuPG's agents
# of $GNUPGHOME and the work directory go.
one_node() {
    ns=$2
    suite_work "$1"
    export MKVE_CACHEDIR=${MKVE_CACHEDIR:-${CARGO_TARGET_DIR:-$top/target}/tmp/mkve-layer-cache}
    passed=0 failed=0
    trap one_node_cleanup EXIT
    start_node "$ns"
    qemu=$("$harness" uri "$ns" qemu) || exit 69
    "$bin/mkve-net" create || exit 1
}
one_node_cleanup() {
    local uri id
    stop_ahead
    if declare -F suite_cleanup >/dev/null; then suite_cleanup; fi
    for uri in "${LIBVIRT_DEFAULT_URI:-}" "${qemu:-}"; do
        [ -n "$uri" ] || continue
        for id in $("$bin/mkve-vm" -c "$uri" list --json 2>/dev/null |
            python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))' 2>/dev/null); do
            "$bin/mkve-vm" -c "$uri" delete "$id" >/dev/null 2>&1
        done
    done
    "$bin/mkve-net" delete --force >/dev/null 2>&1
    "$harness" stop "$ns"
    [ -z "${GNUPGHOME:-}" ] || drop_key
    rm -rf "$work"
}

# ntp ID SECONDS: NTP answers at 192.0.2.ID, asked from inside the suite's
# namespace $ns, within SECONDS.
ntp() { "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$1" "$2"; }

# refuses CODE WORDS COMMAND...: COMMAND exits CODE and says WORDS on
# stderr (else what it said is printed, and false).
refuses() {
    local code=$1 words=$2 rc; shift 2
    "$@" >/dev/null 2>"$work/err"
    rc=$?
    [ "$rc" = "$code" ] && grep -q -- "$words" "$work/err" ||
        { echo "exit $rc: $(cat "$work/err")" >&2; return 1; }
}

# busybox_root DIR [APPLET...]: a tiny root a container boots: the static
# busybox as /bin/busybox, /bin/sh and /sbin/init, /etc, and a link in
# /bin for each APPLET.
busybox_root() {
    local dir=$1 a; shift
    mkdir -p "$dir/bin" "$dir/sbin" "$dir/etc"
    cp /usr/bin/busybox "$dir/bin/busybox"
    for a in sh "$@"; do ln -sf busybox "$dir/bin/$a"; done
    ln -sf ../bin/busybox "$dir/sbin/init"
}

# udhcpc_script DIR: busybox udhcpc's event script in DIR's root
# (/usr/share/udhcpc/default.script): a lease's address (the server's mask,
# /16 without one) on the interface, its router as the default route. The
# busybox guests' /etc/rc runs udhcpc with it.
udhcpc_script() {
    mkdir -p "$1/usr/share/udhcpc"
    cat >"$1/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-16}" dev "$interface"
             [ -n "$router" ] && ip route replace default via "${router%% *}" ;;
esac
EOF
    chmod 755 "$1/usr/share/udhcpc/default.script"
}

# busybox_initramfs DIR MODDIR OUT MODULE...: DIR, a busybox root (changed
# in place), packed into OUT as an initramfs (newc cpio, gzip -1): each
# MODULE's .ko found under MODDIR (an xz or zstd one decompressed) put in
# DIR/lib/modules, and an /init that mounts /proc, /sys and /dev, loads the
# modules in the order given and runs /sbin/init. Fails naming a module
# MODDIR lacks. (The busybox guests of nodes.sh and nested.sh.)
busybox_initramfs() {
    local dir=$1 moddir=$2 out=$3 m f; shift 3
    mkdir -p "$dir/lib/modules" "$dir/proc" "$dir/sys" "$dir/dev"
    for m in "$@"; do
        f=$(find "$moddir" -name "$m.ko*" | head -1)
        [ -n "$f" ] || { echo "busybox_initramfs: no module $m under $moddir" >&2; return 1; }
        case $f in
        *.xz) xz -dc "$f" >"$dir/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$dir/lib/modules/$m.ko" ;;
        *) cp "$f" "$dir/lib/modules/$m.ko" ;;
        esac || return 1
    done
    cat >"$dir/init" <<EOF
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $*; do /bin/busybox insmod /lib/modules/\$m.ko 2>/dev/null; done
exec /sbin/init
EOF
    chmod 755 "$dir/init"
    (cd "$dir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out"
}

# tiny_bundle ROOT OUT [MKVE-BUNDLE OPTION...]: an lxc bundle of ROOT made
# with the fixture template two-containers (no hooks); signed with
# GnuPG's default key unless an option says otherwise (--force-no-sign).
tiny_bundle() {
    local root=$1 out=$2; shift 2
    "$bin/mkve-bundle" --no-config -q -H lxc "$@" --rootfs "$root" -o "$out" \
        "$top/tests/fixtures/templates/good/two-containers" >/dev/null
}

# ahead NAME COMMAND...: run COMMAND in the background, its output in
# $work/NAME.log, so that a build the suite needs later runs while the
# suite waits on machines; `awaited NAME` waits for it and is true if it
# succeeded (else it prints the log). stop_ahead, in a suite's cleanup,
# ends what is still running. COMMAND runs at the lowest CPU and I/O
# priority (nice 19, ionice idle): the machines the suite is checking, and
# the daemons that run them, come first. Its exit status is kept in
# $work/NAME.rc: a suite's own bare `wait` may reap it first.
declare -A ahead_pids=()
ahead() {
    local name=$1; shift
    rm -f "$work/$name.rc"
    (
        nice -n 19 ionice -c 3 "$@" >"$work/$name.log" 2>&1
        echo $? >"$work/$name.rc"
    ) &
    ahead_pids[$name]=$!
}
awaited() {
    local pid=${ahead_pids[$1]:-}
    [ -n "$pid" ] || { echo "awaited: nothing named $1 was started" >&2; return 1; }
    unset "ahead_pids[$1]"
    wait "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    [ "$(cat "$work/$1.rc" 2>/dev/null)" = 0 ] && return 0
    echo "awaited: $1 failed ($(cat "$work/$1.rc" 2>/dev/null || echo killed)):" >&2
    cat "$work/$1.log" >&2
    return 1
}
stop_ahead() {
    local pid
    for pid in "${ahead_pids[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    ahead_pids=()
    return 0
}

# throwaway_key NAME [KEYRING]: a GnuPG home of the script's own in
# $work/gnupg (GNUPGHOME), with a passphrase-less ed25519 signing key for
# "mkve NAME test"; its public half written to KEYRING (default: the
# node's, $MKVE_CONFDIR/trusted.gpg). drop_key stops its agents.
throwaway_key() {
    export GNUPGHOME=$work/gnupg
    mkdir -m 700 "$GNUPGHOME" || return 1
    gpg --batch --quiet --passphrase '' --quick-gen-key "mkve $1 test <$1@example.invalid>" \
        ed25519 sign never 2>/dev/null || return 1
    local ring=${2:-$MKVE_CONFDIR/trusted.gpg}
    mkdir -p "${ring%/*}"
    gpg --batch --quiet --export >"$ring"
}
drop_key() {
    gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null
    gpgconf --homedir "$GNUPGHOME" --remove-socketdir 2>/dev/null
    return 0
}
