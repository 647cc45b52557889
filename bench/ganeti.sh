#!/bin/bash
# Issue 26's figures: mkve's bundles on a Ganeti cluster against mkve's own
# libvirt mode, the same bundle, one run each.
#  1. tests/ganeti.sh (two Ganeti nodes in namespaces, TCG guests): from
#     `gnt-instance add` (hail, a pool address) and from `mkve-vm create
#     --start` on engine=ganeti (RAPI) to the guest's first HTTP answer;
#     migrations with the probe every 0.2 s (the longest gap; paused
#     moves with QEMU before 9.0, tests/ganeti.sh says why).
#  2. The bundle that run built (kept with GANETI_KEEP_BUNDLE), made a
#     machine on a private libvirtd (tests/harness/libvirtd-netns) with
#     `mkve-vm create --start`, to its first HTTP answer (the guest takes
#     DHCP there).
#  3. With --nodes: tests/nodes.sh (namespaces mkve-bench-n1/2), whose
#     figure line has mkve's libvirt live migration and its downtime.
# Needs root; about 3 minutes, 10 more with --nodes.
#   bench/ganeti.sh [--nodes] [BINDIR]
set -euo pipefail
with_nodes=
[ "${1:-}" = --nodes ] && { with_nodes=1; shift; }
. "$(dirname "$0")/../tests/harness/lib.sh"
use_bins bench/ganeti.sh debug "${1:-}"
ns=mkve-bench-gl
work=$(mktemp -d /var/tmp/mkve-bench-ganeti.XXXXXX)
chmod 755 "$work"
trap '"$harness" stop "$ns" >/dev/null 2>&1; rm -rf "$work"' EXIT

echo "== Ganeti (tests/ganeti.sh)"
GANETI_KEEP_BUNDLE=$work/keep "$top/tests/ganeti.sh" >"$work/ganeti.log" 2>&1 || {
    grep -E '^(FAIL|#)' "$work/ganeti.log" | head -20; echo "bench/ganeti.sh: tests/ganeti.sh failed" >&2; exit 1; }
grep -E '^ok - (it answers its probe|it answers at 10|gnt-instance migrate|the probe answers after|mkve-vm migrate)' "$work/ganeti.log"
grep '^ganeti: cluster init' "$work/ganeti.log"

echo "== libvirt (mkve-vm create --start, the same bundle)"
export MKVE_STATEDIR=$work/state MKVE_LOCKDIR=$work/lock MKVE_CONFDIR=$work/etc MKVE_DATADIR=$top
mkdir -p "$MKVE_CONFDIR"
cp "$work/keep/trusted.gpg" "$MKVE_CONFDIR/trusted.gpg"
LIBVIRT_DEFAULT_URI=$("$harness" start "$ns")
export LIBVIRT_DEFAULT_URI
"$bin/mkve-net" create >/dev/null
qemu_uri=$("$harness" uri "$ns" qemu)
printf 'secret-for-the-bench\n' >"$work/secret"
s=$(date +%s%N)
id=$("$bin/mkve-vm" -q -c "$qemu_uri" create --start --no-base --memory 128M --param greeting=on-libvirt \
    --param-file "admin_password=$work/secret" "$work/keep/svc.bun")
made=$(date +%s%N)
end=$(($(date +%s) + 180))
until ip netns exec "$ns" curl -sf -m 2 "http://192.0.2.$id/cgi-bin/info" >/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || { echo "bench/ganeti.sh: machine $id never answered" >&2; exit 1; }
    sleep 0.2
done
answered=$(date +%s%N)
echo "mkve-vm create --start: $(((made - s) / 1000000)) ms to made and started, $(((answered - s) / 1000000)) ms to the first answer"
"$bin/mkve-vm" -q -c "$qemu_uri" delete "$id"

if [ -n "$with_nodes" ]; then
    echo "== mkve's libvirt live migration (tests/nodes.sh)"
    NODES_NS=mkve-bench-n MKVE_BINDIR=$bin "$top/tests/nodes.sh" >"$work/nodes.log" 2>&1 || true
    grep -E '^nodes: list|^nodes: [0-9]+ passed' "$work/nodes.log"
fi
