//! The terminal: with one on stdin, the container gets a pseudo-terminal of
//! its own, as `docker run -t` and runc give it, and toybox relays between it
//! and the user's terminal. Without one, stdin, stdout and stderr pass
//! through untouched: binary-safe, and the container sees EOF when stdin ends.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::stat::Mode;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{isatty, setsid};

use crate::error::{Result, Stage, fail};

/// Parent and child each ask, and get the same answer: the child inherits stdin.
pub fn wanted() -> bool {
    isatty(io::stdin()).unwrap_or(false)
}

/// In the child, once it is the container's user: open a pty in the
/// container's own devpts (owned, like any pty, by whoever opens it), make
/// its far end the controlling terminal of a new session and the command's
/// stdin, stdout and stderr, and pass the near end (the master) to toybox
/// over the socket as SCM_RIGHTS (unix(7), pty(7)).
pub fn attach_child(sock: &OwnedFd) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .stage("terminal", "open /dev/ptmx")?;
    grantpt(&master).stage("terminal", "grantpt")?;
    unlockpt(&master).stage("terminal", "unlockpt")?;
    let name = ptsname_r(&master).stage("terminal", "ptsname")?;
    let pts = open(name.as_str(), OFlag::O_RDWR, Mode::empty())
        .stage("terminal", format!("open {name}"))?;
    setsid().stage("terminal", "setsid")?;
    // SAFETY: TIOCSCTTY takes an int argument and touches no memory.
    if unsafe { libc::ioctl(pts.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Errno::last()).stage("terminal", format!("ioctl({name}, TIOCSCTTY)"));
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; `pts` stays open.
        if unsafe { libc::dup2(pts.as_raw_fd(), fd) } < 0 {
            return Err(Errno::last()).stage("terminal", format!("dup2({name}, {fd})"));
        }
    }
    let fds = [master.as_raw_fd()];
    let message = [IoSlice::new(b"t")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &message,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .stage("terminal", "send the pty to toybox")?;
    Ok(())
}

/// toybox's side: the user's terminal in raw mode (the container's pty does
/// the line editing and turns ^C into SIGINT for its foreground job), one
/// thread copying keystrokes in, one copying output out, and one passing
/// window size changes on. Dropping it restores the user's terminal.
pub struct Relay {
    saved: Termios,
    output: Option<JoinHandle<()>>,
}

pub fn relay_parent(sock: &OwnedFd) -> Result<Relay> {
    let master = receive_master(sock)?;
    let saved = tcgetattr(io::stdin()).stage("terminal", "tcgetattr(stdin)")?;
    copy_window_size(io::stdin().as_raw_fd(), master.as_raw_fd());
    // SIGWINCH is blocked here and so in the threads spawned below: only the
    // resize thread's sigwait receives it.
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&winch), None)
        .stage("terminal", "pthread_sigmask(SIGWINCH)")?;
    let clone = |what| master.try_clone().stage("terminal", format!("dup pty for {what}"));
    let (to_pty, resize_pty) = (File::from(clone("input")?), clone("resizing")?);
    let from_pty = File::from(master);
    let spawn = |what: &str, work: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new().spawn(work).stage("terminal", format!("thread for {what}"))
    };
    spawn("input", Box::new(move || copy(io::stdin(), to_pty)))?;
    spawn("resizing", Box::new(move || resize_on_winch(winch, resize_pty)))?;
    let output = Some(spawn("output", Box::new(move || copy(from_pty, io::stdout())))?);
    let mut raw = saved.clone();
    cfmakeraw(&mut raw);
    tcsetattr(io::stdin(), SetArg::TCSANOW, &raw).stage("terminal", "tcsetattr(stdin, raw)")?;
    Ok(Relay { saved, output })
}

impl Relay {
    /// After the container is reaped: its last output is still in the pty.
    /// Reading it ends with EIO once no process holds the far end.
    pub fn finish(mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

// >> 19 oci
/// `create --console-socket`: the pty goes to the client (conmon,
/// containerd's shim) exactly as runc sends it: connect to its SOCK_STREAM
/// unix socket, and in one sendmsg one SCM_RIGHTS descriptor, the master,
/// with the pty's path inside the container as the data. Nothing is read
/// back. process.consoleSize, (height, width), is set on it first.
pub fn send_to_console(
    sock: &OwnedFd,
    socket: &std::path::Path,
    size: Option<(u16, u16)>,
) -> Result<()> {
    let master = receive_master(sock)?;
    if let Some((rows, cols)) = size {
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one struct winsize.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(Errno::last()).stage("terminal", "ioctl(TIOCSWINSZ)");
        }
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty's number into one unsigned int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } != 0 {
        return Err(Errno::last()).stage("terminal", "ioctl(TIOCGPTN)");
    }
    let name = format!("/dev/pts/{number}");
    let what = format!("connect to the console socket {}", socket.display());
    let stream = std::os::unix::net::UnixStream::connect(socket).stage("terminal", what)?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .stage("terminal", format!("send the pty to {}", socket.display()))?;
    Ok(())
}
// << 19

fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut byte = [0u8];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
        .stage("terminal", "receive the pty from the container")?;
    for cmsg in message.cmsgs().stage("terminal", "read the pty message")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: SCM_RIGHTS just installed this descriptor; we own it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(fail("terminal", "the container sent no pty", 125))
}

/// Until either end closes; EIO from the pty means the container is gone.
fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 || to.write_all(&buffer[..n]).is_err() || to.flush().is_err() {
            break;
        }
    }
}

fn resize_on_winch(winch: SigSet, pty: OwnedFd) {
    while winch.wait().is_ok() {
        copy_window_size(io::stdin().as_raw_fd(), pty.as_fd().as_raw_fd());
    }
}

/// TIOCGWINSZ on the user's terminal, TIOCSWINSZ on the pty: the kernel
/// then sends SIGWINCH to the container's foreground job (ioctl_tty(2)).
fn copy_window_size(from: RawFd, to: RawFd) {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: both ioctls read or write one struct winsize.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &size);
        }
    }
}
