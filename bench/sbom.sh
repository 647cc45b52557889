#!/bin/bash
# Issue 21's figures: the build time of a bundle with its SBOM and
# provenance (this tree's mkve-bundle) against one without (BASE_BINDIR's,
# a build of mkve before format 3), each from a warm package-layer cache,
# RUNS builds of each (5 by default) interleaved (base, this, base, this…:
# a load that comes and goes on a shared machine falls on both), for each
# template given (ntp-server and imap-server by default): best and median
# of each, their ratios (the goal is <= 1.03), the time this build spends
# between its progress lines "writing the SBOM" and "writing the bundle"
# (the SBOM and the provenance made: their own cost, inside the same
# build, best and median), and the sizes of the two members. Needs root
# (hooks run in a chroot) and mmdebstrap's packages once, for the first,
# cold build of each layer.
#   bench/sbom.sh BASE_BINDIR [BINDIR]
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
base=$(realpath "${1:?the directory of an mkve-bundle without SBOM (a build of main before format 3)}")
use_bins bench/sbom.sh release "${2:-}"
runs=${RUNS:-5}
templates=${TEMPLATES:-ntp-server imap-server}
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# timed BIN TEMPLATE OUT: one build with -v; prints "TOTAL SBOM" in
# seconds (SBOM: from "writing the SBOM" to "writing the bundle", 0 for a
# build that writes none).
timed() {
    python3 - "$1/mkve-bundle" --no-config -v -H lxc --force-no-sign -o "$3" "$2" <<'PY'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
marks = {}
for line in p.stderr:
    marks.setdefault(line.strip(), time.monotonic())
if p.wait() != 0:
    sys.exit("build failed: " + " ".join(sys.argv[1:]))
total = time.monotonic() - t0
a, b = marks.get("mkve-bundle: writing the SBOM"), marks.get("mkve-bundle: writing the bundle")
print(f"{total:.3f} {(b - a) if a and b else 0:.3f}")
PY
}
stats() { # best and median of the numbers on stdin
    sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", v[1], m}'
}

printf '%-12s %14s %14s %13s %14s %8s %10s %12s\n' TEMPLATE WITHOUT_BEST/MED WITH_BEST/MED RATIO_B/M SBOM_PHASE_B/M SHARE SBOM_B PROVENANCE_B
for t in $templates; do
    # Warm the layer cache for each (a build of another mkve may not share it).
    timed "$base" "$t" "$work/$t-base.bun" >/dev/null
    timed "$bin" "$t" "$work/$t.bun" >/dev/null
    : >"$work/base.t"; : >"$work/this.t"; : >"$work/phase.t"
    for _ in $(seq "$runs"); do
        timed "$base" "$t" "$work/$t-base.bun" | cut -d' ' -f1 >>"$work/base.t"
        read -r total phase < <(timed "$bin" "$t" "$work/$t.bun")
        echo "$total" >>"$work/this.t"; echo "$phase" >>"$work/phase.t"
    done
    read -r wb wm < <(stats <"$work/base.t")
    read -r tb tm < <(stats <"$work/this.t")
    read -r pb pm < <(stats <"$work/phase.t")
    rb=$(echo "scale=3; $tb / $wb" | bc); rm=$(echo "scale=3; $tm / $wm" | bc)
    share=$(echo "scale=3; $tm / ($tm - $pm)" | bc)
    sbom=$(tar -tvf "$work/$t.bun" sbom.spdx.json | awk '{print $3}')
    prov=$(tar -tvf "$work/$t.bun" provenance.intoto.json | awk '{print $3}')
    printf '%-12s %14s %14s %13s %14s %8s %10s %12s\n' "$t" "$wb/$wm" "$tb/$tm" "$rb/$rm" "$pb/$pm" "$share" "$sbom" "$prov"
done
echo "SHARE: this build's median time over the same less its median SBOM phase (the cost of the SBOM and provenance alone)"
