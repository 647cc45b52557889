#!/bin/bash
# Issue 27's figures: KVM and Xen nested under TCG (tests/nested.sh, with
# NESTED_COMPARE=1): each node's boot to `mkve-vm doctor` ready, and from
# `mkve-vm create --start` to the guest's first answer to its probe, for a
# kvm machine and for the same bundle as a qemu (TCG) machine inside the
# KVM node (what KVM buys even nested), and for a xen machine inside the
# Xen node. One run; needs root; about 10 minutes.
#   bench/nested.sh [BINDIR]
set -euo pipefail
log=$(mktemp /var/tmp/mkve-bench-nested.XXXXXX)
trap 'rm -f "$log"' EXIT
NESTED_COMPARE=1 "$(dirname "$0")/../tests/nested.sh" "$@" >"$log" 2>&1 || {
    grep -E '^(FAIL|#)' "$log" | head -20; echo "bench/nested.sh: tests/nested.sh failed" >&2; exit 1; }
grep -E '^# the|^ok - (mkve-bundle builds|the KVM node boots|  its probe|the same bundle as a qemu|  mkve-vm doctor finds Xen)' "$log" |
    sed 's/  # at [0-9]* s$//'
