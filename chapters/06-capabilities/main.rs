//! toybox: a Linux container you can read in one sitting.
//!
//! It follows contained.c ("Linux containers in 500 lines of code", 2016)
//! stage by stage. The parent prepares, clones a child and waits; the child
//! narrows what it can see and do, then becomes the command:
//!
//! - the parent checks the host and the input before it makes anything;
//! - the parent names the container and clones the child, which closes
//!   every descriptor it inherited but 0, 1 and 2;
//! - the child is born into new namespaces and sets its hostname;
//! - it pivots into the rootfs, mounted nodev, and lets go of the host's;
//! - it enters a user namespace, whose uid/gid maps the parent writes;
//! - it drops capabilities;
//! - the child execs the command; the parent waits, forwards signals and
//!   cleans up.
//!
//! `main` is the table of contents: read it first, then each stage in order.

mod error;

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use caps::CapSet;
use clap::Parser;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::unshare;
use nix::sched::{CloneFlags, clone};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, signal, sigprocmask};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, socketpair};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Uid;
use nix::unistd::sethostname;
use nix::unistd::{Gid, read, setgroups, setresgid, setresuid, write};
use nix::unistd::{Pid, execve};
use nix::unistd::{chdir, pivot_root};

use error::{Cause, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_TOYBOX_FAILED};
use error::{Error, Result, Stage, fail};

// ---------------------------------------------------------------------------
// Stage 1: the command line.
// ---------------------------------------------------------------------------

/// What `--help` says toybox does: what this chapter's code does, no more.
const ABOUT: &str = concat!(
    "Run a command ",
    "in a new container: new namespaces",
    ", a private root",
    ", a user namespace",
    ", fewer capabilities",
);

const EXIT_STATUS_HELP: &str = concat!(
    "Exit status:\n",
    "  the command's own status    when it exits\n",
    "  128+N                       when it is killed by signal N\n",
    "  125                         toybox itself failed (bad input, a setup stage)\n",
    "  126                         the command cannot be executed\n",
    "  127                         the command was not found in the rootfs\n",
    "\n",
    "Signals: SIGINT, SIGTERM and SIGHUP sent to toybox are forwarded to the\n",
    "container's PID 1. PID 1 ignores signals it has no handler for, so after\n",
    "10 s toybox sends SIGKILL (as `docker stop` does).",
);

// The command line; clap makes --help from the doc comments.
#[derive(Parser)]
#[command(version, about = ABOUT, after_help = EXIT_STATUS_HELP)]
struct Args {
    /// User id inside the container; 0..2000, the range the uid map covers
    #[arg(short, long, default_value_t = 0, value_name = "UID")]
    uid: u32,
    /// Root filesystem to run in (a directory, not /)
    #[arg(short, long = "mount", default_value = "./rootfs", value_name = "DIR")]
    mount: PathBuf,

    /// Print each stage and how long it took
    #[arg(short, long)]
    verbose: bool,

    /// Command to run and its arguments; everything after -c belongs to it
    #[arg(short, long = "command", required = true, num_args = 1..,
          allow_hyphen_values = true, value_name = "CMD [ARGS]...")]
    command: Vec<String>,
}

/// clap exits 2 on bad usage; a container runtime answers 125 (`docker run`).
fn parse_args() -> Result<Args> {
    Args::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print(); // --help or --version
            std::process::exit(0);
        }
        // One line: clap's message up to its usage hint.
        let message = e.to_string();
        let lines = message.lines().take_while(|l| !l.is_empty() && !l.starts_with("Usage:"));
        let what = lines.map(str::trim).collect::<Vec<_>>().join(" ");
        let what = what.trim_start_matches("error: ");
        fail("arguments", format!("{what} (see toybox --help)"), EXIT_TOYBOX_FAILED)
    })
}

// ---------------------------------------------------------------------------
// Stage 1, continued: what the child is to become.
// ---------------------------------------------------------------------------

/// contained.c's `struct child_config`, grown into one plain description of
/// the container. toybox's own flags fill it with contained.c's choices (the
/// tables below stay, as the defaults); the stages read it, never the flags
/// or the tables.
pub(crate) struct ChildConfig {
    /// The container's name: its cgroups and its record are called so.
    pub name: String,
    /// The command and its arguments; a name without a slash is looked up in
    /// the PATH of `env`.
    pub command: Vec<String>,
    /// The command's whole environment, exactly as it gets it.
    pub env: Vec<String>,
    /// The namespaces the child is born into (clone(2) flags).
    pub namespaces: CloneFlags,
    /// None leaves the hostname alone (no UTS namespace of its own).
    pub hostname: Option<String>,
    pub rootfs: PathBuf,
    /// The uid_map and gid_map the parent writes; None: no user namespace.
    pub id_maps: Option<(String, String)>,
    pub user: User,
    pub capabilities: Capabilities,
    /// How long PID 1 has after a forwarded signal before SIGKILL.
    pub stop_grace: Duration,
}

/// Who the command runs as, inside the container.
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl User {
    /// contained.c's: the uid, and the group of the same number.
    pub fn contained(uid: u32) -> User {
        User { uid, gid: uid, groups: vec![uid] }
    }
}

/// The five sets of capabilities(7). None leaves a set as the uid switch and
/// the drops leave it.
pub(crate) struct Capabilities {
    pub bounding: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
}

impl Capabilities {
    /// contained.c's: its list bounds them all, nothing is inherited.
    pub fn contained() -> Capabilities {
        Capabilities {
            bounding: KEPT_CAPABILITIES.to_vec(),
            inheritable: Vec::new(),
            ambient: Vec::new(),
        }
    }
}

fn contained_map() -> String {
    format!("0 {USERNS_OFFSET} {USERNS_COUNT}\n")
}

/// The description toybox's own flags make: contained.c's choices.
fn child_config(args: &Args, hostname: &str) -> ChildConfig {
    ChildConfig {
        name: hostname.to_string(),
        command: args.command.clone(),
        env: Vec::new(),
        namespaces: namespace_flags(),
        hostname: Some(hostname.to_string()),
        rootfs: args.mount.clone(),
        id_maps: Some((contained_map(), contained_map())),
        user: User::contained(args.uid),
        capabilities: Capabilities::contained(),
        stop_grace: STOP_GRACE,
    }
}

/// `-v` prints `=> stage ... done (212 µs)` as each stage finishes, the way
/// contained.c prints `=> setting cgroups...done.`
#[derive(Clone, Copy)]
struct Progress {
    verbose: bool,
}

impl Progress {
    fn stage<T>(&self, name: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = step()?;
        self.note(&format!("{name} ... done ({} µs)", started.elapsed().as_micros()));
        Ok(result)
    }

    /// One write(2) per line, so the parent's and the child's lines never interleave.
    fn note(&self, line: &str) {
        if self.verbose {
            let end = "\n";
            let _ = io::stderr().write_all(format!("=> {line}{end}").as_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// The walkthrough.
// ---------------------------------------------------------------------------

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            let _ = io::stderr().write_all(format!("toybox: {e}\n").as_bytes());
            e.exit_code
        }
    };
    std::process::exit(code);
}

fn run() -> Result<i32> {
    let args = parse_args()?;
    let progress = Progress { verbose: args.verbose };
    progress.stage("checks", || check_host(&args))?;
    let config = child_config(&args, &random_hostname());
    progress.note(&format!("hostname {}", config.name));
    run_container(&config, progress)
}

/// Everything from the socketpair to the cleanup: make the container the
/// description says, wait for it, and answer with its exit status.
fn run_container(config: &ChildConfig, progress: Progress) -> Result<i32> {
    let (parent_sock, child_sock) = progress.stage("socketpair", create_socketpair)?;
    let signals = block_signals()?;
    let mut container =
        progress.stage("clone", || clone_child(config, &child_sock, &signals, progress))?;
    drop(child_sock); // so a dead child reads as EOF on our end
    let maps = &config.id_maps;
    progress.stage("uid map", || handle_child_uid_map(container.pid, &parent_sock, maps))?;
    let grace = config.stop_grace;
    let status =
        progress.stage("wait", || wait_for_child(&mut container, &signals.forwarded, grace))?;
    progress.note(&format!("exit status {status}"));
    Ok(status)
}

// ---------------------------------------------------------------------------
// Stage 2: checks, before anything is created.
// ---------------------------------------------------------------------------

/// The newest feature toybox relies on: CLONE_NEWCGROUP arrived in Linux 4.6
/// (cgroup_namespaces(7)). User namespaces (3.8), the pids controller (4.3)
/// and ambient capabilities (4.3) are older.
const MIN_KERNEL: (u32, u32) = (4, 6);
const MIN_KERNEL_FEATURE: &str = "CLONE_NEWCGROUP (cgroup namespaces)";

/// Inside uids 0..2000 map to 10000..12000 on the host (contained.c's map).
const USERNS_OFFSET: u32 = 10000;
const USERNS_COUNT: u32 = 2000;

fn check_host(args: &Args) -> Result<()> {
    let euid = Uid::effective();
    if !euid.is_root() {
        let what = format!(
            "toybox needs root to create namespaces and cgroups (running as uid {euid}); try sudo"
        );
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    check_kernel()?;
    if args.uid >= USERNS_COUNT {
        let what = format!("uid {} is outside the mapped range 0..{USERNS_COUNT}", args.uid);
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    let rootfs = &args.mount;
    let meta = fs::metadata(rootfs).stage("checks", format!("rootfs {}", rootfs.display()))?;
    if !meta.is_dir() {
        let what = format!("rootfs {} is not a directory", rootfs.display());
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    let resolved =
        fs::canonicalize(rootfs).stage("checks", format!("resolve {}", rootfs.display()))?;
    if resolved == Path::new("/") {
        return Err(fail("checks", "rootfs is /: that is the host, not a container", 125));
    }
    check_command(&resolved, &args.command[0])
}

fn check_kernel() -> Result<()> {
    let uts = nix::sys::utsname::uname().stage("checks", "uname")?;
    let machine = uts.machine().to_string_lossy();
    // The seccomp filter names x86_64 syscalls; other ABIs are refused by it.
    if machine != "x86_64" {
        let what = format!("architecture {machine} is not supported (toybox runs on x86_64)");
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    let release = uts.release().to_string_lossy();
    if kernel_version(&release) < MIN_KERNEL {
        let (major, minor) = MIN_KERNEL;
        let what = format!(
            "kernel {release} is too old: toybox needs {major}.{minor}+ for {MIN_KERNEL_FEATURE}"
        );
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    Ok(())
}

/// "6.1.0-18-amd64" -> (6, 1).
fn kernel_version(release: &str) -> (u32, u32) {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// An early, friendly answer; execve inside the container has the last word.
/// The path is looked up without following links, since an absolute link in
/// the rootfs points into the container, not the host.
fn check_command(rootfs: &Path, command: &str) -> Result<()> {
    let inside = rootfs.join(command.trim_start_matches('/'));
    let Ok(meta) = fs::symlink_metadata(&inside) else {
        let what = format!("command {command} not found in {}", rootfs.display());
        return Err(fail("checks", what, EXIT_NOT_FOUND));
    };
    let executable =
        meta.is_symlink() || (meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    if !executable {
        let what = format!("command {command} in {} is not an executable file", rootfs.display());
        return Err(fail("checks", what, EXIT_CANNOT_EXECUTE));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Stage 3: a random, readable hostname; it names the container.
// ---------------------------------------------------------------------------

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively", "merry",
    "nimble", "proud", "quiet", "rapid", "shy", "tidy", "vivid", "witty", "young", "zesty",
];
const NOUNS: &[&str] = &[
    "otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "panda", "quokka", "raven",
    "salmon", "tapir", "urchin", "viper", "walrus", "yak", "zebra", "bison", "crane", "dingo",
];

/// `adjective-noun-xxxxxx`: 400 word pairs times 2^24 hex suffixes makes two
/// equal names among 32 simultaneous starts about a one-in-a-billion event.
/// The suffix comes from `rand` (seeded by the OS), never from the clock.
fn random_hostname() -> String {
    let adjective = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rand::random_range(0..NOUNS.len())];
    let suffix: u32 = rand::random_range(0..1 << 24);
    format!("{adjective}-{noun}-{suffix:06x}")
}

// ---------------------------------------------------------------------------
// Stage 4: a socketpair for the user-namespace handshake.
// ---------------------------------------------------------------------------

/// SOCK_SEQPACKET keeps each message whole; close-on-exec keeps the
/// container's command from inheriting the child's end (socketpair(2)).
fn create_socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let flags = SockFlag::SOCK_CLOEXEC;
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, flags)
        .stage("socketpair", "socketpair(AF_UNIX, SOCK_SEQPACKET)")
}

// ---------------------------------------------------------------------------
// Stage 6: clone into new namespaces.
// ---------------------------------------------------------------------------

/// The signals toybox forwards, blocked so they queue for `wait_for_child`
/// instead of killing toybox before it can clean up; SIGCHLD is blocked too so
/// the child's exit arrives through the same sigwait.
struct Signals {
    forwarded: SigSet,
    original: SigSet,
}

const FORWARDED_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn block_signals() -> Result<Signals> {
    let mut forwarded = SigSet::empty();
    for signal in FORWARDED_SIGNALS.into_iter().chain([Signal::SIGCHLD]) {
        forwarded.add(signal);
    }
    let mut original = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), Some(&mut original))
        .stage("signals", "sigprocmask(SIG_BLOCK)")?;
    Ok(Signals { forwarded, original })
}

/// The container's first process, killed and reaped on drop unless it has
/// already been waited for, so no error path leaves it running.
struct Container {
    pid: Pid,
    reaped: bool,
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// contained.c's flags. CLONE_NEWUSER is not among them: the child unshares
/// it later, after its mounts, which need the host user namespace's privilege.
fn namespace_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
}

const STACK_SIZE: usize = 1024 * 1024;

fn clone_child(
    config: &ChildConfig,
    sock: &OwnedFd,
    signals: &Signals,
    progress: Progress,
) -> Result<Container> {
    let child = || run_child(config, sock, &signals.original, progress);
    let mut stack = vec![0u8; STACK_SIZE];
    // SAFETY: without CLONE_VM the child gets its own copy of memory, as with
    // fork(2); it only runs `run_child` and then execs or exits.
    let pid = unsafe {
        clone(Box::new(child), &mut stack, config.namespaces, Some(Signal::SIGCHLD as i32))
    }
    .stage("clone", format!("clone({:?})", config.namespaces))?;
    Ok(Container { pid, reaped: false })
}

// ---------------------------------------------------------------------------
// Stage 7: the child. Each step narrows what the command can do; the last
// one replaces this program with it.
// ---------------------------------------------------------------------------

fn run_child(config: &ChildConfig, sock: &OwnedFd, mask: &SigSet, progress: Progress) -> isize {
    let result = child_stages(config, sock, mask, progress);
    let error = match result {
        Ok(never) => match never {},
        Err(error) => error,
    };
    let _ = io::stderr().write_all(format!("toybox: {error}\n").as_bytes());
    error.exit_code as isize
}

fn child_stages(
    config: &ChildConfig,
    sock: &OwnedFd,
    mask: &SigSet,
    progress: Progress,
) -> Result<std::convert::Infallible> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)
        .stage("signals", "restore signal mask")?;
    close_inherited_fds(Some(sock.as_raw_fd()))?;
    if let Some(name) = &config.hostname {
        progress.stage("hostname", || set_hostname(name))?;
    }
    progress.stage("mounts", || setup_mounts(&config.rootfs))?;
    progress.stage("user namespace", || enter_user_namespace(sock, config))?;
    die_with_parent(sock)?;
    progress.stage("capabilities", || drop_capabilities(&config.capabilities))?;
    progress.note("execve");
    exec_command(&config.command, &config.env)
}

/// A descriptor toybox inherited without close-on-exec would pass into the
/// container past every wall built around it: a directory the caller had
/// open leads back to the host's filesystem as /proc/self/fd/N/.. (the hole
/// of runc's CVE-2024-21626; contained.c has it too). So the child closes everything above 2 but `keep` (its end of
/// the socketpair, itself close-on-exec), and the command starts with 0, 1
/// and 2 only. close_range(2) arrived in Linux 5.9; before it,
/// /proc/self/fd lists what is open.
pub(crate) fn close_inherited_fds(keep: Option<RawFd>) -> Result<()> {
    let ranges = match keep.filter(|&fd| fd > 2).map(|fd| fd as u32) {
        Some(fd) => vec![(3, fd - 1), (fd + 1, u32::MAX)],
        None => vec![(3, u32::MAX)],
    };
    for (first, last) in ranges.into_iter().filter(|(first, last)| first <= last) {
        // SAFETY: close_range takes numbers and touches no memory; the
        // child holds no Rust object for what it closes but `keep`.
        if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } != 0 {
            match Errno::last() {
                Errno::ENOSYS => return close_listed_fds(keep),
                errno => return Err(errno).stage("fds", format!("close_range({first}, {last})")),
            }
        }
    }
    Ok(())
}

/// Before Linux 5.9: close what /proc/self/fd lists. The listing's own
/// descriptor is among them, already closed: its EBADF is ignored.
fn close_listed_fds(keep: Option<RawFd>) -> Result<()> {
    let listing = fs::read_dir("/proc/self/fd").stage("fds", "read /proc/self/fd")?;
    let fds: Vec<RawFd> =
        listing.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2 && Some(fd) != keep) {
        // SAFETY: as above; fd is a number from the kernel's own list.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// If toybox is killed outright (SIGKILL), the container goes with it
/// (PR_SET_PDEATHSIG, prctl(2)).
/// Set after the uid change, which clears it.
/// Should toybox have died already, its end of the socket reads as EOF.
pub(crate) fn die_with_parent(sock: &OwnedFd) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).stage("clone", "prctl(PR_SET_PDEATHSIG)")?;
    let mut byte = [0u8];
    match recv(sock.as_raw_fd(), &mut byte, MsgFlags::MSG_DONTWAIT) {
        Err(Errno::EAGAIN) => Ok(()),
        _ => Err(fail("clone", "toybox exited before the container started", 125)),
    }
}

/// Only this UTS namespace sees the new name (uts_namespaces(7)).
fn set_hostname(hostname: &str) -> Result<()> {
    sethostname(hostname).stage("hostname", format!("sethostname({hostname})"))
}

/// Make every mount private so nothing propagates back to the host, bind the
/// rootfs onto itself (pivot_root needs a mount point), and swap roots.
/// pivot_root(".", ".") stacks the old root on top of the new one; unmounting
/// "." then detaches it (pivot_root(2), NOTES). Unlike contained.c this needs
/// no temporary directory, so nothing is left on the host or in the rootfs.
fn setup_mounts(rootfs: &Path) -> Result<()> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .stage("mounts", "mount / MS_REC|MS_PRIVATE")?;
    mount(Some(rootfs), rootfs, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
        .stage("mounts", format!("bind mount {}", rootfs.display()))?;
    remount_nodev(rootfs)?;
    chdir(rootfs).stage("mounts", format!("chdir {}", rootfs.display()))?;
    pivot_root(".", ".").stage("mounts", format!("pivot_root({}, .)", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).stage("mounts", "umount2(old root, MNT_DETACH)")?;
    chdir("/").stage("mounts", "chdir /")?;
    Ok(())
}

/// A device node in the rootfs (a `docker export`, an unpacked image, a
/// hostile tarball) would open inside like the host's own: a block node of
/// the host's disk is the disk. Remounted nodev, the rootfs holds none that
/// works; the container's devices are the fresh /dev's. A bind remount sets
/// every per-mount flag at once, so the source's (ro, nosuid, noexec, atime)
/// are read back with statvfs(3) and kept: none is relaxed (mount(2)).
fn remount_nodev(rootfs: &Path) -> Result<()> {
    let what = format!("statvfs {}", rootfs.display());
    let source = statvfs(rootfs).stage("mounts", what)?.flags();
    let kept = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV;
    for (has, flag) in kept {
        if source.contains(has) {
            flags |= flag;
        }
    }
    let none: Option<&str> = None;
    mount(none, rootfs, none, flags, none)
        .stage("mounts", format!("remount {} nodev", rootfs.display()))
}

/// The handshake (user_namespaces(7)): only a process outside the new user
/// namespace may write its uid_map, so the child unshares, tells the parent,
/// and waits for the parent's answer before switching to the requested uid.
/// As in contained.c, a kernel without user namespaces gets one line and the
/// container goes on without one.
fn enter_user_namespace(sock: &OwnedFd, config: &ChildConfig) -> Result<()> {
    let has_userns = config.id_maps.is_some() && unshare_user_namespace();
    write(sock, &[has_userns as u8]).stage("user namespace", "write to parent")?;
    let mut answer = [1u8];
    let n = read(sock, &mut answer).stage("user namespace", "read from parent")?;
    if n != 1 || answer[0] != 0 {
        return Err(fail("user namespace", "the parent could not write the uid/gid maps", 125));
    }
    switch_user(&config.user)
}

fn unshare_user_namespace() -> bool {
    match unshare(CloneFlags::CLONE_NEWUSER) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "toybox: user namespace: unshare(CLONE_NEWUSER): {}; continuing without",
                e.desc()
            );
            false
        }
    }
}

/// Become the user, with its groups, inside the namespace.
pub(crate) fn switch_user(user: &User) -> Result<()> {
    let (uid, gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    let groups: Vec<Gid> = user.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    setgroups(&groups).stage("user namespace", format!("setgroups({groups:?})"))?;
    setresgid(gid, gid, gid).stage("user namespace", format!("setresgid({gid})"))?;
    setresuid(uid, uid, uid).stage("user namespace", format!("setresuid({uid})"))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Stage 8 (parent): answer the handshake with the uid/gid maps.
// ---------------------------------------------------------------------------

fn handle_child_uid_map(pid: Pid, sock: &OwnedFd, maps: &Option<(String, String)>) -> Result<()> {
    let mut has_userns = [0u8];
    let n = read(sock, &mut has_userns).stage("uid map", "read from child")?;
    if n != 1 {
        // The child failed before the handshake and said why; its exit status tells.
        return Ok(());
    }
    if has_userns[0] == 1
        && let Some((uid_map, gid_map)) = maps
    {
        for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            let path = format!("/proc/{pid}/{file}");
            fs::write(&path, map).stage("uid map", format!("write {path}"))?;
        }
    }
    write(sock, &[0]).stage("uid map", "write to child")?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Stage 7, continued: the last steps, then execve.
// ---------------------------------------------------------------------------

/// What root inside the container keeps: the capabilities contained.c
/// deliberately left alone. Everything else goes: drop_capabilities probes
/// numbers until the kernel answers EINVAL, so capabilities newer than this
/// list (CAP_PERFMON, CAP_BPF, CAP_CHECKPOINT_RESTORE, ...) are dropped too.
const KEPT_CAPABILITIES: &[caps::Capability] = &[
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_LINUX_IMMUTABLE,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_NET_BROADCAST,
    caps::Capability::CAP_NET_ADMIN,
    caps::Capability::CAP_NET_RAW,
    caps::Capability::CAP_IPC_OWNER,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_SYS_PACCT,
    caps::Capability::CAP_SYS_TTY_CONFIG,
    caps::Capability::CAP_LEASE,
];

/// The bounding set caps what any later execve can gain; the inheritable and
/// ambient sets are how capabilities would survive execve for a non-root
/// user (capabilities(7)). After execve root's permitted and effective sets
/// are its bounding set, so those lose the same capabilities.
/// Capabilities are dropped by number until the kernel says EINVAL (no such
/// capability): the caps crate's enum ends at the ones it knew of, and the
/// running kernel may know more.
pub(crate) fn drop_capabilities(sets: &Capabilities) -> Result<()> {
    for number in 0.. {
        if sets.bounding.iter().any(|kept| kept.index() == number) {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, number as libc::c_ulong, 0, 0, 0) } != 0 {
            match Errno::last() {
                Errno::EINVAL => break,
                errno => {
                    let what = format!("prctl(PR_CAPBSET_DROP, {number})");
                    return Err(errno).stage("capabilities", what);
                }
            }
        }
    }
    let set = |list: &[caps::Capability]| list.iter().copied().collect::<caps::CapsHashSet>();
    caps::set(None, CapSet::Inheritable, &set(&sets.inheritable))
        .stage("capabilities", "set the inheritable set")?;
    caps::clear(None, CapSet::Ambient).stage("capabilities", "clear ambient set")?;
    // An ambient capability must be inheritable too (capabilities(7)); runc
    // skips the others, and `runc spec` lists ambient ones without it.
    for &cap in sets.ambient.iter().filter(|cap| sets.inheritable.contains(cap)) {
        caps::raise(None, CapSet::Ambient, cap).stage("capabilities", format!("raise {cap}"))?;
    }
    Ok(())
}

/// Replace the child with the command. Only a failure returns, and its errno
/// picks the exit status: ENOENT 127, anything else 126 (`docker run`).
fn exec_command(command: &[String], env: &[String]) -> Result<std::convert::Infallible> {
    let argv = to_cstrings(command)?;
    let envp = to_cstrings(env)?;
    // Rust's runtime ignores SIGPIPE in toybox, and an ignored signal stays
    // ignored across execve (signal(7)): `yes | head` would print EPIPE errors.
    // SAFETY: SIG_DFL installs no handler; nothing runs between here and execve.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .stage("exec", "signal(SIGPIPE, SIG_DFL)")?;
    let Err(errno) = execve(&argv[0], &argv, &envp);
    Err(exec_error(&command[0], errno))
}

fn to_cstrings(strings: &[String]) -> Result<Vec<CString>> {
    strings
        .iter()
        .map(|s| CString::new(s.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| fail("execve", "an argument contains a NUL byte", EXIT_TOYBOX_FAILED))
}

fn exec_error(command: &str, errno: Errno) -> Error {
    let exit_code = if errno == Errno::ENOENT { EXIT_NOT_FOUND } else { EXIT_CANNOT_EXECUTE };
    Error { stage: "execve", what: format!("execve {command}"), cause: errno.describe(), exit_code }
}

// ---------------------------------------------------------------------------
// Stage 9 (parent): wait, forwarding signals; the drops clean up.
// ---------------------------------------------------------------------------

/// How long PID 1 has to act on a forwarded signal before SIGKILL, by
/// default (docker stop).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// PID 1 of a PID namespace only receives the signals it has a handler for
/// (pid_namespaces(7)), so a forwarded SIGTERM may do nothing: toybox then
/// sends SIGKILL after `grace`. The exit status is the container's own:
/// its exit code, or 128+N when signal N killed it.
fn wait_for_child(container: &mut Container, signals: &SigSet, grace: Duration) -> Result<i32> {
    let mut deadline: Option<Instant> = None;
    loop {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match wait_for_signal(signals, timeout)? {
            None => {
                kill(container.pid, Signal::SIGKILL).stage("wait", "kill(SIGKILL)")?;
                deadline = None;
            }
            Some(Signal::SIGCHLD) => {
                let status = waitpid(container.pid, Some(WaitPidFlag::WNOHANG))
                    .stage("wait", format!("waitpid({})", container.pid))?;
                let code = match status {
                    WaitStatus::Exited(_, code) => code,
                    WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
                    _ => continue,
                };
                container.reaped = true;
                return Ok(code);
            }
            Some(signal) => {
                kill(container.pid, signal).stage("wait", format!("forward {signal}"))?;
                deadline.get_or_insert(Instant::now() + grace);
            }
        }
    }
}

/// sigtimedwait(2): the next blocked signal, or None when the timeout passes.
fn wait_for_signal(signals: &SigSet, timeout: Option<Duration>) -> Result<Option<Signal>> {
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    loop {
        // SAFETY: the set and timespec are valid for the call; siginfo may be null.
        let rc =
            unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), timespec_ptr) };
        match rc {
            -1 if Errno::last() == Errno::EAGAIN => return Ok(None),
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()).stage("wait", "sigtimedwait"),
            n => return Signal::try_from(n).map(Some).stage("wait", "sigtimedwait"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare_as_numbers() {
        assert_eq!(kernel_version("6.18.44-fc-v657"), (6, 18));
        assert_eq!(kernel_version("4.10.0"), (4, 10));
        assert!(kernel_version("4.10.0") >= MIN_KERNEL);
        assert!(kernel_version("4.4.0-210-generic") < MIN_KERNEL);
        assert!(kernel_version("3.10.0-1160.el7.x86_64") < MIN_KERNEL);
    }

    #[test]
    fn hostnames_are_adjective_noun_hex() {
        let name = random_hostname();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(ADJECTIVES.contains(&parts[0]) && NOUNS.contains(&parts[1]), "{name}");
        assert!(parts[2].len() == 6 && parts[2].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }

    /// Both ways of closing, in a forked child (they would close the test
    /// harness's own descriptors): what is above 2 goes, but `keep`.
    #[test]
    fn inherited_fds_are_closed_but_the_kept_one() {
        use nix::unistd::{ForkResult, fork};
        for close in [close_inherited_fds, close_listed_fds] {
            let kept = fs::File::open("/").map(std::os::fd::IntoRawFd::into_raw_fd);
            let other = fs::File::open("/").map(std::os::fd::IntoRawFd::into_raw_fd);
            let (Ok(kept), Ok(other)) = (kept, other) else { panic!("open /") };
            let is_open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            // SAFETY: the child only closes, checks and _exits.
            match unsafe { fork() }.expect("fork") {
                ForkResult::Child => {
                    let ok = close(Some(kept)).is_ok() && is_open(kept) && !is_open(other);
                    unsafe { libc::_exit(if ok && (0..3).all(is_open) { 0 } else { 1 }) }
                }
                ForkResult::Parent { child } => {
                    let status = waitpid(child, None).expect("waitpid");
                    assert_eq!(status, WaitStatus::Exited(child, 0));
                }
            }
            unsafe { libc::close(kept) };
            unsafe { libc::close(other) };
        }
    }
}
