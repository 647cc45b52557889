#!/bin/bash
# Issue 21's figure: `mkve-vm audit --all-nodes` of MACHINES machines (100
# by default) on two nodes, best of RUNS (5), against Debian's debsecan run
# once for each machine's dpkg database (what an operator does without
# mkve: one run per machine). The nodes are libvirt's test driver kept in
# files (test:///FILE, no daemon), half the machines on each; node n2 is
# reached through a node_ssh_command stand-in that runs n2's mkve-vm here
# with n2's directories (the path an audit takes to another node, less
# ssh's own connection, which tests/nodes.sh's figure includes). Each
# machine's directory holds what a create on a base keeps of its bundle:
# meta.json, its signature and the SBOM, of BUNDLE (a format 3 bundle: a
# real root's SBOM is the one worth timing, ntp-server's say). The feed is
# tests/fixtures/debsecan's, compressed. No root needed, nothing listens.
#   bench/audit.sh BUNDLE [BINDIR]
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
bundle=${1:?a bundle of format 3, whose SBOM every machine gets}
use_bins bench/audit.sh release "${2:-}"
machines=${MACHINES:-100}
runs=${RUNS:-5}
work=$(mktemp -d /var/tmp/mkve-bench-audit.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

"$bin/mkve-bundle" --no-config -q --allow-unsigned --extract "$bundle" -C "$work/bundle" >/dev/null
[ -f "$work/bundle/sbom.spdx.json" ] || { echo "bench/audit.sh: $bundle has no SBOM (format 3 bundles have one)" >&2; exit 65; }
status=$work/bundle/rootfs/var/lib/dpkg/status
[ -f "$status" ] || { echo "bench/audit.sh: $bundle's root has no dpkg database" >&2; exit 65; }
mkdir -p "$work/feed"
python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(open(sys.argv[1], "rb").read()))' \
    "$top/tests/fixtures/debsecan/bookworm.txt" >"$work/feed/bookworm"

# node N FIRST COUNT: node N's test driver file and machine directories.
node() {
    local n=$1 first=$2 count=$3 id
    mkdir -p "$work/n$n/etc" "$work/n$n/state/vms" "$work/n$n/lock"
    for id in $(seq "$first" $((first + count - 1))); do
        mkdir "$work/n$n/state/vms/$id"
        cp "$work/bundle/meta.json" "$work/bundle/sbom.spdx.json" "$work/n$n/state/vms/$id/"
        [ ! -f "$work/bundle/meta.json.asc" ] || cp "$work/bundle/meta.json.asc" "$work/n$n/state/vms/$id/"
    done
    python3 - "$work/bundle/meta.json" "$first" "$count" >"$work/n$n.xml" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
first, count = int(sys.argv[2]), int(sys.argv[3])
t = meta["template"]
print("<node>")
for i in range(first, first + count):
    print(f"<domain type='test'><name>{t['name']}-{i}</name><memory>65536</memory><os><type>hvm</type></os>"
          f"<metadata><mkve:vm xmlns:mkve='urn:mkve:vm:1'><mkve:id>{i}</mkve:id>"
          f"<mkve:address>10.77.{i >> 8}.{i & 255}</mkve:address>"
          f"<mkve:template name='{t['name']}' version='{t['version']}'/>"
          f"<mkve:bundle sha256='{meta['members']['rootfs.tar.zst']}'/></mkve:vm></metadata></domain>")
print("</node>")
EOF
}
half=$((machines / 2))
node 1 100 "$half"
node 2 5000 $((machines - half))
printf '#!/bin/sh\nfor a; do last=$a; done\nMKVE_CONFDIR=%s MKVE_STATEDIR=%s MKVE_LOCKDIR=%s LIBVIRT_DEFAULT_URI=test://%s exec sh -c "$last"\n' \
    "$work/n2/etc" "$work/n2/state" "$work/n2/lock" "$work/n2.xml" >"$work/ssh"
chmod 755 "$work/ssh"
cat >"$work/n1/etc/mkve.conf" <<EOF
network_address=10.77.0.1/16
this_node=n1
node_ssh_command=$work/ssh
node.n1.ids=100-4999
node.n1.uri.qemu=test://$work/n1.xml
node.n2.ids=5000-9999
node.n2.uri.qemu=test://$work/n2.xml
node.n2.ssh=root@n2.invalid
node.n2.mkve_vm=$bin/mkve-vm
EOF
audit() {
    MKVE_CONFDIR=$work/n1/etc MKVE_STATEDIR=$work/n1/state MKVE_LOCKDIR=$work/n1/lock \
        "$bin/mkve-vm" audit --all-nodes --json --feed "$work/feed/bookworm" >"$work/audit.json" 2>"$work/err" || true
}
audit # warm the page cache
audited=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(set((f["node"], f["id"]) for f in d["findings"])), len(d["findings"]))' "$work/audit.json")
best=
for _ in $(seq "$runs"); do
    s=$(date +%s%N); audit; e=$(date +%s%N)
    t=$(((e - s) / 1000000))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
done
s=$(date +%s%N)
for _ in $(seq "$machines"); do
    debsecan --suite bookworm --format summary --source "file://$work/feed/" --status "$status" >/dev/null
done
debsecan_ms=$((($(date +%s%N) - s) / 1000000))
# What was timed is right: machine 100's findings are debsecan's.
ours=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join(sorted(f["cve"] + " " + f["package"] for f in d["findings"] if f["id"] == 100)))' "$work/audit.json")
theirs=$(debsecan --suite bookworm --format summary --source "file://$work/feed/" --status "$status" | awk '{print $1 " " $2}' | LC_ALL=C sort)
[ "$ours" = "$theirs" ] || { printf 'bench/audit.sh: audit and debsecan differ:\n%s\n--\n%s\n' "$ours" "$theirs" >&2; exit 1; }
sbom=$(stat -c %s "$work/bundle/sbom.spdx.json")
packages=$(grep -c '^Package:' "$status")
echo "bench/audit.sh: $machines machines on two nodes, $packages packages each (SBOM $sbom bytes); machines with findings and findings: $audited"
printf '%-44s %10s\n' MEASURE MS
printf '%-44s %10s\n' "mkve-vm audit --all-nodes (best of $runs)" "$best"
printf '%-44s %10s\n' "debsecan, once per machine ($machines runs)" "$debsecan_ms"
