//! The container's network: its namespace has `lo` up; with `--net bridge`
//! it also has an `eth0`, one end of a veth pair whose other end is plugged
//! into the host bridge `toybox0`, an address from a lease under
//! /run/toybox/net, a default route via the bridge, and outbound NAT.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns};
use nix::unistd::Pid;

use crate::error::{EXIT_TOYBOX_FAILED, Result, Stage, fail};
use crate::netlink::{self, Socket};

/// `--net`: what the container's network namespace holds.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Only `lo`, up: 127.0.0.1 works, nothing else is reachable
    None,
    /// `eth0` on the host bridge toybox0, a default route, outbound NAT
    Bridge,
}

/// The child's part, before it enters its user namespace.
pub fn inside(mode: Mode) -> Result<()> {
    match mode {
        Mode::None | Mode::Bridge => loopback_up(),
    }
}

/// A new network namespace has `lo`, down (network_namespaces(7)), so even
/// 127.0.0.1 is unreachable; docker's `--net none` has it up. The child does
/// it before it enters its user namespace: the network namespace belongs to
/// the host's user namespace, whose CAP_NET_ADMIN the child still has. Two
/// ioctls on any AF_INET socket (netdevice(7)), no `ip` to exec: 70-100 µs
/// measured, against ~2.5 ms for one `ip` command.
pub fn loopback_up() -> Result<()> {
    // SAFETY: socket(2) takes numbers; a valid descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last()).stage("network", "socket(AF_INET, SOCK_DGRAM)");
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    for (call, name) in [(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS"), (libc::SIOCSIFFLAGS, "SIOCSIFFLAGS")]
    {
        if call == libc::SIOCSIFFLAGS {
            // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
            unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        }
        // SAFETY: request is a valid ifreq naming lo, alive for the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), call as _, &mut request) } != 0 {
            return Err(Errno::last()).stage("network", format!("ioctl({name}, lo)"));
        }
    }
    Ok(())
}

/// The bridge every `--net bridge` container is plugged into, and the
/// address of its veth end inside.
pub const BRIDGE: &str = "toybox0";
const PEER: &str = "eth0";
const STATE_DIR: &str = "/run/toybox";
/// Leases, one file per address, and what the first container changed on
/// the host: all on tmpfs, gone at reboot with the kernel objects they name.
const NET_DIR: &str = "/run/toybox/net";
/// The subnet the bridge was made with, for the containers that join it.
const SUBNET_FILE: &str = "/run/toybox/net/subnet";
/// Present only if toybox switched ip_forward from 0 to 1, so that the last
/// container puts it back as it found it.
const FORWARD_FILE: &str = "/run/toybox/net/ip_forward";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// Away from docker (172.17/16…), podman (10.88/16), libvirt (192.168.122/24)
/// and home networks (192.168/16).
pub const DEFAULT_SUBNET: &str = "10.77.0.0/24";

/// `--subnet`: an IPv4 network, host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Subnet, String> {
        let bad = || format!("{text:?} is not an IPv4 subnet such as {DEFAULT_SUBNET}");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=29).contains(&prefix) {
            return Err(format!("{text}: the prefix must be 8..29"));
        }
        let subnet = Subnet { base: u32::from(address), prefix };
        if subnet.base & !subnet.mask() != 0 {
            return Err(format!("{text}: host bits are set"));
        }
        Ok(subnet)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }
    fn host(&self, number: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + number)
    }
    /// The bridge's own address, the containers' gateway.
    fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }
    /// Host numbers a container may get: not the network (0), the bridge
    /// (1) or the broadcast address (the last).
    fn hosts(&self) -> std::ops::Range<u32> {
        2..(1u32 << (32 - self.prefix)) - 1
    }
    fn overlaps(&self, destination: Ipv4Addr, prefix: u8) -> bool {
        let shorter = Subnet { base: 0, prefix: self.prefix.min(prefix).max(1) }.mask();
        prefix > 0 && (self.base & shorter) == (u32::from(destination) & shorter)
    }
}

/// `-p [IP:]HOSTPORT:CTRPORT[/tcp|/udp]`, docker's syntax: a port of the
/// container published on the host, on every address or on IP only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    ip: Option<Ipv4Addr>,
    host: u16,
    container: u16,
    proto: &'static str,
}

impl FromStr for Port {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Port, String> {
        let bad = || format!("{text:?} is not [IP:]HOSTPORT:CTRPORT[/tcp|/udp]");
        let (ports, proto) = match text.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, "tcp"),
            Some((ports, "udp")) => (ports, "udp"),
            Some(_) => return Err(bad()),
            None => (text, "tcp"),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, container) = match parts[..] {
            [host, container] => (None, host, container),
            [ip, host, container] => (Some(ip.parse().map_err(|_| bad())?), host, container),
            _ => return Err(bad()),
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad);
        Ok(Port { ip, host: port(host)?, container: port(container)?, proto })
    }
}

impl std::fmt::Display for Port {
    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let ip = self.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(f, "{ip}:{}->{}/{}", self.host, self.container, self.proto)
    }
}

impl Port {
    /// Two publications clash on the same protocol and host port unless
    /// both name addresses, and different ones.
    fn clashes(&self, other: &Port) -> bool {
        self.proto == other.proto
            && self.host == other.host
            && (self.ip.is_none() || other.ip.is_none() || self.ip == other.ip)
    }

    /// A lease's `port tcp 0.0.0.0 8080 80` line.
    fn line(&self) -> String {
        let ip = self.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        format!("port {} {ip} {} {}\n", self.proto, self.host, self.container)
    }

    fn from_line(line: &str) -> Option<Port> {
        let fields: Vec<&str> = line.strip_prefix("port ")?.split_whitespace().collect();
        let [proto, ip, host, container] = fields[..] else { return None };
        let ip: Ipv4Addr = ip.parse().ok()?;
        Some(Port {
            ip: Some(ip).filter(|ip| !ip.is_unspecified()),
            host: host.parse().ok()?,
            container: container.parse().ok()?,
            proto: if proto == "udp" { "udp" } else { "tcp" },
        })
    }
}

/// What toybox added to the host for one container; dropping it removes it,
/// and the bridge, NAT table and ip_forward with the last container.
pub struct Network {
    lease: Option<Lease>,
}

struct Lease {
    file: PathBuf,
    subnet: Subnet,
    number: u32,
    mtu: u32,
    name: String,
    ports: Vec<Port>,
    nft: PathBuf,
}

impl Lease {
    fn veth(&self) -> String {
        veth_name(self.number)
    }
    fn address(&self) -> Ipv4Addr {
        self.subnet.host(self.number)
    }
}

/// The host end is named by the host number: short (IFNAMSIZ is 16), unique
/// while the lease is, and `ip link` tells which container it is.
fn veth_name(number: u32) -> String {
    format!("tb-{number}")
}

/// Before clone: with `--net bridge`, an address (a lease no running
/// container holds), and the first container's bridge, NAT table and
/// ip_forward. Everything is checked before it is made: no nft, or a subnet
/// a host route already covers, fails with nothing changed.
pub fn prepare(mode: Mode, subnet: Subnet, ports: &[Port], name: &str) -> Result<Network> {
    if mode == Mode::None {
        if let Some(port) = ports.first() {
            let what = format!("-p {port} needs --net bridge");
            return Err(fail("network", what, EXIT_TOYBOX_FAILED));
        }
        return Ok(Network { lease: None });
    }
    let nft = find_nft()?;
    let _lock = Lock::take()?;
    reclaim_locked();
    check_ports_free(ports)?;
    let first = leases().is_empty();
    if first {
        check_subnet_free(subnet)?;
    } else if let Ok(text) = fs::read_to_string(SUBNET_FILE)
        && text.trim() != subnet.to_string()
    {
        let what = format!("{BRIDGE} is on {}, not {subnet}: one subnet at a time", text.trim());
        return Err(fail("network", what, EXIT_TOYBOX_FAILED));
    }
    let mtu = uplink_mtu();
    fs::create_dir_all(NET_DIR).stage("network", format!("mkdir {NET_DIR}"))?;
    let mut network = Network { lease: None };
    let mut lease = take_lease(subnet, name, ports, mtu)?;
    lease.nft = nft.clone();
    let address = lease.address();
    network.lease = Some(lease);
    write_etc_files(name, address)?;
    if first {
        make_bridge(subnet, &nft)?; // on error, `network` drops and undoes it
    }
    Ok(network)
}

/// After clone, before the uid map lets the child go on: the veth pair,
/// `eth0` born in the child's network namespace, and its address, route and
/// sysctls, set from inside that namespace.
pub fn attach(network: &Network, pid: Pid) -> Result<()> {
    let Some(lease) = &network.lease else {
        return Ok(());
    };
    let _lock = Lock::take()?;
    let mut socket = Socket::open().stage("network", "socket(AF_NETLINK, NETLINK_ROUTE)")?;
    let bridge = link_index(BRIDGE)?;
    let veth = lease.veth();
    let what = format!("ip link add {veth} master {BRIDGE} type veth peer {PEER} netns {pid}");
    let mut added = netlink::add_veth(&mut socket, &veth, bridge, lease.mtu, PEER, pid.as_raw());
    if added.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EEXIST)) {
        // The lease is ours, so a tb-N still there belongs to a container
        // that has exited and whose namespace the kernel is still tearing
        // down (see Drop): delete it, so its eth0 cannot answer for the
        // address too, and try again.
        let _ = netlink::delete_link(&mut socket, &veth);
        added = netlink::add_veth(&mut socket, &veth, bridge, lease.mtu, PEER, pid.as_raw());
    }
    added.stage("network", what)?;
    netlink::set_up(&mut socket, link_index(&veth)?)
        .stage("network", format!("ip link set {veth} up"))?;
    in_namespace(pid, || configure_inside(lease))?;
    if !lease.ports.is_empty() {
        run_nft(&lease.nft, &container_table(&lease.name, lease.address(), &lease.ports))?;
    }
    Ok(())
}

/// setns(2) into the container's network namespace and back: a netlink
/// socket, and /proc/sys/net, belong to the namespace they are opened in.
/// toybox has one thread here, so the whole process moves, and only for
/// this call (with threads, only the caller would: CNI's pkg/ns README).
fn in_namespace(pid: Pid, step: impl FnOnce() -> Result<()>) -> Result<()> {
    let own = fs::File::open("/proc/self/ns/net").stage("network", "open /proc/self/ns/net")?;
    let path = format!("/proc/{pid}/ns/net");
    let theirs = fs::File::open(&path).stage("network", format!("open {path}"))?;
    setns(&theirs, CloneFlags::CLONE_NEWNET).stage("network", format!("setns({path})"))?;
    let result = step();
    setns(&own, CloneFlags::CLONE_NEWNET).stage("network", "setns back to the host's")?;
    result
}

/// `ip addr add`, `ip link set eth0 up`, `ip route add default`, and the
/// sysctls docker sets in each container's namespace (moby#41030). The
/// namespace belongs to the host's user namespace, so root inside has no
/// CAP_NET_BIND_SERVICE or CAP_NET_RAW over it: without these a web server
/// cannot bind :80 and a ping socket is refused.
fn configure_inside(lease: &Lease) -> Result<()> {
    let mut socket = Socket::open().stage("network", "socket(AF_NETLINK) in the container")?;
    let eth0 = link_index(PEER)?;
    let (address, prefix) = (lease.address(), lease.subnet.prefix);
    netlink::add_address(&mut socket, eth0, address, prefix)
        .stage("network", format!("ip addr add {address}/{prefix} dev {PEER}"))?;
    netlink::set_up(&mut socket, eth0).stage("network", format!("ip link set {PEER} up"))?;
    let gateway = lease.subnet.gateway();
    netlink::add_default_route(&mut socket, eth0, gateway)
        .stage("network", format!("ip route add default via {gateway}"))?;
    for (file, value) in [
        ("ipv4/ip_unprivileged_port_start", "0"),
        ("ipv4/ping_group_range", "0 2147483647"),
        // A gratuitous ARP when eth0 comes up: an address reused from a
        // container that just exited is relearned at once.
        ("ipv4/conf/eth0/arp_notify", "1"),
    ] {
        let path = format!("/proc/sys/net/{file}");
        fs::write(&path, value).stage("network", format!("write {path}"))?;
    }
    Ok(())
}

impl Drop for Network {
    /// The container is reaped, and with its last process its network
    /// namespace goes: the kernel destroys the veth devices in it, and with
    /// eth0 its peer tb-N on the host (network_namespaces(7)), on a
    /// workqueue, after toybox has exited. Deleting tb-N here instead would
    /// wait for the same teardown (RCU grace periods, 15-40 ms measured),
    /// ten times the rest of the network's cost; `attach` deletes a tb-N
    /// still there when its address is handed out again. The lease, the
    /// port table, and with the last container the bridge, go now.
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let _lock = Lock::take();
        release(None, &lease.file);
        remove_etc_files(&lease.name);
        let ports = match lease.ports.is_empty() {
            true => String::new(),
            false => delete_table(&table_name(&lease.name)),
        };
        if leases().is_empty() {
            remove_bridge(&ports); // one nft run: each deletion waits for RCU
        } else if !ports.is_empty()
            && let Err(e) = run_nft(&lease.nft, &ports)
        {
            eprintln!("toybox: cleanup: {e}");
        }
    }
}

/// The files the container's /etc/hosts and /etc/resolv.conf show:
/// /run/toybox/net/NAME/, written before clone, while the child can still
/// see the host's /run to bind them.
fn etc_dir(name: &str) -> PathBuf {
    Path::new(NET_DIR).join(name)
}

/// `hosts`: localhost and the container's own name and address, as docker
/// writes it. `resolv.conf`: the host's, without nameservers on loopback
/// (systemd-resolved's 127.0.0.53 is the host's own lo, unreachable from the
/// container's); if none is left, a comment says so, and a warning, rather
/// than docker's silent fallback to 8.8.8.8, which hangs on a closed network.
fn write_etc_files(name: &str, address: Ipv4Addr) -> Result<()> {
    let dir = etc_dir(name);
    fs::create_dir_all(&dir).stage("network", format!("mkdir {}", dir.display()))?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{name}\n"
    );
    let path = dir.join("hosts");
    fs::write(&path, hosts).stage("network", format!("write {}", path.display()))?;
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let on_loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|a| a.is_loopback())
    };
    let mut resolv: String =
        host.lines().filter(|l| !on_loopback(l)).map(|l| format!("{l}\n")).collect();
    if !resolv.lines().any(|l| l.trim_start().starts_with("nameserver")) {
        let dropped: Vec<&str> = host.lines().filter(|l| on_loopback(l)).collect();
        if !dropped.is_empty() {
            eprintln!(
                "toybox: network: warning: the host's nameservers are on loopback ({}): \
                 the container gets none",
                dropped.join(", ")
            );
        }
        resolv += "# toybox: the host has no nameserver the container can reach\n";
    }
    let path = dir.join("resolv.conf");
    fs::write(&path, resolv).stage("network", format!("write {}", path.display()))
}

fn remove_etc_files(name: &str) {
    let dir = etc_dir(name);
    if let Err(e) = fs::remove_dir_all(&dir)
        && e.kind() != io::ErrorKind::NotFound
    {
        eprintln!("toybox: cleanup: rm -r {}: {}", dir.display(), describe(&e));
    }
}

/// In the child, between binding the rootfs and pivot_root, while the
/// host's /run is still in view: each file bound over the rootfs's own, if
/// the rootfs has one (toybox creates nothing in a rootfs), then made
/// read-only (a bind mount takes its flags only on a remount, mount(2)).
/// A symlink there is not followed: it could lead anywhere.
pub fn bind_etc_files(rootfs: &Path, name: &str) -> Result<()> {
    let dir = etc_dir(name);
    if !dir.exists() {
        return Ok(()); // --net none
    }
    let etc = rootfs.join("etc");
    if !fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let none: Option<&str> = None;
    for file in ["hosts", "resolv.conf"] {
        let target = etc.join(file);
        if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let source = dir.join(file);
        let what = format!("bind {} on {}", source.display(), target.display());
        mount(Some(&source), &target, none, MsFlags::MS_BIND, none).stage("mounts", what)?;
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        let what = format!("remount {} read-only", target.display());
        mount(none, &target, none, flags, none).stage("mounts", what)?;
    }
    Ok(())
}

/// Remove a lease and, for a container whose toybox died, its host veth.
fn release(veth: Option<&str>, lease: &Path) {
    if let Some(veth) = veth
        && let Ok(mut socket) = Socket::open()
    {
        match netlink::delete_link(&mut socket, veth) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                eprintln!("toybox: cleanup: ip link del {veth}: {}", describe(&e))
            }
            _ => {}
        }
    }
    if let Err(e) = fs::remove_file(lease)
        && e.kind() != io::ErrorKind::NotFound
    {
        eprintln!("toybox: cleanup: rm {}: {}", lease.display(), describe(&e));
    }
}

fn describe(e: &io::Error) -> String {
    crate::error::Cause::describe(e)
}

/// flock(2) on /run/toybox itself orders every change to the network state
/// between toybox processes: no lock file to leave behind, and the kernel
/// lets go when a holder dies, even by SIGKILL. Released with LOCK_UN, not
/// by close: a clone inherits the descriptor, and the lock lives as long as
/// any copy of it.
struct Lock(OwnedFd);

impl Lock {
    fn take() -> Result<Lock> {
        fs::create_dir_all(STATE_DIR).stage("network", format!("mkdir {STATE_DIR}"))?;
        let dir = fs::File::open(STATE_DIR).stage("network", format!("open {STATE_DIR}"))?;
        let fd = OwnedFd::from(dir);
        // SAFETY: flock takes a descriptor we own and a number.
        while unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
            if Errno::last() != Errno::EINTR {
                return Err(Errno::last()).stage("network", format!("flock {STATE_DIR}"));
            }
        }
        Ok(Lock(fd))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as in take.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The lease files: one per address a container holds.
fn leases() -> Vec<PathBuf> {
    let entries = fs::read_dir(NET_DIR).into_iter().flatten().flatten();
    let paths = entries.map(|e| e.path());
    paths
        .filter(|p| p.file_name().and_then(|n| n.to_str()?.parse::<Ipv4Addr>().ok()).is_some())
        .collect()
}

/// The number of the address handed out last: the next container gets the
/// next free one, so an address comes back only after the whole subnet has
/// gone round (CNI's host-local does the same). By then the namespace of the
/// container that had it, and its tb-N, are long gone; handed out again at
/// once, tb-N would still be there while the kernel tears it down.
const LAST_FILE: &str = "/run/toybox/net/last";

/// The next free address after the last one handed out, taken with
/// O_EXCL. The file names the container and the toybox process that holds it (pid and start time: the container's
/// own pid does not exist yet), so a lease left by a killed toybox is found.
fn take_lease(subnet: Subnet, name: &str, ports: &[Port], mtu: u32) -> Result<Lease> {
    let me = Pid::this();
    let start = crate::exec::start_time(me).unwrap_or(0);
    let hosts = subnet.hosts();
    let last: u32 =
        fs::read_to_string(LAST_FILE).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let count = hosts.end - hosts.start;
    let after = last.clamp(hosts.start - 1, hosts.end - 1) + 1 - hosts.start;
    for number in (0..count).map(|i| hosts.start + (after + i) % count) {
        let file = Path::new(NET_DIR).join(subnet.host(number).to_string());
        let created = fs::OpenOptions::new().write(true).create_new(true).open(&file);
        match created {
            Ok(mut lease) => {
                let mut text = format!("{name} {me} {start}\n");
                text.extend(ports.iter().map(Port::line));
                lease
                    .write_all(text.as_bytes())
                    .stage("network", format!("write {}", file.display()))?;
                let _ = fs::write(LAST_FILE, number.to_string()); // only a hint
                let (name, ports, nft) = (name.to_string(), ports.to_vec(), PathBuf::new());
                return Ok(Lease { file, subnet, number, mtu, name, ports, nft });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).stage("network", format!("create {}", file.display())),
        }
    }
    Err(fail("network", format!("no free address left in {subnet}"), EXIT_TOYBOX_FAILED))
}

/// A subnet a host route already covers would make two networks answer for
/// the same addresses: refuse rather than shadow it (`ip route` shows it).
fn check_subnet_free(subnet: Subnet) -> Result<()> {
    let mut socket = Socket::open().stage("network", "socket(AF_NETLINK, NETLINK_ROUTE)")?;
    let routes = netlink::routes(&mut socket).stage("network", "ip route show")?;
    if let Some(route) = routes.iter().find(|r| subnet.overlaps(r.destination, r.prefix)) {
        let device = index_name(route.device).unwrap_or_else(|| route.device.to_string());
        let what = format!(
            "{subnet} overlaps route {}/{} dev {device} (choose another with --subnet)",
            route.destination, route.prefix
        );
        return Err(fail("network", what, EXIT_TOYBOX_FAILED));
    }
    Ok(())
}

/// The MTU of the interface the default route leaves by: a veth left at
/// 1500 behind a 1400 uplink makes NATed TCP depend on PMTU discovery.
fn uplink_mtu() -> u32 {
    let Ok(mut socket) = Socket::open() else { return 1500 };
    let routes = netlink::routes(&mut socket).unwrap_or_default();
    let uplink = routes.iter().find(|r| r.prefix == 0).and_then(|r| index_name(r.device));
    uplink.and_then(|name| interface_mtu(&name)).unwrap_or(1500)
}

/// The bridge with the subnet's first address, the containers' gateway, and
/// the shared NAT table; then ip_forward, last, so that the table's guard
/// against forwarding for others is in place before forwarding is on.
fn make_bridge(subnet: Subnet, nft: &Path) -> Result<()> {
    fs::write(SUBNET_FILE, subnet.to_string()).stage("network", format!("write {SUBNET_FILE}"))?;
    let mut socket = Socket::open().stage("network", "socket(AF_NETLINK, NETLINK_ROUTE)")?;
    netlink::add_bridge(&mut socket, BRIDGE)
        .stage("network", format!("ip link add {BRIDGE} type bridge"))?;
    let index = link_index(BRIDGE)?;
    let gateway = subnet.gateway();
    netlink::add_address(&mut socket, index, gateway, subnet.prefix)
        .stage("network", format!("ip addr add {gateway}/{} dev {BRIDGE}", subnet.prefix))?;
    netlink::set_up(&mut socket, index).stage("network", format!("ip link set {BRIDGE} up"))?;
    let localnet = format!("/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet");
    fs::write(&localnet, "1").stage("network", format!("write 1 to {localnet}"))?;
    let forwarding =
        fs::read_to_string(IP_FORWARD).stage("network", format!("read {IP_FORWARD}"))?;
    let switch_on = forwarding.trim() == "0";
    run_nft(nft, &shared_table(subnet, switch_on))?;
    if switch_on {
        fs::write(FORWARD_FILE, "").stage("network", format!("write {FORWARD_FILE}"))?;
        fs::write(IP_FORWARD, "1").stage("network", format!("write 1 to {IP_FORWARD}"))?;
    }
    Ok(())
}

/// The seed's `iptables -t nat -A POSTROUTING -s SUBNET ! -o br0 -j
/// MASQUERADE`, in nft, in a table of toybox's own (one `delete table`
/// undoes it). `add` then `flush` first make it idempotent: a table left by
/// a killed toybox is emptied and filled again, not doubled (a `delete`
/// would do it too, but a deletion waits for RCU: ~25 ms against ~3). When toybox turns
/// ip_forward on, the host would route for everyone; the forward chain
/// limits that to traffic to or from the bridge, without touching any
/// other tool's chains or policies.
///
/// For published ports: connections from the host itself (127.0.0.1 too)
/// and from a container to a host address (hairpin) are masqueraded, so the
/// container's answer comes back through the host and is un-NATed there.
/// 127.0.0.1 may only leave by toybox0 because the bridge has
/// route_localnet=1; that would also let a neighbour on the bridge send to
/// the host's 127.0.0.1 (CVE-2020-8558), so the guard drops such packets at
/// raw priority, before conntrack turns the replies to 127.0.0.1 back into
/// that address.
fn shared_table(subnet: Subnet, guard_forwarding: bool) -> String {
    let mut text = format!(
        "add table ip toybox\nflush table ip toybox\ntable ip toybox {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {subnet} oifname != \"{BRIDGE}\" masquerade\n\
         \t\toifname \"{BRIDGE}\" fib saddr type local masquerade\n\
         \t\toifname \"{BRIDGE}\" ip saddr {subnet} ct status dnat masquerade\n\
         \t}}\n\
         \tchain prerouting-guard {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname \"{BRIDGE}\" ip daddr 127.0.0.0/8 drop\n\
         \t}}\n"
    );
    if guard_forwarding {
        text += &format!(
            "\tchain forward {{\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tiifname != \"{BRIDGE}\" oifname != \"{BRIDGE}\" drop\n\
             \t}}\n"
        );
    }
    text + "}\n"
}

/// After the last container: the NAT table, the bridge, ip_forward as it
/// was, and the state directory.
fn remove_bridge(also: &str) {
    if let Ok(nft) = find_nft()
        && let Err(e) = run_nft(&nft, &format!("{also}{}", delete_table("toybox")))
    {
        eprintln!("toybox: cleanup: {e}");
    }
    if let Ok(mut socket) = Socket::open() {
        match netlink::delete_link(&mut socket, BRIDGE) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
                eprintln!("toybox: cleanup: ip link del {BRIDGE}: {}", describe(&e))
            }
            _ => {}
        }
    }
    if Path::new(FORWARD_FILE).exists() {
        if let Err(e) = fs::write(IP_FORWARD, "0") {
            eprintln!("toybox: cleanup: write 0 to {IP_FORWARD}: {}", describe(&e));
        }
        let _ = fs::remove_file(FORWARD_FILE);
    }
    let _ = fs::remove_file(SUBNET_FILE);
    let _ = fs::remove_file(LAST_FILE);
    let _ = fs::remove_dir(NET_DIR);
}

/// What a killed toybox left: every lease whose toybox is gone loses its
/// veth (the kernel deletes it with the namespace, but asynchronously), and
/// its file; with no lease left, the bridge and the rest go. Every run and
/// `toybox ps` call it; without a /run/toybox/net it costs one failed open.
pub fn reclaim() {
    if !Path::new(NET_DIR).exists() {
        return;
    }
    if let Ok(_lock) = Lock::take() {
        reclaim_locked();
    }
}

fn reclaim_locked() {
    if !Path::new(NET_DIR).exists() {
        return;
    }
    let subnet = fs::read_to_string(SUBNET_FILE).ok().and_then(|s| s.trim().parse::<Subnet>().ok());
    for file in leases() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let holder = match fields[..3.min(fields.len())] {
            [_, pid, start] => pid.parse().ok().zip(start.parse::<u64>().ok()),
            _ => None,
        };
        let alive = holder
            .is_some_and(|(pid, start)| crate::exec::start_time(Pid::from_raw(pid)) == Some(start));
        let number = file.file_name().and_then(|n| n.to_str()?.parse::<Ipv4Addr>().ok());
        if !alive && let Some(address) = number {
            // Its DNAT would send the port to whoever gets the address next.
            if text.lines().any(|l| l.starts_with("port "))
                && let (Some(name), Ok(nft)) = (fields.first(), find_nft())
                && let Err(e) = run_nft(&nft, &delete_table(&table_name(name)))
            {
                eprintln!("toybox: cleanup: {e}");
            }
            // A name is a file name toybox wrote, never a path.
            if let Some(name) = fields.first().filter(|n| !n.contains('/') && !n.starts_with('.')) {
                remove_etc_files(name);
            }
            let mask = subnet.map_or(0xffff_ff00, |s| s.mask());
            release(Some(&veth_name(u32::from(address) & !mask)), &file);
        }
    }
    if leases().is_empty() {
        remove_bridge("");
    }
}

fn table_name(container: &str) -> String {
    format!("toybox-{container}")
}

/// `add` first, so that deleting a table that is not there succeeds (nft
/// 1.0.6 has no `destroy`).
fn delete_table(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// A container's published ports: DNAT in a table of its own, deleted in
/// one command. From outside (prerouting) a port on every address means
/// every local address but 127/8, which remote hosts must not reach; from
/// the host itself (output) 127.0.0.1 too, as `docker run -p` allows. A
/// port on 127.0.0.1 only is published in output only.
fn container_table(name: &str, address: Ipv4Addr, ports: &[Port]) -> String {
    let table = table_name(name);
    let (mut outside, mut local) = (String::new(), String::new());
    for port in ports {
        let (proto, host, to) = (port.proto, port.host, format!("{address}:{}", port.container));
        let rule = |matches: &str| format!("\t\t{matches}{proto} dport {host} dnat to {to}\n");
        match port.ip {
            None => {
                outside += &rule("fib daddr type local ip daddr != 127.0.0.0/8 ");
                local += &rule("fib daddr type local ");
            }
            Some(ip) if ip.is_loopback() => local += &rule(&format!("ip daddr {ip} ")),
            Some(ip) => {
                outside += &rule(&format!("ip daddr {ip} "));
                local += &rule(&format!("ip daddr {ip} "));
            }
        }
    }
    format!(
        "add table ip {table}\nflush table ip {table}\ntable ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {outside}\t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {local}\t}}\n}}\n"
    )
}

/// A host port another container publishes is refused, naming it; so is
/// one a host program listens on, which the DNAT would silently shadow:
/// bind(2) finds it (SO_REUSEADDR, so a connection in TIME_WAIT does not).
fn check_ports_free(ports: &[Port]) -> Result<()> {
    let taken = |port: &Port, by: &str| {
        let what = format!("port {}/{} is published by {by}", port.host, port.proto);
        Err(fail("network", what, EXIT_TOYBOX_FAILED))
    };
    for (at, port) in ports.iter().enumerate() {
        if ports[..at].iter().any(|other| other.clashes(port)) {
            return taken(port, "another -p of this command");
        }
        for file in leases() {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let holder = text.split_whitespace().next().unwrap_or("?");
            if text.lines().filter_map(Port::from_line).any(|other| other.clashes(port)) {
                return taken(port, holder);
            }
        }
        if let Err(e) = try_bind(port) {
            let what = format!("port {}/{} is in use on the host", port.host, port.proto);
            return Err(e).stage("network", what);
        }
    }
    Ok(())
}

fn try_bind(port: &Port) -> io::Result<()> {
    let ip = port.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let address = std::net::SocketAddrV4::new(ip, port.host);
    // std sets SO_REUSEADDR on a listener; both sockets close at once.
    match port.proto {
        "udp" => std::net::UdpSocket::bind(address).map(drop),
        _ => std::net::TcpListener::bind(address).map(drop),
    }
}

/// For `toybox ps`: the address and published ports of a container, from
/// its lease.
pub fn describe_container(name: &str) -> (String, String) {
    for file in leases() {
        let text = fs::read_to_string(&file).unwrap_or_default();
        if text.split_whitespace().next() == Some(name) {
            let ports: Vec<String> =
                text.lines().filter_map(Port::from_line).map(|p| p.to_string()).collect();
            let address = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            return (address, ports.join(","));
        }
    }
    (String::new(), String::new())
}

/// nft reads the whole ruleset and commits it as one transaction: all of it
/// or nothing.
fn run_nft(nft: &Path, ruleset: &str) -> Result<()> {
    let child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.stage("network", format!("run {} -f -", nft.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).stage("network", "write to nft -f -")?;
    }
    let output = child.wait_with_output().stage("network", "wait for nft -f -")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed");
        return Err(fail("network", format!("nft -f -: {first}"), EXIT_TOYBOX_FAILED));
    }
    Ok(())
}

/// NAT and published ports are nftables rules, set by the `nft` binary as
/// podman's netavark does: checked first, so that without it nothing is made.
fn find_nft() -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join("nft");
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
    }
    Err(fail("network", "nft not found in PATH (install nftables)", EXIT_TOYBOX_FAILED))
}

/// if_nametoindex(3), in the caller's current network namespace.
fn link_index(name: &str) -> Result<i32> {
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: cname is a valid C string for the call.
    match unsafe { libc::if_nametoindex(cname.as_ptr()) } {
        0 => Err(Errno::last()).stage("network", format!("find link {name}")),
        index => Ok(index as i32),
    }
}

fn index_name(index: i32) -> Option<String> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname needs.
    let found = unsafe { libc::if_indextoname(index as u32, name.as_mut_ptr()) };
    if found.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into the buffer.
    Some(unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned())
}

/// SIOCGIFMTU (netdevice(7)): by ioctl, not /sys/class/net, whose view is
/// the namespace sysfs was mounted in, not the caller's.
fn interface_mtu(name: &str) -> Option<u32> {
    // SAFETY: as in loopback_up.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is new and ours.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes().take(libc::IF_NAMESIZE - 1)) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: request is a valid ifreq naming the interface.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut request) } != 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the mtu member.
    Some(unsafe { request.ifr_ifru.ifru_mtu } as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_overlap() {
        let subnet: Subnet = DEFAULT_SUBNET.parse().expect("default subnet");
        assert_eq!(subnet.gateway(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(subnet.hosts(), 2..255);
        assert!(subnet.overlaps(Ipv4Addr::new(10, 0, 0, 0), 8));
        assert!(subnet.overlaps(Ipv4Addr::new(10, 77, 0, 8), 29));
        assert!(!subnet.overlaps(Ipv4Addr::new(10, 78, 0, 0), 24));
        assert!(!subnet.overlaps(Ipv4Addr::UNSPECIFIED, 0), "the default route");
        assert!("10.77.0.1/24".parse::<Subnet>().is_err(), "host bits");
        assert!("10.77.0.0/31".parse::<Subnet>().is_err());
    }

    #[test]
    fn ports_parse_and_clash() {
        let port: Port = "8080:80".parse().expect("8080:80");
        assert_eq!(port.to_string(), "0.0.0.0:8080->80/tcp");
        let local: Port = "127.0.0.1:8080:80/tcp".parse().expect("with an address");
        let udp: Port = "8080:53/udp".parse().expect("udp");
        assert!(port.clashes(&local) && !port.clashes(&udp));
        assert!(!local.clashes(&"10.0.0.1:8080:80".parse().expect("another address")));
        assert_eq!(Port::from_line(&local.line()), Some(local));
        for bad in ["80", "0:80", "8080:80/sctp", "x:1:2", "1:2:3:4", "70000:80"] {
            assert!(bad.parse::<Port>().is_err(), "{bad}");
        }
    }

    #[test]
    fn container_table_publishes_loopback_only_locally() {
        let ports = ["8080:80".parse().expect("all"), "127.0.0.1:8081:80".parse().expect("lo")];
        let text = container_table("x", Ipv4Addr::new(10, 77, 0, 5), &ports);
        let prerouting =
            &text[text.find("prerouting").unwrap_or(0)..text.find("output").unwrap_or(0)];
        assert!(prerouting.contains("ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 10.77.0.5:80"));
        assert!(!prerouting.contains("8081"));
        assert!(text.contains("ip daddr 127.0.0.1 tcp dport 8081 dnat to 10.77.0.5:80"));
    }

    #[test]
    fn shared_table_masquerades_the_subnet() {
        let subnet: Subnet = DEFAULT_SUBNET.parse().expect("default subnet");
        let text = shared_table(subnet, false);
        assert!(text.contains("ip saddr 10.77.0.0/24 oifname != \"toybox0\" masquerade"));
        assert!(!text.contains("forward"));
        assert!(shared_table(subnet, true).contains("hook forward"));
    }
}
