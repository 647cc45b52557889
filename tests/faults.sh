#!/bin/bash
# Faults, as root, against a real libvirtd in a network namespace of the
# test's own (tests/harness/libvirtd-netns):
#   - kill -9 at random points of mkve-bundle (a build from a root, with a
#     hook) and of mkve-vm create --start: after each, no output under its
#     final name unless it is complete, no lock left held, no process left;
#     the next run succeeds, and its sweep leaves no work root, no domain
#     or DHCP entry without its machine;
#   - a full disk (a 64 MiB tmpfs) under a build, an --extract and a
#     create: exit 73 naming the path, nothing half-made left;
#   - create, delete, start and stop racing on the same and on different
#     machines: no lost or doubled ID, no machine without its root;
#   - kill -9 while a create makes a base: no base looks finished that is
#     not; the next create works; bases --prune clears what was left;
#   - kill -9 of snapshot, revert, backup and restore: the machine whole,
#     running if it ran, no half snapshot, archive or restored machine.
# KILL_ROUNDS (default 5 each) and RACE_ROUNDS (default 10) set the rounds;
# `make faults` runs 20 and 50. Prints the figures and "N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins faults debug
ns=mkve-faults
kill_rounds=${KILL_ROUNDS:-5}
race_rounds=${RACE_ROUNDS:-10}
suite_work faults
mkdir -p "$work/tmp" "$work/out"
export MKVE_CACHEDIR=$work/cache TMPDIR=$work/tmp
passed=0 failed=0
# A random delay of 0 to $1 tenths of a second.
pause() { sleep "$(awk -v m="$1" -v r="$RANDOM" 'BEGIN { printf "%.2f", (r % (m * 10 + 1)) / 100 }')"; }
# Every lock file in MKVE_LOCKDIR can be taken now.
locks_free() {
    local f
    for f in "$MKVE_LOCKDIR"/*.lock; do
        [ -e "$f" ] || continue
        flock -n "$f" true || { echo "held: $f" >&2; return 1; }
    done
}
json_list() { "$bin/mkve-vm" list --json; }
machines() { json_list | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin) if m["state"] != "orphan"))'; }
orphans() { json_list | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin) if m["state"] == "orphan"))'; }
hosts() { "$bin/mkve-net" status --json | python3 -c 'import json,sys; print(" ".join(sorted(str(h["id"]) for h in json.load(sys.stdin)["hosts"])))'; }
sorted() { tr ' ' '\n' | grep . | sort | tr '\n' ' '; }

cleanup() {
    mountpoint -q "$work/small" && umount "$work/small"
    for id in $(json_list 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))' 2>/dev/null); do
        "$bin/mkve-vm" delete "$id" >/dev/null 2>&1
    done
    "$bin/mkve-net" delete --force >/dev/null 2>&1
    "$harness" stop "$ns"
    rm -rf "$work"
}
trap cleanup EXIT

# A small root with a few MB to pack, and a template whose hook takes a
# moment, so that kills land in every phase of a build.
root=$work/root
busybox_root "$root"
mkdir -p "$root/var/lib"
head -c 8M /dev/urandom >"$root/var/lib/data"
tpl=$work/tpl
mkdir -p "$tpl/hooks" "$tpl/hooks-lists" "$tpl/version" "$tpl/packages-lists"
echo lxc >"$tpl/hypervisors"; echo template_version=1 >"$tpl/version/lxc"
echo chrony >"$tpl/packages-lists/lxc"; echo 10-busy >"$tpl/hooks-lists/lxc"
printf '#!/bin/sh\ni=0\nwhile [ $i -lt 30000 ]; do i=$((i+1)); done\n' >"$tpl/hooks/10-busy"
chmod +x "$tpl/hooks/10-busy"
build() { "$bin/mkve-bundle" --no-config -q -H lxc --force-no-sign --rootfs "$root" -o "$1" "$tpl"; }

# --- kill -9 of mkve-bundle --------------------------------------------
held=0
for i in $(seq "$kill_rounds"); do
    out=$work/out/b$i.bun
    build "$out" 2>/dev/null & pid=$!
    pause 15
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    if [ -e "$out" ] && ! "$bin/mkve-bundle" --allow-unsigned --verify "$out" >/dev/null; then
        echo "round $i: $out is there but incomplete" >&2; held=$((held + 1))
    fi
    locks_free || held=$((held + 1))
    # The kernel kills the hook's namespace as the tool dies: give it a
    # moment, no more.
    for _ in $(seq 50); do pgrep -f "^$bin/mkve-bundle|10-busy" >/dev/null || break; sleep 0.1; done
    if pgrep -f "^$bin/mkve-bundle|10-busy" >/dev/null; then
        echo "round $i: a process is left: $(pgrep -af "^$bin/mkve-bundle|10-busy")" >&2; held=$((held + 1))
    fi
done
check "kill -9 of mkve-bundle, $kill_rounds rounds: no half output, no lock, no process" test "$held" = 0
sleep 11  # older than the sweep's age (scratch::SWEEP_AGE)
check "the next build succeeds" build "$work/out/after.bun"
check "and its sweep leaves no work root" test -z "$(ls -A "$TMPDIR" | grep '^mkve-bundle\.')"
check "nor any output a killed run was writing" test -z "$(ls -A "$work/out" | grep -v '\.bun$')"

# --- kill -9 of mkve-vm create --start ------------------------------------
start_node "$ns"
"$bin/mkve-net" create || exit 1
tiny_bundle "$root" "$work/tiny.bun" --force-no-sign || exit 1
held=0
for i in $(seq "$kill_rounds"); do
    "$bin/mkve-vm" -q create --allow-unsigned --start "$work/tiny.bun" >/dev/null 2>&1 & pid=$!
    pause 10
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    locks_free || held=$((held + 1))
done
check "kill -9 of mkve-vm create --start, $kill_rounds rounds: no lock left held" test "$held" = 0
sleep 11
next=$("$bin/mkve-vm" -q create --allow-unsigned --start "$work/tiny.bun")
check "the next create succeeds ($next)" test -n "$next"
check "and leaves no create half-made (no marker)" test -z "$(ls "$MKVE_STATEDIR/vms" | grep '\.creating$')"
check "no domain or DHCP entry without its machine" test "$(machines | sorted)" = "$(hosts | sorted)"
check "no orphan" test -z "$(orphans)"
check "no staging directory" test -z "$(ls -A "$MKVE_STATEDIR/vms" | grep '^\.new\.')"
for id in $(machines); do
    [ -d "$MKVE_STATEDIR/vms/$id/rootfs" ] || { echo "machine $id has no root" >&2; failed=$((failed + 1)); }
done
for id in $(machines); do "$bin/mkve-vm" -q delete "$id"; done

# --- a create refused after its ID was taken leaves nothing (issue 20) ------
# The root has no /etc/shadow: a root password is refused (65) once the ID
# is taken, on a base and with a private root alike. Only a killed create
# leaves a marker; the next create then has nothing to sweep or warn of.
echo 'pw 1' >"$work/pw"
listing() { ls -A "$MKVE_STATEDIR/vms" | grep -v '^bases$' | sort | tr '\n' ' '; }
before=$(listing) hosts_before=$(hosts | sorted)
for how in "" --no-base; do
    # shellcheck disable=SC2086
    "$bin/mkve-vm" -q create --allow-unsigned $how --root-password-file "$work/pw" "$work/tiny.bun" \
        >/dev/null 2>"$work/refused.err"
    code=$?
    check "a create refused after its ID was taken ${how:-on a base} exits 65 ($code)" test "$code" = 65
    check "  and names the cause" grep -q "has no entry for root\|cannot read the root's /etc/shadow" "$work/refused.err"
    check "  and leaves no marker, directory, domain or DHCP entry" \
        test "$(listing)|$(hosts | sorted)|$(virsh -q list --all --name | grep -c .)" = "$before|$hosts_before|0"
done
next=$("$bin/mkve-vm" create --allow-unsigned "$work/tiny.bun" 2>"$work/next.err")
check "the next create has no killed create to speak of" \
    bash -c "test -n '$next' && ! grep -qi killed '$work/next.err'"
"$bin/mkve-vm" -q delete "$next"

# --- an lxc base changed or removed under its machines (issue 20) ----------
# A same-size edit with its mtime put back (the fingerprint covers ctime,
# which no one sets back), then the base removed: start (and libvirt's own
# start through the lxc hook) refuse at once with 65 naming the base and
# its machines; bases and bases --verify say so; delete still cleans up.
bid=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
bdigest=$(cat "$MKVE_STATEDIR/vms/$bid/base") bshort=$(cut -c1-12 "$MKVE_STATEDIR/vms/$bid/base")
data=$MKVE_STATEDIR/bases/$bdigest/rootfs/var/lib/data
printf 'X' | dd of="$data" bs=1 seek=4096 conv=notrunc status=none
touch -d "@$(stat -c %Y "$MKVE_STATEDIR/bases/$bdigest/rootfs/var/lib")" "$data"
started=$SECONDS
"$bin/mkve-vm" start "$bid" 2>"$work/changed.err"; code=$?
check "start on a base edited in place (same size, same mtime) exits 65 at once ($code, $((SECONDS - started)) s)" \
    test "$code" = 65 -a $((SECONDS - started)) -lt 10
check "  naming the base and its machine" grep -q "base $bshort of .* was changed after it was made (machines on it: $bid)" "$work/changed.err"
bname=$("$bin/mkve-vm" info --json "$bid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')
check "  virsh start (libvirt's lxc hook) refuses it too" sh -c "! virsh -q start '$bname' 2>/dev/null"
check "  bases --verify: CHANGED, exit 65" sh -c "'$bin/mkve-vm' bases --verify >'$work/v.out' 2>/dev/null; test \$? = 65 && grep -q CHANGED '$work/v.out'"
"$bin/mkve-vm" -q delete "$bid"
bid=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
bdigest=$(cat "$MKVE_STATEDIR/vms/$bid/base")
rm -rf "$MKVE_STATEDIR/bases/$bdigest"
"$bin/mkve-vm" start "$bid" 2>"$work/missing.err"; code=$?
check "start on a base removed by rm -rf exits 65 ($code)" test "$code" = 65
check "  naming the base and its machine" grep -q "base $bshort is missing (machines on it: $bid)" "$work/missing.err"
check "  bases lists it as missing with its machine" sh -c "'$bin/mkve-vm' bases | grep -q '^$bshort - *MISSING .* $bid\$'"
check "  bases --verify exits 65" sh -c "! '$bin/mkve-vm' bases --verify >/dev/null 2>&1"
check "  delete still removes the machine" "$bin/mkve-vm" -q delete "$bid"
check "  and then nothing is missing" test -z "$("$bin/mkve-vm" bases | tail -n +2)"

# --- kill -9 while a base is made (mkve-vm(1), BASES) ------------------------
# A root of 100 MB: its first create unpacks it and makes the base for about
# a second. Each round's machine (if the create finished) is deleted, and
# its base with it, so every round makes the base again.
based=$work/based-root
cp -a "$root" "$based"
head -c 100M /dev/urandom >"$based/var/lib/big"
tiny_bundle "$based" "$work/based.bun" --force-no-sign || exit 1
rm -rf "$based"
unfinished=0 midway=0
scratch() { ls -A "$MKVE_STATEDIR/bases" 2>/dev/null | grep '^\.new\.' | sort | tr '\n' ' '; }
for i in $(seq "$kill_rounds"); do
    before=$(scratch)
    "$bin/mkve-vm" -q create --allow-unsigned "$work/based.bun" >/dev/null 2>&1 & pid=$!
    # Odd rounds at a random point; even rounds once the base's scratch
    # directory appears (then within 0.2 s): the window of making it is
    # short, and a random point alone may miss it every time.
    if [ $((i % 2)) = 1 ]; then
        pause 15
    else
        for _ in $(seq 500); do
            [ "$(scratch)" = "$before" ] || break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
        pause 2
    fi
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    [ "$(scratch)" = "$before" ] || midway=$((midway + 1))
    for b in "$MKVE_STATEDIR"/bases/*; do
        [ -e "$b" ] || continue
        [ -s "$b/base.json" ] || { echo "round $i: $b has no record" >&2; unfinished=$((unfinished + 1)); }
    done
    sleep 0.5
    for id in $(machines); do "$bin/mkve-vm" -q delete "$id"; done
done
check "kill -9 while a base is made, $kill_rounds rounds ($midway killed mid-making): no base looks finished that is not" test "$unfinished" = 0
sleep 11
m=$("$bin/mkve-vm" -q create --allow-unsigned "$work/based.bun")
check "the next create makes the base, or stands on it ($m)" sh -c "test -n '$m' && test -s \"\$(dirname \"\$(ls -d '$MKVE_STATEDIR'/bases/*/rootfs)\")/base.json\""
"$bin/mkve-vm" -q delete "$m"
"$bin/mkve-vm" -q bases --prune >/dev/null
check "bases --prune leaves no base and nothing killed makers left" test -z "$(ls -A "$MKVE_STATEDIR/bases")"

# --- races ----------------------------------------------------------------
bad=0
for i in $(seq "$race_rounds"); do
    a=$("$bin/mkve-vm" -q create --allow-unsigned --start "$work/tiny.bun")
    b=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
    # On the same machine: delete, start and stop; on others: creates.
    "$bin/mkve-vm" -q delete "$a" 2>"$work/race.d" & p1=$!
    "$bin/mkve-vm" -q stop --force "$a" 2>"$work/race.s" & p2=$!
    "$bin/mkve-vm" -q start "$b" 2>"$work/race.t" & p3=$!
    c=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun" 2>"$work/race.c") || bad=$((bad + 1))
    wait "$p1" || bad=$((bad + 1))
    wait "$p2" || grep -q "no machine $a" "$work/race.s" || bad=$((bad + 1))
    wait "$p3" || bad=$((bad + 1))
    "$bin/mkve-vm" -q delete "$b" || bad=$((bad + 1))
    [ -d "$MKVE_STATEDIR/vms/$c/rootfs" ] || { echo "round $i: machine $c has no root" >&2; bad=$((bad + 1)); }
    [ "$(machines | sorted)" = "$(hosts | sorted)" ] || { echo "round $i: machines $(machines), entries $(hosts)" >&2; bad=$((bad + 1)); }
    "$bin/mkve-vm" -q delete "$c" || bad=$((bad + 1))
done
check "$race_rounds rounds of delete/stop/start/create racing: all as they should, no machine without its root or entry" test "$bad" = 0
check "no ID left behind" test -z "$(machines)$(hosts)$(orphans)"

# --- detach, delete and bases --prune racing start and create ---------------
# On machines on a base: detach racing start of the same machine, delete
# racing start of another, bases --prune racing a create that makes or
# stands on the base. Each ends as one order or the other would: every
# machine is whole (on a base that is there, or with a root of its own),
# no base is pruned under a machine or a create, no entry without machine.
bad=0
for i in $(seq "$race_rounds"); do
    x=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
    y=$("$bin/mkve-vm" -q create --allow-unsigned "$work/tiny.bun")
    "$bin/mkve-vm" -q detach "$x" 2>"$work/r.detach" & p1=$!
    "$bin/mkve-vm" -q start "$x" 2>"$work/r.startx" & p2=$!
    "$bin/mkve-vm" -q delete "$y" 2>"$work/r.delete" & p3=$!
    "$bin/mkve-vm" -q start "$y" 2>"$work/r.starty" & p4=$!
    "$bin/mkve-vm" -q bases --prune >/dev/null 2>"$work/r.prune" & p5=$!
    z=$("$bin/mkve-vm" -q create --allow-unsigned --start "$work/tiny.bun" 2>"$work/r.create") ||
        { echo "round $i: create: $(cat "$work/r.create")" >&2; bad=$((bad + 1)); }
    wait "$p1" || grep -q "running: stop it first" "$work/r.detach" ||
        { echo "round $i: detach: $(cat "$work/r.detach")" >&2; bad=$((bad + 1)); }
    wait "$p2" || { echo "round $i: start $x: $(cat "$work/r.startx")" >&2; bad=$((bad + 1)); }
    wait "$p3" || { echo "round $i: delete $y: $(cat "$work/r.delete")" >&2; bad=$((bad + 1)); }
    wait "$p4" || grep -q "no machine $y" "$work/r.starty" ||
        { echo "round $i: start $y: $(cat "$work/r.starty")" >&2; bad=$((bad + 1)); }
    wait "$p5" || { echo "round $i: prune: $(cat "$work/r.prune")" >&2; bad=$((bad + 1)); }
    for m in $(machines); do
        if [ -e "$MKVE_STATEDIR/vms/$m/base" ]; then
            d=$(cat "$MKVE_STATEDIR/vms/$m/base")
            [ -s "$MKVE_STATEDIR/bases/$d/base.json" ] || { echo "round $i: machine $m's base $d is gone" >&2; bad=$((bad + 1)); }
        elif [ ! -x "$MKVE_STATEDIR/vms/$m/rootfs/bin/busybox" ]; then
            echo "round $i: machine $m, detached, has no root" >&2; bad=$((bad + 1))
        fi
    done
    [ "$(machines | sorted)" = "$(hosts | sorted)" ] || { echo "round $i: machines $(machines), entries $(hosts)" >&2; bad=$((bad + 1)); }
    for m in $(machines); do "$bin/mkve-vm" -q delete "$m" || bad=$((bad + 1)); done
done
check "$race_rounds rounds of detach/delete/prune racing start/create: each as one order or the other, every machine whole" test "$bad" = 0
check "and nothing is left: no machine, entry or base" test -z "$(machines)$(hosts)$(ls -A "$MKVE_STATEDIR/bases" | grep -v '^\.')"

# --- kill -9 of mkve-vm detach ---------------------------------------------
# A machine on the 100 MB base, detached and killed at a random moment of
# the copy and the moves: it is whole either way (on its base, or with a
# root of its own), no lock is held, and it starts and runs.
held=0
for i in $(seq "$kill_rounds"); do
    k=$("$bin/mkve-vm" -q create --allow-unsigned "$work/based.bun")
    "$bin/mkve-vm" -q detach "$k" >/dev/null 2>&1 & pid=$!
    pause 15
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    locks_free || held=$((held + 1))
    if ! "$bin/mkve-vm" -q start "$k" 2>"$work/k.start"; then
        echo "round $i: machine $k does not start after a killed detach: $(cat "$work/k.start")" >&2; held=$((held + 1))
    elif [ ! -s "$MKVE_STATEDIR/vms/$k/rootfs/var/lib/big" ]; then
        echo "round $i: machine $k started without its root" >&2; held=$((held + 1))
    fi
    "$bin/mkve-vm" -q delete "$k" || held=$((held + 1))
done
check "kill -9 of detach, $kill_rounds rounds: the machine whole and starting, no lock held" test "$held" = 0
check "and nothing of it is left" test -z "$(machines)$(ls "$MKVE_STATEDIR/vms")"

# --- kill -9 of snapshot, revert, backup and restore (issue 22) -------------
# A running machine on the 100 MB base with 20 MB of its own. Killed at a
# random point: a snapshot leaves no lock held and the machine running
# (thawed by the next command if it was frozen), and every snapshot listed
# is whole; a revert leaves the machine whole, with its layer or the
# snapshot's; a backup leaves no file under its name that is not a whole
# archive; a restore leaves no machine but whole ones (the next create's
# sweep undoes a killed one's).
held=0
k=$("$bin/mkve-vm" -q create --allow-unsigned --start "$work/based.bun")
head -c 20M /dev/urandom >"$MKVE_STATEDIR/vms/$k/rootfs/var/lib/mine"
mine=$(sha256sum <"$MKVE_STATEDIR/vms/$k/rootfs/var/lib/mine")
"$bin/mkve-vm" snapshot "$k" first >/dev/null
for i in $(seq "$kill_rounds"); do
    "$bin/mkve-vm" snapshot "$k" "s$i" >/dev/null 2>&1 & pid=$!
    pause 5
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    "$bin/mkve-vm" start "$k" 2>/dev/null  # a command that locks it: thaws it
    locks_free || held=$((held + 1))
    state=$(virsh domstate "$("$bin/mkve-vm" info --json "$k" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')")
    [ "$state" = running ] || { echo "round $i: machine $k is $state after a killed snapshot" >&2; held=$((held + 1)); }
    for s in $("$bin/mkve-vm" snapshots --json "$k" | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))'); do
        [ "$(sha256sum <"$MKVE_STATEDIR/vms/$k/snapshots/$s/upper/var/lib/mine")" = "$mine" ] ||
            { echo "round $i: snapshot $s is not whole" >&2; held=$((held + 1)); }
    done
done
check "kill -9 of snapshot, $kill_rounds rounds: no lock held, the machine running, every snapshot listed whole" test "$held" = 0
"$bin/mkve-vm" stop --force "$k"
held=0
for i in $(seq "$kill_rounds"); do
    rm -f "$MKVE_STATEDIR/vms/$k/upper/var/lib/mine"
    "$bin/mkve-vm" revert "$k" first >/dev/null 2>&1 & pid=$!
    pause 5
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    locks_free || held=$((held + 1))
    [ -d "$MKVE_STATEDIR/vms/$k/upper" ] || { echo "round $i: machine $k has no layer after a killed revert" >&2; held=$((held + 1)); }
    if ! "$bin/mkve-vm" start "$k" 2>"$work/k.start"; then
        echo "round $i: machine $k does not start after a killed revert: $(cat "$work/k.start")" >&2; held=$((held + 1))
    elif [ -e "$MKVE_STATEDIR/vms/$k/rootfs/var/lib/mine" ] &&
        [ "$(sha256sum <"$MKVE_STATEDIR/vms/$k/rootfs/var/lib/mine")" != "$mine" ]; then
        echo "round $i: half a revert: var/lib/mine is neither gone nor the snapshot's" >&2; held=$((held + 1))
    fi
    "$bin/mkve-vm" stop --force "$k" 2>/dev/null
done
check "kill -9 of revert, $kill_rounds rounds: the machine whole and starting, no lock held" test "$held" = 0
"$bin/mkve-vm" start "$k"
held=0
for i in $(seq "$kill_rounds"); do
    rm -f "$work/out/k.bak"
    "$bin/mkve-vm" backup --force-no-sign "$k" -o "$work/out/k.bak" >/dev/null 2>&1 & pid=$!
    pause 5
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    "$bin/mkve-vm" start "$k" 2>/dev/null
    locks_free || held=$((held + 1))
    if [ -e "$work/out/k.bak" ] && ! tar -xOf "$work/out/k.bak" backup.json | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
        echo "round $i: a half backup under its name" >&2; held=$((held + 1))
    fi
done
check "kill -9 of backup, $kill_rounds rounds: no half archive under its name, no lock held" test "$held" = 0
"$bin/mkve-vm" backup --force-no-sign "$k" -o "$work/out/k.bak"
"$bin/mkve-vm" delete "$k"
held=0
for i in $(seq "$kill_rounds"); do
    "$bin/mkve-vm" restore --allow-unsigned --bundle "$work/based.bun" "$work/out/k.bak" >/dev/null 2>&1 & pid=$!
    pause 15
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    locks_free || held=$((held + 1))
    # The next create sweeps what a killed one left; a finished restore's
    # machine must hold the backup's file.
    n=$("$bin/mkve-vm" -q create --allow-unsigned "$work/based.bun")
    for id in $(machines); do
        [ "$id" = "$n" ] && continue
        [ "$(sha256sum <"$MKVE_STATEDIR/vms/$id/rootfs/var/lib/mine" 2>/dev/null)" = "$mine" ] ||
            { echo "round $i: machine $id is a half restore" >&2; held=$((held + 1)); }
    done
    for id in $(machines); do "$bin/mkve-vm" -q delete "$id"; done
done
check "kill -9 of restore, $kill_rounds rounds: no half-restored machine, no lock held" test "$held" = 0
check "and nothing of them is left" test -z "$(machines)$(orphans)$(ls "$MKVE_STATEDIR/vms" | grep -v '^\.new\.')"

# --- a full disk ----------------------------------------------------------
mkdir -p "$work/small"
mount -t tmpfs -o size=64m tmpfs "$work/small"
big=$work/big-root
cp -a "$root" "$big"
head -c 100M /dev/urandom >"$big/var/lib/big"
"$bin/mkve-bundle" --no-config -q -H lxc --force-no-sign --rootfs "$big" -o "$work/small/b.bun" \
    "$top/tests/fixtures/templates/good/two-containers" 2>"$work/err"; rc=$?
check "a build onto a full disk: exit 73 naming the output ($rc: $(head -c 200 "$work/err"))" \
    sh -c "[ $rc = 73 ] && grep -q '$work/small/b.bun' '$work/err'"
check "and nothing is left there" test -z "$(ls -A "$work/small")"
"$bin/mkve-bundle" --no-config -q -H lxc --force-no-sign --rootfs "$big" -o "$work/big.bun" \
    "$top/tests/fixtures/templates/good/two-containers" || exit 1
"$bin/mkve-bundle" --allow-unsigned --extract "$work/big.bun" -C "$work/small/x" 2>"$work/err"; rc=$?
check "--extract onto a full disk: exit 73 naming the path ($rc: $(head -c 200 "$work/err"))" \
    sh -c "[ $rc = 73 ] && grep -q '$work/small/' '$work/err'"
check "and nothing is left there" test -z "$(ls -A "$work/small")"
MKVE_STATEDIR=$work/small/state "$bin/mkve-vm" create --allow-unsigned "$work/big.bun" 2>"$work/err"; rc=$?
check "a create onto a full disk: exit 73 naming the path ($rc: $(head -c 200 "$work/err"))" \
    sh -c "[ $rc = 73 ] && grep -q '$work/small/state' '$work/err'"
check "and leaves no machine, entry or files" \
    test "$(machines)$(hosts)$(ls -A "$work/small/state/vms" 2>/dev/null | grep -v '\.lock$')" = ""
umount "$work/small"

echo "faults: kill rounds $kill_rounds each, race rounds $race_rounds"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
