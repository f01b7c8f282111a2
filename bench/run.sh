#!/usr/bin/env bash
# bench/run.sh [ROUNDS]: how long a trivial container takes from start to
# exit with toybox and its peers, round by round, as root.
#
#   toybox    the release build, -m ROOTFS -c /payload
#   toybox-bridge   --net bridge: the same with eth0 on a bridge and NAT (chapter 18);
#             alone, so each run also makes and removes the bridge and table
#   toybox-bridge-p and -p 18080:80, a published port (its own nft table)
#   unshare+ip  S1's commands for that topology (bench/seed-net.sh)
#   floor     bench/floor.c: only the kernel work toybox asks for (the
#             issue's list: cgroups, namespaces, pivot_root, uid map, exec)
#   floor+mounts  the floor plus the /dev and /proc mounts toybox also makes
#   unshare   the same namespaces plus a user namespace, chroot into ROOTFS
#   bwrap     bubblewrap --unshare-all with ROOTFS bound as /
#   crun/runc an OCI bundle made by `runc spec` (no terminal, + cgroup ns)
#   chroot    no container at all
#
# Three ways: in a new random order each round; each command right after a
# run of runc (bench/timer.c's `after` mode); and each after 300 ms idle
# (`idle`), as a user starts a container now and then.
#
# Also: peak RSS, 8 and 32 containers started at once, toybox's own time by
# stage (from -v), and what clone(2) costs per namespace (bench/clonens.c).
# Writes target/bench/ (raw data) and bench/results.md + bench/results.svg
# (the table and plot the README shows).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-30}
out=$repo/target/bench
mkdir -p "$out"

say() { echo "bench: $*" >&2; }
. bench/lib.sh
[ "$(id -u)" -eq 0 ] || { say "run as root (containers need it)"; exit 1; }

# --- Peers and tools, from Debian's packages.
missing=()
for tool in crun:crun runc:runc bwrap:bubblewrap python3:python3 gcc:gcc unshare:util-linux nft:nftables ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo=$(command -v cargo || ls "$HOME/.cargo/bin/cargo" 2>/dev/null || true)
[ -n "$cargo" ] || { say "cargo not found"; exit 1; }
"$cargo" build --release --quiet --bin toybox
toybox=$repo/target/$("$(dirname "$cargo")/rustc" -vV | sed -n 's/^host: //p')/release/toybox
rootfs=$out/rootfs
rootfs-scripts/busybox-rootfs.sh "$rootfs" >/dev/null
gcc -static -O2 -o "$rootfs/payload" bench/payload.c
gcc -O2 -Wall -o "$out/floor" bench/floor.c
gcc -O2 -Wall -o "$out/timer" bench/timer.c
gcc -O2 -Wall -o "$out/clonens" bench/clonens.c

# --- An OCI bundle for crun and runc: runc's default spec, not a terminal,
# the payload as the process, and a cgroup namespace like toybox's.
bundle=$out/bundle
make_bundle "$bundle" "$rootfs" /payload

commands=$out/commands.tsv
{
    printf 'toybox\t%s\t-m\t%s\t-c\t/payload\n' "$toybox" "$rootfs"
    printf 'toybox-bridge\t%s\t--net\tbridge\t-m\t%s\t-c\t/payload\n' "$toybox" "$rootfs"
    printf 'toybox-bridge-p\t%s\t--net\tbridge\t-p\t18080:80\t-m\t%s\t-c\t/payload\n' "$toybox" "$rootfs"
    printf 'unshare+ip\t%s\t%s\t/payload\n' "$repo/bench/seed-net.sh" "$rootfs"
    printf 'floor\t%s\t%s\t/payload\n' "$out/floor" "$rootfs"
    printf 'floor+mounts\t%s\t%s\t/payload\tmounts\n' "$out/floor" "$rootfs"
    printf 'unshare\t%s\t--mount\t--uts\t--ipc\t--net\t--pid\t--fork\t--cgroup\t--user\t--map-root-user\t--root=%s\t/payload\n' "$(command -v unshare)" "$rootfs"
    printf 'bwrap\t%s\t--unshare-all\t--bind\t%s\t/\t/payload\n' "$(command -v bwrap)" "$rootfs"
    printf 'crun\t%s\trun\t--bundle\t%s\tbench-crun\n' "$(command -v crun)" "$bundle"
    printf 'runc\t%s\trun\t--bundle\t%s\tbench-runc\n' "$(command -v runc)" "$bundle"
    printf 'chroot\t%s\t%s\t/payload\n' "$(command -v chroot)" "$rootfs"
} >"$commands"

# Every command runs in the same private namespace (bench/lib.sh): crun
# can work on this hybrid host there, and the bridge rows' network stays there.
say "checking every command runs"
in_bench_ns "$out" "$out/timer" rounds 1 "$commands" >"$out/check.txt"
awk '$6 != 0 { print "bench: " $1 " exits " $6 " (left out of the table)"; bad = 1 } END { exit 0 }' "$out/check.txt" >&2

say "$rounds rounds, interleaved"
in_bench_ns "$out" "$out/timer" rounds "$rounds" "$commands" >"$out/rounds.txt"

# As a script or CI job would: every command right after another runtime's
# run, cgroup work and all (runc's writes to cgroup.procs, its rmdirs).
say "$rounds rounds, each command right after runc"
in_bench_ns "$out" "$out/timer" after "$rounds" "$commands" runc >"$out/after-runc.txt"

# As a user who starts a container now and then: each after 300 ms of
# nothing. Fewer rounds (the waiting dominates) and only the container rows.
idle_rounds=$(( rounds < 40 ? rounds : 40 ))
grep -E '^(toybox|toybox-bridge|floor|floor\+mounts|bwrap|crun|runc)	' "$commands" >"$out/idle-commands.tsv"
say "$idle_rounds rounds, each command after 300 ms idle"
in_bench_ns "$out" "$out/timer" idle "$idle_rounds" "$out/idle-commands.tsv" 300 >"$out/idle.txt"

# The bridge rows above are each the only container: every run makes and
# removes the bridge and the shared table. Here another container keeps them
# up, as when containers run side by side.
say "$rounds rounds with the bridge already up"
grep -E '^(toybox|toybox-bridge|toybox-bridge-p)	' "$commands" >"$out/warm-commands.tsv"
in_bench_ns "$out" sh -c '"$1" --net bridge --init -m "$2" -c /bin/sleep 100000 & s=$!; sleep 0.5
    "$3" rounds "$4" "$5"; status=$?; kill "$s"; wait "$s"; exit $status' \
    sh "$toybox" "$rootfs" "$out/timer" "$rounds" "$out/warm-commands.tsv" >"$out/warm.txt" || true

say "bursts of 8 and 32"
: >"$out/bursts.txt"
for n in 8 32; do
    for burst in 1 2 3 4 5; do
        in_bench_ns "$out" "$out/timer" burst "$n" "toybox-$n" "$toybox" -m "$rootfs" -c /payload hostname >>"$out/bursts.txt"
        in_bench_ns "$out" "$out/timer" burst "$n" "floor-$n" "$out/floor" "$rootfs" /payload >>"$out/bursts.txt"
    done
done
left=$(find /sys/fs/cgroup -maxdepth 3 -type d \( -name 'floor-*' -o -name '*-*-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]' \) 2>/dev/null | head -n 3)
records=$(ls /run/toybox 2>/dev/null | head -n 3)
[ -z "$left$records" ] || say "left behind: $left $records"

say "toybox by stage (-v)"
: >"$out/stages.txt"
for _ in $(seq "$rounds"); do
    "$toybox" -v -m "$rootfs" -c /payload 2>>"$out/stages.txt" >/dev/null
done

say "clone(2) by namespace"
"$out/clonens" "$rounds" >"$out/clonens.txt"

{
    echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
    echo "kernel: $(uname -r)"
    echo "toybox: $("$toybox" --version | cut -d' ' -f2), crun: $(crun --version | sed -n 's/^crun version //p'), runc: $(runc --version | sed -n 's/^runc version //p'), bubblewrap: $(bwrap --version | cut -d' ' -f2), unshare: $(unshare --version | awk '{print $NF}')"
} >"$out/versions.txt"

python3 bench/report.py "$out" bench/results.md bench/results.svg
cat bench/results.md
