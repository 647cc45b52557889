#!/bin/bash
# Issue 4's lxc benchmarks, against a real libvirtd (LXC driver) in a
# network namespace (tests/harness/libvirtd-netns), with a minimal bundle
# (a static busybox as the root):
#  1. N parallel `mkve-vm create` (define only) for N = 10 and N = 100: the
#     cost per machine at 100 against the cost per machine at 10 (goal
#     <= 1.2);
#  2. `mkve-vm create --start` of the same bundle against the bare work:
#     `tar -x` of its root + `virsh define` of the domain XML mkve-vm prints
#     + `virsh net-update` adding its DHCP host entry + `virsh start` (best
#     of three each). The DHCP entry is most of it: libvirt rewrites the
#     network and signals dnsmasq, about 0.26 s here.
# Needs root.
#   bench/vm-parallel.sh [BINDIR]
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
use_bins bench/vm-parallel.sh release "${1:-}"
ns=mkve-bench-lxc
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
chmod 755 "$work"
export MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc MKVE_DATADIR=$top
LIBVIRT_DEFAULT_URI=$("$harness" start "$ns")
export LIBVIRT_DEFAULT_URI
trap '"$harness" stop "$ns"; rm -rf "$work"' EXIT
"$bin/mkve-net" create

root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/etc"
cp /usr/bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"; ln -s ../bin/busybox "$root/sbin/init"
"$bin/mkve-bundle" --no-config -q -H lxc --force-no-sign --rootfs "$root" -o "$work/tiny.bun" \
    "$top/tests/fixtures/templates/good/two-containers" >/dev/null

now() { date +%s.%N; }
ids() { "$bin/mkve-vm" list --json | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'; }
delete_all() { for id in $(ids); do "$bin/mkve-vm" delete "$id"; done; }

per_vm() {
    local n=$1 s
    s=$(now)
    for _ in $(seq "$n"); do "$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" >/dev/null & done
    wait
    echo "($(now) - $s) / $n" | bc -l
}

p10=$(per_vm 10); delete_all
p100=$(per_vm 100); made=$(ids | wc -w); delete_all
printf 'parallel creates: %.3f s per machine at 10, %.3f s at 100 (%d made): ratio %.2f\n' \
    "$p10" "$p100" "$made" "$(echo "$p100 / $p10" | bc -l)"

best=; best_ref=
dhcp="<host mac='52:54:00:6d:00:c8' ip='192.0.2.200'/>"
for i in 1 2 3; do
    s=$(now)
    id=$("$bin/mkve-vm" -q create --allow-unsigned --start "$work/tiny.bun")
    t=$(echo "$(now) - $s" | bc)
    "$bin/mkve-vm" --quiet create --allow-unsigned --print-xml --id 200 "$work/tiny.bun" \
        | sed "s|$MKVE_STATEDIR/vms/200/rootfs|$work/ref/rootfs|; s|<name>[^<]*</name>|<name>ref-$i</name>|" \
        >"$work/ref.xml"
    "$bin/mkve-vm" delete "$id"
    rm -rf "$work/ref"; mkdir -p "$work/ref/rootfs"
    s=$(now)
    tar -xOf "$work/tiny.bun" rootfs.tar.zst | zstd -q -d | tar -x -C "$work/ref/rootfs"
    virsh -q define "$work/ref.xml" >/dev/null
    virsh -q net-update mkve-network add ip-dhcp-host "$dhcp" --live --config >/dev/null
    virsh -q start "ref-$i" >/dev/null
    r=$(echo "$(now) - $s" | bc)
    virsh -q destroy "ref-$i" >/dev/null; virsh -q undefine "ref-$i" >/dev/null
    virsh -q net-update mkve-network delete ip-dhcp-host "$dhcp" --live --config >/dev/null
    [ -z "$best" ] || (( $(echo "$t < $best" | bc) )) || t=$best; best=$t
    [ -z "$best_ref" ] || (( $(echo "$r < $best_ref" | bc) )) || r=$best_ref; best_ref=$r
done
printf 'lxc create --start: mkve-vm %.2f s, tar + virsh define + net-update + start %.2f s: ratio %.2f\n' \
    "$best" "$best_ref" "$(echo "$best / $best_ref" | bc -l)"
