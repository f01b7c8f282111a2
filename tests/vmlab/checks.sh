#!/bin/sh
# Container checks, run by /init inside the VM lab guest:  checks.sh v1|v2
# One line per check: "PASS name", "FAIL name: detail", or "SKIP name: reason"
# (only when the kernel lacks something). run.sh collects these lines.
mode=$1
toybox=/bin/toybox
rootfs=/rootfs
work=/tmp/checks
mkdir -p "$work"
: >"$work/containers"
# v2: toybox enables the controllers its parent group (/sys/fs/cgroup/toybox)
# needs in the root's subtree_control, and never turns one off there.
[ "$mode" != v2 ] || subtree_before=$(cat /sys/fs/cgroup/cgroup.subtree_control)

# WORD is one of the words of LIST.
has_word() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# The last error or warning toybox printed for container LABEL.
said() { grep 'toybox:' "$work/$1.err" | tail -n 1; }

# The kernel has CONTROLLER and it is not disabled (/proc/cgroups).
has_controller() { awk -v c="$1" '$1 == c && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups; }

# Where groups of CONTROLLER live: the one v2 tree, or the v1 hierarchy.
cg_root() { if [ "$mode" = v2 ]; then echo /sys/fs/cgroup; else echo "/sys/fs/cgroup/$1"; fi; }

# The group toybox made for container NAME under CONTROLLER's tree: always in
# the one parent group, toybox/, at the top of the tree.
cg_dir() { find "$(cg_root "$1")/toybox" -maxdepth 1 -type d -name "$2" 2>/dev/null | head -n 1; }

# The name toybox gave the container in $work/LABEL.err: "=> hostname NAME"
# (not the child's "=> hostname ... done (N µs)" stage line).
named() { sed -n 's/^=> hostname \([^ ][^ ]*\)$/\1/p' "$@"; }

# Every toybox run is verbose: its cgroups are named after the hostname it
# prints ("=> hostname NAME"). Record each name once the container is gone,
# with any directory of that name still under /sys/fs/cgroup.
record() {
    name=$(named "$work/$1.err")
    [ -n "$name" ] || return 0
    left=$(find /sys/fs/cgroup -type d -name "$name" 2>/dev/null | tr '\n' ' ')
    echo "$1 $name $left" >>"$work/containers"
}

# tb LABEL CMD [ARGS...]: run CMD in a container; output in $work/LABEL.out
# and .err, exit status in $rc. timeout stops a hung container. stdin is
# not the console: with a terminal toybox would give the container a pty.
# $extra: more toybox flags (the network checks' --net and -p), unquoted.
extra=
tb() {
    label=$1
    shift
    # shellcheck disable=SC2086
    timeout 120 "$toybox" -v $extra -m "$rootfs" -c "$@" </dev/null >"$work/$label.out" 2>"$work/$label.err"
    rc=$?
    record "$label"
}

# until_execve LABEL: wait (30 s at most) until the container in the
# background ($bg) has said "=> execve" in $work/LABEL.err: every limit is
# in place by then.
until_execve() {
    tries=0
    while ! grep -q execve "$work/$1.err" && kill -0 "$bg" 2>/dev/null && [ "$tries" -lt 300 ]; do
        usleep 100000
        tries=$((tries + 1))
    done
}

# start LABEL CMD [ARGS...]: a container in the background ($bg), once its
# child has said "=> execve".
start() {
    label=$1
    shift
    # shellcheck disable=SC2086
    timeout 120 "$toybox" -v $extra -m "$rootfs" -c "$@" </dev/null >"$work/$label.out" 2>"$work/$label.err" &
    bg=$!
    until_execve "$label"
}

# --- A container runs, and its exit status is toybox's.
tb exit42 /bin/sh -c 'exit 42'
if [ "$rc" -eq 42 ]; then pass exit-status; else fail exit-status "sh -c 'exit 42' gave $rc, want 42: $(said exit42)"; fi
tb true /bin/true
if [ "$rc" -eq 0 ]; then pass true; else fail true "/bin/true gave $rc, want 0: $(said true)"; fi

# --- Namespaces: own hostname (the one -v names), PID 1, no network but lo.
tb hostname /bin/hostname
inside=$(cat "$work/hostname.out")
name=$(named "$work/hostname.err")
if [ "$rc" -eq 0 ] && [ -n "$inside" ] && [ "$inside" != "$(hostname)" ] && [ "$inside" = "$name" ]; then
    pass hostname
else
    fail hostname "exit $rc, inside '$inside', guest '$(hostname)', toybox named it '$name': $(said hostname)"
fi
tb pid /bin/sh -c 'echo $$'
if [ "$rc" -eq 0 ] && [ "$(cat "$work/pid.out")" = 1 ]; then pass pid1; else fail pid1 "exit $rc, \$\$ is '$(cat "$work/pid.out")', want 1: $(said pid)"; fi
tb net /bin/busybox ip -o link
links=$(sed -n 's/^[0-9]*: \([^:@]*\).*/\1/p' "$work/net.out" | tr '\n' ' ')
if [ "$rc" -eq 0 ] && [ "$links" = "lo " ]; then pass only-lo; else fail only-lo "exit $rc, links '$links', want only lo: $(said net)"; fi

# --- The limits are in the cgroup files while a container runs. Wait for
# "=> execve": the child prints it last, after every limit is in place.
# (Matched as a bare word: an older toybox could split -v lines when parent
# and child wrote at once.)
start limits /bin/sh -c 'sleep 5'
name=$(named "$work/limits.err")

# limit CHECK CONTROLLER FILE OP VALUE [NAME]: FILE in the group of NAME
# (default $name) compares OP VALUE (test(1)'s -OP, or "is": the same text).
limit() {
    check=$1 controller=$2 file=$3 op=$4 want=$5 name=${6:-$name}
    if ! has_controller "$controller"; then
        skip "$check" "kernel has no $controller controller (/proc/cgroups)"
        return
    fi
    if ! grep -q execve "$work/limits.err"; then
        fail "$check" "the container did not start: $(said limits)"
        return
    fi
    dir=$(cg_dir "$controller" "$name")
    if [ -z "$dir" ]; then
        fail "$check" "no directory named $name under $(cg_root "$controller")/toybox"
    elif [ ! -f "$dir/$file" ]; then
        fail "$check" "$dir/$file does not exist (parent's cgroup.subtree_control: '$(cat "$dir/../cgroup.subtree_control" 2>/dev/null)')"
    elif [ "$op" = is ] && [ "$(cat "$dir/$file")" = "$want" ]; then
        pass "$check"
    elif [ "$op" != is ] && [ "$(cat "$dir/$file")" -"$op" "$want" ] 2>/dev/null; then
        pass "$check"
    else
        fail "$check" "$dir/$file is $(cat "$dir/$file"), want -$op $want"
    fi
}
if [ "$mode" = v2 ]; then
    limit memory-limit memory memory.max eq 1073741824
    limit pids-limit pids pids.max eq 64
    limit cpu-limit cpu cpu.weight lt 100
else
    limit memory-limit memory memory.limit_in_bytes eq 1073741824
    limit pids-limit pids pids.max eq 64
    limit cpu-limit cpu cpu.shares eq 256
    # The devices group allows /dev's six nodes and the ptys, nothing else.
    want=$(printf '%s\n' 'c 1:3 rwm' 'c 1:5 rwm' 'c 1:7 rwm' 'c 1:8 rwm' 'c 1:9 rwm' 'c 5:0 rwm' 'c 5:2 rw' 'c 136:* rw' | sort | tr '\n' ';')
    dir=$(cg_dir devices "$name")
    got=$(sort "$dir/devices.list" 2>/dev/null | tr '\n' ';')
    if ! has_controller devices; then
        skip devices-list "kernel has no devices controller (/proc/cgroups)"
    elif [ "$got" = "$want" ]; then
        pass devices-list
    else
        fail devices-list "'$dir/devices.list' is '$got', want '$want'"
    fi
fi
# The container's processes are in that group (else its limits are moot).
dir=$(cg_dir memory "$name")
procs=$(cat "$dir/cgroup.procs" 2>/dev/null | tr '\n' ' ')
if [ -n "$name" ] && [ -n "$procs" ]; then pass in-group; else fail in-group "group '$dir' of '$name' holds no processes"; fi
wait "$bg"
rc=$?
record limits
if [ "$rc" -ne 0 ]; then fail limits-container "sh -c 'sleep 5' gave $rc, want 0: $(said limits)"; fi

# --- Two containers overlap: the first exits while the second runs, and the
# second keeps every limit (nothing the first undoes on its way out reaches
# the second's group).
start first /bin/sleep 2
first=$bg
start second /bin/sleep 6
second=$bg
wait "$first"
rc=$?
record first
[ "$rc" -eq 0 ] || fail overlap-first "sleep 2 gave $rc, want 0: $(said first)"
name2=$(named "$work/second.err")
if [ "$mode" = v2 ]; then
    limit overlap-memory memory memory.max eq 1073741824 "$name2"
    limit overlap-pids pids pids.max eq 64 "$name2"
    limit overlap-cpu cpu cpu.weight eq 25 "$name2"
    # (/proc/cgroups lists the io controller by its v1 name, blkio.)
    limit overlap-io blkio io.weight is "default 10" "$name2"
else
    limit overlap-memory memory memory.limit_in_bytes eq 1073741824 "$name2"
    limit overlap-pids pids pids.max eq 64 "$name2"
    limit overlap-cpu cpu cpu.shares eq 256 "$name2"
fi
wait "$second"
rc=$?
record second
[ "$rc" -eq 0 ] || fail overlap-second "sleep 6 gave $rc, want 0: $(said second)"

# --- Devices: only /dev's nodes and the ptys open (v1: the devices group;
# v2: a BPF program on the group). The guest makes a /dev/kmsg node (1:11)
# in the running container's /dev; opened write-only it needs no privilege,
# so only the cgroup can refuse it.
start devices /bin/sh -c 'exec 2>&1; echo started; while [ ! -e /dev/probe-kmsg ]; do sleep 0.1; done
    (: >/dev/probe-kmsg) && echo kmsg opened; head -c 1 /dev/zero >/dev/null && echo zero ok
    exec 3<>/dev/ptmx && echo ptmx ok'
name3=$(named "$work/devices.err")
# The container's shell in its group (on v1 toybox is there too; its
# `sleep 0.1`s come and go).
pid=
for p in $(cat "$(cg_dir memory "$name3")/cgroup.procs" 2>/dev/null); do
    ! grep -q probe-kmsg "/proc/$p/cmdline" 2>/dev/null || pid=$p
done
tries=0
while ! grep -q started "$work/devices.out" && [ "$tries" -lt 100 ]; do usleep 100000; tries=$((tries + 1)); done
if [ -n "$pid" ]; then mknod -m 666 "/proc/$pid/root/dev/probe-kmsg" c 1 11; else kill "$bg"; fi
wait "$bg"
rc=$?
record devices
got=$(tr '\n' ';' <"$work/devices.out")
case "$got" in
*"probe-kmsg: Operation not permitted;zero ok;ptmx ok;") pass devices-refused ;;
*) fail devices-refused "exit $rc, container said '$got', want the 1:11 node refused and /dev/zero, /dev/ptmx open: $(said devices)" ;;
esac

# --- The limits hold. The probe touches memory 64 MiB at a time and is
# OOM-killed (128+9) before 1 GiB, and after at least 512 MiB.
if has_controller memory; then
    tb oom /bin/probe hog
    last=$(sed -n 's/^hog \([0-9]*\)$/\1/p' "$work/oom.out" | tail -n 1)
    last=${last:-0}
    echo "INFO oom: probe hog exit $rc after holding $last MiB"
    if [ "$rc" -eq 137 ] && [ "$last" -ge 512 ] && [ "$last" -lt 1024 ]; then
        pass oom-kill
    else
        fail oom-kill "exit $rc after holding $last MiB, want 137 (SIGKILL) between 512 and 1023 MiB: $(said oom)"
    fi
else
    skip oom-kill "kernel has no memory controller (/proc/cgroups)"
fi
# Children that wait in pause() until fork fails: fewer than pids.max = 64.
if has_controller pids; then
    tb fork /bin/probe forkbomb
    forked=$(sed -n 's/^forked //p' "$work/fork.out")
    count=${forked%% *}
    echo "INFO fork: exit $rc, probe said 'forked $forked'"
    if [ "$rc" -eq 0 ] && [ "${forked#* }" = EAGAIN ] && [ "${count:-0}" -gt 0 ] && [ "${count:-0}" -lt 64 ]; then
        pass fork-limit
    else
        fail fork-limit "exit $rc, probe said 'forked $forked', want fewer than 64 children then EAGAIN: $(said fork)"
    fi
else
    skip fork-limit "kernel has no pids controller (/proc/cgroups)"
fi

# --- Isolation, as in the core suite: the guest's files stay out of reach
# even through the chroot escape, and the kernel-6.1 seccomp holes are shut.
tb escape /bin/probe escape /host-marker /oldroot
seen=$(grep -E '^(before|after) ' "$work/escape.out" | grep -v ' ENOENT$' | tr '\n' ';')
if [ "$rc" -eq 0 ] && grep -q '^after ' "$work/escape.out" && [ -z "$seen" ]; then
    pass no-host-files
else
    fail no-host-files "exit $rc, reached: '$seen': $(said escape)"
fi
# runc's masks on a kernel that has the files (this VM's host kernel lacks
# kcore and sysrq-trigger): kcore reads as empty, sysrq-trigger refuses.
if [ -e /proc/kcore ] && [ -e /proc/sysrq-trigger ]; then
    # ps into a file, not a pipe: in `ps | wc` ps may read /proc before the
    # shell has forked wc, and count 3 lines or 4.
    tb procmask /bin/sh -c 'cat /proc/kcore | wc -c; echo h > /proc/sysrq-trigger && echo wrote sysrq-trigger; ps -o pid > /tmp/ps.out; wc -l < /tmp/ps.out'
    got=$(tr '\n' ' ' <"$work/procmask.out")
    if [ "$got" = "0 3 " ]; then pass proc-masked; else fail proc-masked "exit $rc, got '$got', want '0 3 ' (kcore empty, sysrq refused, ps sees a header, sh and itself): $(said procmask)"; fi
else
    skip proc-masked "the guest kernel has no /proc/kcore or /proc/sysrq-trigger"
fi
tb syscalls /bin/probe syscalls
wrong=
for expectation in unshare_newuser=EPERM clone_newuser=EPERM keyctl=EPERM ptrace=EPERM \
    fchmodat_suid=EPERM fchmodat2_suid=EPERM open_creat_suid=EPERM clone3=ENOSYS \
    openat2=ENOSYS io_uring_setup=EPERM int80=SIGSYS x32=SIGSYS int80_in_thread=SIGSYS \
    ioctl_tiocsti_high=EPERM syscall_minus_one=ENOSYS chmod_plain=OK clone_plain=OK ioctl_tiocgwinsz=ENOTTY pthread=OK; do
    got=$(sed -n "s/^${expectation%=*} //p" "$work/syscalls.out")
    [ "$got" = "${expectation#*=}" ] || wrong="$wrong ${expectation%=*}=$got (want ${expectation#*=})"
done
if [ "$rc" -eq 0 ] && [ -z "$wrong" ]; then pass seccomp; else fail seccomp "exit $rc:$wrong $(said syscalls)"; fi

# --- The cgroup chapters (run.sh copies their binaries in when they are
# built). Chapter 08 is contained.c's cgroup v1: on a pure v2 host it warns
# that no v1 controller is there and runs without limits. Chapter 09 adds
# v2: its group under toybox/, with the limits, gone once the container is.
# The "CHAPTER" lines are the transcript chapter 09's notes quote.
if [ "$mode" = v2 ] && [ -x /bin/ch08-cgroups ] && [ -x /bin/ch09-cgroup-v2 ]; then
    /bin/ch08-cgroups -m "$rootfs" -c /bin/true </dev/null >"$work/ch08.out" 2>"$work/ch08.log"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^toybox: cgroups: no cgroup v1 controller memory, cpu, pids under /sys/fs/cgroup; continuing without those limits$' "$work/ch08.log"; then
        pass chapter-08-on-v2
    else
        fail chapter-08-on-v2 "exit $rc, said '$(cat "$work/ch08.log")', want 0 and the v1 warning"
    fi
    sed 's/^/CHAPTER 08 stderr: /' "$work/ch08.log"
    /bin/ch09-cgroup-v2 -v -m "$rootfs" -c /bin/sleep 2 </dev/null >"$work/ch09.out" 2>"$work/ch09.err" &
    bg=$!
    until_execve ch09
    name=$(named "$work/ch09.err")
    group=/sys/fs/cgroup/toybox/$name
    echo "CHAPTER 09 # cat /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/toybox/cgroup.subtree_control"
    cat /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/toybox/cgroup.subtree_control | sed 's/^/CHAPTER 09 /'
    echo "CHAPTER 09 # cd $group && grep . memory.max memory.swap.max cpu.weight pids.max io.weight cgroup.procs"
    (cd "$group" && grep . memory.max memory.swap.max cpu.weight pids.max io.weight cgroup.procs) | sed 's/^/CHAPTER 09 /'
    limits=$(cd "$group" 2>/dev/null && cat memory.max memory.swap.max cpu.weight pids.max | tr '\n' ' ')
    wait "$bg"
    rc=$?
    sed 's/^/CHAPTER 09 stderr: /' "$work/ch09.err"
    echo "CHAPTER 09 # ls /sys/fs/cgroup/toybox/ | grep -c $name"
    echo "CHAPTER 09 $(ls /sys/fs/cgroup/toybox/ | grep -c "$name")"
    if [ "$rc" -eq 0 ] && [ -n "$name" ] && [ "$limits" = "1073741824 0 25 64 " ] && [ ! -e "$group" ] && ! grep -q 'no cgroup' "$work/ch09.err"; then
        pass chapter-09-cgroup-v2
    else
        fail chapter-09-cgroup-v2 "exit $rc, group '$group' had '$limits' (want '1073741824 0 25 64 '), after exit it $( [ -e "$group" ] && echo remains || echo is gone): $(said ch09)"
    fi
elif [ "$mode" = v2 ]; then
    skip chapter-09-cgroup-v2 "ch08-cgroups or ch09-cgroup-v2 not built beside toybox (cargo build --release --bins)"
fi

# --- toybox run: an OCI bundle (run.sh writes /bundle) with pids, memory and
# cpu limits in its cgroupsPath. On v2 the container's own cgroup2 mount shows
# them (cpu.shares 512 is cpu.weight 20); on both, the fork loop stops below
# 12 and the group is gone afterwards.
if [ -f /bundle/config.json ]; then
    out=$("$toybox" run --bundle /bundle oci-vm 2>"$work/oci.err")
    rc=$?
    limits=$(echo "$out" | sed -n 's/^limits //p')
    forked=$(echo "$out" | sed -n 's/^forked //p')
    count=${forked%% *}
    group=$(cg_root pids)/toybox-oci/oci-vm
    want_limits="12 268435456 20"
    [ "$mode" = v2 ] || want_limits=""
    if [ "$rc" -eq 0 ] && [ "$limits" = "$want_limits" ] && [ "${forked#* }" = EAGAIN ] &&
        [ "${count:-99}" -lt 12 ] && [ ! -e "$group" ]; then
        pass oci-run
    else
        fail oci-run "exit $rc, limits inside '$limits' (want '$want_limits'), forked '$forked', group $( [ -e "$group" ] && echo remains || echo is gone): $(cat "$work/oci.err")"
    fi
fi

# --- toybox create/start/delete: the same bundle, the process left waiting
# by create inside its group (pids.max 12 there), stopped after start with
# no one reaping it but this shell's init, and after delete neither the
# group nor the state directory is left. A second container, created and
# never started, goes with delete --force.
if [ -f /bundle/config.json ]; then
    oroot=$work/oci-root
    oci() { "$toybox" --root "$oroot" "$@"; }
    group=$(cg_root pids)/toybox-oci/oci-life
    sed 's/oci-vm/oci-life/' /bundle/config.json >"$work/oci-life.json"
    mkdir -p "$work/life" && cp "$work/oci-life.json" "$work/life/config.json"
    problems=
    oci create --bundle "$work/life" --pid-file "$work/life.pid" oci-life \
        </dev/null >"$work/life.out" 2>"$work/life.err" || problems="$problems create-failed"
    pid=$(cat "$work/life.pid" 2>/dev/null)
    oci state oci-life | grep -q '"status": "created"' || problems="$problems not-created"
    grep -qx "$pid" "$group/cgroup.procs" 2>/dev/null || problems="$problems pid-not-in-$group"
    [ "$(cat "$group/pids.max" 2>/dev/null)" = 12 ] || problems="$problems no-pids-limit"
    oci start oci-life || problems="$problems start-failed"
    for _ in $(seq 100); do oci state oci-life | grep -q '"status": "stopped"' && break; sleep 0.05; done
    oci state oci-life | grep -q '"status": "stopped"' || problems="$problems not-stopped"
    grep -q '^forked [0-9]* EAGAIN' "$work/life.out" || problems="$problems no-fork-limit"
    oci delete oci-life || problems="$problems delete-failed"
    [ ! -e "$group" ] || problems="$problems group-left"
    oci create --bundle "$work/life" oci-life2 </dev/null >/dev/null 2>>"$work/life.err" ||
        problems="$problems create2-failed"
    oci delete --force oci-life2 || problems="$problems force-failed"
    [ ! -e "$(cg_root pids)/toybox-oci/oci-life2" ] || problems="$problems group2-left"
    [ -z "$(ls -A "$oroot" 2>/dev/null)" ] || problems="$problems state-left:$(ls "$oroot" | tr '\n' ' ')"
    if [ -z "$problems" ]; then
        pass oci-lifecycle
    else
        fail oci-lifecycle "$problems: $(cat "$work/life.err")"
    fi
fi

# --- Network (chapter 18): --net bridge and -p on this kernel, whose only
# network is the guest's own (qemu -nic none): the bridge, the NAT tables and
# the ports are made here, and all of it must be gone after the last
# container. Debian builds the bridge, veth and nftables as modules: run.sh
# puts them and their load order in /lib/modules, and the host's nft in
# /usr/sbin.
net_skip=
if [ ! -f /lib/modules/order ]; then
    net_skip="no kernel modules in the initramfs (run.sh unpacks them from the kernel package)"
elif ! command -v nft >/dev/null; then
    net_skip="no nft in the initramfs (the host that built it has no nftables)"
else
    for module in $(cat /lib/modules/order); do
        if ! insmod "/lib/modules/$module.ko" 2>"$work/insmod.err"; then
            net_skip="insmod $module: $(cat "$work/insmod.err")"
            break
        fi
    done
fi
# The address (10.77.0.N) a container printed with `ip -o -4 addr show dev eth0`.
address_in() { sed -n 's/.* inet \(10\.77\.0\.[0-9]*\)\/24 .*/\1/p' "$work/$1.out" | head -n 1; }
# URL's page, tried for up to 5 s while the server starts. (timeout, not
# wget -T: busybox 1.35's wget crashes with -T.)
fetch() {
    tries=0
    while [ "$tries" -lt 50 ]; do
        timeout 2 wget -q -O - "$1" 2>/dev/null && return 0
        usleep 100000
        tries=$((tries + 1))
    done
    return 1
}
if [ -n "$net_skip" ]; then
    for check in net-inside net-publish net-between net-cleaned; do skip "$check" "$net_skip"; done
else
    forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
    ip link set lo up # the guest's own: -p answers on 127.0.0.1 too
    extra="--net bridge"
    tb netin /bin/sh -c 'ip -o -4 addr show dev eth0; ip route; ip -o link show dev lo
        ip addr add 10.77.0.250/24 dev eth0 2>/dev/null && echo changed eth0; true'
    addr=$(address_in netin)
    if [ "$rc" -eq 0 ] && [ -n "$addr" ] && [ "$addr" != 10.77.0.1 ] &&
        grep -q '^default via 10.77.0.1 dev eth0' "$work/netin.out" &&
        grep -q 'lo: <[^>]*UP' "$work/netin.out" && ! grep -q changed "$work/netin.out"; then
        pass net-inside
    else
        fail net-inside "exit $rc, container said '$(tr '\n' ';' <"$work/netin.out")', want a 10.77.0.N address, a default route via 10.77.0.1, lo up and eth0 unchangeable: $(said netin)"
    fi
    # A web server published on 8080, fetched from the guest on 127.0.0.1
    # and on the bridge's address, then from a second container: directly,
    # and through the published port on the host (hairpin NAT).
    extra="--net bridge -p 8080:80"
    start web /bin/sh -c 'ip -o -4 addr show dev eth0; echo web-page >/tmp/index.html
        httpd -p 80 -h /tmp; sleep 8'
    web=$(address_in web)
    local_page=$(fetch http://127.0.0.1:8080/index.html)
    bridge_page=$(fetch http://10.77.0.1:8080/index.html)
    if [ "$local_page" = web-page ] && [ "$bridge_page" = web-page ]; then
        pass net-publish
    else
        fail net-publish "127.0.0.1:8080 gave '$local_page', 10.77.0.1:8080 gave '$bridge_page', want web-page: $(said web)"
    fi
    extra="--net bridge"
    tb client /bin/sh -c "timeout 5 wget -q -O - http://$web/index.html; timeout 5 wget -q -O - http://10.77.0.1:8080/index.html"
    got=$(tr '\n' ';' <"$work/client.out")
    if [ "$rc" -eq 0 ] && [ -n "$web" ] && [ "$got" = "web-page;web-page;" ]; then
        pass net-between
    else
        fail net-between "exit $rc, fetching $web:80 and 10.77.0.1:8080 gave '$got', want web-page twice: $(said client)"
    fi
    wait "$bg"
    record web
    extra=
    # The kernel removes the veths with the namespaces, on a workqueue.
    tries=0
    while ip -o link | grep -q ': tb-' && [ "$tries" -lt 20 ]; do usleep 100000; tries=$((tries + 1)); done
    left=$(ip -o link | sed -n 's/^[0-9]*: \(toybox0\|tb-[^:@]*\).*/\1/p' | tr '\n' ' ')
    left="$left$(nft list tables | sed 's/$/; /' | tr -d '\n')"
    forward=$(cat /proc/sys/net/ipv4/ip_forward)
    [ "$forward" = "$forward_before" ] || left="${left}ip_forward $forward (was $forward_before); "
    [ -z "$(ls -A /run/toybox 2>/dev/null)" ] || left="${left}/run/toybox: $(ls -A /run/toybox | tr '\n' ' ')"
    if [ -z "$left" ]; then pass net-cleaned; else fail net-cleaned "left behind: $left"; fi
fi

# --- Every container's groups were removed when it exited.
runs=$(grep -c . "$work/containers")
left=$(awk 'NF > 2 { $1 = ""; printf "%s;", $0 }' "$work/containers")
if [ "$runs" -gt 0 ] && [ -z "$left" ]; then
    pass cgroups-removed
else
    fail cgroups-removed "of $runs named containers, left behind:${left:- (no container was named)}"
fi

# v2: the root lost no controller, and gained only those the parent group
# hands on to the containers (its own subtree_control), which stay on.
if [ "$mode" = v2 ]; then
    subtree_after=$(cat /sys/fs/cgroup/cgroup.subtree_control)
    parent=$(cat /sys/fs/cgroup/toybox/cgroup.subtree_control 2>/dev/null)
    lost= gained=
    for c in $subtree_before; do has_word "$c" "$subtree_after" || lost="$lost $c"; done
    for c in $subtree_after; do
        has_word "$c" "$subtree_before" || has_word "$c" "$parent" || gained="$gained $c"
    done
    if [ -n "$parent" ] && [ -z "$lost$gained" ]; then
        pass root-subtree-control
    else
        fail root-subtree-control "root was '$subtree_before', is '$subtree_after'; toybox/ enables '$parent'; lost '$lost', gained beyond the parent's '$gained'"
    fi
fi

# --- No warning that cgroup controllers are missing: every limit applied.
warning=$(grep -h '^toybox:' "$work"/*.err | grep -i -E 'cgroup|controller' | head -n 1)
if [ -z "$warning" ]; then pass no-cgroup-warning; else fail no-cgroup-warning "$warning"; fi
