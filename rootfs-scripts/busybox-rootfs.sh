#!/bin/sh
# Build a busybox rootfs offline from Debian's busybox-static package:
# only the package registry is contacted (apt-get download), nothing else.
#
#   rootfs-scripts/busybox-rootfs.sh [--no-shift] [DIR]      (default ./rootfs)
#
# The tree is owned as the container sees it ("shifted"): toybox maps uids
# 0..1999 inside to host 10000..11999 (USERNS_OFFSET/COUNT in src/main.rs), so
# a file root owns inside belongs to host uid 10000, /home/user (uid 1000) to
# host 11000. Root in the container then owns its rootfs and can write /etc,
# as in docker. --no-shift leaves everything owned by host root (inside:
# nobody/nogroup, read-only to the container's root), the tree before issue 15.
# Run as root (chown); as another user the tree stays the caller's own.
#
# Idempotent: running it again refreshes the same tree, owners included (so
# --no-shift and back switches it). The .deb is kept in $TOYBOX_CACHE
# (default ~/.cache/toybox) so later runs need no network.
set -eu

# The id map of src/main.rs: inside id N is host id N + offset.
offset=10000
case "${1:-}" in
--no-shift) offset=0; shift ;;
-*) echo "busybox-rootfs: unknown option $1 (usage: busybox-rootfs.sh [--no-shift] [DIR])" >&2; exit 2 ;;
esac
out=${1:-./rootfs}
cache=${TOYBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toybox}
mkdir -p "$cache"

deb=$(ls "$cache"/busybox-static_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
    (cd "$cache" && apt-get -o APT::Sandbox::User=root download busybox-static >/dev/null) || {
        echo "busybox-rootfs: apt-get download busybox-static failed (run apt-get update first?)" >&2
        exit 1
    }
    deb=$(ls "$cache"/busybox-static_*.deb | head -n 1)
fi

unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb -x "$deb" "$unpacked"

mkdir -p "$out"
for dir in bin sbin usr/bin usr/sbin etc root home/user dev proc sys tmp var/tmp; do
    mkdir -p "$out/$dir"
done
chmod 1777 "$out/tmp" "$out/var/tmp"
chmod 0700 "$out/root"

cp "$unpacked/bin/busybox" "$out/bin/busybox"
chmod 0755 "$out/bin/busybox"
# One relative link per applet, so the links resolve inside the container.
"$out/bin/busybox" --list-full | while read -r applet; do
    case "$applet" in bin/busybox | linuxrc) continue ;; esac
    up=$(dirname "$applet" | sed 's|[^/][^/]*|..|g')
    ln -sfn "$up/bin/busybox" "$out/$applet"
done

cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
user:x:1000:
nogroup:x:65534:
GROUP
# Empty, as in a Debian image: with --net bridge toybox bind-mounts the
# container's own over them (it creates nothing in a rootfs).
touch "$out/etc/hosts" "$out/etc/resolv.conf"

# Owners last, over the whole tree (links themselves with -h), so a re-run
# with or without --no-shift leaves every file as that run says.
if [ "$(id -u)" = 0 ]; then
    chown -hR "$offset:$offset" "$out"
    chown -h "$((offset + 1000)):$((offset + 1000))" "$out/home/user"
fi

if [ "$offset" = 0 ]; then owners="unshifted: host root owns it"; else owners="shifted: root inside owns it as host uid $offset"; fi
echo "busybox rootfs ready in $out ($("$out/bin/busybox" | head -n 1 | cut -d' ' -f1-2), $owners)"
