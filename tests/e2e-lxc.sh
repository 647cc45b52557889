#!/bin/bash
# End to end, with a real libvirtd inside a network namespace made here
# (tests/harness/libvirtd-netns): the mkve network, the ntp-server template
# built for lxc from Debian packages, a container created and started from
# the bundle, a real NTP query answered at 192.0.2.ID from inside the
# namespace, then stop and delete leaving nothing; ID allocation under 50
# concurrent creates and a create killed with SIGKILL; and the same service
# as a qemu guest (TCG), booted and queried the same way. Root's password
# and key are set at create, and root logs in on the console.
# Run by `make test` after the cargo tests, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins e2e debug
# (the first machine is made with MKVE_STATEDIR=state from $work: the same place)
one_node e2e mkve-e2e

# The service, end to end.
"$bin/mkve-bundle" --no-config -q -H lxc --force-no-sign -o "$work/ntp.bun" ntp-server || exit 1
# A relative state directory too: mkve must hand libvirt absolute paths.
# Root's password and key are set before the first boot.
echo 'e2e-Secret 1' >"$work/password"
key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eXampleKeyForMkveE2eTestsOnly0000000000 e2e'
echo "$key" >"$work/key.pub"
id=$(cd "$work" && MKVE_STATEDIR=state "$bin/mkve-vm" -q create --allow-unsigned --start \
    --root-password-file password --ssh-key key.pub "$work/ntp.bun")
check "create prints an ID from 100 up ($id)" test "${id:-0}" -ge 100
check "the bundle carries no build host's hostname or resolv.conf" sh -c \
    "! tar -xOf '$work/ntp.bun' rootfs.tar.zst | zstd -dc | tar -t | grep -Ex '(\./)?etc/(hostname|resolv\.conf)'"
check "the machine's host name is its name" test "$(cat "$MKVE_STATEDIR/vms/$id/rootfs/etc/hostname")" = "ntp-server-$id"
check "its resolver is the mkve network's" grep -qx "nameserver 192.0.2.1" "$MKVE_STATEDIR/vms/$id/rootfs/etc/resolv.conf"
check "root's key is in its authorized_keys" grep -qxF "$key" "$MKVE_STATEDIR/vms/$id/rootfs/root/.ssh/authorized_keys"
check "root logs in on the console with the password" \
    "$top/tests/harness/console-login" 'e2e-Secret 1' 120 "$bin/mkve-vm" console "$id"
check "the machine has its DHCP entry" test "$(hosts)" = 1
check "its ID completes in the shell" sh -c "COMPLETE=bash _CLAP_IFS='
' _CLAP_COMPLETE_INDEX=2 _CLAP_COMPLETE_COMP_TYPE=9 _CLAP_COMPLETE_SPACE=true \
    '$bin/mkve-vm' -- mkve-vm start '' | grep -qx '$id'"
check "NTP answers at 192.0.2.$id inside the namespace" \
    "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id" 180
check "info shows it running at its address" sh -c "'$bin/mkve-vm' info '$id' | grep -q '^address    192.0.2.$id\$'"
check "and its bundle, taken unsigned, as not verified" sh -c \
    "'$bin/mkve-vm' info '$id' | grep -qx 'signature  not verified' && '$bin/mkve-vm' info --json '$id' | grep -q '\"signed_by\": null'"
"$bin/mkve-vm" autostart "$id"
check "autostart turns on" sh -c "'$bin/mkve-vm' info --json '$id' | grep -q '\"autostart\": true'"
check "stop waits until the container is off" sh -c \
    "'$bin/mkve-vm' stop --timeout 90 '$id' && '$bin/mkve-vm' list | grep -q '^$id .*shut off'"
"$bin/mkve-vm" start "$id"
"$bin/mkve-vm" stop --force "$id"
check "stop --force stops it" sh -c "'$bin/mkve-vm' list | grep -q '^$id .*shut off'"
"$bin/mkve-vm" console "$id" </dev/null 2>"$work/console.err"; rc=$?
check "console on a stopped machine: exit 69, told why" \
    test "$rc $(cat "$work/console.err")" = "69 mkve-vm: machine $id: not running: mkve-vm start it first"
# Bases (mkve-vm(1), BASES): the machine stands on its bundle's base, an
# overlay mount; a second machine shares it, and detach makes one whole.
base_of() { "$bin/mkve-vm" bases --json | python3 -c 'import json,sys; print(" ".join(b["digest"] + ":" + ",".join(b["machines"]) for b in json.load(sys.stdin)))'; }
b=$(base_of)
check "the machine stands on its bundle's base ($b)" sh -c "echo '$b' | grep -qx '[0-9a-f]\{64\}:$id'"
check "its root is an overlay mount" mountpoint -q "$MKVE_STATEDIR/vms/$id/rootfs"
id2=$("$bin/mkve-vm" -q create --allow-unsigned "$work/ntp.bun")
b=$(base_of)
check "a second machine shares the base ($b)" sh -c "echo '$b' | grep -qx '[0-9a-f]\{64\}:$id,$id2'"
check "and takes under 10 MB of its own ($(du -skx "$MKVE_STATEDIR/vms/$id2" | cut -f1) KiB)" \
    test "$(du -skx "$MKVE_STATEDIR/vms/$id2" | cut -f1)" -lt 10240
check "with its own host name" test "$(cat "$MKVE_STATEDIR/vms/$id2/rootfs/etc/hostname")" = "ntp-server-$id2"
check "the first machine's files are not the second's" test "$(cat "$MKVE_STATEDIR/vms/$id/rootfs/etc/hostname")" = "ntp-server-$id"
"$bin/mkve-vm" detach "$id2"
check "detach makes its root a plain directory" sh -c \
    "! mountpoint -q '$MKVE_STATEDIR/vms/$id2/rootfs' && test -x '$MKVE_STATEDIR/vms/$id2/rootfs/usr/sbin/chronyd' && test ! -e '$MKVE_STATEDIR/vms/$id2/upper'"
check "and the base holds only the first machine" sh -c "'$bin/mkve-vm' bases --json | grep -q '\"$id\"' && ! '$bin/mkve-vm' bases --json | grep -q '\"$id2\"'"
"$bin/mkve-vm" start "$id2"
check "the detached machine answers NTP" "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$id2" 120
"$bin/mkve-vm" -q delete "$id2"
# A start mkve did not ask for (autostart at the node's boot, virsh start)
# finds the root mounted by libvirt's lxc hook (here in the test daemon's
# mount namespace, a slave of the node's: the service answering says it).
"$bin/mkve-vm" stop --force "$id"
umount "$MKVE_STATEDIR/vms/$id/rootfs"
virsh -q start "ntp-server-$id" >/dev/null
check "virsh start of an unmounted machine mounts its root (libvirt's lxc hook)" sh -c \
    "'$harness' exec '$ns' '$top/tests/harness/ntp-query' '192.0.2.$id' 120"
(cd "$work" && MKVE_STATEDIR=state "$bin/mkve-vm" delete "$id")
check "delete removes the base with its last machine" test -z "$(ls -A "$MKVE_STATEDIR/bases")"
check "delete leaves no domain" test -z "$(machines)"
check "delete leaves no files" test ! -e "$MKVE_STATEDIR/vms/$id"
check "delete leaves no DHCP entry" test "$(hosts)" = 0
check "the ID lock is free" flock -n "$MKVE_LOCKDIR/ids.lock" true

# The qemu part's bundle is built from here on, while the rest of the lxc
# part runs (not while the first container starts and stops: its build may
# be the first of the qemu layer, a whole mmdebstrap).
ahead ntp-qemu "$bin/mkve-bundle" --no-config -q -H qemu --force-no-sign -o "$work/ntp-qemu.bun" ntp-server

# IDs under concurrency: a tiny bundle, defined only.
root=$work/tiny-root
busybox_root "$root"
tiny_bundle "$root" "$work/tiny.bun" --force-no-sign || exit 1
pids=()
for i in $(seq 50); do "$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" >"$work/id.$i" 2>"$work/err.$i" & pids+=($!); done
wait "${pids[@]}"
check "50 concurrent creates succeed" test "$(cat "$work"/err.* | wc -c)" = 0
# What they said, for the log, if anything.
cat "$work"/err.* | sort | uniq -c | sort -rn | head -10 | sed 's/^/# /'
check "50 concurrent creates get 50 distinct IDs" test "$(sort -u "$work"/id.* | grep -c .)" = 50
check "and 50 DHCP entries" test "$(hosts)" = 50
check "and one base, made once under its lock ($(ls "$MKVE_STATEDIR/bases" | wc -l))" test "$(ls "$MKVE_STATEDIR/bases" | wc -l)" = 1
"$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" >/dev/null & victim=$!
sleep 0.3; kill -KILL "$victim" 2>/dev/null; wait "$victim" 2>/dev/null
after=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
check "a create after one killed with SIGKILL works ($after)" test -n "$after"
piped=$(cat "$work/tiny.bun" | "$bin/mkve-vm" -v create --allow-unsigned - 2>"$work/verbose")
check "a create reads its bundle from a pipe ($piped)" test -n "$piped"
check "and -v shows the domain XML it defined" grep -q "<domain type='lxc'>" "$work/verbose"
check "no ID is held twice" test "$(machines | tr ' ' '\n' | sort | uniq -d | wc -l)" = 0
# Deletes racing creates: an ID is free only once its delete has finished,
# so no create gets an ID still being deleted, and no delete removes what a
# create made.
bad=0
for i in $(seq 10); do
    victim=$(machines | cut -d' ' -f1)
    "$bin/mkve-vm" -q delete "$victim" 2>"$work/race-delete.$i" & del=$!
    new=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" 2>"$work/race-create.$i") || bad=$((bad + 1))
    wait "$del" || bad=$((bad + 1))
    [ -d "$MKVE_STATEDIR/vms/$new/rootfs" ] || { echo "race $i: machine $new has no root" >&2; bad=$((bad + 1)); }
done
check "10 deletes racing creates all succeed, and every new machine has its root" test "$bad" = 0
cat "$work"/race-* >&2
for id in $(machines); do "$bin/mkve-vm" delete "$id" || failed=$((failed + 1)); done
check "deleting them all leaves no entry" test "$(hosts)" = 0

# Network drift: an entry another tool left on 192.0.2.100 holds that ID;
# a machine undefined behind mkve's back is an orphan that delete clears.
virsh -q net-update mkve-network add ip-dhcp-host \
    "<host mac='00:16:3e:12:34:56' name='stranger' ip='192.0.2.100'/>" --live --config
skip=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
check "a create skips the ID whose address another tool's entry holds ($skip)" test "$skip" = 101
check "mkve-net status says the entry is not mkve's" sh -c "'$bin/mkve-net' status | grep -q 'stranger .*not mkve'"
virsh -q net-update mkve-network delete ip-dhcp-host \
    "<host mac='00:16:3e:12:34:56' name='stranger' ip='192.0.2.100'/>" --live --config
virsh -q undefine "$("$bin/mkve-vm" info --json "$skip" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')" >/dev/null
check "a machine undefined behind mkve's back is listed as an orphan" \
    sh -c "'$bin/mkve-vm' list | grep -q '^$skip .*orphan.*(DHCP entry, files)'"
"$bin/mkve-vm" -q delete "$skip"
check "delete clears an orphan's entry and files" test "$(hosts) $(machines)" = "0 "
check "and its files" test ! -e "$MKVE_STATEDIR/vms/$skip"
again=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
check "the ID is free again ($again)" test "$again" = 100
# A base changed behind mkve's back is refused, by its fingerprint at
# create and by its digest with bases --verify.
tiny_base=$(ls -d "$MKVE_STATEDIR"/bases/*/rootfs)
echo >>"$tiny_base/bin/busybox"
"$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" 2>"$work/err"; rc=$?
check "a create on a changed base fails with 65, saying so" sh -c "test $rc = 65 && grep -q 'was changed after it was made' '$work/err'"
"$bin/mkve-vm" bases --verify >"$work/verify" 2>&1; rc=$?
check "bases --verify finds it changed (65)" sh -c "test $rc = 65 && grep -q 'CHANGED' '$work/verify'"
nobase=$("$bin/mkve-vm" -q create --allow-unsigned --no-base "$work/tiny.bun")
check "--no-base makes a private root ($nobase)" sh -c "test -n '$nobase' && ! mountpoint -q '$MKVE_STATEDIR/vms/$nobase/rootfs' && test ! -e '$MKVE_STATEDIR/vms/$nobase/base'"
"$bin/mkve-vm" -q delete "$nobase"
"$bin/mkve-vm" -q delete "$again"
check "bases --prune has nothing left to remove" test -z "$("$bin/mkve-vm" bases --prune)$(ls -A "$MKVE_STATEDIR/bases")"

# The same service under qemu (domain type qemu: TCG, no /dev/kvm): a qcow2
# overlay of the bundle's base disk, grown to 3G by the guest at its first
# boot, with its seed disk; direct kernel boot from the base's kernel.
awaited ntp-qemu || exit 1
qid=$("$bin/mkve-vm" -c "$qemu" -q create --allow-unsigned --start --disk-size 3G "$work/ntp-qemu.bun")
check "a qemu machine is created and started ($qid)" test -n "$qid"
qbase=$(ls -d "$MKVE_STATEDIR"/bases/*/disk.img)
check "its disk is a qcow2 overlay of its bundle's base disk" sh -c \
    "qemu-img info -U --output=json '$MKVE_STATEDIR/vms/$qid/disk.qcow2' | grep -q '\"backing-filename\": \"$qbase\"'"
check "its disk is the 3G asked for" sh -c \
    "qemu-img info -U --output=json '$MKVE_STATEDIR/vms/$qid/disk.qcow2' | grep -q '\"virtual-size\": 3221225472'"
check "its seed disk is root's only" test "$(stat -c %a "$MKVE_STATEDIR/vms/$qid/seed.img")" = 600
if [ -n "$qid" ]; then
    check "NTP answers at 192.0.2.$qid from the qemu guest" \
        "$harness" exec "$ns" "$top/tests/harness/ntp-query" "192.0.2.$qid" 420
else
    check "NTP answers from the qemu guest (none was made)" false
fi
check "the qemu guest shuts down when asked (ACPI), and stop waits for it" sh -c \
    "'$bin/mkve-vm' -c '$qemu' stop --timeout 180 '$qid' && '$bin/mkve-vm' -c '$qemu' list | grep -q '^$qid .*shut off'"
# What the guest made of its seed and disk, read off a flat copy.
qemu-img convert -U -O raw "$MKVE_STATEDIR/vms/$qid/disk.qcow2" "$work/flat.img"
check "the guest laid its seed over its root at the first boot" sh -c \
    "debugfs -R 'cat /var/lib/mkve/seeded' '$work/flat.img' 2>/dev/null | grep -q 'seeded from /dev/vdb'"
check "with its own host name" sh -c "debugfs -R 'cat /etc/hostname' '$work/flat.img' 2>/dev/null | grep -qx 'ntp-server-$qid'"
check "and grew its root file system to the 3G disk" sh -c \
    "dumpe2fs -h '$work/flat.img' 2>/dev/null | awk -F: '/^Block count/ {n=\$2} /^Block size/ {b=\$2} END {exit !(n*b > 3000000000)}'"
rm -f "$work/flat.img"
qid2=$("$bin/mkve-vm" -c "$qemu" -q create --allow-unsigned "$work/ntp-qemu.bun")
check "a second qemu machine on the base takes under 10 MB of its own ($(du -sk "$MKVE_STATEDIR/vms/$qid2" | cut -f1) KiB)" \
    test "$(du -sk "$MKVE_STATEDIR/vms/$qid2" | cut -f1)" -lt 10240
# A disk base removed under its machines (issue 20): every command that
# acts on one of them refuses at once (65), naming the base and machines;
# a create will not make the disk base again (their overlays would stand
# on another image); bases lists it as missing. Then it is put back.
qbase_dir=$(dirname "$qbase") qshort=$(basename "$(dirname "$qbase")" | cut -c1-12)
mv "$qbase_dir" "$MKVE_STATEDIR/base-away"  # the same mount: a rename, inodes kept
refused() { # refused WHAT ARGS...: exit 65 and the words
    "$bin/mkve-vm" -c "$qemu" "$@" >/dev/null 2>"$work/refused.err"
    local code=$?
    [ "$code" = 65 ] && grep -q "base $qshort is missing (machines on it: .*$qid2" "$work/refused.err" ||
        { echo "exit $code: $(cat "$work/refused.err")" >&2; return 1; }
}
check "a disk base gone: detach refuses (65), naming it and its machines" refused detach "$qid2"
check "  start refuses too, at once" refused start "$qid2"
check "  a create of its bundle will not make the disk base again" refused create --allow-unsigned "$work/ntp-qemu.bun"
check "  bases lists it as missing, with its machines" sh -c \
    "'$bin/mkve-vm' bases | grep -q '^$qshort - *MISSING .*$qid,$qid2'"
check "  bases --verify says so and exits 65" sh -c \
    "'$bin/mkve-vm' bases --verify >/dev/null 2>'$work/verify.err'; test \$? = 65 && grep -q 'is missing' '$work/verify.err'"
mv "$MKVE_STATEDIR/base-away" "$qbase_dir"
"$bin/mkve-vm" -c "$qemu" detach "$qid2"
check "detach gives it a whole disk, kernel and initrd of its own" sh -c \
    "! qemu-img info -U '$MKVE_STATEDIR/vms/$qid2/disk.qcow2' | grep -q backing && test -s '$MKVE_STATEDIR/vms/$qid2/vmlinuz' && virsh -c '$qemu' dumpxml ntp-server-$qid2 | grep -q '<kernel>$MKVE_STATEDIR/vms/$qid2/vmlinuz</kernel>'"
"$bin/mkve-vm" -c "$qemu" delete "$qid2"
check "the base stays while a machine stands on it" test -e "$qbase"
"$bin/mkve-vm" -c "$qemu" delete "$qid"
check "and goes with the last one" test -z "$(ls -A "$MKVE_STATEDIR/bases")"
check "deleting the qemu machine leaves no files" test ! -e "$MKVE_STATEDIR/vms/$qid"
check "and no DHCP entry" test "$(hosts)" = 0

echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
