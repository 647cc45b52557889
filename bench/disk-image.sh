#!/bin/bash
# How mkve-vm should turn a root directory into a qemu disk image, by root
# size: `mkfs.ext4 -d ROOT` (no mount) against `mkfs.ext4` + loop mount +
# `cp -a` + umount, on the same image size, page cache dropped before each
# run, best of two. Prints one line per root: files, MB, both times, ratio.
# Needs root (loop devices).
#   bench/disk-image.sh ROOT...
set -euo pipefail
work=$(mktemp -d /var/tmp/mkve-disk-bench.XXXXXX)
trap 'mountpoint -q "$work/mnt" && umount "$work/mnt"; rm -rf "$work"' EXIT
mkdir "$work/mnt"
now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
best() { printf '%s\n' "$@" | sort -n | head -1; }

printf '%-40s %8s %8s %10s %10s %7s\n' root files MB mkfs-d/s loop-cp/s ratio
for root in "$@"; do
    files=$(find "$root" | wc -l)
    kb=$(du -sk "$root" | cut -f1)
    size=$(( (kb * 3 / 2 + 512 * 1024) * 1024 ))
    a=() b=()
    for _ in 1 2; do
        rm -f "$work/img"; truncate -s "$size" "$work/img"; drop
        s=$(now); mkfs.ext4 -q -F -d "$root" "$work/img"; a+=("$(echo "$(now) - $s" | bc)")
        rm -f "$work/img"; truncate -s "$size" "$work/img"; drop
        s=$(now)
        mkfs.ext4 -q -F "$work/img"
        mount -o loop "$work/img" "$work/mnt"
        cp -a "$root/." "$work/mnt/"
        umount "$work/mnt"
        b+=("$(echo "$(now) - $s" | bc)")
    done
    ta=$(best "${a[@]}") tb=$(best "${b[@]}")
    printf '%-40s %8d %8d %10.1f %10.1f %7.2f\n' "$(basename "$root")" "$files" $((kb / 1024)) \
        "$ta" "$tb" "$(echo "$ta / $tb" | bc -l)"
done
