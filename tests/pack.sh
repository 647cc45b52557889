#!/bin/bash
# mkve-vm pack (mkve-vm(1), PACK), end to end against a real libvirtd in a
# network namespace of the suite's own (tests/harness/libvirtd-netns): an
# lxc machine of a busybox root running the node's sshd (its host keys made
# at its first boot, as hook 05-ssh-hostkeys-per-machine has a systemd root
# do), made with a secret parameter. Files are planted in it (data in /srv,
# a log, a lease, a history, a private key); pack is refused naming the key;
# without it the packed bundle holds none of the seed's files, parameters,
# leases, logs or history, keeps /srv, has an empty machine-id and records
# packed_from. Two machines made of it have machine-ids and SSH host keys
# of their own (ssh-keyscan from the namespace) and answer their probes.
# Packed twice: the same bytes; packed to - into create -. Then adopt: an
# lxc domain and qemu domains with disks of their own, defined by virsh,
# adopted (the ID their name says, --id), listed, started, stopped,
# deleted (disks kept; --remove-storage), and the refusals (mkve's
# already, a name that reads as a taken ID, a running domain, -H). Last
# ntp-server as a qemu guest (TCG): packed off its qcow2 chain, and a
# machine of the packed bundle lays its own seed and answers NTP.
# Run by `make test` after the cargo tests, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins pack debug
# The foreign domains the suite defines by hand, beside mkve's machines.
suite_cleanup() {
    for d in legacy-130 clash-130 running; do virsh -q undefine "$d" >/dev/null 2>&1; done
    for d in old1 old2; do virsh -c "${qemu:-}" -q destroy "$d" >/dev/null 2>&1; virsh -c "${qemu:-}" -q undefine "$d" >/dev/null 2>&1; done
}
one_node pack mkve-pack

# A key of the suite's own signs the bundles; its public half is the
# node's keyring.
throwaway_key pack || exit 1

# The root: busybox, the node's sshd and ssh-keygen with their libraries.
root=$work/root
mkdir -p "$root"/{bin,sbin,etc/ssh,proc,sys,dev,run,tmp,root,srv,var/log,var/lib/dhcp,usr/share/udhcpc,usr/sbin,usr/bin}
cp /usr/bin/busybox "$root/bin/busybox"
for exe in /usr/sbin/sshd /usr/bin/ssh-keygen; do
    cp "$exe" "$root$exe"
    for lib in $(ldd "$exe" | grep -o '/[^ ]*'); do
        mkdir -p "$root${lib%/*}" && cp -L "$lib" "$root$lib" || exit 1
    done
done
printf 'root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n' >"$root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 640 "$root/etc/shadow"
: >"$root/etc/machine-id"
printf 'UsePAM no\nPermitRootLogin prohibit-password\nHostKey /etc/ssh/ssh_host_ed25519_key\n' >"$root/etc/ssh/sshd_config"
ln -s busybox "$root/bin/sh"; ln -s ../bin/busybox "$root/sbin/init"
printf '::sysinit:/etc/rc\n::respawn:/bin/sh\n' >"$root/etc/inittab"
cat >"$root/etc/rc" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /usr/share/udhcpc/default.script -b -S -t 30 -T 1 -A 1
# This machine's own host keys at its first boot (what hook
# 05-ssh-hostkeys-per-machine does in a systemd root).
[ -e /etc/ssh/ssh_host_ed25519_key ] || /usr/bin/ssh-keygen -A
mkdir -p -m 755 /run/sshd
/usr/sbin/sshd
EOF
udhcpc_script "$root"
chmod 755 "$root/etc/rc"
tpl=$work/sshbox
mkdir -p "$tpl/packages-lists" "$tpl/version"
echo lxc >"$tpl/hypervisors"
echo busybox-static >"$tpl/packages-lists/lxc"
echo template_version=1 >"$tpl/version/lxc"
printf '# NAME FLAGS DEFAULT DESCRIPTION\ntoken required,secret - a secret given at create\nsite - example a plain one\n' >"$tpl/params"
printf 'tcp 22 banner "^SSH-"\n' >"$tpl/probes"
"$bin/mkve-bundle" --no-config -q -H lxc --rootfs "$root" -o "$work/ssh.bun" "$tpl" >/dev/null || exit 1
# The qemu part's bundle is built meanwhile.
ahead ntp-qemu "$bin/mkve-bundle" --no-config -q -H qemu -o "$work/ntp-qemu.bun" ntp-server

in_ns() { "$harness" exec "$ns" "$@"; }
# hostkey ID: the machine's ed25519 host key, as ssh-keyscan sees it
hostkey() {
    local i
    for i in $(seq 30); do
        in_ns ssh-keyscan -T 2 -t ed25519 "192.0.2.$1" 2>/dev/null | awk '{print $3}' | grep . && return 0
        sleep 1
    done
    return 1
}

id=$("$bin/mkve-vm" -q create --start --param token=s3cret-Token "$work/ssh.bun") || exit 1
check "a machine of the bundle answers its probe ($id)" in_ns "$bin/mkve-vm" wait --timeout 60 "$id"
m=$MKVE_STATEDIR/vms/$id/rootfs
mid=$(cat "$m/etc/machine-id")
check "  create gave it a machine-id of its own ($mid)" sh -c "echo '$mid' | grep -qx '[0-9a-f]\{32\}'"
# What an operator leaves in a machine.
mkdir -p "$m/srv/data" "$m/root/.ssh"
echo 'the data' >"$m/srv/data/kept.txt"
echo 'Dec  6 12:00:00 sshd[1]: started' >"$m/var/log/messages"
echo 'lease { fixed-address 192.0.2.9; }' >"$m/var/lib/dhcp/dhclient.eth0.leases"
echo 'cat /etc/mkve/params/token' >"$m/root/.ash_history"
ssh-keygen -q -t ed25519 -N '' -C planted -f "$m/root/.ssh/id_ed25519"
"$bin/mkve-vm" stop --force "$id"

check "pack of a running machine is refused (69)" sh -c \
    "'$bin/mkve-vm' start '$id' && '$bin/mkve-vm' pack '$id' -o '$work/x.bun' --force-no-sign 2>'$work/err'; rc=\$?; '$bin/mkve-vm' stop --force '$id'; test \$rc = 69 && grep -q 'stop it first' '$work/err' && test ! -e '$work/x.bun'"
check "pack with an unknown scrub operation is refused (2)" refuses 2 "is no scrub operation" \
    "$bin/mkve-vm" pack "$id" -o "$work/x.bun" --scrub logs,cookies
check "pack with a private key left is refused (65), naming it, and writes nothing" sh -c \
    "'$bin/mkve-vm' pack '$id' -o '$work/x.bun' --force-no-sign 2>'$work/err'; test \$? = 65 && grep -q '/root/.ssh/id_ed25519: a private key' '$work/err' && test -z \"\$(ls -A '$work' | grep 'x.bun')\""
rm "$m/root/.ssh/id_ed25519"
t0=$(date +%s%N)
"$bin/mkve-vm" pack "$id" -o "$work/packed.bun"
t1=$(date +%s%N)
check "pack writes a signed bundle that mkve-bundle --verify takes ($(( (t1 - t0) / 1000000 )) ms)" \
    "$bin/mkve-bundle" --keyring "$MKVE_CONFDIR/trusted.gpg" --verify "$work/packed.bun"
check "  nothing of it is left mounted on the node, nor its scratch" sh -c \
    "! grep -q ' $MKVE_STATEDIR/vms/\.new' /proc/self/mountinfo && test -z \"\$(ls -A '$MKVE_STATEDIR/vms' | grep '^\.new')\""
check "  the machine is as it was (its root mounted, its files there)" sh -c \
    "grep -q s3cret-Token '$m/etc/mkve/params/token' && test -s '$m/var/log/messages' && grep -qx '$mid' '$m/etc/machine-id'"
mkdir "$work/p"
tar -xOf "$work/packed.bun" rootfs.tar.zst | zstd -dc | tar -C "$work/p" -xf - 2>/dev/null
p=$work/p
check "  the secret parameter and every parameter are gone" sh -c \
    "test ! -e '$p/etc/mkve/params/token' && test ! -e '$p/etc/mkve/params/site' && ! grep -rqa s3cret-Token '$p'"
check "  the seed's files are the base's again" sh -c \
    "test ! -e '$p/etc/hostname' && test ! -e '$p/etc/resolv.conf' && grep -qx 'root:\*:19000:0:99999:7:::' '$p/etc/shadow'"
check "  the machine-id is empty" sh -c "test -f '$p/etc/machine-id' && test ! -s '$p/etc/machine-id'"
check "  leases, logs, history and host keys are gone" sh -c \
    "test ! -e '$p/var/log/messages' && test -d '$p/var/log' && test ! -e '$p/var/lib/dhcp/dhclient.eth0.leases' && test ! -e '$p/root/.ash_history' && ! ls '$p'/etc/ssh/ssh_host_* 2>/dev/null"
check "  /srv is kept" grep -qx 'the data' "$p/srv/data/kept.txt"
check "  meta.json records packed_from" sh -c \
    "tar -xOf '$work/packed.bun' meta.json | python3 -c 'import json,sys; m=json.load(sys.stdin)[\"packed_from\"]; assert m[\"machine\"]==$id and \"logs\" in m[\"scrub\"] and len(m[\"bundle\"])==64 and m[\"packed\"]==\"2023-11-14T22:13:20Z\", m'"
"$bin/mkve-vm" pack "$id" -o "$work/a.bun" --force-no-sign
"$bin/mkve-vm" pack "$id" -o "$work/b.bun" --force-no-sign
check "packed twice unsigned: the same bytes" cmp "$work/a.bun" "$work/b.bun"
# The same pack through mkve-web's API (a script on the node: no token).
port=18491
in_ns "$bin/mkve-web" --listen "127.0.0.1:$port" -c "$LIBVIRT_DEFAULT_URI" --publish-dir "$work/pub" 2>"$work/web.log" &
web_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/web.log" 2>/dev/null && break; sleep 0.1; done
check "mkve-web's API packs it too: the same bytes as the command line's" sh -c \
    "'$harness' exec '$ns' curl -sf -X POST -o '$work/web.bun' 'http://127.0.0.1:$port/api/machines/$id/pack?unsigned=true' && cmp '$work/a.bun' '$work/web.bun'"
check "  and publishes it signed into --publish-dir, listed in its signed SHA256SUMS (201)" sh -c \
    "'$harness' exec '$ns' curl -sf -X POST -o '$work/pub.json' -w '%{http_code}' 'http://127.0.0.1:$port/api/machines/$id/pack?publish=true' | grep -qx 201 &&
     f=\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"path\"])' '$work/pub.json') &&
     test \"\$(dirname \"\$f\")\" = '$work/pub' && grep -q \" \$(basename \"\$f\")\$\" '$work/pub/SHA256SUMS' &&
     gpgv --keyring '$MKVE_CONFDIR/trusted.gpg' '$work/pub/SHA256SUMS.gpg' '$work/pub/SHA256SUMS' 2>/dev/null &&
     '$bin/mkve-bundle' --keyring '$MKVE_CONFDIR/trusted.gpg' --verify \"\$f\" >/dev/null"
check "  publish and unsigned at once are refused (400)" sh -c \
    "test \"\$('$harness' exec '$ns' curl -s -o /dev/null -w '%{http_code}' -X POST 'http://127.0.0.1:$port/api/machines/$id/pack?publish=true&unsigned=true')\" = 400"
kill "$web_pid" 2>/dev/null; wait "$web_pid" 2>/dev/null

check "--scrub none keeps the log and history, never the seed's files" sh -c \
    "'$bin/mkve-vm' pack '$id' -o - --force-no-sign --allow-secrets --scrub none | tar -xOf - rootfs.tar.zst | zstd -dc | tar -tf - >'$work/list' && grep -qx './var/log/messages\|var/log/messages' '$work/list' && ! grep -q 'etc/mkve/params/token' '$work/list'"

# Two machines of the packed bundle: each its own machine-id and host key.
a=$("$bin/mkve-vm" -q create --start --param token=other "$work/packed.bun")
b=$("$bin/mkve-vm" -q create --start --param token=other "$work/packed.bun")
check "two machines of the packed bundle answer their probes ($a, $b)" in_ns "$bin/mkve-vm" wait --timeout 60 "$a" "$b"
ida=$(cat "$MKVE_STATEDIR/vms/$a/rootfs/etc/machine-id") idb=$(cat "$MKVE_STATEDIR/vms/$b/rootfs/etc/machine-id")
check "  with machine-ids of their own" sh -c "test -n '$ida' && test '$ida' != '$idb' && test '$ida' != '$mid'"
ka=$(hostkey "$a") kb=$(hostkey "$b")
check "  and SSH host keys of their own (ssh-keyscan)" sh -c "test -n '$ka' && test -n '$kb' && test '$ka' != '$kb'"
"$bin/mkve-vm" delete "$a"; "$bin/mkve-vm" delete "$b"

c=$("$bin/mkve-vm" pack "$id" -o - | "$bin/mkve-vm" -q create --param token=piped -)
check "pack -o - | create - makes a machine ($c)" sh -c "test -n '$c' && test -d '$MKVE_STATEDIR/vms/$c'"
"$bin/mkve-vm" delete "$c"

# A snapshot packs while the machine runs: what it froze, not what came after.
"$bin/mkve-vm" start "$id"
"$bin/mkve-vm" snapshot "$id" tuned >/dev/null
echo 'after the snapshot' >"$m/srv/data/after.txt"
check "pack --snapshot of a running machine packs what the snapshot froze" sh -c \
    "'$bin/mkve-vm' pack '$id' --snapshot tuned -o '$work/snap.bun' --force-no-sign &&
     tar -xOf '$work/snap.bun' rootfs.tar.zst | zstd -dc | tar -tf - >'$work/list' &&
     grep -q 'srv/data/kept.txt' '$work/list' && ! grep -q 'srv/data/after.txt' '$work/list' && ! grep -q 'etc/mkve/params/token' '$work/list'"
check "  the machine ran on, its later file kept; packed_from names the snapshot" sh -c \
    "virsh -q list --name | grep -qx '.*-$id' && test -s '$m/srv/data/after.txt' &&
     tar -xOf '$work/snap.bun' meta.json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"packed_from\"][\"snapshot\"]==\"tuned\"'"
check "pack --snapshot of no such snapshot is refused (2)" refuses 2 "has no snapshot nope" \
    "$bin/mkve-vm" pack "$id" --snapshot nope -o "$work/x.bun" --force-no-sign
"$bin/mkve-vm" stop --force "$id"
"$bin/mkve-vm" delete "$id"

# adopt: domains mkve did not make, defined with virsh.
legacy=$work/legacy
busybox_root "$legacy"
printf '::respawn:/bin/sh\n' >"$legacy/etc/inittab"
cat >"$work/legacy.xml" <<EOF
<domain type='lxc'><name>legacy-130</name><memory unit='MiB'>64</memory>
  <os><type>exe</type><init>/sbin/init</init></os>
  <devices><filesystem type='mount'><source dir='$legacy'/><target dir='/'/></filesystem><console type='pty'/></devices>
</domain>
EOF
virsh -q define "$work/legacy.xml" >/dev/null
check "adopt --dry-run says what would change, and changes nothing" sh -c \
    "'$bin/mkve-vm' adopt --dry-run legacy-130 | grep -q '^would: domain legacy-130 (lxc) becomes machine 130' && ! virsh dumpxml legacy-130 | grep -q urn:mkve && test -z \"\$('$bin/mkve-vm' list --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or \"\")')\""
l=$("$bin/mkve-vm" adopt legacy-130)
check "adopt gives an lxc domain the ID its name says ($l)" test "$l" = 130
check "  it is listed, under its own name" sh -c \
    "'$bin/mkve-vm' list --json | python3 -c 'import json,sys; m=[m for m in json.load(sys.stdin) if m[\"id\"]==130][0]; assert m[\"name\"]==\"legacy-130\" and m[\"template\"]==\"adopted\", m'"
check "  info shows it" sh -c "'$bin/mkve-vm' info 130 | grep -q legacy-130"
check "  it starts and stops as mkve's" sh -c \
    "'$bin/mkve-vm' start 130 && virsh domstate legacy-130 | grep -qx running && '$bin/mkve-vm' stop --force 130 && virsh domstate legacy-130 | grep -qx 'shut off'"
check "adopt of a domain mkve's already is refused (2)" refuses 2 "is mkve's machine 130 already" "$bin/mkve-vm" adopt legacy-130
sed -e 's/legacy-130/clash-130/' "$work/legacy.xml" >"$work/clash.xml"
virsh -q define "$work/clash.xml" >/dev/null
check "adopt of a name that reads as a taken ID is refused (2)" refuses 2 "name reads as ID 130, which it cannot have" "$bin/mkve-vm" adopt clash-130
sed -e 's/legacy-130/running/' "$work/legacy.xml" >"$work/running.xml"
virsh -q define "$work/running.xml" >/dev/null && virsh -q start running >/dev/null
check "adopt of a running domain is refused (69)" refuses 69 "running: stop it first" "$bin/mkve-vm" adopt running
virsh -q destroy running >/dev/null
check "adopt --network --dry-run says the interface and DHCP entry it would make" sh -c \
    "'$bin/mkve-vm' adopt --dry-run --network --id 140 running | grep -q 'an interface on network .* added' && test \"\$('$bin/mkve-net' status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"hosts\"]))')\" = 0"
r=$("$bin/mkve-vm" adopt --network --id 140 running)
check "adopt --id --network gives the ID asked, an interface on the mkve network and its DHCP entry ($r)" sh -c \
    "test '$r' = 140 && virsh dumpxml running | grep -q \"<source network=\" && '$bin/mkve-net' status --json | python3 -c 'import json,sys; assert any(h.get(\"id\")==140 for h in json.load(sys.stdin)[\"hosts\"]), 1'"
"$bin/mkve-vm" delete 130
check "delete of an adopted lxc machine undefines it and keeps its root" sh -c \
    "! virsh dominfo legacy-130 >/dev/null 2>&1 && test -x '$legacy/bin/busybox'"
"$bin/mkve-vm" delete 140
check "  its delete takes the DHCP entry out" sh -c "test \"\$('$bin/mkve-net' status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"hosts\"]))')\" = 0"
virsh -q undefine clash-130 >/dev/null
# qemu: domains with a disk of their own.
for n in old1 old2; do
    qemu-img create -q -f qcow2 "$work/$n.qcow2" 16M
    cat >"$work/$n.xml" <<EOF
<domain type='qemu'><name>$n</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$work/$n.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
EOF
    virsh -c "$qemu" -q define "$work/$n.xml" >/dev/null
done
q=$("$bin/mkve-vm" -c "$qemu" adopt -H qemu old1)
check "adopt of a qemu domain with a disk of its own ($q)" sh -c \
    "'$bin/mkve-vm' -c '$qemu' list --json | python3 -c 'import json,sys; assert any(m[\"id\"]==$q and m[\"name\"]==\"old1\" for m in json.load(sys.stdin))'"
check "  it starts and stops" sh -c \
    "'$bin/mkve-vm' -c '$qemu' start '$q' && virsh -c '$qemu' domstate old1 | grep -qx running && '$bin/mkve-vm' -c '$qemu' stop --force '$q'"
check "adopt -H lxc of a qemu domain is refused (2)" refuses 2 "is a qemu domain, not lxc" "$bin/mkve-vm" -c "$qemu" adopt -H lxc old2
"$bin/mkve-vm" -c "$qemu" delete "$q"
check "  delete keeps its disk" sh -c "! virsh -c '$qemu' dominfo old1 >/dev/null 2>&1 && qemu-img check -q '$work/old1.qcow2'"
q2=$("$bin/mkve-vm" -c "$qemu" adopt old2)
"$bin/mkve-vm" -c "$qemu" delete --remove-storage "$q2"
check "  delete --remove-storage removes it" sh -c "! virsh -c '$qemu' dominfo old2 >/dev/null 2>&1 && test ! -e '$work/old2.qcow2'"

# qemu: a guest on its disk base, packed off its qcow2 chain (nothing
# mounted on the node); a machine of the packed bundle lays its own seed.
awaited ntp-qemu || exit 1
vm() { "$bin/mkve-vm" -c "$qemu" "$@"; }
ntp() { in_ns "$top/tests/harness/ntp-query" "192.0.2.$1" "$2"; }
qid=$(vm -q create --start "$work/ntp-qemu.bun")
check "a qemu machine answers NTP ($qid)" ntp "$qid" 420
vm stop "$qid"
t0=$(date +%s%N)
vm pack "$qid" -o "$work/qpacked.bun"
t1=$(date +%s%N)
check "pack of the stopped qemu machine, read off its qcow2 chain ($(( (t1 - t0) / 1000000 )) ms)" \
    "$bin/mkve-bundle" --keyring "$MKVE_CONFDIR/trusted.gpg" --verify "$work/qpacked.bun"
check "  nothing of it left mounted on the node" sh -c "! grep -q 'mkve-image\.' /proc/self/mountinfo"
mkdir "$work/qp"
tar -xOf "$work/qpacked.bun" rootfs.tar.zst | zstd -dc | tar -C "$work/qp" -xf - 2>/dev/null
check "  the seed's mark, host name and machine-id are taken out, the kernel kept" sh -c \
    "test ! -e '$work/qp/var/lib/mkve/seeded' && ! grep -qs 'ntp-server-$qid' '$work/qp/etc/hostname' && test ! -s '$work/qp/etc/machine-id' && ls '$work/qp'/boot/vmlinuz-* >/dev/null && test ! -e '$work/qp/lost+found'"
# A snapshot of the stopped guest freezes the same disk: the same root packed.
vm snapshot "$qid" s1 >/dev/null
vm pack "$qid" --snapshot s1 -o "$work/qsnap.bun" --force-no-sign
check "pack --snapshot of the qemu machine reads the frozen image: the same root" bash -c \
    "cmp <(tar -xOf '$work/qpacked.bun' rootfs.tar.zst) <(tar -xOf '$work/qsnap.bun' rootfs.tar.zst)"
q2=$(vm -q create --start "$work/qpacked.bun")
check "a machine of the packed qemu bundle lays its own seed and answers NTP ($q2)" sh -c \
    "'$top/tests/harness/libvirtd-netns' exec '$ns' '$top/tests/harness/ntp-query' '192.0.2.$q2' 420"
vm delete "$q2"; vm delete "$qid"

echo "pack: $passed passed, $failed failed"
[ "$failed" = 0 ]
