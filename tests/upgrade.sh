#!/bin/bash
# Upgrades (mkve-vm(1), UPGRADES), end to end against a real libvirtd in a
# network namespace of the suite's own (tests/harness/libvirtd-netns): the
# ntp-server template built three times, as 1.0, as 2.0 (from a local
# mirror on 127.0.0.1 too, whose chrony is one version up, and whose build
# changes /etc/chrony/chrony.conf, as a new chrony package could) and as a
# broken 3.0 (chronyd masked). A running lxc machine with an operator's
# edit and chrony's state: the conflict refused, then kept with --force;
# NTP answers on 2.0, what the machine held is there; rolled back and
# upgraded again, committed (the old base freed); the broken bundle rolled
# back by itself within its timeout (69), the machine answering again; an
# upgrade killed at random points leaves the machine on one bundle, whole,
# resolved by the next command. A qemu machine upgraded the same way.
# Run by `make test` after the cargo tests, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins upgrade debug
one_node upgrade mkve-upg
throwaway_key upgrade || exit 1
# mkve-vm in the namespace's network, where the machines' addresses are
# (an upgrade waits on their probes), and the node's mounts (where the
# machines' roots are mounted: not `ip netns exec`, whose mounts are its
# own).
vmn() { nsenter --net="/run/netns/$ns" "$bin/mkve-vm" "$@"; }
# version_of ID [URI]: the version of the bundle machine ID stands on
version_of() { "$bin/mkve-vm" -c "${2:-$LIBVIRT_DEFAULT_URI}" info --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }
bases() { "$bin/mkve-vm" bases --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# The template three times: 1.0 as shipped, 2.0 whose build changes a
# package's configuration file, 3.0 with chronyd masked.
tpl() {
    local v=$1 hook=$2 d=$work/tpl-$1/ntp-server
    mkdir -p "${d%/*}"
    cp -a "$top/templates/ntp-server" "$d"
    for hv in lxc qemu; do
        echo "template_version=$v" >"$d/version/$hv"
        if [ -n "$hook" ]; then
            printf '#!/bin/sh\nset -e\n%s\n' "$hook" >"$d/hooks/20-upgrade-test"
            chmod 755 "$d/hooks/20-upgrade-test"
            echo 20-upgrade-test >>"$d/hooks-lists/$hv"
        fi
    done
    echo "$d"
}
tpl1=$(tpl 1.0 '')
tpl2=$(tpl 2.0 'echo "# changed by 2.0" >> /etc/chrony/chrony.conf; echo 2.0 > /etc/mkve-upgrade-test')
tpl3=$(tpl 3.0 'ln -sf /dev/null /etc/systemd/system/chrony.service')
"$bin/mkve-bundle" --no-config -q -H lxc -o "$work/ntp1.bun" "$tpl1" || exit 1
# 2.0 is built from a local mirror too, beside the host's sources: chrony
# one version up (its package rebuilt with a new version: a real package
# upgrade as apt and dpkg see it), in a flat repository (dpkg-scanpackages)
# that python's http.server serves on 127.0.0.1.
chrony_deb=$(ls "$MKVE_CACHEDIR"/debs/*/chrony_*.deb 2>/dev/null | sort -V | tail -1)
[ -n "$chrony_deb" ] || { echo "upgrade: no chrony package in $MKVE_CACHEDIR/debs after the 1.0 build" >&2; exit 1; }
mkdir -p "$work/repo" && dpkg-deb -R "$chrony_deb" "$work/chrony" || exit 1
chrony_old=$(sed -n 's/^Version: //p' "$work/chrony/DEBIAN/control")
chrony_new=$chrony_old+mkve1
sed -i "s/^Version: .*/Version: $chrony_new/" "$work/chrony/DEBIAN/control"
dpkg-deb -b "$work/chrony" "$work/repo/chrony_${chrony_new}_amd64.deb" >/dev/null || exit 1
(cd "$work/repo" && dpkg-scanpackages . /dev/null 2>/dev/null >Packages) || exit 1
python3 -u -m http.server --bind 127.0.0.1 --directory "$work/repo" 0 >"$work/http.log" 2>&1 &
http_pid=$!
suite_cleanup() { kill "$http_pid" 2>/dev/null; wait "$http_pid" 2>/dev/null; }
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^Serving HTTP on 127.0.0.1 port \([0-9]*\) .*/\1/p' "$work/http.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "upgrade: the local mirror did not start" >&2; cat "$work/http.log" >&2; exit 1; }
# The host's sources for its release, as mkve-bundle takes them by
# default, then the local one.
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirrors=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -v '^[[:space:]]*#' "$f" | grep -qw "$codename" && mirrors+=(--mirror "$(cat "$f")")
done
mirrors+=(--mirror "deb [trusted=yes] http://127.0.0.1:$port/ ./")
"$bin/mkve-bundle" --no-config -q -H lxc "${mirrors[@]}" -o "$work/ntp2.bun" "$tpl2" || exit 1
"$bin/mkve-bundle" --no-config -q -H lxc -o "$work/ntp3.bun" "$tpl3" || exit 1
# chrony_in BUNDLE: the version of chrony its signed SBOM lists
chrony_in() { "$bin/mkve-bundle" --sbom spdx "$1" | python3 -c 'import json,sys; print(*[p["versionInfo"] for p in json.load(sys.stdin)["packages"] if p["name"] == "chrony"])'; }
check "2.0's SBOM has chrony $chrony_new from the local mirror, 1.0's $chrony_old" \
    test "$(chrony_in "$work/ntp2.bun") $(chrony_in "$work/ntp1.bun")" = "$chrony_new $chrony_old"
# The qemu part's bundles are built meanwhile.
ahead ntp-qemu bash -c "'$bin/mkve-bundle' --no-config -q -H qemu -o '$work/ntp1-qemu.bun' '$tpl1' &&
    '$bin/mkve-bundle' --no-config -q -H qemu $(printf '%q ' "${mirrors[@]}") -o '$work/ntp2-qemu.bun' '$tpl2'"

# lxc: an operator's edit and chrony's state on 1.0.
id=$("$bin/mkve-vm" -q create --start "$work/ntp1.bun")
check "an lxc machine on 1.0 answers NTP ($id)" ntp "$id" 180
root=$MKVE_STATEDIR/vms/$id/rootfs
echo '# the operator' >>"$root/etc/chrony/chrony.conf"
# chrony rewrites its drift file when it stops: a file of the suite's own
# in the state directory instead.
echo 'kept state' >"$root/var/lib/chrony/mkve-test"
echo mine >"$root/root/kept"
check "an upgrade over an edited file the new bundle changes too is refused (1), naming it" \
    refuses 1 "/etc/chrony/chrony.conf (changed in the new base)" vmn upgrade "$id" "$work/ntp2.bun"
check "  and the machine runs on 1.0 still" test "$(version_of "$id")" = 1.0
check "  answering NTP" ntp "$id" 60
busybox_root "$work/bb"
"$bin/mkve-bundle" --no-config -q -H lxc --rootfs "$work/bb" -o "$work/other.bun" \
    "$top/tests/fixtures/templates/good/with-params" >/dev/null || exit 1
check "an upgrade to a bundle of another template is refused (65)" \
    refuses 65 "is a bundle of template" vmn upgrade "$id" "$work/other.bun"
t0=$(date +%s%N)
vmn upgrade --force --timeout 180 "$id" "$work/ntp2.bun" >"$work/out" 2>"$work/err"
rc=$?
t1=$(date +%s%N)
check "upgrade --force to 2.0 (exit $rc, $(( (t1 - t0) / 1000000 )) ms in all; $(grep -o '[0-9]* ms down' "$work/out"))" test "$rc" = 0
check "  it says which file it kept" grep -q "kept the machine's /etc/chrony/chrony.conf" "$work/out"
check "  info names 2.0" test "$(version_of "$id")" = 2.0
check "  NTP answers" ntp "$id" 60
check "  the new base is under it" test -e "$root/etc/mkve-upgrade-test"
# dpkg_chrony: the version of chrony a dpkg status file on stdin says is installed
dpkg_chrony() { awk '/^Package: chrony$/ {p = 1} p && /^Version:/ {print $2; exit}'; }
check "  dpkg there has chrony $chrony_new, the local mirror's" \
    test "$(dpkg_chrony <"$root/var/lib/dpkg/status")" = "$chrony_new"
check "  the operator's edit is kept" grep -qx '# the operator' "$root/etc/chrony/chrony.conf"
check "  the state is kept" grep -qx 'kept state' "$root/var/lib/chrony/mkve-test"
check "  the operator's other files are kept" grep -qx mine "$root/root/kept"
check "  both bases are held until the commit" test "$(bases)" = 2
echo after >"$root/root/after"
vmn upgrade --rollback "$id"
check "upgrade --rollback: back on 1.0" test "$(version_of "$id")" = 1.0
check "  without what 2.0 brought, or what was written since" sh -c \
    "test ! -e '$root/etc/mkve-upgrade-test' && test ! -e '$root/root/after' && grep -qx mine '$root/root/kept'"
check "  running, answering NTP" ntp "$id" 120
check "  and 2.0's base is freed" test "$(bases)" = 1
check "a rollback with no upgrade held is refused (2)" refuses 2 "has no upgrade to roll back" vmn upgrade --rollback "$id"
vmn upgrade --force --timeout 180 "$id" "$work/ntp2.bun" >/dev/null 2>&1
check "upgraded again to 2.0" test "$(version_of "$id")" = 2.0
vmn upgrade --commit "$id"
check "upgrade --commit frees the old base and removes the upgrade's snapshot" sh -c \
    "test \"\$('$bin/mkve-vm' bases --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 1 && test -z \"\$(ls -A '$MKVE_STATEDIR/vms/$id/snapshots' 2>/dev/null)\" && test ! -e '$MKVE_STATEDIR/vms/$id/upgrade'"
check "a commit with none held is refused (2)" refuses 2 "has no upgrade to commit" vmn upgrade --commit "$id"

# A stopped machine: started for the probes, stopped again.
"$bin/mkve-vm" stop --force "$id"
vmn upgrade --force --timeout 120 "$id" "$work/ntp1.bun" >/dev/null 2>"$work/err"
rc=$?
v=$(version_of "$id")
check "an upgrade of a stopped machine (exit $rc) leaves it stopped, on 1.0 ($v)" sh -c \
    "test $rc = 0 && test '$v' = 1.0 && virsh domstate ntp-server-$id | grep -qx 'shut off'"
vmn upgrade --rollback "$id"
v=$(version_of "$id")
check "  rolled back: on 2.0 ($v), still stopped" sh -c \
    "test '$v' = 2.0 && virsh domstate ntp-server-$id | grep -qx 'shut off'"
"$bin/mkve-vm" start "$id"

# The broken bundle: chronyd masked, so its probe stays silent.
t0=$(date +%s%N)
vmn upgrade --force --timeout 10 "$id" "$work/ntp3.bun" >/dev/null 2>"$work/err"
rc=$?
t1=$(date +%s%N)
check "an upgrade whose probes stay silent fails (69) and rolls back by itself ($(( (t1 - t0) / 1000 / 1000 )) ms)" sh -c \
    "test $rc = 69 && grep -q 'rolled back' '$work/err'"
check "  the machine is on 2.0 again" test "$(version_of "$id")" = 2.0
check "  and answers NTP" ntp "$id" 120
check "  nothing of the upgrade is left" sh -c \
    "test ! -e '$MKVE_STATEDIR/vms/$id/upgrade' && test \"\$('$bin/mkve-vm' bases --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 1"

# kill -9 at points through an upgrade: the next command finds the machine
# on 2.0, whole, running, and nothing of the upgrade left. The first while
# the new base is made; the others once the upgrade's record is there (the
# snapshot taken, the switch under way, the probes asked).
for delay in early 0 0.8; do
    nsenter --net="/run/netns/$ns" "$bin/mkve-vm" upgrade --force --timeout 180 "$id" "$work/ntp1.bun" >/dev/null 2>&1 &
    pid=$!
    if [ "$delay" = early ]; then
        sleep 1
    else
        for _ in $(seq 1200); do
            [ -e "$MKVE_STATEDIR/vms/$id/upgrade" ] && break
            sleep 0.05
        done
        sleep "$delay"
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    v=$(version_of "$id")
    if [ -e "$MKVE_STATEDIR/vms/$id/upgrade" ]; then
        # It got past its probes: a whole upgrade, held; rolled back here.
        vmn upgrade --rollback "$id"
        v=$(version_of "$id")
    fi
    check "killed $delay s into it: the next command finds the machine on one bundle ($v)" test "$v" = 2.0
    check "  running, answering NTP" ntp "$id" 120
    check "  nothing of the upgrade left" sh -c \
        "test ! -e '$MKVE_STATEDIR/vms/$id/upgrade' && test -z \"\$(ls -A '$MKVE_STATEDIR/vms/$id/snapshots' 2>/dev/null)\""
done
"$bin/mkve-vm" upgrade --commit "$id" 2>/dev/null

# A fleet: four more machines on 1.0, the third with chronyd masked by
# hand; --canary 1 --max-parallel 2: the canary, then a wave of two where
# the masked one fails: the rollout stops, the fourth is not tried.
fleet=()
for _ in 1 2 3 4; do fleet+=("$("$bin/mkve-vm" -q create --start "$work/ntp1.bun")"); done
bad=${fleet[2]}
ln -sf /dev/null "$MKVE_STATEDIR/vms/$bad/rootfs/etc/systemd/system/chrony.service"
t0=$(date +%s%N)
vmn upgrade --template ntp-server --to "$work/ntp2.bun" --canary 1 --max-parallel 2 --timeout 15 --json \
    >"$work/rollout.json" 2>"$work/err"
rc=$?
t1=$(date +%s%N)
# result ID: the rollout's result for machine ID
result() { python3 -c 'import json,sys; print({str(e["machine"]): e["result"] for e in json.load(open(sys.argv[1]))}[sys.argv[2]])' "$work/rollout.json" "$1"; }
check "a rollout with a failing machine stops there (69, $(( (t1 - t0) / 1000000 )) ms)" test "$rc" = 69
check "  the machine already on 2.0 is passed by, the canary and the wave's other are upgraded" sh -c \
    "test \"\$(python3 -c 'import json,sys; print(\" \".join(e[\"result\"] for e in json.load(open(sys.argv[1]))))' '$work/rollout.json')\" = 'already upgraded upgraded failed untouched'"
check "  the failed machine is back on 1.0, the untouched one still on 1.0" \
    test "$(version_of "$bad") $(version_of "${fleet[3]}")" = "1.0 1.0"
rm "$MKVE_STATEDIR/vms/$bad/rootfs/etc/systemd/system/chrony.service"
"$bin/mkve-vm" reboot "$bad"
vmn upgrade --template ntp-server --to "$work/ntp2.bun" --canary 1 --max-parallel 2 --timeout 120 >"$work/out" 2>"$work/err"
rc=$?
check "run again, the rollout goes on where it stopped and ends (exit $rc)" test "$rc" = 0
check "  every machine of the template is on 2.0" sh -c \
    "test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(\" \".join(str(m[\"id\"]) for m in json.load(sys.stdin) if m[\"version\"] != \"2.0\"))')\""
for f in "${fleet[@]}"; do check "  machine $f answers NTP" ntp "$f" 120; done
for f in "$id" "${fleet[@]}"; do "$bin/mkve-vm" delete "$f"; done

# mkve-web: a machine made from a published directory is told the newer
# bundle published there, and its button upgrades it with upgrade's checks.
"$bin/mkve-bundle" --no-config -q --publish "$work/pub" "$work/ntp1.bun" >/dev/null || exit 1
w=$("$bin/mkve-vm" -q create --start "$work/pub/ntp1.bun")
port=18497
nsenter --net="/run/netns/$ns" "$bin/mkve-web" --listen "127.0.0.1:$port" -c "$LIBVIRT_DEFAULT_URI" 2>"$work/web.log" &
web_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/web.log" 2>/dev/null && break; sleep 0.1; done
# api METHOD PATH: mkve-web's answer, its HTTP status on the last line
api() { nsenter --net="/run/netns/$ns" curl -s -X "$1" -w '\n%{http_code}' "http://127.0.0.1:$port$2"; }
# update_is WANT: the machine's update, as "VERSION BUNDLE", or "none"
update_is() {
    test "$(api GET "/api/machines/$w/update" | sed '$d' | python3 -c 'import json,sys; u=json.load(sys.stdin)["update"]; print("none" if u is None else u["version"] + " " + u["bundle"])')" = "$1"
}
check "mkve-web: no update while its directory holds nothing newer" update_is none
"$bin/mkve-bundle" --no-config -q --publish "$work/pub" "$work/ntp2.bun" "$work/other.bun" >/dev/null || exit 1
check "  with 2.0 published beside it, its update is 2.0, that bundle" update_is "2.0 $work/pub/ntp2.bun"
api GET "/machines/$w" >"$work/page.html"
check "  its page says so, with the button" sh -c \
    "grep -q 'Update available: <strong>2.0</strong>' '$work/page.html' && grep -q 'upgrade to 2.0' '$work/page.html'"
api POST "/api/machines/$w/upgrade" >"$work/web-upgrade.out"
api GET /api/log >"$work/web-log.json"
v=$(version_of "$w")
check "  the button's upgrade (API): on 2.0 ($v), logged as upgrade's command line" sh -c \
    "tail -1 '$work/web-upgrade.out' | grep -qx 200 && test '$v' = 2.0 && grep -q 'upgrade $w $work/pub/ntp2.bun' '$work/web-log.json'"
check "  NTP answers on 2.0" ntp "$w" 60
check "  and no update is left" update_is none
kill "$web_pid" 2>/dev/null; wait "$web_pid" 2>/dev/null
"$bin/mkve-vm" delete "$w"
check "delete frees every base" test "$(bases)" = 0

# qemu: the file-level delta laid on a new overlay of the new base.
vm() { "$bin/mkve-vm" -c "$qemu" "$@"; }
awaited ntp-qemu || exit 1
qid=$(vm -q create --start "$work/ntp1-qemu.bun")
check "a qemu machine on 1.0 answers NTP ($qid)" ntp "$qid" 420
t0=$(date +%s%N)
vmn -c "$qemu" upgrade --timeout 420 "$qid" "$work/ntp2-qemu.bun" >"$work/out" 2>"$work/err"
rc=$?
t1=$(date +%s%N)
check "upgrade of the qemu machine to 2.0 (exit $rc, $(( (t1 - t0) / 1000000 )) ms; $(grep -o '[0-9]* ms down' "$work/out"))" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$work/err"
check "  info names 2.0" test "$(version_of "$qid" "$qemu")" = 2.0
check "  NTP answers" ntp "$qid" 120
top_img=$(virsh -c "$qemu" domblklist "ntp-server-$qid" | awk '$2 ~ /\.qcow2$/ && $2 !~ /seed/ {print $2}')
vm stop --force "$qid"
qemu-img convert -U -O raw "$top_img" "$work/flat.img"
check "  its disk is the new base's with what the guest had made of its seed" sh -c \
    "debugfs -R 'cat /etc/mkve-upgrade-test' '$work/flat.img' 2>/dev/null | grep -qx 2.0 && debugfs -R 'cat /etc/hostname' '$work/flat.img' 2>/dev/null | grep -qx 'ntp-server-$qid' && debugfs -R 'cat /var/lib/mkve/seeded' '$work/flat.img' 2>/dev/null | grep -q 'seeded from'"
check "  dpkg there has chrony $chrony_new, the local mirror's" \
    test "$(debugfs -R 'cat /var/lib/dpkg/status' "$work/flat.img" 2>/dev/null | dpkg_chrony)" = "$chrony_new"
rm -f "$work/flat.img"
vmn -c "$qemu" upgrade --rollback "$qid"
check "  rolled back: 1.0, on its old disk again" sh -c \
    "test \"\$(virsh -c '$qemu' domblklist 'ntp-server-$qid' | awk '\$2 ~ /\\.qcow2\$/ && \$2 !~ /seed/ {print \$2}')\" != '$top_img' && test ! -e '$top_img'"
check "  info names 1.0" test "$(version_of "$qid" "$qemu")" = 1.0
vm delete "$qid"

echo "upgrade: $passed passed, $failed failed"
[ "$failed" = 0 ]
