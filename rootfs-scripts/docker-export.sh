#!/bin/sh
# A rootfs from a docker image, the way S0 §2.1 and S3 「准备文件系统」 get
# theirs: `docker create` a container from IMAGE (never started), `docker
# export` its filesystem as one plain tar, and `toybox unpack` that tar into
# DIR, owners shifted to the ids the container sees (host uid 10000 = root
# inside; busybox-rootfs.sh says why; --no-shift keeps them as in the image).
#
#   rootfs-scripts/docker-export.sh [--no-shift] IMAGE DIR
#   rootfs-scripts/docker-export.sh busybox ./busybox-docker
#   toybox -m ./busybox-docker -u 0 -c /bin/sh
#
# Contacts the docker daemon, which pulls IMAGE from its registry if it does
# not have it. An export is the container's merged tree: no layers, no image
# config (Env, Cmd, WorkingDir are lost; `docker save` + `toybox unpack` keeps
# them, see the README). Without docker, or with its daemon unreachable, it
# says so and exits 1 without touching DIR.
#
# Idempotent: a re-run exports again into a fresh tree and replaces DIR only
# when that worked. DIR must be absent, empty or an earlier export (it has
# the .toybox-docker-export mark beside it). $DOCKER names the docker client
# (default docker); $TOYBOX_BIN the toybox binary (else ./toybox, the build's,
# then PATH). Run as root (unpack's chown).
set -eu

usage="usage: docker-export.sh [--no-shift] IMAGE DIR"
shift_arg=
if [ "${1:-}" = --no-shift ]; then
    shift_arg=--no-shift
    shift
fi
if [ $# -ne 2 ]; then
    echo "docker-export: $usage" >&2
    exit 2
fi
image=$1
out=${2%/}
mark=$out.toybox-docker-export

fail() {
    echo "docker-export: $*" >&2
    exit 1
}

docker=${DOCKER:-docker}
command -v "$docker" >/dev/null 2>&1 ||
    fail "docker is not installed ($docker not found): install docker, or use toybox unpack on a docker save / skopeo copy tar"
if ! info=$("$docker" info --format '{{.ServerVersion}}' 2>&1); then
    fail "cannot reach the docker daemon: $(printf '%s' "$info" | grep -v '^$' | tail -n 1)"
fi

. "$(dirname "$0")/find-toybox.sh"

if [ -e "$out" ] && [ ! -e "$mark" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    fail "$out exists and is not an earlier export; give another DIR or remove it"
fi

tar=$(mktemp "$out.export.XXXXXX")
new=$out.new.$$
old=$out.old.$$
id=
cleanup() {
    [ -z "$id" ] || "$docker" rm -f "$id" >/dev/null 2>&1 || true
    rm -rf "$tar" "$new" "$old"
}
trap cleanup EXIT

# create needs a command when the image has none (FROM scratch); it never
# runs, so any word does.
echo "docker-export: docker create $image" >&2
id=$("$docker" create "$image" true) || fail "docker create $image failed (its message is above)"
echo "docker-export: docker export $id" >&2
"$docker" export -o "$tar" "$id" || fail "docker export failed (its message is above)"
"$toybox" unpack $shift_arg "$tar" "$new" >/dev/null ||
    fail "toybox unpack of the export failed (its message is above)"
if [ -e "$out" ]; then
    mv "$out" "$old"
fi
mv "$new" "$out"
echo "$image" >"$mark"

echo "docker export of $image ready in $out ($(
    [ -n "$shift_arg" ] && echo "unshifted: owners as in the image" ||
        echo "shifted: root inside owns it as host uid 10000"))"
