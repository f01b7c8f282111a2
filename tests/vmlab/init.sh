#!/bin/sh
# /init of the VM lab's initramfs (see run.sh). It sets up a bare guest with
# the cgroup layout named on the kernel command line (toybox.cgroup=v1|v2),
# runs checks.sh, prints VMLAB DONE and powers off. No systemd, no udev:
# the layout is exactly what this script mounts and nothing else.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

if [ "${1:-}" != stage2 ]; then
    # Stage 1. pivot_root(2) fails with EINVAL while the caller's root is the
    # initramfs itself ("rootfs" cannot be unmounted), and toybox pivots. So
    # copy everything onto a tmpfs and switch_root there, as an initramfs
    # normally hands over to the real root; the container rootfs comes along.
    mkdir -p /newroot
    mount -t tmpfs -o mode=0755 tmpfs /newroot
    for entry in /*; do
        [ "$entry" = /newroot ] || cp -a "$entry" /newroot/
    done
    exec switch_root /newroot /init stage2
fi

# Stage 2: on the tmpfs root.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
# Keep kernel messages (OOM kills are logged at KERN_ERR) off the serial
# console, so the check lines are not torn apart; they stay in dmesg.
dmesg -n 1
hostname vmlab

mode=$(sed -n 's/.*toybox\.cgroup=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
echo "INFO vmlab mode=${mode:-none} kernel=$(uname -r)"
case "$mode" in
v2)
    # A pure (unified) cgroup v2 host, as systemd sets up by default: only
    # cgroup2 at /sys/fs/cgroup, no v1 hierarchy anywhere. The root group's
    # cgroup.subtree_control is left as the kernel boots it (empty).
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    ;;
v1)
    # A pure (legacy) cgroup v1 host: one hierarchy per controller, the
    # layout toybox's v1 code expects. cgroup2 is never mounted, so no
    # controller is bound to the v2 hierarchy and all can be mounted as v1.
    mount -t tmpfs -o mode=0755 cgroup_root /sys/fs/cgroup
    for controller in memory cpu cpuacct pids blkio cpuset devices freezer; do
        mkdir -p "/sys/fs/cgroup/$controller"
        mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller" ||
            echo "INFO cannot mount cgroup v1 $controller"
    done
    ;;
*)
    echo "FAIL boot: no toybox.cgroup=v1|v2 on the kernel command line: $(cat /proc/cmdline)"
    ;;
esac
echo "INFO cgroup mounts: $(grep cgroup /proc/mounts | cut -d' ' -f2-4 | tr '\n' ';')"

case "$mode" in v1 | v2) sh /checks.sh "$mode" ;; esac

echo "VMLAB DONE"
sync
# -f: reboot(2) right away; there is nothing to shut down. Should that fail,
# init exiting panics the kernel, and panic=-1 plus qemu -no-reboot end the VM.
poweroff -f
