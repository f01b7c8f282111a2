//! OCI bundles run by `toybox run`: bundles made by `toybox spec` (and by
//! `runc spec`, when runc is installed) over the busybox test rootfs, with
//! config.json edited by the test; each property read back from inside the
//! container (busybox and the static probe, tests/probe/) and from the host.
//!
//! The plain harness tests/container.rs and tests/unpack.rs share
//! (tests/harness): one container at a time, each run
//! checked for leftovers (its cgroups, its record, mounts, /tmp), and a test
//! that cannot run here says SKIP and why.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

mod harness;

type Outcome = Result<(), String>;
type Test = fn(&Path) -> Outcome;
type Edit = fn(&mut Value);

const TOYBOX: &str = env!("CARGO_BIN_EXE_toybox");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The busybox rootfs with the probe, as tests/container.rs makes it.
fn rootfs() -> Result<PathBuf, String> {
    let rootfs = repo().join("target/test-rootfs");
    let script = repo().join("rootfs-scripts/busybox-rootfs.sh");
    setup(Command::new(script).arg(&rootfs))?;
    let probe = rootfs.join("probe");
    let source = repo().join("tests/probe/probe.c");
    setup(
        Command::new("cc").args(["-static", "-O2", "-o"]).arg(&probe).arg(source).arg("-lpthread"),
    )?;
    Ok(rootfs)
}

fn setup(command: &mut Command) -> Outcome {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr))),
    }
}

/// A bundle directory: config.json from `toybox spec` (or `runc spec`),
/// root.path pointing at the shared rootfs, no terminal, and `edit` applied.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    fn new(
        name: &str,
        maker: &str,
        rootfs: &Path,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Bundle, String> {
        let dir = repo().join("target/oci-tests").join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let output = match maker {
            "toybox" => Command::new(TOYBOX).args(["spec", "--bundle"]).arg(&dir).output(),
            _ => Command::new(maker).args(["spec", "--bundle"]).arg(&dir).output(),
        }
        .map_err(|e| format!("{maker} spec: {e}"))?;
        if !output.status.success() {
            return Err(format!("{maker} spec: {}", String::from_utf8_lossy(&output.stderr)));
        }
        let path = dir.join("config.json");
        let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut config: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        config["root"]["path"] = json!(rootfs);
        config["process"]["terminal"] = json!(false);
        edit(&mut config);
        let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
        fs::write(&path, text).map_err(|e| e.to_string())?;
        Ok(Bundle { dir })
    }

    fn run(&self, id: &str) -> Result<Run, String> {
        let before = snapshot(id);
        let output = Command::new(TOYBOX)
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(id)
            .output()
            .map_err(|e| format!("toybox run: {e}"))?;
        let run = Run::from(output);
        let after = snapshot(id);
        let left: Vec<&String> = after.difference(&before).collect();
        if !left.is_empty() {
            return Err(format!("left behind: {left:?}\n{}", run.describe()));
        }
        Ok(run)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    fn describe(&self) -> String {
        format!("exit {:?}\nstdout:\n{}stderr:\n{}", self.code, self.stdout, self.stderr)
    }

    /// The value after `key ` on the first line that starts so.
    fn value(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key} ");
        self.stdout.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    fn expect_code(&self, code: i32) -> Outcome {
        match self.code == Some(code) {
            true => Ok(()),
            false => Err(format!("want exit {code}\n{}", self.describe())),
        }
    }

    fn expect(&self, key: &str, want: &str) -> Outcome {
        match self.value(key) {
            Some(value) if value == want => Ok(()),
            other => Err(format!("{key}: want {want:?}, got {other:?}\n{}", self.describe())),
        }
    }
}

/// What a run named `id` could leave: its cgroups, its record, mounts
/// naming it, and /tmp (other agents' files there are not ours: only
/// entries naming the id count).
fn snapshot(id: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    if let Ok(controllers) = fs::read_dir("/sys/fs/cgroup") {
        for controller in controllers.flatten() {
            let group = controller.path().join("toybox").join(id);
            if group.exists() {
                found.insert(group.display().to_string());
            }
        }
    }
    let record = Path::new("/run/toybox").join(id);
    if record.exists() {
        found.insert(record.display().to_string());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines().filter(|l| l.contains("oci-tests")) {
        found.insert(format!("mount {line}"));
    }
    found
}

fn expect(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(message()) }
}

fn set_args(config: &mut Value, args: &[&str]) {
    config["process"]["args"] = json!(args);
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

/// `toybox spec`'s defaults, read back: hostname, user, the three
/// capabilities in every set but inheritable, no_new_privs, the NOFILE
/// rlimit, a read-only root, /proc/sys read-only, the masks.
fn spec_defaults_inside(rootfs: &Path) -> Outcome {
    let bundle =
        Bundle::new("defaults", "toybox", rootfs, |c| set_args(c, &["/probe", "identity"]))?;
    let run = bundle.run("oci-defaults")?;
    run.expect_code(0)?;
    run.expect("hostname", "toybox")?;
    run.expect("uid", "0 0 0")?;
    run.expect("no_new_privs", "1")?;
    run.expect("seccomp", "0")?;
    run.expect("nofile", "1024 1024")?;
    // CAP_KILL 5, CAP_NET_BIND_SERVICE 10, CAP_AUDIT_WRITE 29.
    let three = format!("{:016x}", 1u64 << 5 | 1 << 10 | 1 << 29);
    let bundle = Bundle::new("caps", "toybox", rootfs, |c| set_args(c, &["/probe", "caps"]))?;
    let run = bundle.run("oci-caps")?;
    run.expect_code(0)?;
    for set in ["bounding", "effective", "permitted"] {
        run.expect(set, &three)?;
    }
    // Ambient needs the capability inheritable too: spec has none inheritable.
    run.expect("inheritable", "0000000000000000")?;
    run.expect("ambient", "0000000000000000")?;
    let script = "touch /x 2>&1 | sed 's/^/touch /'; \
                  echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sysctl refused; \
                  echo keys $(wc -c < /proc/keys); echo env $(env | sort | tr '\\n' ' '); \
                  echo mounts $(cut -d' ' -f5 /proc/self/mountinfo | tr '\\n' ' ')";
    let bundle =
        Bundle::new("readonly", "toybox", rootfs, |c| set_args(c, &["/bin/sh", "-c", script]))?;
    let run = bundle.run("oci-readonly")?;
    run.expect_code(0)?;
    expect(run.stdout.contains("Read-only file system"), || {
        format!("touch /x worked\n{}", run.describe())
    })?;
    run.expect("sysctl", "refused")?;
    run.expect("keys", "0")?;
    // config.json's mounts, in its order (mountinfo lists them as made).
    let listed = ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"];
    let mounts = run.value("mounts").unwrap_or("");
    let seen: Vec<&str> = mounts.split_whitespace().filter(|m| listed.contains(m)).collect();
    expect(seen == listed, || format!("mounts in this order: {mounts}"))?;
    // Exactly config.json's environment: toybox adds nothing (sh adds PWD, SHLVL).
    let env = run.value("env").unwrap_or("");
    let names: Vec<&str> =
        env.split_whitespace().map(|kv| kv.split('=').next().unwrap_or("")).collect();
    expect(names == ["PATH", "PWD", "SHLVL", "TERM"], || format!("environment: {env}"))
}

/// An edited config, read back: env exactly, cwd, uid/gid/groups/umask,
/// rlimits, one capability, a sysctl, a read-only file bind.
fn edited_config_inside(rootfs: &Path) -> Outcome {
    let (bundle, marker) = edited_bundle(rootfs, "edited")?;
    let run = bundle.run("oci-edited")?;
    let _ = fs::remove_file(&marker);
    run.expect_code(0)?;
    run.expect("id", "1000 1001 1001 10 20")?;
    run.expect("umask", "0027")?;
    run.expect("cwd", "/etc")?;
    run.expect("nofile", "300 400")?;
    run.expect("ping", "0 0")?;
    run.expect("marker", "from the host")?;
    run.expect("marker-mount", "1")?;
    // A uid other than 0 keeps capabilities across execve only as ambient
    // ones (capabilities(7)): CAP_CHOWN (0) is inheritable and ambient.
    run.expect("capeff", "0000000000000001")?;
    let env = run.value("env").unwrap_or("");
    let want = "HOME=/ ONE=1 PATH=/bin:/usr/bin PWD=/etc SHLVL=1"; // sh adds PWD, SHLVL
    expect(env == want, || format!("environment: {env}"))
}

/// The bundle of edited_config_inside, and its host file to bind.
fn edited_bundle(rootfs: &Path, name: &str) -> Result<(Bundle, PathBuf), String> {
    let marker = repo().join("target").join(format!("oci-tests-{name}-marker"));
    fs::write(&marker, "from the host\n").map_err(|e| e.to_string())?;
    let script = "echo id $(id -u) $(id -g) $(id -G); echo umask $(umask); echo cwd $(pwd); \
                  echo env $(env | sort | tr '\\n' ' '); \
                  echo nofile $(ulimit -n) $(ulimit -Hn); \
                  echo ping $(cat /proc/sys/net/ipv4/ping_group_range); \
                  echo marker $(cat /etc/hosts); \
                  echo marker-mount $(grep -c ' /etc/hosts ro,' /proc/self/mountinfo); \
                  echo capeff $(grep CapEff /proc/self/status | cut -f2)";
    let bundle = Bundle::new("edited", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        // HOME given: runc adds one from the rootfs's /etc/passwd otherwise.
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "ONE=1", "HOME=/"]);
        c["process"]["cwd"] = json!("/etc");
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 400, "soft": 300}]);
        let chown = json!(["CAP_CHOWN"]);
        c["process"]["capabilities"] = json!({"bounding": chown, "effective": chown,
            "permitted": chown, "inheritable": chown, "ambient": chown});
        c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
        let bind = json!({"destination": "/etc/hosts", "type": "bind", "source": marker,
                          "options": ["bind", "ro"]});
        if let Some(mounts) = c["mounts"].as_array_mut() {
            mounts.push(bind);
        }
    })?;
    Ok((bundle, marker))
}

/// The same bundles run by runc: the same answers, line for line.
fn same_answers_as_runc(rootfs: &Path) -> Outcome {
    let root = repo().join("target/oci-tests/runc-root");
    let (edited, marker) = edited_bundle(rootfs, "edited-runc")?;
    let identity = Bundle::new("identity-runc", "toybox", rootfs, |c| {
        set_args(c, &["/probe", "identity"]);
        c["root"]["readonly"] = json!(false);
    })?;
    let caps = Bundle::new("caps-runc", "runc", rootfs, |c| set_args(c, &["/probe", "caps"]))?;
    for (bundle, id) in
        [(&edited, "oci-same-edited"), (&identity, "oci-same-id"), (&caps, "oci-same-caps")]
    {
        let toybox = bundle.run(id)?;
        let runc = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&bundle.dir)
            .arg(id)
            .output()
            .map(Run::from)
            .map_err(|e| format!("runc run: {e}"))?;
        toybox.expect_code(0)?;
        expect(toybox.stdout == runc.stdout && runc.code == Some(0), || {
            format!("{id}: toybox\n{}\nrunc\n{}", toybox.describe(), runc.describe())
        })?;
    }
    let _ = fs::remove_file(&marker);
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

/// A small seccomp profile: everything allowed but getcwd, which fails
/// with EPERM (busybox's pwd applet calls it); and an exit code passed on.
fn seccomp_profile_and_exit_code(rootfs: &Path) -> Outcome {
    let script = "/bin/pwd 2>&1; echo after $?; exit 7";
    let bundle = Bundle::new("seccomp", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0xffffffffu32, "op": "SCMP_CMP_NE"}]}
            ]
        });
    })?;
    let run = bundle.run("oci-seccomp")?;
    run.expect_code(7)?;
    expect(run.stdout.contains("Operation not permitted"), || {
        format!("getcwd allowed\n{}", run.describe())
    })?;
    run.expect("after", "1")?;
    // Two rules for chmod and fchmod, one per bit (MASKED_EQ: value is the
    // mask, valueTwo the datum): either bit is refused, a plain mode is
    // not, nor fchmodat, which the profile does not name.
    let masked = |bit: u32| {
        json!({"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
               "args": [{"index": 1, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}]})
    };
    let bundle = Bundle::new("seccomp-args", "toybox", rootfs, |c| {
        set_args(c, &["/probe", "syscalls"]);
        c["root"]["readonly"] = json!(false); // the probe writes /tmp/probe-syscalls
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                                       "syscalls": [masked(0o4000), masked(0o2000)]});
    })?;
    let run = bundle.run("oci-seccomp-args")?;
    // Without noNewPrivileges and as uid 1000: the filter is loaded while
    // CAP_SYS_ADMIN is still there, and no_new_privs stays off.
    let unprivileged = Bundle::new("seccomp-user", "toybox", rootfs, |c| {
        set_args(
            c,
            &[
                "/bin/sh",
                "-c",
                "/bin/pwd 2>&1; echo nnp $(grep NoNewPrivs /proc/self/status | cut -f2)",
            ],
        );
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
    })?;
    let user = unprivileged.run("oci-seccomp-user")?;
    user.expect_code(0)?;
    expect(user.stdout.contains("Operation not permitted"), || {
        format!("getcwd allowed without no_new_privs\n{}", user.describe())
    })?;
    user.expect("nnp", "0")?;
    for (call, want) in [
        ("chmod_suid", "EPERM"),
        ("chmod_sgid", "EPERM"),
        ("fchmod_suid", "EPERM"),
        ("fchmod_sgid", "EPERM"),
        ("chmod_plain", "OK"),
        ("fchmod_plain", "OK"),
        ("fchmodat_suid", "OK"),
    ] {
        run.expect(call, want)?;
    }
    Ok(())
}

/// linux.resources.pids.limit caps the container's processes: the probe
/// forks until EAGAIN (PID 1 counts, and toybox itself on cgroup v1).
fn pids_limit_from_config(rootfs: &Path) -> Outcome {
    let bundle = Bundle::new("pids", "toybox", rootfs, |c| {
        set_args(c, &["/probe", "forkbomb"]);
        c["linux"]["resources"]["pids"] = json!({"limit": 12});
    })?;
    let run = bundle.run("oci-pids")?;
    run.expect_code(0)?;
    let line = run.value("forked").unwrap_or("");
    let mut fields = line.split_whitespace();
    let count: u32 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
    expect(fields.next() == Some("EAGAIN") && (6..12).contains(&count), || {
        format!("forked {line:?}, expected fewer than 12 then EAGAIN\n{}", run.describe())
    })
}

/// linux.cgroupsPath, absolute: the group is there in every hierarchy
/// with the limit, holds the container, and is gone after the run.
fn cgroups_path_from_config(rootfs: &Path) -> Outcome {
    let bundle = Bundle::new("cgpath", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sleep", "1"]);
        c["linux"]["cgroupsPath"] = json!("/toybox-oci-test/oci-cgpath");
        c["linux"]["resources"]["pids"] = json!({"limit": 12});
    })?;
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let pids = match v2 {
        true => PathBuf::from("/sys/fs/cgroup/toybox-oci-test/oci-cgpath"),
        false => PathBuf::from("/sys/fs/cgroup/pids/toybox-oci-test/oci-cgpath"),
    };
    let mut child = Command::new(TOYBOX)
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .arg("oci-cgpath")
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut seen = None;
    for _ in 0..100 {
        let procs = fs::read_to_string(pids.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            seen = Some((fs::read_to_string(pids.join("pids.max")).unwrap_or_default(), procs));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let gone = !pids.exists();
    // toybox keeps parent groups, as its own toybox/; the test made this one.
    for controller in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = fs::remove_dir(controller.path().join("toybox-oci-test"));
    }
    let _ = fs::remove_dir("/sys/fs/cgroup/toybox-oci-test");
    let Some((max, procs)) = seen else {
        return Err(format!("{} never held a process", pids.display()));
    };
    expect(max.trim() == "12" && status.success() && gone, || {
        format!("pids.max {max:?}, procs {procs:?}, exit {status}, gone after: {gone}")
    })
}

/// A user namespace with config.json's maps: uid 0 inside is 100000 on
/// the host, and the host's root, unmapped, owns the rootfs as nobody.
fn user_namespace_maps(rootfs: &Path) -> Outcome {
    let script = "echo uidmap $(cat /proc/self/uid_map); echo gidmap $(cat /proc/self/gid_map); \
                  echo uid $(id -u); echo owner $(stat -c %u /)";
    let bundle = Bundle::new("userns", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        if let Some(namespaces) = c["linux"]["namespaces"].as_array_mut() {
            namespaces.push(json!({"type": "user"}));
        }
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    })?;
    let run = bundle.run("oci-userns")?;
    run.expect_code(0)?;
    run.expect("uidmap", "0 100000 65536")?;
    run.expect("gidmap", "0 100000 65536")?;
    run.expect("uid", "0")?;
    run.expect("owner", "65534")
}

/// linux.namespaces: a network namespace joined by path is that one; one
/// left out is the host's.
fn namespaces_by_path_and_absent(rootfs: &Path) -> Outcome {
    let mut holder = Command::new("unshare")
        .args(["--net", "sleep", "30"])
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let pid = holder.id();
    let link =
        |path: &str| fs::read_link(path).map(|l| l.display().to_string()).unwrap_or_default();
    let own = link("/proc/self/ns/net");
    // unshare(1) swaps namespaces before it execs sleep: wait for the new one.
    let mut theirs = String::new();
    for _ in 0..100 {
        theirs = link(&format!("/proc/{pid}/ns/net"));
        if !theirs.is_empty() && theirs != own {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let script = &["/bin/sh", "-c", "echo net $(readlink /proc/self/ns/net)"];
    let joined = Bundle::new("netpath", "toybox", rootfs, |c| {
        set_args(c, script);
        let path = format!("/proc/{pid}/ns/net");
        for ns in c["linux"]["namespaces"].as_array_mut().into_iter().flatten() {
            if ns["type"] == "network" {
                ns["path"] = json!(path);
            }
        }
    })?;
    let run = joined.run("oci-netpath");
    let _ = holder.kill();
    let _ = holder.wait();
    let run = run?;
    run.expect_code(0)?;
    run.expect("net", &theirs)?;
    let host = Bundle::new("nonet", "toybox", rootfs, |c| {
        set_args(c, script);
        if let Some(list) = c["linux"]["namespaces"].as_array_mut() {
            list.retain(|ns| ns["type"] != "network");
        }
    })?;
    let run = host.run("oci-nonet")?;
    run.expect_code(0)?;
    run.expect("net", &own)
}

/// What config.json may not say: each refused with exit 125, one line,
/// nothing made.
fn bad_configs_refused(rootfs: &Path) -> Outcome {
    let cases: [(&str, Edit, &str, i32); 7] = [
        ("version", |c| c["ociVersion"] = json!("2.0.0"), "ociVersion", 125),
        (
            "rlimit",
            |c| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}])
            },
            "below soft",
            125,
        ),
        (
            "capability",
            |c| c["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]),
            "unknown capability",
            125,
        ),
        // Smaller than toybox itself, which joins the group before clone.
        (
            "memory",
            |c| c["linux"]["resources"]["memory"] = json!({"limit": 10000}),
            "below 6 MiB",
            125,
        ),
        // runc's words, which podman turns into 127 and 126.
        ("command", |c| set_args(c, &["/no/such/command"]), "no such file or directory", 127),
        ("in-path", |c| set_args(c, &["no-such-command"]), "executable file not found", 127),
        ("not-executable", |c| set_args(c, &["/etc"]), "permission denied", 126),
    ];
    for (name, edit, needle, code) in cases {
        let bundle = Bundle::new(name, "toybox", rootfs, edit)?;
        let run = bundle.run(&format!("oci-bad-{name}"))?;
        run.expect_code(code)?;
        let lines: Vec<&str> = run.stderr.lines().collect();
        expect(
            lines.len() == 1 && lines[0].starts_with("toybox: ") && lines[0].contains(needle),
            || format!("{name}: want one line naming {needle:?}\n{}", run.describe()),
        )?;
    }
    let bundle = Bundle::new("ids", "toybox", rootfs, |_| {})?;
    for id in ["../up", "a/b", ".."] {
        let run = bundle.run(id)?;
        run.expect_code(125)?;
    }
    Ok(())
}

/// `runc spec`'s bundle, as S0 makes it, run by toybox.
fn runc_spec_bundle(rootfs: &Path) -> Outcome {
    let bundle = Bundle::new("runc", "runc", rootfs, |c| set_args(c, &["/probe", "identity"]))?;
    let run = bundle.run("oci-runc")?;
    run.expect_code(0)?;
    run.expect("hostname", "runc")?;
    run.expect("nofile", "1024 1024")?;
    run.expect("no_new_privs", "1")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

const TESTS: &[(&str, Test)] = &[
    ("spec_defaults_inside", spec_defaults_inside),
    ("edited_config_inside", edited_config_inside),
    ("seccomp_profile_and_exit_code", seccomp_profile_and_exit_code),
    ("pids_limit_from_config", pids_limit_from_config),
    ("cgroups_path_from_config", cgroups_path_from_config),
    ("user_namespace_maps", user_namespace_maps),
    ("namespaces_by_path_and_absent", namespaces_by_path_and_absent),
    ("bad_configs_refused", bad_configs_refused),
    ("runc_spec_bundle", runc_spec_bundle),
    ("same_answers_as_runc", same_answers_as_runc),
];

fn skip_reason(name: &str) -> Option<String> {
    if name.contains("runc") && !have("runc") {
        return Some("runc is not installed (apt-get install runc)".into());
    }
    None
}

fn main() {
    let selected = harness::selected(TESTS);
    let mut tally = harness::Tally::default();
    let rootfs = if nix_is_root() {
        rootfs().map_err(|e| tally.fail("lab setup (rootfs and probe)", &e)).ok()
    } else {
        None
    };
    for (name, test) in selected {
        let reason = if !nix_is_root() {
            Some("needs root (namespaces, cgroups)".to_string())
        } else {
            skip_reason(name)
        };
        match (reason, &rootfs) {
            (Some(reason), _) => tally.skip(name, &reason),
            (None, Some(rootfs)) => tally.run(name, || test(rootfs)),
            (None, None) => tally.skip(name, "no rootfs (lab setup failed)"),
        }
    }
    tally.finish("oci");
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
