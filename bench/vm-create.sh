#!/bin/bash
# Issue 4's create benchmark: bundle → defined qemu domain with mkve-vm
# (verify signature and digests, unpack, kernel out of /boot, mkfs.ext4 -d,
# ID, define, DHCP entry) against the bare work on the same bundle:
# `tar -xOf B rootfs.tar.zst | zstd -d | tar -x` then `mkfs.ext4 -d` on an
# image of the same size. Best of three each. Uses a private libvirtd in a
# network namespace (tests/harness/libvirtd-netns). Needs root.
#   bench/vm-create.sh BUNDLE [BINDIR]
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
bundle=$(realpath "${1:?a qemu bundle (mkve-bundle -H qemu ...)}")
use_bins bench/vm-create.sh release "${2:-}"
ns=mkve-bench
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
chmod 755 "$work"
export MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc
"$harness" start "$ns" >/dev/null
trap '"$harness" stop "$ns"; rm -rf "$work"' EXIT
uri=$("$harness" uri "$ns" qemu)
"$bin/mkve-net" -c "$uri" create

now() { date +%s.%N; }
best=; best_ref=
for i in 1 2 3; do
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    s=$(now)
    id=$("$bin/mkve-vm" -q -c "$uri" create --allow-unsigned "$bundle")
    t=$(echo "$(now) - $s" | bc)
    size=$(stat -c %s "$MKVE_STATEDIR/vms/$id/disk.img")
    "$bin/mkve-vm" -c "$uri" delete "$id"
    [ -z "$best" ] || (( $(echo "$t < $best" | bc) )) || t=$best; best=$t

    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    rm -rf "$work/ref" && mkdir -p "$work/ref/root"
    s=$(now)
    tar -xOf "$bundle" rootfs.tar.zst | zstd -q -d | tar -x -C "$work/ref/root"
    truncate -s "$size" "$work/ref/disk.img"
    mkfs.ext4 -q -F -d "$work/ref/root" "$work/ref/disk.img"
    r=$(echo "$(now) - $s" | bc)
    [ -z "$best_ref" ] || (( $(echo "$r < $best_ref" | bc) )) || r=$best_ref; best_ref=$r
done
printf '%-52s %6.1f s\n' "mkve-vm create (qemu, define only), best of 3" "$best" \
    "zstd -d | tar -x + mkfs.ext4 -d, best of 3" "$best_ref"
echo "ratio: $(echo "scale=2; $best / $best_ref" | bc)x   (goal <= 1.5)"
