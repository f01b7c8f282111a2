# bench/lib.sh: what bench/run.sh and bench/oci.sh share (sourced, not run).

# in_bench_ns DIR COMMAND...: COMMAND in a private mount and network
# namespace. crun 1.8 refuses a hybrid host whose cgroup2 mount has
# controllers; with that file masked here it does its v1 work. Every command
# of a benchmark runs in the same kind of namespace, so the comparison stays
# fair. The namespace has its own network (lo up, no way out) and its own
# /run: bridges, NAT tables, ip_forward and runtime state land there, never
# on the host. DIR holds the empty file used as the mask.
in_bench_ns() {
    local dir=$1 controllers=/sys/fs/cgroup/unified/cgroup.controllers
    shift
    : >"$dir/empty"
    unshare -m -n --propagation private sh -c '
        set -e
        mount -t tmpfs tmpfs /run
        ip link set lo up
        # (read, not test -s: cgroup files report a size of 0)
        if [ -n "$(cat "$2" 2>/dev/null)" ]; then mount --bind "$1" "$2"; fi
        shift 2
        exec "$@"' sh "$dir/empty" "$controllers" "$@"
}

# make_bundle DIR ROOTFS ARGS...: an OCI bundle as S0 makes one, `runc spec`,
# then not a terminal, ROOTFS as root.path, ARGS as the process, and a cgroup
# namespace like toybox's.
make_bundle() {
    local bundle=$1 rootfs=$2
    shift 2
    rm -rf "$bundle" && mkdir -p "$bundle"
    (cd "$bundle" && runc spec)
    python3 - "$bundle/config.json" "$rootfs" "$@" <<'PY'
import json, sys
path, rootfs, args = sys.argv[1], sys.argv[2], sys.argv[3:]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = args
spec["root"] = {"path": rootfs, "readonly": False}
spec["linux"]["namespaces"].append({"type": "cgroup"})
json.dump(spec, open(path, "w"), indent=1)
PY
}
