#!/bin/bash
# Issue 12's boot-to-service benchmark: how long a qemu guest (TCG here)
# takes from `mkve-vm start` to its service's first answer, with what mkve
# ships against Debian's defaults. The ntp-server template is built for
# qemu twice from the same packages: as shipped (04-initramfs-virtio: an
# initramfs of the virtio disk's modules) and without that hook (Debian's
# MODULES=most initramfs). Three ways to boot are timed: the reference
# (Debian's initramfs, the kernel command line without `quiet`, as mkve
# booted before), the small initramfs alone, and all that mkve ships (small
# initramfs and `quiet`). Each is started ROUNDS times (default 3; the
# first boot of a machine also does its first-boot work, so it is shown
# apart) and timed from `mkve-vm start` to the first NTP answer, from
# inside a private libvirtd's network namespace
# (tests/harness/libvirtd-netns). Needs root and a Debian mirror (or a warm
# layer cache); about 15 minutes.
#   bench/qemu-boot.sh [BINDIR]       (default: the debug build, tests/harness/lib.sh)
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
use_bins bench/qemu-boot.sh debug "${1:-}"
rounds=${ROUNDS:-4}
ns=mkve-bench-boot
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
chmod 755 "$work"
export MKVE_DATADIR=$top MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc
export MKVE_CACHEDIR=${MKVE_CACHEDIR:-${CARGO_TARGET_DIR:-$top/target}/tmp/mkve-layer-cache} SOURCE_DATE_EPOCH=1700000000
"$harness" start "$ns" >/dev/null
trap '"$harness" stop "$ns"; rm -rf "$work"' EXIT
uri=$("$harness" uri "$ns" qemu)
export LIBVIRT_DEFAULT_URI=$uri
"$bin/mkve-net" create

# The reference: the same template without the hook.
cp -a "$top/templates/ntp-server" "$work/ntp-default"
sed -i '/^04-initramfs-virtio$/d' "$work/ntp-default/hooks-lists/qemu"
grep -qx 04-initramfs-virtio "$top/templates/ntp-server/hooks-lists/qemu" ||
    { echo "bench: ntp-server's qemu list has no 04-initramfs-virtio" >&2; exit 1; }

now() { date +%s.%N; }
declare -A initrd first later
# boot VARIANT ID: ROUNDS timed boots of machine ID.
boot() {
    local variant=$1 id=$2 sum=0 r s e
    for r in $(seq "$rounds"); do
        s=$(now)
        "$bin/mkve-vm" start "$id"
        "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 600 0.2 >/dev/null
        e=$(echo "$(now) - $s" | bc)
        echo "$variant boot $r: $e s" >&2
        if [ "$r" = 1 ]; then first[$variant]=$e; else sum=$(echo "$sum + $e" | bc); fi
        "$bin/mkve-vm" stop --force "$id"
    done
    if [ "$rounds" -gt 1 ]; then later[$variant]=$(echo "scale=1; $sum / ($rounds - 1)" | bc); else later[$variant]=-; fi
}
# not_quiet ID: the machine's kernel command line as mkve wrote it before.
not_quiet() {
    virsh dumpxml "$1" | sed 's| quiet</cmdline>|</cmdline>|' >"$work/dom.xml"
    virsh -q define "$work/dom.xml" >/dev/null
}
for t in shipped default; do
    dir=$top/templates/ntp-server
    [ "$t" = default ] && dir=$work/ntp-default
    "$bin/mkve-bundle" --no-config -q -H qemu --force-no-sign -o "$work/$t.bun" "$dir" >/dev/null
    id=$("$bin/mkve-vm" -q create --allow-unsigned "$work/$t.bun")
    size=$(stat -c %s "$MKVE_STATEDIR/vms/$id/initrd.img")
    name=$("$bin/mkve-vm" info --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')
    if [ "$t" = shipped ]; then
        initrd[shipped]=$size; boot shipped "$id"
        initrd[small-initramfs]=$size; not_quiet "$name"; boot small-initramfs "$id"
    else
        initrd[reference]=$size; not_quiet "$name"; boot reference "$id"
    fi
    "$bin/mkve-vm" -q delete "$id"
done
printf '%-40s %10s %14s %16s\n' "boot (ntp-server, qemu TCG)" "initrd MB" "first boot s" "later boots s"
for v in reference small-initramfs shipped; do
    printf '%-40s %10.1f %14.1f %16s\n' "$v" "$(echo "${initrd[$v]} / 1048576" | bc -l)" "${first[$v]}" "${later[$v]}"
done
echo "shipped/reference: first boot $(echo "scale=2; ${first[shipped]} / ${first[reference]}" | bc)x," \
    "later boots $(echo "scale=2; ${later[shipped]} / ${later[reference]}" | bc)x"
