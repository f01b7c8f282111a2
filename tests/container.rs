//! Integration tests: run the real toybox binary as root against a busybox
//! rootfs and check each property from inside the container (the static
//! probe in tests/probe/) and from the host (/proc/<pid>/..., cgroup files).
//!
//! A plain harness rather than libtest: containers run one at a time, so the
//! "nothing left behind" snapshot taken around each run is exact, and a test
//! that cannot run here is reported as SKIP with its reason, never as passed.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod harness;

type Outcome = Result<(), String>;

const TOYBOX: &str = env!("CARGO_BIN_EXE_toybox");

/// The contained.c capabilities toybox drops (capabilities(7) numbers).
const DROPPED_CAPS: [(u32, &str); 20] = [
    (2, "CAP_DAC_READ_SEARCH"),
    (4, "CAP_FSETID"),
    (14, "CAP_IPC_LOCK"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (21, "CAP_SYS_ADMIN"),
    (22, "CAP_SYS_BOOT"),
    (23, "CAP_SYS_NICE"),
    (24, "CAP_SYS_RESOURCE"),
    (25, "CAP_SYS_TIME"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (30, "CAP_AUDIT_CONTROL"),
    (31, "CAP_SETFCAP"),
    (32, "CAP_MAC_OVERRIDE"),
    (33, "CAP_MAC_ADMIN"),
    (34, "CAP_SYSLOG"),
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
    (37, "CAP_AUDIT_READ"),
];

/// What contained.c keeps; with everything newer dropped, root's bounding set
/// is exactly these.
const KEPT_CAPS: [u32; 18] = [0, 1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 18, 19, 20, 26, 28];

// ---------------------------------------------------------------------------
// The lab: a test rootfs with the probe, a host file the container must not
// see, and a snapshot of everything a run could leave behind.
// ---------------------------------------------------------------------------

struct Lab {
    rootfs: PathBuf,
    /// A file on the host, outside the rootfs.
    host_marker: PathBuf,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn setup_lab() -> Result<Lab, String> {
    let target = repo_root().join("target");
    let rootfs = target.join("test-rootfs");
    let script = repo_root().join("rootfs-scripts/busybox-rootfs.sh");
    run_setup(Command::new(&script).arg(&rootfs))?;
    let probe = rootfs.join("probe");
    let source = repo_root().join("tests/probe/probe.c");
    run_setup(
        Command::new("cc").args(["-static", "-O2", "-o"]).arg(&probe).arg(&source).arg("-lpthread"),
    )?;
    // A file the container cannot execute, for the 126 test.
    let text = rootfs.join("not-executable");
    fs::write(&text, "just text\n").map_err(|e| format!("write {}: {e}", text.display()))?;
    fs::set_permissions(&text, fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    // A link that passes the early check but fails execve inside: the child
    // fails half-way, after its namespaces, mounts and handshake.
    let dangling = rootfs.join("dangling");
    if fs::symlink_metadata(&dangling).is_err() {
        std::os::unix::fs::symlink("/no/such/target", &dangling).map_err(|e| e.to_string())?;
    }
    // The files planted here belong to whoever the script made the rootfs
    // for: container root, host uid 10000, when it is shifted.
    let owner = fs::metadata(&rootfs).map_err(|e| e.to_string())?;
    for path in [&probe, &text, &dangling] {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::lchown(path, Some(owner.uid()), Some(owner.gid()))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    let host_marker = target.join("host-marker");
    fs::write(&host_marker, "host\n")
        .map_err(|e| format!("write {}: {e}", host_marker.display()))?;
    Ok(Lab { rootfs, host_marker })
}

fn run_setup(command: &mut Command) -> Outcome {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{command:?} failed: {stderr}"));
    }
    Ok(())
}

/// Everything a container run could leave on the host.
#[derive(PartialEq)]
struct Snapshot {
    cgroups: BTreeSet<String>,
    mounts: BTreeSet<String>,
    tmp: BTreeSet<String>,
    rootfs: BTreeSet<String>,
    foreign_pid_ns: BTreeSet<String>,
    records: BTreeSet<String>,
}

fn walk_dirs(dir: &Path, only_dirs: bool, out: &mut BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir || !only_dirs {
            out.insert(path.display().to_string());
        }
        if is_dir {
            walk_dirs(&path, only_dirs, out);
        }
    }
}

/// The parent group toybox keeps for its containers, as docker keeps
/// `docker/`: /sys/fs/cgroup/toybox (v2) or /sys/fs/cgroup/CONTROLLER/toybox.
/// It is the one cgroup a run may leave; each container's group in it is not.
fn is_parent_group(dir: &str) -> bool {
    let dir = Path::new(dir);
    let above = dir.parent();
    dir.file_name() == Some("toybox".as_ref())
        && (above == Some(Path::new("/sys/fs/cgroup"))
            || above.and_then(Path::parent) == Some(Path::new("/sys/fs/cgroup")))
}

fn take_snapshot(lab: &Lab) -> Snapshot {
    let mut cgroups = BTreeSet::new();
    walk_dirs(Path::new("/sys/fs/cgroup"), true, &mut cgroups);
    cgroups.retain(|dir| !is_parent_group(dir));
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = mountinfo.lines().map(str::to_string).collect();
    let tmp = list_dir("/tmp");
    let records = list_dir("/run/toybox");
    let mut rootfs = BTreeSet::new();
    walk_dirs(&lab.rootfs, false, &mut rootfs);
    // Container processes live in another PID namespace than this test.
    let own_ns = fs::read_link("/proc/self/ns/pid").ok();
    let mut foreign_pid_ns = BTreeSet::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let ns = fs::read_link(entry.path().join("ns/pid")).ok();
        if ns.is_some() && ns != own_ns {
            let cmdline = fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            foreign_pid_ns.insert(format!("pid {name} ({})", cmdline.replace('\0', " ").trim()));
        }
    }
    Snapshot { cgroups, mounts, tmp, rootfs, foreign_pid_ns, records }
}

fn list_dir(dir: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default()
}

/// The things present now that were not before.
fn leftovers(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let pairs = [
        ("cgroup", &before.cgroups, &after.cgroups),
        ("mount", &before.mounts, &after.mounts),
        ("/tmp entry", &before.tmp, &after.tmp),
        ("rootfs entry", &before.rootfs, &after.rootfs),
        ("process", &before.foreign_pid_ns, &after.foreign_pid_ns),
        ("state record", &before.records, &after.records),
    ];
    let mut left = Vec::new();
    for (kind, was, is) in pairs {
        left.extend(is.difference(was).map(|item| format!("{kind} {item}")));
    }
    left
}

// ---------------------------------------------------------------------------
// Running toybox.
// ---------------------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The value of the first `key value` line the probe printed.
    fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key} ");
        self.stdout.lines().find_map(|line| line.strip_prefix(&prefix))
    }

    fn values(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key} ");
        self.stdout.lines().filter_map(|line| line.strip_prefix(&prefix)).collect()
    }

    fn describe(&self) -> String {
        format!("exit {:?}\nstdout:\n{}stderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

fn toybox_command(lab: &Lab, args: &[&str]) -> Command {
    program_command(Path::new(TOYBOX), lab, args)
}

fn program_command(program: &Path, lab: &Lab, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    if !args.contains(&"-m") {
        command.arg("-m").arg(&lab.rootfs);
    }
    command.args(args);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn finish(child: Child) -> Result<Run, String> {
    let output = child.wait_with_output().map_err(|e| format!("wait for toybox: {e}"))?;
    Ok(Run {
        code: exit_code(output.status),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    })
}

fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code()
}

/// Run toybox to completion and check that it left nothing behind.
fn toybox(lab: &Lab, args: &[&str]) -> Result<Run, String> {
    run_program(Path::new(TOYBOX), lab, args)
}

fn run_program(program: &Path, lab: &Lab, args: &[&str]) -> Result<Run, String> {
    let before = take_snapshot(lab);
    let child = program_command(program, lab, args)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", program.display()))?;
    let run = finish(child)?;
    expect_nothing_left(lab, &before, &run)?;
    Ok(run)
}

fn expect_nothing_left(lab: &Lab, before: &Snapshot, run: &Run) -> Outcome {
    let left = leftovers(before, &take_snapshot(lab));
    if !left.is_empty() {
        return Err(format!(
            "left behind after the run:\n  {}\n{}",
            left.join("\n  "),
            run.describe()
        ));
    }
    Ok(())
}

/// A container that runs `probe wait-stdin` until we close its stdin, so the
/// host can inspect it while it lives.
struct Running {
    child: Child,
    before: Snapshot,
    /// The container's PID 1, as the host sees it.
    pid: u32,
    stdout: BufReader<std::process::ChildStdout>,
}

fn start_waiting(lab: &Lab, args: &[&str]) -> Result<Running, String> {
    let before = take_snapshot(lab);
    let mut command = toybox_command(lab, args);
    command.stdin(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("spawn toybox: {e}"))?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let run = finish(child)?;
        return Err(format!("container did not start: got {line:?}\n{}", run.describe()));
    }
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let pid = fs::read_to_string(&children).map_err(|e| format!("read {children}: {e}"))?;
    let pid = pid.trim().parse().map_err(|_| format!("{children}: {pid:?}"))?;
    Ok(Running { child, before, pid, stdout })
}

fn stop_waiting(lab: &Lab, mut running: Running) -> Result<Run, String> {
    drop(running.child.stdin.take()); // EOF: the probe exits 0
    let mut rest = String::new();
    running.stdout.read_to_string(&mut rest).map_err(|e| e.to_string())?;
    let mut run = finish(running.child)?;
    run.stdout = rest;
    expect_nothing_left(lab, &running.before, &run)?;
    Ok(run)
}

// ---------------------------------------------------------------------------
// Small assertions.
// ---------------------------------------------------------------------------

fn expect(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(message()) }
}

fn expect_code(run: &Run, code: i32) -> Outcome {
    expect(run.code == Some(code), || format!("expected exit {code}\n{}", run.describe()))
}

fn expect_value(run: &Run, key: &str, want: &str) -> Outcome {
    let got = run.value(key);
    expect(got == Some(want), || {
        format!("{key}: expected {want:?}, got {got:?}\n{}", run.describe())
    })
}

/// One line on stderr, naming toybox and the stage.
fn expect_one_line_error(run: &Run, code: i32, needle: &str) -> Outcome {
    expect_code(run, code)?;
    let lines: Vec<&str> = run.stderr.lines().collect();
    expect(
        lines.len() == 1 && lines[0].starts_with("toybox: ") && lines[0].contains(needle),
        || format!("expected one error line containing {needle:?}\n{}", run.describe()),
    )
}

fn hex(run: &Run, key: &str) -> Result<u64, String> {
    let value = run.value(key).ok_or_else(|| format!("no {key}\n{}", run.describe()))?;
    u64::from_str_radix(value, 16).map_err(|e| format!("{key} {value}: {e}"))
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

fn pid_1_and_own_hostname(lab: &Lab) -> Outcome {
    let first = toybox(lab, &["-c", "/probe", "identity"])?;
    let second = toybox(lab, &["-c", "/probe", "identity"])?;
    expect_code(&first, 0)?;
    expect_value(&first, "pid", "1")?;
    let host = fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| e.to_string())?;
    let (a, b) = (first.value("hostname"), second.value("hostname"));
    expect(a.is_some() && a != Some(host.trim()), || format!("hostname {a:?} vs host {host:?}"))?;
    expect(a != b, || format!("two containers share the hostname {a:?}"))
}

fn only_loopback_visible(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-c", "/probe", "identity"])?;
    let devices = run.values("netdev");
    expect(devices == ["lo"], || format!("network devices {devices:?}, expected only lo"))
}

/// `--net none` (the default) has `lo` up, as docker's: a server and a
/// client on 127.0.0.1 inside talk; flags 0x9 are IFF_UP|IFF_LOOPBACK.
fn loopback_is_up(lab: &Lab) -> Outcome {
    let script = "nc -l -p 7000 -e echo pong & sleep 0.3; nc -w 2 127.0.0.1 7000; \
                  echo flags $(cat /sys/class/net/lo/flags)";
    for args in
        [&["-c", "/bin/sh", "-c", script][..], &["--net", "none", "-c", "/bin/sh", "-c", script]]
    {
        let run = toybox(lab, args)?;
        expect_code(&run, 0)?;
        expect(run.stdout.lines().next() == Some("pong"), || {
            format!("no answer over 127.0.0.1\n{}", run.describe())
        })?;
        expect_value(&run, "flags", "0x9")?;
    }
    Ok(())
}

fn namespaces_differ_from_host(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let mut same = Vec::new();
    for ns in ["mnt", "uts", "ipc", "pid", "net", "cgroup", "user"] {
        let ours = fs::read_link(format!("/proc/self/ns/{ns}")).map_err(|e| e.to_string())?;
        let theirs =
            fs::read_link(format!("/proc/{}/ns/{ns}", running.pid)).map_err(|e| e.to_string())?;
        if ours == theirs {
            same.push(ns);
        }
    }
    stop_waiting(lab, running)?;
    expect(same.is_empty(), || format!("namespaces shared with the host: {same:?}"))
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    let prefix = format!("{field}:");
    status.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("").trim()
}

fn uid_map_and_uids(lab: &Lab) -> Outcome {
    for (uid, host_uid) in [("0", "10000"), ("1000", "11000")] {
        let running = start_waiting(lab, &["-u", uid, "-c", "/probe", "wait-stdin"])?;
        let read = |file: &str| fs::read_to_string(format!("/proc/{}/{file}", running.pid));
        let (uid_map, gid_map, status) = (read("uid_map"), read("gid_map"), read("status"));
        stop_waiting(lab, running)?;
        let (uid_map, gid_map, status) = (
            uid_map.map_err(|e| e.to_string())?,
            gid_map.map_err(|e| e.to_string())?,
            status.map_err(|e| e.to_string())?,
        );
        for (name, map) in [("uid_map", &uid_map), ("gid_map", &gid_map)] {
            let fields: Vec<&str> = map.split_whitespace().collect();
            expect(fields == ["0", "10000", "2000"], || format!("{name}: {map:?}"))?;
        }
        let host_uids = status_field(&status, "Uid");
        let want = format!("{host_uid}\t{host_uid}\t{host_uid}\t{host_uid}");
        expect(host_uids == want, || {
            format!("-u {uid}: host sees Uid {host_uids:?}, want {want:?}")
        })?;
        let inside = toybox(lab, &["-u", uid, "-c", "/probe", "identity"])?;
        expect_value(&inside, "uid", &format!("{uid} {uid} {uid}"))?;
        expect_value(&inside, "gid", &format!("{uid} {uid} {uid}"))?;
    }
    Ok(())
}

fn host_files_unreachable(lab: &Lab) -> Outcome {
    let marker = lab.host_marker.display().to_string();
    let run = toybox(lab, &["-c", "/probe", "escape", &marker, "/oldroot"])?;
    expect_code(&run, 0)?;
    for when in ["before", "after"] {
        for path in [marker.as_str(), "/oldroot"] {
            let line = format!("{when} {path} ENOENT");
            expect(run.stdout.lines().any(|l| l == line), || {
                format!("{path} reachable {when} the chroot escape\n{}", run.describe())
            })?;
        }
    }
    // The container's / is the rootfs and nothing else: no old root, no temp dir.
    let listing = toybox(lab, &["-c", "/probe", "ls", "/"])?;
    let inside: BTreeSet<&str> = listing.values("entry").into_iter().collect();
    let rootfs: BTreeSet<String> = fs::read_dir(&lab.rootfs)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let rootfs: BTreeSet<&str> = rootfs.iter().map(String::as_str).collect();
    expect(inside == rootfs, || format!("/ inside is {inside:?}, the rootfs has {rootfs:?}"))
}

/// A device node planted in the rootfs, as a docker export or a hostile
/// tarball may carry one, does not open inside; the fresh /dev's devices do.
fn rootfs_device_nodes_do_not_open(lab: &Lab) -> Outcome {
    let planted = lab.rootfs.join("tmp/planted-null");
    let made = Command::new("mknod").arg(&planted).args(["-m", "666", "c", "1", "3"]).status();
    expect(made.is_ok_and(|s| s.success()), || format!("mknod {}", planted.display()))?;
    let script = "echo x >/tmp/planted-null && echo planted-opened; \
                  echo x >/dev/null && head -c 3 /dev/zero | wc -c && echo dev-works";
    let result = ["0", "1000"].iter().try_for_each(|uid| {
        let run = toybox(lab, &["-u", uid, "-c", "/bin/sh", "-c", script])?;
        expect(
            !run.stdout.contains("planted-opened")
                && run.stderr.contains("Permission denied")
                && run.stdout.contains("3\ndev-works"),
            || format!("-u {uid}: want the planted node refused, /dev working\n{}", run.describe()),
        )
    });
    let _ = fs::remove_file(&planted);
    result
}

/// A rootfs without /dev, /proc or /sys (many unpacked images) runs: toybox
/// makes the mount points, and -v says so. One that is a symlink is refused.
fn rootfs_without_mount_points(lab: &Lab) -> Outcome {
    let bare = repo_root().join("target/bare-rootfs");
    let _ = fs::remove_dir_all(&bare);
    let result = (|| {
        fs::create_dir_all(bare.join("bin")).map_err(|e| e.to_string())?;
        fs::copy(lab.rootfs.join("bin/busybox"), bare.join("bin/busybox"))
            .map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("busybox", bare.join("bin/sh")).map_err(|e| e.to_string())?;
        let bare_arg = bare.display().to_string();
        let script = "cat /proc/self/comm && echo x >/dev/null && ls /sys/class >/dev/null";
        let run = toybox(lab, &["-v", "-m", &bare_arg, "-c", "/bin/sh", "-c", script])?;
        expect_code(&run, 0)?;
        for dir in ["dev", "proc", "sys"] {
            let note = format!("=> mkdir /{dir}: the rootfs had no mount point there");
            expect(run.stderr.contains(&note) && bare.join(dir).is_dir(), || {
                format!("want /{dir} made and said\n{}", run.describe())
            })?;
        }
        fs::remove_dir(bare.join("sys")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("/etc", bare.join("sys")).map_err(|e| e.to_string())?;
        let run = toybox(lab, &["-m", &bare_arg, "-c", "/bin/sh", "-c", "true"])?;
        expect_one_line_error(&run, 125, "mounts: /sys in the rootfs is not a directory")
    })();
    let _ = fs::remove_dir_all(&bare);
    result
}

/// The rootfs is shifted (rootfs-scripts/busybox-rootfs.sh): its files
/// belong to host 10000 + their uid inside, so the container's root owns its
/// /etc and can create and change files there, as in docker, and what it
/// creates is host uid 10000's, never host root's. uid 1000 inside cannot
/// write /etc. With an unshifted rootfs (`--no-shift`) root inside gets
/// Permission denied and this fails.
fn root_owns_its_rootfs(lab: &Lab) -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let made = lab.rootfs.join("etc/toybox-made");
    let script = "stat -c '%U:%G %u:%g %n' /etc /etc/group; \
                  echo one > /etc/toybox-made && echo two >> /etc/toybox-made && \
                  chmod 640 /etc/toybox-made && cat /etc/toybox-made && \
                  cp /etc/group /etc/group.orig && echo extra:x:1234: >> /etc/group && \
                  grep -c ^extra: /etc/group && mv /etc/group.orig /etc/group && echo changed";
    let before = take_snapshot(lab);
    let child = toybox_command(lab, &["-u", "0", "-c", "/bin/sh", "-c", script])
        .spawn()
        .map_err(|e| format!("spawn toybox: {e}"))?;
    let run = finish(child)?;
    let host_view = fs::symlink_metadata(&made).map(|m| (m.uid(), m.gid(), m.mode() & 0o7777));
    let _ = fs::remove_file(&made);
    let _ = fs::remove_file(lab.rootfs.join("etc/group.orig"));
    expect_nothing_left(lab, &before, &run)?;
    let want = "root:root 0:0 /etc\nroot:root 0:0 /etc/group\none\ntwo\n1\nchanged\n";
    expect(run.code == Some(0) && run.stdout == want, || {
        format!("root inside cannot write its /etc (want {want:?})\n{}", run.describe())
    })?;
    expect(matches!(host_view, Ok((10000, 10000, 0o640))), || {
        format!("/etc/toybox-made from the host: {host_view:?}, want uid 10000, gid 10000, 0640")
    })?;
    let group = fs::read_to_string(lab.rootfs.join("etc/group")).map_err(|e| e.to_string())?;
    expect(!group.contains("extra:"), || format!("/etc/group not restored: {group:?}"))?;
    let script = "echo x > /etc/toybox-user || echo refused; echo x >> /etc/passwd || echo refused";
    let run = toybox(lab, &["-u", "1000", "-c", "/bin/sh", "-c", script])?;
    expect(
        run.stdout == "refused\nrefused\n"
            && run.stderr.matches("Permission denied").count() == 2
            && !lab.rootfs.join("etc/toybox-user").exists(),
        || format!("uid 1000 inside could write /etc\n{}", run.describe()),
    )
}

/// A rootfs script run as the tests run it: the suite's toybox, output
/// kept for the failure message.
fn rootfs_script(name: &str, args: &[&str]) -> Result<std::process::Output, String> {
    let script = repo_root().join("rootfs-scripts").join(name);
    let mut command = Command::new(&script);
    command.args(args).env("TOYBOX_BIN", TOYBOX).stdin(Stdio::null());
    command.output().map_err(|e| format!("{}: {e}", script.display()))
}

fn script_failed(name: &str, output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    format!("{name} exited {:?}\nstdout:\n{stdout}stderr:\n{stderr}", output.status.code())
}

fn owner_on_host(path: &Path) -> Result<(u32, u32), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((meta.uid(), meta.gid()))
}

/// S1's chroot demo: ldd-rootfs.sh copies /bin/bash and /bin/ls with the
/// libraries ldd names and the loader; both run in toybox, and the tree is
/// shifted like the busybox one (root inside writes /, as host uid 10000).
fn ldd_rootfs_runs_bash_and_ls(lab: &Lab) -> Outcome {
    let dir = repo_root().join("target/ldd-rootfs");
    let _ = fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let result = (|| {
        let output = rootfs_script("ldd-rootfs.sh", &[&dir_arg, "/bin/bash", "/bin/ls"])?;
        expect(output.status.success(), || script_failed("ldd-rootfs.sh", &output))?;
        let script = "echo bash ${BASH_VERSION%%.*}; /bin/ls /; echo made > /made && echo wrote";
        let run = toybox(lab, &["-m", &dir_arg, "-u", "0", "-c", "/bin/bash", "-c", script])?;
        let want = "bash 5\nbin\ndev\nlib\nlib64\nproc\nsys\ntmp\nwrote\n";
        expect(run.code == Some(0) && run.stdout == want, || {
            format!("want bash and ls to run, root to write / ({want:?})\n{}", run.describe())
        })?;
        let owner = owner_on_host(&dir.join("made"))?;
        expect(owner == (10000, 10000), || format!("/made is host {owner:?}, want 10000"))?;
        let run = toybox(lab, &["-m", &dir_arg, "-u", "1000", "-c", "/bin/ls", "/tmp"])?;
        expect_code(&run, 0)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// The Debian rootfs (debian-rootfs.sh: mmdebstrap's minbase tar, cached in
/// ~/.cache/toybox/debian, through toybox unpack): bash, dpkg and apt run,
/// and root inside installs a .deb built here with dpkg-deb, by dpkg -i and
/// by apt-get, and removes it with apt-get. The installed file is host uid
/// 10000's.
fn debian_rootfs_dpkg_and_apt(lab: &Lab) -> Outcome {
    let dir = repo_root().join("target/debian-rootfs");
    let dir_arg = dir.display().to_string();
    let result = (|| {
        let output = rootfs_script("debian-rootfs.sh", &[&dir_arg])?;
        expect(output.status.success(), || script_failed("debian-rootfs.sh", &output))?;
        let package = repo_root().join("target/toybox-hello");
        let _ = fs::remove_dir_all(&package);
        fs::create_dir_all(package.join("DEBIAN")).map_err(|e| e.to_string())?;
        fs::create_dir_all(package.join("usr/bin")).map_err(|e| e.to_string())?;
        let control = "Package: toybox-hello\nVersion: 1.0\nArchitecture: all\n\
                       Maintainer: toybox tests <tests@toybox.invalid>\n\
                       Description: a .deb the toybox tests install\n";
        fs::write(package.join("DEBIAN/control"), control).map_err(|e| e.to_string())?;
        let program = package.join("usr/bin/toybox-hello");
        fs::write(&program, "#!/bin/sh\necho hello from a .deb\n").map_err(|e| e.to_string())?;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let deb = dir.join("tmp/toybox-hello.deb");
        run_setup(
            Command::new("dpkg-deb").arg("--root-owner-group").arg("-b").arg(&package).arg(&deb),
        )?;
        let _ = fs::remove_dir_all(&package);
        let script = "echo bash ${BASH_VERSION%%.*}; dpkg --version | head -n 1 | cut -d' ' -f1-2; \
                      apt-get --version | head -n 1 | cut -d' ' -f1; \
                      dpkg -i /tmp/toybox-hello.deb >/dev/null && toybox-hello && \
                      dpkg-query -W -f='${Status}\\n' toybox-hello && \
                      apt-get remove -y -q toybox-hello >/dev/null && \
                      { test -e /usr/bin/toybox-hello || echo removed; } && \
                      apt-get install -y -q /tmp/toybox-hello.deb >/dev/null && toybox-hello";
        let run = toybox(lab, &["-m", &dir_arg, "-u", "0", "-c", "/bin/bash", "-c", script])?;
        let want = "bash 5\nDebian 'dpkg'\napt\nhello from a .deb\ninstall ok installed\n\
                    removed\nhello from a .deb\n";
        expect(run.code == Some(0) && run.stdout == want, || {
            format!("want bash, dpkg, apt and the .deb installed ({want:?})\n{}", run.describe())
        })?;
        let owner = owner_on_host(&dir.join("usr/bin/toybox-hello"))?;
        expect(owner == (10000, 10000), || {
            format!("the installed file is host {owner:?}, want (10000, 10000)")
        })
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// docker-export.sh with docker: an image imported from the busybox rootfs
/// (unshifted, so the tar has uid 0 and 1000) is exported and unpacked
/// shifted, and root inside writes its /etc.
fn docker_export_rootfs(lab: &Lab) -> Outcome {
    let source = repo_root().join("target/docker-busybox");
    let dir = repo_root().join("target/docker-export-rootfs");
    let image = "toybox-test-busybox:latest";
    let (source_arg, dir_arg) = (source.display().to_string(), dir.display().to_string());
    let result = (|| {
        let output = rootfs_script("busybox-rootfs.sh", &["--no-shift", &source_arg])?;
        expect(output.status.success(), || script_failed("busybox-rootfs.sh", &output))?;
        let import = format!("tar -C {source_arg} -c . | docker import - {image}");
        run_setup(Command::new("sh").args(["-c", &import]))?;
        let output = rootfs_script("docker-export.sh", &[image, &dir_arg])?;
        expect(output.status.success(), || script_failed("docker-export.sh", &output))?;
        let script = "stat -c '%U %u' /etc/passwd /home/user; echo x > /etc/made && echo wrote";
        let run = toybox(lab, &["-m", &dir_arg, "-u", "0", "-c", "/bin/sh", "-c", script])?;
        expect(run.stdout == "root 0\nuser 1000\nwrote\n", || {
            format!("want the export owned as inside\n{}", run.describe())
        })?;
        let owner = owner_on_host(&dir.join("etc/made"))?;
        expect(owner == (10000, 10000), || format!("/etc/made is host {owner:?}, want 10000"))
    })();
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    let _ = fs::remove_dir_all(&source);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(dir.with_file_name("docker-export-rootfs.toybox-docker-export"));
    result
}

/// Without docker (here: a $DOCKER that does not exist) docker-export.sh
/// says so on one line, exits 1 and makes nothing.
fn docker_export_without_docker(_lab: &Lab) -> Outcome {
    let dir = repo_root().join("target/docker-export-absent");
    let _ = fs::remove_dir_all(&dir);
    let script = repo_root().join("rootfs-scripts/docker-export.sh");
    let output = Command::new(&script)
        .args(["busybox"])
        .arg(&dir)
        .env("DOCKER", "/nonexistent/docker")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let parent = fs::read_dir(dir.parent().unwrap_or(Path::new("/")))
        .map_err(|e| e.to_string())?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("docker-export-absent"));
    expect(
        output.status.code() == Some(1)
            && stderr.lines().count() == 1
            && stderr.starts_with("docker-export: docker is not installed")
            && !parent,
        || script_failed("docker-export.sh", &output),
    )
}

/// A command started from a shell that holds a host file (fd 8) and the
/// host directory around it (fd 9) open without close-on-exec, as a
/// caller's shell, CI runner or service manager may.
fn with_host_fds(lab: &Lab, program: &str, args: &[&str]) -> Command {
    let dir = lab.host_marker.parent().unwrap_or(Path::new("/"));
    let mut command = Command::new("/bin/sh");
    command.args(["-c", "exec 8<\"$1\" 9<\"$2\"; shift 2; exec \"$@\"", "sh"]);
    command.arg(&lab.host_marker).arg(dir).arg(program).args(args);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// What an attacker inside tries with fds 8 and 9: read the host file,
/// walk the host directory, plant a file next to it; then the probe lists
/// every descriptor the command holds.
const FD_ESCAPE: &str = "cat /proc/self/fd/8 /proc/self/fd/9/host-marker <&8; \
     echo pwned >/proc/self/fd/9/fd-escape; /probe fds";

fn expect_no_host_fds(run: &Run, lab: &Lab, who: &str) -> Outcome {
    let planted = lab.host_marker.with_file_name("fd-escape");
    let escaped = planted.exists();
    let _ = fs::remove_file(&planted);
    expect(!escaped && !run.stdout.contains("host"), || {
        format!("{who}: the host's file or directory was reachable\n{}", run.describe())
    })?;
    expect_value(run, "fds", "0 1 2").map_err(|e| format!("{who}: {e}"))
}

/// The caller's descriptors never reach the container: its command, as
/// root or not, under --init, and a command run by `toybox exec`, hold 0, 1
/// and 2 only (runc's CVE-2024-21626 was this hole).
fn inherited_fds_do_not_reach_the_container(lab: &Lab) -> Outcome {
    let rootfs = lab.rootfs.display().to_string();
    for extra in [&["-u", "0"][..], &["-u", "1000"], &["--init"]] {
        let before = take_snapshot(lab);
        let mut args = vec!["-m", rootfs.as_str()];
        args.extend(extra);
        args.extend(["-c", "/bin/sh", "-c", FD_ESCAPE]);
        let child = with_host_fds(lab, TOYBOX, &args).spawn().map_err(|e| e.to_string())?;
        let run = finish(child)?;
        expect_nothing_left(lab, &before, &run)?;
        expect_no_host_fds(&run, lab, &format!("toybox {}", extra.join(" ")))?;
    }
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let result = (|| {
        let name = container_name(running.pid)?;
        for uid in ["0", "1000"] {
            let args = ["exec", "-u", uid, &name, "-c", "/bin/sh", "-c", FD_ESCAPE];
            let child = with_host_fds(lab, TOYBOX, &args).spawn().map_err(|e| e.to_string())?;
            expect_no_host_fds(&finish(child)?, lab, &format!("toybox exec -u {uid}"))?;
        }
        Ok(())
    })();
    let stopped = stop_waiting(lab, running);
    result.and(stopped.map(drop))
}

/// The name `toybox ps` lists for the container whose PID 1 is `pid`.
fn container_name(pid: u32) -> Result<String, String> {
    let ps = Command::new(TOYBOX).arg("ps").output().map_err(|e| e.to_string())?;
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    let pid = pid.to_string();
    ps.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(pid.as_str()))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .ok_or(format!("toybox ps does not list pid {pid}:\n{ps}"))
}

fn capabilities_dropped(lab: &Lab) -> Outcome {
    for uid in ["0", "1000"] {
        let run = toybox(lab, &["-u", uid, "-c", "/probe", "caps"])?;
        for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
            let mask = hex(&run, set)?;
            for (number, name) in DROPPED_CAPS {
                expect(mask & (1 << number) == 0, || format!("-u {uid}: {name} in the {set} set"))?;
            }
        }
        // Nothing but the allow-list survives, including capabilities newer than 2016.
        let kept: u64 = KEPT_CAPS.iter().map(|n| 1u64 << n).sum();
        let bounding = hex(&run, "bounding")?;
        expect(bounding == kept, || format!("-u {uid}: bounding {bounding:x}, expected {kept:x}"))?;
    }
    Ok(())
}

fn no_new_privs_seccomp_and_rlimit(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-u", "1000", "-c", "/probe", "identity"])?;
    expect_value(&run, "no_new_privs", "1")?;
    expect_value(&run, "seccomp", "2")?;
    expect_value(&run, "nofile", "64 64")?;
    // The host agrees.
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let status = fs::read_to_string(format!("/proc/{}/status", running.pid));
    stop_waiting(lab, running)?;
    let status = status.map_err(|e| e.to_string())?;
    expect(status_field(&status, "NoNewPrivs") == "1", || format!("NoNewPrivs in {status}"))?;
    expect(status_field(&status, "Seccomp") == "2", || format!("Seccomp in {status}"))
}

/// (probe name, expected result): refused calls, then ordinary ones that must work.
const SYSCALL_EXPECTATIONS: &[(&str, &str)] = &[
    ("chmod_suid", "EPERM"),
    ("chmod_sgid", "EPERM"),
    ("fchmod_suid", "EPERM"),
    ("fchmod_sgid", "EPERM"),
    ("fchmodat_suid", "EPERM"),
    ("fchmodat_sgid", "EPERM"),
    ("unshare_newuser", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("ioctl_tiocsti", "EPERM"),
    ("ioctl_tiocsti_high", "EPERM"),
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("request_key", "EPERM"),
    ("ptrace", "EPERM"),
    ("mbind", "EPERM"),
    ("migrate_pages", "EPERM"),
    ("move_pages", "EPERM"),
    ("set_mempolicy", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("perf_event_open", "EPERM"),
    // Reaching the same ends through calls added since 2016.
    ("fchmodat2_suid", "EPERM"),
    ("open_creat_suid", "EPERM"),
    ("openat_creat_sgid", "EPERM"),
    ("creat_suid", "EPERM"),
    ("openat_tmpfile_sgid", "EPERM"),
    ("mknod_suid", "EPERM"),
    ("mknodat_sgid", "EPERM"),
    ("openat2", "ENOSYS"),
    ("clone3", "ENOSYS"),
    ("io_uring_setup", "EPERM"),
    ("io_uring_enter", "EPERM"),
    ("io_uring_register", "EPERM"),
    // Other ABIs are killed rather than slipping past the x86_64 rules.
    ("int80", "SIGSYS"),
    ("x32", "SIGSYS"),
    // The whole process, not only the thread that made the call.
    ("int80_in_thread", "SIGSYS"),
    ("syscall_minus_one", "ENOSYS"),
    // Ordinary calls.
    ("open_plain", "OK"),
    ("openat_directory_setid_mode", "OK"),
    ("write", "OK"),
    ("chmod_plain", "OK"),
    ("fchmod_plain", "OK"),
    ("clone_plain", "OK"),
    ("ioctl_fionread", "OK"),
    ("ioctl_tiocgwinsz", "ENOTTY"),
    ("fork", "OK"),
    ("pthread", "OK"),
];

fn seccomp_blocks_and_allows(lab: &Lab) -> Outcome {
    for uid in ["0", "1000"] {
        let run = toybox(lab, &["-u", uid, "-c", "/probe", "syscalls"])?;
        expect_code(&run, 0)?;
        let wrong: Vec<String> = SYSCALL_EXPECTATIONS
            .iter()
            .filter(|(name, want)| run.value(name) != Some(want))
            .map(|(name, want)| format!("{name}: want {want}, got {:?}", run.value(name)))
            .collect();
        expect(wrong.is_empty(), || format!("-u {uid}:\n  {}", wrong.join("\n  ")))?;
    }
    Ok(())
}

/// The cgroup v1 directory of a running container's PID 1 for `controller`.
fn v1_cgroup_dir(pid: u32, controller: &str) -> Result<PathBuf, String> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| e.to_string())?;
    for line in cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) =
            (fields.next(), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == controller) {
            return Ok(Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/')));
        }
    }
    Err(format!("no {controller} line in /proc/{pid}/cgroup:\n{cgroup}"))
}

fn have_v1(controller: &str) -> bool {
    Path::new("/sys/fs/cgroup").join(controller).join("cgroup.procs").exists()
}

fn cgroup_limits_in_files(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let pid = running.pid;
    let mut problems = Vec::new();
    let mut expected = vec![
        ("memory", "memory.limit_in_bytes", "1073741824"),
        ("cpu", "cpu.shares", "256"),
        ("pids", "pids.max", "64"),
    ];
    // An I/O weight of a tenth of the default for whichever scheduler's
    // file the kernel has (CFQ's is gone since 5.0, BFQ's is a module).
    let blkio = v1_cgroup_dir(pid, "blkio").unwrap_or_default();
    let weights = [("blkio.weight", "50"), ("blkio.bfq.weight", "10")];
    let weights: Vec<_> = weights.into_iter().filter(|(f, _)| blkio.join(f).exists()).collect();
    if weights.is_empty() {
        println!(
            "note: no blkio.weight or blkio.bfq.weight in {}: I/O weight unchecked",
            blkio.display()
        );
    }
    expected.extend(weights.into_iter().map(|(file, want)| ("blkio", file, want)));
    let mut dirs = Vec::new();
    for (controller, file, want) in expected {
        let dir = match v1_cgroup_dir(pid, controller) {
            Ok(dir) => dir,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let parent = Path::new("/sys/fs/cgroup").join(controller).join("toybox");
        if dir.parent() != Some(&parent) {
            problems.push(format!("{} is not in {}", dir.display(), parent.display()));
        }
        let got = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if got.trim() != want {
            problems.push(format!("{}: {:?}, want {want}", dir.join(file).display(), got.trim()));
        }
        dirs.push(dir);
    }
    stop_waiting(lab, running)?;
    for dir in &dirs {
        if dir.exists() {
            problems.push(format!("{} still exists after the container exited", dir.display()));
        }
    }
    expect(problems.is_empty(), || problems.join("\n"))
}

/// The v1 devices group lets the container open /dev's six nodes and its
/// ptys, and no other device: from the host, a node of /dev/kmsg (1:11) is
/// made in the container's /dev (a tmpfs, not nodev); opened write-only it
/// needs no privilege, so only the cgroup stands in the way. Checked from
/// inside, through `toybox exec`, which joins the same groups.
fn devices_limited_by_cgroup(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let pid = running.pid;
    let result = (|| -> Outcome {
        let dir = v1_cgroup_dir(pid, "devices")?;
        let list = fs::read_to_string(dir.join("devices.list")).map_err(|e| e.to_string())?;
        let mut got: Vec<&str> = list.lines().collect();
        got.sort();
        let mut want = vec![
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rw",
            "c 136:* rw",
        ];
        want.sort();
        expect(got == want, || format!("{}/devices.list:\n{list}", dir.display()))?;
        let node = format!("/proc/{pid}/root/dev/host-kmsg");
        let made = Command::new("mknod").args(["-m", "666", &node, "c", "1", "11"]).status();
        expect(made.map(|s| s.success()).unwrap_or(false), || format!("mknod {node} failed"))?;
        let name = container_name(pid)?;
        let script = "for d in null zero full random urandom; do \
                head -c 1 /dev/$d >/dev/null && echo $d ok; done; \
            exec 3<>/dev/ptmx && echo ptmx ok; \
            echo tty $( (: </dev/tty) 2>&1); \
            echo kmsg $( (: >/dev/host-kmsg) 2>&1)";
        let mut exec = Command::new(TOYBOX);
        exec.args(["exec", &name, "-c", "/bin/sh", "-c", script]);
        let output = exec.output().map_err(|e| e.to_string())?;
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        };
        for device in ["null", "zero", "full", "random", "urandom", "ptmx"] {
            expect_value(&run, device, "ok")?;
        }
        // No controlling terminal: ENXIO from the tty driver, past the cgroup.
        let tty = run.value("tty").unwrap_or("");
        expect(tty.contains("No such device or address"), || {
            format!("/dev/tty should reach its driver\n{}", run.describe())
        })?;
        let kmsg = run.value("kmsg").unwrap_or("");
        expect(kmsg.contains("Operation not permitted"), || {
            format!("a 1:11 node should not open\n{}", run.describe())
        })
    })();
    let stopped = stop_waiting(lab, running);
    result?;
    stopped.map(|_| ())
}

fn memory_limit_in_effect(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-c", "/probe", "hog"])?;
    let last: u64 = run.values("hog").last().and_then(|v| v.parse().ok()).unwrap_or(0);
    expect_code(&run, 137)?; // the OOM killer's SIGKILL
    expect((512..1024).contains(&last), || {
        format!("killed after {last} MiB, expected 512..1024\n{}", run.describe())
    })
}

fn fork_loop_capped(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-c", "/probe", "forkbomb"])?;
    expect_code(&run, 0)?;
    let line = run.value("forked").unwrap_or("");
    let mut fields = line.split_whitespace();
    let count: u32 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
    let errno = fields.next().unwrap_or("");
    // PID 1 and toybox itself count against pids.max too.
    expect(errno == "EAGAIN" && (32..64).contains(&count), || {
        format!("forked {line:?}, expected fewer than 64 then EAGAIN")
    })
}

fn exit_statuses(lab: &Lab) -> Outcome {
    expect_code(&toybox(lab, &["-c", "/bin/true"])?, 0)?;
    expect_code(&toybox(lab, &["-c", "/probe", "exit", "42"])?, 42)?;
    let shell = toybox(lab, &["-c", "/bin/sh", "-c", "echo hi; exit 3"])?;
    expect_code(&shell, 3)?;
    expect(shell.stdout == "hi\n", || format!("-c passes the rest of argv\n{}", shell.describe()))?;
    expect_code(&toybox(lab, &["-c", "/probe", "segv"])?, 128 + 11)?;
    expect_one_line_error(&toybox(lab, &["-c", "/not-executable"])?, 126, "not an executable")?;
    expect_one_line_error(&toybox(lab, &["-c", "/no/such/command"])?, 127, "not found")?;
    expect_one_line_error(&toybox(lab, &["-c", "/dangling"])?, 127, "execve: execve /dangling")
}

/// 32 containers at once: all succeed, each with its own hostname.
fn concurrent_starts_get_distinct_hostnames(lab: &Lab) -> Outcome {
    let before = take_snapshot(lab);
    let children: Vec<Child> = (0..32)
        .map(|_| toybox_command(lab, &["-c", "/probe", "identity"]).spawn())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("spawn toybox: {e}"))?;
    let mut hostnames = BTreeSet::new();
    for child in children {
        let run = finish(child)?;
        expect_code(&run, 0)?;
        hostnames.insert(run.value("hostname").unwrap_or("").to_string());
    }
    let run = Run { code: Some(0), stdout: String::new(), stderr: String::new() };
    expect_nothing_left(lab, &before, &run)?;
    expect(hostnames.len() == 32, || format!("only {} distinct hostnames", hostnames.len()))
}

/// Without a v1 controller toybox warns once, names it, and runs unlimited
/// there. The pids hierarchy is hidden in a private mount namespace.
fn missing_controller_warns_and_runs(lab: &Lab) -> Outcome {
    let before = take_snapshot(lab);
    let script = format!(
        "mount -t tmpfs none /sys/fs/cgroup/pids && exec {TOYBOX} -m {} -c /probe exit 0",
        lab.rootfs.display()
    );
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = finish(command.spawn().map_err(|e| format!("unshare: {e}"))?)?;
    expect_nothing_left(lab, &before, &run)?;
    expect_code(&run, 0)?;
    let lines: Vec<&str> = run.stderr.lines().collect();
    expect(lines.len() == 1 && lines[0].contains("pids") && lines[0].contains("without"), || {
        format!("expected one warning naming pids\n{}", run.describe())
    })
}

fn bad_input_is_refused(lab: &Lab) -> Outcome {
    let missing = lab.rootfs.with_file_name("no-such-rootfs");
    let missing = missing.display().to_string();
    let run = toybox(lab, &["-m", &missing, "-c", "/bin/true"])?;
    expect_one_line_error(&run, 125, "No such file or directory")?;
    expect_one_line_error(&toybox(lab, &["-m", "/", "-c", "/bin/true"])?, 125, "rootfs is /")?;
    let file = lab.rootfs.join("not-executable").display().to_string();
    expect_one_line_error(
        &toybox(lab, &["-m", &file, "-c", "/bin/true"])?,
        125,
        "not a directory",
    )?;
    expect_one_line_error(
        &toybox(lab, &["-u", "2000", "-c", "/bin/true"])?,
        125,
        "outside the mapped range",
    )?;
    expect_one_line_error(&toybox(lab, &["-u", "-1", "-c", "/bin/true"])?, 125, "toybox --help")?;
    expect_one_line_error(&toybox(lab, &["-u", "0"])?, 125, "--command")?;
    // A non-root caller, through setpriv (util-linux).
    let before = take_snapshot(lab);
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups", TOYBOX, "-m"]);
    command.arg(&lab.rootfs).args(["-c", "/bin/true"]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = finish(command.spawn().map_err(|e| format!("setpriv: {e}"))?)?;
    expect_nothing_left(lab, &before, &run)?;
    expect_one_line_error(&run, 125, "needs root")
}

fn help_and_version(_lab: &Lab) -> Outcome {
    let help = Command::new(TOYBOX).arg("--help").output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["--uid", "--mount", "--command", "--verbose", "125", "126", "127", "128+N"] {
        expect(text.contains(needle), || format!("--help does not mention {needle}:\n{text}"))?;
    }
    expect(help.status.success(), || "--help failed".into())?;
    let version = Command::new(TOYBOX).arg("--version").output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&version.stdout);
    expect(text.starts_with("toybox ") && version.status.success(), || format!("--version: {text}"))
}

fn verbose_shows_every_stage(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-v", "-c", "/bin/true"])?;
    expect_code(&run, 0)?;
    let stages = [
        "checks",
        "socketpair",
        "cgroups",
        "rlimits",
        "clone",
        "hostname",
        "mounts",
        "loopback",
        "uid map",
        "user namespace",
        "capabilities",
        "seccomp",
    ];
    for stage in stages {
        let prefix = format!("=> {stage} ... done (");
        expect(run.stderr.lines().any(|l| l.starts_with(&prefix) && l.ends_with(" µs)")), || {
            format!("no timed line for {stage}\n{}", run.describe())
        })?;
    }
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP reach the container; it exits 128+N by its handler.
fn signals_are_forwarded(lab: &Lab) -> Outcome {
    for (signal, number) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let running = start_waiting_probe(lab, "trap")?;
        send_signal(running.child.id(), signal)?;
        let run = stop_waiting(lab, running)?;
        expect_code(&run, 128 + number)?;
    }
    Ok(())
}

/// PID 1 without a handler ignores SIGTERM; toybox kills it after the grace period.
fn sigterm_to_unhandling_pid1_ends_in_sigkill(lab: &Lab) -> Outcome {
    let running = start_waiting_probe(lab, "sleep")?;
    let started = Instant::now();
    send_signal(running.child.id(), "TERM")?;
    let run = stop_waiting(lab, running)?;
    let took = started.elapsed();
    expect_code(&run, 137)?;
    expect(took >= Duration::from_secs(9) && took < Duration::from_secs(20), || {
        format!("stopped after {took:?}")
    })
}

/// If toybox itself is SIGKILLed, the container dies with it (PR_SET_PDEATHSIG).
/// toybox gets no chance to remove its cgroups then; the test does.
fn sigkill_to_toybox_kills_container(lab: &Lab) -> Outcome {
    let running = start_waiting_probe(lab, "sleep")?;
    let pid = running.pid;
    send_signal(running.child.id(), "KILL")?;
    let Running { mut child, before, .. } = running;
    child.wait().map_err(|e| e.to_string())?;
    // The kernel delivers the parent-death SIGKILL as toybox exits; give the
    // namespace a moment to be torn down before looking.
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = process_alive(pid);
    expect(!alive, || format!("container PID 1 ({pid}) still alive after toybox was SIGKILLed"))?;
    // Its record and cgroups are left; the next toybox (here `toybox ps`)
    // finds the record stale and removes both. The host's init reaps the
    // dead PID 1 in its own time; it is not toybox's to wait for.
    while fs::metadata(format!("/proc/{pid}")).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ps = Command::new(TOYBOX).arg("ps").output().map_err(|e| e.to_string())?;
    let run = Run { code: ps.status.code(), stdout: String::new(), stderr: String::new() };
    expect_nothing_left(lab, &before, &run)
}

/// A child of `parent` whose command name is `comm` (/proc/PID/stat).
fn child_named(parent: u32, comm: &str) -> Option<u32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

fn process_alive(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    !status.is_empty() && !status.contains("State:\tZ")
}

/// Under a terminal (a pty from script(1)) the container is the foreground
/// process group, so Ctrl-C reaches it directly.
fn terminal_goes_to_the_container(lab: &Lab) -> Outcome {
    let before = take_snapshot(lab);
    let toybox = format!("{TOYBOX} -m {} -c /probe", lab.rootfs.display());
    let tty = under_terminal(&format!("{toybox} tty"))?;
    expect(tty.contains("pgrp 1") && tty.contains("foreground 1"), || {
        format!("under a pty:\n{tty}")
    })?;
    // The pty is the container user's own, and its path opens. Single
    // quotes: $(tty) is the container's shell's to expand, not script(1)'s.
    let script = r#"stat -c "owner %u %g" "$(tty)" && echo opened >"$(tty)""#;
    let rootfs = lab.rootfs.display();
    let owner = under_terminal(&format!("{TOYBOX} -u 1000 -m {rootfs} -c /bin/sh -c '{script}'"))?;
    expect(owner.contains("owner 1000 1000") && owner.contains("opened"), || {
        format!("the pty as uid 1000:\n{owner}")
    })?;
    // The probe handles SIGINT by exiting 130; ^C is typed once it is ready.
    let mut command = Command::new("script");
    command.args(["-qec", &format!("{toybox} trap"), "/dev/null"]);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("script: {e}"))?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    child.stdin.as_mut().ok_or("no stdin")?.write_all(b"\x03").map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let run = Run { code: status.code(), stdout: line, stderr: String::new() };
    expect_nothing_left(lab, &before, &run)?;
    expect_code(&run, 130)
}

/// Under a terminal the container has a pty of its own: a resize of the
/// user's terminal reaches it, and an interactive shell has job control.
fn terminal_resize_and_job_control(lab: &Lab) -> Outcome {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let size =
        |rows, cols| libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&size(24, 80)), None).map_err(|e| format!("openpty: {e}"))?;
    let before = take_snapshot(lab);
    let mut command = toybox_command(lab, &["-c", "/bin/sh", "-i"]);
    let slave = |_| pty.slave.try_clone().map(Stdio::from).map_err(|e| e.to_string());
    command.stdin(slave(0)?).stdout(slave(1)?).stderr(slave(2)?);
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the pty becomes the
    // controlling terminal of toybox's new session, as a terminal emulator does.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("spawn toybox: {e}"))?;
    drop(pty.slave);
    let mut master = fs::File::from(pty.master);
    let mut seen = String::new();
    let result = (|| {
        say(&mut master, "stty size\n", "24 80", &mut seen)?;
        // The kernel sends toybox SIGWINCH, toybox resizes the container's pty.
        // SAFETY: TIOCSWINSZ reads one struct winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size(40, 100)) };
        std::thread::sleep(Duration::from_millis(300));
        say(&mut master, "stty size\n", "40 100", &mut seen)?;
        let job_control = "case $- in *m*) echo job-control-on;; esac\n";
        say(&mut master, job_control, "job-control-on\r", &mut seen)?;
        say(&mut master, "exit 5\n", "exit 5", &mut seen)
    })();
    let status = child.wait().map_err(|e| e.to_string())?;
    result.map_err(|e| format!("{e}\nterminal so far:\n{seen}"))?;
    let run = Run { code: status.code(), stdout: seen, stderr: String::new() };
    expect_nothing_left(lab, &before, &run)?;
    expect_code(&run, 5)
}

/// Type `text` on the pty, then read it until `want` appears (5 s at most).
fn say(master: &mut fs::File, text: &str, want: &str, seen: &mut String) -> Outcome {
    master.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    read_until(master, want, seen)
}

fn read_until(master: &mut fs::File, want: &str, seen: &mut String) -> Outcome {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(5);
    let start = seen.len();
    while !seen[start..].contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if left.is_zero() || unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) } <= 0 {
            return Err(format!("no {want:?} on the terminal within 5 s"));
        }
        let mut buffer = [0u8; 4096];
        let n = master.read(&mut buffer).map_err(|e| format!("read pty: {e}"))?;
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    Ok(())
}

/// Without a terminal, stdin and stdout are the command's own: a megabyte
/// of every byte value passes through `cat` unchanged, and EOF ends it.
fn piped_binary_round_trips(lab: &Lab) -> Outcome {
    let data: Vec<u8> =
        (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let before = take_snapshot(lab);
    let mut command = toybox_command(lab, &["-c", "/bin/cat"]);
    command.stdin(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("spawn toybox: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let run = Run {
        code: output.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into(),
    };
    expect_nothing_left(lab, &before, &run)?;
    expect_code(&run, 0)?;
    expect(output.stdout == data, || {
        format!("{} bytes in, {} out, not the same", data.len(), output.stdout.len())
    })
}

/// `toybox ps` lists a running container by name and PID; `toybox exec`
/// joins its namespaces and cgroups with its uid, capabilities and seccomp
/// filter; once the container exits its record is gone and exec refuses.
fn exec_into_a_running_container(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["-c", "/probe", "wait-stdin"])?;
    let result = (|| -> Result<String, String> {
        let name = container_name(running.pid)?;
        let pid = running.pid.to_string();
        let exec = |args: &[&str]| {
            let output = Command::new(TOYBOX).args(["exec", &name]).args(args).output();
            let output = output.map_err(|e| e.to_string())?;
            Ok::<Run, String>(Run {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into(),
                stderr: String::from_utf8_lossy(&output.stderr).into(),
            })
        };
        let script = "hostname; readlink /proc/self/ns/pid; cat /proc/self/cgroup; echo --; cat /proc/1/cgroup";
        let inside = exec(&["-c", "/bin/sh", "-c", script])?;
        expect_code(&inside, 0)?;
        let host_pid_ns =
            fs::read_link(format!("/proc/{pid}/ns/pid")).map_err(|e| e.to_string())?;
        let lines: Vec<&str> = inside.stdout.lines().collect();
        let (own, first) = inside.stdout.split_once("--\n").unwrap_or(("", "?"));
        expect(
            lines.first() == Some(&name.as_str())
                && lines.get(1).map(|l| l.trim()) == Some(&*host_pid_ns.to_string_lossy())
                && own.lines().skip(2).collect::<Vec<_>>() == first.lines().collect::<Vec<_>>(),
            || {
                format!(
                    "exec: want hostname {name}, pid ns {host_pid_ns:?}, PID 1's cgroups\n{}",
                    inside.describe()
                )
            },
        )?;
        let caps = exec(&["-c", "/probe", "caps"])?;
        let kept: u64 = KEPT_CAPS.iter().map(|&n| 1u64 << n).sum();
        expect(hex(&caps, "bounding")? == kept && hex(&caps, "effective")? == kept, || {
            format!("exec as root should keep only contained.c's set\n{}", caps.describe())
        })?;
        let syscalls = exec(&["-u", "1000", "-c", "/probe", "syscalls"])?;
        expect_value(&syscalls, "unshare_newuser", "EPERM")?;
        expect_value(&syscalls, "keyctl", "EPERM")?;
        // Should toybox exec be killed outright, its command goes with it.
        let mut killed = Command::new(TOYBOX)
            .args(["exec", &name, "-c", "/bin/sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sleeper = None;
        while sleeper.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            sleeper = child_named(killed.id(), "sleep");
        }
        send_signal(killed.id(), "KILL")?;
        killed.wait().map_err(|e| e.to_string())?;
        let sleeper = sleeper.ok_or("toybox exec never started its sleep")?;
        while process_alive(sleeper) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        expect(!process_alive(sleeper), || {
            format!("exec'd sleep ({sleeper}) alive after toybox exec was SIGKILLed")
        })?;
        Ok(name)
    })();
    let stopped = stop_waiting(lab, running);
    let name = result?;
    stopped?;
    let after = Command::new(TOYBOX).args(["exec", &name, "-c", "/bin/true"]).output();
    let after = after.map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&after.stderr);
    expect(after.status.code() == Some(125) && stderr.contains("no running container"), || {
        format!("exec after exit: {:?} {stderr}", after.status.code())
    })
}

/// A record left by a toybox killed with SIGKILL names a PID 1 that is gone:
/// `ps` does not list it and removes it, `exec` refuses it.
fn stale_records_are_removed(_lab: &Lab) -> Outcome {
    let mut gone = Command::new("true").spawn().map_err(|e| e.to_string())?;
    gone.wait().map_err(|e| e.to_string())?;
    let record = Path::new("/run/toybox/stale-test-000000");
    let text = format!("pid {}\nstart_time 1\nuid 0\nstarted 0\ncommand /bin/sh\n", gone.id());
    fs::create_dir_all("/run/toybox").map_err(|e| e.to_string())?;
    fs::write(record, &text).map_err(|e| e.to_string())?;
    let ps = Command::new(TOYBOX).arg("ps").output().map_err(|e| e.to_string())?;
    let listed = String::from_utf8_lossy(&ps.stdout).contains("stale-test");
    expect(!listed && !record.exists(), || {
        format!("ps listed {listed}, record left {}", record.exists())
    })?;
    fs::write(record, &text).map_err(|e| e.to_string())?;
    let exec = Command::new(TOYBOX).args(["exec", "stale-test-000000", "-c", "/bin/true"]).output();
    let exec = exec.map_err(|e| e.to_string())?;
    let left = record.exists();
    let _ = fs::remove_file(record);
    // A name is never a path: a file outside /run/toybox is not touched.
    let outside = Path::new("/run/toybox-test-not-a-record");
    fs::write(outside, "not a record\n").map_err(|e| e.to_string())?;
    let escape = Command::new(TOYBOX)
        .args(["exec", "../toybox-test-not-a-record", "-c", "/bin/true"])
        .output()
        .map_err(|e| e.to_string())?;
    let kept = outside.exists();
    let _ = fs::remove_file(outside);
    expect(escape.status.code() == Some(125) && kept, || {
        format!("exec ../name: {:?}, file outside kept: {kept}", escape.status.code())
    })?;
    expect(exec.status.code() == Some(125) && !left, || {
        format!("exec on a stale record: {exec:?}, left {left}")
    })
}

/// Run a shell command line under a pseudo-terminal; its output. stdin stays
/// open until the command is done: script(1) ends its session at EOF.
fn under_terminal(command_line: &str) -> Result<String, String> {
    let mut command = Command::new("script");
    command.args(["-qec", command_line, "/dev/null"]);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("script: {e}"))?;
    let stdin = child.stdin.take();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    drop(stdin);
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// --init: the probe, not PID 1 now, dies of the SIGTERM the init passes on.
fn init_passes_sigterm_on(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["--init", "-c", "/probe", "sleep"])?;
    let started = Instant::now();
    send_signal(running.child.id(), "TERM")?;
    let run = stop_waiting(lab, running)?;
    let took = started.elapsed();
    expect_code(&run, 143)?;
    expect(took < Duration::from_secs(3), || format!("stopped after {took:?}, want promptly"))
}

/// --init reaps an orphan that PID 1 inherits; without an init that reaps,
/// `ps` would show it as a zombie (Z).
fn init_reaps_zombies(lab: &Lab) -> Outcome {
    let script = "(sleep 0.2 &); sleep 1; ps -o stat,pid,comm";
    let run = toybox(lab, &["--init", "-c", "/bin/sh", "-c", script])?;
    expect_code(&run, 0)?;
    let processes: Vec<&str> = run.stdout.lines().skip(1).collect();
    let zombies: Vec<&&str> = processes.iter().filter(|l| l.starts_with('Z')).collect();
    expect(processes.len() >= 2 && zombies.is_empty(), || {
        format!("zombies {zombies:?}\n{}", run.describe())
    })
}

fn stop_timeout_sets_the_grace_period(lab: &Lab) -> Outcome {
    let running = start_waiting(lab, &["--stop-timeout", "1", "-c", "/probe", "sleep"])?;
    let started = Instant::now();
    send_signal(running.child.id(), "TERM")?;
    let run = stop_waiting(lab, running)?;
    let took = started.elapsed();
    expect_code(&run, 137)?;
    expect(took >= Duration::from_secs(1) && took < Duration::from_secs(5), || {
        format!("stopped after {took:?}, want about 1 s")
    })
}

/// /proc belongs to the container's PID namespace: `ps` lists only its own.
fn proc_shows_only_the_container(lab: &Lab) -> Outcome {
    let run = toybox(lab, &["-c", "/bin/sh", "-c", "sleep 0.1 & ps -o pid,comm; wait"])?;
    expect_code(&run, 0)?;
    let pids: Vec<u32> = run
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    expect(pids.contains(&1) && pids.len() <= 3 && pids.iter().all(|&p| p < 10), || {
        format!("want only the container's few processes\n{}", run.describe())
    })
}

/// docker's masks, tried as root inside: masked files read as empty, masked
/// directories list nothing, the read-only ones refuse writes, and the
/// container cannot unmount either. Only paths this host's kernel has can be
/// tried; the others are named as skipped (the VM lab tries kcore and
/// sysrq-trigger on Debian's kernel).
fn proc_sensitive_files_masked(lab: &Lab) -> Outcome {
    let files =
        ["/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"];
    let dirs = ["/proc/acpi", "/sys/firmware", "/sys/devices/virtual/powercap"];
    let mut masked = Vec::new();
    let mut script = String::new();
    let files = files.into_iter().map(|f| (f, "cat"));
    for (path, count) in files.chain(dirs.into_iter().map(|d| (d, "ls -A"))) {
        if !Path::new(path).exists() {
            println!("SKIP proc_sensitive_files_masked {path}: this host's kernel has none");
            continue;
        }
        masked.push(path);
        script += &format!(
            "echo {path} $({count} {path} | wc -c); umount {path} 2>/dev/null && echo unmounted {path}; "
        );
    }
    script += "echo x > /proc/sys/kernel/hostname 2>/dev/null && echo wrote /proc/sys; ";
    if Path::new("/proc/sysrq-trigger").exists() {
        script += "echo h > /proc/sysrq-trigger 2>/dev/null && echo wrote sysrq-trigger; ";
    }
    let run = toybox(lab, &["-c", "/bin/sh", "-c", &script])?;
    let want: String = masked.iter().map(|f| format!("{f} 0\n")).collect();
    expect(!masked.is_empty() && run.stdout == want, || {
        format!("want {want:?} (masked, empty, nothing unmounted or written)\n{}", run.describe())
    })
}

/// /dev holds exactly the devices docker gives, they work, and devpts is a
/// new instance with no host terminals in it.
fn dev_is_minimal(lab: &Lab) -> Outcome {
    let script = "ls /dev | tr '\\n' ' '; echo; ls /dev/pts | tr '\\n' ' '; echo; \
                  echo x > /dev/null && head -c 4 /dev/urandom | wc -c";
    let run = toybox(lab, &["-c", "/bin/sh", "-c", script])?;
    let want = "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero \nptmx \n4\n";
    expect(run.code == Some(0) && run.stdout == want, || {
        format!("want {want:?}\n{}", run.describe())
    })
}

/// toybox adds no ignored signal to the container's: its own runtime ignores
/// SIGPIPE, and an ignored signal stays ignored across execve, so `yes` in
/// `yes | head` would print EPIPE errors and not die. What toybox's caller
/// ignored passes through, as with unshare or bwrap.
fn toybox_ignores_nothing_for_the_container(lab: &Lab) -> Outcome {
    // What a program started the way this test starts toybox inherits (glibc's
    // posix_spawn, for one, leaves its internal signals ignored).
    let host = Command::new("grep").args(["SigIgn", "/proc/self/status"]).output();
    let host = host.map_err(|e| format!("grep on the host: {e}"))?;
    let want = String::from_utf8_lossy(&host.stdout).into_owned();
    // grep itself, not through sh: a shell sets dispositions of its own.
    let run = toybox(lab, &["-c", "/bin/grep", "SigIgn", "/proc/self/status"])?;
    expect_code(&run, 0)?;
    expect(want.starts_with("SigIgn:") && run.stdout == want, || {
        format!("want {want}{}", run.describe())
    })?;
    let run = toybox(lab, &["-c", "/bin/sh", "-c", "yes | head -n 1"])?;
    expect_code(&run, 0)?;
    expect(run.stdout == "y\n" && run.stderr.is_empty(), || {
        format!("yes should die of SIGPIPE, silently\n{}", run.describe())
    })
}

/// docker run's environment: PATH, HOSTNAME, HOME, then -e; nothing of
/// toybox's own; -w sets the directory; a bare name is found through PATH.
fn environment_and_workdir(lab: &Lab) -> Outcome {
    let mut command = toybox_command(
        lab,
        &["-e", "FOO=bar", "-e", "FROM_HOST", "-w", "/etc", "-c", "sh", "-c", "env | sort; pwd"],
    );
    command.env("FROM_HOST", "passed").env("TOYBOX_SECRET", "leaked");
    let run = finish(command.spawn().map_err(|e| e.to_string())?)?;
    expect_code(&run, 0)?;
    let lines: Vec<&str> = run.stdout.lines().collect();
    let has = |line: &str| lines.contains(&line);
    expect(
        has("FOO=bar")
            && has("FROM_HOST=passed")
            && has("HOME=/root")
            && has("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            && lines.iter().any(|l| l.starts_with("HOSTNAME="))
            && !run.stdout.contains("TOYBOX_SECRET")
            && lines.last() == Some(&"/etc"),
        || format!("environment or directory wrong\n{}", run.describe()),
    )?;
    let bad = toybox(lab, &["-w", "/no/such/dir", "-c", "/bin/true"])?;
    expect_one_line_error(&bad, 125, "workdir: chdir /no/such/dir")?;
    let missing = toybox(lab, &["-c", "no-such-command"])?;
    expect_one_line_error(&missing, 127, "not found in PATH")
}

fn start_waiting_probe(lab: &Lab, mode: &str) -> Result<Running, String> {
    start_waiting(lab, &["-c", "/probe", mode])
}

fn send_signal(pid: u32, signal: &str) -> Outcome {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    expect(status.map(|s| s.success()).unwrap_or(false), || format!("kill -{signal} {pid} failed"))
}

/// The VM lab (tests/vmlab/run.sh) boots Debian's kernel under qemu with only
/// cgroup2 mounted, or only v1 hierarchies, and runs the container checks
/// there; this host is hybrid, so that is where the v2 path really runs.
fn vm_lab(mode: &str) -> Outcome {
    let script = repo_root().join("tests/vmlab/run.sh");
    let mut command = Command::new(&script);
    command.arg(mode).env("TOYBOX_BIN", TOYBOX).stdin(Stdio::null());
    let output = command.output().map_err(|e| format!("{}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let passed = stdout.lines().filter(|l| l.contains(": PASS ")).count();
    // A check the guest could not run (its kernel lacks a controller, or the
    // lab has no nft) is named here, not counted as passed.
    for skipped in stdout.lines().filter(|l| l.contains(": SKIP ")) {
        println!("     vm lab {skipped}");
    }
    expect(output.status.success() && passed > 0, || {
        format!("{} {mode} failed:\n{stdout}{stderr}", script.display())
    })
}

fn vm_lab_pure_cgroup_v2(_lab: &Lab) -> Outcome {
    vm_lab("v2")
}

fn vm_lab_pure_cgroup_v1(_lab: &Lab) -> Outcome {
    vm_lab("v1")
}

// ---------------------------------------------------------------------------
// The chapters: each shows the property it introduces, and the chapter before
// it demonstrably lacks it (chapters/README.md). Cargo builds every chapter
// binary beside toybox.
// ---------------------------------------------------------------------------

fn chapter(lab: &Lab, name: &str, args: &[&str]) -> Result<Run, String> {
    let program = Path::new(TOYBOX).with_file_name(format!("ch{name}"));
    run_program(&program, lab, args).map_err(|e| format!("ch{name}: {e}"))
}

fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}

/// 01 runs the command as a child and passes its status on; nothing is
/// isolated and nothing is checked: a missing rootfs does not stop it.
fn chapter_01_runs_the_command(lab: &Lab) -> Outcome {
    let run = chapter(lab, "01-skeleton", &["-c", "/bin/sh", "-c", "hostname; exit 42"])?;
    expect_code(&run, 42)?;
    expect(run.stdout.trim() == host_hostname(), || {
        format!("not the host's name\n{}", run.describe())
    })?;
    expect_code(&chapter(lab, "01-skeleton", &["-m", "/no/such/rootfs", "-c", "/bin/true"])?, 0)
}

/// 02 refuses a missing rootfs before creating anything.
fn chapter_02_checks_input(lab: &Lab) -> Outcome {
    let run = chapter(lab, "02-checks", &["-m", "/no/such/rootfs", "-c", "/bin/true"])?;
    expect_one_line_error(&run, 125, "checks: rootfs /no/such/rootfs")
}

/// 03's new namespaces: its own hostname and PID 1, where 02 had the host's;
/// the host's files are still there.
fn chapter_03_namespaces(lab: &Lab) -> Outcome {
    let marker = lab.host_marker.display().to_string();
    let script = format!("hostname; echo $$; cat {marker}");
    let args = ["-c", "/bin/sh", "-c", script.as_str()];
    let before = chapter(lab, "02-checks", &args)?;
    let after = chapter(lab, "03-namespaces", &args)?;
    let lines = |run: &Run| run.stdout.lines().map(str::to_string).collect::<Vec<_>>();
    let (before_lines, after_lines) = (lines(&before), lines(&after));
    expect(
        before_lines.first() == Some(&host_hostname()) && before_lines.get(1) != Some(&"1".into()),
        || format!("02 should run with the host's hostname and PIDs\n{}", before.describe()),
    )?;
    expect(
        after_lines.first() != Some(&host_hostname())
            && after_lines.get(1).map(String::as_str) == Some("1")
            && after_lines.get(2).map(String::as_str) == Some("host"),
        || {
            format!(
                "03: want its own hostname, PID 1, and the host file still readable\n{}",
                after.describe()
            )
        },
    )
}

/// 04 pivots into the rootfs: the host file 03 could read is gone.
fn chapter_04_private_root(lab: &Lab) -> Outcome {
    let marker = lab.host_marker.display().to_string();
    let args = ["-c", "/bin/cat", marker.as_str()];
    let before = chapter(lab, "03-namespaces", &args)?;
    expect(before.code == Some(0) && before.stdout == "host\n", || {
        format!("03 should still read {marker}\n{}", before.describe())
    })?;
    let after = chapter(lab, "04-mounts", &["-c", "/probe", "escape", &marker, "/oldroot"])?;
    expect_code(&after, 0)?;
    let reached: Vec<&str> = after.stdout.lines().filter(|l| l.ends_with(" exists")).collect();
    expect(reached.is_empty(), || format!("04 reached {reached:?}\n{}", after.describe()))
}

/// 05 honours -u through the user namespace; 04 ignored it and ran as root.
fn chapter_05_user_namespace(lab: &Lab) -> Outcome {
    let args = ["-u", "1000", "-c", "/probe", "identity"];
    expect_value(&chapter(lab, "04-mounts", &args)?, "uid", "0 0 0")?;
    expect_value(&chapter(lab, "05-user-namespace", &args)?, "uid", "1000 1000 1000")
}

/// 06 takes CAP_SYS_ADMIN (21) out of the bounding set; 05 kept it.
fn chapter_06_capabilities(lab: &Lab) -> Outcome {
    let sys_admin = 1u64 << 21;
    let before = hex(&chapter(lab, "05-user-namespace", &["-c", "/probe", "caps"])?, "bounding")?;
    let after = hex(&chapter(lab, "06-capabilities", &["-c", "/probe", "caps"])?, "bounding")?;
    expect(before & sys_admin != 0 && after & sys_admin == 0, || {
        format!("bounding sets: 05 {before:016x}, 06 {after:016x}; want CAP_SYS_ADMIN only in 05")
    })
}

/// 07's filter answers keyctl with EPERM; 06 let the call through.
fn chapter_07_seccomp(lab: &Lab) -> Outcome {
    let before = chapter(lab, "06-capabilities", &["-c", "/probe", "syscalls"])?;
    let after = chapter(lab, "07-seccomp", &["-c", "/probe", "syscalls"])?;
    expect(
        before.value("keyctl") != Some("EPERM") && after.value("keyctl") == Some("EPERM"),
        || {
            format!(
                "keyctl: 06 {:?}, 07 {:?}; want EPERM only in 07",
                before.value("keyctl"),
                after.value("keyctl")
            )
        },
    )
}

/// 08 limits the container: RLIMIT_NOFILE 64, which 07 did not set.
fn chapter_08_limits(lab: &Lab) -> Outcome {
    let before = chapter(lab, "07-seccomp", &["-c", "/probe", "identity"])?;
    let after = chapter(lab, "08-cgroups", &["-c", "/probe", "identity"])?;
    expect(
        before.value("nofile") != Some("64 64") && after.value("nofile") == Some("64 64"),
        || format!("nofile: 07 {:?}, 08 {:?}", before.value("nofile"), after.value("nofile")),
    )
}

/// A transcript in the chapter notes marked `<!-- checked -->` is what its
/// commands print now: each `$ ` or `# ` line runs again (as root, `sudo`
/// dropped, stdout and stderr together) in a directory where `./rootfs` is
/// the test rootfs and `./target` the build's, and its output must be the
/// lines under it. Only transcripts whose output cannot vary are marked.
fn notes_transcripts_match(lab: &Lab) -> Outcome {
    let dir = repo_root().join("target/transcripts");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let link = |to: &Path, name: &str| std::os::unix::fs::symlink(to, dir.join(name));
    link(&lab.rootfs, "rootfs").map_err(|e| e.to_string())?;
    link(&repo_root().join("target"), "target").map_err(|e| e.to_string())?;
    let before = take_snapshot(lab);
    let (mut checked, mut wrong) = (0, Vec::new());
    let mut notes: Vec<PathBuf> = fs::read_dir(repo_root().join("chapters"))
        .map_err(|e| e.to_string())?
        .flatten()
        .flat_map(|chapter| ["README.md", "README.zh-CN.md"].map(|n| chapter.path().join(n)))
        .filter(|path| path.exists())
        .collect();
    notes.sort();
    for path in &notes {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "<!-- checked -->" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .skip_while(|l| l.starts_with("```"))
                .take_while(|l| !l.starts_with("```"))
                .collect();
            for (command, want) in transcript_commands(&block) {
                checked += 1;
                let output = Command::new("bash")
                    .args(["-c", &format!("({command}) 2>&1")])
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| e.to_string())?;
                let got = String::from_utf8_lossy(&output.stdout);
                let got: Vec<&str> = got.lines().map(str::trim_end).collect();
                if got != want {
                    let name = path.strip_prefix(repo_root()).unwrap_or(path).display();
                    wrong.push(format!("{name}: {command}\n  want {want:?}\n  got  {got:?}"));
                }
            }
        }
    }
    let run = Run { code: Some(0), stdout: String::new(), stderr: wrong.join("\n") };
    expect_nothing_left(lab, &before, &run)?;
    let _ = fs::remove_dir_all(&dir);
    expect(checked > 0, || "no transcript in the notes is marked <!-- checked -->".into())?;
    expect(wrong.is_empty(), || {
        format!("{checked} commands checked; these differ:\n{}", wrong.join("\n"))
    })
}

/// The commands of a transcript block (prompt and `sudo` taken off) and
/// the output lines under each.
fn transcript_commands<'a>(block: &[&'a str]) -> Vec<(String, Vec<&'a str>)> {
    let mut commands: Vec<(String, Vec<&str>)> = Vec::new();
    for line in block {
        match line.strip_prefix("$ ").or_else(|| line.strip_prefix("# ")) {
            Some(command) => {
                let command = command.strip_prefix("sudo ").unwrap_or(command);
                commands.push((command.replace(" sudo ", " "), Vec::new()));
            }
            None => {
                if let Some((_, output)) = commands.last_mut() {
                    output.push(line.trim_end());
                }
            }
        }
    }
    commands
}

/// 09 limits the container on a pure cgroup v2 host, where 08 (v1 only) warns
/// that no v1 controller is there and sets no cgroup limit. This host is
/// hybrid, so it runs only on pure v2; the VM lab's v2 boot
/// (vm_lab_pure_cgroup_v2) runs both binaries there every time.
fn chapter_09_cgroup_v2(lab: &Lab) -> Outcome {
    let before = chapter(lab, "08-cgroups", &["-c", "/bin/true"])?;
    let after = chapter(lab, "09-cgroup-v2", &["-c", "/bin/true"])?;
    expect_code(&after, 0)?;
    let warns = |run: &Run| run.stderr.contains("continuing without those limits");
    expect(warns(&before) && !warns(&after), || {
        format!("08:\n{}\n09:\n{}", before.describe(), after.describe())
    })
}

// ---------------------------------------------------------------------------

type TestFn = fn(&Lab) -> Outcome;

// ---------------------------------------------------------------------------
// --net bridge: only ever on networks the test makes.
// ---------------------------------------------------------------------------

/// A fake host and a fake internet (chapter 18's notes): two network
/// namespaces held by `sleep` processes. toybox runs in the fake host (its
/// own network and mount namespaces, a tmpfs on /run/toybox), whose only
/// way out is a veth to the fake internet on 198.18.0.0/15, the benchmarking
/// range, which has no way out at all. The fake internet serves
/// /cgi-bin/ip, which prints the caller's address, on 198.18.0.2:8000.
struct FakeNet {
    host: Child,
    net: Child,
    httpd: Option<Child>,
    www: PathBuf,
    /// The real host's links, routes, nft ruleset and ip_forward.
    real: String,
}

const UPLINK_MTU: &str = "1400";

/// What the real host's network looks like; a test must leave it as found.
fn real_host_network() -> String {
    let mut state = String::new();
    for args in [&["-o", "link"][..], &["route"], &["-6", "route"]] {
        let out = Command::new("ip").args(args).output();
        state += &out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    }
    let nft = Command::new("nft").args(["list", "ruleset"]).output();
    state += &nft.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    state + &fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default()
}

fn sleeper(args: &[&str]) -> Result<Child, String> {
    let mut command = Command::new("unshare");
    command.args(args).args(["--", "sleep", "infinity"]);
    command.stdin(Stdio::null()).spawn().map_err(|e| format!("spawn unshare: {e}"))
}

impl FakeNet {
    fn new(lab: &Lab) -> Result<FakeNet, String> {
        let real = real_host_network();
        let host = sleeper(&["--net", "--mount", "--propagation", "private"])?;
        let net = sleeper(&["--net"])?;
        let www = repo_root().join(format!("target/net-www-{}", std::process::id()));
        let mut fake = FakeNet { host, net, httpd: None, www, real };
        // unshare has not entered its namespaces until it execs sleep.
        let deadline = Instant::now() + Duration::from_secs(2);
        let own = fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        for pid in [fake.host.id(), fake.net.id()] {
            while fs::read_link(format!("/proc/{pid}/ns/net")).ok().as_ref() == Some(&own) {
                if Instant::now() > deadline {
                    return Err("unshare did not make its namespace".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        fs::create_dir_all("/run/toybox").map_err(|e| e.to_string())?;
        let net_pid = fake.net.id();
        fake.host_sh(&format!(
            "mount -t tmpfs tmpfs /run/toybox && ip link set lo up && \
             ip link add up0 mtu {UPLINK_MTU} type veth peer name up1 mtu {UPLINK_MTU} netns /proc/{net_pid}/ns/net && \
             ip addr add 198.18.0.1/24 dev up0 && ip link set up0 up && \
             ip route add default via 198.18.0.2"
        ))?;
        fake.net_sh(
            "ip addr add 198.18.0.2/24 dev up1 && ip link set up1 up && ip link set lo up",
        )?;
        fs::create_dir_all(fake.www.join("cgi-bin")).map_err(|e| e.to_string())?;
        let cgi = fake.www.join("cgi-bin/ip");
        let script = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n";
        fs::write(&cgi, script).map_err(|e| e.to_string())?;
        fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let busybox = lab.rootfs.join("bin/busybox");
        let httpd = Command::new("nsenter")
            .args(["-t", &net_pid.to_string(), "-n", "--"])
            .arg(&busybox)
            .args(["httpd", "-f", "-p", "198.18.0.2:8000", "-h"])
            .arg(&fake.www)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn httpd: {e}"))?;
        fake.httpd = Some(httpd);
        // Nothing but what the test made is in the fake host.
        let links = fake.host_sh("ip -o link | cut -d: -f2")?;
        let links: Vec<&str> = links.split_whitespace().collect();
        if links.len() != 2 || links[0] != "lo" || !links[1].starts_with("up0@") {
            return Err(format!("fake host holds {links:?}"));
        }
        std::thread::sleep(Duration::from_millis(200)); // httpd listening
        Ok(fake)
    }

    fn sh(&self, pid: u32, mount: bool, script: &str) -> Result<String, String> {
        let mut command = Command::new("nsenter");
        command.args(["-t", &pid.to_string(), "-n"]);
        if mount {
            command.arg("-m");
        }
        let out = command.args(["--", "sh", "-c", script]).output();
        let out = out.map_err(|e| format!("nsenter: {e}"))?;
        if !out.status.success() {
            return Err(format!("{script}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn host_sh(&self, script: &str) -> Result<String, String> {
        self.sh(self.host.id(), true, script)
    }

    fn net_sh(&self, script: &str) -> Result<String, String> {
        self.sh(self.net.id(), false, script)
    }

    /// toybox in the fake host.
    fn toybox(&self, lab: &Lab, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command.args(["-t", &self.host.id().to_string(), "-n", "-m", "--", TOYBOX, "-m"]);
        command.arg(&lab.rootfs).args(args);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }

    fn run(&self, lab: &Lab, args: &[&str]) -> Result<Run, String> {
        let child = self.toybox(lab, args).spawn().map_err(|e| format!("spawn: {e}"))?;
        finish(child)
    }

    /// What toybox may have left in the fake host: nothing, once every
    /// container is gone.
    fn leftovers(&self) -> Result<Vec<String>, String> {
        let script = "ip -o link | cut -d: -f2 | grep -E '^ (toybox0|tb-)' ; \
                      nft list tables | grep toybox ; \
                      grep -vx 0 /proc/sys/net/ipv4/ip_forward ; \
                      ls -A /run/toybox; true";
        Ok(self.host_sh(script)?.lines().map(|l| l.trim().to_string()).collect())
    }

    /// The kernel removes a container's veth with its network namespace,
    /// on a workqueue, a moment after toybox exits: allow it 2 s.
    fn expect_clean(&self) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut left = self.leftovers()?;
        while left.iter().any(|l| l.starts_with("tb-")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = self.leftovers()?;
        }
        expect(left.is_empty(), || format!("left in the fake host: {left:?}"))
    }
}

impl Drop for FakeNet {
    fn drop(&mut self) {
        for child in
            [Some(&mut self.host), Some(&mut self.net), self.httpd.as_mut()].into_iter().flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.www);
    }
}

/// Run a network test in a fresh fake host; after it, nothing of toybox is
/// left there, the real host's network is as it was, and no cgroup, mount or
/// process of the run remains.
fn with_fake_net(lab: &Lab, test: impl FnOnce(&FakeNet) -> Outcome) -> Outcome {
    let before = take_snapshot(lab);
    let fake = FakeNet::new(lab)?;
    let result = test(&fake).and_then(|()| fake.expect_clean());
    let real = fake.real.clone();
    drop(fake);
    result?;
    let after = real_host_network();
    expect(after == real, || format!("the real host's network changed:\n{real}\n---\n{after}"))?;
    let left = leftovers(&before, &take_snapshot(lab));
    expect(left.is_empty(), || format!("left behind: {}", left.join("\n  ")))
}

const SHOW_ETH0: &str = "ip -o -4 addr show eth0 | awk '{print \"address\", $4}'";

/// eth0 has a lease's address, the default route leads to the bridge, the
/// MTU is the uplink's, lo is up, and root inside may bind :80 (docker's
/// ip_unprivileged_port_start=0) and ping the bridge (ping_group_range) but
/// may not change eth0 (the namespace is
/// the host user namespace's: no CAP_NET_ADMIN over it).
fn net_bridge_inside(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        let script = format!(
            "{SHOW_ETH0}; ip route | sed -n 's/^default via \\([0-9.]*\\) dev eth0.*/gateway \\1/p'; \
             echo mtu $(cat /sys/class/net/eth0/mtu); echo lo $(cat /sys/class/net/lo/flags); \
             nc -l -p 80 & sleep 0.2; kill $! && echo bound 80; /probe ping 10.77.0.1; \
             ip addr add 10.77.0.99/24 dev eth0 2>/dev/null || echo addr refused; \
             ip link set eth0 down 2>/dev/null || echo down refused"
        );
        let run = fake.run(lab, &["--net", "bridge", "-c", "/bin/sh", "-c", &script])?;
        expect_code(&run, 0)?;
        let address = run.value("address").unwrap_or("");
        expect(address.starts_with("10.77.0.") && address.ends_with("/24"), || {
            format!("eth0 has {address:?}\n{}", run.describe())
        })?;
        expect_value(&run, "gateway", "10.77.0.1")?;
        expect_value(&run, "mtu", UPLINK_MTU)?;
        expect_value(&run, "lo", "0x9")?;
        expect_value(&run, "bound", "80")?;
        expect_value(&run, "ping", "OK")?;
        expect_value(&run, "addr", "refused")?;
        expect_value(&run, "down", "refused")
    })
}

/// Two containers at once talk over TCP through the bridge; one reaches the
/// fake internet, which has no route to the containers' subnet, and is seen
/// there as the fake host's address: MASQUERADE. Without --net the same
/// request fails (the negative control).
fn net_bridge_two_containers_and_nat(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        let server = format!("{SHOW_ETH0}; nc -l -p 7000 -e echo pong");
        let mut a = fake.toybox(lab, &["--net", "bridge", "-c", "/bin/sh", "-c", &server]).spawn();
        let a = a.as_mut().map_err(|e| format!("spawn: {e}"))?;
        let mut stdout = BufReader::new(a.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let address = line
            .trim()
            .strip_prefix("address ")
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let client = format!(
            "sleep 0.2; nc -w 3 {address} 7000; \
             wget -q -O- http://198.18.0.2:8000/cgi-bin/ip | sed 's/^/seen /'"
        );
        let b = fake.run(lab, &["--net", "bridge", "-c", "/bin/sh", "-c", &client]);
        let _ = a.kill();
        let _ = a.wait();
        let b = b?;
        expect(b.stdout.lines().next() == Some("pong"), || {
            format!("no answer from {address:?}\n{}", b.describe())
        })?;
        expect_value(&b, "seen", "198.18.0.1")?;
        let none = fake
            .run(lab, &["-c", "/bin/sh", "-c", "wget -q -O- http://198.18.0.2:8000/cgi-bin/ip"])?;
        expect(none.code != Some(0) && none.stdout.is_empty(), || {
            format!("--net none reached the fake internet\n{}", none.describe())
        })
    })
}

/// 16 containers at once: 16 distinct addresses, 16 leases while they run.
fn net_bridge_sixteen_addresses(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        let script = format!("{SHOW_ETH0}; sleep 2");
        let mut children = Vec::new();
        for _ in 0..16 {
            let child =
                fake.toybox(lab, &["--net", "bridge", "-c", "/bin/sh", "-c", &script]).spawn();
            children.push(child.map_err(|e| format!("spawn: {e}"))?);
        }
        std::thread::sleep(Duration::from_millis(1000));
        let leases = fake.host_sh("ls /run/toybox/net | grep -c '^10\\.77\\.0\\.'; true")?;
        let mut addresses = BTreeSet::new();
        for child in children {
            let run = finish(child)?;
            expect_code(&run, 0)?;
            addresses.insert(run.value("address").unwrap_or("").to_string());
        }
        expect(leases.trim() == "16", || format!("{} leases while 16 ran", leases.trim()))?;
        expect(addresses.len() == 16, || format!("addresses {addresses:?}"))
    })
}

/// A subnet a host route covers, and a missing nft, are refused with one
/// line and exit 125 before anything is made.
fn net_bridge_refusals(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        fake.host_sh("ip addr add 10.77.9.1/16 dev up0")?;
        let run = fake.run(lab, &["--net", "bridge", "-c", "/bin/true"])?;
        fake.host_sh("ip addr del 10.77.9.1/16 dev up0")?;
        expect_code(&run, 125)?;
        let want = "toybox: network: 10.77.0.0/24 overlaps route 10.77.0.0/16 dev up0 (choose another with --subnet)\n";
        expect(run.stderr == want, || format!("expected {want:?}\n{}", run.describe()))?;
        fake.expect_clean()?;
        let mut command = Command::new("nsenter");
        command.args(["-t", &fake.host.id().to_string(), "-n", "-m", "--"]);
        command.args(["env", "PATH=/nonexistent", TOYBOX, "-m"]).arg(&lab.rootfs);
        command.args(["--net", "bridge", "-c", "/bin/true"]).stdout(Stdio::piped());
        let run = finish(command.stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?)?;
        expect_code(&run, 125)?;
        let want = "toybox: network: nft not found in PATH (install nftables)\n";
        expect(run.stderr == want, || format!("expected {want:?}\n{}", run.describe()))?;
        fake.expect_clean()?;
        let run = fake.run(
            lab,
            &["--net", "bridge", "--subnet", "10.78.0.0/24", "-c", "/bin/sh", "-c", SHOW_ETH0],
        )?;
        expect_value(&run, "address", "10.78.0.2/24")
    })
}

/// busybox wget from the rootfs, in the fake host or the fake internet: the
/// first line it got, or its error. (busybox 1.35's wget crashes with -T:
/// a timeout is applied from outside.)
fn fetch(fake: &FakeNet, lab: &Lab, upstream: bool, url: &str) -> Result<String, String> {
    let busybox = lab.rootfs.join("bin/busybox");
    let busybox = busybox.display();
    let script = format!("{busybox} timeout 3 {busybox} wget -q -O- {url} 2>&1 | head -n 1");
    let pid = if upstream { fake.net.id() } else { fake.host.id() };
    Ok(fake.sh(pid, false, &script)?.trim().to_string())
}

/// -p publishes a port (httpd serving the rootfs's /etc): from the fake
/// host by 127.0.0.1 and the bridge's address, from the fake internet,
/// from another container (hairpin); `-p 127.0.0.1:` only from the host.
/// The port is refused to a second container, naming the first, and
/// `toybox ps` shows both address and ports.
fn net_bridge_publish(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        let args = ["--net", "bridge", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "--init"];
        let mut server = fake.toybox(lab, &args);
        let mut server = server.args(["-c", "httpd", "-f", "-p", "80", "-h", "/etc"]).spawn();
        let server = server.as_mut().map_err(|e| format!("spawn: {e}"))?;
        let result = (|| {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !fetch(fake, lab, false, "http://127.0.0.1:8080/passwd")?.starts_with("root:") {
                if Instant::now() > deadline {
                    return Err("the published port never answered on 127.0.0.1:8080".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            for (upstream, url, works) in [
                (false, "http://10.77.0.1:8080/passwd", true),
                (false, "http://198.18.0.1:8080/passwd", true),
                (false, "http://127.0.0.1:8081/passwd", true),
                (true, "http://198.18.0.1:8080/passwd", true),
                (true, "http://198.18.0.1:8081/passwd", false),
            ] {
                let got = fetch(fake, lab, upstream, url)?;
                let from = if upstream { "the fake internet" } else { "the fake host" };
                expect(got.starts_with("root:x:0:0") == works, || {
                    format!(
                        "{url} from {from}: got {got:?}, expected it to {}",
                        if works { "work" } else { "fail" }
                    )
                })?;
            }
            let wget = ["-c", "wget", "-q", "-O-", "http://198.18.0.1:8080/passwd"];
            let hairpin = fake.run(lab, &[&["--net", "bridge"][..], &wget].concat())?;
            expect(hairpin.stdout.starts_with("root:x:0:0"), || {
                format!("no answer from another container\n{}", hairpin.describe())
            })?;
            let ps = fake.run(lab, &["ps"])?;
            let row = ps.stdout.lines().find(|l| l.contains("httpd")).unwrap_or("").to_string();
            expect(
                row.contains(" 10.77.0.")
                    && row.contains("0.0.0.0:8080->80/tcp,127.0.0.1:8081->80/tcp"),
                || format!("toybox ps shows no address and ports\n{}", ps.stdout),
            )?;
            let name = row.split_whitespace().next().unwrap_or("").to_string();
            let clash = fake.run(lab, &["--net", "bridge", "-p", "8080:80", "-c", "/bin/true"])?;
            expect_code(&clash, 125)?;
            let want = format!("toybox: network: port 8080/tcp is published by {name}\n");
            expect(clash.stderr == want, || format!("expected {want:?}\n{}", clash.describe()))
        })();
        send_signal(server.id(), "TERM")?;
        let _ = server.wait();
        result
    })
}

/// /etc/hosts names the container and its address, /etc/resolv.conf is the
/// host's without loopback nameservers; both are read-only inside. Without
/// --net bridge the rootfs's own (empty) files stay.
fn net_bridge_etc_files(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        // The fake host's mount namespace is its own: its resolv.conf can be
        // a stub resolver's, as on a systemd-resolved host.
        let resolv = fake.www.join("resolv.conf");
        fs::write(&resolv, "nameserver 127.0.0.53\nnameserver 198.18.0.2\noptions edns0\n")
            .map_err(|e| e.to_string())?;
        fake.host_sh(&format!("mount --bind {} /etc/resolv.conf", resolv.display()))?;
        let script = "hostname | sed 's/^/name /'; cat /etc/hosts /etc/resolv.conf; \
                      (echo x >> /etc/hosts) 2>/dev/null || echo hosts read-only; \
                      (echo x >> /etc/resolv.conf) 2>/dev/null || echo resolv read-only; \
                      echo ro_mounts $(grep -cE ' /etc/(hosts|resolv.conf) ro,' /proc/self/mountinfo)";
        let run = fake.run(lab, &["--net", "bridge", "-c", "/bin/sh", "-c", script])?;
        expect_code(&run, 0)?;
        let name = run.value("name").unwrap_or("?");
        let own = run.stdout.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|a| a.starts_with("10.77.0.")) && words.next() == Some(name)
        });
        expect(own, || format!("/etc/hosts does not name {name}\n{}", run.describe()))?;
        expect(run.stdout.contains("nameserver 198.18.0.2\noptions edns0\n"), || {
            format!("resolv.conf is not the host's\n{}", run.describe())
        })?;
        expect(!run.stdout.contains("127.0.0.53"), || {
            format!("a loopback nameserver reached the container\n{}", run.describe())
        })?;
        expect_value(&run, "hosts", "read-only")?;
        expect_value(&run, "resolv", "read-only")?;
        // Read-only mounts, not only files the container's root cannot write.
        expect_value(&run, "ro_mounts", "2")?;
        let none = fake.run(lab, &["-c", "/bin/cat", "/etc/hosts", "/etc/resolv.conf"])?;
        expect(none.code == Some(0) && none.stdout.is_empty(), || {
            format!("--net none changed /etc\n{}", none.describe())
        })
    })
}

/// toybox killed with SIGKILL leaves its lease, bridge and NAT table (the
/// kernel takes the veth with the namespace); one `toybox ps` removes them.
fn net_bridge_sigkill_reclaimed(lab: &Lab) -> Outcome {
    with_fake_net(lab, |fake| {
        let args = ["--net", "bridge", "-p", "8080:80", "-c", "/bin/sleep", "60"];
        let mut child = fake.toybox(lab, &args).spawn();
        let child = child.as_mut().map_err(|e| format!("spawn: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(3);
        // Started: its port's table is the last thing toybox makes.
        while !fake.host_sh("nft list tables")?.contains("toybox-") {
            if Instant::now() > deadline {
                return Err("no port table appeared".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // nsenter execs toybox: the child is toybox itself.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let container = fs::read_to_string(&children).map_err(|e| format!("{children}: {e}"))?;
        send_signal(child.id(), "KILL")?;
        let _ = child.wait();
        // The container dies of PR_SET_PDEATHSIG a moment later.
        let deadline = Instant::now() + Duration::from_secs(2);
        while container.split_whitespace().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            if Instant::now() > deadline {
                return Err(format!("container {} outlived toybox", container.trim()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = fake.leftovers()?;
        let table = left.iter().any(|l| l.starts_with("table ip toybox-"));
        expect(left.iter().any(|l| l == "net") && table, || {
            format!("no lease and port table left to reclaim: {left:?}")
        })?;
        expect_code(&fake.run(lab, &["ps"])?, 0)
    })
}

const TESTS: &[(&str, TestFn)] = &[
    ("help_and_version", help_and_version),
    ("pid_1_and_own_hostname", pid_1_and_own_hostname),
    ("namespaces_differ_from_host", namespaces_differ_from_host),
    ("uid_map_and_uids", uid_map_and_uids),
    ("host_files_unreachable", host_files_unreachable),
    ("inherited_fds_do_not_reach_the_container", inherited_fds_do_not_reach_the_container),
    ("rootfs_device_nodes_do_not_open", rootfs_device_nodes_do_not_open),
    ("rootfs_without_mount_points", rootfs_without_mount_points),
    ("root_owns_its_rootfs", root_owns_its_rootfs),
    ("ldd_rootfs_runs_bash_and_ls", ldd_rootfs_runs_bash_and_ls),
    ("debian_rootfs_dpkg_and_apt", debian_rootfs_dpkg_and_apt),
    ("docker_export_rootfs", docker_export_rootfs),
    ("docker_export_without_docker", docker_export_without_docker),
    ("only_loopback_visible", only_loopback_visible),
    ("loopback_is_up", loopback_is_up),
    ("net_bridge_inside", net_bridge_inside),
    ("net_bridge_two_containers_and_nat", net_bridge_two_containers_and_nat),
    ("net_bridge_sixteen_addresses", net_bridge_sixteen_addresses),
    ("net_bridge_refusals", net_bridge_refusals),
    ("net_bridge_publish", net_bridge_publish),
    ("net_bridge_etc_files", net_bridge_etc_files),
    ("net_bridge_sigkill_reclaimed", net_bridge_sigkill_reclaimed),
    ("capabilities_dropped", capabilities_dropped),
    ("no_new_privs_seccomp_and_rlimit", no_new_privs_seccomp_and_rlimit),
    ("seccomp_blocks_and_allows", seccomp_blocks_and_allows),
    ("cgroup_limits_in_files", cgroup_limits_in_files),
    ("memory_limit_in_effect", memory_limit_in_effect),
    ("fork_loop_capped", fork_loop_capped),
    ("exit_statuses", exit_statuses),
    ("concurrent_starts_get_distinct_hostnames", concurrent_starts_get_distinct_hostnames),
    ("missing_controller_warns_and_runs", missing_controller_warns_and_runs),
    ("bad_input_is_refused", bad_input_is_refused),
    ("verbose_shows_every_stage", verbose_shows_every_stage),
    ("signals_are_forwarded", signals_are_forwarded),
    ("sigterm_to_unhandling_pid1_ends_in_sigkill", sigterm_to_unhandling_pid1_ends_in_sigkill),
    ("sigkill_to_toybox_kills_container", sigkill_to_toybox_kills_container),
    ("terminal_goes_to_the_container", terminal_goes_to_the_container),
    ("terminal_resize_and_job_control", terminal_resize_and_job_control),
    ("piped_binary_round_trips", piped_binary_round_trips),
    ("exec_into_a_running_container", exec_into_a_running_container),
    ("stale_records_are_removed", stale_records_are_removed),
    ("init_passes_sigterm_on", init_passes_sigterm_on),
    ("init_reaps_zombies", init_reaps_zombies),
    ("stop_timeout_sets_the_grace_period", stop_timeout_sets_the_grace_period),
    ("proc_shows_only_the_container", proc_shows_only_the_container),
    ("proc_sensitive_files_masked", proc_sensitive_files_masked),
    ("dev_is_minimal", dev_is_minimal),
    ("environment_and_workdir", environment_and_workdir),
    ("toybox_ignores_nothing_for_the_container", toybox_ignores_nothing_for_the_container),
    ("chapter_01_runs_the_command", chapter_01_runs_the_command),
    ("chapter_02_checks_input", chapter_02_checks_input),
    ("chapter_03_namespaces", chapter_03_namespaces),
    ("chapter_04_private_root", chapter_04_private_root),
    ("chapter_05_user_namespace", chapter_05_user_namespace),
    ("chapter_06_capabilities", chapter_06_capabilities),
    ("chapter_07_seccomp", chapter_07_seccomp),
    ("chapter_08_limits", chapter_08_limits),
    ("chapter_09_cgroup_v2", chapter_09_cgroup_v2),
    ("devices_limited_by_cgroup", devices_limited_by_cgroup),
    ("notes_transcripts_match", notes_transcripts_match),
    ("vm_lab_pure_cgroup_v2", vm_lab_pure_cgroup_v2),
    ("vm_lab_pure_cgroup_v1", vm_lab_pure_cgroup_v1),
];

/// Why a test cannot run on this host, if it cannot.
fn skip_reason(name: &str) -> Option<String> {
    let cgroup_tests = [
        "cgroup_limits_in_files",
        "memory_limit_in_effect",
        "fork_loop_capped",
        "missing_controller_warns_and_runs",
    ];
    if cgroup_tests.contains(&name) {
        for controller in ["memory", "cpu", "pids"] {
            if !have_v1(controller) {
                return Some(format!(
                    "no cgroup v1 {controller} controller at /sys/fs/cgroup/{controller}"
                ));
            }
        }
    }
    if name == "devices_limited_by_cgroup" && !have_v1("devices") {
        return Some(
            "no cgroup v1 devices controller (cgroup v2 has none; see chapter 10's notes)".into(),
        );
    }
    if name == "chapter_09_cgroup_v2" && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Some(
            "not a pure cgroup v2 host (chapter 09's v2 path runs in vm_lab_pure_cgroup_v2)".into(),
        );
    }
    if name == "terminal_goes_to_the_container"
        && Command::new("script").arg("-V").output().is_err()
    {
        return Some("script(1) from util-linux is not installed".into());
    }
    if name.starts_with("net_bridge") {
        for (tool, package) in [("nft", "nftables"), ("ip", "iproute2"), ("nsenter", "util-linux")]
        {
            if Command::new(tool).arg("--version").output().is_err() {
                return Some(format!("{tool} is not installed (apt-get install {package})"));
            }
        }
    }
    if name == "debian_rootfs_dpkg_and_apt" {
        for (tool, package) in [("mmdebstrap", "mmdebstrap"), ("dpkg-deb", "dpkg")] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Some(format!("{tool} is not installed (apt-get install {package})"));
            }
        }
    }
    if name == "docker_export_rootfs" {
        match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
            Err(_) => return Some("docker is not installed".into()),
            Ok(out) if !out.status.success() => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let why = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim();
                return Some(format!("docker's daemon is not reachable: {why}"));
            }
            Ok(_) => {}
        }
    }
    if name.starts_with("vm_lab")
        && Command::new("qemu-system-x86_64").arg("--version").output().is_err()
    {
        return Some(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into(),
        );
    }
    None
}

fn main() {
    let selected = harness::selected(TESTS);
    let mut tally = harness::Tally::default();
    let lab =
        if is_root() { setup_lab().map_err(|e| tally.fail("lab setup", &e)).ok() } else { None };
    for (name, test) in selected {
        let reason = if !is_root() {
            Some("needs root (namespaces, cgroups)".to_string())
        } else {
            skip_reason(name)
        };
        if let Some(reason) = reason {
            tally.skip(name, &reason);
            continue;
        }
        let Some(lab) = &lab else { continue };
        tally.run(name, || test(lab));
    }
    tally.finish("container");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| status_field(&s, "Uid").split_whitespace().nth(1) == Some("0"))
        .unwrap_or(false)
}
