#!/bin/bash
# Benchmarks of issue 3, each against its reference tool in the same run,
# on one package set (minbase + chrony + a kernel, about 700 MB):
#   1. cold mkve-cache (empty layer and .deb caches) vs bare mmdebstrap,
#      both leaving a directory;
#   2. warm rebuild (package set unchanged, a hook changed) vs the cold
#      build of the same command;
#   3. mkve-cache --tarify-only --zstd vs tar --sort=name | zstd -T0 -3.
# Prints the times and the ratios. Needs root, mmdebstrap and a mirror.
#   bench/build-roots.sh [BINDIR]     (default: the release build, tests/harness/lib.sh)
set -euo pipefail
. "$(dirname "$0")/../tests/harness/lib.sh"
use_bins bench/build-roots.sh release "${1:-}"
cache_bin=$bin/mkve-cache
pkgs=(chrony linux-image-amd64)
work=$(mktemp -d /var/tmp/mkve-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export MKVE_CACHEDIR=$work/cache MKVE_LOCKDIR=$work/lock SOURCE_DATE_EPOCH=1700000000

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "package set: minbase + ${pkgs[*]}"

# 1. cold: bare mmdebstrap vs mkve-cache with empty caches.
t=$(now)
mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${pkgs[*]}")" bookworm "$work/bare" >/dev/null
t_bare=$(elapsed "$t")
size=$(du -sm "$work/bare" | cut -f1)
t=$(now)
"$cache_bin" -q --dir "$work/cold" "${pkgs[@]}" >/dev/null
t_cold_dir=$(elapsed "$t")
printf '%-58s %7.1f s\n' "bare mmdebstrap to a directory (${size} MB)" "$t_bare" \
    "mkve-cache --dir, cold (empty caches)" "$t_cold_dir"

# 1b. the same, both writing a zstd archive.
rm -rf "$MKVE_CACHEDIR"
t=$(now)
mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${pkgs[*]}")" bookworm "$work/bare.tar.zst" >/dev/null
t_bare_tar=$(elapsed "$t")
t=$(now)
"$cache_bin" -q --zstd -o "$work/cold-plain.tar.zst" "${pkgs[@]}" >/dev/null
t_cold_tar=$(elapsed "$t")
printf '%-58s %7.1f s\n' "bare mmdebstrap to a .tar.zst" "$t_bare_tar" \
    "mkve-cache --zstd -o, cold (empty caches)" "$t_cold_tar"

# 2. warm rebuild with a changed hook, vs a cold build of the same command.
hook=$work/hook
printf '#!/bin/sh\necho one > /etc/bench\n' > "$hook"; chmod +x "$hook"
rm -rf "$MKVE_CACHEDIR"
t=$(now)
"$cache_bin" -q --zstd -o "$work/cold.tar.zst" --hook "$hook" "${pkgs[@]}" >/dev/null
t_cold=$(elapsed "$t")
printf '#!/bin/sh\necho two > /etc/bench\n' > "$hook"
t=$(now)
"$cache_bin" -q --zstd -o "$work/warm.tar.zst" --hook "$hook" "${pkgs[@]}" >/dev/null
t_warm=$(elapsed "$t")
printf '%-58s %7.1f s\n' "mkve-cache --zstd --hook, cold" "$t_cold" "mkve-cache --zstd --hook, warm (hook changed)" "$t_warm"

# 3. packing only, best of three each.
best() { local b=; for _ in 1 2 3; do local s; s=$(now); "$@"; local e; e=$(elapsed "$s"); if [ -z "$b" ] || (( $(echo "$e < $b" | bc) )); then b=$e; fi; done; echo "$b"; }
ref_pack() { tar --sort=name -C "$work/bare" -cf - . | zstd -q -T0 -3 > "$work/ref.tar.zst"; }
our_pack() { "$cache_bin" -q --zstd -o "$work/our.tar.zst" --tarify-only "$work/bare" >/dev/null; }
t_ref=$(best ref_pack)
t_our=$(best our_pack)
printf '%-58s %7.2f s  %5.0f MB/s\n' "tar --sort=name | zstd -T0 -3" "$t_ref" "$(echo "$size / $t_ref" | bc -l)" \
    "mkve-cache --tarify-only --zstd" "$t_our" "$(echo "$size / $t_our" | bc -l)"
printf 'sizes: reference %s MB, mkve-cache %s MB\n' \
    "$(( $(stat -c %s "$work/ref.tar.zst") >> 20 ))" "$(( $(stat -c %s "$work/our.tar.zst") >> 20 ))"

echo
echo "cold mkve-cache / bare mmdebstrap, dir:     $(ratio "$t_cold_dir" "$t_bare")x   (goal <= 1.10)"
echo "cold mkve-cache / bare mmdebstrap, tar.zst: $(ratio "$t_cold_tar" "$t_bare_tar")x   (goal <= 1.10)"
echo "cold / warm rebuild:                        $(ratio "$t_cold" "$t_warm")x   (goal >= 10)"
echo "packing throughput, mkve-cache / tar|zstd:  $(ratio "$t_ref" "$t_our")x   (goal >= 1.0)"
