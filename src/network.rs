//! The container's network: its namespace has `lo` up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Result, Stage};

/// `--net`: what the container's network namespace holds.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Only `lo`, up: 127.0.0.1 works, nothing else is reachable
    None,
}

/// The child's part, before it enters its user namespace.
pub fn inside(mode: Mode) -> Result<()> {
    match mode {
        Mode::None => loopback_up(),
    }
}

/// A new network namespace has `lo`, down (network_namespaces(7)), so even
/// 127.0.0.1 is unreachable; docker's `--net none` has it up. The child does
/// it before it enters its user namespace: the network namespace belongs to
/// the host's user namespace, whose CAP_NET_ADMIN the child still has. Two
/// ioctls on any AF_INET socket (netdevice(7)): a few microseconds.
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
