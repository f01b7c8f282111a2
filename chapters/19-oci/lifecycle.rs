//! The runc command line: `create`, `start`, `state`, `kill` and `delete`,
//! and runc's global flags before them (`--root`, `--log`, `--log-format`).
//! Each is a short process; what they share is on disk, one directory per
//! container under the root (runtime.md, "Lifecycle"):
//!
//! - `state.json`: the container's process (its pid, and its start time,
//!   so that a pid the kernel has handed out again is not taken for it),
//!   the bundle, its cgroups and annotations; written whole, then renamed;
//! - `config.json`: the bundle's, as `create` read it: `exec` applies the
//!   container's seccomp profile from it, whatever the bundle says since;
//! - `exec.fifo`: the container is *created* while its first process holds
//!   this fifo open: set up, it reads one byte from it, then its execve
//!   closes it (O_CLOEXEC). `start` writes the byte and returns once the
//!   process has let go (its execve, or its end), as runc's start does, so
//!   `running` always means the command runs. runc and crun hold a created
//!   container the same way (youki listens on a socket); `toybox run`'s
//!   process holds the fifo unread until its execve, so `state` says
//!   created, then running, there too.
//!
//! Every command holds flock(2) on the directory while it reads or changes
//! it, so two of them never act on half a change.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{EXIT_TOYBOX_FAILED, Error, Result, Stage, fail};
use crate::exec::{ExecOptions, start_time};
use crate::{Args, Progress, Subcommand, oci};

/// runc's is /run/runc; toybox's own records, which `toybox ps` reads, are
/// in /run/toybox.
pub const DEFAULT_ROOT: &str = "/run/toybox-oci";

const STATE: &str = "state.json";
const FIFO: &str = "exec.fifo";
const CONFIG: &str = "config.json";

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// --log: the file and its format, once opened.
static LOG: OnceLock<(fs::File, LogFormat)> = OnceLock::new();

/// The subcommands of this module, with the global flags set up first.
pub fn command(args: &Args, command: &Subcommand, progress: Progress) -> Result<i32> {
    // Before toybox opens anything: a descriptor the caller did not pass
    // would be the next one toybox opens (its log, its lock), and the
    // container would get that instead.
    if let Subcommand::Create { preserve_fds, .. } = command {
        check_preserved(*preserve_fds)?;
    }
    if let Some(path) = &args.log {
        let file = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
        let file = file.stage("log", format!("open {}", path.display()))?;
        let _ = LOG.set((file, args.log_format));
    }
    let root = args.root.as_path();
    match command {
        Subcommand::Create { bundle, pid_file, console_socket, preserve_fds, id, .. } => create(
            root,
            bundle,
            pid_file.as_deref(),
            console_socket.as_deref(),
            *preserve_fds,
            id,
            progress,
        ),
        Subcommand::Run { bundle, id } => run(root, bundle, id, progress),
        Subcommand::Start { id } => start(root, id),
        Subcommand::State { id } => state(root, id),
        Subcommand::Kill { all, id, signal } => kill_container(root, id, signal, *all),
        Subcommand::Delete { force, id } => delete(root, id, *force),
        Subcommand::Exec { process: Some(_), command, uid, .. }
            if !command.is_empty() || uid.is_some() =>
        {
            let what = "exec takes --process FILE (OCI) or -c CMD [-u UID] (toybox's own), \
                        not both";
            Err(fail("arguments", what, EXIT_TOYBOX_FAILED))
        }
        Subcommand::Exec {
            process: Some(process),
            detach,
            pid_file,
            console_socket,
            preserve_fds,
            name,
            ..
        } => {
            let options = ExecOptions {
                detach: *detach,
                console: console_socket.as_deref(),
                preserve_fds: *preserve_fds,
            };
            exec(root, name, process, pid_file.as_deref(), &options)
        }
        _ => Err(fail("arguments", "not a runtime command", EXIT_TOYBOX_FAILED)),
    }
}

/// --preserve-fds N: 3..3+N must be open.
fn check_preserved(count: i32) -> Result<()> {
    for fd in 3..3 + count.max(0) {
        // SAFETY: F_GETFD reads a descriptor's flags and touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let what = format!("--preserve-fds {count}: descriptor {fd} is not open");
            return Err(fail("arguments", what, EXIT_TOYBOX_FAILED));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// --log
// ---------------------------------------------------------------------------

/// One line per error: logrus's text (`time="…" level=error msg="…"`), or
/// with --log-format json one object, `{"level","msg","time"}`, which
/// containerd's shim and podman parse (time in RFC 3339, UTC).
pub fn log_error(e: &Error) {
    let Some((file, format)) = LOG.get() else { return };
    let (time, msg) = (rfc3339(SystemTime::now()), e.to_string());
    let line = match format {
        LogFormat::Json => {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time={time:?} level=error msg={msg:?}"),
    };
    let _ = (&*file).write_all(format!("{line}\n").as_bytes());
}

/// `2026-12-01T05:02:01.123456789Z`: the days since 1970 turned into a
/// civil date (Howard Hinnant's days_from_civil, backwards).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = ((since.as_secs() / 86400) as i64, since.as_secs() % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let nanos = since.subsec_nanos();
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

// ---------------------------------------------------------------------------
// The state on disk.
// ---------------------------------------------------------------------------

/// state.json.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    id: String,
    pid: i32,
    /// Field 22 of /proc/PID/stat when it was created.
    start_time: u64,
    bundle: PathBuf,
    created: String,
    cgroups: Vec<PathBuf>,
    annotations: BTreeMap<String, String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// A container's directory, locked while this is alive.
struct Container {
    dir: PathBuf,
    saved: Saved,
    _lock: OwnedFd,
}

impl Container {
    /// Stopped once its process is gone or a zombie, or the pid is someone
    /// else's (another start time); created while it holds the fifo.
    fn status(&self) -> Status {
        if start_time(Pid::from_raw(self.saved.pid)) != Some(self.saved.start_time) {
            Status::Stopped
        } else if has_reader(&self.dir.join(FIFO)) {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// The fifo where a created container's process waits, opened for reading
/// and writing and inherited close-on-exec (fifo(7): Linux allows O_RDWR,
/// so its read waits for a byte rather than seeing end of file).
fn make_fifo(dir: &Path) -> Result<OwnedFd> {
    let fifo = dir.join(FIFO);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
        .stage("create", format!("mkfifo {}", fifo.display()))?;
    let file = fs::OpenOptions::new().read(true).write(true).open(&fifo);
    Ok(OwnedFd::from(file.stage("create", format!("open {}", fifo.display()))?))
}

/// Someone holds the fifo open for reading: open(2) for writing without
/// blocking fails with ENXIO when no one does (fifo(7)). Callers hold the
/// directory's lock, so no `start` is writing meanwhile.
fn has_reader(fifo: &Path) -> bool {
    fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo).is_ok()
}

/// flock(2) on the container's directory: released when the fd closes.
fn lock(dir: &Path) -> Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let file = fs::OpenOptions::new().read(true).custom_flags(flags).open(dir);
    let fd = OwnedFd::from(file.stage("state", format!("open {}", dir.display()))?);
    // SAFETY: flock takes a live descriptor and a constant.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(nix::errno::Errno::last()).stage("state", format!("flock {}", dir.display()));
    }
    Ok(fd)
}

fn does_not_exist(id: &str) -> Error {
    fail("state", format!("container {id:?} does not exist"), EXIT_TOYBOX_FAILED)
}

/// The container `id`, locked; "does not exist" (the words podman matches)
/// when there is no such directory or a `delete` removed it meanwhile.
fn open(root: &Path, id: &str) -> Result<Container> {
    oci::check_id(id)?;
    let dir = root.join(id);
    let lock = match lock(&dir) {
        Ok(lock) => lock,
        Err(_) if !dir.exists() => return Err(does_not_exist(id)),
        Err(e) => return Err(e),
    };
    let path = dir.join(STATE);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // A `create` killed before its first write: the lock is free,
            // so nobody is making it any more. Nothing else of it exists.
            let _ = fs::remove_dir_all(&dir);
            return Err(does_not_exist(id));
        }
        text => text.stage("state", format!("read {}", path.display()))?,
    };
    let saved = serde_json::from_str(&text)
        .map_err(|e| fail("state", format!("{}: {e}", path.display()), EXIT_TOYBOX_FAILED))?;
    Ok(Container { dir, saved, _lock: lock })
}

fn write_state(dir: &Path, saved: &Saved) -> Result<()> {
    let text = serde_json::to_string(saved)
        .map_err(|e| fail("state", e.to_string(), EXIT_TOYBOX_FAILED))?;
    write_atomically(&dir.join(STATE), &text)
}

/// Written whole beside `path`, then renamed over it: a reader sees the old
/// file or the new one, never half of one (rename(2)).
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    fs::write(&partial, text).stage("state", format!("write {}", path.display()))?;
    fs::rename(&partial, path).stage("state", format!("rename to {}", path.display()))
}

/// The directory `create` makes, removed again unless it succeeds.
struct NewDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for NewDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// The commands.
// ---------------------------------------------------------------------------

/// The checks and config.json of `create` and `run`.
fn read_bundle(
    command: &str,
    bundle: &Path,
    id: &str,
    progress: Progress,
) -> Result<(PathBuf, oci::Bundle)> {
    oci::check_id(id)?;
    crate::check_kernel()?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(fail("checks", format!("toybox {command} needs root"), EXIT_TOYBOX_FAILED));
    }
    let bundle =
        fs::canonicalize(bundle).stage("config", format!("bundle {}", bundle.display()))?;
    let read = progress.stage("config", || oci::read_bundle(&bundle, id))?;
    Ok((bundle, read))
}

/// The container's directory under the root, made (which claims the id),
/// locked, with the state written before anything is made (no process
/// yet, the groups about to be made: should toybox be killed from here on,
/// `delete` finds them) and config.json as it is now, for `exec`. Removed
/// again unless the caller keeps it.
fn claim(
    root: &Path,
    id: &str,
    bundle: &Path,
    config: &crate::ChildConfig,
    annotations: BTreeMap<String, String>,
    text: &str,
) -> Result<(PathBuf, NewDir, OwnedFd, Saved)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .stage("state", format!("mkdir {}", root.display()))?;
    // mkdir claims the id: of two creates of one id, one gets EEXIST.
    let dir = root.join(id);
    let mkdir = || fs::DirBuilder::new().mode(0o700).create(&dir);
    // A directory a killed `create` left without a state goes with open().
    let made = match mkdir() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists && open(root, id).is_err() => mkdir(),
        made => made,
    };
    match made {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let what = format!("container with id {id:?} exists");
            return Err(fail("create", what, EXIT_TOYBOX_FAILED));
        }
        made => made.stage("state", format!("mkdir {}", dir.display()))?,
    }
    let made = NewDir { path: dir.clone(), keep: false };
    let lock = lock(&dir)?;
    // Written down before anything is made: should toybox be killed from
    // here on, `delete` finds the groups (no process yet: stopped).
    let saved = Saved {
        id: id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.to_path_buf(),
        created: rfc3339(SystemTime::now()),
        cgroups: crate::planned_cgroups(config),
        annotations,
    };
    write_state(&dir, &saved)?;
    write_atomically(&dir.join(CONFIG), text)?;
    Ok((dir, made, lock, saved))
}

impl Saved {
    /// The container's first process, once cloned: its pid, its start
    /// time (so a reused pid never passes for it) and its groups.
    fn set_process(&mut self, pid: Pid, cgroups: &[PathBuf]) -> Result<()> {
        self.start_time = start_time(pid)
            .ok_or_else(|| fail("state", format!("no /proc/{pid}/stat"), EXIT_TOYBOX_FAILED))?;
        self.pid = pid.as_raw();
        self.cgroups = cgroups.to_vec();
        Ok(())
    }
}

/// `run`: create, start and wait in one, as `runc run`. toybox stays the
/// container's parent in the foreground (its terminal, signals, exit
/// status), and the container is in the state meanwhile, for `state`,
/// `kill` and `exec --process` from elsewhere. Its directory goes with it.
fn run(root: &Path, bundle: &Path, id: &str, progress: Progress) -> Result<i32> {
    let (bundle, read) = read_bundle("run", bundle, id, progress)?;
    let oci::Bundle { mut config, annotations, text, .. } = read;
    oci::check_command(&config)?;
    // The pty is relayed to toybox's own terminal: without one, plain stdio.
    config.terminal &= crate::terminal::wanted();
    let (dir, _made, claimed, mut saved) = claim(root, id, &bundle, &config, annotations, &text)?;
    drop(claimed); // `state`, `kill` and `exec` lock it while this one waits
    let fifo = make_fifo(&dir)?;
    config.kept_fds.push(fifo.as_raw_fd());
    let status = crate::run_container(&config, progress, |pid, cgroups| {
        drop(fifo); // the child's copy alone now says created, until its execve
        let _lock = lock(&dir)?;
        saved.set_process(pid, cgroups)?;
        write_state(&dir, &saved)
    });
    // run_container removed the container's own groups.
    for group in crate::planned_cgroups(&config) {
        remove_empty_parents(&group);
    }
    status
}

/// The groups toybox made above a container's for a nested relative
/// cgroupsPath (`toybox/a/b/ID`), each once empty: rmdir fails (EBUSY)
/// while another container is in it (cgroups(7)). toybox/ itself stays,
/// as docker's docker/ does; groups outside it are the client's.
fn remove_empty_parents(group: &Path) {
    let root = Path::new(crate::CGROUP_ROOT);
    let is_top = |dir: &Path| {
        dir.file_name() == Some(crate::CGROUP_PARENT.as_ref())
            && (dir.parent() == Some(root) || dir.parent().and_then(Path::parent) == Some(root))
    };
    let Some(top) = group.ancestors().find(|dir| is_top(dir)) else {
        return;
    };
    for dir in group.ancestors().skip(1).take_while(|dir| *dir != top) {
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// `create`: everything but the command, then exit; the pid file and the
/// state are written before the exit (conmon reads the pid file at once).
fn create(
    root: &Path,
    bundle: &Path,
    pid_file: Option<&Path>,
    console: Option<&Path>,
    preserve_fds: i32,
    id: &str,
    progress: Progress,
) -> Result<i32> {
    let (bundle, read) = read_bundle("create", bundle, id, progress)?;
    let oci::Bundle { mut config, annotations, console_size, text } = read;
    // runc's two rules: a terminal goes to a console socket, and a socket
    // is for a terminal.
    match (config.terminal, console) {
        (true, None) => {
            let what = "process.terminal needs --console-socket: toybox create has no \
                        terminal of its own to give the container";
            return Err(fail("create", what, EXIT_TOYBOX_FAILED));
        }
        (false, Some(_)) => {
            let what = "--console-socket without process.terminal: no pty to send";
            return Err(fail("create", what, EXIT_TOYBOX_FAILED));
        }
        _ => {}
    }
    oci::check_command(&config)?;
    let (dir, mut made, _lock, mut saved) = claim(root, id, &bundle, &config, annotations, &text)?;
    let fifo_fd = make_fifo(&dir)?;
    config.kept_fds.push(fifo_fd.as_raw_fd());
    config.exec_fifo = Some(fifo_fd);
    if let Some((log, _)) = LOG.get() {
        config.kept_fds.push(log.as_raw_fd()); // the child reports its errors there too
    }
    config.kept_fds.extend(3..3 + preserve_fds.max(0));
    let console = console.map(|socket| (socket, console_size));
    crate::create_container(&config, console, progress, |pid, cgroups| {
        saved.set_process(pid, cgroups)?;
        write_state(&dir, &saved)?;
        if let Some(path) = pid_file {
            write_atomically(path, &pid.to_string())?;
        }
        Ok(())
    })?;
    made.keep = true;
    Ok(0)
}

/// `start`: the one byte the created process waits for. The fifo is
/// opened without blocking (ENXIO: nobody reads it, the process is gone),
/// removed, then written: from here on `state` says running.
fn start(root: &Path, id: &str) -> Result<i32> {
    let container = open(root, id)?;
    let status = container.status();
    if status != Status::Created {
        let what = format!("container {id:?} is {}: only a created one can start", status.name());
        return Err(fail("start", what, EXIT_TOYBOX_FAILED));
    }
    let path = container.dir.join(FIFO);
    let open = |options: &mut fs::OpenOptions| {
        let file = options.custom_flags(libc::O_NONBLOCK).open(&path);
        file.stage("start", format!("open {}", path.display()))
    };
    // Opened before the byte goes in, this end reports POLLHUP once no one
    // holds the fifo for writing (pipe_poll in fs/pipe.c): the process's
    // own O_RDWR descriptor is the last, closed by its execve.
    let watch = open(fs::OpenOptions::new().read(true))?;
    let file = open(fs::OpenOptions::new().write(true))?;
    (&file).write_all(b"0").stage("start", format!("write {}", path.display()))?;
    drop(file);
    // No events asked for: POLLIN (the byte, until the process reads it)
    // does not wake us, POLLHUP always does (poll(2)).
    let mut fds = [PollFd::new(watch.as_fd(), PollFlags::empty())];
    while let Err(e) = poll(&mut fds, PollTimeout::NONE) {
        if e != nix::errno::Errno::EINTR {
            return Err(e).stage("start", format!("poll {}", path.display()));
        }
    }
    fs::remove_file(&path).stage("start", format!("remove {}", path.display()))?;
    Ok(0)
}

/// `exec --process FILE ID`: FILE's process in a created or running
/// container (exec.rs). Its command is looked for first, through the
/// container's root as its processes see it (/proc/PID/root, proc(5)), so
/// a missing one is refused in runc's words before anything starts. The
/// container's directory stays locked until the process runs and its pid
/// file is written: a `delete` meanwhile waits for that.
fn exec(
    root: &Path,
    id: &str,
    process_json: &Path,
    pid_file: Option<&Path>,
    options: &ExecOptions,
) -> Result<i32> {
    let container = open(root, id)?;
    let status = container.status();
    if status == Status::Stopped {
        let what = format!("container {id:?} is stopped: nothing to exec in");
        return Err(fail("exec", what, EXIT_TOYBOX_FAILED));
    }
    let path = container.dir.join(CONFIG);
    let text = fs::read_to_string(&path).stage("exec", format!("read {}", path.display()))?;
    let (process, seccomp) = oci::exec_process(process_json, &text)?;
    // runc's rules: a detached process's terminal goes to a console
    // socket, and a socket is for a terminal. In the foreground a terminal
    // is relayed to toybox's own, as `toybox run` does.
    match (process.terminal, options.console) {
        (true, None) if options.detach || !crate::terminal::wanted() => {
            let what = "process.terminal needs --console-socket (or, without --detach, \
                        toybox on a terminal)";
            return Err(fail("exec", what, EXIT_TOYBOX_FAILED));
        }
        (false, Some(_)) => {
            let what = "--console-socket without process.terminal: no pty to send";
            return Err(fail("exec", what, EXIT_TOYBOX_FAILED));
        }
        _ => {}
    }
    let init = Pid::from_raw(container.saved.pid);
    let rootfs = PathBuf::from(format!("/proc/{init}/root"));
    oci::check_command_in(&rootfs, &process.command[0], &process.env)?;
    crate::exec::exec_process(init, &process, &seccomp, options, move |pid| {
        if let Some(path) = pid_file {
            write_atomically(path, &pid.to_string())?;
        }
        drop(container);
        Ok(())
    })
}

/// The state a client reads (runtime.md, "State"); runc's `pid` is 0 once
/// the container has stopped.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    pid: i32,
    bundle: &'a Path,
    created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn state(root: &Path, id: &str) -> Result<i32> {
    let container = open(root, id)?;
    let status = container.status();
    let saved = &container.saved;
    let shown = Shown {
        oci_version: oci::OCI_VERSION,
        id,
        status: status.name(),
        pid: if status == Status::Stopped { 0 } else { saved.pid },
        bundle: &saved.bundle,
        created: &saved.created,
        annotations: &saved.annotations,
    };
    let text = serde_json::to_string_pretty(&shown)
        .map_err(|e| fail("state", e.to_string(), EXIT_TOYBOX_FAILED))?;
    println!("{text}");
    Ok(0)
}

/// `15`, `TERM` or `SIGTERM`, as runc takes them.
fn signal_number(name: &str) -> Result<i32> {
    if let Ok(number) = name.parse::<i32>()
        && (1..=libc::SIGRTMAX()).contains(&number)
    {
        return Ok(number);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    match full.parse::<Signal>() {
        Ok(signal) => Ok(signal as i32),
        Err(_) => Err(fail("kill", format!("unknown signal {name:?}"), EXIT_TOYBOX_FAILED)),
    }
}

/// The processes in the container's groups (cgroup.procs of each), for
/// `kill --all` and `delete`: a container without a PID namespace of its
/// own has more than its first process.
fn processes(saved: &Saved) -> Vec<i32> {
    let mut pids: Vec<i32> = saved
        .cgroups
        .iter()
        .filter_map(|dir| crate::read_kernel_file(dir.join("cgroup.procs")).ok())
        .flat_map(|text| text.lines().filter_map(|l| l.parse().ok()).collect::<Vec<i32>>())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn send(pid: i32, signal: i32) -> Result<()> {
    if pid <= 0 {
        // kill(2) would take 0 and -1 for the caller's group, or everyone.
        return Err(fail("kill", format!("no process to signal (pid {pid})"), EXIT_TOYBOX_FAILED));
    }
    // SAFETY: kill(2) takes numbers; any signal number may be sent.
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ if nix::errno::Errno::last() == nix::errno::Errno::ESRCH => Ok(()), // exited meanwhile
        _ => Err(nix::errno::Errno::last()).stage("kill", format!("kill({pid}, {signal})")),
    }
}

/// `kill`: a created or running container's first process, or with --all
/// every process in its groups. As docker's notes say, PID 1 of a PID
/// namespace only gets the signals it has a handler for (pid_namespaces(7)).
fn kill_container(root: &Path, id: &str, signal: &str, all: bool) -> Result<i32> {
    let container = open(root, id)?;
    let number = signal_number(signal)?;
    let status = container.status();
    if status == Status::Stopped {
        let what = format!("container {id:?} is stopped: nothing to signal");
        return Err(fail("kill", what, EXIT_TOYBOX_FAILED));
    }
    send(container.saved.pid, number)?;
    if all {
        for pid in processes(&container.saved) {
            send(pid, number)?;
        }
    }
    Ok(0)
}

/// `delete`: a stopped container's groups and directory. A created or
/// running one only with --force, which SIGKILLs its processes and waits
/// for them; --force on an id that does not exist is no error (runc's).
fn delete(root: &Path, id: &str, force: bool) -> Result<i32> {
    let container = match open(root, id) {
        Err(e) if force && e.what.ends_with("does not exist") => return Ok(0),
        opened => opened?,
    };
    let status = container.status();
    if status != Status::Stopped {
        if !force {
            let what =
                format!("container {id:?} is {}: stop it first, or delete --force", status.name());
            return Err(fail("delete", what, EXIT_TOYBOX_FAILED));
        }
        send(container.saved.pid, libc::SIGKILL)?;
        wait_for("the container's process to exit", || container.status() == Status::Stopped)?;
    }
    // Whatever is left in its groups (no PID namespace of its own, or
    // processes on their way out), as runc's destroy does.
    for pid in processes(&container.saved) {
        send(pid, libc::SIGKILL)?;
    }
    for group in container.saved.cgroups.iter().rev() {
        // rmdir fails with EBUSY until the last process has left.
        wait_for(&format!("rmdir {}", group.display()), || match fs::remove_dir(group) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound,
        })?;
        remove_empty_parents(group);
    }
    fs::remove_dir_all(&container.dir)
        .stage("delete", format!("remove {}", container.dir.display()))?;
    Ok(0)
}

/// Poll `done` every 10 ms for up to 10 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return Err(fail("delete", format!("waited 10 s for {what}"), EXIT_TOYBOX_FAILED));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(at(1_798_765_321), "2027-01-01T01:02:01.000000000Z");
    }

    #[test]
    fn signals_by_number_and_name() {
        for name in ["15", "TERM", "SIGTERM", "term"] {
            assert_eq!(signal_number(name).ok(), Some(15), "{name}");
        }
        assert_eq!(signal_number("KILL").ok(), Some(9));
        assert!(signal_number("NOPE").is_err());
        assert!(signal_number("0").is_err());
    }
}
