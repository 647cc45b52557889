#!/bin/bash
# Bundles published over HTTP (issue 15), end to end: a signed busybox
# bundle (lxc) published with mkve-bundle --publish into directories that
# python3 -m http.server serves on the host's 127.0.0.1, and machines
# created from their URLs by mkve-vm on the host, against the harness's
# private libvirtd (namespace mkve-pub-test). Create from a URL works, on
# a new base and on one that is there; an edited SHA256SUMS, a missing
# SHA256SUMS.gpg, a swapped bundle (another valid one under the name) and a
# truncated one each exit 65 and define nothing (no domain, no file in
# $MKVE_STATEDIR/vms, no base beyond those there before, no DHCP entry),
# before the good create and after it; an unreachable server exits 69.
#
# The only traffic is to 127.0.0.1 and inside the test's own namespace:
# proxies from the environment are dropped. GnuPG's home is the test's own,
# its agent stopped at the end. Run by `make test`, as root.
set -uo pipefail
. "$(dirname "$0")/harness/lib.sh"
use_bins publish debug
ns=mkve-pub-test
started=$(date +%s)
suite_work pub
export GNUPGHOME=$work/gnupg
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
passed=0 failed=0 server_pid=""

domains() { virsh -q list --all --name | grep -c .; }
# What a create leaves on the node: domains, DHCP entries, files in vms/
# (hidden ones too), bases.
node() {
    echo "domains=$(domains) hosts=$(hosts) vms=[$(ls -A "$MKVE_STATEDIR/vms" 2>/dev/null | tr '\n' ' ')] bases=[$(ls -A "$MKVE_STATEDIR/bases" 2>/dev/null | tr '\n' ' ')]"
}

cleanup() {
    [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; }
    if [ -n "${LIBVIRT_DEFAULT_URI:-}" ]; then
        for id in $(machines 2>/dev/null); do "$bin/mkve-vm" delete "$id" >/dev/null 2>&1; done
        "$bin/mkve-net" delete --force >/dev/null 2>&1
    fi
    "$harness" stop "$ns"
    drop_key
    rm -rf "$work"
}
trap cleanup EXIT

# A key of the test's own; its public half is the node's default keyring.
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'mkve publish test <publish@example.invalid>' \
    ed25519 sign never 2>/dev/null || exit 1
mkdir -p "$MKVE_CONFDIR"
gpg --batch --quiet --export >"$MKVE_CONFDIR/trusted.gpg"

# Two signed lxc bundles of a busybox root, told apart by one file.
tiny() {
    local root=$work/root-$1
    busybox_root "$root"
    echo "$1" >"$root/etc/published"
    tiny_bundle "$root" "$work/$1.bun"
}
tiny tiny && tiny other || exit 1

# The directories served: good, and one copy of it per way of being bad.
www=$work/www
"$bin/mkve-bundle" --no-config -q --publish "$www/good" "$work/tiny.bun" >/dev/null || exit 1
check "publish wrote the bundle, SHA256SUMS and SHA256SUMS.gpg" \
    test "$(ls "$www/good" | tr '\n' ' ')" = "SHA256SUMS SHA256SUMS.gpg tiny.bun "
check "sha256sum -c reads SHA256SUMS" sh -c "cd '$www/good' && sha256sum -c --strict --quiet SHA256SUMS"
check "gpgv checks SHA256SUMS.gpg" gpgv -q --keyring "$MKVE_CONFDIR/trusted.gpg" \
    "$www/good/SHA256SUMS.gpg" "$www/good/SHA256SUMS" 2>/dev/null
for c in edited unsigned swapped truncated; do cp -r "$www/good" "$www/$c"; done
# Edited to vouch for the other bundle: the signature no longer holds.
sed -i "s/^[0-9a-f]\{64\}/$(sha256sum <"$work/other.bun" | cut -c1-64)/" "$www/edited/SHA256SUMS"
rm "$www/unsigned/SHA256SUMS.gpg"
cp "$work/other.bun" "$www/swapped/tiny.bun"
head -c "$(( $(stat -c %s "$work/tiny.bun") / 2 ))" "$work/tiny.bun" >"$www/truncated/tiny.bun"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$port" >"$work/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
done
url=http://127.0.0.1:$port

start_node "$ns"
export LIBVIRT_DEFAULT_URI
"$bin/mkve-net" create >/dev/null || exit 1

# Each bad directory: exit 65, naming the URL, and the node as it was.
bad_cases() {
    local when=$1 before rc c
    before=$(node)
    for c in edited unsigned swapped truncated; do
        "$bin/mkve-vm" create "$url/$c/tiny.bun" >"$work/$c.out" 2>"$work/$c.err"; rc=$?
        check "$when: create from the $c directory exits 65 ($rc: $(head -c 160 "$work/$c.err"))" \
            test "$rc" = 65
        check "$when: and names the URL, on one line" sh -c \
            "grep -q '^mkve-vm: $url/$c/' '$work/$c.err' && test \$(wc -l <'$work/$c.err') = 1"
        check "$when: and defines nothing ($(node))" test "$(node)" = "$before"
        check "$when: nor prints an ID" test ! -s "$work/$c.out"
    done
}

bad_cases "no base yet"
check "no base yet: the node is bare" test "$(node)" = "domains=0 hosts=0 vms=[] bases=[]"

id=$("$bin/mkve-vm" create "$url/good/tiny.bun" 2>"$work/good.err")
check "create from the URL prints an ID ($id)" test "${id:-0}" -ge 100
check "the machine is defined, on the bundle's base ($(node))" \
    test "$(machines) $(ls "$MKVE_STATEDIR/bases" | wc -l)" = "$id 1"
check "its root is the published bundle's" grep -qx tiny "$MKVE_STATEDIR/vms/$id/rootfs/etc/published"
fpr=$(gpg --batch --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}')
check "its record says whose good signature was checked (${fpr:-no key})" sh -c \
    "'$bin/mkve-vm' info --json '$id' | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"signed_by\"] != \"$fpr\")' &&
     '$bin/mkve-vm' info '$id' | grep -qx 'signature  good, key $fpr'"
xml=$("$bin/mkve-vm" create --print-xml "$url/good/tiny.bun" 2>/dev/null)
check "--print-xml reads a URL too" sh -c "echo \"\$1\" | grep -q \"<domain type='lxc'>\"" sh "$xml"
"$bin/mkve-bundle" --no-config -q --fetch "$url/good/tiny.bun" -o "$work/fetched.bun" >/dev/null
check "mkve-bundle --fetch gets the same bytes" cmp -s "$work/fetched.bun" "$work/tiny.bun"

bad_cases "on a base"

id2=$("$bin/mkve-vm" -v create "$url/good/tiny.bun" 2>"$work/good2.err")
check "a second create from the URL stands on the base ($id2)" \
    sh -c "[ \"\$(ls '$MKVE_STATEDIR/bases' | wc -l)\" = 1 ] && [ -d '$MKVE_STATEDIR/vms/$id2' ]"
check "and tells its download's progress" grep -q "tiny.bun: .* in .* s (.*/s), sha256 as listed" "$work/good2.err"

before=$(node)
free=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/mkve-vm" create "http://127.0.0.1:$free/good/tiny.bun" >/dev/null 2>"$work/refused.err"; rc=$?
check "an unreachable server exits 69 naming the URL ($rc: $(cat "$work/refused.err"))" \
    sh -c "[ $rc = 69 ] && grep -q '^mkve-vm: http://127.0.0.1:$free/good/SHA256SUMS: ' '$work/refused.err'"
check "and defines nothing" test "$(node)" = "$before"

for m in $(machines); do "$bin/mkve-vm" -q delete "$m" || failed=$((failed + 1)); done
check "deleting them leaves a bare node" test "$(node)" = "domains=0 hosts=0 vms=[] bases=[]"

echo "publish: the suite took $(( $(date +%s) - started )) s"
echo "publish: $passed passed, $failed failed"
[ "$failed" = 0 ]
