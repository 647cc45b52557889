#!/bin/bash
# Issue 22, item 6: what a machine changed against its base, read through
# its qcow2 chain (mkve_core::image: qemu-storage-daemon's FUSE export in a
# mount namespace of its own, ext4 read by mkve, debugfs writing).
#   bench/image-diff.sh ROOT [WORK]
# ROOT: a Debian root directory (a layer of mkve-cache's cache, say); the
# base is made from it as a create makes one (mkfs.ext4 -d), a machine's
# overlay on it, and a realistic change written in through the image API:
# 1,000 mails of 2 KiB in /home/admin/Maildir/new and one configuration
# file edited. Then the diff of the overlay against the base, best of
# three, against reading the whole chain once (qemu-img convert to raw).
# Needs root (the FUSE export's namespace).
set -euo pipefail
root=${1:?usage: bench/image-diff.sh ROOT [WORK]}
top=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-${CARGO_TARGET_DIR:-$top/target}/tmp/image-diff}
bin=${CARGO_TARGET_DIR:-$top/target}/release/examples/image_diff
[ -x "$bin" ] || { echo "bench/image-diff.sh: build it first: cargo build --release -p mkve-core --example image_diff" >&2; exit 69; }
rm -rf "$work" && mkdir -p "$work"
used=$(du -sb --apparent-size "$root" | cut -f1)
size=$(( (used + used / 10 + (64 << 20) + (1 << 20) - 1) / (1 << 20) ))
t0=$(date +%s.%N)
truncate -s "${size}M" "$work/base.img"
mkfs.ext4 -q -F -L mkve-root -d "$root" "$work/base.img"
t1=$(date +%s.%N)
qemu-img create -q -f qcow2 -F raw -b "$work/base.img" "$work/disk.qcow2" 2G
files=$(find "$root" -xdev | wc -l)
mkdir -p "$work/change/home/admin/Maildir/new" "$work/change/etc"
for i in $(seq 1 1000); do
    head -c 2048 /dev/urandom | base64 > "$work/change/home/admin/Maildir/new/$i.mkve:2,"
done
conf=$(cd "$root" && find etc -maxdepth 2 -type f -name '*.conf' | sort | head -n 1)
mkdir -p "$work/change/$(dirname "$conf")"
cp -p "$root/$conf" "$work/change/$conf"
echo "# edited by bench/image-diff.sh" >> "$work/change/$conf"
echo "root: $root, $((used >> 20)) MiB in $files files; base image ${size} MiB made in $(echo "$t1 - $t0" | bc) s"
"$bin" write "$work/disk.qcow2" "$work/change"
for _ in 1 2 3; do "$bin" diff "$work/disk.qcow2" "$work/base.img"; done
t0=$(date +%s.%N)
qemu-img convert -O raw "$work/disk.qcow2" "$work/full.raw"
t1=$(date +%s.%N)
echo "reference: the whole chain read once (qemu-img convert to raw): $(echo "$t1 - $t0" | bc) s"
rm -rf "$work"
