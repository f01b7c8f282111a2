//! podman drives the runtime: Debian's podman and conmon run containers with
//! `--runtime` set to toybox, then runc, then crun, and every check runs for
//! each (the podman checks: `run --rm` with and without seccomp,
//! exit codes, `run -t`, `run -d` + `exec` + `stop` + `rm`, nothing left).
//! The runc and crun rows prove the suite; the toybox rows are toybox.
//!
//! Rows are named RUNTIME_CHECK, so the usual filter picks runtimes:
//!   cargo test --release --test podman -- runc_ crun_    runc and crun only
//!   cargo test --release --test podman -- toybox_        toybox only
//! TOYBOX_UNDER_TEST=PATH runs the toybox rows on another toybox binary
//! (default: this build's).
//!
//! Each runtime gets its own podman, isolated under target/podman-tests/:
//! temporary --root/--runroot/--tmpdir, the vfs storage driver (no overlay
//! mount left behind), cgroupfs, a file for events, and a containers.conf
//! (CONTAINERS_CONF) that lowers the default ulimits (this kind of host's
//! hard NOFILE is below podman's 1048576 and root lacks CAP_SYS_RESOURCE),
//! keeps CNI's lock file out of /etc/cni, and lists all three runtimes in
//! runtime_supports_json, so each is called with `--log-format=json --log`.
//! Containers use `--rootfs` (a copy of the busybox test rootfs: podman
//! writes /etc/hostname and friends into it), `--network=none` (no
//! bridge, no firewall rules), `--ipc=none` (no /dev/shm mount on the
//! host) and a cgroup parent the suite removes afterwards.
//!
//! podman runs the runtime through a small logging script (named like the
//! runtime: podman matches runtime_supports_json on the basename) that
//! records every call and its exit status: a failing row names the step
//! that failed ("toybox create exited 1") and lists the calls podman made.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod harness;

type Outcome = Result<(), String>;
type Check = fn(&Podman) -> Outcome;

/// The three runtimes, each with the binary podman is given.
const RUNTIMES: [&str; 3] = ["toybox", "runc", "crun"];

/// podman's flags for every container: see the header.
const RUN_FLAGS: [&str; 3] = ["--network=none", "--cgroups=no-conmon", "--ipc=none"];

/// Any one podman command may take this long (a runtime that blocks must
/// fail its row, not hang the suite).
const TIMEOUT_SECS: &str = "60";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toybox() -> PathBuf {
    match std::env::var_os("TOYBOX_UNDER_TEST") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_toybox")),
    }
}

/// Where a runtime is installed, or why its rows are skipped.
fn runtime_binary(runtime: &str) -> Result<PathBuf, String> {
    if runtime == "toybox" {
        let path = toybox();
        return match path.exists() {
            true => Ok(path),
            false => Err(format!("{} does not exist", path.display())),
        };
    }
    which(runtime).ok_or_else(|| format!("{runtime} is not installed (apt-get install {runtime})"))
}

fn which(program: &str) -> Option<PathBuf> {
    let output = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

fn setup(command: &mut Command) -> Outcome {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr))),
    }
}

/// The busybox rootfs with the probe, as the other suites make it.
fn test_rootfs() -> Result<PathBuf, String> {
    let rootfs = repo().join("target/test-rootfs");
    setup(Command::new(repo().join("rootfs-scripts/busybox-rootfs.sh")).arg(&rootfs))?;
    let probe = rootfs.join("probe");
    setup(
        Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&probe)
            .arg(repo().join("tests/probe/probe.c"))
            .arg("-lpthread"),
    )?;
    Ok(rootfs)
}

/// One runtime's isolated podman: its directory holds podman's storage,
/// run and tmp dirs, containers.conf, the rootfs copy, the logging wrapper
/// and its log.
struct Podman {
    runtime: &'static str,
    dir: PathBuf,
    /// The wrapper podman is given as --runtime.
    wrapper: PathBuf,
    /// The cgroup parent (relative to each hierarchy's root).
    parent: String,
}

impl Podman {
    fn new(runtime: &'static str, binary: &Path, rootfs: &Path) -> Result<Podman, String> {
        let dir = repo().join("target/podman-tests").join(runtime);
        let _ = fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).map_err(|e| format!("mkdir {}: {e}", bin.display()))?;
        let conf = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\n\
             network_config_dir = \"{}\"\n\
             [engine]\n\
             runtime_supports_json = [\"toybox\", \"runc\", \"crun\"]\n",
            dir.join("net").display()
        );
        write(&dir.join("containers.conf"), &conf)?;
        let copy = dir.join("rootfs");
        setup(Command::new("cp").arg("-a").arg(rootfs).arg(&copy))?;
        let wrapper = bin.join(runtime);
        write(&wrapper, &wrapper_script(runtime, binary, &dir))?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let parent = format!("toybox-podman-test-{}", std::process::id());
        Ok(Podman { runtime, dir, wrapper, parent })
    }

    fn log(&self) -> PathBuf {
        self.dir.join("calls.log")
    }

    /// `podman` with the global flags, as a list of words.
    fn podman_words(&self) -> Vec<String> {
        let d = |name: &str| self.dir.join(name).display().to_string();
        vec![
            "podman".into(),
            "--runtime".into(),
            self.wrapper.display().to_string(),
            "--root".into(),
            d("storage"),
            "--runroot".into(),
            d("run"),
            "--tmpdir".into(),
            d("tmp"),
            "--storage-driver=vfs".into(),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
        ]
    }

    /// `podman run` up to the command: run flags, the cgroup parent, any
    /// `extra` flags, then --rootfs (a switch: it turns the first word after
    /// the flags into a directory) and `command`.
    fn run_words(&self, extra: &[&str], command: &[&str]) -> Vec<String> {
        let mut words = self.podman_words();
        words.push("run".into());
        words.extend(RUN_FLAGS.iter().map(|s| s.to_string()));
        words.push(format!("--cgroup-parent=/{}", self.parent));
        words.extend(extra.iter().map(|s| s.to_string()));
        words.push("--rootfs".into());
        words.push(self.dir.join("rootfs").display().to_string());
        words.extend(command.iter().map(|s| s.to_string()));
        words
    }

    /// Runs `words` (a podman command line) under timeout(1), stdin from
    /// /dev/null, and returns what it printed.
    fn exec(&self, words: &[String]) -> Result<Run, String> {
        let output = Command::new("timeout")
            .args(["-k", "5", TIMEOUT_SECS])
            .args(words)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", words.join(" ")))?;
        Ok(Run {
            what: shown(words),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// The same under a pseudo-terminal (script(1)), its size set to
    /// 24x80 first: podman -t needs a terminal on its side.
    fn exec_in_pty(&self, words: &[String]) -> Result<Run, String> {
        let line = format!(
            "stty rows 24 cols 80; exec timeout -k 5 {TIMEOUT_SECS} {}",
            shell_words(words)
        );
        let output = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("script: {e}"))?;
        Ok(Run {
            what: format!("script -qec '{}'", shown(words)),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).replace('\r', ""),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn podman(&self, args: &[&str]) -> Result<Run, String> {
        let mut words = self.podman_words();
        words.extend(args.iter().map(|s| s.to_string()));
        self.exec(&words)
    }

    /// The wrapper's log: one `call PID ARGS` line as the runtime starts and
    /// one `exit PID STATUS` line when it returns.
    fn calls(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Why a row failed, for a reader: the first runtime call that exited
    /// non-zero ("toybox create exited 1"), or that none did, then the
    /// calls podman made during the row.
    fn explain(&self, error: String) -> String {
        let calls = self.calls();
        let mut started: Vec<(&str, &str)> = Vec::new();
        let mut failed = None;
        for line in calls.lines() {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("call"), Some(pid), Some(args)) => started.push((pid, args)),
                (Some("exit"), Some(pid), Some(status)) if status != "0" && failed.is_none() => {
                    let args = started.iter().find(|(p, _)| *p == pid).map_or("", |(_, a)| a);
                    failed = Some(format!("{} {} exited {status}", self.runtime, step(args)));
                }
                _ => {}
            }
        }
        let summary = failed.unwrap_or_else(|| format!("no {} call failed", self.runtime));
        format!("{summary}\n{error}\nruntime calls:\n{calls}")
    }

    /// Container ids the runtime was given (the last word of each call).
    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .calls()
            .lines()
            .filter_map(|l| l.strip_prefix("call "))
            .filter_map(|l| l.split(' ').next_back())
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Anything of the runtime's still there for the row's containers: a
    /// state directory under /run named by the id (runc's /run/runc/ID,
    /// crun's /run/crun/ID, toybox's), a cgroup naming it (libpod-ID), a
    /// mount naming it or the suite's directory, a process naming it in its
    /// command line (conmon) or in its cgroup (the container's). podman's
    /// cleanup runs after `run --rm` returns: give it 5 s.
    fn leftovers(&self) -> Vec<String> {
        let ids = self.ids();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = leftovers(&ids, &self.dir);
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// After a failed row: remove what podman still has, so the next row
    /// starts clean.
    fn clean(&self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
    }

    /// After the runtime's rows: podman's containers, the cgroup parent in
    /// every hierarchy, the directory.
    fn finish(&self) -> Outcome {
        self.clean();
        // podman's cleanup process may still be removing a libpod-ID group
        // below the parent: try for a few seconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left = cgroup_dirs(&self.parent);
        while !left.is_empty() && Instant::now() < deadline {
            for group in &left {
                let _ = fs::remove_dir(group);
            }
            left = cgroup_dirs(&self.parent);
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        match left.is_empty() {
            true => Ok(()),
            false => Err(format!("cgroups left: {left:?}")),
        }
    }
}

fn write(path: &Path, text: &str) -> Outcome {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The runtime's command in its arguments (after global flags such as
/// --log-format=json --log PATH).
fn step(args: &str) -> &str {
    const STEPS: [&str; 8] =
        ["create", "start", "exec", "kill", "delete", "state", "run", "--version"];
    args.split(' ').find(|w| STEPS.contains(w)).unwrap_or(args)
}

/// The logging wrapper. crun 1.8 refuses a hybrid cgroup host whose cgroup2
/// mount has controllers ("cgroups in hybrid mode not supported"): there it
/// runs in a private mount namespace with that file masked, as bench/run.sh
/// runs it (the container's own namespaces are made inside that one).
fn wrapper_script(runtime: &str, binary: &Path, dir: &Path) -> String {
    let log = dir.join("calls.log").display().to_string();
    let controllers = "/sys/fs/cgroup/unified/cgroup.controllers";
    let hybrid = fs::read_to_string(controllers).is_ok_and(|c| !c.trim().is_empty());
    let run = match (runtime, hybrid) {
        ("crun", true) => {
            let empty = dir.join("empty").display().to_string();
            format!(
                ": > '{empty}'\n\
                 unshare -m --propagation private sh -c \
                 'mount --bind \"$0\" {controllers} && exec \"$@\"' '{empty}' '{}' \"$@\"",
                binary.display()
            )
        }
        _ => format!("'{}' \"$@\"", binary.display()),
    };
    format!(
        "#!/bin/sh\n\
         # Written by tests/podman.rs: logs each call podman makes, then runs {runtime}.\n\
         echo \"call $$ $*\" >> '{log}'\n\
         {run}\n\
         status=$?\n\
         echo \"exit $$ $status\" >> '{log}'\n\
         exit $status\n"
    )
}

/// Directories named `name` directly under each cgroup hierarchy.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for hierarchy in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let dir = hierarchy.path().join(name);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    let v2 = Path::new("/sys/fs/cgroup").join(name);
    if v2.is_dir() && !found.contains(&v2) {
        found.push(v2);
    }
    found
}

fn leftovers(ids: &[String], dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let names = |text: &str| ids.iter().any(|id| text.contains(id.as_str()));
    // State roots: runc's /run/runc, crun's /run/crun, toybox's, all in /run.
    for root in fs::read_dir("/run").into_iter().flatten().flatten() {
        for id in ids {
            let state = root.path().join(id);
            if state.exists() {
                left.push(format!("state {}", state.display()));
            }
        }
    }
    // Cgroups: the container's libpod-ID group, at any depth up to 4.
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((path, depth)) = stack.pop() {
        for entry in fs::read_dir(&path).into_iter().flatten().flatten() {
            let child = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if names(&entry.file_name().to_string_lossy()) {
                left.push(format!("cgroup {}", child.display()));
            } else if depth < 4 {
                stack.push((child, depth + 1));
            }
        }
    }
    let dir = dir.display().to_string();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines().filter(|l| names(l) || l.contains(dir.as_str())) {
        left.push(format!("mount {line}"));
    }
    for process in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = process.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        let cmdline = fs::read(process.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cgroup = fs::read_to_string(process.path().join("cgroup")).unwrap_or_default();
        if names(&cmdline) || names(&cgroup) {
            left.push(format!("process {pid}: {}", cmdline.trim()));
        }
    }
    left
}

/// A command line as a reader would type it (paths shortened to the
/// suite's directory).
fn shown(words: &[String]) -> String {
    let dir = repo().join("target/podman-tests").display().to_string();
    words.join(" ").replace(&dir, "$T")
}

fn shell_words(words: &[String]) -> String {
    let quote = |w: &String| format!("'{}'", w.replace('\'', "'\\''"));
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}

struct Run {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "{}\nexit {:?}\nstdout:\n{}stderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    fn expect_code(&self, code: i32) -> Outcome {
        match self.code {
            Some(c) if c == code => Ok(()),
            Some(124) => Err(format!("timed out after {TIMEOUT_SECS} s\n{}", self.describe())),
            _ => Err(format!("want exit {code}\n{}", self.describe())),
        }
    }

    fn expect_stdout(&self, want: &str) -> Outcome {
        match self.stdout == want {
            true => Ok(()),
            false => Err(format!("want stdout {want:?}\n{}", self.describe())),
        }
    }
}

/// A terminal's name as tty(1) prints it: /dev/pts/N.
fn is_pts(line: &str) -> bool {
    line.strip_prefix("/dev/pts/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

// ---------------------------------------------------------------------------
// The checks, each run once per runtime.
// ---------------------------------------------------------------------------

/// `podman run --rm … echo hello`, with podman's default seccomp profile in
/// config.json.
fn run_echo(p: &Podman) -> Outcome {
    let run = p.exec(&p.run_words(&["--rm"], &["echo", "hello"]))?;
    run.expect_code(0)?;
    run.expect_stdout("hello\n")
}

/// The same without a seccomp profile.
fn run_echo_unconfined(p: &Podman) -> Outcome {
    let run = p.exec(
        &p.run_words(&["--rm", "--security-opt", "seccomp=unconfined"], &["echo", "hello"]),
    )?;
    run.expect_code(0)?;
    run.expect_stdout("hello\n")
}

/// The container's exit status through conmon and podman: 3 as given; 137
/// for a process SIGKILLed inside (a nested shell: PID 1 itself ignores a
/// SIGKILL sent from inside its namespace, pid_namespaces(7), and busybox sh
/// would exec a lone last command as PID 1); 127 and 126 for a missing and
/// a non-executable command, which podman derives from the runtime's words
/// ("no such file or directory", "permission denied") and names in its
/// error. podman exits 126 for any other runtime error too: hence the words.
fn run_exit_codes(p: &Podman) -> Outcome {
    let cases: [(&[&str], i32, &str); 4] = [
        (&["sh", "-c", "exit 3"], 3, ""),
        (&["sh", "-c", "sh -c 'kill -9 $$'; exit $?"], 137, ""),
        (&["/nope"], 127, "OCI runtime attempted to invoke a command that was not found"),
        (&["/etc"], 126, "OCI permission denied"),
    ];
    let mut wrong = Vec::new();
    for (command, code, words) in cases {
        let run = p.exec(&p.run_words(&["--rm"], command))?;
        if run.code != Some(code) || !run.stderr.contains(words) {
            wrong.push(format!("{command:?}: want exit {code}, {words:?}\n{}", run.describe()));
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(wrong.join("\n")),
    }
}

/// `podman run -t` under a terminal: the container's stdio is a pty the
/// runtime made and sent to conmon's console socket, with the size podman
/// passed on.
fn run_tty(p: &Podman) -> Outcome {
    let run = p.exec_in_pty(&p.run_words(&["--rm", "-t"], &["sh", "-c", "tty; stty size"]))?;
    run.expect_code(0)?;
    let lines: Vec<&str> = run.stdout.lines().collect();
    match lines.as_slice() {
        [tty, "24 80"] if is_pts(tty) => Ok(()),
        _ => Err(format!("want /dev/pts/N then \"24 80\"\n{}", run.describe())),
    }
}

/// A detached container: `exec` into it with and without a terminal,
/// `stop -t 2` (sleep ignores SIGTERM as PID 1, so podman sends SIGKILL
/// after 2 s: exit code 137), `rm`, and then podman lists nothing.
fn detached_exec_stop_rm(p: &Podman) -> Outcome {
    let run = p.exec(&p.run_words(&["-d", "--name", "c1"], &["sleep", "300"]))?;
    run.expect_code(0)?;
    let cmdline = p.podman(&["exec", "c1", "cat", "/proc/1/cmdline"])?;
    cmdline.expect_code(0)?;
    cmdline.expect_stdout("sleep\x00300\x00")?;
    let mut words = p.podman_words();
    words.extend(["exec", "-t", "c1", "tty"].map(String::from));
    let tty = p.exec_in_pty(&words)?;
    tty.expect_code(0)?;
    if !is_pts(tty.stdout.trim()) {
        return Err(format!("want /dev/pts/N\n{}", tty.describe()));
    }
    let started = Instant::now();
    let stop = p.podman(&["stop", "-t", "2", "c1"])?;
    let took = started.elapsed();
    stop.expect_code(0)?;
    if took > Duration::from_secs(5) {
        return Err(format!("stop took {took:?}\n{}", stop.describe()));
    }
    let inspect = p.podman(&["inspect", "-f", "{{.State.ExitCode}}", "c1"])?;
    inspect.expect_stdout("137\n")?;
    p.podman(&["rm", "c1"])?.expect_code(0)?;
    let ps = p.podman(&["ps", "-a", "-q"])?;
    ps.expect_code(0)?;
    ps.expect_stdout("")
}

/// podman's default seccomp profile (containers-common's seccomp.json, sent
/// in config.json) as the container meets it, read by the probe from
/// inside: add_key falls to the profile's defaultErrnoRet (ENOSYS),
/// perf_event_open to an EPERM rule for want of CAP_SYS_ADMIN,
/// personality(0xffffffff) to an allow rule with an argument compare, and,
/// with CAP_AUDIT_WRITE dropped, an audit netlink socket to an EINVAL rule
/// comparing two arguments. With seccomp=unconfined each call gets the
/// kernel's own answer.
fn default_seccomp_profile(p: &Podman) -> Outcome {
    let drop = ["--rm", "--cap-drop", "AUDIT_WRITE"];
    let unconfined = ["--rm", "--cap-drop", "AUDIT_WRITE", "--security-opt", "seccomp=unconfined"];
    let cases: [(&[&str], &str); 2] = [
        (&drop, "add_key ENOSYS\nperf_event_open EPERM\npersonality OK\nnetlink_audit EINVAL\n"),
        (&unconfined, "add_key EFAULT\nperf_event_open EFAULT\npersonality OK\nnetlink_audit OK\n"),
    ];
    for (extra, want) in cases {
        let run = p.exec(&p.run_words(extra, &["/probe", "profile"]))?;
        run.expect_code(0)?;
        run.expect_stdout(want)?;
    }
    Ok(())
}

const CHECKS: &[(&str, Check)] = &[
    ("run_echo", run_echo),
    ("run_echo_unconfined", run_echo_unconfined),
    ("default_seccomp_profile", default_seccomp_profile),
    ("run_exit_codes", run_exit_codes),
    ("run_tty", run_tty),
    ("detached_exec_stop_rm", detached_exec_stop_rm),
];

/// One row: the check, then podman lists no container and nothing of the
/// runtime's is left.
fn row(p: &Podman, check: Check) -> Outcome {
    let _ = fs::remove_file(p.log());
    let result = check(p).and_then(|()| {
        let ps = p.podman(&["ps", "-a", "-q"])?;
        match ps.stdout.is_empty() {
            true => Ok(()),
            false => Err(format!("podman still lists containers\n{}", ps.describe())),
        }
    });
    let left = p.leftovers();
    let result = result.and_then(|()| match left.is_empty() {
        true => Ok(()),
        false => Err(format!("left behind:\n{}", left.join("\n"))),
    });
    result.map_err(|e| {
        let explained = p.explain(e);
        p.clean();
        explained
    })
}

fn main() {
    let mut tally = harness::Tally::default();
    let name = |runtime: &str, check: &str| format!("{runtime}_{check}");
    let wanted = |runtime: &str| CHECKS.iter().any(|(c, _)| harness::wanted(&name(runtime, c)));
    let runtimes: Vec<&'static str> = RUNTIMES.into_iter().filter(|r| wanted(r)).collect();
    let skip_all = |tally: &mut harness::Tally, runtime: &str, reason: &str| {
        for (check, _) in CHECKS.iter().filter(|(c, _)| harness::wanted(&name(runtime, c))) {
            tally.skip(&name(runtime, check), reason);
        }
    };
    // SAFETY: geteuid has no preconditions.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("needs root (podman runs rootful containers here)".to_string())
    } else if which("podman").is_none() || which("conmon").is_none() {
        Some("podman or conmon is not installed (apt-get install podman conmon)".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        runtimes.iter().for_each(|r| skip_all(&mut tally, r, &reason));
        tally.finish("podman");
    }
    let rootfs = match test_rootfs() {
        Ok(rootfs) => rootfs,
        Err(e) => {
            tally.fail("lab setup (rootfs and probe)", &e);
            tally.finish("podman");
        }
    };
    for runtime in runtimes {
        let binary = match runtime_binary(runtime) {
            Ok(binary) => binary,
            Err(reason) => {
                skip_all(&mut tally, runtime, &reason);
                continue;
            }
        };
        let podman = match Podman::new(runtime, &binary, &rootfs) {
            Ok(podman) => podman,
            Err(e) => {
                tally.fail(&format!("{runtime} setup"), &e);
                continue;
            }
        };
        for (check, test) in CHECKS {
            let row_name = name(runtime, check);
            if harness::wanted(&row_name) {
                tally.run(&row_name, || row(&podman, *test));
            }
        }
        if let Err(e) = podman.finish() {
            tally.fail(&format!("{runtime} cleanup"), &e);
        }
    }
    let _ = fs::remove_dir(repo().join("target/podman-tests"));
    tally.finish("podman");
}
