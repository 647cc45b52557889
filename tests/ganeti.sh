#!/bin/bash
# mkve's bundles as instances of a Ganeti cluster (mkve-vm(1), GANETI): two
# Ganeti 3.0 nodes on this one machine, each in a network, mount and UTS
# namespace of this test's own (GANETI_NS=PREFIX names the network ones
# PREFIX1 and PREFIX2; default mkve-g), joined by a veth pair between their
# bridges (mkvebr0) on the mkve prefix 192.0.2.0/24 (nodes .11 and .12,
# the cluster .10), which mkve-net ganeti-connect makes Ganeti's network. Each node's mount namespace binds private directories
# over Ganeti's and mkve's fixed paths (/etc/ganeti, /var/lib/ganeti,
# /run/ganeti, /var/log/ganeti, /srv/ganeti, /run/lock, /root, /etc/hosts,
# /etc/resolv.conf, /etc/mkve, /var/lib/mkve) and a fresh /sys, so Ganeti
# sees only its node; one directory of this test's is both nodes'
# shared-file-storage (as NFS would be). An sshd per node listens inside
# its namespace only; RAPI listens on the namespace's loopback.
#
# The OS definition is this tree's ganeti/os/mkve with this build's mkve-vm;
# the bundles are built by this build's mkve-bundle from a busybox root
# (the guest of tests/nodes.sh, booting Debian's cloud kernel into a
# busybox initramfs that mounts the disk the OS definition wrote) and from
# the shipped template ntp-server (Debian, systemd, chronyd; through the
# layer cache tests/services.sh uses), signed with a throw-away key,
# published with mkve-bundle --publish and brought to both nodes with
# mkve-vm ganeti sync. Guests run on TCG.
#
# Migrations are live where QEMU moves a TCG guest's memory correctly
# (QEMU 9.0 and later). Before 9.0 (Debian 12 has 7.2) QEMU loses guest
# memory writes in a live migration under TCG: its dirty-bitmap sync
# leaves TCG's TLB entries writable without marking pages dirty, so a page
# written again after it was sent reaches the target stale (upstream fix
# "physmem: Fix migration dirty bitmap coherency with TCG memory access",
# QEMU 9.0; not in Debian's 7.2.22). Seen here, with the guest's console
# logged: after 5 of 9 probed live migrations the guest's kernel on the
# target died at once (a slab freelist pointer corrupt, "Kernel stack is
# corrupted in: __mod_timer", then "Attempted to kill init"), which is the
# "lost network" seen before (the bridge, ARP and the target's tap were
# right: qemu filled the guest's receive ring, the dead guest never
# emptied it); 0 of 12 unprobed (idle or busy with processes: the probe's
# traffic keeps the kernel writing its own pages). So with QEMU before 9.0
# each move runs paused: the guest stopped on its node (its monitor), moved
# live (nothing writes its memory meanwhile), continued on the target
# (which keeps the stopped state the move carried); the probe's gap is the
# pause, and bounded. KVM tracks dirty pages itself and is not affected.
# Checked: sync (variants.list, parameters.list, an lxc bundle left out),
# a required parameter missing refused before anything is made, a create
# placed by hail with an address from the pool (at or above .100: the
# addresses below are reserved) answering its probe with its name, its
# parameters and its secret (0600) from the disk, the secret in no Ganeti
# file or log, migration with the probe answering throughout (same boot,
# the probe's longest gap bounded), a variant out of sync refused naming
# the node, failover through RAPI after the node is killed, and a teardown that leaves no daemon,
# mount, loop device or namespace. Traffic stays inside the namespaces and
# on their loopback.
#
# Needs root, Ganeti's Debian packages (installed here when missing),
# qemu-system-x86, openssh-server, and Debian's cloud kernel that
# scripts/deps unpacks into $CARGO_TARGET_DIR/tmp/nodes-kernel.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins ganeti debug
target=${CARGO_TARGET_DIR:-$top/target}
[ "$(id -u)" = 0 ] || { echo "ganeti: needs root" >&2; exit 69; }

# --- Ganeti's packages ---------------------------------------------------------
if ! command -v gnt-cluster >/dev/null || ! command -v socat >/dev/null || ! command -v fping >/dev/null; then
    echo "ganeti: installing Ganeti's Debian packages" >&2
    # No daemon of the package starts on this machine: the nodes are the
    # namespaces below.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
        ganeti socat fping >/dev/null
    rc=$?
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { echo "ganeti: apt-get install ganeti failed" >&2; exit 69; }
fi
for p in gnt-cluster /usr/sbin/sshd ssh scp qemu-system-x86_64 nsenter unshare curl gpg busybox; do
    command -v "$p" >/dev/null || { echo "ganeti: $p is missing (scripts/deps installs it)" >&2; exit 69; }
done
kdir=$target/tmp/nodes-kernel
ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 ||
    { echo "ganeti: no kernel in $kdir: scripts/deps unpacks linux-image-cloud-amd64 there" >&2; exit 69; }
kernel=$(ls "$kdir"/boot/vmlinuz-* | head -1)
# How guests move (above, "Migrations"): live from QEMU 9.0 on, paused
# before; the bandwidth raised from Ganeti's 32 MiB/s so a pause is short.
qemu_version=$(qemu-system-x86_64 --version | sed -n '1s/^QEMU emulator version \([0-9]*\)\..*/\1/p')
move=paused
[ "${qemu_version:-0}" -ge 9 ] && move=live
max_gap_ms=${GANETI_MAX_GAP_MS:-15000}
kver=${kernel##*/vmlinuz-}

suite_work ganeti --bare
ns=${GANETI_NS:-mkve-g}
nsdir=/run/$ns-test
passed=0 failed=0
started=$(date +%s)
secret="s3cret-$RANDOM$RANDOM-never-logged"

# Mount points this test made on the host (removed at the end).
made_dirs=()
for d in /etc/ganeti /var/lib/ganeti /run/ganeti /var/log/ganeti /srv/ganeti /var/lib/mkve /etc/mkve /run/lock /run/sshd; do
    [ -d "$d" ] || { mkdir -p "$d" && made_dirs+=("$d"); }
done

# on N COMMAND...: COMMAND on node N, in its namespaces, with an
# environment of its own (what an operator logged in there has).
on() {
    local n=$1; shift
    nsenter --net="/run/netns/$ns$n" --mount="$nsdir/mnt$n" --uts="$nsdir/uts$n" -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# What the guest at ADDRESS says, asked from node N's namespace.
ask() { on "$1" curl -sf -m 3 "http://$2/cgi-bin/info" 2>/dev/null; }
answers() { # N ADDRESS SECONDS
    local end=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$end" ]; do ask "$1" "$2" >/dev/null && return 0; sleep 0.5; done
    return 1
}
field() { awk -v k="$1" '$1 == k {print $2}'; }
rapi() { # METHOD PATH [BODY]: RAPI on node 1's loopback
    on 1 curl -sk -m 30 -u "mkve-test:$rapi_pass" -X "$1" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} "https://127.0.0.1:5080$2"
}
# paused_move INSTANCE FROM TO COMMAND...: COMMAND moves INSTANCE from
# node FROM to TO; with move=paused (QEMU before 9.0, above) its guest is
# stopped on FROM first and continued on TO after (Ganeti's monitor).
monitor() { # N INSTANCE COMMAND: a line to the instance's HMP monitor on node N
    on "$1" sh -c "echo '$3' | socat -t 3 - UNIX-CONNECT:/run/ganeti/kvm-hypervisor/ctrl/$2.monitor" >/dev/null 2>&1
}
vm_status() { # N INSTANCE: "running", "paused"… as its monitor says
    on "$1" sh -c "echo 'info status' | socat -t 3 - UNIX-CONNECT:/run/ganeti/kvm-hypervisor/ctrl/$2.monitor" 2>/dev/null |
        tr -d '\r' | sed -n 's/^VM status: \([a-z-]*\).*/\1/p'
}
node_n() { local n=${1#node}; echo "${n%%.*}"; }
paused_move() {
    local i=$1 from to rc; from=$(node_n "$2"); to=$(node_n "$3"); shift 3
    if [ "$move" = paused ]; then
        monitor "$from" "$i" stop
        # Never a live move by mistake: the guest must have stopped.
        if [ "$(vm_status "$from" "$i")" != paused ]; then
            echo "# $i did not stop on node $from: not moved" >&2
            monitor "$from" "$i" cont
            return 3
        fi
    fi
    "$@"; rc=$?
    if [ "$move" = paused ]; then
        if [ "$rc" = 0 ]; then monitor "$to" "$i" cont; else monitor "$from" "$i" cont; fi
    fi
    return $rc
}
export -f on ask json field
export ns nsdir

torn_down=
teardown() {
    [ -n "$torn_down" ] && return
    torn_down=1
    if [ -n "${GANETI_KEEP:-}" ]; then echo "ganeti: kept $work and both nodes (GANETI_KEEP)" >&2; return; fi
    # Ganeti's own way first, while both nodes answer; then whatever is
    # left in the namespaces (daemons, qemus, sshd) is killed.
    if [ -e "/run/netns/${ns}1" ] && [ -e "$nsdir/mnt1" ]; then
        for i in $(on 1 timeout 30 gnt-instance list --no-headers -o name 2>/dev/null); do
            on 1 timeout 120 gnt-instance remove -f --shutdown-timeout=0 --ignore-failures "$i" >/dev/null 2>&1
        done
        on 1 timeout 60 gnt-cluster destroy --yes-do-it >/dev/null 2>&1
    fi
    for n in 1 2; do
        [ -e "/run/netns/$ns$n" ] || continue
        for _ in 1 2 3; do
            pids=$(ip netns pids "$ns$n" 2>/dev/null)
            [ -n "$pids" ] || break
            kill -9 $pids 2>/dev/null
            sleep 0.5
        done
    done
    # A failed start may leave a loop device on a disk of this test's.
    losetup -a 2>/dev/null | grep -F "$work" | cut -d: -f1 | xargs -r losetup -d 2>/dev/null
    for n in 1 2; do
        for f in "$nsdir/mnt$n" "$nsdir/uts$n"; do
            mountpoint -q "$f" 2>/dev/null && umount "$f"
        done
        ip netns del "$ns$n" 2>/dev/null
    done
    mountpoint -q "$nsdir" && umount "$nsdir"
    rm -rf "$nsdir"
    gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null
    gpgconf --homedir "$work/gnupg" --remove-socketdir 2>/dev/null
    rm -rf "$work"
    for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null; done
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- two nodes ---------------------------------------------------------------
mkdir -p "$nsdir" && mount --bind "$nsdir" "$nsdir" && mount --make-private "$nsdir" || exit 1
mkdir -p "$work/shared" "$work/root-ssh"
ssh-keygen -q -t rsa -b 2048 -N '' -C "$ns-test" -f "$work/root-ssh/id_rsa" || exit 1
ssh-keygen -q -t ed25519 -N '' -C "$ns-hosts" -f "$work/host_key" || exit 1
cat >"$work/hosts" <<EOF
127.0.0.1 localhost
192.0.2.10 cluster.gnt.test
192.0.2.11 node1.gnt.test node1
192.0.2.12 node2.gnt.test node2
EOF
printf 'nameserver 127.0.0.1\n' >"$work/resolv.conf"
for n in 1 2; do
    w=$work/n$n
    mkdir -p "$w"/{etc,var/lib,var/log,run,srv,root/.ssh}
    cp -a /etc/ganeti "$w/etc/ganeti"
    printf '/srv/ganeti/file-storage\n/srv/ganeti/shared-file-storage\n' >"$w/etc/ganeti/file-storage-paths"
    cp -a /var/lib/ganeti "$w/var/lib/ganeti"
    cp -a /var/log/ganeti "$w/var/log/ganeti"
    mkdir -p "$w/run/ganeti" "$w/run/lock" "$w/srv/ganeti/file-storage" "$w/srv/ganeti/shared-file-storage" \
        "$w/srv/ganeti/os" "$w/var/lib/mkve" "$w/etc/mkve"
    chmod 1777 "$w/run/lock"
    # The OS definition of this tree, naming this build's mkve-vm.
    cp -a "$top/ganeti/os/mkve" "$w/srv/ganeti/os/mkve"
    for s in create verify import export rename; do
        sed -i "s|/usr/bin/mkve-vm|$bin/mkve-vm|" "$w/srv/ganeti/os/mkve/$s"
    done
    cp "$work/root-ssh/id_rsa" "$work/root-ssh/id_rsa.pub" "$w/root/.ssh/"
    cp "$work/root-ssh/id_rsa.pub" "$w/root/.ssh/authorized_keys"
    for m in 1 2; do
        echo "node$m.gnt.test,node$m,192.0.2.1$m $(cut -d' ' -f1,2 "$work/host_key.pub")"
    done >"$w/root/.ssh/known_hosts"
    echo "cluster.gnt.test,192.0.2.10 $(cut -d' ' -f1,2 "$work/host_key.pub")" >>"$w/root/.ssh/known_hosts"
    chmod 700 "$w/root" "$w/root/.ssh"
    cat >"$w/sshd_config" <<EOF
ListenAddress 192.0.2.1$n:22
HostKey $work/host_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile /run/ganeti/sshd-test.pid
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    ip netns add "$ns$n" || exit 1
    touch "$nsdir/mnt$n" "$nsdir/uts$n"
    nsenter --net="/run/netns/$ns$n" unshare --mount="$nsdir/mnt$n" --uts="$nsdir/uts$n" --propagation private \
        sh -ec "
            mount -t sysfs sysfs /sys
            for d in etc/ganeti var/lib/ganeti var/log/ganeti run/ganeti srv/ganeti run/lock root var/lib/mkve etc/mkve; do
                mount --bind '$w'/\$d /\$d
            done
            mount --bind '$work/hosts' /etc/hosts
            mount --bind '$work/resolv.conf' /etc/resolv.conf
            mount --bind '$work/shared' /srv/ganeti/shared-file-storage
            hostname node$n.gnt.test
        " || exit 1
    on "$n" ip link set lo up
    on "$n" ip link add mkvebr0 type bridge
    on "$n" ip addr add "192.0.2.1$n/24" dev mkvebr0
    on "$n" ip link set mkvebr0 up
    on "$n" /usr/lib/ganeti/ensure-dirs >/dev/null 2>&1
done
# The link between the nodes' bridges, made in the namespaces only.
ip -n "${ns}1" link add "${ns}-l1" type veth peer name "${ns}-l2" netns "${ns}2" || exit 1
ip -n "${ns}1" link set "${ns}-l1" master mkvebr0 up
ip -n "${ns}2" link set "${ns}-l2" master mkvebr0 up
for n in 1 2; do on "$n" /usr/sbin/sshd -f "$work/n$n/sshd_config" -E "$work/n$n/sshd.log" || exit 1; done
check "node1 reaches node2 by ssh, in node2's namespaces" \
    bash -c "test \"\$(on 1 ssh -o BatchMode=yes root@node2.gnt.test hostname)\" = node2.gnt.test"

t0=$(date +%s%N)
on 1 gnt-cluster init --no-ssh-init --no-etc-hosts --master-netdev mkvebr0 --master-netmask 24 \
    --enabled-hypervisors kvm --enabled-disk-templates file,sharedfile --ipolicy-disk-templates file,sharedfile \
    --file-storage-dir /srv/ganeti/file-storage --shared-file-storage-dir /srv/ganeti/shared-file-storage \
    -H "kvm:kvm_flag=disabled,kvm_path=/usr/bin/qemu-system-x86_64,kernel_path=$kernel,initrd_path=,vnc_bind_address=,serial_console=true,root_path=/dev/vda,migration_bandwidth=512" \
    -N mode=bridged,link=mkvebr0 cluster.gnt.test >"$work/init.log" 2>&1
rc=$?
init_ms=$((($(date +%s%N) - t0) / 1000000))
check "gnt-cluster init on node1 ($init_ms ms; QEMU $qemu_version: moves $move)" test "$rc" = 0
[ "$rc" = 0 ] || { sed 's/^/# /' "$work/init.log"; exit 1; }
on 1 gnt-node add --no-ssh-key-check node2.gnt.test >"$work/add.log" 2>&1
rc=$?
check "gnt-node add node2" test "$rc" = 0
[ "$rc" = 0 ] || { sed 's/^/# /' "$work/add.log"; exit 1; }
# The mkve network as a Ganeti network: its pool hands out addresses, and
# those below .100 (mkve's first ID) are reserved, but the nodes' and the
# cluster's, which Ganeti reserves itself.
printf 'network_address=192.0.2.1/24\nnetwork_bridge=mkvebr0\n' >"$work/n1/etc/mkve/mkve.conf"
on 1 "$bin/mkve-net" ganeti-connect --json >"$work/connect.json" 2>"$work/connect.err"
rc=$?
nres=$(json 'len(d["reserved"])' <"$work/connect.json" 2>/dev/null)
check "mkve-net ganeti-connect: the mkve prefix is Ganeti's network mkve, .2 to .99 reserved but Ganeti's own ($nres)" bash -c "
    test $rc = 0 && on 1 gnt-network list --no-headers -o name,network | grep -q '^mkve *192.0.2.0/24' && test '$nres' = 95"
[ "$rc" = 0 ] || sed 's/^/# /' "$work/connect.err"
on 1 "$bin/mkve-net" ganeti-connect >/dev/null 2>&1
check "and again: nothing changes, no error" test $? = 0
rapi_pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
on 1 sh -c "mkdir -p /var/lib/ganeti/rapi && echo 'mkve-test $rapi_pass write' >/var/lib/ganeti/rapi/users"

# --- the bundles ---------------------------------------------------------------
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'mkve ganeti test <ganeti@example.invalid>' \
    ed25519 sign never 2>/dev/null || exit 1
for n in 1 2; do gpg --batch --quiet --export >"$work/n$n/etc/mkve/trusted.gpg"; done
gpg --batch --quiet --export >"$work/trusted.gpg"
root=$work/guest
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,www/cgi-bin,newroot}
cp /usr/bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"; ln -s ../bin/busybox "$root/sbin/init"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:*:19000:0:99999:7:::' >"$root/etc/shadow"
echo 'root:x:0:' >"$root/etc/group"
printf '::sysinit:/etc/rc\n::respawn:/bin/sh\n' >"$root/etc/inittab"
# The guest: its name, and NIC 0's address, as the OS definition wrote them.
cat >"$root/etc/rc" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
hostname -F /etc/hostname
ip link set lo up
ip link set eth0 up
if [ -f /etc/mkve/network ]; then
    . /etc/mkve/network
    ip addr add "$address/$prefix" dev eth0
    [ -n "$gateway" ] && ip route add default via "$gateway"
else
    udhcpc -i eth0 -s /etc/udhcpc.script -b -S -t 30 -T 1 -A 1
fi
httpd -p 80 -h /www
EOF
cat >"$root/www/cgi-bin/info" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "boot $(cat /proc/sys/kernel/random/boot_id)"
echo "uptime $(cut -d' ' -f1 /proc/uptime)"
echo "hostname $(hostname)"
echo "greeting $(cat /etc/mkve/params/greeting 2>/dev/null)"
echo "secret-mode $(stat -c %a /etc/mkve/params/admin_password 2>/dev/null)"
echo "secret-sum $(sha256sum </etc/mkve/params/admin_password 2>/dev/null | cut -d' ' -f1)"
echo "marker $(cat /etc/marker 2>/dev/null)"
EOF
cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
EOF
chmod 755 "$root/etc/rc" "$root/www/cgi-bin/info" "$root/etc/udhcpc.script"
# Its initramfs: the virtio modules, then the disk as the root.
init=$work/initramfs
mkdir -p "$init"/{bin,proc,sys,dev,newroot,lib/modules}
cp /usr/bin/busybox "$init/bin/busybox"
mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk"
for m in $mods; do
    cp "$(find "$kdir/lib/modules/$kver" -name "$m.ko" | head -1)" "$init/lib/modules/" || exit 1
done
cat >"$init/init" <<EOF
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $mods; do /bin/busybox insmod /lib/modules/\$m.ko; done
for i in \$(/bin/busybox seq 50); do [ -b /dev/vda ] && break; /bin/busybox sleep 0.1; done
/bin/busybox mount -t ext4 /dev/vda /newroot || exec /bin/busybox sh
/bin/busybox mount --move /dev /newroot/dev
/bin/busybox mount --move /proc /newroot/proc
/bin/busybox mount --move /sys /newroot/sys
exec /bin/busybox switch_root /newroot /sbin/init
EOF
chmod 755 "$init/init"
mkdir -p "$root/boot"
cp "$kernel" "$root/boot/vmlinuz-$kver"
(cd "$init" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$root/boot/initrd.img-$kver"
tpl=$work/template
cp -a "$top/tests/fixtures/templates/good/nodes-guest" "$tpl"
echo 'http 80 /cgi-bin/info' >"$tpl/probes"
cat >"$tpl/params" <<'EOF'
# NAME          FLAGS            DEFAULT  DESCRIPTION
greeting        -                hello    what the guest's page says
admin_password  required,secret  -        a secret the guest keeps 0600
EOF
bundle() { # ROOT OUT HV
    "$bin/mkve-bundle" --no-config -q -H "$3" --rootfs "$1" -o "$2" "$tpl" >/dev/null
}
bundle "$root" "$work/svc.bun" qemu || exit 1
busybox_root "$work/lxcroot"
bundle "$work/lxcroot" "$work/ctr.bun" lxc || exit 1
# One real template: ntp-server for qemu, built from Debian's packages
# (through the layer cache tests/services.sh shares), served by chronyd.
t0=$(date +%s)
MKVE_CACHEDIR=${MKVE_CACHEDIR:-$target/tmp/mkve-layer-cache} \
    "$bin/mkve-bundle" --no-config -q -H qemu -o "$work/ntp-server.bun" "$top/templates/ntp-server" >/dev/null 2>"$work/ntp-build.err"
rc=$?
ntp_build_s=$(($(date +%s) - t0))
check "ntp-server built for qemu ($ntp_build_s s)" test "$rc" = 0
[ "$rc" = 0 ] || { sed 's/^/# /' "$work/ntp-build.err"; exit 1; }
"$bin/mkve-bundle" -q --keyring "$work/trusted.gpg" --publish "$work/pub" "$work/svc.bun" "$work/ctr.bun" \
    "$work/ntp-server.bun" >/dev/null || exit 1
# bench/ganeti.sh makes a libvirt machine of the same bundle.
if [ -n "${GANETI_KEEP_BUNDLE:-}" ]; then
    mkdir -p "$GANETI_KEEP_BUNDLE" && cp "$work/svc.bun" "$work/trusted.gpg" "$GANETI_KEEP_BUNDLE/"
fi
# The same variant changed (one file): published elsewhere.
echo changed >"$root/etc/marker"
mkdir -p "$work/changed" && bundle "$root" "$work/changed/svc.bun" qemu || exit 1
"$bin/mkve-bundle" -q --keyring "$work/trusted.gpg" --publish "$work/pub2" "$work/changed/svc.bun" >/dev/null || exit 1
# The directory must be where node 1's sync can read it: this test's work
# directory is the same path in every namespace.

# --- the variants on every node --------------------------------------------------
t0=$(date +%s%N)
on 1 "$bin/mkve-vm" ganeti sync "$work/pub" >"$work/sync.out" 2>"$work/sync.err"
rc=$?
sync_ms=$((($(date +%s%N) - t0) / 1000000))
check "mkve-vm ganeti sync brings the published directory to both nodes ($sync_ms ms)" \
    bash -c "test $rc = 0 && grep -q '^synced to node node2.gnt.test' '$work/sync.out'"
[ "$rc" = 0 ] || sed 's/^/# /' "$work/sync.err"
check "the lxc bundle is left out, told" grep -q 'ctr.bun: left out: is a bundle for lxc' "$work/sync.err"
for n in 1 2; do
    check "node$n: variants.list is ntp-server and svc, parameters.list the bundles' and mkve's own" bash -c "
        test \"\$(cat '$work/n$n/var/lib/mkve/ganeti/variants.list' | tr '\n' ' ')\" = 'ntp-server svc ' &&
        grep -q '^admin_password a secret the guest keeps 0600 (required, secret)\$' '$work/n$n/var/lib/mkve/ganeti/parameters.list' &&
        grep -q '^mkve-root-password ' '$work/n$n/var/lib/mkve/ganeti/parameters.list'"
done
sum1=$(sha256sum <"$work/n1/var/lib/mkve/ganeti/bundles/svc.bun")
check "the bundle is the same on both nodes" test "$sum1" = "$(sha256sum <"$work/n2/var/lib/mkve/ganeti/bundles/svc.bun")"
on 1 gnt-os info mkve >"$work/osinfo" 2>&1
check "gnt-os info lists the variant and the parameters" bash -c \
    "grep -q 'svc' '$work/osinfo' && grep -q 'admin_password' '$work/osinfo'"
vk=$(on 1 "$bin/mkve-vm" ganeti variants --json | json '[v for v in d if v["name"] == "svc"][0]["kernel"]')
vi=$(on 1 "$bin/mkve-vm" ganeti variants --json | json '[v for v in d if v["name"] == "svc"][0]["initrd"]')
check "the bundle's kernel and initrd are kept on both nodes ($vk)" bash -c \
    "cmp -s '$work/n1$vk' '$kernel' && cmp -s '$work/n2$vk' '$kernel' && test -s '$work/n2$vi'"

hv="kvm:kernel_path=$vk,initrd_path=$vi"
add() { # NAME [OPTION...]: gnt-instance add of variant svc
    local name=$1; shift
    on 1 gnt-instance add -t sharedfile --disk 0:size=1G -o mkve+svc -B memory=128M,vcpus=1 \
        -H "$hv" --no-name-check --no-ip-check "$@" "$name"
}

# --- a required parameter missing --------------------------------------------------
add bad.gnt.test -I hail --net 0:network=mkve,ip=pool -O greeting=nope >"$work/bad.out" 2>&1
rc=$?
check "a create without the required parameter is refused" bash -c \
    "test $rc != 0 && grep -q 'needs a parameter: admin_password' '$work/bad.out'"
[ "$rc" != 0 ] || sed 's/^/# /' "$work/bad.out"
check "before anything is made: no instance, no disk" bash -c \
    "test -z \"\$(on 1 gnt-instance list --no-headers -o name)\" && test -z \"\$(ls -A '$work/shared')\""

# --- a create placed by hail, its address from the pool ------------------------------
t0=$(date +%s%N)
add svc1.gnt.test -I hail --net 0:network=mkve,ip=pool -O greeting=from-ganeti \
    --os-parameters-secret "admin_password=$secret" >"$work/add1.out" 2>&1
rc=$?
check "gnt-instance add svc1 (hail, pool address) succeeds" test "$rc" = 0
[ "$rc" = 0 ] || { sed 's/^/# /' "$work/add1.out"; echo "ganeti: $passed passed, $failed failed (stopped here)"; exit 1; }
check "hail placed it" grep -q 'via iallocator hail' "$work/add1.out"
ip1=$(on 1 gnt-instance list --no-headers -o nic.ip/0 svc1.gnt.test)
pnode=$(on 1 gnt-instance list --no-headers -o pnode svc1.gnt.test)
check "its address $ip1 comes from the pool, at or above .100" bash -c \
    "grep -q 'Chose IP $ip1 from network mkve' '$work/add1.out' && test '${ip1##*.}' -ge 100"
answers 1 "$ip1" 180; rc=$?
create_ms=$((($(date +%s%N) - t0) / 1000000))
check "it answers its probe at $ip1 (create to answer: $create_ms ms, on $pnode)" test "$rc" = 0
ask 1 "$ip1" >"$work/page1"
sed 's/^/# /' "$work/page1"
check "its host name is the instance's" test "$(field hostname <"$work/page1")" = svc1.gnt.test
check "its parameter greeting is the one given" test "$(field greeting <"$work/page1")" = from-ganeti
check "its secret is in its root, 0600" bash -c \
    "test \"\$(field secret-mode <'$work/page1')\" = 600 && test \"\$(field secret-sum <'$work/page1')\" = \"\$(printf %s '$secret' | sha256sum | cut -d' ' -f1)\""
check "the secret is in no Ganeti file or log on either node" bash -c \
    "! grep -rlF -- '$secret' $work/n1/var/lib/ganeti $work/n1/var/log/ganeti $work/n1/run/ganeti $work/n1/etc/ganeti \
        $work/n2/var/lib/ganeti $work/n2/var/log/ganeti $work/n2/run/ganeti $work/n2/etc/ganeti 2>/dev/null"

# --- migration with the probe answering ---------------------------------------------------
boot1=$(field boot <"$work/page1")
# The probe every 0.2 s during a migration: "TIME ok|miss" lines; the
# longest run of misses is the downtime seen.
poll() { while :; do if on 1 curl -sf -m 1 "http://$ip1/cgi-bin/info" >/dev/null 2>&1; then echo "$(date +%s%N) ok"; else echo "$(date +%s%N) miss"; fi; sleep 0.2; done; }
# (A run of misses at the end lasts to the last probe.)
gap_ms() { awk '$2 == "miss" && !s {s = last} $2 == "ok" && s {g = $1 - s; if (g > m) m = g; s = 0} {last = $1} END {if (s && last - s > m) m = last - s; print int(m / 1000000)}' "$1"; }
migrate_to() { # NODE N: migrate svc1 live to NODE, probed; sets migrate_ms, misses, probes, gap
    local to=$1 k=$2 poller rc
    poll >"$work/polls$k" & poller=$!
    sleep 1
    local t0=$(date +%s%N)
    local from; from=$(on 1 gnt-instance list --no-headers -o pnode svc1.gnt.test)
    paused_move svc1.gnt.test "$from" "$to" on 1 gnt-instance migrate -f -n "$to" svc1.gnt.test >"$work/migrate$k.out" 2>&1
    rc=$?
    migrate_ms=$((($(date +%s%N) - t0) / 1000000))
    sleep 3; kill "$poller"; wait "$poller" 2>/dev/null
    misses=$(grep -c miss "$work/polls$k"); probes=$(grep -c . "$work/polls$k"); gap=$(gap_ms "$work/polls$k")
    check "gnt-instance migrate ($move) to $to ($migrate_ms ms)" test "$rc" = 0
    [ "$rc" = 0 ] || sed 's/^/# /' "$work/migrate$k.out"
    check "it runs on $to now" test "$(on 1 gnt-instance list --no-headers -o pnode svc1.gnt.test)" = "$to"
    answers 1 "$ip1" 30
    ask 1 "$ip1" >"$work/page-m$k"
    check "the probe answers after it, the same boot ($((probes - misses)) of $probes probes during it; longest gap $gap ms, at most $max_gap_ms)" bash -c \
        "head -1 '$work/polls$k' | grep -q ok && test \"\$(field boot <'$work/page-m$k')\" = '$boot1' && test $gap -le $max_gap_ms"
    figures="$figures migration ($move) to $to: $migrate_ms ms, $misses of $probes probes missed, longest gap $gap ms;"
}
figures=""
other=node2.gnt.test; [ "$pnode" = node2.gnt.test ] && other=node1.gnt.test
migrate_to "$other" 1
# The failover below kills node2 (node1 is the master): the instance goes
# back there first, live again.
[ "$other" = node2.gnt.test ] || migrate_to node2.gnt.test 2

# --- a variant out of sync -----------------------------------------------------------
on 1 "$bin/mkve-vm" -q ganeti sync --this-node-only "$work/pub2" >/dev/null 2>"$work/sync2.err"
check "node1 alone takes a changed svc" bash -c \
    "test \"\$(sha256sum <'$work/n1/var/lib/mkve/ganeti/bundles/svc.bun')\" != '$sum1'"
add svc2.gnt.test -n node1.gnt.test --net 0:network=mkve,ip=pool \
    --os-parameters-secret "admin_password=$secret" >"$work/add2.out" 2>&1
rc=$?
check "a create of the variant is refused, naming node2" bash -c \
    "test $rc != 0 && grep -q 'variant svc: not the same on node node2.gnt.test' '$work/add2.out'"
[ "$rc" != 0 ] || sed 's/^/# /' "$work/add2.out"
check "and nothing is made" bash -c \
    "! on 1 gnt-instance list --no-headers -o name | grep -q svc2 && test \"\$(ls '$work/shared' | wc -l)\" = 1"
on 1 "$bin/mkve-vm" -q ganeti sync "$work/pub" >/dev/null 2>&1
check "a sync of every node makes them agree again" \
    test "$(sha256sum <"$work/n1/var/lib/mkve/ganeti/bundles/svc.bun")" = "$sum1"

# --- mkve-vm driving the cluster (engine=ganeti: RAPI) -----------------------------------
printf 'mkve-test %s\n' "$rapi_pass" >"$work/n1/etc/mkve/ganeti-rapi"
chmod 600 "$work/n1/etc/mkve/ganeti-rapi"
printf 'engine=ganeti\nganeti_disk_template=sharedfile\n' >>"$work/n1/etc/mkve/mkve.conf"
secret2="s3cret2-$RANDOM$RANDOM-never-logged"
printf '%s\n' "$secret2" >"$work/secret2"
vm() { on 1 "$bin/mkve-vm" "$@"; }
export -f vm
export bin work
vm -q create --name svc3.gnt.test --memory 128M svc >/dev/null 2>"$work/create3.err"
rc=$?
check "mkve-vm create without the required parameter: refused (2) before a job is made" bash -c \
    "test $rc = 2 && grep -q 'needs a parameter: admin_password' '$work/create3.err' && ! on 1 gnt-job list --no-headers | grep -q svc3"
t0=$(date +%s%N)
name2=$(vm -q create --name svc2.gnt.test --memory 128M --param greeting=via-rapi \
    --param-file "admin_password=$work/secret2" --start svc 2>"$work/create2.err")
rc=$?
check "mkve-vm create (RAPI, hail, pool address) makes and starts svc2" test "$rc:$name2" = "0:svc2.gnt.test"
[ "$rc" = 0 ] || sed 's/^/# /' "$work/create2.err"
vm info --json svc2.gnt.test >"$work/info2.json"
ip2=$(json 'd["address"]' <"$work/info2.json")
id2=$(json 'd["id"]' <"$work/info2.json")
vm wait --timeout 180 svc2.gnt.test 2>"$work/wait2.err"; rc=$?
create2_ms=$((($(date +%s%N) - t0) / 1000000))
check "mkve-vm wait: its probe answers at $ip2 ($create2_ms ms from the command), its ID $id2 the address in the prefix" \
    bash -c "test $rc = 0 && test '$id2' = '${ip2##*.}' && test '$id2' -ge 100 && ask 1 '$ip2' >/dev/null"
[ "$rc" = 0 ] || sed 's/^/# /' "$work/wait2.err"
ask 1 "$ip2" >"$work/page4"
check "with its parameter and secret" bash -c \
    "test \"\$(field greeting <'$work/page4')\" = via-rapi && test \"\$(field secret-mode <'$work/page4')\" = 600"
check "the second secret is in no Ganeti file or log either" bash -c \
    "! grep -rlF -- '$secret2' $work/n1/var/lib/ganeti $work/n1/var/log/ganeti $work/n1/run/ganeti $work/n2/var/lib/ganeti $work/n2/var/log/ganeti $work/n2/run/ganeti 2>/dev/null"
vm list --json >"$work/list.json"
check "mkve-vm list has both instances with their IDs" bash -c \
    "json \"sorted((i['name'], i['id']) for i in d)\" <'$work/list.json' | grep -qF \"('svc1.gnt.test', 100), ('svc2.gnt.test', $id2)\""
here=$(json 'd["node"]' <"$work/info2.json"); there=node1.gnt.test; [ "$here" = node1.gnt.test ] && there=node2.gnt.test
boot2=$(field boot <"$work/page4")
paused_move svc2.gnt.test "$here" "$there" vm -q migrate svc2.gnt.test "$there"; rc=$?
answers 1 "$ip2" 30
now=$(vm info --json svc2.gnt.test | json 'd["node"]')
check "mkve-vm migrate moves it ($move) to $there (the same boot)" bash -c \
    "test $rc = 0 && test '$now' = '$there' && test \"\$(ask 1 '$ip2' | field boot)\" = '$boot2'"
# mkve-web, on node 1's socket: the same instances, and an action on them.
on 1 "$bin/mkve-web" -q --listen "unix:$work/web.sock" 2>"$work/web.err" & web=$!
for _ in $(seq 50); do [ -S "$work/web.sock" ] && break; sleep 0.1; done
webc() { on 1 curl -s --unix-socket "$work/web.sock" "$@"; }
webc "http://localhost/api/ganeti/instances" >"$work/web-list.json"
names=$(json '" ".join(sorted(i["name"] for i in d))' <"$work/web-list.json" 2>/dev/null)
check "mkve-web lists the cluster's instances as mkve-vm does ($names)" test "$names" = "svc1.gnt.test svc2.gnt.test"
[ -n "$names" ] || sed 's/^/# /' "$work/web-list.json" "$work/web.err"
webmigrate() { code=$(webc -o /dev/null -w '%{http_code}' -X POST "http://localhost/api/ganeti/instances/svc2.gnt.test/migrate?to=$here"); test "$code" = 204; }
paused_move svc2.gnt.test "$there" "$here" webmigrate
answers 1 "$ip2" 30
now=$(vm info --json svc2.gnt.test | json 'd["node"]')
check "mkve-web migrates it back to $here (HTTP $code), the same boot" bash -c \
    "test '$code' = 204 && test '$now' = '$here' && test \"\$(ask 1 '$ip2' | field boot)\" = '$boot2'"
webc http://localhost/ganeti >"$work/web-page.html"
webc http://localhost/api/log >"$work/web-log.json"
check "its page lists them, its log has the action" bash -c \
    "grep -q svc2.gnt.test '$work/web-page.html' && grep -q 'ganeti migrate svc2.gnt.test $here' '$work/web-log.json'"
kill "$web" 2>/dev/null; wait "$web" 2>/dev/null
vm -q stop --force svc2.gnt.test; rc=$?
check "mkve-vm stop --force: ADMIN_down" bash -c "test $rc = 0 && vm info svc2.gnt.test | grep -q '^state *ADMIN_down'"
vm -q start svc2.gnt.test; rc=$?
answers 1 "$ip2" 180
check "mkve-vm start: it answers again, a new boot" bash -c \
    "test $rc = 0 && test \"\$(ask 1 '$ip2' | field boot)\" != '$boot2'"
vm -q stop --force svc2.gnt.test && vm -q delete svc2.gnt.test; rc=$?
deleted_rc=$rc
check "mkve-vm delete: gone from the cluster" bash -c \
    "test $deleted_rc = 0 && ! vm list | grep -q svc2"
vm info svc2.gnt.test >/dev/null 2>"$work/info-gone.err"; rc=$?
check "info on it now: 2, naming it" bash -c "test $rc = 2 && grep -q 'no instance svc2.gnt.test' '$work/info-gone.err'"
sed 's/^/# /' "$work/info-gone.err"

# The real template: Debian with systemd, chronyd answering NTP.
t0=$(date +%s%N)
vm -q create --name ntp1.gnt.test --memory 384M --start ntp-server >/dev/null 2>"$work/ntp1.err"
rc=$?
check "mkve-vm create ntp1 of the variant ntp-server (a real template)" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$work/ntp1.err"
vm wait --timeout 300 ntp1.gnt.test 2>"$work/ntp1-wait.err"; rc=$?
ntp_ms=$((($(date +%s%N) - t0) / 1000000))
ip3=$(vm info --json ntp1.gnt.test | json 'd["address"]')
check "mkve-vm wait: its NTP probe answers at $ip3 ($ntp_ms ms from the command)" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$work/ntp1-wait.err"
check "and chronyd answers an NTP client there" on 1 "$top/tests/harness/ntp-query" "$ip3" 30 1
figures_ntp="real template (ntp-server) create to NTP answer: ${ntp_ms} ms (build ${ntp_build_s} s);"
vm -q stop --force ntp1.gnt.test && vm -q delete ntp1.gnt.test

# --- failover after the node is killed --------------------------------------------------
dead=node2.gnt.test; alive=node1.gnt.test
kill -9 $(ip netns pids "${ns}2") 2>/dev/null
sleep 1
check "node $dead is down: nothing runs in its namespace, the guest is gone" bash -c \
    "test -z \"\$(ip netns pids '${ns}2')\" && ! ask 1 '$ip1'"
on 1 gnt-node modify -O yes --force "$dead" >"$work/offline.out" 2>&1
rc=$?
check "marked offline" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$work/offline.out"
t0=$(date +%s%N)
job=$(rapi PUT /2/instances/svc1.gnt.test/failover \
    "{\"ignore_consistency\": true, \"target_node\": \"$alive\", \"ignore_ipolicy\": true}")
on 1 gnt-job watch "$job" >"$work/failover.out" 2>&1
status=$(rapi GET "/2/jobs/$job" | json 'd["status"]' 2>/dev/null)
check "failover through RAPI (job $job: $status)" test "$status" = success
[ "$status" = success ] || sed 's/^/# /' "$work/failover.out"
answers 1 "$ip1" 180; rc=$?
failover_ms=$((($(date +%s%N) - t0) / 1000000))
check "the instance answers again on $alive ($failover_ms ms)" test "$rc" = 0
check "Ganeti has it on $alive" test "$(on 1 gnt-instance list --no-headers -o pnode svc1.gnt.test)" = "$alive"

# --- rename: the new name written into the disk, nothing mounted --------------------
on 1 gnt-instance shutdown --timeout=0 svc1.gnt.test >/dev/null 2>&1
# (gnt-instance rename asks a question of its own without a terminal, and
# says no: RAPI, as for the failover.)
job=$(rapi PUT /2/instances/svc1.gnt.test/rename '{"new_name": "svc9.gnt.test", "ip_check": false, "name_check": false}')
on 1 gnt-job watch "$job" >"$work/rename.out" 2>&1
status=$(rapi GET "/2/jobs/$job" | json 'd["status"]' 2>/dev/null)
check "rename svc1 to svc9 through RAPI (job $job: $status)" test "$status" = success
[ "$status" = success ] || sed 's/^/# /' "$work/rename.out"
on 1 gnt-instance startup svc9.gnt.test >/dev/null 2>&1
answers 1 "$ip1" 180
ask 1 "$ip1" >"$work/page3"
check "it answers as svc9.gnt.test, its secret still there" bash -c \
    "test \"\$(field hostname <'$work/page3')\" = svc9.gnt.test && test \"\$(field secret-mode <'$work/page3')\" = 600"

# --- teardown ------------------------------------------------------------------
teardown_t0=$(date +%s)
teardown
left() {
    local bad=""
    for n in 1 2; do [ -e "/run/netns/$ns$n" ] && bad="$bad netns:$ns$n"; done
    [ -e "$nsdir" ] && bad="$bad $nsdir"
    findmnt -rn -o TARGET | grep -qF "$work" && bad="$bad mounts"
    findmnt -rn -o TARGET | grep -qF "$nsdir" && bad="$bad ns-mounts"
    losetup -a 2>/dev/null | grep -qF "$work" && bad="$bad loop"
    # (Killed daemons' zombies wait for PID 1 to reap them: not running.)
    local procs
    procs=$(ps -eo stat=,pid=,args= | awk '$1 !~ /^Z/' | grep -E "ganeti-(noded|masterd|confd|luxid|wconfd|rapi|mond|metad|kvmd)|sshd -f $work|qemu-system-x86_64.*svc1" | grep -v grep)
    [ -z "$procs" ] || bad="$bad processes($(echo "$procs" | head -3 | tr '\n' ';'))"
    [ -e "$work" ] && bad="$bad $work"
    [ -z "$bad" ] || { echo "left:$bad" >&2; return 1; }
}
check "teardown ($(($(date +%s) - teardown_t0)) s) leaves no daemon, mount, loop device or namespace" left

elapsed=$(($(date +%s) - started))
echo "ganeti: cluster init ${init_ms} ms; sync ${sync_ms} ms; create to answer ${create_ms} ms;" \
    "$figures ${figures_ntp:-} failover to answer ${failover_ms:-?} ms; suite ${elapsed} s"
echo "ganeti: $passed passed, $failed failed"
[ "$failed" = 0 ]
