#!/bin/bash
# Issue 22's figures: snapshots and backups of lxc machines with a
# realistic change (1,000 mails of about 2 KiB under the template's state,
# one configuration file edited), side by side in one run with what
# Proxmox's vzdump writes, a full archive of the machine's root
# (`tar | zstd -T0`): the backup's size and time against the archive's,
# restore (verify, create on the base, lay the delta) against create plus
# copying the changed files in, and snapshot and revert times. Best of
# RUNS (3) each. Uses a private libvirtd in a network namespace of its own
# (tests/harness/libvirtd-netns). Needs root.
#   bench/backup.sh BUNDLE... [--bindir DIR]
# Each BUNDLE an lxc bundle (mkve-bundle -H lxc ntp-server, imap-server).
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
bundles=() bindir=
while [ $# -gt 0 ]; do
    case $1 in
        --bindir) bindir=$2; shift 2 ;;
        *) bundles+=("$(realpath "$1")"); shift ;;
    esac
done
[ ${#bundles[@]} -gt 0 ] || { echo "usage: bench/backup.sh BUNDLE... [--bindir DIR]" >&2; exit 2; }
use_bins bench/backup.sh release "$bindir"
runs=${RUNS:-3}
ns=mkve-bench-keep
suite_work bench-keep
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME" "$MKVE_CONFDIR" 2>/dev/null || mkdir -p "$MKVE_CONFDIR"
gpg --batch --quiet --passphrase '' --quick-gen-key 'mkve bench <bench@example.invalid>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --export >"$MKVE_CONFDIR/trusted.gpg"
cleanup() {
    for id in $(machines 2>/dev/null); do "$bin/mkve-vm" delete "$id" >/dev/null 2>&1; done
    "$harness" stop "$ns"
    gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
start_node "$ns"
"$bin/mkve-net" create >/dev/null

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
min() { [ -z "$1" ] || [ "$2" -lt "$1" ] && echo "$2" || echo "$1"; }
echo "| template | backup | tar \| zstd -T0 | size ratio | time ratio | restore | create + copy-in | snapshot | revert |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for b in "${bundles[@]}"; do
    # A required secret parameter (imap-server's admin_password) is given
    # at create and again at restore (a backup leaves secrets out).
    p=()
    tar -xOf "$b" conf/params 2>/dev/null | grep -q '^admin_password' && p=(--param admin_password=bench-Secret1)
    id=$("$bin/mkve-vm" -q create --allow-unsigned --start "${p[@]}" "$b")
    root=$MKVE_STATEDIR/vms/$id/rootfs
    tmpl=$("$bin/mkve-vm" info --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["template"])')
    # The change: 1,000 mails in a Maildir under the state, a config edit.
    state=$(head -1 < <(grep -v '^#' "$MKVE_DATADIR/templates/$tmpl/state" | grep .))
    mail=$root$state/bench/Maildir/new
    mkdir -p "$mail"
    python3 - "$mail" <<'PY'
import os, sys, random
d = sys.argv[1]
r = random.Random(22)
for i in range(1000):
    body = "".join(r.choice("abcdefghij klmnop\n") for _ in range(2000))
    open(os.path.join(d, f"{1700000000 + i}.M{i}P1.mkve"), "w").write(
        f"From: a{i}@example.invalid\nSubject: mail {i}\n\n{body}\n")
PY
    echo "# edited by the benchmark" >>"$root/etc/hosts"
    bk= tz= rs= cc= sn= rv=
    for i in $(seq "$runs"); do
        rm -f "$work/b.bak" "$work/full.tar.zst"
        s=$(now); "$bin/mkve-vm" backup "$id" -o "$work/b.bak"; e=$(now); bk=$(min "$bk" "$(ms "$s" "$e")")
        s=$(now); tar -C "$root" -cf - . | zstd -q -T0 >"$work/full.tar.zst"; e=$(now); tz=$(min "$tz" "$(ms "$s" "$e")")
        s=$(now); "$bin/mkve-vm" snapshot "$id" "b$i" >/dev/null; e=$(now); sn=$(min "$sn" "$(ms "$s" "$e")")
    done
    bsize=$(stat -c %s "$work/b.bak") fsize=$(stat -c %s "$work/full.tar.zst")
    "$bin/mkve-vm" stop --force "$id"
    for i in $(seq "$runs"); do
        s=$(now); "$bin/mkve-vm" revert "$id" "b$i"; e=$(now); rv=$(min "$rv" "$(ms "$s" "$e")")
    done
    # The delta's files, for the copy-in the reference does.
    mkdir -p "$work/changed"
    tar -xOf "$work/b.bak" delta.tar.zst | zstd -qdc | tar -x -C "$work/changed"
    "$bin/mkve-vm" delete "$id"
    for i in $(seq "$runs"); do
        s=$(now); r=$("$bin/mkve-vm" -q restore --allow-unsigned "${p[@]}" "$work/b.bak"); e=$(now); rs=$(min "$rs" "$(ms "$s" "$e")")
        "$bin/mkve-vm" delete "$r"
        s=$(now)
        c=$("$bin/mkve-vm" -q create --allow-unsigned "${p[@]}" "$b")
        cp -a "$work/changed/." "$MKVE_STATEDIR/vms/$c/rootfs/"
        e=$(now); cc=$(min "$cc" "$(ms "$s" "$e")")
        "$bin/mkve-vm" delete "$c"
    done
    rm -rf "$work/changed"
    echo "| $tmpl | $bsize B, $bk ms | $fsize B, $tz ms | $(python3 -c "print(round($bsize/$fsize, 4))")× | $(python3 -c "print(round($bk/$tz, 2))")× | $rs ms | $cc ms | $sn ms | $rv ms |"
done
