#!/bin/bash
# mkve-web in a real browser (issue 14): headless Chromium driven through
# WebDriver (chromedriver, python3-selenium) by tests/web-browser.py, against
# mkve-web and the test harness's private libvirtd, both inside the network
# namespace mkve-web-test made here. The browser, mkve-web and every machine
# exist only in that namespace, and all test traffic is on its 127.0.0.1 or
# its mkve network. One browser process per run.
#
# A signed busybox bundle (lxc) is uploaded through the page's file input,
# created, started, logged in on through the console (xterm.js) with the
# root password given at create, snapshotted from its page, stopped,
# reverted to the snapshot, backed up (signed) and deleted; a tampered one is
# refused with the CLI's message and nothing is defined. Screenshots go to
# target/web-screenshots/.
#
# Run by `make test` after the cargo tests, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins web debug
ns=${WEB_NS:-mkve-web-test}
shots=${CARGO_TARGET_DIR:-$top/target}/web-screenshots
suite_work web
export GNUPGHOME=$work/gnupg
web_pid=""

cleanup() {
    [ -z "$web_pid" ] || { kill "$web_pid" 2>/dev/null; wait "$web_pid" 2>/dev/null; }
    if [ -n "${LIBVIRT_DEFAULT_URI:-}" ]; then
        for id in $("$bin/mkve-vm" list --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'); do
            "$bin/mkve-vm" delete "$id" >/dev/null 2>&1
        done
        "$bin/mkve-net" delete --force >/dev/null 2>&1
    fi
    "$harness" stop "$ns"
    gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null
    gpgconf --homedir "$GNUPGHOME" --remove-socketdir 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A root that logs in on its console (busybox init, /bin/login), and a key
# of the test's own to sign its bundle with.
root=$work/root
mkdir -p "$root"/{root,tmp,dev,proc,sys}
busybox_root "$root" login cat echo ls mount poweroff
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:*:19000:0:99999:7:::' >"$root/etc/shadow"
echo 'root:x:0:' >"$root/etc/group"
printf '::sysinit:/bin/mount -t proc proc /proc\nconsole::respawn:/bin/login\n' >"$root/etc/inittab"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'mkve web test <web@example.invalid>' ed25519 sign never 2>/dev/null || exit 1
gpg --batch --quiet --export >"$work/trusted.gpg"
tiny_bundle "$root" "$work/tiny.bun" || exit 1
# One byte of the root's payload changed: the signature still holds, the
# digest does not.
python3 - "$work/tiny.bun" "$work/tampered.bun" <<'EOF' || exit 1
import shutil, sys, tarfile
shutil.copy(sys.argv[1], sys.argv[2])
with tarfile.open(sys.argv[1]) as t:
    m = t.getmember("rootfs.tar.zst")
with open(sys.argv[2], "r+b") as f:
    f.seek(m.offset_data + m.size // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x55]))
EOF

start_node "$ns"
"$bin/mkve-net" create || exit 1
# What the CLI says of the tampered bundle (it fails before anything is made).
(cd "$work" && "$bin/mkve-vm" create --keyring "$work/trusted.gpg" tampered.bun) 2>"$work/tampered.err" >/dev/null
expected=$(sed 's/^mkve-vm: //' "$work/tampered.err")
[ -n "$expected" ] || { echo "web: mkve-vm create accepted the tampered bundle" >&2; exit 1; }

port=18480
"$harness" exec "$ns" "$bin/mkve-web" --listen "127.0.0.1:$port" -c "$LIBVIRT_DEFAULT_URI" \
    --keyring "$work/trusted.gpg" 2>"$work/web.log" &
web_pid=$!
for _ in $(seq 50); do
    grep -q "listening on" "$work/web.log" 2>/dev/null && break
    sleep 0.1
done
rm -rf "$shots" && mkdir -p "$shots"
start=$(date +%s)
# Debian's python3, which has python3-selenium (not one earlier on PATH).
"$harness" exec "$ns" env TAMPERED_ERROR="$expected" /usr/bin/python3 "$top/tests/web-browser.py" \
    "http://127.0.0.1:$port" "$work/tiny.bun" "$work/tampered.bun" "$shots" "$work/browser"
rc=$?
echo "web: the browser run took $(( $(date +%s) - start )) s; screenshots in $shots"
if [ "$rc" != 0 ]; then
    echo "web: mkve-web said:" >&2
    cat "$work/web.log" >&2
fi
left=$("$bin/mkve-vm" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
if [ "$left" != 0 ]; then echo "FAIL - $left machines left after the run"; rc=1; fi
exit "$rc"
