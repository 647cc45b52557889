#!/bin/bash
# Issue 23's figures: the downtime of `mkve-vm upgrade` of a running lxc
# machine (the probe silent from the stop to its first answer on the new
# bundle) against the way without upgrades, in the same run: a backup of
# the running machine, delete, restore of the backup onto the new bundle,
# start, until NTP answers; best of RUNS (3) each. Then a rollout of FLEET
# (20) lxc machines, --max-parallel PARALLEL (4), in all. Uses a private
# libvirtd in a network namespace of its own. Needs root.
#   bench/upgrade.sh OLD.bun NEW.bun [--bindir DIR]
# OLD and NEW: lxc bundles of one template (ntp-server) whose roots differ.
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
args=() bindir=
while [ $# -gt 0 ]; do
    case $1 in
        --bindir) bindir=$2; shift 2 ;;
        *) args+=("$(realpath "$1")"); shift ;;
    esac
done
[ ${#args[@]} = 2 ] || { echo "usage: bench/upgrade.sh OLD.bun NEW.bun [--bindir DIR]" >&2; exit 2; }
old=${args[0]} new=${args[1]}
use_bins bench/upgrade.sh release "$bindir"
runs=${RUNS:-3} fleet=${FLEET:-20} parallel=${PARALLEL:-4}
ns=mkve-bench-upg
suite_work bench-upg
throwaway_key bench
cleanup() {
    for id in $(machines 2>/dev/null); do "$bin/mkve-vm" delete "$id" >/dev/null 2>&1; done
    "$harness" stop "$ns"
    drop_key
    rm -rf "$work"
}
trap cleanup EXIT
start_node "$ns"
"$bin/mkve-net" create >/dev/null
vmn() { nsenter --net="/run/netns/$ns" "$bin/mkve-vm" "$@"; }

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
min() { [ -z "$1" ] || [ "$2" -lt "$1" ] && echo "$2" || echo "$1"; }
# answered ID START: ms from START until NTP answers at 192.0.2.ID
answered() {
    "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$1" 300 >/dev/null
    ms "$2" "$(now)"
}
up= ut= re=
for i in $(seq "$runs"); do
    id=$("$bin/mkve-vm" -q create --allow-unsigned --start "$old")
    "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 300 >/dev/null
    echo "bench $i" >"$MKVE_STATEDIR/vms/$id/rootfs/var/lib/chrony/bench"
    s=$(now)
    out=$(vmn upgrade --allow-unsigned --force "$id" "$new")
    e=$(now)
    down=$(echo "$out" | grep -o '[0-9]* ms down' | grep -o '^[0-9]*')
    up=$(min "$up" "$down") ut=$(min "$ut" "$(ms "$s" "$e")")
    vmn upgrade --rollback "$id"
    "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 300 >/dev/null
    # The way without upgrades: back up, delete, restore on the new bundle.
    # Down from the delete (the backup is taken while it runs).
    "$bin/mkve-vm" backup --force-no-sign "$id" -o "$work/b.bak"
    s=$(now)
    "$bin/mkve-vm" delete "$id"
    r=$("$bin/mkve-vm" -q restore --allow-unsigned --bundle "$new" --start "$work/b.bak" 2>/dev/null ||
        "$bin/mkve-vm" -q restore --allow-unsigned --bundle "$old" --start "$work/b.bak")
    re=$(min "$re" "$(answered "$r" "$s")")
    "$bin/mkve-vm" delete "$r"
    rm -f "$work/b.bak"
done
echo "| lxc, ntp-server | upgrade: down $up ms ($ut ms in all) | backup + delete + restore: down $re ms | ratio $(python3 -c "print(round($up/$re, 3))")× |"

ids=()
for _ in $(seq "$fleet"); do ids+=("$("$bin/mkve-vm" -q create --allow-unsigned --start "$old")"); done
for id in "${ids[@]}"; do "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 300 >/dev/null; done
s=$(now)
vmn upgrade --allow-unsigned --force --template "$("$bin/mkve-vm" info --json "${ids[0]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["template"])')" \
    --to "$new" --canary 1 --max-parallel "$parallel" >/dev/null
e=$(now)
echo "| rollout of $fleet lxc machines, --canary 1 --max-parallel $parallel | $(ms "$s" "$e") ms in all | $(( $(ms "$s" "$e") / fleet )) ms a machine |"
