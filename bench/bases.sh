#!/bin/bash
# Issue 13's figures: machines on a base (mkve-vm(1), BASES) against
# private copies (--no-base) and against the bare work, in one run, in a
# private libvirtd (tests/harness/libvirtd-netns). Define only: nothing is
# started. Needs root.
#   bench/bases.sh QEMU_BUNDLE LXC_BUNDLE [BINDIR]
#
# - qemu, first create (makes the base) against `tar -xOf B rootfs.tar.zst
#   | zstd -d | tar -x` + `mkfs.ext4 -d` of the same root (the bare work of
#   a private disk), page cache dropped before each;
# - qemu, later creates on the base (best of 3) against the first, and the
#   disk each new machine takes before it boots;
# - N qemu machines from one bundle (N=100 by default) on the base: time
#   and total disk; and NOBASE (10) with --no-base, with their figures
#   scaled to N (a private disk is ~1 GB: 100 of them would not fit here);
# - lxc: the second create and its disk, on a base and with --no-base.
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
qbundle=$(realpath "${1:?a qemu bundle (mkve-bundle -H qemu ntp-server)}")
lbundle=$(realpath "${2:?an lxc bundle (mkve-bundle -H lxc ntp-server)}")
use_bins bench/bases.sh release "${3:-}"
n=${N:-100}
nobase=${NOBASE:-10}
ns=mkve-bench-bases
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
chmod 755 "$work"
export MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc
"$harness" start "$ns" >/dev/null
cleanup() {
    delete_all "$quri" >/dev/null 2>&1 || true
    delete_all "$luri" >/dev/null 2>&1 || true
    "$harness" stop "$ns"
    rm -rf "$work"
}
trap cleanup EXIT
quri=$("$harness" uri "$ns" qemu)
luri=$("$harness" uri "$ns")
"$bin/mkve-net" -c "$quri" create >/dev/null

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
kib() { du -skx "$@" | awk '{s += $1} END {print s}'; }
min() { printf '%s\n' "$@" | sort -g | head -1; }
create() { "$bin/mkve-vm" -q -c "$1" create --allow-unsigned "${@:2}"; }
row() { printf '%-58s %10s %s\n' "$@"; }

ids() { "$bin/mkve-vm" -c "$1" list --json | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'; }
delete_all() { for id in $(ids "$1"); do "$bin/mkve-vm" -q -c "$1" delete "$id"; done; }
# Deleting frees blocks the file system discards for a while after: let
# that pass before the next timed run (it slows file creation by up to 5x).
settle() { sync; sleep 20; }

# --- qemu: the first create, and the bare work, best of 3 each ------------
# Interleaved; each first create makes the base anew (the last delete
# removes it).
fs=(); rs=()
for i in 1 2 3; do
    delete_all "$quri"; settle
    cold; s=$(now); first=$(create "$quri" "$qbundle"); fs+=("$(since "$s")")
    base_kib=$(kib "$MKVE_STATEDIR"/bases/*)
    size=$(stat -c %s "$MKVE_STATEDIR"/bases/*/disk.img)
    rm -rf "$work/ref"; settle
    cold; s=$(now)
    mkdir -p "$work/ref/root"
    tar -xOf "$qbundle" rootfs.tar.zst | zstd -q -d | tar -x -C "$work/ref/root"
    truncate -s "$size" "$work/ref/disk.img"
    mkfs.ext4 -q -F -d "$work/ref/root" "$work/ref/disk.img"
    rs+=("$(since "$s")")
done
t_first=$(min "${fs[@]}"); t_ref=$(min "${rs[@]}")
rm -rf "$work/ref"; settle

# --- qemu: later creates --------------------------------------------------
later=()
for i in 1 2 3; do
    s=$(now); id=$(create "$quri" "$qbundle"); later+=("$(since "$s")")
    new_kib=$(kib "$MKVE_STATEDIR/vms/$id")
done
t_later=$(min "${later[@]}")

# --- qemu: N machines on the base, NOBASE private ones --------------------
for id in $(ids "$quri"); do
    [ "$id" = "$first" ] || "$bin/mkve-vm" -q -c "$quri" delete "$id"
done
settle
s=$(now)
for i in $(seq $((n - 1))); do create "$quri" "$qbundle" >/dev/null; done
t_many=$(echo "$(since "$s") + $t_first" | bc)
kib_many=$(kib "$MKVE_STATEDIR")
delete_all "$quri"; settle
before=$(kib "$MKVE_STATEDIR")
s=$(now)
for i in $(seq "$nobase"); do create "$quri" --no-base "$qbundle" >/dev/null; done
t_private=$(since "$s")
kib_private=$(( $(kib "$MKVE_STATEDIR") - before ))
delete_all "$quri"; settle

# --- lxc: second creates, on a base and private ---------------------------
l1=$(create "$luri" "$lbundle")
lb=(); lp=()
for i in 1 2 3; do
    s=$(now); id=$(create "$luri" "$lbundle"); lb+=("$(since "$s")"); lb_kib=$(kib "$MKVE_STATEDIR/vms/$id")
    s=$(now); id=$(create "$luri" --no-base "$lbundle"); lp+=("$(since "$s")"); lp_kib=$(kib "$MKVE_STATEDIR/vms/$id")
done

mib() { echo "scale=1; $1 / 1024" | bc; }
echo
row "qemu: first create, makes the base ($(mib "$base_kib") MiB), best of 3" "$t_first s"
row "  zstd -d | tar -x + mkfs.ext4 -d of the same root, best of 3" "$t_ref s" "ratio $(echo "scale=2; $t_first / $t_ref" | bc)x (goal <= 1.5)"
row "qemu: later create on the base, best of 3" "$t_later s" "ratio $(echo "scale=3; $t_later / $t_first" | bc)x of the first (goal <= 0.1)"
row "  new disk per machine before it boots" "$(mib "$new_kib") MiB" "(goal <= 10)"
row "qemu: $n machines on one base: time" "$t_many s"
row "  disk (base + machines)" "$(mib "$kib_many") MiB"
row "qemu: $nobase machines with --no-base: time" "$t_private s" "x$((n / nobase)) = $(echo "$t_private * $n / $nobase" | bc) s for $n"
row "  disk" "$(mib "$kib_private") MiB" "x$((n / nobase)) = $(mib $((kib_private * n / nobase))) MiB for $n"
row "lxc: second create on a base, best of 3" "$(min "${lb[@]}") s" "disk $(mib "$lb_kib") MiB"
row "lxc: second create, --no-base, best of 3" "$(min "${lp[@]}") s" "disk $(mib "$lp_kib") MiB"
