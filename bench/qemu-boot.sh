#!/bin/bash
# Issue 12's boot-to-service benchmark: how long a qemu guest (TCG here)
# takes from `mkve-vm start` to its service's first answer, with what mkve
# ships against Debian's defaults. The ntp-server template is built for
# qemu twice from the same packages: as shipped (04-initramfs-virtio: an
# initramfs of the virtio disk's modules) and without that hook (Debian's
# MODULES=most initramfs, the reference). Each machine is started ROUNDS
# times (default 2; the first boot of each also makes its machine-id and
# SSH-less first-boot state, so rounds after the first are shown apart)
# and timed to the first NTP answer, from inside a private libvirtd's
# network namespace (tests/harness/libvirtd-netns). Needs root and a
# Debian mirror (or a warm layer cache); about 15 minutes.
#   bench/qemu-boot.sh [BINDIR]       (default target/debug)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/target/debug}
rounds=${ROUNDS:-2}
harness=$top/tests/harness/libvirtd-netns
ns=mkve-bench-boot
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
chmod 755 "$work"
export MKVE_DATADIR=$top MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc
export MKVE_CACHEDIR=${MKVE_CACHEDIR:-$top/target/tmp/mkve-layer-cache} SOURCE_DATE_EPOCH=1700000000
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
for variant in shipped default; do
    t=$top/templates/ntp-server
    [ "$variant" = default ] && t=$work/ntp-default
    "$bin/mkve-bundle" --no-config -q -H qemu --force-no-sign -o "$work/$variant.bun" "$t"
    id=$("$bin/mkve-vm" -q create --allow-unsigned "$work/$variant.bun")
    initrd[$variant]=$(stat -c %s "$MKVE_STATEDIR/vms/$id/initrd.img")
    sum=0
    for r in $(seq "$rounds"); do
        s=$(now)
        "$bin/mkve-vm" start "$id"
        "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 600 >/dev/null
        e=$(echo "$(now) - $s" | bc)
        echo "$variant boot $r: $e s" >&2
        if [ "$r" = 1 ]; then first[$variant]=$e; else sum=$(echo "$sum + $e" | bc); fi
        "$bin/mkve-vm" stop --force "$id"
    done
    [ "$rounds" -gt 1 ] && later[$variant]=$(echo "scale=1; $sum / ($rounds - 1)" | bc) || later[$variant]=-
    "$bin/mkve-vm" -q delete "$id"
done
printf '%-34s %10s %14s %16s\n' variant "initrd MB" "first boot s" "later boots s"
for v in shipped default; do
    printf '%-34s %10.1f %14.1f %16s\n' "$v" "$(echo "${initrd[$v]} / 1048576" | bc -l)" "${first[$v]}" "${later[$v]}"
done
echo "ratio shipped/default, first boot: $(echo "scale=2; ${first[shipped]} / ${first[default]}" | bc)x"
