#!/bin/sh
# S1's chroot demo as a script: a rootfs holding just the given programs and
# the shared libraries ldd(1) says they load, the dynamic loader included.
#
#   rootfs-scripts/ldd-rootfs.sh [--no-shift] DIR BINARY...
#   rootfs-scripts/ldd-rootfs.sh ./mini /bin/bash /bin/ls
#   toybox -m ./mini -u 0 -c /bin/bash -c 'ls -l /'
#
# Each BINARY (a path, or a name looked up in PATH) and each library is copied
# to the same path under DIR, links followed, so /lib64/ld-linux-x86-64.so.2
# becomes a file there and nothing points outside DIR. Empty dev, proc, sys
# and tmp are made for toybox to mount on. Contacts nothing: it copies from
# this host. ldd may run the binary's own loader, so give it only programs
# you would run yourself. Programs that dlopen(3) more at run time (NSS,
# locales, iconv) find only what is copied; add those files by hand.
#
# Owners are shifted as toybox's uid map sees them (host 10000 = root inside,
# rootfs-scripts/busybox-rootfs.sh says why); --no-shift leaves them host
# root's. Idempotent: a re-run copies the same files over and sets the same
# owners; files already in DIR stay.
set -eu

usage="usage: ldd-rootfs.sh [--no-shift] DIR BINARY..."
offset=10000
if [ "${1:-}" = --no-shift ]; then
    offset=0
    shift
fi
if [ $# -lt 2 ]; then
    echo "ldd-rootfs: $usage" >&2
    exit 2
fi
out=$1
shift

# copy FILE: FILE to the same path under $out, as a regular file (-L), with
# its directories; the mode is kept, owners are set at the end.
copy() {
    mkdir -p "$out$(dirname "$1")"
    cp -L --preserve=mode "$1" "$out$1"
}

count=0
for name in "$@"; do
    case "$name" in
    /*) binary=$name ;;
    *) binary=$(command -v "$name" 2>/dev/null || true) ;;
    esac
    if [ -z "$binary" ] || [ ! -f "$binary" ]; then
        echo "ldd-rootfs: $name: no such program" >&2
        exit 1
    fi
    copy "$binary"
    count=$((count + 1))
    # ldd prints "libtinfo.so.6 => /lib/.../libtinfo.so.6 (0x…)" per library
    # and the loader as "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has
    # no file. A static program has no libraries ("not a dynamic executable").
    if ! libs=$(ldd "$binary" 2>&1); then
        case "$libs" in
        *"not a dynamic executable"*) continue ;;
        *) echo "ldd-rootfs: ldd $binary: $libs" >&2; exit 1 ;;
        esac
    fi
    missing=$(printf '%s\n' "$libs" | grep 'not found' || true)
    if [ -n "$missing" ]; then
        echo "ldd-rootfs: $binary needs libraries this host lacks: $missing" >&2
        exit 1
    fi
    for lib in $(printf '%s\n' "$libs" | sed -n 's|.*=> \(/[^ ]*\) .*|\1|p; s|^[[:space:]]*\(/[^ ]*\) (.*|\1|p'); do
        copy "$lib"
        count=$((count + 1))
    done
done

for dir in dev proc sys tmp; do
    mkdir -p "$out/$dir"
done
chmod 1777 "$out/tmp"
if [ "$(id -u)" = 0 ]; then
    chown -hR "$offset:$offset" "$out"
fi
echo "ldd rootfs ready in $out ($count files; owners $([ "$offset" = 0 ] && echo "unshifted" || echo "shifted, host uid $offset"))"
