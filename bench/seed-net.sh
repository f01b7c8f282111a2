#!/bin/sh
# bench/seed-net.sh ROOTFS CMD: what a reader of S1 「容器网络原理简介」 would
# run for the topology `toybox --net bridge` makes, as one command: a bridge,
# a named netns, a veth into it, address, route, forwarding and MASQUERADE
# by `ip` and `nft`, then the same namespaces as the `unshare` row, and all
# of it removed again. Run only in bench/run.sh's own network namespace.
set -e
rootfs=$1
shift
ns=seed$$
ip link add seedbr0 type bridge
ip addr add 10.78.0.1/24 dev seedbr0
ip link set seedbr0 up
ip netns add "$ns"
ip link add "v$ns" type veth peer name eth0 netns "$ns"
ip link set "v$ns" master seedbr0 up
ip -n "$ns" addr add 10.78.0.2/24 dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
ip -n "$ns" route add default via 10.78.0.1
echo 1 >/proc/sys/net/ipv4/ip_forward
printf 'table ip seed {\n chain postrouting { type nat hook postrouting priority srcnat; ip saddr 10.78.0.0/24 oifname != "seedbr0" masquerade; }\n}\n' | nft -f -
status=0
ip netns exec "$ns" unshare --mount --uts --ipc --pid --fork --cgroup --user --map-root-user \
    --root="$rootfs" "$@" || status=$?
nft delete table ip seed
echo 0 >/proc/sys/net/ipv4/ip_forward
ip netns del "$ns"
ip link del seedbr0
exit $status
