#!/bin/bash
# Issue 21's figures: the build time of a bundle with its SBOM and
# provenance (this tree's mkve-bundle) against one without (BASE_BINDIR's,
# a build of mkve before format 3), each from a warm package-layer cache
# (best of RUNS, 3 by default), for each template given (ntp-server and
# imap-server by default); the ratio (the goal is <= 1.03), and the sizes of
# the SBOM and provenance members. Needs root (hooks run in a chroot) and
# mmdebstrap's packages once, for the first, cold build of each layer.
#   bench/sbom.sh BASE_BINDIR [BINDIR]
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
base=$(realpath "${1:?the directory of an mkve-bundle without SBOM (a build of main before format 3)}")
use_bins bench/sbom.sh release "${2:-}"
runs=${RUNS:-3}
templates=${TEMPLATES:-ntp-server imap-server}
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# best_of BIN TEMPLATE OUT: the fastest of $runs warm builds, in seconds.
best_of() {
    local b=$1 t=$2 out=$3 best= s e d
    "$b/mkve-bundle" --no-config -q -H lxc --force-no-sign -o "$out" "$t" >/dev/null # warm the cache
    for _ in $(seq "$runs"); do
        s=$(date +%s.%N)
        "$b/mkve-bundle" --no-config -q -H lxc --force-no-sign -o "$out" "$t" >/dev/null
        e=$(date +%s.%N)
        d=$(echo "$e - $s" | bc)
        if [ -z "$best" ] || [ "$(echo "$d < $best" | bc)" = 1 ]; then best=$d; fi
    done
    echo "$best"
}

printf '%-12s %10s %10s %7s %10s %12s\n' TEMPLATE WITHOUT_S WITH_S RATIO SBOM_B PROVENANCE_B
for t in $templates; do
    without=$(best_of "$base" "$t" "$work/$t-base.bun")
    with=$(best_of "$bin" "$t" "$work/$t.bun")
    ratio=$(echo "scale=3; $with / $without" | bc)
    sbom=$(tar -tvf "$work/$t.bun" sbom.spdx.json | awk '{print $3}')
    prov=$(tar -tvf "$work/$t.bun" provenance.intoto.json | awk '{print $3}')
    printf '%-12s %10.2f %10.2f %7s %10s %12s\n' "$t" "$without" "$with" "$ratio" "$sbom" "$prov"
done
