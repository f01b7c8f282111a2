#!/usr/bin/env bash
# bench/oci.sh [ROUNDS]: toybox as an OCI runtime against crun and runc, as
# root. Two sets of rows, each interleaved (every command once per round, in
# a new random order each round: bench/timer.c), medians and ratios to crun:
#
#   run     `RUNTIME run --bundle B ID` of one bundle made by `runc spec`
#           (bench/lib.sh's make_bundle), the static /payload as its process;
#           then again, each right after an untimed `runc run`
#   podman  `podman --runtime RUNTIME run --rm --rootfs DIR true`: podman and
#           conmon drive the runtime (create, start, delete), isolated as
#           tests/podman.rs isolates them
#
# A row whose command fails its first run is left out with its error (the
# toybox podman row until toybox has create/start). Everything runs in
# bench/lib.sh's private namespace (crun on a hybrid host; runtime state in a
# private /run). Writes target/bench-oci/ and bench/oci-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-20}
out=$repo/target/bench-oci
say() { echo "bench/oci.sh: $*" >&2; }
. bench/lib.sh
[ "$(id -u)" -eq 0 ] || { say "run as root (containers need it)"; exit 1; }
# The peers and podman from Debian's packages (without Recommends, as
# make test-deps installs them).
missing=()
for tool in crun runc podman conmon python3 gcc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo=$(command -v cargo || ls "$HOME/.cargo/bin/cargo" 2>/dev/null || true)
[ -n "$cargo" ] || { say "cargo not found"; exit 1; }
"$cargo" build --release --quiet --bin toybox
toybox=${TOYBOX_UNDER_TEST:-$repo/target/$("$(dirname "$cargo")/rustc" -vV | sed -n 's/^host: //p')/release/toybox}

rm -rf "$out" && mkdir -p "$out"
rootfs=$out/rootfs
rootfs-scripts/busybox-rootfs.sh "$rootfs" >/dev/null
gcc -static -O2 -o "$rootfs/payload" bench/payload.c
gcc -O2 -Wall -o "$out/timer" bench/timer.c
make_bundle "$out/bundle" "$rootfs" /payload

# podman's own rootfs copy (it writes /etc/hostname and friends into it),
# storage and containers.conf, as tests/podman.rs has them; the runtimes'
# JSON log path for all three alike.
cp -a "$rootfs" "$out/podman-rootfs"
cat >"$out/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_config_dir = "$out/net"
[engine]
runtime_supports_json = ["toybox", "runc", "crun"]
CONF
export CONTAINERS_CONF=$out/containers.conf
parent=toybox-bench-podman-$$
podman_row() { # NAME RUNTIME
    printf '%s\t%s' "$1" "$(command -v podman)"
    printf '\t%s' --runtime "$2" --root "$out/storage" --runroot "$out/prun" --tmpdir "$out/ptmp" \
        --storage-driver=vfs --cgroup-manager=cgroupfs --events-backend=file \
        run --rm --network=none --cgroups=no-conmon --ipc=none "--cgroup-parent=/$parent" \
        --rootfs "$out/podman-rootfs" true
    printf '\n'
}
{
    printf 'toybox-run\t%s\trun\t--bundle\t%s\tbench-toybox\n' "$toybox" "$out/bundle"
    printf 'crun-run\t%s\trun\t--bundle\t%s\tbench-crun\n' "$(command -v crun)" "$out/bundle"
    printf 'runc-run\t%s\trun\t--bundle\t%s\tbench-runc\n' "$(command -v runc)" "$out/bundle"
} >"$out/run.tsv"
{
    podman_row podman-toybox "$toybox"
    podman_row podman-crun "$(command -v crun)"
    podman_row podman-runc "$(command -v runc)"
} >"$out/podman.tsv"

# Each command once, its stderr kept: a failing one leaves its row set.
for set in run podman; do
    : >"$out/$set-ok.tsv"
    while IFS= read -r line; do
        name=${line%%	*}
        IFS=$'\t' read -r -a argv <<<"${line#*	}"
        if err=$(in_bench_ns "$out" "${argv[@]}" 2>&1 >/dev/null); then
            printf '%s\n' "$line" >>"$out/$set-ok.tsv"
        else
            # podman's own "Error:" line carries the runtime's message.
            say "$name left out: $( (printf '%s\n' "$err" | grep -m 1 '^Error:') || printf '%s\n' "$err" | head -n 1)"
        fi
    done <"$out/$set.tsv"
    say "$rounds rounds of the $set rows, interleaved"
    in_bench_ns "$out" "$out/timer" rounds "$rounds" "$out/$set-ok.tsv" >"$out/$set.txt"
done
# The run rows again, each right after an untimed `runc run` (runc's cgroup
# clean-up just before, as in a script that mixes runtimes).
say "$rounds rounds of the run rows, each after runc"
in_bench_ns "$out" "$out/timer" after "$rounds" "$out/run-ok.tsv" runc-run >"$out/run-after.txt"
cp "$out/run.tsv" "$out/run-after.tsv"

for dir in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
    [ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true
done

{
    echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
    echo "kernel: $(uname -r)"
    echo "toybox: $("$toybox" --version | cut -d' ' -f2), crun: $(crun --version | sed -n 's/^crun version //p'), runc: $(runc --version | sed -n 's/^runc version //p'), podman: $(podman --version | awk '{print $NF}'), conmon: $(conmon --version | sed -n 's/^conmon version //p')"
} >"$out/versions.txt"

python3 - "$out" "$rounds" >bench/oci-results.md <<'PY'
import statistics, sys
out, rounds = sys.argv[1], sys.argv[2]
print(open(f"{out}/versions.txt").read().strip().replace("\n", "  \n"))
sets = [("run", "`RUNTIME run --bundle` of a `runc spec` bundle running the static `/payload`"),
        ("run-after", "The same, each right after an untimed `runc run`"),
        ("podman", "`podman --runtime RUNTIME run --rm --rootfs DIR true` (podman, conmon and the runtime)")]
for name, title in sets:
    walls = {}
    for line in open(f"{out}/{name}.txt"):
        f = line.split()
        if len(f) >= 6 and f[5] == "0":
            walls.setdefault(f[0], []).append(int(f[1]) / 1e6)
    listed = {l.split("\t")[0] for l in open(f"{out}/{name}.tsv")}
    median = {n: statistics.median(w) for n, w in walls.items()}
    crun = next((m for n, m in median.items() if n.startswith("crun") or n.endswith("crun")), None)
    print(f"\n{title}, start to exit, {rounds} rounds, interleaved:\n")
    print("| command | min ms | median ms | max ms | × crun |")
    print("|---|---|---|---|---|")
    for n in sorted(median, key=median.get):
        ratio = f"{median[n] / crun:.2f}" if crun else "-"
        print(f"| {n} | {min(walls[n]):.2f} | {median[n]:.2f} | {max(walls[n]):.2f} | {ratio} |")
    for n in sorted(listed - set(median) - {"runc-run"} if name == "run-after" else listed - set(median)):
        print(f"| {n} | left out: its first run failed | | | |")
PY
cat bench/oci-results.md
