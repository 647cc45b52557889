#!/bin/bash
# Each service template, built from Debian packages, created and started
# as a machine, answers a real client of its protocol at 192.0.2.ID, from
# inside a network namespace made here (tests/harness/libvirtd-netns): no
# test traffic leaves it.
#
#   tests/services.sh [-H lxc,qemu] [TEMPLATE...]
#
# Default: every service template below, on lxc. For each template and
# hypervisor: build the bundle, run tests/services/TEMPLATE/setup (if any)
# in the namespace, create the machine with the parameters in
# tests/services/TEMPLATE/params (lines NAME=VALUE), start it, and run
# tests/services/TEMPLATE/check ID ADDRESS in the namespace, with:
#
#   MACHINE_CAT    a command: `$MACHINE_CAT PATH` prints the file PATH of
#                  the machine (tests/harness/machine-cat; for qemu it stops
#                  the guest, reads its disk and starts it again)
#   SVC_DIR        a scratch directory of this template and hypervisor;
#                  setup writes the PIDs of what it started to $SVC_DIR/pids
#                  (one a line), and they are killed after the check
#   SVC_ANSWERED   a file the check may write the time (date +%s.%N) of its
#                  first answer to; else the check's end is the answer's time
#   MACHINE_HV, MACHINE_ID, MKVE_STATEDIR, MKVE_VM, LIBVIRT_DEFAULT_URI
#
# (tests/services/README says the same for those writing a check.)
# Then the template's probes (mkve-vm wait) must find the service up too.
# The builds run one after the other in the background, ahead of the
# machines. A table closes the run: service, hypervisor, build time, start
# → first answer, result. Exit 0 only if every check passed.
#
# The namespace is $MKVE_SVC_NS (default mkve-svc): two runs at once need
# two names. Run as root, after cargo build --workspace.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
ns=${MKVE_SVC_NS:-mkve-svc}
all="ntp-server caching-nameserver ftp-server imap-server smtp-server list-server proxy-server kerberos-server pptp-server"

usage() { echo "usage: $0 [-H lxc,qemu] [TEMPLATE...]" >&2; exit 2; }
hvs=lxc
while getopts H:h opt; do
    case $opt in
    H) hvs=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
templates=${*:-$all}
IFS=, read -ra hvs <<<"$hvs"
for hv in "${hvs[@]}"; do
    case $hv in lxc|qemu) ;; *) echo "services: hypervisor $hv: only lxc and qemu run here" >&2; exit 2 ;; esac
done
for t in $templates; do
    [ -d "$top/templates/$t" ] || { echo "services: no template $t in $top/templates" >&2; exit 2; }
done
use_bins services debug

suite_work services
export MKVE_CACHEDIR=${CARGO_TARGET_DIR:-$top/target}/tmp/mkve-layer-cache
export MKVE_VM=$bin/mkve-vm
export MACHINE_CAT=$top/tests/harness/machine-cat

kill_setup() {  # kill_setup DIR: what DIR's setup started
    local pid
    [ -f "$1/pids" ] || return 0
    while read -r pid; do
        [[ $pid =~ ^[0-9]+$ ]] && kill "$pid" 2>/dev/null
    done <"$1/pids"
    rm -f "$1/pids"
}

cleanup() {
    local d uri id
    if [ -n "$builder" ]; then
        pkill -TERM -P "$builder" 2>/dev/null; kill "$builder" 2>/dev/null; wait "$builder" 2>/dev/null
    fi
    for d in "$work"/run/*/; do [ -d "$d" ] && kill_setup "$d"; done
    for uri in "$lxc_uri" "$qemu_uri"; do
        [ -n "$uri" ] || continue
        for id in $("$bin/mkve-vm" -c "$uri" list --json 2>/dev/null |
                python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'); do
            "$bin/mkve-vm" -c "$uri" -q delete "$id" >/dev/null 2>&1
        done
    done
    "$bin/mkve-net" delete --force >/dev/null 2>&1
    "$harness" stop "$ns"
    rm -rf "$work"
}
lxc_uri= qemu_uri= builder=
trap cleanup EXIT
trap 'exit 130' INT TERM

lxc_uri=$("$harness" start "$ns") || exit 69
qemu_uri=$("$harness" uri "$ns" qemu)
export LIBVIRT_DEFAULT_URI=$lxc_uri
"$bin/mkve-net" create || exit 1

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The bundles are built one after the other in the background, ahead of the
# machines that check them: the next build runs while a machine starts and
# answers. Each build leaves $run/bundle.bun and $run/built (its seconds),
# or $run/build-failed (its seconds) and its messages in $run/build.err.
build_all() {
    local hv t run t0 result
    # At the lowest CPU and I/O priority: the machine being checked, and
    # the daemons that run it, come first.
    renice -n 19 -p "$BASHPID" >/dev/null
    ionice -c 3 -p "$BASHPID"
    for hv in "${hvs[@]}"; do
        for t in $templates; do
            run=$work/run/$t-$hv
            mkdir -p "$run"
            t0=$EPOCHREALTIME
            if "$bin/mkve-bundle" --no-config -q -H "$hv" --force-no-sign -o "$run/bundle.bun" "$t" \
                >/dev/null 2>"$run/build.err"; then
                result=built
            else
                result=build-failed
            fi
            # Written whole, then named: the loop below reads it once it is there.
            elapsed "$t0" "$EPOCHREALTIME" >"$run/.seconds"
            mv "$run/.seconds" "$run/$result"
        done
    done
}
# built RUN: wait for RUN's build to end; true if it made the bundle
built() {
    while [ ! -e "$1/built" ] && [ ! -e "$1/build-failed" ]; do
        kill -0 "$builder" 2>/dev/null || { [ -e "$1/built" ]; return; }
        sleep 0.2
    done
    [ -e "$1/built" ]
}
build_all &
builder=$!

rows=()
failed=0
for hv in "${hvs[@]}"; do
    if [ "$hv" = qemu ]; then uri=$qemu_uri; else uri=$lxc_uri; fi
    for t in $templates; do
        tests=$top/tests/services/$t
        run=$work/run/$t-$hv
        mkdir -p "$run"
        build_s=- answer_s=- result=FAIL
        echo "== $t on $hv"
        if [ ! -x "$tests/check" ]; then
            echo "services: $tests/check: missing (no check for $t)" >&2
            rows+=("$t $hv - - no-check"); failed=$((failed + 1)); continue
        fi
        if ! built "$run"; then
            cat "$run/build.err" >&2 2>/dev/null
            rows+=("$t $hv $(cat "$run/build-failed" 2>/dev/null || echo -) - build-failed"); failed=$((failed + 1)); continue
        fi
        build_s=$(cat "$run/built")
        if [ -x "$tests/setup" ] && ! SVC_DIR=$run "$harness" exec "$ns" "$tests/setup"; then
            kill_setup "$run"
            rows+=("$t $hv $build_s - setup-failed"); failed=$((failed + 1)); continue
        fi
        params=()
        if [ -f "$tests/params" ]; then
            while IFS= read -r line; do
                [[ $line =~ ^[[:space:]]*(#|$) ]] || params+=(--param "$line")
            done <"$tests/params"
        fi
        id=$("$bin/mkve-vm" -c "$uri" -q create --allow-unsigned "${params[@]}" "$run/bundle.bun")
        if [ -z "$id" ]; then
            kill_setup "$run"
            rows+=("$t $hv $build_s - create-failed"); failed=$((failed + 1)); continue
        fi
        addr=192.0.2.$id
        t0=$EPOCHREALTIME
        if "$bin/mkve-vm" -c "$uri" -q start "$id" &&
            LIBVIRT_DEFAULT_URI=$uri MACHINE_ID=$id MACHINE_HV=$hv SVC_DIR=$run SVC_ANSWERED=$run/answered \
                timeout 1200 "$harness" exec "$ns" "$tests/check" "$id" "$addr"; then
            result=ok
        fi
        t1=$EPOCHREALTIME
        [ -s "$run/answered" ] && t1=$(head -n1 "$run/answered")
        answer_s=$(elapsed "$t0" "$t1")
        # The template's probes (mkve-vm wait) must see the service up too,
        # from the namespace where the machine's address is.
        if [ "$result" = ok ] && [ -f "$top/templates/$t/probes" ] &&
            ! "$harness" exec "$ns" "$bin/mkve-vm" -c "$uri" wait --timeout 120 "$id"; then
            result=probes-failed
        fi
        if [ "$result" != ok ]; then
            failed=$((failed + 1))
            answer_s=-
            echo "services: $t on $hv: the check failed; the machine's units that failed:" >&2
            if [ "$hv" = lxc ]; then
                # The machine's journal, read as data (no program of the machine runs).
                journalctl -q --no-pager -D "$MKVE_STATEDIR/vms/$id/rootfs/var/log/journal" -p warning -n 40 >&2 2>/dev/null || true
            fi
        fi
        echo "$t on $hv: $result"
        "$bin/mkve-vm" -c "$uri" -q delete "$id" || failed=$((failed + 1))
        kill_setup "$run"
        rows+=("$t $hv $build_s $answer_s $result")
    done
done

echo
{
    echo "service hypervisor build_s start_to_answer_s result"
    printf '%s\n' "${rows[@]}"
} | column -t
[ "$failed" = 0 ]
