//! `toybox ps`: a running container leaves a small record under /run/toybox,
//! which lists it and lets whoever finds it stale clean up after it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::unistd::Pid;

use crate::error::{Result, Stage, fail};

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
fn start_time(pid: Pid) -> Option<u64> {
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
    for entry in fs::read_dir(STATE_DIR).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none() {
            running(&path);
        }
    }
}

/// `toybox ps`: one line per running container.
pub fn list() -> Result<i32> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(STATE_DIR) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).stage("ps", format!("read {STATE_DIR}")),
    };
    paths.sort();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    println!("{:<28} {:>8} {:>9}  COMMAND", "NAME", "PID", "UPTIME");
    for state in paths.iter().filter(|p| p.extension().is_none()).filter_map(|p| running(p)) {
        let uptime = uptime(Duration::from_secs(now.saturating_sub(state.started)));
        println!("{:<28} {:>8} {:>9}  {}", state.name, state.pid, uptime, state.command);
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
