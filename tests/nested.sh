#!/bin/bash
# tests/nested.sh [BINDIR]: KVM and Xen for real, nested under QEMU's TCG
# (issue 27). mkve-bundle builds the virt-node template (libvirt with its
# qemu and libxl drivers, QEMU, Xen 4.17) into a bundle; its root, on a
# raw disk, is booted under TCG twice, the host's /dev/kvm never touched:
#   - plainly, with `-cpu max` (AMD SVM with nested paging under TCG):
#     kvm_amd loads, and mkve-vm inside makes, starts, probes, stops and
#     deletes a kvm machine (`domain type='kvm'`); with NESTED_COMPARE=1
#     (bench/nested.sh) then the same bundle as a qemu (TCG) machine;
#   - as Xen's dom0 (the root's xen-*.gz, gunzipped, is a multiboot image
#     QEMU's -kernel loads; smap=0 smep=0 on Xen's command line, without
#     which dom0 dies at once under TCG): mkve-vm -c xen:/// makes the same
#     for a xen machine (PV).
# A second, read-only disk carries the test's side: mkve's binaries from
# this tree, the guests' bundles and the script the node runs
# (systemd.run=); the node tells what happened on its serial console, and
# the checks read the markers there (not xl's exit status: it segfaulted
# once in three runs while its guest ran, ../shared/reviews/nested.md).
# The guests are the busybox machines of tests/nodes.sh, booted with the
# node's own kernel, answering their template's probe (HTTP).
# NESTED_NODES="kvm" (or "xen") boots only that node; NESTED_HANG_ONCE=1
# has libvirtd stop in each node's first boot (the retry's own check).
# Needs root, mmdebstrap and the Debian mirror (the node's packages), and
# qemu-system-x86. Each node runs under `timeout`; nothing is left running.
set -u
. "$(dirname "$0")/harness/lib.sh"
use_bins nested debug "${1:-}"
passed=0 failed=0
suite_work nested
qemu_pid=
cleanup() {
    [ -z "$qemu_pid" ] || kill -KILL "$qemu_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the node: a bundle of the virt-node template, its root on a disk ------
t0=$SECONDS
"$bin/mkve-bundle" --no-config -q -H qemu --force-no-sign -o "$work/node.bun" "$top/templates/virt-node" >/dev/null ||
    { echo "nested: the virt-node bundle did not build" >&2; exit 1; }
"$bin/mkve-bundle" -q --allow-unsigned --extract "$work/node.bun" -C "$work/nodeb" >/dev/null || exit 1
mv "$work/nodeb/rootfs" "$work/node" && rm -rf "$work/nodeb" || exit 1
build_s=$((SECONDS - t0))
check "mkve-bundle builds the virt-node template ($build_s s with its extraction)" test -s "$work/node.bun"
kernel=$(ls "$work"/node/boot/vmlinuz-* | head -1)
kver=${kernel##*/vmlinuz-}
initrd=$work/node/boot/initrd.img-$kver
xen_gz=$(ls "$work"/node/boot/xen-*.gz 2>/dev/null | grep -v -- '-dbg' | head -1)
check "the node holds a kernel ($kver), its initrd and Xen's hypervisor" \
    test -f "$kernel" -a -f "$initrd" -a -f "${xen_gz:-/nonexistent}"
cp "$kernel" "$initrd" "$work/" || exit 1
zcat "$xen_gz" >"$work/xen.bin" || exit 1
rm "$work/node.bun"
# The test's side in the node's root: a unit that runs the payload's script
# (tests/harness/nested-node) once the node is up; it powers the node off.
cat >"$work/node/etc/systemd/system/mkve-nested-test.service" <<'EOF'
[Unit]
Description=tests/nested.sh: the payload disk's script
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mount -o ro LABEL=payload /mnt && exec sh /mnt/run'
ExecStopPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
EOF
# libvirtd logs its libxl driver at debug level (what the payload's
# script shows when libvirtd stops answering).
cat >>"$work/node/etc/libvirt/libvirtd.conf" <<'EOF'
log_filters="1:libxl.libxl_driver 1:libxl.libxl_domain 1:daemon.remote 3:*"
log_outputs="1:file:/var/log/libvirt/libvirtd.log"
EOF
ln -s ../mkve-nested-test.service "$work/node/etc/systemd/system/multi-user.target.wants/mkve-nested-test.service"
truncate -s 6G "$work/node.img"
mkfs.ext4 -q -F -L node -d "$work/node" "$work/node.img" || exit 1

# --- the guests: a busybox root, the node's kernel, virtio and xen fronts ---
root=$work/groot
busybox_root "$root"
mkdir -p "$root"/{proc,sys,dev,run,tmp,www/cgi-bin,lib/modules}
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
printf '::sysinit:/etc/rc\n::respawn:/bin/sh\n' >"$root/etc/inittab"
cat >"$root/etc/rc" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /usr/share/udhcpc/default.script -b -S -t 60 -T 1 -A 1
httpd -p 80 -h /www
EOF
udhcpc_script "$root"
cat >"$root/www/cgi-bin/uptime" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "$(cat /proc/sys/kernel/random/boot_id) $(cut -d' ' -f1 /proc/uptime) $(cat /sys/hypervisor/type 2>/dev/null)"
EOF
chmod 755 "$root/etc/rc" "$root/www/cgi-bin/uptime"
qroot=$work/qroot
mkdir -p "$qroot/boot"
# The whole root is the initramfs: /init loads the modules (virtio's and
# Xen's front ends) and runs init.
busybox_initramfs "$root" "$work/node/lib/modules/$kver" "$qroot/boot/initrd.img-$kver" \
    virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover \
    virtio_net virtio_blk xen-blkfront xen-netfront || exit 1
cp -a "$root/." "$qroot/"
cp "$kernel" "$qroot/boot/vmlinuz-$kver"
payload=$work/payload
mkdir -p "$payload/bin"
for hv in kvm xen ${NESTED_COMPARE:+qemu}; do
    "$bin/mkve-bundle" --no-config -q -H $hv --force-no-sign --rootfs "$qroot" -o "$payload/guest-$hv.bun" \
        "$top/tests/fixtures/templates/good/nodes-guest" >/dev/null || exit 1
done
for tool in mkve-vm mkve-net; do strip -o "$payload/bin/$tool" "$bin/$tool" || exit 1; done
cp "$top/tests/harness/nested-node" "$payload/run" || exit 1
mkfs.ext4 -q -F -L payload -d "$payload" "$work/payload.img" 400M >/dev/null || exit 1

# want NODE: NODE (kvm or xen) is one of $NESTED_NODES (default: both).
want() { case " ${NESTED_NODES:-kvm xen} " in *" $1 "*) return 0 ;; esac; return 1; }

# boot_node NAME SECONDS QEMU-ARGS...: boot the node under TCG (2 vCPUs,
# 3 GiB, no network card), its serial console in $work/NAME.serial; wait
# for it to power off, or kill it after SECONDS. Its disk is opened with
# snapshot=on: each boot starts from the same root, and leaves it so.
boot_node() {
    local name=$1 limit=$2; shift 2
    timeout --kill-after=10 "$limit" qemu-system-x86_64 -accel tcg -machine q35 -m 3G -smp 2 \
        -nic none -display none -monitor none -no-reboot -serial "file:$work/$name.serial" \
        -drive "file=$work/node.img,if=virtio,format=raw,cache=unsafe,snapshot=on" \
        -drive "file=$work/payload.img,if=virtio,format=raw,readonly=on" "$@" &
    qemu_pid=$!
    wait "$qemu_pid"
    local rc=$?
    qemu_pid=
    return "$rc"
}
# boot_twice NAME SECONDS QEMU-ARGS...: boot_node, and once more when the
# node's script said libvirtd stopped answering inside it (once in CI, in
# the Xen node just after a create: a libvirt call that never returned);
# where libvirtd stood then is printed, and the checks read the second
# boot's console.
boot_twice() {
    boot_node "$@"
    said "$1" "libvirtd stopped answering" || return 0
    echo "# libvirtd in the $1 node stopped answering; where it stood:"
    sed -n '/NESTED: libvirtd stopped answering/,$p' "$work/$1.serial" | head -120 | sed 's/^/#   /'
    echo "# booting the $1 node once more"
    mv "$work/$1.serial" "$work/$1.serial.1"
    boot_node "${@// mkve.nested_hang/}"
}
# The payload's script reads which hypervisor to try from the kernel's
# command line.
# NESTED_HANG_ONCE=1: the node's script stops libvirtd in the first boot
# as if it hung (boot_twice's own check).
run_cmd() { echo "mkve.nested=$1${NESTED_HANG_ONCE:+ mkve.nested_hang}"; }
# said NAME WHAT: the node's serial console has the line "NESTED: WHAT".
said() { grep -aq "NESTED: $2" "$work/$1.serial"; }
# figure NAME KEY: the value the node printed as "NESTED: figure KEY VALUE".
figure() { sed -n "s/.*NESTED: figure $2 \([0-9.]*\).*/\1/p" "$work/$1.serial" | head -1; }

# --- the KVM node --------------------------------------------------------------
if want kvm; then
t0=$SECONDS
boot_twice kvm 900 -cpu max -kernel "$work/vmlinuz-$kver" -initrd "$work/initrd.img-$kver" \
    -append "root=/dev/vda rw console=ttyS0 quiet $(run_cmd kvm)${NESTED_COMPARE:+ mkve.nested_compare}"
echo "# the KVM node ran $((SECONDS - t0)) s"
check "the KVM node boots to mkve-vm doctor ready ($(figure kvm doctor) s of its uptime)" said kvm "doctor kvm usable"
check "kvm_amd gives it /dev/kvm (nested, under TCG)" said kvm "dev-kvm"
check "mkve-vm -c qemu:///system create --start of a kvm bundle makes a domain type='kvm'" said kvm "kvm domain-type kvm"
check "  its probe (HTTP) answers from inside the node ($(figure kvm kvm-create-to-probe) s from create)" said kvm "kvm probe answered"
check "  the guest runs under KVM (its QEMU has -accel kvm)" said kvm "kvm accel kvm"
check "  stop and delete leave no domain, process, or machine" said kvm "kvm nothing left"
if [ -n "${NESTED_COMPARE:-}" ]; then
    check "the same bundle as a qemu (TCG) machine inside the node answers too ($(figure kvm qemu-create-to-probe) s)" \
        said kvm "qemu probe answered"
    check "  and leaves nothing" said kvm "qemu nothing left"
fi
check "the node's script ended" said kvm "done"
if [ "$failed" -gt 0 ]; then echo "# the KVM node's console:"; grep -a "NESTED\|mkve-\|rror" "$work/kvm.serial" | tail -40; fi
fi

# --- the Xen node ----------------------------------------------------------------
if want xen; then
f0=$failed
t0=$SECONDS
boot_twice xen 900 -cpu "${NESTED_XEN_CPU:-max}" -kernel "$work/xen.bin" \
    -append "console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M smap=0 smep=0 loglvl=warning guest_loglvl=warning" \
    -initrd "$work/vmlinuz-$kver root=/dev/vda rw console=hvc0 quiet $(run_cmd xen),$work/initrd.img-$kver"
echo "# the Xen node ran $((SECONDS - t0)) s"
check "Xen boots the node as its dom0 (control_d)" said xen "xen dom0"
check "  mkve-vm doctor finds Xen usable ($(figure xen doctor) s of dom0's uptime)" said xen "doctor xen usable"
check "mkve-vm -c xen:/// create --start of a xen bundle makes a PV domain" said xen "xen domain-type xen"
check "  its probe (HTTP) answers from inside the node ($(figure xen xen-create-to-probe) s from create)" said xen "xen probe answered"
check "  stop and delete leave no domain or machine" said xen "xen nothing left"
check "adopt of Domain-0 (dom0) is refused (2) as the node itself" said xen "xen adopt dom0 refused"
check "the node's script ended" said xen "done"
if [ "$failed" -gt "$f0" ]; then
    echo "# the Xen node's console, Xen's messages and the script's:"
    grep -a "(XEN)" "$work/xen.serial" | tail -30
    sed -n '/NESTED: start/,$p' "$work/xen.serial" | tail -150
fi
fi

echo "nested: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
