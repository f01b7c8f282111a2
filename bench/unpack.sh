#!/usr/bin/env bash
# bench/unpack.sh [ROUNDS]: toybox unpack against the floor (GNU tar
# extracting the same layer) and umoci unpack, on a real image, as root.
#
# The image: a Debian minbase from Debian's package registry (mmdebstrap
# --format=tar, cached in target/bench-unpack/debian.tar), made a one-layer
# gzip OCI image by umoci repack. Each round runs every contender once, in
# the same order, into OUT (default /dev/shm: tmpfs, to time the work and not
# this machine's disk; OUT=target/bench-unpack for the disk), and prints the
# medians. Also: peak RSS of each (/usr/bin/time), and whether toybox's tree
# equals umoci's (type, mode, owner, size, link target, link count, content).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
work=$PWD/target/bench-unpack
out=${OUT:-/dev/shm}/toybox-bench-unpack
toybox=$PWD/target/x86_64-unknown-linux-gnu/release/toybox
mkdir -p "$work"
for tool in mmdebstrap umoci /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/unpack.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$toybox" ] || { echo "bench/unpack.sh: build toybox first (make build)" >&2; exit 1; }

if [ ! -s "$work/debian.tar" ]; then
    echo "bench/unpack.sh: mmdebstrap minbase (about a minute)..." >&2
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    mmdebstrap --quiet --variant=minbase --format=tar "$suite" "$work/debian.tar.part"
    mv "$work/debian.tar.part" "$work/debian.tar"
fi
if [ ! -d "$work/img" ]; then
    echo "bench/unpack.sh: umoci repack..." >&2
    rm -rf "$work/bundle"
    umoci init --layout "$work/img"
    umoci new --image "$work/img:debian"
    umoci unpack --image "$work/img:debian" "$work/bundle" >/dev/null
    tar -C "$work/bundle/rootfs" -xf "$work/debian.tar"
    umoci repack --image "$work/img:debian" "$work/bundle"
    rm -rf "$work/bundle"
fi
layer=$(ls -S "$work"/img/blobs/sha256/* | head -n 1)
echo "image: $(tar -tf "$work/debian.tar" | wc -l) entries, $(du -m "$work/debian.tar" | cut -f1) MB, layer $(du -m "$layer" | cut -f1) MB gzip" >&2

run() {
    rm -rf "$out"
    case $1 in
        tar) mkdir -p "$out" && tar --same-owner -xzpf "$layer" -C "$out" ;;
        toybox) "$toybox" unpack --no-shift "$work/img" "$out" >/dev/null ;;
        umoci) umoci unpack --image "$work/img:debian" "$out" >/dev/null ;;
    esac
}
declare -A times
for round in $(seq "$rounds"); do
    for who in tar toybox umoci; do
        start=$(date +%s%N)
        run "$who"
        ms=$(( ($(date +%s%N) - start) / 1000000 ))
        times[$who]="${times[$who]:-} $ms"
        echo "round $round $who $ms ms" >&2
    done
done
for who in tar toybox umoci; do
    median=$(tr ' ' '\n' <<<"${times[$who]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    rss=$( { /usr/bin/time -f %M bash -c "$(declare -f run); out=$out toybox=$toybox work=$work layer=$layer run $who" >/dev/null; } 2>&1 | tail -n 1)
    echo "$who: median $median ms of $rounds, peak RSS $rss KiB"
done

# The same tree as umoci's?
run toybox && mv "$out" "$out.toybox"
run umoci
tree() { (cd "$1" && find . -printf '%y %m %U:%G %s %l %n %p\n' | sort -k8 && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
if diff <(tree "$out.toybox") <(tree "$out/rootfs") >/dev/null; then
    echo "toybox's tree equals umoci's"
else
    echo "toybox's tree differs from umoci's: diff the two trees in $out.toybox and $out/rootfs"
    exit 1
fi
rm -rf "$out" "$out.toybox"
