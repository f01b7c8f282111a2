#!/bin/sh
# A Debian rootfs (bookworm, variant minbase: the Essential packages, bash,
# dpkg and apt) from Debian's package registry, made by mmdebstrap(1) as a
# plain tar and turned into a tree by `toybox unpack`, which shifts its owners
# to the ids the container sees (host uid 10000 = root inside, see
# busybox-rootfs.sh). Root in the container can then `dpkg -i` and
# `apt-get install` in it:
#
#   rootfs-scripts/debian-rootfs.sh [--no-shift] [--refresh] [DIR]   (default ./debian)
#   toybox -m ./debian -u 0 -c /bin/bash
#
# Contacts only Debian's registry (deb.debian.org, bookworm, -updates and
# -security, mmdebstrap's defaults), and only when the tar is not cached yet.
# The tar is kept in $TOYBOX_CACHE/debian (default ~/.cache/toybox), like the
# VM lab's kernel; --refresh makes it again with today's packages.
#
# Idempotent: a re-run unpacks the cached tar again into a fresh DIR and
# replaces the old one only when that worked (so changes made in DIR are
# lost). DIR must be absent, empty or an earlier Debian rootfs. Needs root
# (mmdebstrap's root mode, and unpack's chown), mmdebstrap (apt-get install
# mmdebstrap) and toybox: $TOYBOX_BIN, else ./toybox, else the build's, else PATH.
set -eu

suite=bookworm
usage="usage: debian-rootfs.sh [--no-shift] [--refresh] [DIR]"
shift_arg=
refresh=
while [ $# -gt 0 ]; do
    case "$1" in
    --no-shift) shift_arg=--no-shift ;;
    --refresh) refresh=1 ;;
    -*) echo "debian-rootfs: unknown option $1 ($usage)" >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
[ $# -le 1 ] || { echo "debian-rootfs: $usage" >&2; exit 2; }
out=${1:-./debian}
out=${out%/}

fail() {
    echo "debian-rootfs: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap's root mode and toybox unpack's chown need it)"
command -v mmdebstrap >/dev/null 2>&1 || fail "mmdebstrap is not installed (apt-get install mmdebstrap)"

. "$(dirname "$0")/find-toybox.sh"

if [ -e "$out" ] && [ ! -f "$out/etc/debian_version" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    fail "$out exists and is not a Debian rootfs; give another DIR or remove it"
fi

cache=${TOYBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toybox}/debian
tar=$cache/$suite-minbase.tar
mkdir -p "$cache"
if [ -n "$refresh" ] || [ ! -s "$tar" ]; then
    # mmdebstrap prints each step (update, download, extract, install) on
    # stderr as it goes: the progress of the one long step (a minute or two).
    echo "debian-rootfs: mmdebstrap $suite minbase -> $tar" >&2
    rm -f "$tar.partial"
    # apt drops to its sandbox user _apt (uid 42, group nogroup = 65534) to
    # download; 65534 is outside toybox's map (0..1999), so setgroups fails
    # with EINVAL inside and every apt-get stops. This file, uploaded into
    # the tree by mmdebstrap's hook, has apt download as the container's root.
    conf=$(mktemp)
    trap 'rm -f "$conf"' EXIT
    cat >"$conf" <<'CONF'
// toybox maps ids 0..1999 only: _apt's group nogroup (65534) is not one of
// them, so apt cannot drop to _apt inside (setgroups: Invalid argument).
APT::Sandbox::User "root";
CONF
    chmod 644 "$conf"
    mmdebstrap --variant=minbase --format=tar \
        --customize-hook="upload $conf /etc/apt/apt.conf.d/99toybox-sandbox" \
        "$suite" "$tar.partial" ||
        fail "mmdebstrap failed (network? see its messages above)"
    mv "$tar.partial" "$tar"
    rm -f "$conf"
    trap - EXIT
else
    echo "debian-rootfs: using the cached $tar (--refresh to make it again)" >&2
fi

# Unpack beside DIR, then swap, so DIR is never half-made.
new=$out.new.$$
old=$out.old.$$
trap 'rm -rf "$new" "$old"' EXIT
"$toybox" unpack $shift_arg "$tar" "$new" >/dev/null ||
    fail "toybox unpack $tar failed (its message is above)"
if [ -e "$out" ]; then
    mv "$out" "$old"
fi
mv "$new" "$out"
rm -rf "$old"
trap - EXIT

echo "debian rootfs ready in $out (Debian $(cat "$out/etc/debian_version") minbase, $(
    [ -n "$shift_arg" ] && echo "unshifted: host root owns it" ||
        echo "shifted: root inside owns it as host uid 10000"))"
