#!/bin/bash
# Snapshots and backups (mkve-vm(1), SNAPSHOTS, BACKUPS), end to end against a real libvirtd in a
# network namespace of the suite's own (tests/harness/libvirtd-netns): the
# ntp-server template as an lxc machine and as a qemu guest (TCG). Each is
# snapshotted while it runs, damaged, stopped and reverted: what was lost is
# back and NTP answers at 192.0.2.ID again. The refusals (revert of a
# running machine, a move or detach of a machine with snapshots, a bad or
# taken name) and the deletes, which leave a whole chain. Backups of both,
# taken running, restored after the machine was deleted: what changed is
# back, what was removed stays removed, the service answers; a tampered
# archive, a bundle that cannot be had and a secret left out each refused
# with nothing made.
# Run by `make test` after the cargo tests, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins keep debug
one_node keep mkve-snap

# A key of the suite's own signs the backups; its public half is the
# node's keyring.
throwaway_key keep || exit 1

# lxc: the machine's layer above its base, copied while it is frozen.
"$bin/mkve-bundle" --no-config -q -H lxc -o "$work/ntp.bun" ntp-server || exit 1
# The qemu part's bundle is built meanwhile.
ahead ntp-qemu "$bin/mkve-bundle" --no-config -q -H qemu -o "$work/ntp-qemu.bun" ntp-server
id=$("$bin/mkve-vm" -q create --start "$work/ntp.bun")
check "an lxc machine answers NTP ($id)" ntp "$id" 180
root=$MKVE_STATEDIR/vms/$id/rootfs
echo mine >"$root/root/kept"
t0=$(date +%s%N)
name=$("$bin/mkve-vm" snapshot "$id" before)
t1=$(date +%s%N)
check "snapshot of the running machine prints its name ($name, $(( (t1 - t0) / 1000000 )) ms)" test "$name" = before
check "  and leaves it running, not frozen" sh -c "virsh domstate ntp-server-$id | grep -qx running"
check "  its NTP still answers" ntp "$id" 30
check "  a snapshot without a name is named by the time" sh -c \
    "'$bin/mkve-vm' snapshot '$id' | grep -qx '[0-9]\{8\}-[0-9]\{6\}'"
check "  snapshots lists both, oldest first" sh -c \
    "'$bin/mkve-vm' snapshots '$id' | awk 'NR==2 {a=\$1} NR==3 {b=\$1} END {exit !(a==\"before\" && b ~ /^[0-9]+-[0-9]+\$/)}'"
check "  as JSON too" sh -c "'$bin/mkve-vm' snapshots --json '$id' | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s[0][\"name\"]==\"before\" and s[0][\"running\"] is True and s[0][\"bytes\"]>0, s'"
check "a taken name is refused (2)" refuses 2 "has a snapshot before already" "$bin/mkve-vm" snapshot "$id" before
check "a bad name is refused (2)" refuses 2 "is not a snapshot name" "$bin/mkve-vm" snapshot "$id" ../x
rm -f "$root/usr/sbin/chronyd" "$root/root/kept"
check "revert of a running machine is refused (2)" refuses 2 "runs: stop it first" "$bin/mkve-vm" revert "$id" before
check "detach of a machine with snapshots is refused (2)" refuses 2 "has snapshots" "$bin/mkve-vm" detach "$id"
"$bin/mkve-vm" stop --force "$id"
check "revert to an unknown snapshot is refused (2)" refuses 2 "has no snapshot nosuch" "$bin/mkve-vm" revert "$id" nosuch
t0=$(date +%s%N)
"$bin/mkve-vm" revert "$id" before
t1=$(date +%s%N)
"$bin/mkve-vm" start "$id"
check "revert brings back what was removed ($(( (t1 - t0) / 1000000 )) ms)" \
    sh -c "test -x '$root/usr/sbin/chronyd' && grep -qx mine '$root/root/kept'"
check "  and NTP answers again" ntp "$id" 120
"$bin/mkve-vm" snapshot --delete "$id" before
check "snapshot --delete removes it" sh -c "! '$bin/mkve-vm' snapshots '$id' | grep -q '^before '"
for s in $("$bin/mkve-vm" snapshots --json "$id" | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))'); do
    "$bin/mkve-vm" snapshot --delete "$id" "$s"
done
check "  and with none left, nothing is left of them" test -z "$(ls -A "$MKVE_STATEDIR/vms/$id/snapshots")"

# A backup of the running lxc machine: state (chrony's drift file), drift
# (a config edit), a removal; deleted, restored from the archive alone.
echo 'drift 1.5 0.25' >"$root/var/lib/chrony/chrony.drift"
echo '# kept by the backup' >>"$root/etc/chrony/chrony.conf"
rm "$root/etc/motd"
t0=$(date +%s%N)
"$bin/mkve-vm" backup "$id" -o "$work/ntp.bak"
t1=$(date +%s%N)
full_t0=$(date +%s%N)
tar -C "$root" -cf - . | zstd -q -T0 >"$work/ntp-full.tar.zst"
full_t1=$(date +%s%N)
bak=$(stat -c %s "$work/ntp.bak") full=$(stat -c %s "$work/ntp-full.tar.zst")
echo "figure: lxc backup $bak bytes in $(( (t1 - t0) / 1000000 )) ms; tar | zstd -T0 of the root $full bytes in $(( (full_t1 - full_t0) / 1000000 )) ms; ratio $(python3 -c "print(round($bak/$full, 4))")"
check "the backup is a small fraction of a full archive ($bak of $full bytes)" test $((bak * 20)) -lt "$full"
check "  it is signed, and its manifest says what is state and what is drift" sh -c \
    "tar -xOf '$work/ntp.bak' backup.json | python3 -c 'import json,sys; m=json.load(sys.stdin); assert \"/var/lib/chrony/chrony.drift\" in m[\"state_changes\"] and \"/etc/chrony/chrony.conf\" in m[\"drift\"] and \"/etc/motd\" in m[\"removed\"], m' && tar -tf '$work/ntp.bak' | grep -qx backup.json.sig"
check "  the machine still runs" sh -c "virsh domstate ntp-server-$id | grep -qx running"
"$bin/mkve-vm" delete "$id"
# Tampered: one byte of the delta changed.
python3 - "$work/ntp.bak" "$work/tampered.bak" <<'PY'
import sys, tarfile, io
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as o:
    for m in t.getmembers():
        data = t.extractfile(m).read()
        if m.name == "delta.tar.zst":
            data = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
        o.addfile(m, io.BytesIO(data))
PY
check "a tampered backup is refused (65) and nothing is made" sh -c \
    "'$bin/mkve-vm' restore '$work/tampered.bak' 2>'$work/err'; test \$? = 65 && grep -q 'not the one backup.json names' '$work/err' && test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\""
mv "$work/ntp.bun" "$work/ntp.away"
check "a backup whose bundle cannot be had is refused (69), naming it" sh -c \
    "'$bin/mkve-vm' restore '$work/ntp.bak' 2>'$work/err'; test \$? = 69 && grep -q 'the bundle of ntp-server' '$work/err' && test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\""
mv "$work/ntp.away" "$work/ntp.bun"
t0=$(date +%s%N)
rid=$("$bin/mkve-vm" restore --start "$work/ntp.bak")
t1=$(date +%s%N)
check "restore makes the machine again with its ID ($rid, $(( (t1 - t0) / 1000000 )) ms)" test "$rid" = "$id"
check "  its state is back" grep -qx 'drift 1.5 0.25' "$root/var/lib/chrony/chrony.drift"
check "  its config edit is back" grep -qx '# kept by the backup' "$root/etc/chrony/chrony.conf"
check "  what it removed stays removed" test ! -e "$root/etc/motd"
check "  and NTP answers" ntp "$id" 120
# Without the bundle: while another machine holds the base, the base's
# copy of the bundle's head (its signed meta.json and conf) is enough.
sib=$("$bin/mkve-vm" -q create "$work/ntp.bun")
"$bin/mkve-vm" delete "$id"
mv "$work/ntp.bun" "$work/ntp.away"
rid=$("$bin/mkve-vm" restore "$work/ntp.bak")
check "restore without the bundle, on the base another machine holds ($rid)" test "$rid" = "$id"
check "  its state is back" grep -qx 'drift 1.5 0.25' "$root/var/lib/chrony/chrony.drift"
check "  its record keeps where the bundle came from" sh -c \
    "'$bin/mkve-vm' info --json '$rid' | python3 -c 'import json,sys; s=json.load(sys.stdin)[\"source\"]; assert s == \"$work/ntp.bun\", s'"
mv "$work/ntp.away" "$work/ntp.bun"
"$bin/mkve-vm" delete "$sib"
"$bin/mkve-vm" delete "$id"

# A secret parameter stays out of a backup: a restore must be given it.
busybox_root "$work/bb"
"$bin/mkve-bundle" --no-config -q -H lxc --rootfs "$work/bb" -o "$work/params.bun" \
    "$top/tests/fixtures/templates/good/with-params" >/dev/null || exit 1
sid=$("$bin/mkve-vm" -q create --param admin_password=s3cret-Value --param motd=hello "$work/params.bun")
"$bin/mkve-vm" backup "$sid" -o "$work/params.bak"
# Retention: each machine's newest N kept, other files left alone.
mkdir "$work/baks"
cp "$work/params.bak" "$work/baks/1.bak"
sleep 1
"$bin/mkve-vm" backup "$sid" -o "$work/baks/2.bak"
echo mine >"$work/baks/notes.txt"
check "backup --prune without a rule is refused (2)" refuses 2 "say what to keep" "$bin/mkve-vm" backup --prune "$work/baks"
check "backup --prune --keep-last 1 removes the older backup only" sh -c \
    "'$bin/mkve-vm' backup --prune --keep-last 1 '$work/baks' | grep -qx 'removed $work/baks/1.bak' && test \"\$(ls '$work/baks' | tr '\n' ' ')\" = '2.bak notes.txt '"
check "a backup leaves a secret parameter out" sh -c \
    "! tar -xOf '$work/params.bak' delta.tar.zst | zstd -dc | grep -a -q s3cret-Value && ! tar -xOf '$work/params.bak' backup.json | grep -q s3cret-Value && tar -xOf '$work/params.bak' backup.json | grep -q '\"admin_password\"'"
"$bin/mkve-vm" delete "$sid"
check "  its restore without it is refused (2), naming it, and makes nothing" sh -c \
    "'$bin/mkve-vm' restore '$work/params.bak' 2>'$work/err'; test \$? = 2 && grep -q 'left out the secret parameter admin_password' '$work/err' && test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\""
sid=$("$bin/mkve-vm" restore --param admin_password=n3w-Value "$work/params.bak")
check "  with it the machine is back, the other parameters from the backup" sh -c \
    "grep -qx n3w-Value '$MKVE_STATEDIR/vms/$sid/rootfs/etc/mkve/params/admin_password' && grep -qx hello '$MKVE_STATEDIR/vms/$sid/rootfs/etc/mkve/params/motd'"
# --include-secrets KEY: the secret parameters encrypted to a key the
# operator names (here an encryption subkey of the suite's key), covered
# by the signed manifest; a node without its secret key cannot restore
# them (69), a changed member is refused (65).
fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}')
gpg --batch --quiet --passphrase '' --quick-add-key "$fpr" cv25519 encr never 2>/dev/null || exit 1
"$bin/mkve-vm" backup --include-secrets "$fpr" "$sid" -o "$work/secrets.bak" || exit 1
check "backup --include-secrets: the secret is in the archive, encrypted only" sh -c \
    "tar -tf '$work/secrets.bak' | tr '\n' ' ' | grep -qx 'backup.json backup.json.sig secrets.json.gpg delta.tar.zst ' && ! tar -xOf '$work/secrets.bak' delta.tar.zst | zstd -dc | grep -a -q n3w-Value && ! tar -xOf '$work/secrets.bak' | grep -a -q n3w-Value && tar -xOf '$work/secrets.bak' backup.json | grep -q '\"secrets_included\"'"
check "  gpg decrypts it to the parameter" sh -c \
    "tar -xOf '$work/secrets.bak' secrets.json.gpg | gpg --batch --quiet --decrypt 2>/dev/null | grep -q '\"admin_password\":\"n3w-Value\"'"
"$bin/mkve-vm" delete "$sid"
sid=$("$bin/mkve-vm" restore "$work/secrets.bak")
check "  its restore needs no --param: the secret is back" \
    grep -qx n3w-Value "$MKVE_STATEDIR/vms/$sid/rootfs/etc/mkve/params/admin_password"
"$bin/mkve-vm" delete "$sid"
mkdir -m 700 "$work/empty-gnupg"
check "  without the secret key here the restore is refused (69) and makes nothing" sh -c \
    "GNUPGHOME='$work/empty-gnupg' '$bin/mkve-vm' restore '$work/secrets.bak' 2>'$work/err'; test \$? = 69 && grep -q 'could not decrypt' '$work/err' && test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\""
gpgconf --homedir "$work/empty-gnupg" --kill all 2>/dev/null
mkdir -p "$work/tamper" && (cd "$work/tamper" && tar -xf "$work/secrets.bak") || exit 1
printf 'x' >>"$work/tamper/secrets.json.gpg"
(cd "$work/tamper" && tar --format=ustar -cf "$work/tampered.bak" backup.json backup.json.sig secrets.json.gpg delta.tar.zst) || exit 1
check "  a changed secrets member is refused (65)" refuses 65 "secrets.json.gpg is not the one" \
    "$bin/mkve-vm" restore "$work/tampered.bak"

# qemu: the disk's top image frozen (libvirt's external disk-only snapshot,
# live), a new overlay on it; a revert is a new overlay on the snapshot.
qemu=$("$harness" uri "$ns" qemu)
vm() { "$bin/mkve-vm" -c "$qemu" "$@"; }
awaited ntp-qemu || exit 1
qid=$(vm -q create --start "$work/ntp-qemu.bun")
qdir=$MKVE_STATEDIR/vms/$qid
check "a qemu machine answers NTP ($qid)" ntp "$qid" 420
t0=$(date +%s%N)
vm snapshot "$qid" before >/dev/null
t1=$(date +%s%N)
layer=$(virsh -c "$qemu" domblklist "ntp-server-$qid" | awk '$2 ~ /layers\/1.qcow2$/ {print $2}')
check "a live snapshot puts a new overlay on the frozen disk ($(( (t1 - t0) / 1000000 )) ms)" sh -c \
    "test -n '$layer' && qemu-img info -U --output=json '$layer' | grep -q '\"backing-filename\": \"$qdir/disk.qcow2\"'"
check "  and the guest still answers" ntp "$qid" 60
vm stop --force "$qid"
# The damage: the file system's superblock zeroed in the top image.
qemu-io -f qcow2 -c 'write -P 0 0 1M' "$layer" >/dev/null
# zeros IMAGE: its bytes 1024 to 2047 (an ext4 superblock) are all zero
zeros() {
    local out; out=$(qemu-io -r -f qcow2 -c 'read -P 0 1024 1024' "$1" 2>&1)
    echo "$out" | grep -q '^read 1024/1024' || { echo "$out" >&2; return 2; }
    ! echo "$out" | grep -q 'Pattern verification failed'
}
check "  (the damage is there: no superblock)" zeros "$layer"
vm revert "$qid" before
new=$(virsh -c "$qemu" domblklist "ntp-server-$qid" | awk '$2 ~ /\.qcow2$/ && $2 !~ /seed/ {print $2}')
check "revert puts the machine on a new overlay of the snapshot ($new)" sh -c \
    "test '$new' != '$layer' && qemu-img info -U --output=json '$new' | grep -q '\"backing-filename\": \"$qdir/disk.qcow2\"'"
not_zeros() { zeros "$1"; [ $? = 1 ]; }
check "  the superblock is back" not_zeros "$new"
check "  the damaged layer is gone" test ! -e "$layer"
vm start "$qid"
check "  and NTP answers again" ntp "$qid" 420
# A backup of the running qemu machine, read through its qcow2 chain.
t0=$(date +%s%N)
vm backup "$qid" -o "$work/ntp-qemu.bak"
t1=$(date +%s%N)
qbak=$(stat -c %s "$work/ntp-qemu.bak")
check "a backup of the running qemu guest ($qbak bytes, $(( (t1 - t0) / 1000000 )) ms)" sh -c \
    "tar -xOf '$work/ntp-qemu.bak' backup.json | python3 -c 'import json,sys; m=json.load(sys.stdin); assert m[\"machine\"][\"hypervisor\"]==\"qemu\" and \"/var/lib/mkve/seeded\" in m[\"drift\"], m[\"drift\"][:20]'"
printf 'this_node=n1\nnode.n1.ids=100-149\nnode.n1.uri.qemu=%s\nnode.n2.ids=150-199\nnode.n2.uri.qemu=qemu+ssh://root@n2.invalid/system\n' \
    "$qemu" >"$MKVE_CONFDIR/mkve.conf"
check "a move of a machine with snapshots is refused (2)" \
    refuses 2 "has snapshots" vm migrate "$qid" n2
rm "$MKVE_CONFDIR/mkve.conf"
vm stop --force "$qid"
vm snapshot --delete "$qid" before
now=$(virsh -c "$qemu" domblklist "ntp-server-$qid" | awk '$2 ~ /\.qcow2$/ {print $2}')
check "delete of the last snapshot leaves a whole chain: top, disk, base ($now)" sh -c \
    "qemu-img check -q '$now' && qemu-img info -U --backing-chain '$now' | grep -c '^image:' | grep -qx 3"
vm delete "$qid"
check "delete leaves nothing of the machine or its snapshots" test ! -e "$qdir"
rq=$(vm restore "$work/ntp-qemu.bak")
check "restore makes the qemu machine again ($rq)" test "$rq" = "$qid"
qemu-img convert -U -O raw "$(virsh -c "$qemu" domblklist "ntp-server-$rq" | awk '$2 ~ /disk.qcow2$/ {print $2}')" "$work/flat.img"
check "  with what the guest had made of its seed" sh -c \
    "debugfs -R 'cat /etc/hostname' '$work/flat.img' 2>/dev/null | grep -qx 'ntp-server-$qid' && debugfs -R 'cat /var/lib/mkve/seeded' '$work/flat.img' 2>/dev/null | grep -q 'seeded from'"
rm -f "$work/flat.img"
vm delete "$rq"

echo "keep: $passed passed, $failed failed"
[ "$failed" = 0 ]
