#!/usr/bin/env bash
# VM lab: boot a real Debian kernel under qemu with a pure cgroup v2 host and
# with a pure cgroup v1 host, and run container checks (checks.sh) in each.
#
#   tests/vmlab/run.sh [v1|v2|both|fetch]        (default both; run as root)
#
# Environment: TOYBOX_BIN (default target/<host triple>/release/toybox, built
# if missing),
# TOYBOX_CACHE (default ~/.cache/toybox: kernel and busybox .deb),
# VMLAB_TIMEOUT (seconds per boot, default 600).
# Output: one line per check, "v2: PASS name" / "v1: FAIL name: detail";
# serial console logs in target/vmlab/. Exit 0 only if every boot reached
# VMLAB DONE without a FAIL.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."
repo=$PWD

case "${1:-both}" in
v1 | v2) modes=("$1") ;;
both) modes=(v2 v1) ;;
fetch) modes=() ;; # only put the kernel in the cache (CI does this first)
*)
    echo "usage: tests/vmlab/run.sh [v1|v2|both|fetch]" >&2
    exit 2
    ;;
esac

cache=${TOYBOX_CACHE:-$HOME/.cache/toybox}
out=$repo/target/vmlab
cargo=$(command -v cargo || ls "$HOME/.cargo/bin/cargo" 2>/dev/null || true)
# .cargo/config.toml builds for the host's triple.
host=$([ -z "$cargo" ] || "$(dirname "$cargo")/rustc" -vV | sed -n 's/^host: //p')
toybox=${TOYBOX_BIN:-target/$host/release/toybox}
timeout_s=${VMLAB_TIMEOUT:-600}
mkdir -p "$out" "$cache/kernel"
# However the script ends (Ctrl-C included): stop a running VM and remove
# the temporary directories. timeout passes the TERM on to qemu.
cleanup=()
vm=
finish() {
    [ -z "$vm" ] || kill "$vm" 2>/dev/null || true
    rm -rf "${cleanup[@]}"
}
trap finish EXIT
trap 'exit 130' INT TERM

say() { echo "vmlab: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- Tools. CI runs this as root on a fresh machine: install what is missing.
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them or run as root"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Kernel: Debian's own, the versioned package linux-image-amd64 depends
# on, fetched with apt-get download (no mirror or URL of our own) and kept in
# the cache: boot/ and the modules --net bridge needs are unpacked, a second
# run needs no download.
#
# The guest has no modprobe and no depmod output: Debian builds the bridge,
# veth and nftables as modules, so the cache keeps those named here and
# every module they depend on (each .ko's own depends= field), with
# modules/order listing them dependencies first, for insmod.
NET_MODULES="veth bridge nft_chain_nat nft_masq nft_nat nft_fib_ipv4 nft_ct crc32c_generic"
unpack_modules() {
    local tree=$1 dest=$2 order=() name
    add_module() {
        local file deps dep
        case " ${order[*]} " in *" $1 "*) return 0 ;; esac
        file=$(find "$tree" -name "$1.ko" -print -quit)
        [ -n "$file" ] || die "kernel package has no module $1"
        deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$file" | sed -n '1{s/^depends=//; s/,/ /g; p}')
        for dep in $deps; do add_module "$dep"; done
        cp "$file" "$dest/$1.ko"
        order+=("$1")
    }
    mkdir -p "$dest"
    # crc32c_generic before libcrc32c: it asks the crypto API for crc32c.
    for name in crc32c_generic $NET_MODULES; do add_module "$name"; done
    printf '%s\n' "${order[@]}" >"$dest/order"
}
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1
}
package=$(kernel_package)
if [ -z "$package" ] && ! ls "$cache"/kernel/*/vmlinuz >/dev/null 2>&1; then
    say "apt-get update (no package lists to find the kernel in)"
    apt-get update -qq
    package=$(kernel_package)
fi
if [ -z "$package" ]; then
    # Offline and no package lists: fall back to the newest cached kernel.
    kdir=$(ls -d "$cache"/kernel/*/ | sort -V | tail -n 1)
    kdir=${kdir%/}
elif [ -f "$cache/kernel/$package/vmlinuz" ] && [ -f "$cache/kernel/$package/modules/order" ]; then
    kdir=$cache/kernel/$package
else
    say "downloading $package"
    download=$(mktemp -d "$cache/kernel/download.XXXXXX")
    cleanup+=("$download")
    (cd "$download" && apt-get -o APT::Sandbox::User=root download -qq "$package")
    dpkg-deb --fsys-tarfile "$download"/*.deb | tar -x -C "$download" ./boot ./lib/modules
    mkdir -p "$cache/kernel/$package"
    rm -rf "$cache/kernel/$package/modules"
    unpack_modules "$download/lib/modules" "$cache/kernel/$package/modules"
    cp "$download"/boot/config-* "$cache/kernel/$package/config"
    cp "$download"/boot/vmlinuz-* "$cache/kernel/$package/vmlinuz.tmp"
    mv "$cache/kernel/$package/vmlinuz.tmp" "$cache/kernel/$package/vmlinuz"
    rm -rf "$download"
    kdir=$cache/kernel/$package
fi
# The guest loads no modules: everything used here must be built in (=y).
# Debian 12's 6.1 kernels have all of it; fail loudly should that change.
for option in BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS SERIAL_8250_CONSOLE \
    CGROUPS MEMCG CGROUP_PIDS CGROUP_SCHED FAIR_GROUP_SCHED BLK_CGROUP CPUSETS \
    CGROUP_DEVICE CGROUP_FREEZER CGROUP_CPUACCT USER_NS PID_NS NET_NS UTS_NS \
    IPC_NS SECCOMP_FILTER; do
    grep -qx "CONFIG_$option=y" "$kdir/config" ||
        die "$kdir: CONFIG_$option is not built in; the initramfs would need its module"
done
say "kernel $(basename "$kdir")"

[ "${#modes[@]}" -gt 0 ] || exit 0

# --- toybox.
if [ ! -x "$toybox" ]; then
    [ -z "${TOYBOX_BIN:-}" ] || die "TOYBOX_BIN=$toybox is not an executable file"
    [ -n "$cargo" ] || die "$toybox is missing and cargo is not installed"
    say "building toybox"
    "$cargo" build --release --quiet
fi

# Not rebuilt when present (the build is the caller's), so say when it is
# older than the sources: its results would be about older code.
if [ -z "${TOYBOX_BIN:-}" ] && [ -n "$(find src Cargo.toml Cargo.lock -newer "$toybox" 2>/dev/null | head -n 1)" ]; then
    say "warning: $toybox is older than src/; run cargo build --release to test the current code"
fi

# --- Initramfs: static busybox, toybox (with any shared libraries it links),
# the container's busybox rootfs with the probe, /init.
stage=$(mktemp -d "$out/initramfs.XXXXXX")
cleanup+=("$stage")
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc}
rootfs-scripts/busybox-rootfs.sh "$stage/rootfs" >/dev/null
cp "$stage/rootfs/bin/busybox" "$stage/bin/busybox"
"$stage/bin/busybox" --list-full | while read -r applet; do
    case "$applet" in bin/busybox | linuxrc) continue ;; esac
    ln -sf /bin/busybox "$stage/$applet"
done
cp "$toybox" "$stage/bin/toybox"
# The cgroup chapters' binaries, built beside toybox (cargo build --release
# --bins): checks.sh runs them to show what chapters 08 and 09 do here.
for chapter in ch08-cgroups ch09-cgroup-v2; do
    [ ! -x "$(dirname "$toybox")/$chapter" ] || cp "$(dirname "$toybox")/$chapter" "$stage/bin/$chapter"
done
# --net bridge's part (checks.sh, "Network"): the host's nft, which toybox
# runs, and the kernel's modules with their load order. Without either the
# network checks say SKIP and why.
binaries=("$toybox")
nft=$(command -v nft || true)
if [ -n "$nft" ]; then
    cp "$nft" "$stage/usr/sbin/nft"
    binaries+=("$nft")
fi
if [ -f "$kdir/modules/order" ]; then
    mkdir -p "$stage/lib/modules"
    cp "$kdir"/modules/* "$stage/lib/modules/"
fi
# Every library at the path ldd names, the dynamic loader included (its path
# is in the binary), so the guest resolves them as the host does. The static
# build (.cargo/config.toml) names none.
for binary in "${binaries[@]}"; do
    { ldd "$binary" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        mkdir -p "$stage$(dirname "$lib")"
        cp -L "$lib" "$stage$lib"
    done
done
# The core suite's probe (tests/probe/probe.c): the same eyes inside.
gcc -static -O2 -Wall -o "$stage/rootfs/bin/probe" tests/probe/probe.c -lpthread
# An OCI bundle for `toybox run` (checks.sh, oci-run): limits through
# linux.resources, in its own cgroupsPath, read back from inside.
mkdir -p "$stage/bundle"
cat >"$stage/bundle/config.json" <<'EOF'
{
  "ociVersion": "1.0.2",
  "root": {"path": "/rootfs"},
  "process": {
    "args": ["/bin/sh", "-c", "echo limits $(cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.weight 2>/dev/null); /bin/probe forkbomb"],
    "env": ["PATH=/bin"],
    "cwd": "/"
  },
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "network"}],
    "cgroupsPath": "/toybox-oci/oci-vm",
    "resources": {"pids": {"limit": 12}, "memory": {"limit": 268435456}, "cpu": {"shares": 512}}
  }
}
EOF
# A file only the guest has: a container that can see it is not isolated.
echo guest >"$stage/host-marker"
install -m 0755 "$here/init.sh" "$stage/init"
install -m 0755 "$here/checks.sh" "$stage/checks.sh"
[ "$(id -u)" -ne 0 ] || mknod -m 0600 "$stage/dev/console" c 5 1
owner=()
[ "$(id -u)" -eq 0 ] || owner=(-R 0:0)
(cd "$stage" && find . -print0 | cpio --null --quiet -o -H newc "${owner[@]}") |
    gzip -1 >"$out/initrd.cpio.gz"
rm -rf "$stage"

# --- Boot once per mode and collect the check lines.
failed=0
for mode in "${modes[@]}"; do
    log=$out/$mode.log
    say "$mode: booting (log: ${log#"$repo"/})"
    started=$SECONDS
    status=0
    # TCG (software emulation) rather than KVM: KVM misbehaves on the
    # machines this runs on, and TCG behaves the same everywhere. 2 GiB, so
    # the 1 GiB memory limit, not the VM's RAM, is what stops the hog.
    # -nic none: the guest needs no network, and skips the iPXE boot ROM.
    timeout -k 10 "$timeout_s" qemu-system-x86_64 -machine accel=tcg -m 2048 -smp 2 -nic none \
        -kernel "$kdir/vmlinuz" -initrd "$out/initrd.cpio.gz" \
        -append "console=ttyS0 quiet panic=-1 toybox.cgroup=$mode" \
        -nographic -no-reboot </dev/null >"$log" 2>&1 &
    # In the background so a Ctrl-C here reaches finish(): timeout runs qemu
    # in a process group of its own, where the terminal's SIGINT never goes.
    vm=$!
    wait "$vm" || status=$?
    vm=
    say "$mode: boot took $((SECONDS - started)) s"
    tr -d '\r' <"$log" | grep -E '^(PASS|FAIL|SKIP) ' | sed "s/^/$mode: /" || true
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "$mode: FAIL boot: no VMLAB DONE within ${timeout_s} s (see ${log#"$repo"/})"
        failed=1
    elif ! tr -d '\r' <"$log" | grep -q '^VMLAB DONE'; then
        echo "$mode: FAIL boot: the guest stopped before VMLAB DONE (qemu status $status); last lines of ${log#"$repo"/}:"
        tr -d '\r' <"$log" | tail -n 15 | sed "s/^/$mode:   /"
        failed=1
    elif tr -d '\r' <"$log" | grep -q '^FAIL '; then
        failed=1
    fi
done
exit "$failed"
