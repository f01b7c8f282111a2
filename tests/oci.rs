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

/// linux.resources.cpu's cpus and mems, read back from inside: the kernel's
/// own account of where the process may run. In a group of its own under a
/// parent toybox makes (on v1 both start with no CPUs and take no task).
fn cpuset_from_config(rootfs: &Path) -> Outcome {
    let script = "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status | tr -d ':\t' \
                  | sed 's/list/list /'";
    let bundle = Bundle::new("cpuset", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["linux"]["cgroupsPath"] = json!("/toybox-oci-cpuset/oci-cpuset");
        c["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"});
    })?;
    let run = bundle.run("oci-cpuset");
    for controller in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = fs::remove_dir(controller.path().join("toybox-oci-cpuset"));
    }
    let _ = fs::remove_dir("/sys/fs/cgroup/toybox-oci-cpuset");
    let run = run?;
    run.expect_code(0)?;
    run.expect("Cpus_allowed_list", "0")?;
    run.expect("Mems_allowed_list", "0")
}

/// A user namespace in the config, uid and gid 0 inside being 100000 on the
/// host, 65536 of each.
fn add_user_namespace(c: &mut Value) {
    if let Some(namespaces) = c["linux"]["namespaces"].as_array_mut() {
        namespaces.push(json!({"type": "user"}));
    }
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
}

/// A user namespace with config.json's maps: uid 0 inside is 100000 on
/// the host, and the host's root, unmapped, owns the rootfs as nobody.
fn user_namespace_maps(rootfs: &Path) -> Outcome {
    let script = "echo uidmap $(cat /proc/self/uid_map); echo gidmap $(cat /proc/self/gid_map); \
                  echo uid $(id -u); echo owner $(stat -c %u /)";
    let bundle = Bundle::new("userns", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        add_user_namespace(c);
    })?;
    let run = bundle.run("oci-userns")?;
    run.expect_code(0)?;
    run.expect("uidmap", "0 100000 65536")?;
    run.expect("gidmap", "0 100000 65536")?;
    run.expect("uid", "0")?;
    run.expect("owner", "65534")
}

/// linux.devices and process.oomScoreAdj, read back from inside: each node
/// with its type, numbers, mode and owner (through the user namespace's map
/// when there is one), a listed character device the devices cgroup lets
/// the container write, and oom_score_adj (raised: lowering it needs
/// CAP_SYS_RESOURCE, which root lacks on some CI machines).
fn devices_and_oom_score(rootfs: &Path) -> Outcome {
    let script = "for n in /dev/oci-null /dev/oci-fifo /dev/sub/oci-loop; do \
                  stat -c 'node %n %F %t %T %a %u %g' $n; done; \
                  echo hi > /dev/oci-null && echo write ok; \
                  echo oom $(cat /proc/self/oom_score_adj)";
    for userns in [false, true] {
        let bundle = Bundle::new("devices", "toybox", rootfs, |c| {
            set_args(c, &["/bin/sh", "-c", script]);
            c["process"]["oomScoreAdj"] = json!(200);
            c["linux"]["devices"] = json!([
                {"path": "/dev/oci-null", "type": "c", "major": 1, "minor": 3,
                 "fileMode": 0o666, "uid": 1, "gid": 2},
                {"path": "/dev/oci-fifo", "type": "p", "fileMode": 0o644},
                {"path": "/dev/sub/oci-loop", "type": "b", "major": 7, "minor": 200,
                 "fileMode": 0o600, "uid": 3, "gid": 3},
            ]);
            if userns {
                add_user_namespace(c);
            }
        })?;
        let run = bundle.run("oci-devices")?;
        run.expect_code(0)?;
        let nodes: Vec<&str> = run.stdout.lines().filter_map(|l| l.strip_prefix("node ")).collect();
        let want = [
            "/dev/oci-null character special file 1 3 666 1 2",
            "/dev/oci-fifo fifo 0 0 644 0 0",
            "/dev/sub/oci-loop block special file 7 c8 600 3 3",
        ];
        expect(nodes == want, || {
            format!("user namespace {userns}: {nodes:?}\n{}", run.describe())
        })?;
        run.expect("write", "ok")?;
        run.expect("oom", "200")?;
    }
    Ok(())
}

/// Mounts as podman sends them: a file bind and a tmpfs whose mount points
/// lie under directories the rootfs does not have (made, as runc makes
/// them), `rprivate` among a tmpfs's options (a propagation type is a
/// mount(2) call of its own), and all of them listed in mountinfo in the
/// config's order.
fn mount_parents_and_propagation(rootfs: &Path) -> Outcome {
    let made = rootfs.join("oci-made");
    let _ = fs::remove_dir_all(&made);
    let script = "cat /oci-made/run/containerenv; \
                  echo order $(cut -d' ' -f5 /proc/self/mountinfo | \
                  grep -E '^/(proc|sys/fs/cgroup|oci-made/run/containerenv|oci-made/tmp/a)$'); \
                  grep ' /oci-made/tmp/a ' /proc/self/mountinfo | cut -d' ' -f6-";
    let marker = repo().join("target/oci-tests-containerenv");
    fs::write(&marker, "engine=toybox-test\n").map_err(|e| e.to_string())?;
    let bundle = Bundle::new("parents", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["root"]["readonly"] = json!(false);
        if let Some(mounts) = c["mounts"].as_array_mut() {
            mounts.push(json!({"destination": "/oci-made/run/containerenv", "type": "bind",
                               "source": marker, "options": ["bind", "rprivate", "ro"]}));
            mounts.push(json!({"destination": "/oci-made/tmp/a", "type": "tmpfs",
                               "source": "tmpfs", "options": ["rprivate", "nosuid", "size=64k"]}));
        }
    })?;
    let run = bundle.run("oci-parents");
    let _ = fs::remove_dir_all(&made);
    let _ = fs::remove_file(&marker);
    let run = run?;
    run.expect_code(0)?;
    expect(run.stdout.contains("engine=toybox-test"), || run.describe())?;
    // In mountinfo in the config's order, the bind too (runtime-tools'
    // `mounts` checks it): proc first, the cgroup mount last of spec's.
    let order = "/proc /sys/fs/cgroup /oci-made/run/containerenv /oci-made/tmp/a";
    run.expect("order", order)?;
    // Field 6 on: mount options, then optional fields: no `shared:` peer group.
    let line = run.stdout.lines().last().unwrap_or("");
    expect(line.starts_with("rw,nosuid") && !line.contains("shared:"), || {
        format!("the tmpfs: {line:?}\n{}", run.describe())
    })
}

/// linux.namespaces: network, uts (with the config's hostname), mount and
/// pid namespaces joined by path are those; one left out is the host's.
fn namespaces_by_path_and_absent(rootfs: &Path) -> Outcome {
    // unshare(1) forks sleep into the new PID namespace: sleep holds them all.
    let mut holder = Command::new("unshare")
        .args(["--net", "--uts", "--mount", "--pid", "--fork", "--kill-child", "sleep", "30"])
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let unshare = holder.id();
    let link =
        |path: &str| fs::read_link(path).map(|l| l.display().to_string()).unwrap_or_default();
    let own = link("/proc/self/ns/net");
    let kinds = [("net", "network"), ("uts", "uts"), ("mnt", "mount"), ("pid", "pid")];
    let mut theirs = Vec::new();
    for _ in 0..100 {
        let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"));
        if let Some(sleep) = children.unwrap_or_default().split_whitespace().next() {
            theirs = kinds.iter().map(|(ns, _)| link(&format!("/proc/{sleep}/ns/{ns}"))).collect();
            if theirs[0] != own && !theirs[0].is_empty() {
                theirs.push(format!("/proc/{sleep}/ns"));
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let Some(dir) = theirs.pop() else {
        let _ = holder.kill();
        return Err("unshare's sleep never showed up".into());
    };
    let script = "for ns in net uts mnt pid; do echo $ns $(readlink /proc/self/ns/$ns); done; \
                  echo hostname $(hostname)";
    let joined = Bundle::new("nspath", "toybox", rootfs, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["hostname"] = json!("joined-uts");
        for ns in c["linux"]["namespaces"].as_array_mut().into_iter().flatten() {
            if let Some((file, _)) = kinds.iter().find(|(_, kind)| ns["type"] == *kind) {
                ns["path"] = json!(format!("{dir}/{file}"));
            }
        }
    })?;
    let run = joined.run("oci-nspath");
    let _ = holder.kill();
    let _ = holder.wait();
    let run = run?;
    run.expect_code(0)?;
    for ((ns, _), want) in kinds.iter().zip(&theirs) {
        run.expect(ns, want)?;
    }
    run.expect("hostname", "joined-uts")?;
    let script = &["/bin/sh", "-c", "echo net $(readlink /proc/self/ns/net)"];
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
    let cases: [(&str, Edit, &str, i32); 8] = [
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
        // Without a tmpfs on /dev the node would land in the rootfs, on the host.
        (
            "devices",
            |c| {
                if let Some(mounts) = c["mounts"].as_array_mut() {
                    mounts.retain(|m| m["destination"] != "/dev");
                }
                c["linux"]["devices"] = json!([{"path": "/dev/oci-bad", "type": "c",
                                                "major": 1, "minor": 3}]);
            },
            "needs a tmpfs mounted on /dev",
            125,
        ),
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

// ---------------------------------------------------------------------------
// The lifecycle: create, start, state, kill, delete, each a separate call,
// run by toybox and, side by side, by runc and crun on the same bundles.
// ---------------------------------------------------------------------------

type LifeTest = fn(&Path, &Runtime) -> Outcome;
type AnyTest = Box<dyn Fn(&Path) -> Outcome>;

/// A runtime and the --root it keeps its state in for these tests.
struct Runtime {
    name: &'static str,
    root: PathBuf,
}

/// Where each lifecycle container's groups go (linux.cgroupsPath), the
/// same for the three runtimes, so that leftovers are found alike.
const LIFE_CGROUP: &str = "toybox-oci-life";

impl Runtime {
    fn new(name: &'static str) -> Runtime {
        Runtime { name, root: repo().join(format!("target/oci-tests/root-{name}")) }
    }

    fn command(&self, args: &[&str]) -> Command {
        let binary = if self.name == "toybox" { TOYBOX } else { self.name };
        let mut command = Command::new(binary);
        // crun 1.8 refuses a hybrid host whose cgroup2 has controllers: in
        // a mount namespace of its own with that file masked it does its
        // v1 work (as bench/run.sh runs it).
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers";
        let hybrid = !fs::read_to_string(controllers).unwrap_or_default().trim().is_empty();
        if self.name == "crun" && hybrid {
            let empty = repo().join("target/oci-tests/empty");
            let _ = fs::write(&empty, "");
            command = Command::new("unshare");
            command.args(["-m", "--propagation", "private", "sh", "-c"]);
            command.arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"");
            command.arg("sh").arg(empty).args([controllers, binary]);
        }
        command.arg("--root").arg(&self.root).args(args);
        command.stdin(std::process::Stdio::null());
        command
    }

    /// A call that starts nothing that lives on (start, state, kill, delete).
    fn call(&self, args: &[&str]) -> Result<Run, String> {
        let mut command = self.command(args);
        command.output().map(Run::from).map_err(|e| format!("{} {args:?}: {e}", self.name))
    }

    /// `create`, its stdout and stderr in files (a pipe would stay open in
    /// the container, as the spec wants: stdio goes to it untouched).
    fn create(&self, bundle: &Path, id: &str, extra: &[&str]) -> Result<Run, String> {
        self.create_with(bundle, id, extra, |_| {})
    }

    /// `create`, `prepare` given the command first (descriptors to pass).
    fn create_with(
        &self,
        bundle: &Path,
        id: &str,
        extra: &[&str],
        prepare: impl FnOnce(&mut Command),
    ) -> Result<Run, String> {
        let (out, err) = (bundle.join("out.txt"), bundle.join("err.txt"));
        let file = |path: &Path| fs::File::create(path).map_err(|e| e.to_string());
        let pid_file = bundle.join("pid");
        let mut args = vec!["create", "--bundle"];
        let dir = bundle.display().to_string();
        let pid = pid_file.display().to_string();
        args.extend([dir.as_str(), "--pid-file", pid.as_str()]);
        args.extend(extra);
        args.push(id);
        let started = std::time::Instant::now();
        let mut command = self.command(&args);
        prepare(&mut command);
        let status = command
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .status()
            .map_err(|e| format!("{} create: {e}", self.name))?;
        let elapsed = started.elapsed();
        expect(elapsed.as_secs() < 2, || format!("create took {elapsed:?}"))?;
        Ok(Run {
            code: status.code(),
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
        })
    }

    fn state(&self, id: &str) -> Result<Value, String> {
        let run = self.call(&["state", id])?;
        run.expect_code(0)?;
        serde_json::from_str(&run.stdout).map_err(|e| format!("state: {e}\n{}", run.describe()))
    }

    /// Poll `state` until it says `want`, for up to 2 s.
    fn wait_for(&self, id: &str, want: &str) -> Outcome {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.state(id)?;
            if last["status"] == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(format!("{}: {id} is not {want} after 2 s: {last}", self.name))
    }

    /// What the container `id` (first process `pid`) could leave: its state
    /// directory, its groups, its process, mounts of the test bundles.
    fn left_behind(&self, id: &str, pid: Option<i32>) -> Vec<String> {
        let mut found: Vec<String> = snapshot(id).into_iter().collect();
        if self.root.join(id).exists() {
            found.push(self.root.join(id).display().to_string());
        }
        for controller in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let group = controller.path().join(LIFE_CGROUP).join(id);
            if group.exists() {
                found.push(group.display().to_string());
            }
        }
        let alive = |pid: i32| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            state.is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
        };
        if let Some(pid) = pid.filter(|&pid| alive(pid)) {
            found.push(format!("process {pid}"));
        }
        found
    }
}

/// A bundle for the lifecycle tests: `toybox spec`'s config, the command
/// `args`, the host directory BUNDLE/out bound at /out (what the command
/// did shows there), and the groups under LIFE_CGROUP.
fn life_bundle(
    name: &str,
    rt: &Runtime,
    rootfs: &Path,
    id: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<Bundle, String> {
    let bundle = Bundle::new(&format!("{name}-{}", rt.name), "toybox", rootfs, |c| {
        let out = repo().join(format!("target/oci-tests/{name}-{}/out", rt.name));
        if let Some(mounts) = c["mounts"].as_array_mut() {
            mounts.push(json!({"destination": "/out", "type": "bind", "source": out,
                               "options": ["rbind", "rw"]}));
        }
        c["linux"]["cgroupsPath"] = json!(format!("/{LIFE_CGROUP}/{id}"));
        edit(c);
    })?;
    fs::create_dir_all(bundle.dir.join("out")).map_err(|e| e.to_string())?;
    Ok(bundle)
}

/// Runs `test`, then deletes `ids` whatever happened, and fails on what
/// they left behind.
fn with_cleanup(
    rt: &Runtime,
    ids: &[&str],
    test: impl FnOnce(&mut Vec<i32>) -> Outcome,
) -> Outcome {
    let mut pids = Vec::new();
    let result = test(&mut pids);
    let mut left = Vec::new();
    for id in ids {
        let _ = rt.call(&["delete", "--force", id]);
        let pid = pids.first().copied();
        left.extend(rt.left_behind(id, pid));
    }
    for controller in fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = fs::remove_dir(controller.path().join(LIFE_CGROUP));
    }
    result?;
    expect(left.is_empty(), || format!("{}: left behind: {left:?}", rt.name))
}

fn pid_of(bundle: &Bundle) -> Result<i32, String> {
    let text = fs::read_to_string(bundle.dir.join("pid")).map_err(|e| format!("pid file: {e}"))?;
    text.trim().parse().map_err(|e| format!("pid file {text:?}: {e}"))
}

/// Checks 1, 2, 3 and 5: create leaves the process waiting (the command
/// has not run), state says so with the pid file's pid; start runs it, and
/// with no subreaper state sees it stopped; stdout and stderr got exactly
/// the command's output; a stopped container cannot be started or killed;
/// delete removes it, and then it does not exist.
fn lifecycle_create_start_delete(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-basic-{}", rt.name);
    let script = "touch /out/ran; echo hello; echo oops >&2";
    let bundle = life_bundle("basic", rt, rootfs, &id, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["annotations"] = json!({"org.example.test": "yes"});
    })?;
    with_cleanup(rt, &[&id], |pids| {
        let created = rt.create(&bundle.dir, &id, &[])?;
        created.expect_code(0)?;
        let pid = pid_of(&bundle)?;
        pids.push(pid);
        let state = rt.state(&id)?;
        let bundle_path = fs::canonicalize(&bundle.dir).map_err(|e| e.to_string())?;
        let version = state["ociVersion"].as_str().unwrap_or("");
        expect(
            version.starts_with("1.")
                && state["id"] == id.as_str()
                && state["status"] == "created"
                && state["pid"] == pid
                && state["bundle"] == bundle_path.display().to_string().as_str()
                && state["annotations"]["org.example.test"] == "yes",
            || format!("state after create: {state}"),
        )?;
        expect(Path::new(&format!("/proc/{pid}")).exists(), || format!("no /proc/{pid}"))?;
        let ran = bundle.dir.join("out/ran");
        expect(!ran.exists(), || "the command ran before start".into())?;
        rt.call(&["start", &id])?.expect_code(0)?;
        rt.wait_for(&id, "stopped")?;
        expect(ran.exists(), || "the command did not run after start".into())?;
        let (out, err) = (bundle.dir.join("out.txt"), bundle.dir.join("err.txt"));
        let out = fs::read_to_string(out).unwrap_or_default();
        let err = fs::read_to_string(err).unwrap_or_default();
        expect(out == "hello\n" && err == "oops\n", || format!("stdout {out:?}, stderr {err:?}"))?;
        for args in [["kill", &id, "KILL"].as_slice(), &["start", &id]] {
            let run = rt.call(args)?;
            expect(run.code != Some(0), || format!("{args:?} on a stopped container worked"))?;
        }
        rt.call(&["delete", &id])?.expect_code(0)?;
        // toybox and runc say "does not exist", crun "No such file": podman
        // 4.3 matches either (UpdateContainerStatus).
        let run = rt.call(&["state", &id])?;
        let gone = run.stderr.contains("does not exist")
            || (rt.name != "toybox" && run.stderr.contains("No such file"));
        expect(run.code != Some(0) && gone, || format!("state after delete:\n{}", run.describe()))?;
        rt.call(&["delete", "--force", &id])?.expect_code(0)
    })
}

/// Check 6: kill by name, SIG-name and number (and the default, TERM)
/// reaches a command that traps TERM.
fn lifecycle_kill_signals(rootfs: &Path, rt: &Runtime) -> Outcome {
    let script =
        "trap 'touch /out/got; exit 0' TERM; touch /out/ready; while :; do sleep 0.1; done";
    for (at, signal) in [None, Some("TERM"), Some("SIGTERM"), Some("15")].into_iter().enumerate() {
        let id = format!("life-kill{at}-{}", rt.name);
        let bundle =
            life_bundle("kill", rt, rootfs, &id, |c| set_args(c, &["/bin/sh", "-c", script]))?;
        with_cleanup(rt, &[&id], |pids| {
            rt.create(&bundle.dir, &id, &[])?.expect_code(0)?;
            pids.push(pid_of(&bundle)?);
            rt.call(&["start", &id])?.expect_code(0)?;
            rt.wait_for(&id, "running")?;
            for _ in 0..200 {
                if bundle.dir.join("out/ready").exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let mut args = vec!["kill", id.as_str()];
            args.extend(signal);
            rt.call(&args)?.expect_code(0)?;
            rt.wait_for(&id, "stopped")?;
            expect(bundle.dir.join("out/got").exists(), || format!("{signal:?} not trapped"))?;
            rt.call(&["delete", &id])?.expect_code(0)
        })?;
    }
    Ok(())
}

/// Check 7: a running container is not deleted without --force; with it,
/// it is killed and its groups are gone. A created one: toybox refuses it
/// without --force too, as the spec says (runc and crun delete it).
fn lifecycle_delete_force(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-delete-{}", rt.name);
    let bundle = life_bundle("delete", rt, rootfs, &id, |c| set_args(c, &["/bin/sleep", "100"]))?;
    with_cleanup(rt, &[&id], |pids| {
        rt.create(&bundle.dir, &id, &[])?.expect_code(0)?;
        pids.push(pid_of(&bundle)?);
        if rt.name == "toybox" {
            let run = rt.call(&["delete", &id])?;
            expect(run.code != Some(0) && run.stderr.contains("created"), || {
                format!("delete of a created container:\n{}", run.describe())
            })?;
        }
        rt.call(&["start", &id])?.expect_code(0)?;
        rt.wait_for(&id, "running")?;
        let run = rt.call(&["delete", &id])?;
        expect(run.code != Some(0), || format!("delete of a running one:\n{}", run.describe()))?;
        rt.call(&["delete", "--force", &id])?.expect_code(0)?;
        let left = rt.left_behind(&id, pids.first().copied());
        expect(left.is_empty(), || format!("after delete --force: {left:?}"))
    })
}

/// Check 4: an id that exists is refused and the first container is left
/// as it was; ids with / or .. are refused, and nothing is made.
fn lifecycle_ids(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-ids-{}", rt.name);
    let bundle = life_bundle("ids", rt, rootfs, &id, |c| set_args(c, &["/bin/true"]))?;
    with_cleanup(rt, &[&id], |pids| {
        rt.create(&bundle.dir, &id, &[])?.expect_code(0)?;
        let pid = pid_of(&bundle)?;
        pids.push(pid);
        let again = rt.create(&bundle.dir, &id, &[])?;
        expect(again.code != Some(0), || format!("a second create worked\n{}", again.describe()))?;
        let state = rt.state(&id)?;
        expect(state["status"] == "created" && state["pid"] == pid, || {
            format!("the first container changed: {state}")
        })?;
        for bad in ["../up", "a/b", ".."] {
            let run = rt.create(&bundle.dir, bad, &[])?;
            expect(run.code != Some(0), || format!("id {bad:?} taken\n{}", run.describe()))?;
        }
        let made: Vec<String> = fs::read_dir(&rt.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| *name != id)
            .collect();
        expect(made.is_empty(), || format!("{} holds {made:?}", rt.root.display()))
    })
}

/// Check 8: a missing command, and one that cannot run, are found by
/// create, in words podman turns into 127 and 126 (getOCIRuntimeError:
/// crun says "Operation not permitted" where runc and toybox say
/// "permission denied"); nothing is left.
fn lifecycle_missing_command(rootfs: &Path, rt: &Runtime) -> Outcome {
    let cant = match rt.name {
        "crun" => &["permission denied", "operation not permitted"][..],
        _ => &["permission denied"][..],
    };
    let cases = [
        ("/nope", &["no such file or directory", "executable file not found"][..]),
        ("/etc", cant),
    ];
    for (at, (command, words)) in cases.into_iter().enumerate() {
        let id = format!("life-missing{at}-{}", rt.name);
        let bundle = life_bundle("missing", rt, rootfs, &id, |c| set_args(c, &[command]))?;
        with_cleanup(rt, &[&id], |_| {
            let run = rt.create(&bundle.dir, &id, &[])?;
            let stderr = run.stderr.to_lowercase();
            expect(run.code != Some(0) && words.iter().any(|w| stderr.contains(w)), || {
                format!("{command}: want one of {words:?}\n{}", run.describe())
            })
        })?;
    }
    Ok(())
}

/// RFC 3339: 2026-12-01T05:02:01[.123]Z or with an offset, +08:00.
fn is_rfc3339(time: &str) -> bool {
    let b = time.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let fixed = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    let mut rest = time.get(19..).unwrap_or("");
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[n..];
        if n == 0 {
            return false;
        }
    }
    let zone = rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':');
    fixed && zone
}

/// Check 9: --log with --log-format json: each line one JSON object with
/// level, msg and an RFC 3339 time; the last error says what failed.
fn lifecycle_json_log(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-log-{}", rt.name);
    let bundle = life_bundle("log", rt, rootfs, &id, |c| set_args(c, &["/nope"]))?;
    let log = bundle.dir.join("log.json");
    let log_arg = log.display().to_string();
    with_cleanup(rt, &[&id], |_| {
        let mut args =
            vec!["--log", log_arg.as_str(), "--log-format", "json", "create", "--bundle"];
        let dir = bundle.dir.display().to_string();
        args.extend([dir.as_str(), id.as_str()]);
        let run = rt.call(&args)?;
        expect(run.code != Some(0), || format!("create of /nope worked\n{}", run.describe()))?;
        let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut last_error = String::new();
        for line in text.lines() {
            let entry: Value =
                serde_json::from_str(line).map_err(|e| format!("log line {line:?}: {e}"))?;
            let (level, msg) = (entry["level"].as_str(), entry["msg"].as_str());
            let time = entry["time"].as_str().unwrap_or("");
            expect(level.is_some() && msg.is_some() && is_rfc3339(time), || {
                format!("log line {line:?}")
            })?;
            if level == Some("error") {
                last_error = msg.unwrap_or("").to_lowercase();
            }
        }
        expect(last_error.contains("/nope") && last_error.contains("no such file"), || {
            format!("the last error does not say why: {text}")
        })
    })
}

/// Check: runc's rules for terminals: process.terminal needs
/// --console-socket, and --console-socket needs process.terminal.
fn lifecycle_terminal_rules(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-ttyrule-{}", rt.name);
    let bundle = life_bundle("ttyrule", rt, rootfs, &id, |c| {
        set_args(c, &["/bin/true"]);
        c["process"]["terminal"] = json!(true);
    })?;
    with_cleanup(rt, &[&id], |_| {
        let run = rt.create(&bundle.dir, &id, &[])?;
        expect(run.code != Some(0), || format!("terminal without a socket\n{}", run.describe()))
    })?;
    let plain = life_bundle("ttyrule2", rt, rootfs, &id, |c| set_args(c, &["/bin/true"]))?;
    let socket = plain.dir.join("console.sock").display().to_string();
    with_cleanup(rt, &[&id], |_| {
        let run = rt.create(&plain.dir, &id, &["--console-socket", &socket])?;
        expect(run.code != Some(0), || format!("a socket without terminal\n{}", run.describe()))
    })
}

/// What the container writes to the pty until EIO: no process holds its
/// other end any more.
fn read_until_closed(pty: &mut fs::File) -> String {
    use std::io::Read;
    let mut output = Vec::new();
    let mut buffer = [0u8; 1024];
    while let Ok(n) = pty.read(&mut buffer) {
        if n == 0 {
            break;
        }
        output.extend(&buffer[..n]);
    }
    String::from_utf8_lossy(&output).into_owned()
}

/// The pty master as the console socket receives it: one message, its
/// data (runc: the pty's path) and one descriptor.
fn receive_pty(listener: &std::os::unix::net::UnixListener) -> Result<(String, fs::File), String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut data = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let message = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
        .map_err(|e| format!("recvmsg: {e}"))?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            fds.extend(received);
        }
    }
    let bytes = message.bytes;
    let name = String::from_utf8_lossy(&data[..bytes]).into_owned();
    let [fd] = fds[..] else { return Err(format!("{} descriptors, want one", fds.len())) };
    // SAFETY: SCM_RIGHTS just installed it; nothing else owns it.
    Ok((name, unsafe { fs::File::from_raw_fd(fd) }))
}

/// --console-socket with process.terminal: the pty arrives before create
/// exits, and through it the test talks to the container: `tty` names a
/// pty of the container's, and a line typed is read.
fn lifecycle_console_socket(rootfs: &Path, rt: &Runtime) -> Outcome {
    use std::io::Write;
    let id = format!("life-console-{}", rt.name);
    let script = "tty; read line; echo \"got $line\"";
    let bundle = life_bundle("console", rt, rootfs, &id, |c| {
        set_args(c, &["/bin/sh", "-c", script]);
        c["process"]["terminal"] = json!(true);
    })?;
    let path = bundle.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| e.to_string())?;
    let receiver = std::thread::spawn(move || receive_pty(&listener));
    let socket = path.display().to_string();
    with_cleanup(rt, &[&id], |pids| {
        let created = rt.create(&bundle.dir, &id, &["--console-socket", &socket]);
        let received = receiver.join().map_err(|_| "the listener panicked".to_string());
        created?.expect_code(0)?;
        pids.push(pid_of(&bundle)?);
        let (name, mut pty) = received??;
        if rt.name == "toybox" {
            expect(name.starts_with("/dev/pts/"), || format!("the message's data: {name:?}"))?;
        }
        rt.call(&["start", &id])?.expect_code(0)?;
        pty.write_all(b"hello\n").map_err(|e| e.to_string())?;
        let output = read_until_closed(&mut pty);
        expect(output.contains("/dev/pts/0") && output.contains("got hello"), || {
            format!("through the pty: {output:?}")
        })?;
        rt.wait_for(&id, "stopped")?;
        rt.call(&["delete", &id])?.expect_code(0)
    })
}

/// Under a subreaper (conmon is one), the created process becomes its
/// child when create exits, and a zombie when it ends, until reaped: state
/// must say stopped while /proc still shows the pid (a zombie's, state Z).
/// A python3 subreaper runs create and start, and reaps only at the end.
fn lifecycle_stopped_zombie_under_subreaper(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-zombie-{}", rt.name);
    let bundle = life_bundle("zombie", rt, rootfs, &id, |c| set_args(c, &["/bin/true"]))?;
    let create =
        rt.command(&["create", "--bundle", &bundle.dir.display().to_string(), id.as_str()]);
    let start = rt.command(&["start", id.as_str()]);
    let state = rt.command(&["state", id.as_str()]);
    let argv = |c: &Command| {
        let mut all = vec![c.get_program().to_string_lossy().into_owned()];
        all.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        json!(all).to_string()
    };
    // PR_SET_CHILD_SUBREAPER is 36 (prctl(2)).
    let script = format!(
        r#"
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
subprocess.run({create}, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
subprocess.run({start}, check=True)
status, proc = "?", "?"
for _ in range(200):
    state = json.loads(subprocess.run({state}, check=True, capture_output=True).stdout)
    status = state["status"]
    if status == "stopped":
        break
    time.sleep(0.01)
for pid in os.listdir("/proc"):
    try:
        stat = open(f"/proc/{{pid}}/stat").read()
    except OSError:
        continue
    if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
        proc = stat.rsplit(")", 1)[1].split()[0]
print("status", status)
print("child", proc)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"#,
        create = argv(&create),
        start = argv(&start),
        state = argv(&state),
    );
    with_cleanup(rt, &[&id], |_| {
        let output = Command::new("python3").arg("-c").arg(&script).output();
        let run = Run::from(output.map_err(|e| format!("python3: {e}"))?);
        run.expect_code(0)?;
        run.expect("child", "Z")?;
        run.expect("status", "stopped")?;
        rt.call(&["delete", &id])?.expect_code(0)
    })
}

// ---------------------------------------------------------------------------
// exec --process: a process into a running container, as conmon runs
// `podman exec`, by toybox and, side by side, by runc and crun.
// ---------------------------------------------------------------------------

/// A running container for the exec tests: `sleep 100` as its first
/// process, and a seccomp profile that refuses getcwd(2) with EPERM, which
/// the exec'd process must meet too (process.json carries no profile).
fn exec_container(name: &str, rt: &Runtime, rootfs: &Path, id: &str) -> Result<Bundle, String> {
    life_bundle(name, rt, rootfs, id, |c| {
        set_args(c, &["/bin/sleep", "100"]);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
        });
    })
}

/// process.json as podman writes it: the container's `process`, edited,
/// in BUNDLE/NAME.
fn process_json(
    bundle: &Bundle,
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<String, String> {
    let text = fs::read_to_string(bundle.dir.join("config.json")).map_err(|e| e.to_string())?;
    let config: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut process = config["process"].clone();
    edit(&mut process);
    let path = bundle.dir.join(name);
    fs::write(&path, process.to_string()).map_err(|e| e.to_string())?;
    Ok(path.display().to_string())
}

/// `exec` with its stdout and stderr in files: a detached process keeps
/// whatever it was given, and a pipe would stay open as long as it lives.
fn exec_call(rt: &Runtime, bundle: &Bundle, args: &[&str]) -> Result<Run, String> {
    let (out, err) = (bundle.dir.join("exec-out.txt"), bundle.dir.join("exec-err.txt"));
    let file = |path: &Path| fs::File::create(path).map_err(|e| e.to_string());
    let mut all = vec!["exec"];
    all.extend(args);
    let status = rt
        .command(&all)
        .stdout(file(&out)?)
        .stderr(file(&err)?)
        .status()
        .map_err(|e| format!("{} exec: {e}", rt.name))?;
    Ok(Run {
        code: status.code(),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    })
}

/// create and start `bundle`'s container, its first pid into `pids`.
fn start_container(rt: &Runtime, bundle: &Bundle, id: &str, pids: &mut Vec<i32>) -> Outcome {
    rt.create(&bundle.dir, id, &[])?.expect_code(0)?;
    pids.push(pid_of(bundle)?);
    rt.call(&["start", id])?.expect_code(0)?;
    rt.wait_for(id, "running")
}

/// Alive: in /proc and neither a zombie nor dead.
fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    state.is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

/// What the exec'd process sees, read back from inside: the container's
/// hostname and PID 1, process.json's uid, gid, groups, umask, cwd and
/// environment (exactly), its ambient capability, no_new_privs, the
/// container's seccomp profile (getcwd refused, so busybox's pwd fails),
/// even with the bundle's config.json edited since create, and its exit
/// status passed through.
fn exec_process_inside(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("exec-inside-{}", rt.name);
    let bundle = exec_container("exec-inside", rt, rootfs, &id)?;
    let script = "echo hostname $(hostname); echo init $(tr '\\0' ' ' < /proc/1/cmdline); \
                  echo id $(id -u) $(id -g) $(id -G); echo umask $(umask); \
                  echo cwd $(readlink /proc/$$/cwd); echo env $(env | sort | tr '\\n' ' '); \
                  grep -E '^(CapAmb|NoNewPrivs):' /proc/self/status | sed 's/:\\s*/ /'; \
                  /bin/pwd >/dev/null 2>&1; echo pwd $?; exit 7";
    let process = process_json(&bundle, "process.json", |p| {
        p["args"] = json!(["/bin/sh", "-c", script]);
        p["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz"]);
        p["cwd"] = json!("/etc");
        p["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23});
        let kill = json!(["CAP_KILL"]);
        p["capabilities"] = json!({"bounding": kill, "effective": kill, "permitted": kill,
                                   "inheritable": kill, "ambient": kill});
        p["noNewPrivileges"] = json!(true);
    })?;
    with_cleanup(rt, &[&id], |pids| {
        start_container(rt, &bundle, &id, pids)?;
        // The profile is the container's as created: editing the bundle
        // now changes nothing (runtime-tools' config_updates_without_affect).
        let path = bundle.dir.join("config.json");
        let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut config: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        config["linux"].as_object_mut().map(|linux| linux.remove("seccomp"));
        fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
        let run = exec_call(rt, &bundle, &["--process", &process, &id])?;
        run.expect_code(7)?;
        run.expect("hostname", "toybox")?;
        run.expect("init", "/bin/sleep 100")?;
        run.expect("id", "1000 1001 1001 10 20")?; // id -G: the gid first
        // runc 1.1.5 leaves exec's umask at 0022, and adds HOME from the
        // rootfs' /etc/passwd when process.json has none (seen here).
        if rt.name == "toybox" {
            run.expect("umask", "0027")?;
        }
        run.expect("cwd", "/etc")?;
        // sh adds PWD (empty: getcwd is refused) and SHLVL; nothing else.
        let env = run.value("env").unwrap_or("").split(' ');
        let env: Vec<&str> =
            env.filter(|kv| rt.name == "toybox" || !kv.starts_with("HOME=")).collect();
        let want = "FOO=bar baz PATH=/bin:/usr/bin PWD= SHLVL=1";
        expect(env.join(" ").trim_end() == want, || {
            format!("env: want {want:?}\n{}", run.describe())
        })?;
        run.expect("CapAmb", &format!("{:016x}", 1u64 << 5))?;
        run.expect("NoNewPrivs", "1")?;
        run.expect("pwd", "1")
    })
}

/// --detach --pid-file: the runtime exits 0 at once; the pid file names a
/// live process that outlives it, in the container's PID namespace and
/// its groups; delete --force takes it down with the container.
fn exec_detach_pid_file(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("exec-detach-{}", rt.name);
    let bundle = exec_container("exec-detach", rt, rootfs, &id)?;
    let process = process_json(&bundle, "process.json", |p| {
        p["args"] = json!(["/bin/sleep", "100"]);
    })?;
    let pid_file = bundle.dir.join("exec.pid");
    let pid_arg = pid_file.display().to_string();
    with_cleanup(rt, &[&id], |pids| {
        start_container(rt, &bundle, &id, pids)?;
        let started = std::time::Instant::now();
        let args = ["--detach", "--pid-file", &pid_arg, "--process", &process, &id];
        exec_call(rt, &bundle, &args)?.expect_code(0)?;
        let elapsed = started.elapsed();
        expect(elapsed.as_secs() < 2, || format!("exec --detach took {elapsed:?}"))?;
        let text = fs::read_to_string(&pid_file).map_err(|e| format!("pid file: {e}"))?;
        let pid: i32 = text.trim().parse().map_err(|e| format!("pid file {text:?}: {e}"))?;
        // A process that dies with the runtime (PR_SET_PDEATHSIG) is gone by now.
        std::thread::sleep(std::time::Duration::from_millis(200));
        expect(alive(pid), || format!("exec'd pid {pid} is not alive after exec exited"))?;
        let read = |what: String| fs::read_to_string(&what).map_err(|e| format!("{what}: {e}"));
        let groups = read(format!("/proc/{pid}/cgroup"))?;
        let init_groups = read(format!("/proc/{}/cgroup", pids[0]))?;
        expect(groups == init_groups && groups.contains(LIFE_CGROUP), || {
            format!("exec'd groups:\n{groups}container's:\n{init_groups}")
        })?;
        let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        expect(ns(pid).is_some() && ns(pid) == ns(pids[0]), || "another PID namespace".into())?;
        rt.call(&["delete", "--force", &id])?.expect_code(0)?;
        for _ in 0..200 {
            if !alive(pid) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(format!("exec'd pid {pid} outlived delete --force"))
    })
}

/// process.terminal with --console-socket: the pty master arrives on the
/// socket (lifecycle's receive_pty), and through it the test talks to the
/// exec'd shell, whose terminal is one of the container's ptys.
fn exec_console_socket(rootfs: &Path, rt: &Runtime) -> Outcome {
    use std::io::Write;
    let id = format!("exec-console-{}", rt.name);
    let bundle = exec_container("exec-console", rt, rootfs, &id)?;
    let script = "tty; read line; echo \"got $line\"";
    let process = process_json(&bundle, "process.json", |p| {
        p["args"] = json!(["/bin/sh", "-c", script]);
        p["terminal"] = json!(true);
    })?;
    let path = bundle.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| e.to_string())?;
    let socket = path.display().to_string();
    with_cleanup(rt, &[&id], |pids| {
        start_container(rt, &bundle, &id, pids)?;
        let receiver = std::thread::spawn(move || receive_pty(&listener));
        // conmon 2.1.6's words: --tty as well as the socket.
        let args = ["--detach", "--tty", "--console-socket", &socket, "--process", &process, &id];
        let run = exec_call(rt, &bundle, &args);
        let received = receiver.join().map_err(|_| "the listener panicked".to_string());
        run?.expect_code(0)?;
        let (name, mut pty) = received??;
        if rt.name == "toybox" {
            expect(name.starts_with("/dev/pts/"), || format!("the message's data: {name:?}"))?;
        }
        pty.write_all(b"hello\n").map_err(|e| e.to_string())?;
        let output = read_until_closed(&mut pty);
        expect(output.contains("/dev/pts/") && output.contains("got hello"), || {
            format!("through the pty: {output:?}")
        })
    })
}

/// Refusals: an unknown id (podman matches "does not exist"; crun says
/// "No such file"), a missing and a non-executable command in runc's words
/// with nothing started, a terminal with --detach and no socket, and a
/// stopped container. toybox also refuses exec with neither -c nor
/// --process, and with both.
fn exec_refused(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("exec-refused-{}", rt.name);
    let bundle = exec_container("exec-refused", rt, rootfs, &id)?;
    let plain = process_json(&bundle, "plain.json", |p| p["args"] = json!(["/bin/true"]))?;
    let run = exec_call(rt, &bundle, &["--process", &plain, "exec-no-such-id"])?;
    let gone = run.stderr.contains("does not exist")
        || (rt.name == "crun" && run.stderr.contains("No such file"));
    expect(run.code != Some(0) && gone, || format!("unknown id:\n{}", run.describe()))?;
    with_cleanup(rt, &[&id], |pids| {
        start_container(rt, &bundle, &id, pids)?;
        let procs = || {
            let group = format!("/sys/fs/cgroup/devices/{LIFE_CGROUP}/{id}/cgroup.procs");
            fs::read_to_string(group).unwrap_or_default()
        };
        let before = procs();
        let cases = [
            ("/nope", &["no such file or directory", "executable file not found"][..]),
            ("/etc", &["permission denied", "operation not permitted"][..]),
        ];
        for (command, words) in cases {
            let json = process_json(&bundle, "missing.json", |p| p["args"] = json!([command]))?;
            let run = exec_call(rt, &bundle, &["--detach", "--process", &json, &id])?;
            let stderr = run.stderr.to_lowercase();
            expect(run.code != Some(0) && words.iter().any(|w| stderr.contains(w)), || {
                format!("{command}: want one of {words:?}\n{}", run.describe())
            })?;
            expect(procs() == before, || format!("{command}: the group holds {}", procs()))?;
        }
        let tty = process_json(&bundle, "tty.json", |p| {
            p["args"] = json!(["/bin/true"]);
            p["terminal"] = json!(true);
        })?;
        let run = exec_call(rt, &bundle, &["--detach", "--process", &tty, &id])?;
        expect(run.code != Some(0), || format!("terminal without a socket\n{}", run.describe()))?;
        if rt.name == "toybox" {
            let run = exec_call(rt, &bundle, &[&id])?;
            expect(run.stderr.contains("-c CMD") && run.code == Some(125), || {
                format!("neither -c nor --process\n{}", run.describe())
            })?;
            let run = exec_call(rt, &bundle, &["--process", &plain, "-u", "0", &id])?;
            expect(run.stderr.contains("not both") && run.code == Some(125), || {
                format!("both -u and --process\n{}", run.describe())
            })?;
        }
        rt.call(&["kill", &id, "KILL"])?.expect_code(0)?;
        rt.wait_for(&id, "stopped")?;
        let run = exec_call(rt, &bundle, &["--process", &plain, &id])?;
        expect(run.code != Some(0), || format!("exec into a stopped one\n{}", run.describe()))?;
        rt.call(&["delete", &id])?.expect_code(0)
    })
}

/// --preserve-fds 1: descriptor 3 of create's caller reaches the command
/// (the spec's create passes 3..3+N on, as it passes stdio).
fn lifecycle_preserve_fds(rootfs: &Path, rt: &Runtime) -> Outcome {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let id = format!("life-fds-{}", rt.name);
    let bundle = life_bundle("fds", rt, rootfs, &id, |c| {
        set_args(c, &["/bin/sh", "-c", "echo through fd 3 >&3"]);
    })?;
    let path = bundle.dir.join("fd3.txt");
    let fd3 = fs::File::create(&path).map_err(|e| e.to_string())?;
    with_cleanup(rt, &[&id], |pids| {
        let raw = fd3.as_raw_fd();
        let pass_fd3 = |command: &mut Command| {
            // SAFETY: fcntl and dup2 in the forked child, before exec. A
            // dup2 onto itself would keep close-on-exec: clear it instead.
            unsafe {
                command.pre_exec(move || {
                    let rc = match raw {
                        3 => libc::fcntl(3, libc::F_SETFD, 0),
                        _ => libc::dup2(raw, 3),
                    };
                    match rc {
                        -1 => Err(std::io::Error::last_os_error()),
                        _ => Ok(()),
                    }
                });
            }
        };
        rt.create_with(&bundle.dir, &id, &["--preserve-fds", "1"], pass_fd3)?.expect_code(0)?;
        pids.push(pid_of(&bundle)?);
        rt.call(&["start", &id])?.expect_code(0)?;
        rt.wait_for(&id, "stopped")?;
        let text = fs::read_to_string(&path).unwrap_or_default();
        expect(text == "through fd 3\n", || format!("fd3.txt: {text:?}"))?;
        rt.call(&["delete", &id])?.expect_code(0)
    })
}

/// `create` killed (SIGKILL) at moments spread over its run: whatever it
/// had made, its process must not live on unrecorded (blocked on the fifo
/// with nothing to start or delete it), and one `delete --force` must leave
/// nothing. A create that got as far as recording the container made one:
/// delete cleans it as usual.
fn create_killed_half_way(rootfs: &Path) -> Outcome {
    let rt = Runtime::new("toybox");
    let id = "life-killed".to_string();
    let bundle = life_bundle("killed", &rt, rootfs, &id, |c| set_args(c, &["/bin/true"]))?;
    let groups = || -> Vec<PathBuf> {
        let dirs = fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten();
        dirs.map(|d| d.path().join(LIFE_CGROUP).join(&id)).filter(|g| g.exists()).collect()
    };
    let busy = || {
        let procs = |g: &PathBuf| fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
        groups().iter().map(procs).collect::<String>()
    };
    with_cleanup(&rt, &[&id], |_| {
        for delay in (0..40).map(|step| step * 250) {
            let pid_file = bundle.dir.join("pid").display().to_string();
            let dir = bundle.dir.display().to_string();
            let mut create = rt
                .command(&["create", "--bundle", &dir, "--pid-file", &pid_file, &id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            std::thread::sleep(std::time::Duration::from_micros(delay));
            let _ = create.kill();
            let status = create.wait().map_err(|e| e.to_string())?;
            // Finished, or killed once the state was written and the
            // process told: a created container, which delete cleans.
            let state = rt.call(&["state", &id])?;
            if status.success() || state.stdout.contains("\"created\"") {
                rt.call(&["delete", "--force", &id])?.expect_code(0)?;
                continue;
            }
            let mut left = busy();
            for _ in 0..200 {
                if left.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                left = busy();
            }
            expect(left.trim().is_empty(), || {
                format!("killed after {delay} µs: still in its groups 2 s later: {left:?}")
            })?;
            rt.call(&["delete", "--force", &id])?.expect_code(0)?;
            let after = rt.left_behind(&id, None);
            expect(after.is_empty(), || {
                format!("killed after {delay} µs, then delete: {after:?}")
            })?;
        }
        Ok(())
    })
}

/// `run` is create, start and wait in one, as `runc run`: while it waits
/// in the foreground the container is in the state (running, with its
/// pid), `kill` from elsewhere reaches it, run exits with its status
/// (137), and its directory goes with it.
fn lifecycle_run_in_state(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-run-{}", rt.name);
    let bundle = life_bundle("run", rt, rootfs, &id, |c| set_args(c, &["/bin/sleep", "100"]))?;
    with_cleanup(rt, &[&id], |pids| {
        let dir = bundle.dir.display().to_string();
        let mut run = rt
            .command(&["run", "--bundle", &dir, &id])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        // Until run has written the state (runc's `state` fails before).
        let mut state = Value::Null;
        for _ in 0..200 {
            let call = rt.call(&["state", &id])?;
            state = serde_json::from_str(&call.stdout).unwrap_or(Value::Null);
            if state["status"] == "running" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = state["pid"].as_i64().unwrap_or(0) as i32;
        let cmdline = command_line(pid);
        let _ = rt.call(&["kill", &id, "KILL"]);
        let status = run.wait().map_err(|e| e.to_string())?;
        pids.push(pid);
        expect(state["status"] == "running", || format!("state while run waits: {state}"))?;
        expect(cmdline.starts_with("/bin/sleep"), || format!("state's pid {pid}: {cmdline:?}"))?;
        expect(status.code() == Some(137), || format!("run exited {status}"))?;
        let left = rt.root.join(&id);
        expect(!left.exists(), || format!("{} is still there", left.display()))
    })
}

/// /proc/PID/cmdline, once it is not empty: it reads empty while the
/// process is in the middle of execve (the new image has no arguments yet).
fn command_line(pid: i32) -> String {
    for _ in 0..100 {
        let text = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !text.is_empty() {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    String::new()
}

/// `running` means the command runs: `start` returns once the container's
/// process is past execve, as runc's does. The process is stopped (SIGSTOP)
/// before `start`, so it cannot get there: `start` must still be waiting
/// 300 ms later, and return once SIGCONT lets the process go on; by then
/// its pid is the command (/proc/PID/cmdline) and `state` says running.
fn lifecycle_start_returns_after_execve(rootfs: &Path, rt: &Runtime) -> Outcome {
    let id = format!("life-execve-{}", rt.name);
    let bundle = life_bundle("execve", rt, rootfs, &id, |c| set_args(c, &["/bin/sleep", "100"]))?;
    with_cleanup(rt, &[&id], |pids| {
        rt.create(&bundle.dir, &id, &[])?.expect_code(0)?;
        let pid = pid_of(&bundle)?;
        pids.push(pid);
        // SAFETY: kill(2) with plain values.
        let signal = |signal| unsafe { libc::kill(pid, signal) };
        expect(signal(libc::SIGSTOP) == 0, || format!("SIGSTOP {pid}"))?;
        let mut start = rt.command(&["start", &id]).spawn().map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let early = start.try_wait().map_err(|e| e.to_string())?;
        signal(libc::SIGCONT);
        let status = start.wait().map_err(|e| e.to_string())?;
        expect(early.is_none(), || format!("start returned ({status}) before the execve"))?;
        expect(status.success(), || format!("start exited {status}"))?;
        let after = command_line(pid);
        let state = rt.state(&id)?;
        expect(after.starts_with("/bin/sleep"), || format!("after start, pid {pid}: {after:?}"))?;
        expect(state["status"] == "running", || format!("state after start: {state}"))?;
        rt.call(&["delete", "--force", &id])?.expect_code(0)
    })
}

/// A relative cgroupsPath with directories of its own (`oci-nested/a/ID`,
/// made under toybox/): after `delete` of a created container, and after a
/// `run`, none of the groups toybox made is left, toybox/ aside. (runc
/// leaves the directories above the container's own.)
fn nested_cgroups_path_leaves_nothing(rootfs: &Path) -> Outcome {
    let rt = Runtime::new("toybox");
    let id = "oci-nested-id".to_string();
    let bundle = life_bundle("nested", &rt, rootfs, &id, |c| {
        set_args(c, &["/bin/true"]);
        c["linux"]["cgroupsPath"] = json!(format!("oci-nested/a/{id}"));
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
    })?;
    let nested = || -> Vec<String> {
        let dirs = fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten();
        let mut found: Vec<String> = dirs
            .map(|d| d.path().join("toybox/oci-nested"))
            .filter(|g| g.exists())
            .map(|g| g.display().to_string())
            .collect();
        if Path::new("/sys/fs/cgroup/toybox/oci-nested").exists() {
            found.push("/sys/fs/cgroup/toybox/oci-nested".into());
        }
        found
    };
    with_cleanup(&rt, &[&id], |_| {
        rt.create(&bundle.dir, &id, &[])?.expect_code(0)?;
        let made = nested();
        expect(!made.is_empty(), || "create made no toybox/oci-nested group".into())?;
        rt.call(&["delete", "--force", &id])?.expect_code(0)?;
        let left = nested();
        expect(left.is_empty(), || format!("after delete: {left:?}"))?;
        let dir = bundle.dir.display().to_string();
        rt.call(&["run", "--bundle", &dir, &id])?.expect_code(0)?;
        let left = nested();
        expect(left.is_empty(), || format!("after run: {left:?}"))
    })
}

const TOYBOX_AND_RUNC_TESTS: &[(&str, LifeTest)] = &[
    ("exec_process_inside", exec_process_inside),
    ("exec_detach_pid_file", exec_detach_pid_file),
    ("exec_console_socket", exec_console_socket),
    ("exec_refused", exec_refused),
    ("lifecycle_start_returns_after_execve", lifecycle_start_returns_after_execve),
];

const LIFE_TESTS: &[(&str, LifeTest)] = &[
    ("lifecycle_run_in_state", lifecycle_run_in_state),
    ("lifecycle_preserve_fds", lifecycle_preserve_fds),
    ("lifecycle_stopped_zombie_under_subreaper", lifecycle_stopped_zombie_under_subreaper),
    ("lifecycle_create_start_delete", lifecycle_create_start_delete),
    ("lifecycle_kill_signals", lifecycle_kill_signals),
    ("lifecycle_delete_force", lifecycle_delete_force),
    ("lifecycle_ids", lifecycle_ids),
    ("lifecycle_missing_command", lifecycle_missing_command),
    ("lifecycle_json_log", lifecycle_json_log),
    ("lifecycle_terminal_rules", lifecycle_terminal_rules),
    ("lifecycle_console_socket", lifecycle_console_socket),
];

const RUNTIMES: [&str; 3] = ["toybox", "runc", "crun"];

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
    ("cpuset_from_config", cpuset_from_config),
    ("create_killed_half_way", create_killed_half_way),
    ("nested_cgroups_path_leaves_nothing", nested_cgroups_path_leaves_nothing),
    ("user_namespace_maps", user_namespace_maps),
    ("devices_and_oom_score", devices_and_oom_score),
    ("mount_parents_and_propagation", mount_parents_and_propagation),
    ("namespaces_by_path_and_absent", namespaces_by_path_and_absent),
    ("bad_configs_refused", bad_configs_refused),
    ("runc_spec_bundle", runc_spec_bundle),
    ("same_answers_as_runc", same_answers_as_runc),
];

fn skip_reason(name: &str) -> Option<String> {
    for runtime in ["runc", "crun"] {
        if name.contains(runtime) && !have(runtime) {
            return Some(format!("{runtime} is not installed (apt-get install {runtime})"));
        }
    }
    None
}

fn main() {
    // Each lifecycle test once per runtime: NAME/toybox, NAME/runc, NAME/crun.
    let mut all: Vec<(&'static str, AnyTest)> = Vec::new();
    for &(name, test) in TESTS {
        all.push((name, Box::new(test)));
    }
    // crun 1.8.1 (under the hybrid host's workaround) left its container's
    // first process running after exec --detach and delete --force, and its
    // start returns before the execve: those tests run toybox and runc.
    let pair_tests = TOYBOX_AND_RUNC_TESTS.iter().map(|t| (t, &RUNTIMES[..2]));
    for (&(name, test), runtimes) in LIFE_TESTS.iter().map(|t| (t, &RUNTIMES[..])).chain(pair_tests)
    {
        for &rt in runtimes {
            let name: &'static str = Box::leak(format!("{name}/{rt}").into_boxed_str());
            let runtime = Runtime::new(rt);
            all.push((name, Box::new(move |rootfs: &Path| test(rootfs, &runtime))));
        }
    }
    let selected = harness::selected(&all);
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
