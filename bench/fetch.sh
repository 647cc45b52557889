#!/bin/bash
# Issue 15's figures: a published bundle fetched over HTTP on loopback.
# `mkve-bundle --fetch` (the signed list checked, the bundle streamed
# through its sha256 and verified in full: signature, zstd, every digest,
# the root's tar checked) against `curl -o /dev/null` of the same URL (the
# bare transfer), `curl | sha256sum` (transfer and the list's check) and
# `curl | mkve-bundle --verify -` (the pipeline --fetch replaces, without
# the list's check), best of five each, page cache warm; and the most memory --fetch held,
# against the bundle's size (it must stream, not hold the bundle).
# python3 -m http.server serves the directory on 127.0.0.1. No root needed.
#   bench/fetch.sh [BUNDLE] [BINDIR]
# Without BUNDLE, one is built (lxc, signed by the bench's key) from a copy
# of /usr/lib/x86_64-linux-gnu: about 700 MB of files, 200 MB packed. A
# BUNDLE given is checked against KEYRING (default: its signature is not
# checked, --allow-unsigned, so give an unsigned one or its keyring).
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
bundle=${1:-}
use_bins bench/fetch.sh release "${2:-}"
work=$(mktemp -d /var/tmp/mkve-bench-fetch.XXXXXX)
export GNUPGHOME=$work/gnupg
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'mkve bench <bench@example.invalid>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --export >"$work/trusted.gpg"
[ -z "${KEYRING:-}" ] || cat "$KEYRING" >>"$work/trusted.gpg"
if [ -z "$bundle" ]; then
    mkdir -p "$work/root/usr/lib"
    cp -a /usr/lib/x86_64-linux-gnu "$work/root/usr/lib/"
    "$bin/mkve-bundle" --no-config -q -H lxc --rootfs "$work/root" -o "$work/bench.bun" \
        "$top/tests/fixtures/templates/good/two-containers" >/dev/null
    rm -rf "$work/root"
    bundle=$work/bench.bun
fi
name=$(basename "$bundle")
"$bin/mkve-bundle" --no-config -q --publish "$work/www" "$bundle" --keyring "$work/trusted.gpg" \
    --allow-unsigned >/dev/null
size=$(stat -c %s "$work/www/$name")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/SHA256SUMS" && break; sleep 0.1; done
url=http://127.0.0.1:$port/$name
cat "$work/www/$name" >/dev/null

now() { date +%s.%N; }
# best CMD...: the shortest of five runs, in seconds (the machine may be
# shared: the shortest is the least disturbed).
best() {
    local b= s t
    for _ in 1 2 3 4 5; do
        s=$(now); "$@" >/dev/null; t=$(echo "$(now) - $s" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    echo "$b"
}
mbs() { echo "scale=0; $size / 1048576 / $1" | bc; }

curl_t=$(best curl -s -o /dev/null "$url")
sum_t=$(best sh -c "curl -s '$url' | sha256sum")
pipe_t=$(best sh -c "curl -s '$url' | '$bin/mkve-bundle' --no-config -q --verify - \
    --keyring '$work/trusted.gpg' --allow-unsigned")
fetch_t=$(best "$bin/mkve-bundle" --no-config -q --fetch "$url" -o /dev/null \
    --keyring "$work/trusted.gpg" --allow-unsigned)
verify_t=$(best "$bin/mkve-bundle" --no-config -q --verify "$work/www/$name" \
    --keyring "$work/trusted.gpg" --allow-unsigned)
rss=$(/usr/bin/time -f %M "$bin/mkve-bundle" --no-config -q --fetch "$url" -o /dev/null \
    --keyring "$work/trusted.gpg" --allow-unsigned 2>&1 >/dev/null | tail -1)

echo "bundle: $name, $((size / 1048576)) MiB; best of 5, loopback, python3 -m http.server"
printf '%-52s %8s s %6s MiB/s\n' \
    "curl -o /dev/null (the bare transfer)" "$curl_t" "$(mbs "$curl_t")" \
    "curl | sha256sum (transfer + the list's check)" "$sum_t" "$(mbs "$sum_t")" \
    "curl | mkve-bundle --verify - (transfer + bundle)" "$pipe_t" "$(mbs "$pipe_t")" \
    "mkve-bundle --fetch -o /dev/null (all checks)" "$fetch_t" "$(mbs "$fetch_t")" \
    "mkve-bundle --verify FILE (the checks, no transfer)" "$verify_t" "$(mbs "$verify_t")"
echo "--fetch against curl | mkve-bundle --verify -: $(echo "scale=2; $fetch_t / $pipe_t" | bc)x the time"
echo "--fetch held at most $((rss / 1024)) MiB (maximum resident set) for a $((size / 1048576)) MiB bundle"
