//! toybox: a Linux container you can read in one sitting.
//!
//! It follows contained.c ("Linux containers in 500 lines of code", 2016)
//! stage by stage. The parent prepares, clones a child and waits; the child
//! narrows what it can see and do, then becomes the command:
//!
// >> 02 checks
//! - the parent checks the host and the input before it makes anything;
// << 02
//! - the parent names the container and clones the child, which closes
//!   every descriptor it inherited but 0, 1 and 2;
// >> 03 namespaces
//! - the child is born into new namespaces and sets its hostname;
// << 03
// >> 04 mounts
//! - it pivots into the rootfs, mounted nodev, and lets go of the host's;
// << 04
// >> 05 user namespace
//! - it enters a user namespace, whose uid/gid maps the parent writes;
// << 05
// >> 06 capabilities
//! - it drops capabilities;
// << 06
// >> 07 seccomp
//! - it loads a seccomp filter;
// << 07
// >> 08 cgroups
//! - the parent limits it with cgroups and rlimits before clone;
// << 08
// >> 09 cgroup v2
//! - on a cgroup v2 host, it clones the child straight into its group;
// << 09
// >> 10 dev
//! - the child mounts a fresh /dev;
// << 10
// >> 11 proc
//! - and /proc and /sys, with what reaches the host's kernel masked;
// << 11
// >> 12 environment
//! - the command gets docker's environment and working directory;
// << 12
// >> 13 init
//! - with --init, a small init runs as PID 1;
// << 13
// >> 14 terminal
//! - with a terminal, the container gets a pseudo-terminal of its own;
// << 14
// >> 15 ps
// before 16: //! - `toybox ps` lists it through its record;
// << 15
// >> 16 exec
//! - `toybox exec` and `toybox ps` find it through its record;
// << 16
// >> 17 images
//! - `toybox unpack` turns an image or a filesystem tar into a rootfs,
//!   owned as the container's uid map will show it;
// << 17
// >> 18 network
//! - its network namespace has lo, up; with --net bridge the parent adds
//!   an eth0 on a host bridge, a default route and outbound NAT;
// << 18
// >> 19 oci
//! - `toybox spec` and `toybox run` take the same stages from an OCI
//!   bundle's config.json instead of toybox's flags;
// << 19
//! - the child execs the command; the parent waits, forwards signals and
//!   cleans up.
//!
//! `main` is the table of contents: read it first, then each stage in order.

// >> 19 markers
// The chapters under chapters/ are made from this file: a line marked
// `// >> NN` (or a block between `// >> NN` and `// << NN`) arrives in
// chapter NN; `// before NN: code` is the code chapters before NN have there.
// Chapters before the last are written without the markers.
// << 19

mod cgroup_v2; // >> 09
mod error;
mod exec; // >> 15
mod lifecycle; // >> 19
mod netlink; // >> 18
mod network; // >> 18
mod oci; // >> 19
// >> 07 seccomp
// The filter's rules: build.rs compiles them into the binary, the tests again.
#[cfg(test)]
mod seccomp;
// << 07
mod terminal; // >> 14
mod unpack; // >> 17

use std::borrow::Cow; // >> 08
use std::ffi::CStr; // >> 19
use std::ffi::CString;
use std::fs;
use std::io::Read; // >> 09
use std::io::{self, Write};
use std::os::fd::BorrowedFd; // >> 09
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt; // >> 10
use std::os::unix::fs::PermissionsExt; // >> 02
use std::path::Path; // >> 02
use std::path::PathBuf;
use std::time::{Duration, Instant};

use caps::CapSet; // >> 06
use clap::Parser;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2}; // >> 04
use nix::sched::unshare; // >> 05
use nix::sched::{CloneFlags, clone};
use nix::sys::resource::{Resource, setrlimit}; // >> 08
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, signal, sigprocmask};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, socketpair};
use nix::sys::stat::{Mode, SFlag, makedev, mknod}; // >> 10
use nix::sys::statvfs::{FsFlags, statvfs}; // >> 04
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Uid; // >> 02
use nix::unistd::isatty; // >> 14
use nix::unistd::sethostname; // >> 03
use nix::unistd::{ForkResult, fork}; // >> 13
use nix::unistd::{Gid, read, setgroups, setresgid, setresuid, write}; // >> 05
use nix::unistd::{Pid, execve};
use nix::unistd::{chdir, pivot_root}; // >> 04

use error::{Cause, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_TOYBOX_FAILED};
use error::{Error, Result, Stage, fail};

// ---------------------------------------------------------------------------
// Stage 1: the command line.
// ---------------------------------------------------------------------------

/// What `--help` says toybox does: what this chapter's code does, no more.
const ABOUT: &str = concat!(
    "Run a command ",
    // before 03: "in a child process: the skeleton of a container",
    "in a new container: new namespaces", // >> 03
    ", a private root",                   // >> 04
    ", a user namespace",                 // >> 05
    ", fewer capabilities",               // >> 06
    ", a seccomp filter",                 // >> 07
    ", cgroup limits",                    // >> 08
);

const EXIT_STATUS_HELP: &str = concat!(
    "Exit status:\n",
    "  the command's own status    when it exits\n",
    "  128+N                       when it is killed by signal N\n",
    "  125                         toybox itself failed (bad input, a setup stage)\n",
    "  126                         the command cannot be executed\n",
    // before 04: "  127                         the command was not found\n",
    "  127                         the command was not found in the rootfs\n", // >> 04
    "\n",
    // before 03: "Signals: SIGINT, SIGTERM and SIGHUP sent to toybox are forwarded to the\n",
    // before 03: "command; if it is still running 10 s later, toybox sends SIGKILL (as\n",
    // before 03: "`docker stop` does).",
    // >> 03 namespaces
    "Signals: SIGINT, SIGTERM and SIGHUP sent to toybox are forwarded to the\n",
    "container's PID 1. PID 1 ignores signals it has no handler for, so after\n",
    "10 s toybox sends SIGKILL (as `docker stop` does).",
    // << 03
);

// The command line; clap makes --help from the doc comments.
#[derive(Parser)]
// before 15: #[command(version, about = ABOUT, after_help = EXIT_STATUS_HELP)]
#[command(version, about = ABOUT, after_help = EXIT_STATUS_HELP, subcommand_negates_reqs = true)] // >> 15
struct Args {
    // before 05: /// User id for the command; not applied yet: it runs as toybox's own
    // >> 05 user namespace
    /// User id inside the container; 0..2000, the range the uid map covers
    // << 05
    #[arg(short, long, default_value_t = 0, value_name = "UID")]
    uid: u32,
    // before 02: /// Root filesystem: not used yet, the command sees the host's files
    // >> 02 checks
    // before 04: /// Root filesystem the command will run in: checked, not entered yet
    // >> 04 mounts
    /// Root filesystem to run in (a directory, not /)
    // << 04
    // << 02
    #[arg(short, long = "mount", default_value = "./rootfs", value_name = "DIR")]
    mount: PathBuf,

    /// Print each stage and how long it took
    #[arg(short, long)]
    verbose: bool,

    // >> 12 environment
    /// Set a variable in the container's environment; KEY alone copies it
    /// from toybox's own (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Working directory inside the container, an absolute path (default /)
    #[arg(short, long = "workdir", value_name = "DIR")]
    workdir: Option<PathBuf>,
    // << 12

    // >> 13 init
    /// Run a minimal init as PID 1 that starts the command, passes signals on
    /// and reaps zombies (like docker run --init)
    #[arg(long)]
    init: bool,

    /// Seconds the container has after a forwarded SIGINT/SIGTERM/SIGHUP
    /// before SIGKILL
    #[arg(long, default_value_t = STOP_GRACE.as_secs(), value_name = "SECONDS")]
    stop_timeout: u64,
    // << 13
    // >> 18 network
    /// The container's network
    #[arg(long, value_enum, default_value = "none", value_name = "MODE")]
    net: network::Mode,

    /// The bridge's subnet with --net bridge
    #[arg(long, default_value = network::DEFAULT_SUBNET, value_name = "CIDR")]
    subnet: network::Subnet,

    /// Publish a container port on the host, on every address or on IP only
    /// (needs --net bridge; repeatable)
    #[arg(short, long = "publish", value_name = "[IP:]HOSTPORT:CTRPORT[/tcp|/udp]")]
    publish: Vec<network::Port>,
    // << 18
    // >> 19 oci
    /// Where create keeps each container's state, as runc's --root
    #[arg(long, default_value = lifecycle::DEFAULT_ROOT, value_name = "DIR", help_heading = OCI)]
    root: PathBuf,

    /// Also write errors to this file (runc's --log)
    #[arg(long, value_name = "PATH", help_heading = OCI)]
    log: Option<PathBuf>,

    /// The log's lines: text, or one JSON object each (level, msg, time)
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT", help_heading = OCI)]
    log_format: lifecycle::LogFormat,

    /// Print each stage and how long it took, as -v
    #[arg(long, help_heading = OCI)]
    debug: bool,

    /// Accepted; toybox has only the cgroupfs manager (a systemd
    /// slice:prefix:name cgroupsPath is refused)
    #[arg(long, help_heading = OCI)]
    systemd_cgroup: bool,

    /// Accepted and ignored: toybox runs as root
    #[arg(long, value_name = "VALUE", help_heading = OCI)]
    rootless: Option<String>,

    /// Accepted and ignored: toybox's groups are cgroupfs paths
    #[arg(long, value_name = "MANAGER", help_heading = OCI)]
    cgroup_manager: Option<String>,
    // << 19
    #[command(subcommand)] // >> 15
    subcommand: Option<Subcommand>, // >> 15
    /// Command to run and its arguments; everything after -c belongs to it
    #[arg(short, long = "command", required = true, num_args = 1..,
          allow_hyphen_values = true, value_name = "CMD [ARGS]...")]
    command: Vec<String>,
}

// >> 15 ps
#[derive(clap::Subcommand)]
enum Subcommand {
    // >> 16 exec
    /// Run a command in a running container: its namespaces, cgroups, uid,
    /// capabilities and seccomp filter
    // >> 19 oci
    /// (-c for a toybox container; --process for an OCI one, as runc exec)
    // << 19
    Exec {
        /// User id inside the container (default: the container's own)
        #[arg(short, long, value_name = "UID")]
        uid: Option<u32>,

        // before 19: /// The container's name, as `toybox ps` lists it
        // >> 19 oci
        /// The container's name, as `toybox ps` lists it, or an OCI container's id
        // << 19
        name: String,

        /// Command to run and its arguments; everything after -c belongs to it
        // before 19: #[arg(short, long = "command", required = true, num_args = 1..,
        #[arg(short, long = "command", num_args = 1.., // >> 19
              allow_hyphen_values = true, value_name = "CMD [ARGS]...")]
        command: Vec<String>,
        // >> 19 oci
        /// OCI: the process to run, as config.json's `process` (runc exec -p)
        #[arg(short, long, value_name = "FILE", help_heading = OCI_EXEC)]
        process: Option<PathBuf>,

        /// OCI: exit once it runs, without waiting for it
        #[arg(short, long, help_heading = OCI_EXEC)]
        detach: bool,

        /// OCI: write its pid (as the host sees it) here
        #[arg(long, value_name = "FILE", help_heading = OCI_EXEC)]
        pid_file: Option<PathBuf>,

        /// OCI: with process.terminal, send the pty to this unix socket
        #[arg(long, value_name = "PATH", help_heading = OCI_EXEC)]
        console_socket: Option<PathBuf>,

        /// OCI: accepted (conmon 2.1 sends it); process.terminal decides
        #[arg(short, long, help_heading = OCI_EXEC)]
        tty: bool,

        /// OCI: pass descriptors 3 to 3+N-1 on to it too
        #[arg(long, default_value_t = 0, value_name = "N", help_heading = OCI_EXEC)]
        preserve_fds: i32,
        // << 19
    },
    // << 16
    /// List the running containers
    Ps,
    // >> 17 images
    /// Unpack an image (OCI layout or docker save, a directory or a tar) or a
    /// filesystem tar (maybe gzip) into a new rootfs directory
    Unpack {
        /// Which image, when SOURCE holds several: its ref name or repo:tag
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,

        /// Keep the owners the image gives; by default host uid = 10000 + uid
        /// (and gid), as the container's uid map shows them
        #[arg(long)]
        no_shift: bool,

        /// An OCI image layout, a docker-save tar or a filesystem tar
        source: PathBuf,

        /// The rootfs to make: must not exist, or be an empty directory
        dest: PathBuf,
    },
    // << 17
    // >> 19 oci
    /// Write a default OCI config.json into the bundle, as `runc spec` does
    /// (its rootfs: the bundle's rootfs/)
    Spec {
        /// The bundle's directory
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
    },
    /// Run an OCI bundle's container in the foreground, as `runc run` does:
    /// create, start and wait; exit with its status
    Run {
        /// The bundle's directory: config.json and the rootfs
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,

        /// The container's id
        id: String,
    },
    /// Create an OCI bundle's container, its process stopped just before
    /// it runs the command, and exit: `start` lets it go (runc create)
    Create {
        /// The bundle's directory: config.json and the rootfs
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,

        /// Write the container process's pid (as the host sees it) here
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,

        /// With process.terminal: send the pty to this unix socket
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,

        /// Accepted: toybox always uses pivot_root
        #[arg(long)]
        no_pivot: bool,

        /// Accepted: toybox makes no session keyring
        #[arg(long)]
        no_new_keyring: bool,

        /// Pass descriptors 3 to 3+N-1 on to the container too
        #[arg(long, default_value_t = 0, value_name = "N")]
        preserve_fds: i32,

        /// The container's id
        id: String,
    },
    /// Let a created container's process run its command (runc start)
    Start {
        /// The container's id
        id: String,
    },
    /// Print a container's state as JSON (runc state)
    State {
        /// The container's id
        id: String,
    },
    /// Send a signal to a created or running container (runc kill)
    Kill {
        /// To every process in the container's cgroup, not only its first
        #[arg(short, long)]
        all: bool,

        /// The container's id
        id: String,

        /// A number, a name (TERM) or SIG and a name (SIGTERM)
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped container: its cgroups and its state (runc delete)
    Delete {
        /// A created or running container too: SIGKILL it first; an
        /// unknown id is no error
        #[arg(short, long)]
        force: bool,

        /// The container's id
        id: String,
    },
    // << 19
}
// << 15

// >> 19 oci
const OCI: &str = "OCI runtime (runc's global flags, before the command)";
const OCI_EXEC: &str = "OCI exec (runc exec's flags)";
// << 19

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
// >> 19 oci
/// `toybox run` fills it from a bundle's config.json instead (oci.rs).
// << 19
pub(crate) struct ChildConfig {
    /// The container's name: its cgroups and its record are called so.
    pub name: String,
    /// The command and its arguments; a name without a slash is looked up in
    /// the PATH of `env`.
    pub command: Vec<String>,
    /// The command's whole environment, exactly as it gets it.
    pub env: Vec<String>,
    // >> 12 environment
    /// The working directory, inside the container.
    pub cwd: Option<PathBuf>,
    // << 12
    /// The namespaces the child is born into (clone(2) flags).
    pub namespaces: CloneFlags,
    // >> 03 namespaces
    /// None leaves the hostname alone (no UTS namespace of its own).
    pub hostname: Option<String>,
    // << 03
    // >> 19 oci
    /// Namespaces joined instead of made: setns(2) on the file at the path.
    pub joined_namespaces: Vec<(CloneFlags, PathBuf)>,
    // << 19
    // >> 04 mounts
    pub rootfs: PathBuf,
    // << 04
    // >> 19 oci
    /// Remount / read-only once everything is mounted.
    pub readonly_root: bool,
    // << 19
    // >> 10 dev
    /// What is mounted inside after pivot_root, in order.
    pub mounts: Vec<Mount>,
    // << 10
    // >> 19 oci
    /// Nodes made in /dev besides DEVICES (linux.devices).
    pub devices: Vec<Device>,
    // << 19
    // >> 11 proc
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    // << 11
    // >> 19 oci
    /// Written to /proc/sys inside, before readonly_paths.
    pub sysctl: Vec<(String, String)>,
    // << 19
    // >> 05 user namespace
    /// The uid_map and gid_map the parent writes; None: no user namespace.
    pub id_maps: Option<(String, String)>,
    pub user: User,
    // << 05
    // >> 06 capabilities
    pub capabilities: Capabilities,
    // << 06
    // >> 19 oci
    /// Written to /proc/self/oom_score_adj, which the command inherits.
    pub oom_score_adj: Option<i32>,
    // << 19
    // >> 07 seccomp
    /// Classic BPF programs, loaded in order; each as seccomp(2) takes it.
    pub seccomp: Vec<Vec<u8>>,
    pub no_new_privileges: bool,
    // << 07
    // >> 08 cgroups
    /// (resource, soft, hard), set before clone.
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// The container's group, relative to each hierarchy's root.
    pub cgroup: PathBuf,
    /// The limits of a cgroup v1 host, in its file names.
    pub cgroup_v1: Vec<CgroupSetting>,
    // << 08
    // >> 09 cgroup v2
    /// The same limits in cgroup v2's names.
    pub cgroup_v2: Vec<CgroupSetting>,
    // << 09
    // >> 13 init
    pub init: bool,
    // << 13
    // >> 14 terminal
    pub terminal: bool,
    // << 14
    /// How long PID 1 has after a forwarded signal before SIGKILL.
    pub stop_grace: Duration,
    // >> 19 oci
    /// `create`: the exec fifo, which the child reads before execve: it
    /// blocks there until `start` writes a byte (lifecycle.rs).
    pub exec_fifo: Option<OwnedFd>,
    /// Descriptors the child keeps besides 0, 1, 2 and its socket: the
    /// fifo, the --log file, and --preserve-fds' 3..3+N for the command.
    pub kept_fds: Vec<RawFd>,
    // << 19
    // >> 18 network
    pub net: network::Mode,
    pub subnet: network::Subnet,
    pub publish: Vec<network::Port>,
    // << 18
}

// >> 05 user namespace
/// Who the command runs as, inside the container.
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    // >> 19 oci
    pub umask: Option<u32>,
    // << 19
}

impl User {
    /// contained.c's: the uid, and the group of the same number.
    pub fn contained(uid: u32) -> User {
        User {
            uid,
            gid: uid,
            groups: vec![uid],
            umask: None, // >> 19
        }
    }
}
// << 05

// >> 06 capabilities
/// The five sets of capabilities(7). None leaves a set as the uid switch and
/// the drops leave it.
pub(crate) struct Capabilities {
    pub bounding: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
    // >> 19 oci
    pub effective: Option<Vec<caps::Capability>>,
    pub permitted: Option<Vec<caps::Capability>>,
    // << 19
}

impl Capabilities {
    /// contained.c's: its list bounds them all, nothing is inherited.
    pub fn contained() -> Capabilities {
        Capabilities {
            bounding: KEPT_CAPABILITIES.to_vec(),
            inheritable: Vec::new(),
            ambient: Vec::new(),
            effective: None, // >> 19
            permitted: None, // >> 19
        }
    }
}
// << 06

// >> 10 dev
/// One mount(2) of a filesystem without a source device, on a path inside.
pub(crate) struct Mount {
    pub fstype: String,
    pub target: String,
    pub flags: MsFlags,
    pub data: String,
    // >> 19 oci
    /// A host file or directory bound there instead (MS_BIND).
    pub bind: Option<PathBuf>,
    /// mount(2)'s source: a filesystem without a device takes any name,
    /// and /proc/self/mountinfo shows it (`shm`, `devpts`…).
    pub source: String,
    // << 19
}
// << 10

// >> 19 oci
/// A node in /dev, as the container sees it: the path, the type (a
/// character or block device, or a FIFO), the numbers, and who owns it.
pub(crate) struct Device {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
// << 19

// >> 05 user namespace
fn contained_map() -> String {
    format!("0 {USERNS_OFFSET} {USERNS_COUNT}\n")
}
// << 05

/// The description toybox's own flags make: contained.c's choices.
fn child_config(args: &Args, hostname: &str) -> ChildConfig {
    ChildConfig {
        name: hostname.to_string(),
        command: args.command.clone(),
        // before 12: env: Vec::new(),
        env: container_env(args.uid, hostname, &args.env), // >> 12
        cwd: args.workdir.clone(),                         // >> 12
        namespaces: namespace_flags(),
        hostname: Some(hostname.to_string()), // >> 03
        joined_namespaces: Vec::new(),        // >> 19
        rootfs: args.mount.clone(),           // >> 04
        readonly_root: false,                 // >> 19
        // >> 10 dev
        mounts: DEV_MOUNTS
            .iter()
            .chain(PROC_MOUNTS) // >> 11
            .map(|&(fstype, target, flags, data)| Mount {
                fstype: fstype.into(),
                target: target.into(),
                flags,
                data: data.into(),
                bind: None,            // >> 19
                source: fstype.into(), // >> 19
            })
            .collect(),
        // << 10
        devices: Vec::new(), // >> 19
        masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(), // >> 11
        readonly_paths: READ_ONLY_PATHS.iter().map(|p| p.to_string()).collect(), // >> 11
        sysctl: Vec::new(),  // >> 19
        // >> 05 user namespace
        id_maps: Some((contained_map(), contained_map())),
        user: User::contained(args.uid),
        // << 05
        capabilities: Capabilities::contained(), // >> 06
        oom_score_adj: None,                     // >> 19
        seccomp: SECCOMP_PROGRAMS.iter().map(|p| p.to_vec()).collect(), // >> 07
        no_new_privileges: true,                 // >> 07
        rlimits: vec![(Resource::RLIMIT_NOFILE, 64, 64)], // >> 08
        cgroup: Path::new(CGROUP_PARENT).join(hostname), // >> 08
        cgroup_v1: CGROUP_V1_SETTINGS.to_vec(),  // >> 08
        cgroup_v2: cgroup_v2::SETTINGS.to_vec(), // >> 09
        init: args.init,                         // >> 13
        terminal: terminal::wanted(),            // >> 14
        // before 13: stop_grace: STOP_GRACE,
        stop_grace: Duration::from_secs(args.stop_timeout), // >> 13
        exec_fifo: None,                                    // >> 19
        kept_fds: Vec::new(),                               // >> 19
        net: args.net,                                      // >> 18
        subnet: args.subnet,                                // >> 18
        publish: args.publish.clone(),                      // >> 18
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
            // before 14: let end = "\n";
            // >> 14 terminal
            // A terminal the relay has put in raw mode no longer adds the \r.
            let end = if isatty(io::stderr()).unwrap_or(false) { "\r\n" } else { "\n" };
            // << 14
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
            // before 19: let _ = io::stderr().write_all(format!("toybox: {e}\n").as_bytes());
            report(&e); // >> 19
            e.exit_code
        }
    };
    std::process::exit(code);
}

// >> 19 oci
/// An error, on stderr as one line, and with --log in the log file too
/// (runc writes both).
fn report(e: &Error) {
    if e.what.is_empty() {
        return; // already said, by the container's process
    }
    lifecycle::log_error(e);
    let _ = io::stderr().write_all(format!("toybox: {e}\n").as_bytes());
}
// << 19

fn run() -> Result<i32> {
    let args = parse_args()?;
    // before 19: let progress = Progress { verbose: args.verbose };
    let progress = Progress { verbose: args.verbose || args.debug }; // >> 19
    // >> 15 ps
    // before 16: if let Some(Subcommand::Ps) = &args.subcommand {
    // before 16:     return exec::list();
    // before 16: }
    // >> 16 exec
    match &args.subcommand {
        // before 19: Some(Subcommand::Exec { uid, name, command }) => {
        // >> 19 oci
        // -c is toybox's own exec, --process the OCI one (lifecycle.rs).
        Some(Subcommand::Exec { process: None, command, .. }) if command.is_empty() => {
            let what = "exec needs -c CMD (a toybox container) or --process FILE (an OCI one)";
            return Err(fail("arguments", what, EXIT_TOYBOX_FAILED));
        }
        Some(Subcommand::Exec { process: None, uid, name, command, .. }) => {
            // << 19
            return exec::exec_into(name, *uid, command);
        }
        Some(Subcommand::Ps) => return exec::list(),
        // >> 17 images
        Some(Subcommand::Unpack { reference, no_shift, source, dest }) => {
            return unpack::run(source, dest, reference.as_deref(), !no_shift);
        }
        // << 17
        // >> 19 oci
        Some(Subcommand::Spec { bundle }) => return oci::spec(bundle),
        Some(command) => return lifecycle::command(&args, command, progress),
        // << 19
        None => {}
    }
    // << 16
    // << 15
    progress.stage("checks", || check_host(&args))?; // >> 02
    let config = child_config(&args, &random_hostname());
    progress.note(&format!("hostname {}", config.name));
    // before 19: run_container(&config, progress)
    run_container(&config, progress, |_, _| Ok(())) // >> 19
}

/// Everything from the socketpair to the cleanup: make the container the
/// description says, wait for it, and answer with its exit status.
// before 19: fn run_container(config: &ChildConfig, progress: Progress) -> Result<i32> {
// >> 19 oci
/// `saved` is told the container's pid and groups once it is cloned:
/// `toybox run` writes its OCI state there.
fn run_container(
    config: &ChildConfig,
    progress: Progress,
    saved: impl FnOnce(Pid, &[PathBuf]) -> Result<()>,
) -> Result<i32> {
    // << 19
    // before 05: let (_parent_sock, child_sock) = progress.stage("socketpair", create_socketpair)?;
    let (parent_sock, child_sock) = progress.stage("socketpair", create_socketpair)?; // >> 05
    exec::remove_stale_records(); // >> 15
    // >> 18 network
    // An address, and with the first container the bridge and NAT: before
    // cgroups, so that `nft` does not run in the container's group.
    let network = network::prepare(config.net, config.subnet, &config.publish, &config.name)?;
    // << 18
    // >> 08 cgroups
    // before 09: let cgroups = progress.stage("cgroups", || create_cgroups(config))?;
    let mut cgroups = progress.stage("cgroups", || create_cgroups(config))?; // >> 09
    progress.stage("rlimits", || set_rlimits(&config.rlimits))?;
    // << 08
    let signals = block_signals()?;
    let mut container = progress.stage("clone", || {
        // before 09: clone_child(config, &child_sock, &signals, progress)
        clone_child(config, &child_sock, &signals, &mut cgroups, progress) // >> 09
    })?;
    drop(child_sock); // so a dead child reads as EOF on our end
    // >> 15 ps
    let (name, uid, command) = (&config.name, config.user.uid, &config.command);
    let record = exec::write_record(name, container.pid, uid, command, &cgroups.dirs())?;
    // << 15
    saved(container.pid, &cgroups.dirs())?; // >> 19
    // >> 18 network
    // While the child mounts; done before the uid map lets it go on.
    progress.stage("network", || network::attach(&network, container.pid))?;
    // << 18
    let maps = &config.id_maps; // >> 05
    progress.stage("uid map", || handle_child_uid_map(container.pid, &parent_sock, maps))?; // >> 05
    // >> 14 terminal
    let terminal = match config.terminal {
        true => Some(progress.stage("terminal", || terminal::relay_parent(&parent_sock))?),
        false => None,
    };
    // << 14
    let grace = config.stop_grace;
    let status =
        progress.stage("wait", || wait_for_child(&mut container, &signals.forwarded, grace))?;
    // >> 14 terminal
    if let Some(relay) = terminal {
        relay.finish(); // the container's last output, then the user's terminal back
    }
    // << 14
    progress.note(&format!("exit status {status}"));
    // >> 08 cgroups
    // The child is reaped: its cgroups can go. On an error return above, the
    // same Drops run as the locals go out of scope.
    progress.stage("cleanup", || {
        drop(record); // >> 15
        drop(cgroups);
        drop(network); // >> 18
        Ok(())
    })?;
    // << 08
    Ok(status)
}

// >> 19 oci
/// `create`: run_container's stages up to the wait, but the child stops
/// just before execve (wait_for_start) and toybox does not wait for it.
/// Once the child says it is ready, `record` writes down its pid and its
/// groups (state and pid file); only then do the guards let go of them,
/// so any failure before leaves no process, no group, no mount behind.
/// With a terminal, the child's pty goes to the console socket instead of
/// being relayed.
pub(crate) fn create_container(
    config: &ChildConfig,
    console: Option<(&Path, Option<(u16, u16)>)>,
    progress: Progress,
    record: impl FnOnce(Pid, &[PathBuf]) -> Result<()>,
) -> Result<()> {
    let (parent_sock, child_sock) = progress.stage("socketpair", create_socketpair)?;
    let mut cgroups = progress.stage("cgroups", || create_cgroups(config))?;
    progress.stage("rlimits", || set_rlimits(&config.rlimits))?;
    let signals = block_signals()?;
    let mut container = progress
        .stage("clone", || clone_child(config, &child_sock, &signals, &mut cgroups, progress))?;
    drop(child_sock);
    let maps = &config.id_maps;
    progress.stage("uid map", || handle_child_uid_map(container.pid, &parent_sock, maps))?;
    if let Some((socket, size)) = console {
        progress.stage("terminal", || terminal::send_to_console(&parent_sock, socket, size))?;
    }
    // One byte: set up and waiting. End of file: it failed, and said why.
    let mut ready = [0u8];
    if read(&parent_sock, &mut ready).ok() != Some(1) {
        let status = waitpid(container.pid, None).stage("create", "waitpid")?;
        container.reaped = true;
        let code = match status {
            WaitStatus::Exited(_, code) => code,
            _ => EXIT_TOYBOX_FAILED,
        };
        return Err(error::reported(code));
    }
    record(container.pid, &cgroups.dirs())?;
    // Until this byte the child ends itself should toybox die (end of file).
    write(&parent_sock, b"k").stage("create", "tell the container it is recorded")?;
    container.reaped = true; // not ours to kill any more: `delete` does
    cgroups.keep();
    Ok(())
}
// << 19

// >> 02 checks
// ---------------------------------------------------------------------------
// Stage 2: checks, before anything is created.
// ---------------------------------------------------------------------------

/// The newest feature toybox relies on: CLONE_NEWCGROUP arrived in Linux 4.6
/// (cgroup_namespaces(7)). User namespaces (3.8), the pids controller (4.3)
/// and ambient capabilities (4.3) are older.
const MIN_KERNEL: (u32, u32) = (4, 6);
const MIN_KERNEL_FEATURE: &str = "CLONE_NEWCGROUP (cgroup namespaces)";

// >> 05 user namespace
/// Inside uids 0..2000 map to 10000..12000 on the host (contained.c's map).
const USERNS_OFFSET: u32 = 10000;
const USERNS_COUNT: u32 = 2000;
// << 05

fn check_host(args: &Args) -> Result<()> {
    let euid = Uid::effective();
    if !euid.is_root() {
        let what = format!(
            "toybox needs root to create namespaces and cgroups (running as uid {euid}); try sudo"
        );
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    check_kernel()?;
    // >> 05 user namespace
    if args.uid >= USERNS_COUNT {
        let what = format!("uid {} is outside the mapped range 0..{USERNS_COUNT}", args.uid);
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    // << 05
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
    // >> 12 environment
    check_env_and_workdir(args)?;
    if !args.command[0].contains('/') {
        return check_command_in_path(&resolved, &args.command[0], search_path(&args.env));
    }
    // << 12
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

// >> 12 environment
/// A name without a slash is looked up in the container's PATH, inside the
/// rootfs, the way the shell and execvp(3) look it up.
fn check_command_in_path(rootfs: &Path, name: &str, path: &str) -> Result<()> {
    for dir in path.split(':').filter(|dir| dir.starts_with('/')) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if fs::symlink_metadata(rootfs.join(&candidate[1..])).is_ok() {
            return check_command(rootfs, &candidate);
        }
    }
    let what = format!("command {name} not found in PATH {path} in {}", rootfs.display());
    Err(fail("checks", what, EXIT_NOT_FOUND))
}

fn check_env_and_workdir(args: &Args) -> Result<()> {
    if let Some(entry) = args.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
        let what = format!("-e {entry:?}: want KEY=VALUE or KEY");
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    if let Some(dir) = args.workdir.as_ref().filter(|dir| !dir.is_absolute()) {
        let what = format!("-w {}: the working directory must be an absolute path", dir.display());
        return Err(fail("checks", what, EXIT_TOYBOX_FAILED));
    }
    Ok(())
}
// << 12
// << 02

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

// >> 08 cgroups
// ---------------------------------------------------------------------------
// Stage 5: cgroups and rlimits, in the parent before clone, so that the child
// is born limited.
// ---------------------------------------------------------------------------

const GIB: &str = "1073741824";

/// contained.c's table, cgroup v1 file names. The memsw line makes swap count
/// toward the 1 GiB (memory+swap), so swap cannot stretch the limit.
/// `optional` marks files a kernel may lack: memsw without swap accounting,
/// blkio.weight without CFQ (gone in 5.0), blkio.bfq.weight without BFQ.
/// Each I/O scheduler reads its own weight, so both are written where both
/// exist, each a tenth of its default: CFQ's 50 of 500 (contained.c's), and
/// BFQ's 10 of 100 (Documentation/block/bfq-iosched.rst; range 1..1000).
/// contained.c's third memory line,
/// memory.kmem.limit_in_bytes, is left out: since Linux 4.6 every v1 group
/// charges kernel memory to memory.limit_in_bytes as well, and since 5.16
/// ("memcg, kmem: further deprecate kmem.limit_in_bytes") no kernel enforces
/// a kmem limit: a write fails with EOPNOTSUPP, or on later kernels is
/// accepted and ignored (Documentation/admin-guide/cgroup-v1/memory.rst).
const CGROUP_V1_SETTINGS: &[CgroupSetting] = &[
    required("memory", "memory.limit_in_bytes", GIB),
    optional("memory", "memory.memsw.limit_in_bytes", GIB),
    required("cpu", "cpu.shares", "256"),
    required("pids", "pids.max", "64"),
    optional("blkio", "blkio.weight", "50"),
    optional("blkio", "blkio.bfq.weight", "10"),
    // >> 10 dev
    // Only the devices /dev has (DEVICES below), and the ptys of the new
    // devpts: ptmx and the pts majors' first (devices(7)). `m` lets toybox
    // mknod the six nodes; the child is in this group when mount_dev runs.
    required("devices", "devices.deny", "a"),
    required("devices", "devices.allow", "c 1:3 rwm"),
    required("devices", "devices.allow", "c 1:5 rwm"),
    required("devices", "devices.allow", "c 1:7 rwm"),
    required("devices", "devices.allow", "c 1:8 rwm"),
    required("devices", "devices.allow", "c 1:9 rwm"),
    required("devices", "devices.allow", "c 5:0 rwm"),
    required("devices", "devices.allow", "c 5:2 rw"),
    required("devices", "devices.allow", "c 136:* rw"),
    // << 10
];

#[derive(Clone)]
pub(crate) struct CgroupSetting {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: Cow<'static, str>,
    pub required: bool,
}

pub(crate) const fn required(
    controller: &'static str,
    file: &'static str,
    value: &'static str,
) -> CgroupSetting {
    CgroupSetting { controller, file, value: Cow::Borrowed(value), required: true }
}

pub(crate) const fn optional(
    controller: &'static str,
    file: &'static str,
    value: &'static str,
) -> CgroupSetting {
    CgroupSetting { controller, file, value: Cow::Borrowed(value), required: false }
}

// >> 10 dev
/// A devices.allow row as numbers, for v2's BPF program: the device's type
/// (BPF_DEVCG_DEV_BLOCK 1, BPF_DEVCG_DEV_CHAR 2), major, minor (None for
/// `*`), and the access allowed (mknod 1, read 2, write 4).
pub(crate) struct DeviceRule {
    pub kind: u32,
    pub major: u32,
    pub minor: Option<u32>,
    pub access: u32,
}

/// The `devices.allow` rows of a v1 settings list: the one description of
/// what the container may open, which v2 compiles into a program.
pub(crate) fn device_rules(settings: &[CgroupSetting]) -> Vec<DeviceRule> {
    let rows = settings.iter().filter(|s| s.file == "devices.allow");
    rows.filter_map(|row| {
        let (kind, rest) = row.value.split_once(' ')?;
        let (numbers, letters) = rest.split_once(' ')?;
        let (major, minor) = numbers.split_once(':')?;
        let bit = |letter, bit| if letters.contains(letter) { bit } else { 0 };
        Some(DeviceRule {
            kind: match kind {
                "b" => 1,
                "c" => 2,
                _ => return None,
            },
            major: major.parse().ok()?,
            minor: minor.parse().ok(),
            access: bit('m', 1) | bit('r', 2) | bit('w', 4),
        })
    })
    .collect()
}
// << 10

/// The groups toybox made; dropping this removes them.
enum Cgroups {
    #[allow(dead_code)] // held for its Drop
    V1(CgroupsV1),
    V2(cgroup_v2::Group), // >> 09
}

// >> 19 oci
/// The groups create_cgroups makes for `config`, known before it makes
/// them: `create` writes them down first, for `delete` to find should
/// toybox be killed half-way.
pub(crate) fn planned_cgroups(config: &ChildConfig) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(&config.cgroup)];
    }
    let mut controllers: Vec<&str> = config.cgroup_v1.iter().map(|s| s.controller).collect();
    controllers.sort_unstable();
    controllers.dedup();
    controllers.iter().map(|c| root.join(c).join(&config.cgroup)).collect()
}
// << 19

// >> 15 ps
impl Cgroups {
    // >> 19 oci
    /// `create`: the groups outlive toybox; `delete` removes them. (On v1
    /// toybox stays in them the moment it has left to live.)
    fn keep(self) {
        match self {
            Cgroups::V1(mut v1) => v1.groups.clear(),
            Cgroups::V2(group) => group.keep(),
        }
    }
    // << 19

    /// The directories made, for the container's record: should toybox be
    /// killed outright, whoever finds the record stale removes them.
    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroups::V1(v1) => v1.groups.iter().map(|group| group.made.clone()).collect(),
            Cgroups::V2(group) => vec![group.path.clone()],
        }
    }
}
// << 15

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Every container's groups are made in this one parent group, at the top of
/// each hierarchy (as docker's cgroupfs driver makes `docker/`): one place to
/// find them. The parent stays when the containers are gone.
// >> 09 cgroup v2
/// In v2 it is also the one place whose controllers toybox enables.
// << 09
const CGROUP_PARENT: &str = "toybox";

/// mkdir the parent group (and any above it), which another toybox may be
/// making at this moment: create_dir_all takes one made meanwhile as made.
fn make_parent_group(parent: &Path) -> Result<()> {
    fs::create_dir_all(parent).stage("cgroups", format!("mkdir {}", parent.display()))
}

// before 09: /// contained.c's cgroups are v1's: a hierarchy per controller under /sys/fs/cgroup.
// >> 09 cgroup v2
/// A pure cgroup v2 host mounts the unified hierarchy itself at
/// /sys/fs/cgroup; v1 and hybrid hosts (like systemd's "hybrid" mode, with
/// cgroup2 at /sys/fs/cgroup/unified) keep the v1 controllers there.
// << 09
fn create_cgroups(config: &ChildConfig) -> Result<Cgroups> {
    // >> 09 cgroup v2
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        // before 10: return cgroup_v2::create(&config.cgroup, &config.cgroup_v2).map(Cgroups::V2);
        // >> 10 dev
        let devices = device_rules(&config.cgroup_v1);
        return cgroup_v2::create(&config.cgroup, &config.cgroup_v2, &devices).map(Cgroups::V2);
        // << 10
    }
    // << 09
    create_cgroups_v1(&config.cgroup, &config.cgroup_v1).map(Cgroups::V1)
}

/// The v1 groups toybox made, one per controller.
struct CgroupsV1 {
    groups: Vec<V1Group>,
}

struct V1Group {
    controller: &'static str,
    /// The group toybox was in, to move back to before rmdir.
    from: PathBuf,
    made: PathBuf,
}

/// contained.c's way for cgroup v1: make a group per controller (in the
/// `toybox` parent at the top of its hierarchy), write the limits, then move
/// toybox itself in, so the child it clones starts inside. A v1 controller
/// that is not mounted gets one warning and no limit.
fn create_cgroups_v1(group: &Path, settings: &[CgroupSetting]) -> Result<CgroupsV1> {
    // before 09: let current = fs::read_to_string("/proc/self/cgroup").stage("cgroups", "read /proc/self/cgroup")?;
    // >> 09 cgroup v2
    let current =
        read_kernel_file("/proc/self/cgroup").stage("cgroups", "read /proc/self/cgroup")?;
    // << 09
    let mut cgroups = CgroupsV1 { groups: Vec::new() };
    let mut missing = Vec::new();
    for setting in settings {
        let controller = setting.controller;
        let made = cgroups.groups.iter().position(|g| g.controller == controller);
        let at = match made {
            Some(at) => at,
            None if missing.contains(&controller) => continue,
            None => {
                let Some(from) = v1_current_group(&current, controller) else {
                    if setting.required {
                        missing.push(controller);
                    }
                    continue;
                };
                let made = Path::new(CGROUP_ROOT).join(controller).join(group);
                if let Some(parent) = made.parent() {
                    make_parent_group(parent)?;
                }
                fs::create_dir(&made).stage("cgroups", format!("mkdir {}", made.display()))?;
                cgroups.groups.push(V1Group { controller, from, made });
                // >> 19 oci
                if controller == "cpuset" {
                    let last = cgroups.groups.len() - 1;
                    inherit_cpuset(&cgroups.groups[last].made)?;
                }
                // << 19
                cgroups.groups.len() - 1
            }
        };
        write_setting(&cgroups.groups[at].made, setting)?;
    }
    warn_unlimited("v1", &missing);
    // `tasks`, not `cgroup.procs`: "0" written to `tasks` moves only the
    // calling thread, and toybox has one here (cgroups(7)). A write to
    // cgroup.procs moves a whole thread group under a global lock taken for
    // writing (cgroup_threadgroup_rwsem, kernel/cgroup/cgroup.c), which
    // first waits for an RCU grace period: some milliseconds per start.
    for group in &cgroups.groups {
        let tasks = group.made.join("tasks");
        fs::write(&tasks, "0").stage("cgroups", format!("write {}", tasks.display()))?;
    }
    Ok(cgroups)
}

// >> 09 cgroup v2
/// /proc and cgroup files report a size of 0, so fs::read_to_string stats
/// them, then reads in small growing chunks, and the kernel renders the whole
/// file for each one. Reads into a page-sized buffer take them in one read
/// (and one more to see the end).
pub(crate) fn read_kernel_file(path: impl AsRef<Path>) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut bytes = vec![0; 4096];
    let mut len = 0;
    loop {
        match file.read(&mut bytes[len..])? {
            0 => break,
            n => len += n,
        }
        if len == bytes.len() {
            bytes.resize(2 * len, 0);
        }
    }
    bytes.truncate(len);
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
// << 09

// >> 19 oci
/// A v1 cpuset group starts with no CPUs and no memory nodes, and takes no
/// task until it has both (cgroups(7), Documentation/admin-guide/cgroup-v1/
/// cpusets.rst); its own may only be a subset of its parent's. So each
/// group from the top down gets its parent's lists where it has none.
fn inherit_cpuset(group: &Path) -> Result<()> {
    let top = Path::new(CGROUP_ROOT).join("cpuset");
    let below = group.strip_prefix(&top).unwrap_or(Path::new(""));
    let mut dir = top;
    for part in below.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = read_kernel_file(dir.join(file)).unwrap_or_default();
            if own.trim().is_empty() {
                let from = parent.join(file);
                let list =
                    read_kernel_file(&from).stage("cgroups", format!("read {}", from.display()))?;
                let to = dir.join(file);
                fs::write(&to, list.trim()).stage("cgroups", format!("write {}", to.display()))?;
            }
        }
    }
    Ok(())
}
// << 19

/// Write one limit; an optional file the kernel does not have is skipped.
fn write_setting(group: &Path, setting: &CgroupSetting) -> Result<()> {
    let file = group.join(setting.file);
    if !setting.required && !file.exists() {
        return Ok(());
    }
    fs::write(&file, &*setting.value).stage("cgroups", format!("write {}", file.display()))
}

fn warn_unlimited(version: &str, missing: &[&str]) {
    if !missing.is_empty() {
        let missing = missing.join(", ");
        eprintln!(
            "toybox: cgroups: no cgroup {version} controller {missing} under {CGROUP_ROOT}; \
             continuing without those limits"
        );
    }
}

/// Where toybox sits in a v1 hierarchy, from a `/proc/self/cgroup` line such
/// as `4:memory:/user.slice` (cgroups(7)); None when it is not mounted.
fn v1_current_group(proc_self_cgroup: &str, controller: &str) -> Option<PathBuf> {
    let mount = Path::new(CGROUP_ROOT).join(controller);
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.split(',').any(|c| c == controller) && mount.join("cgroup.procs").exists() {
            return Some(mount.join(path.trim_start_matches('/')));
        }
    }
    None
}

impl Drop for CgroupsV1 {
    /// A v1 group can only be removed once it has no tasks: move toybox back
    /// to where it was, then rmdir. By now the container has been reaped.
    /// Threads toybox started since it joined (the terminal relay's) are in
    /// the group too: each goes back by its id, and only then does toybox
    /// itself, by "0" (see create_cgroups_v1: only a tid takes the lock).
    fn drop(&mut self) {
        let threads = other_threads();
        for group in self.groups.iter().rev() {
            let tasks = group.from.join("tasks");
            for tid in threads.iter().map(String::as_str).chain(["0"]) {
                match fs::write(&tasks, tid) {
                    Err(e) if tid == "0" || e.raw_os_error() != Some(libc::ESRCH) => {
                        eprintln!("toybox: cleanup: write {}: {}", tasks.display(), e.describe())
                    }
                    _ => {} // moved, or a thread that has exited since
                }
            }
            if let Err(e) = fs::remove_dir(&group.made) {
                eprintln!("toybox: cleanup: rmdir {}: {}", group.made.display(), e.describe());
            }
        }
    }
}

/// The ids of toybox's threads other than the calling one (proc(5),
/// /proc/self/task).
fn other_threads() -> Vec<String> {
    let own = nix::unistd::gettid().to_string();
    let tasks = fs::read_dir("/proc/self/task").into_iter().flatten().flatten();
    tasks.map(|t| t.file_name().to_string_lossy().into_owned()).filter(|t| *t != own).collect()
}

/// rlimits are per process and inherited across clone and execve, so they
/// must be set before clone (setrlimit(2)). 64 open files, as contained.c.
fn set_rlimits(rlimits: &[(Resource, u64, u64)]) -> Result<()> {
    for &(resource, soft, hard) in rlimits {
        setrlimit(resource, soft, hard)
            .stage("rlimits", format!("setrlimit({resource:?}, {soft})"))?;
    }
    Ok(())
}
// << 08

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

// >> 03 namespaces
/// contained.c's flags. CLONE_NEWUSER is not among them: the child unshares
/// it later, after its mounts, which need the host user namespace's privilege.
// << 03
fn namespace_flags() -> CloneFlags {
    // before 03: CloneFlags::empty()
    // >> 03 namespaces
    CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
    // << 03
}

const STACK_SIZE: usize = 1024 * 1024;

fn clone_child(
    config: &ChildConfig,
    sock: &OwnedFd,
    signals: &Signals,
    cgroups: &mut Cgroups, // >> 09
    progress: Progress,
) -> Result<Container> {
    let child = || run_child(config, sock, &signals.original, progress);
    let _back = join_pid_namespace(&config.joined_namespaces)?; // >> 19
    // >> 09 cgroup v2
    if let Cgroups::V2(group) = cgroups
        && let Some(fd) = group.fd()
    {
        match clone3_into_cgroup(fd, config.namespaces) {
            Ok(Some(pid)) => return Ok(Container { pid, reaped: false }),
            // SAFETY: _exit(2) ends the child without running the parent's cleanup.
            Ok(None) => unsafe { libc::_exit(child() as i32) },
            // Before Linux 5.7, or under a filter that refuses clone3.
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL) => group.join()?,
            Err(e) => return Err(e).stage("clone", "clone3(CLONE_INTO_CGROUP)"),
        }
    }
    // << 09
    let mut stack = vec![0u8; STACK_SIZE];
    // SAFETY: without CLONE_VM the child gets its own copy of memory, as with
    // fork(2); it only runs `run_child` and then execs or exits.
    let pid = unsafe {
        clone(Box::new(child), &mut stack, config.namespaces, Some(Signal::SIGCHLD as i32))
    }
    .stage("clone", format!("clone({:?})", config.namespaces))?;
    Ok(Container { pid, reaped: false })
}

// >> 09 cgroup v2
/// clone3(2) with CLONE_INTO_CGROUP (Linux 5.7) starts the child inside its
/// cgroup v2 group: it never runs outside it, and toybox never joins it.
/// Used like fork (no new stack, no CLONE_VM), it returns twice: the child's
/// pid in the parent, None in the child.
fn clone3_into_cgroup(
    cgroup: BorrowedFd,
    namespaces: CloneFlags,
) -> std::result::Result<Option<Pid>, Errno> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let clone_args = CloneArgs {
        flags: namespaces.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: Signal::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    let size = std::mem::size_of::<CloneArgs>();
    // SAFETY: clone_args is a valid struct clone_args of `size` bytes; without
    // CLONE_VM the child runs on a copy of this stack, as after fork(2).
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &clone_args as *const CloneArgs, size) };
    match rc {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}
// << 09

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
    // before 19: let _ = io::stderr().write_all(format!("toybox: {error}\n").as_bytes());
    report(&error); // >> 19
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
    // before 19: close_inherited_fds(Some(sock.as_raw_fd()))?;
    close_inherited_fds(&[&[sock.as_raw_fd()], &config.kept_fds[..]].concat())?; // >> 19
    // >> 19 oci
    if let Some(value) = config.oom_score_adj {
        progress.stage("oom score", || set_oom_score_adj(value))?;
    }
    progress.stage("join namespaces", || join_namespaces(&config.joined_namespaces))?;
    // << 19
    // before 03: progress.note(&format!("{} stays a name: no UTS namespace to set it in", config.name));
    // >> 03 namespaces
    if let Some(name) = &config.hostname {
        progress.stage("hostname", || set_hostname(name))?;
    }
    // << 03
    // >> 18 network
    if config.namespaces.contains(CloneFlags::CLONE_NEWNET) {
        progress.stage("loopback", || network::inside(config.net))?;
    }
    // << 18
    // >> 04 mounts
    // before 18: progress.stage("mounts", || setup_mounts(&config.rootfs))?;
    // >> 18 network
    // before 19: progress.stage("mounts", || setup_mounts(&config.rootfs, &config.name))?;
    // << 18
    // >> 19 oci
    // Bind sources are opened before pivot_root, attached after, in order.
    let trees = progress.stage("mounts", || setup_mounts(config))?;
    // << 19
    // << 04
    // >> 10 dev
    // before 19: progress.stage("dev", || mount_dev(&config.mounts, progress))?;
    progress.stage("dev", || mount_dev(&config.mounts, &trees, progress))?; // >> 19
    // << 10
    // >> 19 oci
    if !config.devices.is_empty() {
        progress.stage("devices", || make_listed_devices(&config.devices, &config.id_maps))?;
    }
    // << 19
    // >> 11 proc
    // before 19: progress.stage("proc", || mount_proc_and_sys(config, progress))?;
    progress.stage("proc", || mount_proc_and_sys(config, &trees, progress))?; // >> 19
    // << 11
    // >> 19 oci
    if config.readonly_root {
        progress.stage("readonly root", remount_root_readonly)?;
    }
    if config.capabilities.effective.is_some() {
        // Keep the permitted set across the uid switch, to set the five sets after it.
        nix::sys::prctl::set_keepcaps(true).stage("capabilities", "prctl(PR_SET_KEEPCAPS)")?;
    }
    // << 19
    progress.stage("user namespace", || enter_user_namespace(sock, config))?; // >> 05
    // before 19: die_with_parent(sock)?;
    // >> 19 oci
    // `create` exits on purpose, and the container must outlive it.
    if config.exec_fifo.is_none() {
        die_with_parent(sock)?;
    }
    // << 19
    // >> 14 terminal
    // After the uid switch, so the pty belongs to the container's user.
    if config.terminal {
        progress.stage("terminal", || terminal::attach_child(sock))?;
    }
    // << 14
    // >> 19 oci
    if config.capabilities.effective.is_some() {
        progress.stage("capabilities", raise_effective)?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the drop.
    if !config.no_new_privileges && !config.seccomp.is_empty() {
        progress.stage("seccomp", || load_seccomp_filter(&config.seccomp, false))?;
    }
    // << 19
    progress.stage("capabilities", || drop_capabilities(&config.capabilities))?; // >> 06
    // >> 07 seccomp
    if config.no_new_privileges {
        progress.stage("seccomp", || load_seccomp_filter(&config.seccomp, true))?;
    }
    // << 07
    // >> 12 environment
    if let Some(dir) = &config.cwd {
        chdir(dir).stage("workdir", format!("chdir {}", dir.display()))?;
    }
    // << 12
    // >> 13 init
    if config.init {
        progress.note("init");
        return run_init(&config.command, &config.env);
    }
    // << 13
    // >> 19 oci
    if let Some(fifo) = &config.exec_fifo {
        progress.note("ready: waiting for start");
        wait_for_start(sock, fifo)?;
    }
    // << 19
    progress.note("execve");
    exec_command(&config.command, &config.env)
}

// >> 19 oci
/// `create`'s child, set up: tell toybox (one byte on the socket, and
/// `create` exits), then read the exec fifo. It was opened for reading and
/// writing (fifo(7): Linux allows it), so read() waits for a byte rather
/// than seeing end-of-file while no writer is there. `start` writes it.
fn wait_for_start(sock: &OwnedFd, fifo: &OwnedFd) -> Result<()> {
    write(sock, b"r").stage("create", "tell toybox the container is ready")?;
    let mut byte = [0u8];
    // Then toybox writes the state down. Killed before that, it leaves no
    // record of this process: end of file, and the process ends.
    if read(sock, &mut byte).ok() != Some(1) {
        return Err(fail("create", "toybox create ended before it recorded the container", 125));
    }
    loop {
        match read(fifo, &mut byte) {
            Ok(1) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Ok(_) => return Err(fail("start", "the exec fifo ended without a byte", 125)),
            Err(e) => return Err(e).stage("start", "read the exec fifo"),
        }
    }
}
// << 19

/// A descriptor toybox inherited without close-on-exec would pass into the
/// container past every wall built around it: a directory the caller had
/// open leads back to the host's filesystem as /proc/self/fd/N/.. (the hole
/// of runc's CVE-2024-21626; contained.c has it too). So the child closes everything above 2 but `keep` (its end of
/// the socketpair, itself close-on-exec), and the command starts with 0, 1
/// and 2 only. close_range(2) arrived in Linux 5.9; before it,
/// /proc/self/fd lists what is open.
// before 19: pub(crate) fn close_inherited_fds(keep: Option<RawFd>) -> Result<()> {
// before 19:     let ranges = match keep.filter(|&fd| fd > 2).map(|fd| fd as u32) {
// before 19:         Some(fd) => vec![(3, fd - 1), (fd + 1, u32::MAX)],
// before 19:         None => vec![(3, u32::MAX)],
// before 19:     };
// >> 19 oci
pub(crate) fn close_inherited_fds(keep: &[RawFd]) -> Result<()> {
    // The gaps between the kept descriptors, in order.
    let mut kept: Vec<u32> = keep.iter().filter(|&&fd| fd > 2).map(|&fd| fd as u32).collect();
    kept.sort_unstable();
    let mut ranges = Vec::new();
    let mut first = 3;
    for fd in kept {
        ranges.push((first, fd.saturating_sub(1)));
        first = first.max(fd + 1);
    }
    ranges.push((first, u32::MAX));
    // << 19
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
// before 19: fn close_listed_fds(keep: Option<RawFd>) -> Result<()> {
// >> 19 oci
fn close_listed_fds(keep: &[RawFd]) -> Result<()> {
    // << 19
    let listing = fs::read_dir("/proc/self/fd").stage("fds", "read /proc/self/fd")?;
    let fds: Vec<RawFd> =
        listing.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect();
    // before 19: for fd in fds.into_iter().filter(|&fd| fd > 2 && Some(fd) != keep) {
    // >> 19 oci
    for fd in fds.into_iter().filter(|&fd| fd > 2 && !keep.contains(&fd)) {
        // << 19
        // SAFETY: as above; fd is a number from the kernel's own list.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// If toybox is killed outright (SIGKILL), the container goes with it
/// (PR_SET_PDEATHSIG, prctl(2)).
// >> 05 user namespace
/// Set after the uid change, which clears it.
// << 05
/// Should toybox have died already, its end of the socket reads as EOF.
pub(crate) fn die_with_parent(sock: &OwnedFd) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).stage("clone", "prctl(PR_SET_PDEATHSIG)")?;
    let mut byte = [0u8];
    match recv(sock.as_raw_fd(), &mut byte, MsgFlags::MSG_DONTWAIT) {
        Err(Errno::EAGAIN) => Ok(()),
        _ => Err(fail("clone", "toybox exited before the container started", 125)),
    }
}

// >> 03 namespaces
/// Only this UTS namespace sees the new name (uts_namespaces(7)).
fn set_hostname(hostname: &str) -> Result<()> {
    sethostname(hostname).stage("hostname", format!("sethostname({hostname})"))
}
// << 03

// >> 04 mounts
/// Make every mount private so nothing propagates back to the host, bind the
/// rootfs onto itself (pivot_root needs a mount point), and swap roots.
/// pivot_root(".", ".") stacks the old root on top of the new one; unmounting
/// "." then detaches it (pivot_root(2), NOTES). Unlike contained.c this needs
/// no temporary directory, so nothing is left on the host or in the rootfs.
// before 18: fn setup_mounts(rootfs: &Path) -> Result<()> {
// >> 18 network
// before 19: fn setup_mounts(rootfs: &Path, name: &str) -> Result<()> {
// << 18
// >> 19 oci
fn setup_mounts(config: &ChildConfig) -> Result<Vec<Option<OwnedFd>>> {
    let (rootfs, name) = (&config.rootfs, &config.name);
    // << 19
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .stage("mounts", "mount / MS_REC|MS_PRIVATE")?;
    mount(Some(rootfs), rootfs, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
        .stage("mounts", format!("bind mount {}", rootfs.display()))?;
    remount_nodev(rootfs)?;
    network::bind_etc_files(rootfs, name)?; // >> 18
    // >> 19 oci
    // A bind's source is a host path: copy its mount now, while the host is
    // in view, as a detached tree; mount_listed attaches it inside, in order.
    let trees = config
        .mounts
        .iter()
        .map(|m| m.bind.as_deref().map(|source| open_tree(source, m.flags)).transpose());
    let trees = trees.collect::<Result<Vec<_>>>()?;
    // << 19
    chdir(rootfs).stage("mounts", format!("chdir {}", rootfs.display()))?;
    pivot_root(".", ".").stage("mounts", format!("pivot_root({}, .)", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).stage("mounts", "umount2(old root, MNT_DETACH)")?;
    chdir("/").stage("mounts", "chdir /")?;
    // before 19: Ok(())
    Ok(trees) // >> 19
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

// >> 19 oci
/// setns(2) into each namespace given by a path, such as /proc/PID/ns/net.
fn join_namespaces(joined: &[(CloneFlags, PathBuf)]) -> Result<()> {
    // The parent joined the PID namespace for the clone (join_pid_namespace).
    for (kind, path) in joined.iter().filter(|(kind, _)| *kind != CloneFlags::CLONE_NEWPID) {
        let file = fs::File::open(path).stage("namespaces", format!("open {}", path.display()))?;
        nix::sched::setns(&file, *kind).stage("namespaces", format!("setns {}", path.display()))?;
    }
    Ok(())
}

/// setns(2) into a PID namespace changes only where the caller's children
/// are born, so the parent joins the config's before the clone, and this
/// takes it back to its own once dropped.
struct OwnPidNamespace(fs::File);

fn join_pid_namespace(joined: &[(CloneFlags, PathBuf)]) -> Result<Option<OwnPidNamespace>> {
    let Some((_, path)) = joined.iter().find(|(kind, _)| *kind == CloneFlags::CLONE_NEWPID) else {
        return Ok(None);
    };
    let own = fs::File::open("/proc/self/ns/pid").stage("clone", "open /proc/self/ns/pid")?;
    let file = fs::File::open(path).stage("namespaces", format!("open {}", path.display()))?;
    let flag = CloneFlags::CLONE_NEWPID;
    nix::sched::setns(&file, flag).stage("namespaces", format!("setns {}", path.display()))?;
    Ok(Some(OwnPidNamespace(own)))
}

impl Drop for OwnPidNamespace {
    fn drop(&mut self) {
        if let Err(e) = nix::sched::setns(&self.0, CloneFlags::CLONE_NEWPID) {
            eprintln!("toybox: clone: setns back to toybox's own pid namespace: {e}");
        }
    }
}

/// open_tree(2) with OPEN_TREE_CLONE (Linux 5.2): a detached copy of the
/// mount at `source`, recursive as rbind is, for move_mount after pivot_root.
/// The target is then resolved inside the new root, so a symlink in the
/// rootfs cannot point the bind at the host.
fn open_tree(source: &Path, flags: MsFlags) -> Result<OwnedFd> {
    let what = || format!("open_tree {}", source.display());
    let path = CString::new(source.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("mounts", format!("{}: a NUL byte", what()), EXIT_TOYBOX_FAILED))?;
    clone_tree(libc::AT_FDCWD, &path, 0, flags).map_err(Errno::from_raw).stage("mounts", what())
}

/// open_tree(2)'s OPEN_TREE_CLONE of `path` at `dir`, recursive for rbind.
fn clone_tree(
    dir: RawFd,
    path: &CStr,
    at_flags: libc::c_int,
    flags: MsFlags,
) -> std::result::Result<OwnedFd, i32> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut tree_flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | at_flags as libc::c_uint;
    if flags.contains(MsFlags::MS_REC) {
        tree_flags |= libc::AT_RECURSIVE as libc::c_uint; // rbind
    }
    // SAFETY: a NUL-terminated path; the call returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), tree_flags) };
    if fd < 0 {
        return Err(Errno::last_raw());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) })
}

/// Attach a tree from open_tree on `entry.target` (a file for a file,
/// made if missing), then apply the entry's flags: a bind keeps its
/// source's until remounted (mount(2), MS_REMOUNT|MS_BIND).
fn attach_tree(tree: &OwnedFd, entry: &Mount, progress: Progress) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // A copy of the copy, made now: newer kernels keep a namespace's mounts
    // sorted by id, so mountinfo lists them in the order they were made, and
    // this one shows in the config's order. A kernel that refuses to clone a
    // detached tree gets the first copy attached.
    let fresh = clone_tree(tree.as_raw_fd(), c"", libc::AT_EMPTY_PATH, entry.flags).ok();
    let tree = fresh.as_ref().unwrap_or(tree);
    let target = entry.target.as_str();
    let is_dir = fs::metadata(format!("/proc/self/fd/{}", tree.as_raw_fd())).map(|m| m.is_dir());
    match (is_dir, fs::symlink_metadata(target)) {
        (Ok(false), Ok(meta)) if meta.is_file() => {}
        (Ok(false), Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            make_parents(target)?;
            fs::File::create(target).stage("mounts", format!("create {target}"))?;
        }
        (Ok(false), _) => return Err(fail("mounts", format!("{target} is not a file"), 125)),
        _ => make_mount_point(target, progress)?,
    }
    let to = CString::new(target).map_err(|_| fail("mounts", "a NUL byte", 125))?;
    // SAFETY: a live descriptor, an empty and a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(Errno::last()).stage("mounts", format!("move_mount onto {target}"));
    }
    let per_mount =
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if entry.flags.intersects(per_mount) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (entry.flags & per_mount);
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .stage("mounts", format!("remount {target} {:?}", entry.flags & per_mount))?;
    }
    set_propagation(target, entry.flags)
}

const PROPAGATION: MsFlags = MsFlags::MS_PRIVATE
    .union(MsFlags::MS_SHARED)
    .union(MsFlags::MS_SLAVE)
    .union(MsFlags::MS_UNBINDABLE);

/// A mount's propagation type (`rprivate`, `slave`…) is a call of its own:
/// mount(2) takes it only alone, with MS_REC at most, on a mounted target.
fn set_propagation(target: &str, flags: MsFlags) -> Result<()> {
    if !flags.intersects(PROPAGATION) {
        return Ok(());
    }
    let flags = flags & (PROPAGATION | MsFlags::MS_REC);
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .stage("mounts", format!("{target}: {flags:?}"))
}

/// The directories above a mount point the config names: podman binds
/// /run/.containerenv into rootfs that may have no /run. runc makes them
/// too; after pivot_root any path, through a symlink or not, stays inside.
fn make_parents(target: &str) -> Result<()> {
    match Path::new(target).parent() {
        Some(parent) if !parent.exists() => fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(parent)
            .stage("mounts", format!("mkdir {}", parent.display())),
        _ => Ok(()),
    }
}

/// root.readonly: the whole rootfs read-only, last, once everything else is
/// mounted on it. A bind remount sets every per-mount flag: nodev stays.
fn remount_root_readonly() -> Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .stage("mounts", "remount / read-only")
}
// << 19
// << 04

// >> 10 dev
/// The devices every program expects, as `docker run` gives them:
/// (name, major, minor) of character devices (devices(7)).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// (link, target): the pty multiplexer of the new devpts, and the fd links.
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/ptmx", "pts/ptmx"),
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

const NOSUID_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC);

/// (type, target, flags, data) of what /dev is made of: a small tmpfs, a
/// devpts of its own and a tmpfs for POSIX shared memory.
const DEV_MOUNTS: &[(&str, &str, MsFlags, &str)] = &[
    ("tmpfs", "/dev", NOSUID_NOEXEC, "mode=755,size=64k"),
    ("devpts", "/dev/pts", NOSUID_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"),
    ("tmpfs", "/dev/shm", NOSUID_NOEXEC.union(MsFlags::MS_NODEV), "mode=1777,size=64m"),
];

/// A fresh /dev on a small tmpfs: nothing of the host's /dev comes along.
/// The nodes are made with mknod, which needs CAP_MKNOD in the initial user
/// namespace, so this runs before the child enters its own. devpts is a new
/// instance with its own ptmx: the host's terminals are not in it
/// (devpts(5)). /dev/shm is a tmpfs of its own for POSIX shared memory.
/// The mounts come from the description (DEV_MOUNTS for toybox's own flags),
/// in their order: those up to the last on /dev and below here, the rest
/// after, in "proc".
// before 19: fn mount_dev(mounts: &[Mount], progress: Progress) -> Result<()> {
// >> 19 oci
fn mount_dev(mounts: &[Mount], trees: &[Option<OwnedFd>], progress: Progress) -> Result<()> {
    // << 19
    let end = dev_mounts_end(mounts);
    // before 19: mount_listed(mounts, |at| at < end, progress)?;
    mount_listed(mounts, trees, |at| at < end, progress)?; // >> 19
    for &(link, target) in DEV_LINKS {
        std::os::unix::fs::symlink(target, link).stage("dev", format!("symlink {link}"))?;
    }
    Ok(())
}

/// Where the mounts on /dev end in the list: "dev" mounts it up to there,
/// "proc" the rest, so the order of the whole list is kept.
fn dev_mounts_end(mounts: &[Mount]) -> usize {
    let on_dev = |m: &Mount| m.target == "/dev" || m.target.starts_with("/dev/");
    mounts.iter().rposition(on_dev).map_or(0, |last| last + 1)
}

/// The nodes of DEVICES, in the fresh /dev.
fn make_devices() -> Result<()> {
    for &(name, major, minor) in DEVICES {
        let path = format!("/dev/{name}");
        let mode = Mode::from_bits_truncate(0o666);
        mknod(path.as_str(), SFlag::S_IFCHR, mode, makedev(major, minor))
            .stage("dev", format!("mknod {path}"))?;
        chmod(&path, 0o666)?; // mknod(2) applies the umask
    }
    Ok(())
}

// >> 19 oci
/// linux.devices, made as DEVICES are. The owner is the container's id,
/// which its map turns into the host's: the child is not in its user
/// namespace yet. A node already there stays, as runc leaves it.
fn make_listed_devices(devices: &[Device], id_maps: &Option<(String, String)>) -> Result<()> {
    for device in devices {
        let path = device.path.as_str();
        if let Some(parent) = Path::new(path).parent() {
            let what = format!("mkdir {}", parent.display());
            fs::DirBuilder::new().mode(0o755).recursive(true).create(parent).stage("dev", what)?;
        }
        let number = makedev(device.major, device.minor);
        match mknod(path, device.kind, Mode::empty(), number) {
            Err(Errno::EEXIST) => continue,
            made => made.stage("dev", format!("mknod {path}"))?,
        }
        chmod(path, device.mode)?;
        let (uid, gid) = match id_maps {
            Some((uids, gids)) => (host_id(uids, device.uid), host_id(gids, device.gid)),
            None => (Some(device.uid), Some(device.gid)),
        };
        let (Some(uid), Some(gid)) = (uid, gid) else {
            let what =
                format!("{path}: owner {}:{} is outside the id maps", device.uid, device.gid);
            return Err(fail("dev", what, EXIT_TOYBOX_FAILED));
        };
        nix::unistd::chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .stage("dev", format!("chown {uid}:{gid} {path}"))?;
    }
    Ok(())
}

/// The host's id for `id` inside, by a uid_map or gid_map's lines of
/// "inside outside count" (user_namespaces(7)).
fn host_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut numbers = line.split_whitespace().map(|n| n.parse::<u32>().ok());
        let (inside, outside, count) = (numbers.next()??, numbers.next()??, numbers.next()??);
        (inside..inside.saturating_add(count)).contains(&id).then(|| outside + (id - inside))
    })
}

/// Lowering oom_score_adj needs CAP_SYS_RESOURCE (proc(5)): written while
/// the child still has the host's privileges; execve keeps it.
fn set_oom_score_adj(value: i32) -> Result<()> {
    fs::write("/proc/self/oom_score_adj", value.to_string())
        .stage("oom score", "write /proc/self/oom_score_adj")
}
// << 19

/// Mount the entries of `mounts` whose place in the list `pick` takes, in
/// order, each on a mount point made if missing. A tmpfs on /dev gets the
/// nodes.
fn mount_listed(
    mounts: &[Mount],
    trees: &[Option<OwnedFd>], // >> 19
    pick: impl Fn(usize) -> bool,
    progress: Progress,
) -> Result<()> {
    // before 19: for (_, entry) in mounts.iter().enumerate().filter(|(at, _)| pick(*at)) {
    // >> 19 oci
    for (at, entry) in mounts.iter().enumerate().filter(|(at, _)| pick(*at)) {
        if let Some(Some(tree)) = trees.get(at) {
            attach_tree(tree, entry, progress)?;
            continue;
        }
        // << 19
        match entry.target.starts_with("/dev/") {
            // In the fresh /dev: nothing there to report.
            true => fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(&entry.target)
                .stage("dev", format!("mkdir {}", entry.target))?,
            false => make_mount_point(&entry.target, progress)?,
        }
        // before 19: mount_fs(&entry.fstype, &entry.target, entry.flags, &entry.data)?;
        // >> 19 oci
        let flags = entry.flags - PROPAGATION - MsFlags::MS_REC;
        let (source, fstype, data) = (&entry.source, &entry.fstype, &entry.data);
        mount(
            Some(source.as_str()),
            entry.target.as_str(),
            Some(fstype.as_str()),
            flags,
            Some(data.as_str()),
        )
        .stage("mounts", format!("mount {fstype} on {}", entry.target))?;
        set_propagation(&entry.target, entry.flags)?;
        // << 19
        if entry.target == "/dev" && entry.fstype == "tmpfs" {
            make_devices()?;
        }
    }
    Ok(())
}

fn chmod(path: &str, mode: u32) -> Result<()> {
    let permissions = fs::Permissions::from_mode(mode);
    fs::set_permissions(path, permissions).stage("dev", format!("chmod {mode:o} {path}"))
}

/// Many unpacked images and hand-made rootfs have no /dev, /proc or /sys.
/// As runc does, toybox makes the missing mount point, in the rootfs: after
/// pivot_root "/" is the rootfs, so the path cannot lead out of it. Anything
/// else already there, a symlink included, is refused rather than followed.
fn make_mount_point(path: &str, progress: Progress) -> Result<()> {
    make_parents(path)?; // >> 19
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(fail("mounts", format!("{path} in the rootfs is not a directory"), 125)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(path)
                .stage("mounts", format!("mkdir {path}"))?;
            progress.note(&format!("mkdir {path}: the rootfs had no mount point there"));
            Ok(())
        }
        Err(e) => Err(e).stage("mounts", format!("stat {path}")),
    }
}

/// mount(2) a filesystem that has no source device.
fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: &str) -> Result<()> {
    mount(Some(fstype), target, Some(fstype), flags, Some(data))
        .stage("mounts", format!("mount {fstype} on {target}"))
}
// << 10

// >> 11 proc
/// What docker hides in /proc and /sys: these reach the host's kernel, not
/// the container (kernel memory, keyrings, timers, firmware). powercap's
/// energy counters and the per-CPU interrupt counts are side channels into
/// the host's work (PLATYPUS; moby's thermal-interrupt advisory, 2025). A
/// directory gets an empty read-only tmpfs over it, a file /dev/null.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// What runc makes read-only: kernel settings for the whole machine, and
/// sysrq-trigger, which can reboot or crash the host.
const READ_ONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const PROC_FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// (type, target, flags, data), as DEV_MOUNTS: the container's own proc,
/// and sysfs read-only.
const PROC_MOUNTS: &[(&str, &str, MsFlags, &str)] = &[
    ("proc", "/proc", PROC_FLAGS, ""),
    ("sysfs", "/sys", PROC_FLAGS.union(MsFlags::MS_RDONLY), ""),
];

/// A proc of the container's own PID namespace, so `ps` and `top` show only
/// its processes (proc(5), pid_namespaces(7)). /sys is mounted read-only, as
/// docker does: tools expect it, the container's own network devices show
/// there, and nothing in it can be changed. The container's root cannot
/// unmount the masks: after it enters its user namespace it has no
/// privilege over this mount namespace (mount_namespaces(7)). The masks,
/// the read-only paths and the mounts are the description's (MASKED_PATHS,
/// READ_ONLY_PATHS and PROC_MOUNTS for toybox's own flags).
// before 19: fn mount_proc_and_sys(config: &ChildConfig, progress: Progress) -> Result<()> {
// >> 19 oci
fn mount_proc_and_sys(
    config: &ChildConfig,
    trees: &[Option<OwnedFd>],
    progress: Progress,
) -> Result<()> {
    // << 19
    let end = dev_mounts_end(&config.mounts);
    // before 19: mount_listed(&config.mounts, |at| at >= end, progress)?;
    mount_listed(&config.mounts, trees, |at| at >= end, progress)?; // >> 19
    for path in &config.masked_paths {
        let path = path.as_str();
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => mount_fs("tmpfs", path, MsFlags::MS_RDONLY, "size=0")?,
            Ok(_) => mount(Some("/dev/null"), path, none(), MsFlags::MS_BIND, none())
                .stage("proc", format!("mask {path}"))?,
            Err(_) => continue, // this kernel has no such file
        }
    }
    // >> 19 oci
    // Before readonly_paths, which usually cover /proc/sys.
    for (key, value) in &config.sysctl {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        fs::write(&file, value).stage("sysctl", format!("write {file}"))?;
    }
    // << 19
    for path in &config.readonly_paths {
        let path = path.as_str();
        if !Path::new(path).exists() {
            continue;
        }
        mount(Some(path), path, none(), MsFlags::MS_BIND | MsFlags::MS_REC, none())
            .stage("proc", format!("bind {path}"))?;
        let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | PROC_FLAGS;
        mount(none(), path, none(), read_only, none())
            .stage("proc", format!("remount {path} read-only"))?;
    }
    Ok(())
}

fn none() -> Option<&'static str> {
    None
}
// << 11

// >> 05 user namespace
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
    // >> 19 oci
    if let Some(mask) = user.umask {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }
    // << 19
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
// << 05

// ---------------------------------------------------------------------------
// Stage 7, continued: the last steps, then execve.
// ---------------------------------------------------------------------------

// >> 06 capabilities
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

// >> 19 oci
/// A switch to a uid other than 0 empties the effective set (PR_SET_KEEPCAPS
/// kept the permitted one), but the drops need CAP_SETPCAP and a filter
/// loaded without no_new_privs CAP_SYS_ADMIN: effective = permitted again,
/// until drop_capabilities sets the configured sets.
fn raise_effective() -> Result<()> {
    let permitted = caps::read(None, CapSet::Permitted).stage("capabilities", "read permitted")?;
    caps::set(None, CapSet::Effective, &permitted).stage("capabilities", "raise effective")
}
// << 19

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
    // >> 19 oci
    // Effective first: it must stay within permitted, which only shrinks.
    if let (Some(permitted), Some(effective)) = (&sets.permitted, &sets.effective) {
        caps::set(None, CapSet::Effective, &set(effective))
            .stage("capabilities", "set the effective set")?;
        caps::set(None, CapSet::Permitted, &set(permitted))
            .stage("capabilities", "set the permitted set")?;
    }
    // << 19
    caps::clear(None, CapSet::Ambient).stage("capabilities", "clear ambient set")?;
    // An ambient capability must be inheritable too (capabilities(7)); runc
    // skips the others, and `runc spec` lists ambient ones without it.
    for &cap in sets.ambient.iter().filter(|cap| sets.inheritable.contains(cap)) {
        caps::raise(None, CapSet::Ambient, cap).stage("capabilities", format!("raise {cap}"))?;
    }
    Ok(())
}
// << 06

// >> 07 seccomp
/// The filter, as libseccomp compiled the rules in seccomp.rs when toybox was
/// built (build.rs): classic BPF, eight bytes an instruction. The first
/// program is syscallz's rules, the second what syscallz cannot name.
pub(crate) const SECCOMP_PROGRAMS: [&[u8]; 2] = [
    include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf")),
    include_bytes!(concat!(env!("OUT_DIR"), "/seccomp-second.bpf")),
];

/// Load the filter (seccomp(2)). no_new_privs is set first and on purpose:
/// contained.c leaves it off, which lets a setuid-root binary in the rootfs
/// gain privileges at execve; with it set, execve can never add privileges,
/// and an unprivileged uid may load the filter at all. Each program is what
/// libseccomp's seccomp_load would hand the kernel, without compiling the
/// rules again at every start.
pub(crate) fn load_seccomp_filter(programs: &[impl AsRef<[u8]>], no_new_privs: bool) -> Result<()> {
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().stage("seccomp", "prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    for bytes in programs.iter().map(AsRef::as_ref) {
        let program: Vec<libc::sock_filter> = bytes
            .chunks_exact(8)
            .map(|insn| libc::sock_filter {
                code: u16::from_ne_bytes([insn[0], insn[1]]),
                jt: insn[2],
                jf: insn[3],
                k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
            })
            .collect();
        let fprog =
            libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut _ };
        // SAFETY: fprog points at `program`, which outlives the call; the kernel copies it.
        let rc = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) };
        if rc != 0 {
            let what = "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)";
            return Err(Errno::last()).stage("seccomp", what);
        }
    }
    Ok(())
}
// << 07

// >> 12 environment
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `docker run` starts a command with: PATH, HOSTNAME, HOME, TERM when
/// there is a terminal, then every -e, a later one replacing an earlier one.
/// Nothing else of toybox's own environment leaks in.
fn container_env(uid: u32, hostname: &str, extra: &[String]) -> Vec<String> {
    let home = if uid == 0 { "/root" } else { "/" };
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
        format!("HOME={home}"),
    ];
    if nix::unistd::isatty(io::stdin()).unwrap_or(false) {
        env.push("TERM=xterm".to_string());
    }
    for entry in extra {
        let entry = match entry.split_once('=') {
            Some(_) => entry.clone(),
            None => match std::env::var(entry) {
                Ok(value) => format!("{entry}={value}"),
                Err(_) => continue, // docker run -e KEY: unset stays unset
            },
        };
        let key = &entry[..=entry.find('=').unwrap_or(0)];
        env.retain(|old| !old.starts_with(key));
        env.push(entry);
    }
    env
}

/// The PATH the command is looked up in: the last -e PATH=, or the default.
fn search_path(env: &[String]) -> &str {
    env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH)
}
// << 12

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
    // >> 12 environment
    // A name without a slash is tried in each PATH directory, as execvp(3)
    // does; a directory where it exists but cannot run decides the status.
    if !command[0].contains('/') {
        let mut last = Errno::ENOENT;
        for dir in search_path(env).split(':') {
            let path = CString::new(format!("{dir}/{}", command[0])).unwrap_or_default();
            let Err(errno) = execve(&path, &argv, &envp);
            if errno != Errno::ENOENT {
                last = errno;
            }
        }
        return Err(exec_error(&command[0], last));
    }
    // << 12
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

// >> 13 init
// ---------------------------------------------------------------------------
// --init: PID 1 as an init process.
// ---------------------------------------------------------------------------

/// `--init` makes PID 1 this small init instead of the command, as `docker
/// run --init` (tini) does. A command written as an ordinary program makes a
/// poor PID 1: it dies of no signal it has no handler for, and orphans that
/// exit stay zombies, since reaping them is PID 1's job (pid_namespaces(7)).
/// The init forks the command, passes the forwarded signals on to it, reaps
/// every child that exits, and ends with the command's status; the kernel
/// then kills whatever is left in the namespace.
fn run_init(command: &[String], env: &[String]) -> Result<std::convert::Infallible> {
    // The same signals toybox itself waits for, the same way.
    let signals = block_signals()?;
    // SAFETY: the container's process has one thread, so fork(2) is safe.
    let command_pid = match unsafe { fork() }.stage("init", "fork")? {
        ForkResult::Child => {
            // The blocked mask survives execve: give the command a clean one.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&signals.original), None)
                .stage("init", "restore signal mask")?;
            return exec_command(command, env);
        }
        ForkResult::Parent { child } => child,
    };
    loop {
        match wait_for_signal(&signals.forwarded, None)? {
            Some(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    let code = match status {
                        WaitStatus::Exited(pid, code) if pid == command_pid => code,
                        WaitStatus::Signaled(pid, signal, _) if pid == command_pid => {
                            128 + signal as i32
                        }
                        WaitStatus::StillAlive => break,
                        _ => continue, // an orphan reaped
                    };
                    // SAFETY: _exit(2) ends PID 1, and with it the namespace.
                    unsafe { libc::_exit(code) };
                }
            }
            Some(signal) => {
                let _ = kill(command_pid, signal); // it may have exited already
            }
            None => {}
        }
    }
}
// << 13

#[cfg(test)]
mod tests {
    use super::*;

    // >> 10 dev
    #[test]
    fn device_rules_read_every_allow_row() {
        let rows = CGROUP_V1_SETTINGS.iter().filter(|s| s.file == "devices.allow").count();
        let rules = device_rules(CGROUP_V1_SETTINGS);
        assert_eq!(rules.len(), rows);
        assert!(rules.iter().all(|r| r.kind == 2));
        assert!(rules.iter().any(|r| r.major == 136 && r.minor.is_none() && r.access == 6));
        assert!(rules.iter().any(|r| r.major == 1 && r.minor == Some(3) && r.access == 7));
        // Every jump of the v2 program lands inside it.
        let program = cgroup_v2::device_program(&rules);
        for (at, insn) in program.iter().enumerate() {
            let (code, off) = cgroup_v2::insn_jump(insn);
            assert!(code != 0x55 || at + 1 + off as usize <= program.len() - 2);
        }
    }

    #[test]
    fn device_cgroup_allows_every_node_in_dev() {
        for &(name, major, minor) in DEVICES {
            let rule = format!("c {major}:{minor} rwm");
            let allowed =
                CGROUP_V1_SETTINGS.iter().any(|s| s.file == "devices.allow" && s.value == rule);
            assert!(allowed, "/dev/{name} ({major}:{minor}) has no `{rule}` in devices.allow");
        }
    }
    // << 10

    // >> 02 checks
    #[test]
    fn kernel_versions_compare_as_numbers() {
        assert_eq!(kernel_version("6.18.44-fc-v657"), (6, 18));
        assert_eq!(kernel_version("4.10.0"), (4, 10));
        assert!(kernel_version("4.10.0") >= MIN_KERNEL);
        assert!(kernel_version("4.4.0-210-generic") < MIN_KERNEL);
        assert!(kernel_version("3.10.0-1160.el7.x86_64") < MIN_KERNEL);
    }
    // << 02

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
                    // before 19: let ok = close(Some(kept)).is_ok() && is_open(kept) && !is_open(other);
                    let ok = close(&[kept]).is_ok() && is_open(kept) && !is_open(other); // >> 19
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

    // >> 07 seccomp
    /// The programs toybox loads are the rules in seccomp.rs as this
    /// libseccomp compiles them now: build.rs wrote each file it should.
    #[test]
    fn seccomp_programs_are_the_rules_compiled() {
        // Not /tmp: the container tests look there for leftovers.
        let dir = Path::new(env!("OUT_DIR")).join(format!("test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("make a temporary directory");
        seccomp::export(&dir).expect("compile the rules");
        let first = fs::read(dir.join("seccomp.bpf")).expect("read seccomp.bpf");
        let second = fs::read(dir.join("seccomp-second.bpf")).expect("read seccomp-second.bpf");
        fs::remove_dir_all(&dir).expect("remove the temporary directory");
        let embedded = SECCOMP_PROGRAMS.map(<[u8]>::len);
        let compiled = [first.len(), second.len()];
        assert!(
            SECCOMP_PROGRAMS == [&first[..], &second[..]],
            "{embedded:?} vs {compiled:?} bytes"
        );
        assert!(SECCOMP_PROGRAMS.iter().all(|p| !p.is_empty() && p.len() % 8 == 0));
    }
    // << 07
}
