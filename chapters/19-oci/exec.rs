// before 16: //! `toybox ps`: a running container leaves a small record under /run/toybox,
// before 16: //! which lists it and lets whoever finds it stale clean up after it.
// >> 16 exec
//! `toybox exec NAME -c CMD` and `toybox ps`: a running container is found
//! through a small record under /run/toybox, and entered with setns(2), as
//! `nsenter` and `docker exec` do.
// << 16

use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsRawFd; // >> 19
use std::os::fd::{AsFd, OwnedFd}; // >> 16
use std::os::unix::fs::MetadataExt; // >> 19
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sched::{CloneFlags, setns}; // >> 16
use nix::sys::signal::{SigmaskHow, sigprocmask}; // >> 16
// before 16: use nix::unistd::Pid;
use nix::unistd::{ForkResult, Pid, Uid, fork}; // >> 16

// before 16: use crate::error::{Result, Stage, fail};
use crate::error::{EXIT_TOYBOX_FAILED, Result, Stage, fail}; // >> 16
use crate::{Container, STOP_GRACE, block_signals, create_socketpair, terminal, wait_for_child}; // >> 16
use crate::{error, oci}; // >> 19

const STATE_DIR: &str = "/run/toybox";

/// The record of a running container: its PID 1 with that process's start
/// time, so that a pid reused after a crash is not mistaken for it, and the
/// cgroups toybox made for it. Dropping the record removes it.
pub struct Record {
    path: PathBuf,
}

pub fn write_record(
    name: &str,
    pid: Pid,
    uid: u32,
    command: &[String],
    cgroups: &[PathBuf],
) -> Result<Record> {
    fs::create_dir_all(STATE_DIR).stage("state", format!("mkdir {STATE_DIR}"))?;
    let start =
        start_time(pid).ok_or_else(|| fail("state", format!("no /proc/{pid}/stat"), 125))?;
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut text = format!(
        "pid {pid}\nstart_time {start}\nuid {uid}\nstarted {since}\ncommand {}\n",
        command.join(" ")
    );
    for dir in cgroups {
        text += &format!("cgroup {}\n", dir.display());
    }
    let path = Path::new(STATE_DIR).join(name);
    // Written whole, then renamed: `ps` never reads half a record.
    let partial = path.with_extension("new");
    fs::write(&partial, text).stage("state", format!("write {}", partial.display()))?;
    fs::rename(&partial, &path).stage("state", format!("rename to {}", path.display()))?;
    Ok(Record { path })
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Clone)]
struct State {
    name: String,
    pid: Pid,
    start_time: u64,
    uid: u32, // >> 16
    started: u64,
    command: String,
    cgroups: Vec<PathBuf>,
}

fn read_record(path: &Path) -> Option<State> {
    let text = fs::read_to_string(path).ok()?;
    let field = |key: &str| {
        text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')).unwrap_or("")
    };
    Some(State {
        name: path.file_name()?.to_string_lossy().into_owned(),
        pid: Pid::from_raw(field("pid").parse().ok()?),
        start_time: field("start_time").parse().ok()?,
        uid: field("uid").parse().ok()?, // >> 16
        started: field("started").parse().unwrap_or(0),
        command: field("command").to_string(),
        cgroups: text
            .lines()
            .filter_map(|l| l.strip_prefix("cgroup "))
            .map(PathBuf::from)
            .collect(),
    })
}

/// Field 22 of /proc/<pid>/stat, counted after the command name, which may
/// itself hold spaces and parentheses (proc(5)); None once the process has
/// exited, even while it waits to be reaped (state Z).
// before 18: fn start_time(pid: Pid) -> Option<u64> {
// >> 18 network
pub(crate) fn start_time(pid: Pid) -> Option<u64> {
    // << 18
    let stat = crate::read_kernel_file(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The record of a container that is still running. A record whose PID 1 is
/// gone (toybox was killed with SIGKILL, the machine crashed) is stale: it and
/// the container's cgroups, empty by now, are removed by whoever finds it.
/// Should a group still hold a process on its way out, the record stays for
/// the next run to try again.
fn running(path: &Path) -> Option<State> {
    // >> 18 network
    if path.is_dir() {
        return None; // net/, the leases
    }
    // << 18
    let state = read_record(path);
    if let Some(state) = &state
        && start_time(state.pid) == Some(state.start_time)
    {
        return Some(state.clone());
    }
    let mut removed = true;
    if let Some(state) = &state {
        for dir in state.cgroups.iter().rev().filter(|dir| is_container_group(dir, &state.name)) {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != ErrorKind::NotFound => removed = false,
                _ => {}
            }
        }
    }
    if removed {
        let _ = fs::remove_file(path);
    }
    None
}

/// Only a group toybox makes is removed on a record's word:
/// /sys/fs/cgroup/[CONTROLLER/]toybox/NAME, NAME the record's own.
fn is_container_group(dir: &Path, name: &str) -> bool {
    let parent = dir.parent().unwrap_or(dir);
    dir.starts_with(crate::CGROUP_ROOT)
        && dir.file_name() == Some(name.as_ref())
        && parent.file_name() == Some(crate::CGROUP_PARENT.as_ref())
        && dir.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Every toybox run looks for records a killed toybox left behind.
pub fn remove_stale_records() {
    crate::network::reclaim(); // >> 18
    for entry in fs::read_dir(STATE_DIR).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none() {
            running(&path);
        }
    }
}

/// `toybox ps`: one line per running container.
pub fn list() -> Result<i32> {
    crate::network::reclaim(); // >> 18
    let mut paths: Vec<PathBuf> = match fs::read_dir(STATE_DIR) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).stage("ps", format!("read {STATE_DIR}")),
    };
    paths.sort();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    // before 18: println!("{:<28} {:>8} {:>9}  COMMAND", "NAME", "PID", "UPTIME");
    // >> 18 network
    let header = ("NAME", "PID", "UPTIME", "ADDRESS", "PORTS");
    println!(
        "{:<28} {:>8} {:>9}  {:<15} {:<24} COMMAND",
        header.0, header.1, header.2, header.3, header.4
    );
    // << 18
    for state in paths.iter().filter(|p| p.extension().is_none()).filter_map(|p| running(p)) {
        let uptime = uptime(Duration::from_secs(now.saturating_sub(state.started)));
        // before 18: println!("{:<28} {:>8} {:>9}  {}", state.name, state.pid, uptime, state.command);
        // >> 18 network
        let (address, ports) = crate::network::describe_container(&state.name);
        let columns = (state.name, state.pid, uptime, address, ports);
        println!(
            "{:<28} {:>8} {:>9}  {:<15} {:<24} {}",
            columns.0, columns.1, columns.2, columns.3, columns.4, state.command
        );
        // << 18
    }
    Ok(0)
}

fn uptime(time: Duration) -> String {
    let s = time.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

// >> 16 exec
/// The namespaces a container's process is in, joined in this order: every
/// one of them while toybox still has the host's privileges, the user
/// namespace last, since inside it toybox has none over the others
/// (setns(2)). The PID namespace only takes effect for children, so toybox
/// joins it and then forks.
const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// `toybox exec NAME -c CMD`: CMD runs in the container's namespaces and
/// cgroups, as its uid (or -u), with the same capabilities dropped and the
/// same seccomp filter as the container's first process.
pub fn exec_into(name: &str, uid: Option<u32>, command: &[String]) -> Result<i32> {
    if !Uid::effective().is_root() {
        return Err(fail("exec", "toybox exec needs root to join namespaces; try sudo", 125));
    }
    // A name is a file name in STATE_DIR, never a path: a stale record is
    // deleted, and `../../etc/passwd` must not be.
    let valid = !name.is_empty() && !name.contains('/') && !name.starts_with('.');
    let state = valid.then(|| running(&Path::new(STATE_DIR).join(name))).flatten();
    let Some(state) = state else {
        let what = format!("no running container {name} (see toybox ps)");
        return Err(fail("exec", what, EXIT_TOYBOX_FAILED));
    };
    let uid = uid.unwrap_or(state.uid);
    let entry = enter(state.pid)?;
    let signals = block_signals()?;
    let tty = terminal::wanted();
    let (parent_sock, child_sock) = create_socketpair()?;
    // SAFETY: toybox has one thread here, so fork(2) is safe.
    let pid = match unsafe { fork() }.stage("exec", "fork")? {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            let result = (|| {
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&signals.original), None)
                    .stage("exec", "restore signal mask")?;
                entry.join()?;
                crate::switch_user(&crate::User::contained(uid))?;
                // Should toybox exec be killed, its command goes with it.
                crate::die_with_parent(&child_sock)?;
                // In the container's devpts, as its user: the pty is theirs.
                if tty {
                    terminal::attach_child(&child_sock)?;
                }
                crate::drop_capabilities(&crate::Capabilities::contained())?;
                crate::load_seccomp_filter(&crate::SECCOMP_PROGRAMS, true)?;
                // toybox exec's own caller may have passed it anything.
                // before 19: crate::close_inherited_fds(None)?;
                crate::close_inherited_fds(&[])?; // >> 19
                let env = crate::container_env(uid, name, &[]);
                crate::exec_command(command, &env)
            })();
            let Err(error) = result;
            eprintln!("toybox: {error}");
            // SAFETY: _exit(2) leaves without running the parent's destructors.
            unsafe { libc::_exit(error.exit_code) }
        }
    };
    drop(child_sock);
    let mut container = Container { pid, reaped: false };
    entry.leave()?;
    let relay = match tty {
        true => Some(terminal::relay_parent(&parent_sock)?),
        false => None,
    };
    let status = wait_for_child(&mut container, &signals.forwarded, STOP_GRACE)?;
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(status)
}

/// A namespace to join: its name in /proc/PID/ns, its flag, its file.
type Namespace = (&'static str, CloneFlags, OwnedFd);

/// The namespaces of the container's process `pid`, opened now (NAMESPACES'
/// order), and its PID namespace.
// >> 19 oci
/// One the container shares with toybox is left out: it is joined already,
/// and setns(2) refuses to join one's own user namespace (EINVAL).
// << 19
fn open_namespaces(pid: Pid) -> Result<(Vec<Namespace>, OwnedFd)> {
    let open_ns = |ns: &str| {
        let path = format!("/proc/{pid}/ns/{ns}");
        fs::File::open(&path).map(OwnedFd::from).stage("exec", format!("open {path}"))
    };
    let namespaces = NAMESPACES
        .iter()
        .filter(|&&(ns, _)| !is_own_namespace(pid, ns)) // >> 19
        .map(|&(ns, flag)| Ok((ns, flag, open_ns(ns)?)))
        .collect::<Result<_>>()?;
    Ok((namespaces, open_ns("pid")?))
}

/// What entering the container whose process is `pid` takes, opened while
/// toybox still sees the host: its namespaces and groups, and toybox's own
/// PID namespace to come back to.
struct Entry {
    namespaces: Vec<Namespace>,
    cgroups: Vec<(String, OwnedFd)>,
    own_pid_ns: fs::File,
}

/// The container's PID namespace is entered at once: it takes effect only
/// for the child toybox forks next (setns(2)).
fn enter(pid: Pid) -> Result<Entry> {
    let (namespaces, pid_ns) = open_namespaces(pid)?;
    let own_pid_ns = fs::File::open("/proc/self/ns/pid").stage("exec", "open /proc/self/ns/pid")?;
    let cgroups = open_cgroups(pid)?;
    setns(pid_ns.as_fd(), CloneFlags::CLONE_NEWPID).stage("exec", "setns(pid)")?;
    Ok(Entry { namespaces, cgroups, own_pid_ns })
}

impl Entry {
    /// In the forked child: into the container's groups, while the host's
    /// cgroup files are still in view, then into its namespaces.
    fn join(&self) -> Result<()> {
        for (file, fd) in &self.cgroups {
            nix::unistd::write(fd, b"0").stage("exec", format!("write {file}"))?;
        }
        for (ns, flag, fd) in &self.namespaces {
            setns(fd.as_fd(), *flag).stage("exec", format!("setns({ns})"))?;
        }
        Ok(())
    }

    /// Back to toybox's own: clone(2) refuses threads (the terminal
    /// relay's) while children would be born into another PID namespace.
    fn leave(&self) -> Result<()> {
        setns(self.own_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID).stage("exec", "setns(own pid)")
    }
}

/// The file that joins every group the container's PID 1 is in, opened now,
/// while the host's /sys/fs/cgroup is still in view: the forked child writes
/// itself into them before it joins the container's mount namespace.
/// /proc/<pid>/cgroup names them (cgroups(7)); `0::/path` is the v2 tree.
/// In v1 that file is `tasks`: the child is one thread, and "0" there skips
/// the global lock a cgroup.procs write takes (see create_cgroups_v1).
fn open_cgroups(pid: Pid) -> Result<Vec<(String, OwnedFd)>> {
    let list = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&list).stage("exec", format!("read {list}"))?;
    let mut files = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (root, join) = match controllers {
            "" if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
                ("/sys/fs/cgroup".into(), "cgroup.procs")
            }
            "" => ("/sys/fs/cgroup/unified".to_string(), "cgroup.procs"),
            named => (format!("/sys/fs/cgroup/{}", named.trim_start_matches("name=")), "tasks"),
        };
        let file = format!("{root}{path}/{join}");
        if !Path::new(&file).exists() {
            continue; // a hierarchy mounted elsewhere, or not at all
        }
        let fd =
            fs::OpenOptions::new().write(true).open(&file).stage("exec", format!("open {file}"))?;
        files.push((file, OwnedFd::from(fd)));
    }
    Ok(files)
}
// << 16

// >> 19 oci
/// Two processes are in the same namespace when their /proc/PID/ns files
/// are the same inode (namespaces(7)).
fn is_own_namespace(pid: Pid, ns: &str) -> bool {
    let id = |path: String| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let own = id(format!("/proc/self/ns/{ns}"));
    own.is_some() && own == id(format!("/proc/{pid}/ns/{ns}"))
}

/// How `exec --process` runs it.
pub(crate) struct ExecOptions<'a> {
    /// Exit once it has started; it lives on (conmon, a subreaper, reaps it).
    pub detach: bool,
    /// With process.terminal: where the pty's master goes.
    pub console: Option<&'a Path>,
    /// Descriptors 3..3+N go to it too.
    pub preserve_fds: i32,
}

/// `exec --process`: an OCI process in the container whose first process
/// is `init`. It joins the same namespaces and groups as `toybox exec -c`
/// does, then becomes process.json's process with the stages `create` uses
/// for the container's own (rlimits, user, terminal, capabilities, seccomp
/// in child_stages' order), but with the container's seccomp filter.
/// `started` is called with its pid once execve has succeeded (the pid
/// file); with --detach toybox then exits 0 and the process stays.
pub(crate) fn exec_process(
    init: Pid,
    process: &oci::ProcessConfig,
    seccomp: &[Vec<u8>],
    options: &ExecOptions,
    started: impl FnOnce(Pid) -> Result<()>,
) -> Result<i32> {
    let entry = enter(init)?;
    let signals = block_signals()?;
    let (parent_sock, child_sock) = create_socketpair()?;
    // SAFETY: toybox has one thread here, so fork(2) is safe.
    let pid = match unsafe { fork() }.stage("exec", "fork")? {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            let result = (|| {
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&signals.original), None)
                    .stage("exec", "restore signal mask")?;
                // Raising a limit or lowering the OOM score needs the host's
                // CAP_SYS_RESOURCE: before the user namespace.
                crate::set_rlimits(&process.rlimits)?;
                if let Some(value) = process.oom_score_adj {
                    crate::set_oom_score_adj(value)?;
                }
                entry.join()?;
                nix::sys::prctl::set_keepcaps(true).stage("capabilities", "PR_SET_KEEPCAPS")?;
                crate::switch_user(&process.user)?;
                if !options.detach {
                    crate::die_with_parent(&child_sock)?;
                }
                if process.terminal {
                    terminal::attach_child(&child_sock)?;
                }
                crate::raise_effective()?;
                if !process.no_new_privileges && !seccomp.is_empty() {
                    crate::load_seccomp_filter(seccomp, false)?;
                }
                crate::drop_capabilities(&process.capabilities)?;
                if process.no_new_privileges {
                    crate::load_seccomp_filter(seccomp, true)?;
                }
                let cwd = &process.cwd;
                nix::unistd::chdir(cwd).stage("workdir", format!("chdir {}", cwd.display()))?;
                // Its socket stays open until execve closes it (close-on-exec).
                let mut keep = vec![child_sock.as_raw_fd()];
                keep.extend(3..3 + options.preserve_fds.max(0));
                crate::close_inherited_fds(&keep)?;
                crate::exec_command(&process.command, &process.env)
            })();
            let Err(error) = result;
            crate::report(&error);
            // One byte: it failed (it said why), rather than started.
            let _ = nix::unistd::write(&child_sock, b"e");
            // SAFETY: _exit(2) leaves without running the parent's destructors.
            unsafe { libc::_exit(error.exit_code) }
        }
    };
    drop(child_sock);
    let mut container = Container { pid, reaped: false };
    entry.leave()?;
    let mut relay = None;
    if process.terminal {
        let handed = match options.console {
            Some(socket) => terminal::send_to_console(&parent_sock, socket, process.console_size),
            None => terminal::relay_parent(&parent_sock).map(|r| relay = Some(r)),
        };
        if let Err(e) = handed {
            return Err(failed(&mut container).unwrap_or(e));
        }
    }
    // execve closes the child's end: end of file. A failure sends a byte first.
    let mut byte = [0u8];
    if nix::unistd::read(&parent_sock, &mut byte).stage("exec", "read from the process")? != 0 {
        return Err(failed(&mut container).unwrap_or_else(|| error::reported(125)));
    }
    started(pid)?;
    if options.detach {
        container.reaped = true; // not ours to kill or reap
        return Ok(0);
    }
    let status = wait_for_child(&mut container, &signals.forwarded, STOP_GRACE)?;
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(status)
}

/// The process failed before execve and said why: its exit status.
fn failed(container: &mut Container) -> Option<crate::error::Error> {
    let status = nix::sys::wait::waitpid(container.pid, None).ok()?;
    container.reaped = true;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => Some(error::reported(code)),
        _ => None,
    }
}
// << 19
