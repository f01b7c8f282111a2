//! rtnetlink by hand: what `ip link`, `ip addr` and `ip route` send the
//! kernel (rtnetlink(7), netlink(7)). A message is a `nlmsghdr`, a fixed
//! header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`) and attributes: a 4-byte
//! `rtattr` (length, type) then the value, each padded to 4 bytes; an
//! attribute can hold attributes (`IFLA_LINKINFO` → `IFLA_INFO_DATA` →
//! `VETH_INFO_PEER`). Every request asks for an ACK, so each returns the
//! kernel's errno. A socket talks to the network namespace it was made in.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct rtmsg` (linux/rtnetlink.h), which the libc crate lacks.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RtMsg {
    pub family: u8,
    pub dst_len: u8,
    pub src_len: u8,
    pub tos: u8,
    pub table: u8,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    pub flags: u32,
}

/// linux/veth.h: the peer's `ifinfomsg` and attributes, nested in INFO_DATA.
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// One request being built.
pub struct Message {
    bytes: Vec<u8>,
    open: Vec<usize>,
}

impl Message {
    pub fn new(kind: u16, flags: u16) -> Message {
        let mut message = Message { bytes: Vec::with_capacity(256), open: Vec::new() };
        let header = libc::nlmsghdr {
            nlmsg_len: 0,
            nlmsg_type: kind,
            nlmsg_flags: flags | libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 0,
            nlmsg_pid: 0,
        };
        message.push(&header);
        message
    }

    /// A fixed header (`ifinfomsg`...), as the C struct's bytes.
    pub fn push<T: Copy>(&mut self, value: &T) -> &mut Message {
        // SAFETY: T is a plain repr(C) struct of integers, read as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(value as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.bytes.extend_from_slice(bytes);
        self.pad();
        self
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Message {
        let len = (4 + value.len()) as u16;
        self.bytes.extend_from_slice(&len.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.pad();
        self
    }

    pub fn attr_str(&mut self, kind: u16, value: &str) -> &mut Message {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    pub fn attr_u32(&mut self, kind: u16, value: u32) -> &mut Message {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// Open a nested attribute; its length is filled in by `end`.
    pub fn begin(&mut self, kind: u16) -> &mut Message {
        self.open.push(self.bytes.len());
        self.attr(kind | NLA_F_NESTED, &[])
    }

    pub fn end(&mut self) -> &mut Message {
        if let Some(at) = self.open.pop() {
            let len = (self.bytes.len() - at) as u16;
            self.bytes[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// NETLINK_ROUTE in the caller's current network namespace.
    pub fn open() -> io::Result<Socket> {
        let kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        // SAFETY: socket(2) takes numbers; a valid descriptor is owned at once.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, kind, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2) and nothing else owns it.
        Ok(Socket { fd: unsafe { OwnedFd::from_raw_fd(fd) }, seq: 0 })
    }

    /// Send one request with NLM_F_ACK; Ok once the kernel acknowledges it.
    pub fn request(&mut self, message: &mut Message) -> io::Result<()> {
        self.send(message, libc::NLM_F_ACK as u16)?;
        self.replies(|_, _| {}).map(|_| ())
    }

    /// Send a dump request; every reply message's type and payload.
    pub fn dump(&mut self, message: &mut Message) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.send(message, libc::NLM_F_DUMP as u16)?;
        let mut all = Vec::new();
        self.replies(|kind, payload| all.push((kind, payload.to_vec())))?;
        Ok(all)
    }

    fn send(&mut self, message: &mut Message, flags: u16) -> io::Result<()> {
        self.seq += 1;
        let len = message.bytes.len() as u32;
        message.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        let old = u16::from_ne_bytes([message.bytes[6], message.bytes[7]]);
        message.bytes[6..8].copy_from_slice(&(old | flags).to_ne_bytes());
        message.bytes[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // SAFETY: the buffer is valid for its length during the call.
        let sent = unsafe {
            libc::send(self.fd.as_raw_fd(), message.bytes.as_ptr().cast(), message.bytes.len(), 0)
        };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Read replies to the last request until its ACK (NLMSG_ERROR with 0 or
    /// -errno) or, for a dump, NLMSG_DONE.
    fn replies(&mut self, mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: the buffer is valid for its length during the call.
            let got = unsafe {
                libc::recv(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0)
            };
            if got < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buffer[..got as usize];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < 16 || len > rest.len() {
                    return Err(io::Error::from_raw_os_error(libc::EPROTO));
                }
                let payload = &rest[16..len];
                rest = &rest[((len + 3) & !3).min(rest.len())..];
                if seq != self.seq {
                    continue; // a late reply to an earlier request
                }
                match kind as i32 {
                    libc::NLMSG_DONE => return Ok(()),
                    libc::NLMSG_ERROR => {
                        let errno =
                            i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        return match errno {
                            0 => Ok(()),
                            e => Err(io::Error::from_raw_os_error(-e)),
                        };
                    }
                    _ => each(kind, payload),
                }
            }
        }
    }
}

/// Walk the attributes after a fixed header of `skip` bytes.
pub fn attributes(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    let mut rest = payload.get(skip..).unwrap_or(&[]);
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & !NLA_F_NESTED;
        if len < 4 || len > rest.len() {
            break;
        }
        found.push((kind, &rest[4..len]));
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    found
}

/// `struct ifinfomsg` (linux/rtnetlink.h); libc's has a private pad field.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfInfoMsg {
    family: u8,
    pad: u8,
    kind: u16,
    index: i32,
    flags: u32,
    change: u32,
}

fn ifinfo(index: i32, flags: u32, change: u32) -> IfInfoMsg {
    IfInfoMsg { family: libc::AF_UNSPEC as u8, pad: 0, kind: 0, index, flags, change }
}

const CREATE: u16 = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;

/// `ip link add NAME type bridge`
pub fn add_bridge(socket: &mut Socket, name: &str) -> io::Result<()> {
    let mut message = Message::new(libc::RTM_NEWLINK, CREATE);
    message.push(&ifinfo(0, 0, 0)).attr_str(libc::IFLA_IFNAME, name);
    message.begin(libc::IFLA_LINKINFO).attr_str(libc::IFLA_INFO_KIND, "bridge").end();
    socket.request(&mut message)
}

/// `ip link add NAME mtu MTU master BRIDGE type veth peer name PEER mtu MTU
/// netns PID`: the peer is born in the namespace of PID, never in the host's
/// (which may have an eth0 of its own).
pub fn add_veth(
    socket: &mut Socket,
    name: &str,
    bridge: i32,
    mtu: u32,
    peer: &str,
    pid: i32,
) -> io::Result<()> {
    let mut message = Message::new(libc::RTM_NEWLINK, CREATE);
    message.push(&ifinfo(0, 0, 0)).attr_str(libc::IFLA_IFNAME, name);
    message.attr_u32(libc::IFLA_MTU, mtu).attr_u32(libc::IFLA_MASTER, bridge as u32);
    message.begin(libc::IFLA_LINKINFO).attr_str(libc::IFLA_INFO_KIND, "veth");
    message.begin(libc::IFLA_INFO_DATA).begin(VETH_INFO_PEER).push(&ifinfo(0, 0, 0));
    message.attr_str(libc::IFLA_IFNAME, peer).attr_u32(libc::IFLA_MTU, mtu);
    message.attr_u32(libc::IFLA_NET_NS_PID, pid as u32);
    message.end().end().end();
    socket.request(&mut message)
}

/// `ip link set dev INDEX up`
pub fn set_up(socket: &mut Socket, index: i32) -> io::Result<()> {
    let up = libc::IFF_UP as u32;
    let mut message = Message::new(libc::RTM_NEWLINK, 0);
    message.push(&ifinfo(index, up, up));
    socket.request(&mut message)
}

/// `ip link del NAME`; deleting one end of a veth deletes both.
pub fn delete_link(socket: &mut Socket, name: &str) -> io::Result<()> {
    let mut message = Message::new(libc::RTM_DELLINK, 0);
    message.push(&ifinfo(0, 0, 0)).attr_str(libc::IFLA_IFNAME, name);
    socket.request(&mut message)
}

/// `ip addr add ADDRESS/PREFIX dev INDEX`
pub fn add_address(
    socket: &mut Socket,
    index: i32,
    address: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    let header = libc::ifaddrmsg {
        ifa_family: libc::AF_INET as u8,
        ifa_prefixlen: prefix,
        ifa_flags: 0,
        ifa_scope: 0,
        ifa_index: index as u32,
    };
    let mut message = Message::new(libc::RTM_NEWADDR, CREATE);
    message.push(&header).attr(libc::IFA_LOCAL, &address.octets());
    message.attr(libc::IFA_ADDRESS, &address.octets());
    socket.request(&mut message)
}

/// `ip route add default via GATEWAY dev INDEX`
pub fn add_default_route(socket: &mut Socket, index: i32, gateway: Ipv4Addr) -> io::Result<()> {
    let header = RtMsg {
        family: libc::AF_INET as u8,
        table: libc::RT_TABLE_MAIN,
        protocol: libc::RTPROT_BOOT,
        scope: libc::RT_SCOPE_UNIVERSE,
        kind: libc::RTN_UNICAST,
        ..RtMsg::default()
    };
    let mut message = Message::new(libc::RTM_NEWROUTE, CREATE);
    message.push(&header).attr(libc::RTA_GATEWAY, &gateway.octets());
    message.attr_u32(libc::RTA_OIF, index as u32);
    socket.request(&mut message)
}

/// An IPv4 route of the main table: destination, prefix length, device.
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub device: i32,
}

/// `ip -4 route show table main`
pub fn routes(socket: &mut Socket) -> io::Result<Vec<Route>> {
    let header = RtMsg { family: libc::AF_INET as u8, ..RtMsg::default() };
    let mut message = Message::new(libc::RTM_GETROUTE, 0);
    message.push(&header);
    let mut found = Vec::new();
    for (kind, payload) in socket.dump(&mut message)? {
        let size = std::mem::size_of::<RtMsg>();
        if kind != libc::RTM_NEWROUTE || payload.len() < size {
            continue;
        }
        let (prefix, table) = (payload[1], payload[4]);
        let mut route = Route { destination: Ipv4Addr::UNSPECIFIED, prefix, device: 0 };
        let mut main = table == libc::RT_TABLE_MAIN;
        for (attr, value) in attributes(&payload, size) {
            match (attr, value.len()) {
                (libc::RTA_DST, 4) => {
                    route.destination = Ipv4Addr::new(value[0], value[1], value[2], value[3])
                }
                (libc::RTA_OIF, 4) => {
                    route.device = i32::from_ne_bytes([value[0], value[1], value[2], value[3]])
                }
                (libc::RTA_TABLE, 4) => {
                    main = u32::from_ne_bytes([value[0], value[1], value[2], value[3]])
                        == libc::RT_TABLE_MAIN as u32
                }
                _ => {}
            }
        }
        if main {
            found.push(route);
        }
    }
    Ok(found)
}
