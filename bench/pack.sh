#!/bin/bash
# Issue 24's figure: `mkve-vm pack` of a stopped lxc machine (its merged
# root seen through an overlay of its own, the seed taken out, the default
# scrub, the search for private keys, the SBOM, deterministic tar and
# multi-threaded zstd, an unsigned bundle) against what `incus publish`
# does (`tar | gzip` of the merged root, no scrub) and `tar | zstd -T0` of
# the same root, one run each, in one run. Uses a private libvirtd in a
# network namespace of its own (tests/harness/libvirtd-netns). Needs root.
#   bench/pack.sh BUNDLE [BINDIR]
# BUNDLE an lxc bundle (mkve-bundle -H lxc ntp-server).
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
bundle=$(realpath "${1:?usage: bench/pack.sh BUNDLE [BINDIR]}")
use_bins bench/pack.sh release "${2:-}"
ns=mkve-bench-pack
suite_work bench-pack
cleanup() {
    for id in $(machines 2>/dev/null); do "$bin/mkve-vm" delete "$id" >/dev/null 2>&1; done
    "$bin/mkve-net" delete --force >/dev/null 2>&1
    "$harness" stop "$ns"
    rm -rf "$work"
}
trap cleanup EXIT
start_node "$ns"
"$bin/mkve-net" create >/dev/null

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
p=()
tar -xOf "$bundle" conf/params 2>/dev/null | grep -q '^admin_password' && p=(--param admin_password=bench-Secret1)
id=$("$bin/mkve-vm" -q create --allow-unsigned "${p[@]}" "$bundle")
root=$MKVE_STATEDIR/vms/$id/rootfs
tmpl=$("$bin/mkve-vm" info --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["template"])')
bytes=$(du -sb --apparent-size "$root" | cut -f1)
sync
s=$(now); "$bin/mkve-vm" pack "$id" -o "$work/packed.bun" --force-no-sign; e=$(now); pk=$(ms "$s" "$e")
s=$(now); tar -C "$root" -cf - . | gzip >"$work/root.tar.gz"; e=$(now); gz=$(ms "$s" "$e")
s=$(now); tar -C "$root" -cf - . | zstd -q -T0 >"$work/root.tar.zst"; e=$(now); zs=$(ms "$s" "$e")
size() { stat -c %s "$1"; }
echo "root of $tmpl: $((bytes >> 20)) MiB, $(nproc) cores"
echo "| way | time | size | time vs pack | size vs pack |"
echo "| --- | --- | --- | --- | --- |"
row() { echo "| $1 | $2 ms | $3 B | $(python3 -c "print(round($2/$pk, 2))")× | $(python3 -c "print(round($3/$(size "$work/packed.bun"), 2))")× |"; }
row "mkve-vm pack (scrubbed, SBOM, bundle)" "$pk" "$(size "$work/packed.bun")"
row "tar \| gzip (incus publish's way)" "$gz" "$(size "$work/root.tar.gz")"
row "tar \| zstd -T0" "$zs" "$(size "$work/root.tar.zst")"
