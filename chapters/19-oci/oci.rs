//! OCI bundles: a rootfs and a config.json (the OCI runtime spec's
//! config.md and config-linux.md), read into the same `ChildConfig` that
//! toybox's own flags make, so the same stages build the container.
//! `toybox spec` writes a default config.json, as `runc spec` does;
//! `toybox run` creates, starts and waits for the container in one go, as
//! `runc run` does, and exits with its status.
//!
//! Only the fields toybox acts on are read; the spec says a runtime MUST
//! ignore the ones it does not know, so nothing is refused for being there.
//! What is read but wrong (an ociVersion that is not 1.x, a hard rlimit
//! below the soft one, a capability the kernel has no name for) is refused.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::stat::SFlag;
use serde::Deserialize;

use crate::error::{EXIT_TOYBOX_FAILED, Result, Stage, fail};
use std::borrow::Cow;

use crate::{Capabilities, CgroupSetting, ChildConfig, Device, Mount, User};

/// The version `toybox spec` writes; any 1.x is read.
pub const OCI_VERSION: &str = "1.0.2";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    oci_version: String,
    root: Option<Root>,
    process: Option<Process>,
    hostname: Option<String>,
    #[serde(default)]
    mounts: Vec<SpecMount>,
    #[serde(default)]
    linux: Linux,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Root {
    path: PathBuf,
    #[serde(default)]
    readonly: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    #[serde(default)]
    terminal: bool,
    #[serde(default)]
    user: SpecUser,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    cwd: PathBuf,
    capabilities: Option<SpecCapabilities>,
    #[serde(default)]
    rlimits: Vec<Rlimit>,
    #[serde(default)]
    no_new_privileges: bool,
    console_size: Option<ConsoleSize>,
    oom_score_adj: Option<i32>,
}

#[derive(Deserialize)]
struct ConsoleSize {
    height: u16,
    width: u16,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecUser {
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    umask: Option<u32>,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SpecCapabilities {
    bounding: Vec<String>,
    effective: Vec<String>,
    inheritable: Vec<String>,
    permitted: Vec<String>,
    ambient: Vec<String>,
}

#[derive(Deserialize)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: String,
    hard: u64,
    soft: u64,
}

#[derive(Deserialize)]
struct SpecMount {
    destination: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<PathBuf>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Linux {
    namespaces: Vec<Namespace>,
    uid_mappings: Vec<IdMapping>,
    gid_mappings: Vec<IdMapping>,
    sysctl: BTreeMap<String, String>,
    masked_paths: Vec<String>,
    readonly_paths: Vec<String>,
    seccomp: Option<Seccomp>,
    resources: Resources,
    cgroups_path: Option<String>,
    devices: Vec<SpecDevice>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecDevice {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    major: u64,
    #[serde(default)]
    minor: u64,
    file_mode: Option<u32>,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resources {
    memory: Memory,
    cpu: Cpu,
    pids: Option<Pids>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Memory {
    limit: Option<i64>,
    swap: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cpu {
    shares: Option<u64>,
    quota: Option<i64>,
    period: Option<u64>,
    cpus: Option<String>,
    mems: Option<String>,
}

#[derive(Deserialize)]
struct Pids {
    limit: i64,
}

#[derive(Deserialize)]
struct Namespace {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

/// config-linux.md spells these containerID and hostID.
#[derive(Deserialize)]
struct IdMapping {
    #[serde(rename = "containerID")]
    container_id: u32,
    #[serde(rename = "hostID")]
    host_id: u32,
    size: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<SyscallRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyscallRule {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<ArgRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArgRule {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

fn bad(what: impl Into<String>) -> crate::error::Error {
    fail("config", what, EXIT_TOYBOX_FAILED)
}

/// process.args[0] in the rootfs, found before anything is made.
pub(crate) fn check_command(config: &ChildConfig) -> Result<()> {
    let rootfs = fs::canonicalize(&config.rootfs)
        .stage("checks", format!("rootfs {}", config.rootfs.display()))?;
    check_command_in(&rootfs, &config.command[0], &config.env)
}

/// `command` under `rootfs`, looked up in the PATH of `env` if it has no
/// slash; refused in runc's words.
pub(crate) fn check_command_in(rootfs: &Path, command: &str, env: &[String]) -> Result<()> {
    let found = match command.contains('/') {
        true => crate::check_command(rootfs, command),
        false => crate::check_command_in_path(rootfs, command, crate::search_path(env)),
    };
    found.map_err(|e| runc_words(e, command))
}

/// Clients match runc's words for a command that is missing or cannot run
/// (podman turns them into 127 and 126): say those, and what toybox found.
fn runc_words(mut error: crate::error::Error, command: &str) -> crate::error::Error {
    let words = match (error.exit_code, command.contains('/')) {
        (crate::error::EXIT_NOT_FOUND, true) => "no such file or directory",
        (crate::error::EXIT_NOT_FOUND, false) => "executable file not found in $PATH",
        (crate::error::EXIT_CANNOT_EXECUTE, _) => "permission denied",
        _ => return error,
    };
    error.what = format!("exec: {command:?}: {words} ({})", error.what);
    error
}

/// runc's rule for ids: letters, digits and `_+-.`, and not `.` or `..`:
/// the id names a directory and a cgroup.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    if id.is_empty() || id == "." || id == ".." || !id.chars().all(fine) {
        return Err(fail("arguments", format!("invalid container id {id:?}"), EXIT_TOYBOX_FAILED));
    }
    Ok(())
}

/// What a bundle says: the container, and what only its clients read.
pub struct Bundle {
    pub config: ChildConfig,
    pub annotations: BTreeMap<String, String>,
    /// process.consoleSize: (height, width).
    pub console_size: Option<(u16, u16)>,
    /// config.json as it was read: `exec` takes the container's seccomp
    /// profile from this copy, not from a file that may have changed since.
    pub text: String,
}

/// config.json of `bundle` for container `id`.
pub fn read_bundle(bundle: &Path, id: &str) -> Result<Bundle> {
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).stage("config", format!("read {}", path.display()))?;
    let mut spec: Spec =
        serde_json::from_str(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let annotations = std::mem::take(&mut spec.annotations);
    let size = spec.process.as_ref().and_then(|p| p.console_size.as_ref());
    let console_size = size.map(|s| (s.height, s.width));
    Ok(Bundle { config: child_config(spec, bundle, id)?, annotations, console_size, text })
}

/// What a `process` object says, in config.json or in the process.json
/// that `exec --process` gets: the command and how it runs.
pub(crate) struct ProcessConfig {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    pub capabilities: Capabilities,
    pub no_new_privileges: bool,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    /// consoleSize: (height, width).
    pub console_size: Option<(u16, u16)>,
}

fn process_config(process: Process) -> Result<ProcessConfig> {
    if process.args.is_empty() {
        return Err(bad("process.args is empty"));
    }
    if !process.cwd.is_absolute() {
        return Err(bad(format!("process.cwd {}: not an absolute path", process.cwd.display())));
    }
    let sets = process.capabilities.unwrap_or_default();
    let capabilities = Capabilities {
        bounding: capability_list(&sets.bounding)?,
        inheritable: capability_list(&sets.inheritable)?,
        ambient: capability_list(&sets.ambient)?,
        effective: Some(capability_list(&sets.effective)?),
        permitted: Some(capability_list(&sets.permitted)?),
    };
    Ok(ProcessConfig {
        command: process.args,
        env: process.env,
        cwd: process.cwd,
        user: User {
            uid: process.user.uid,
            gid: process.user.gid,
            groups: process.user.additional_gids,
            umask: process.user.umask,
        },
        capabilities,
        no_new_privileges: process.no_new_privileges,
        rlimits: process.rlimits.iter().map(rlimit).collect::<Result<_>>()?,
        oom_score_adj: process.oom_score_adj,
        terminal: process.terminal,
        console_size: process.console_size.map(|s| (s.height, s.width)),
    })
}

/// `exec --process`: the process.json a client wrote, and the seccomp
/// filter of the container it joins, compiled from `container`, the copy of
/// config.json `create` kept. process.json has no seccomp of its own
/// (podman copies `process` without it): runc and crun apply the
/// container's, or exec would be a way out of it. Without capabilities in
/// process.json, the container's process's are taken, as runc does.
pub(crate) fn exec_process(
    process_json: &Path,
    container: &str,
) -> Result<(ProcessConfig, Vec<Vec<u8>>)> {
    let what = process_json.display();
    let text = fs::read_to_string(process_json).stage("config", format!("read {what}"))?;
    let mut process: Process =
        serde_json::from_str(&text).map_err(|e| bad(format!("{what}: {e}")))?;
    let spec: Spec = serde_json::from_str(container).map_err(|e| bad(e.to_string()))?;
    if process.capabilities.is_none() {
        process.capabilities = spec.process.and_then(|p| p.capabilities);
    }
    let seccomp = match &spec.linux.seccomp {
        Some(profile) => vec![compile_seccomp(profile)?],
        None => Vec::new(),
    };
    Ok((process_config(process)?, seccomp))
}

fn child_config(spec: Spec, bundle: &Path, id: &str) -> Result<ChildConfig> {
    check_version(&spec.oci_version)?;
    let Some(process) = spec.process else {
        return Err(bad("config.json has no process to run"));
    };
    let process = process_config(process)?;
    let Some(root) = spec.root else {
        return Err(bad("config.json has no root"));
    };
    let linux = spec.linux;
    let Namespaces { new: namespaces, joined: joined_namespaces, user: user_namespace } =
        namespaces(&linux.namespaces)?;
    // New or joined: pivot_root in the host's own mount namespace would
    // move the host's root.
    let has = |flag| namespaces.contains(flag) || joined_namespaces.iter().any(|(f, _)| *f == flag);
    if !has(CloneFlags::CLONE_NEWNS) {
        return Err(bad("toybox needs a mount namespace, of the container's own or joined"));
    }
    let hostname = match spec.hostname {
        Some(name) if !has(CloneFlags::CLONE_NEWUTS) => {
            return Err(bad(format!("hostname {name:?} without a uts namespace to set it in")));
        }
        name => name,
    };
    let id_maps =
        user_namespace.then(|| (map_text(&linux.uid_mappings), map_text(&linux.gid_mappings)));
    if id_maps.as_ref().is_some_and(|(uid, gid)| uid.is_empty() || gid.is_empty()) {
        return Err(bad("a user namespace needs linux.uidMappings and linux.gidMappings"));
    }
    for key in linux.sysctl.keys() {
        check_sysctl(key, namespaces)?;
    }
    let seccomp = match &linux.seccomp {
        Some(profile) => vec![compile_seccomp(profile)?],
        None => Vec::new(),
    };
    let mounts = spec.mounts.iter().map(|m| mount(m, bundle)).collect::<Result<Vec<_>>>()?;
    let devices = linux.devices.iter().map(device).collect::<Result<Vec<_>>>()?;
    // Nodes go in a fresh /dev. Anywhere else they would be made in the
    // rootfs, a directory on the host's filesystem, as device files that
    // whoever reaches that directory on the host could open.
    let fresh_dev = mounts.iter().any(|m| m.target == "/dev" && m.fstype == "tmpfs");
    if !devices.is_empty() && !fresh_dev {
        return Err(bad("linux.devices needs a tmpfs mounted on /dev"));
    }
    let (cgroup_v1, cgroup_v2) = cgroup_settings(&linux.resources, &devices)?;
    let cgroup = cgroup_path(linux.cgroups_path.as_deref(), id)?;
    Ok(ChildConfig {
        name: id.to_string(),
        command: process.command,
        env: process.env,
        cwd: Some(process.cwd),
        namespaces,
        hostname,
        joined_namespaces,
        rootfs: bundle.join(root.path),
        readonly_root: root.readonly,
        mounts,
        devices,
        masked_paths: linux.masked_paths,
        readonly_paths: linux.readonly_paths,
        sysctl: linux.sysctl.into_iter().collect(),
        id_maps,
        user: process.user,
        capabilities: process.capabilities,
        oom_score_adj: process.oom_score_adj,
        seccomp,
        no_new_privileges: process.no_new_privileges,
        rlimits: process.rlimits,
        cgroup,
        cgroup_v1,
        cgroup_v2,
        init: false,
        terminal: process.terminal,
        stop_grace: crate::STOP_GRACE,
        net: crate::network::Mode::None,
        subnet: crate::network::DEFAULT_SUBNET.parse().map_err(bad)?,
        publish: Vec::new(),
        exec_fifo: None,
        kept_fds: Vec::new(),
    })
}

/// Semantic versioning, major 1 (config.md, "Specification version").
fn check_version(version: &str) -> Result<()> {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numbers = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if parts.len() != 3 || !numbers || parts[0] != "1" {
        return Err(bad(format!("ociVersion {version:?}: toybox reads 1.x.y")));
    }
    Ok(())
}

/// linux.namespaces, sorted: a type absent from the list is the host's
/// (config-linux.md, "Namespaces").
struct Namespaces {
    new: CloneFlags,
    joined: Vec<(CloneFlags, PathBuf)>,
    user: bool,
}

fn namespaces(list: &[Namespace]) -> Result<Namespaces> {
    let mut new = CloneFlags::empty();
    let mut joined = Vec::new();
    let mut user = false;
    let mut seen = Vec::new();
    for ns in list {
        let flag = match ns.kind.as_str() {
            "pid" => CloneFlags::CLONE_NEWPID,
            "network" => CloneFlags::CLONE_NEWNET,
            "mount" => CloneFlags::CLONE_NEWNS,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "cgroup" => CloneFlags::CLONE_NEWCGROUP,
            "user" => CloneFlags::CLONE_NEWUSER,
            other => return Err(bad(format!("unknown namespace type {other:?}"))),
        };
        if seen.contains(&flag) {
            return Err(bad(format!("namespace {} listed twice", ns.kind)));
        }
        seen.push(flag);
        match (&ns.path, flag) {
            // toybox makes its user namespace after the mounts, from inside.
            (None, CloneFlags::CLONE_NEWUSER) => user = true,
            (None, _) => new |= flag,
            (Some(path), CloneFlags::CLONE_NEWUSER) => {
                let what = format!(
                    "joining a {} namespace ({}) is not supported yet",
                    ns.kind,
                    path.display()
                );
                return Err(bad(what));
            }
            (Some(path), _) => joined.push((flag, path.clone())),
        }
    }
    Ok(Namespaces { new, joined, user })
}

/// A sysctl is written from inside, but most are the whole machine's: only
/// those of a namespace the container has of its own may be set
/// (sysctl(8) names; ipc_namespaces(7), network_namespaces(7)).
fn check_sysctl(key: &str, new: CloneFlags) -> Result<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ipc = IPC.contains(&key) || key.starts_with("fs.mqueue.");
    let fine = (ipc && new.contains(CloneFlags::CLONE_NEWIPC))
        || (key.starts_with("net.") && new.contains(CloneFlags::CLONE_NEWNET))
        || (["kernel.hostname", "kernel.domainname"].contains(&key)
            && new.contains(CloneFlags::CLONE_NEWUTS));
    if !fine || key.contains("..") || key.contains('/') {
        let what = format!(
            "sysctl {key} is not in a namespace of the container's own: it would change the host"
        );
        return Err(bad(what));
    }
    Ok(())
}

/// uid_map's format: one "inside outside count" line per range.
fn map_text(maps: &[IdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect()
}

fn capability_list(names: &[String]) -> Result<Vec<caps::Capability>> {
    names
        .iter()
        .map(|name| {
            caps::Capability::from_str(name)
                .map_err(|_| bad(format!("unknown capability {name:?}")))
        })
        .collect()
}

fn rlimit(limit: &Rlimit) -> Result<(Resource, u64, u64)> {
    let resource = match limit.kind.as_str() {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        other => return Err(bad(format!("unknown rlimit {other:?}"))),
    };
    if limit.hard < limit.soft {
        let what =
            format!("{}: hard limit {} below soft limit {}", limit.kind, limit.hard, limit.soft);
        return Err(bad(what));
    }
    Ok((resource, limit.soft, limit.hard))
}

/// linux.cgroupsPath, relative to each hierarchy's root: an absolute path
/// as it is, a relative one (or none) in toybox's own parent group
/// (config-linux.md leaves a relative path to the runtime).
fn cgroup_path(path: Option<&str>, id: &str) -> Result<PathBuf> {
    let path = path.filter(|p| !p.is_empty());
    if let Some(path) = path.filter(|p| !p.starts_with('/') && p.contains(':')) {
        let what = format!(
            "cgroupsPath {path:?} is a systemd slice (slice:prefix:name): toybox has only the \
             cgroupfs manager; run the client with --cgroup-manager=cgroupfs"
        );
        return Err(bad(what));
    }
    let Some(path) = path else {
        return Ok(Path::new(crate::CGROUP_PARENT).join(id));
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad(format!("cgroupsPath {path:?}: want a path of names")));
    }
    let joined: PathBuf = parts.iter().collect();
    match path.starts_with('/') {
        true => Ok(joined),
        false => Ok(Path::new(crate::CGROUP_PARENT).join(joined)),
    }
}

/// The smallest memory limit toybox takes (see cgroup_settings).
const MIN_MEMORY: i64 = 6 << 20;

/// One of linux.devices. Only under /dev: the rootfs is mounted nodev, so
/// a node anywhere else would not open, and would be made in the host's
/// directory (config-linux.md, "Devices").
fn device(entry: &SpecDevice) -> Result<Device> {
    let path = Path::new(&entry.path);
    let plain = path.components().skip(1).all(|c| matches!(c, std::path::Component::Normal(_)));
    if !path.starts_with("/dev/") || !plain {
        return Err(bad(format!("linux.devices path {:?}: want a path under /dev", entry.path)));
    }
    let kind = match entry.kind.as_str() {
        "c" | "u" => SFlag::S_IFCHR,
        "b" => SFlag::S_IFBLK,
        "p" => SFlag::S_IFIFO,
        other => return Err(bad(format!("linux.devices {}: type {other:?}", entry.path))),
    };
    Ok(Device {
        path: entry.path.clone(),
        kind,
        major: entry.major,
        minor: entry.minor,
        mode: entry.file_mode.unwrap_or(0o666) & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
    })
}

/// linux.resources as (v1, v2) cgroup files. The devices rows are toybox's
/// own (the default devices /dev gets) and linux.devices' nodes, as runc
/// allows them; the config's own device rules are not read.
fn cgroup_settings(
    resources: &Resources,
    listed: &[Device],
) -> Result<(Vec<CgroupSetting>, Vec<CgroupSetting>)> {
    let devices = crate::CGROUP_V1_SETTINGS.iter().filter(|s| s.controller == "devices");
    let mut v1: Vec<CgroupSetting> = devices.cloned().collect();

    let mut v2 = Vec::new();
    let number = |n: i64| if n < 0 { "max".to_string() } else { n.to_string() };
    let setting = |controller, file, value: String, required| CgroupSetting {
        controller,
        file,
        value: Cow::Owned(value),
        required,
    };
    for device in listed.iter().filter(|d| d.kind != SFlag::S_IFIFO) {
        let kind = if device.kind == SFlag::S_IFBLK { "b" } else { "c" };
        let rule = format!("{kind} {}:{} rwm", device.major, device.minor);
        v1.push(setting("devices", "devices.allow", rule, true));
    }
    let memory = &resources.memory;
    // On v1 toybox joins the group itself before clone (contained.c's
    // order), so a limit smaller than toybox gets it OOM-killed half-way,
    // its groups left behind. docker refuses below 6 MB for the same reason.
    if let Some(limit) = memory.limit.filter(|&l| (0..MIN_MEMORY).contains(&l)) {
        let what = format!(
            "linux.resources.memory.limit {limit} is below 6 MiB, the least toybox runs in"
        );
        return Err(bad(what));
    }
    if let Some(limit) = memory.limit {
        v1.push(setting("memory", "memory.limit_in_bytes", limit.to_string(), true));
        v2.push(setting("memory", "memory.max", number(limit), true));
    }
    if let Some(swap) = memory.swap {
        // OCI's swap is memory+swap, as v1's memsw; v2 counts swap alone.
        v1.push(setting("memory", "memory.memsw.limit_in_bytes", swap.to_string(), false));
        let alone = match memory.limit {
            Some(limit) if swap >= 0 && limit >= 0 => (swap - limit).max(0).to_string(),
            _ => number(swap),
        };
        v2.push(setting("memory", "memory.swap.max", alone, false));
    }
    let cpu = &resources.cpu;
    if let Some(shares) = cpu.shares {
        v1.push(setting("cpu", "cpu.shares", shares.to_string(), true));
        // v1's 2..262144 onto v2's 1..10000, as runc and crun convert it.
        let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
        v2.push(setting("cpu", "cpu.weight", weight.to_string(), true));
    }
    if cpu.quota.is_some() || cpu.period.is_some() {
        let period = cpu.period.unwrap_or(100_000);
        v1.push(setting("cpu", "cpu.cfs_period_us", period.to_string(), true));
        let quota = cpu.quota.unwrap_or(-1);
        v1.push(setting("cpu", "cpu.cfs_quota_us", quota.to_string(), true));
        v2.push(setting("cpu", "cpu.max", format!("{} {period}", number(quota)), true));
    }
    // The cpuset controller's lists ("0-1,3"), the same file names in v1 and v2.
    let lists = [("cpuset.cpus", &cpu.cpus), ("cpuset.mems", &cpu.mems)];
    for (file, list) in lists.into_iter().filter_map(|(f, l)| Some((f, l.as_ref()?))) {
        if list.is_empty() || !list.chars().all(|c| c.is_ascii_digit() || ",-".contains(c)) {
            return Err(bad(format!("linux.resources.cpu: {file} {list:?} is not a list")));
        }
        v1.push(setting("cpuset", file, list.clone(), true));
        v2.push(setting("cpuset", file, list.clone(), true));
    }
    if let Some(pids) = &resources.pids {
        let limit = if pids.limit <= 0 { "max".to_string() } else { pids.limit.to_string() };
        v1.push(setting("pids", "pids.max", limit.clone(), true));
        v2.push(setting("pids", "pids.max", limit, true));
    }
    Ok((v1, v2))
}

/// mount(8)'s option words as mount(2) flags: (word, flag, clears it).
/// What is not here is the filesystem's own data (`mode=755`, `size=`).
const MOUNT_OPTIONS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, false),
    ("rw", MsFlags::MS_RDONLY, true),
    ("nosuid", MsFlags::MS_NOSUID, false),
    ("suid", MsFlags::MS_NOSUID, true),
    ("nodev", MsFlags::MS_NODEV, false),
    ("dev", MsFlags::MS_NODEV, true),
    ("noexec", MsFlags::MS_NOEXEC, false),
    ("exec", MsFlags::MS_NOEXEC, true),
    ("sync", MsFlags::MS_SYNCHRONOUS, false),
    ("async", MsFlags::MS_SYNCHRONOUS, true),
    ("dirsync", MsFlags::MS_DIRSYNC, false),
    ("remount", MsFlags::MS_REMOUNT, false),
    ("mand", MsFlags::MS_MANDLOCK, false),
    ("nomand", MsFlags::MS_MANDLOCK, true),
    ("atime", MsFlags::MS_NOATIME, true),
    ("noatime", MsFlags::MS_NOATIME, false),
    ("diratime", MsFlags::MS_NODIRATIME, true),
    ("nodiratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, false),
    ("norelatime", MsFlags::MS_RELATIME, true),
    ("strictatime", MsFlags::MS_STRICTATIME, false),
    ("nostrictatime", MsFlags::MS_STRICTATIME, true),
    ("lazytime", MsFlags::MS_LAZYTIME, false),
    ("nolazytime", MsFlags::MS_LAZYTIME, true),
    ("bind", MsFlags::MS_BIND, false),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), false),
    ("private", MsFlags::MS_PRIVATE, false),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC), false),
    ("shared", MsFlags::MS_SHARED, false),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC), false),
    ("slave", MsFlags::MS_SLAVE, false),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC), false),
    ("unbindable", MsFlags::MS_UNBINDABLE, false),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC), false),
];

fn mount(entry: &SpecMount, bundle: &Path) -> Result<Mount> {
    if !entry.destination.starts_with('/') {
        return Err(bad(format!("mount destination {:?}: not absolute", entry.destination)));
    }
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in &entry.options {
        match MOUNT_OPTIONS.iter().find(|(word, _, _)| word == option) {
            Some(&(_, flag, true)) => flags.remove(flag),
            Some(&(_, flag, false)) => flags.insert(flag),
            None => data.push(option.as_str()),
        }
    }
    let kind = entry.kind.as_deref().unwrap_or("");
    let bind = kind == "bind" || flags.contains(MsFlags::MS_BIND);
    let mut fstype = kind.to_string();
    if kind == "cgroup" {
        // cgroup v2 shows the container's own cgroup namespace; a v1
        // hierarchy per controller is left for later: an empty tmpfs.
        let v2 = Path::new(crate::CGROUP_ROOT).join("cgroup.controllers").exists();
        fstype = if v2 { "cgroup2" } else { "tmpfs" }.to_string();
        if !v2 {
            data = vec!["mode=755", "size=0"];
        }
    }
    let source = match (&entry.source, bind) {
        (Some(source), true) => Some(bundle.join(source)),
        (None, true) => {
            return Err(bad(format!("bind mount on {} has no source", entry.destination)));
        }
        (_, false) => None,
    };
    Ok(Mount {
        target: entry.destination.clone(),
        flags,
        data: data.join(","),
        bind: source,
        source: match &entry.source {
            Some(name) if !bind && !name.as_os_str().is_empty() => name.display().to_string(),
            _ => fstype.clone(),
        },
        fstype,
    })
}

// ---------------------------------------------------------------------------
// linux.seccomp, compiled by libseccomp into the classic BPF that the child
// loads like toybox's own filter.
// ---------------------------------------------------------------------------

/// An OCI action name and its errno as libseccomp's action value
/// (seccomp_rule_add(3)). ERRNO without errnoRet is EPERM, as runc has it.
fn action(name: &str, errno: Option<u32>) -> Result<u32> {
    use seccomp_sys::*;
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match name {
        "SCMP_ACT_ALLOW" => SCMP_ACT_ALLOW,
        "SCMP_ACT_ERRNO" => SCMP_ACT_ERRNO(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SCMP_ACT_KILL,
        "SCMP_ACT_KILL_PROCESS" => SCMP_ACT_KILL_PROCESS,
        "SCMP_ACT_TRAP" => SCMP_ACT_TRAP,
        "SCMP_ACT_TRACE" => SCMP_ACT_TRACE(errno),
        "SCMP_ACT_LOG" => 0x7ffc_0000,
        other => return Err(bad(format!("seccomp action {other:?} is not supported"))),
    })
}

fn operator(name: &str) -> Result<seccomp_sys::scmp_compare> {
    use seccomp_sys::scmp_compare::*;
    Ok(match name {
        "SCMP_CMP_NE" => SCMP_CMP_NE,
        "SCMP_CMP_LT" => SCMP_CMP_LT,
        "SCMP_CMP_LE" => SCMP_CMP_LE,
        "SCMP_CMP_EQ" => SCMP_CMP_EQ,
        "SCMP_CMP_GE" => SCMP_CMP_GE,
        "SCMP_CMP_GT" => SCMP_CMP_GT,
        "SCMP_CMP_MASKED_EQ" => SCMP_CMP_MASKED_EQ,
        other => return Err(bad(format!("seccomp operator {other:?} is not supported"))),
    })
}

/// A libseccomp filter context, released on drop.
struct Filter(*mut seccomp_sys::scmp_filter_ctx);

impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: the context came from seccomp_init and is released once.
        unsafe { seccomp_sys::seccomp_release(self.0) }
    }
}

fn seccomp_error(rc: libc::c_int, what: String) -> crate::error::Error {
    let error = std::io::Error::from_raw_os_error(-rc);
    fail("seccomp", format!("{what}: {error}"), EXIT_TOYBOX_FAILED)
}

/// libseccomp resolves the names (a name this libseccomp or architecture
/// does not know is skipped, as runc and crun skip it), writes the
/// architecture checks and compares 64-bit arguments as two 32-bit halves.
/// Several rules for one call are ORed, their conditions ANDed.
fn compile_seccomp(profile: &Seccomp) -> Result<Vec<u8>> {
    use seccomp_sys::*;
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    // SAFETY: seccomp_init returns an owned context or null; Filter releases it.
    let filter = Filter(unsafe { seccomp_init(default) });
    if filter.0.is_null() {
        return Err(fail("seccomp", "seccomp_init failed", EXIT_TOYBOX_FAILED));
    }
    for arch in &profile.architectures {
        let token = match arch.as_str() {
            "SCMP_ARCH_X86_64" => scmp_arch::SCMP_ARCH_X86_64,
            "SCMP_ARCH_X86" => scmp_arch::SCMP_ARCH_X86,
            "SCMP_ARCH_X32" => scmp_arch::SCMP_ARCH_X32,
            _ => continue, // cannot run on this machine
        };
        // SAFETY: a live context and a plain token.
        let rc = unsafe { seccomp_arch_add(filter.0, token as u32) };
        if rc < 0 && rc != -libc::EEXIST {
            return Err(seccomp_error(rc, format!("seccomp_arch_add({arch})")));
        }
    }
    for rule in &profile.syscalls {
        let act = action(&rule.action, rule.errno_ret)?;
        if act == default {
            continue; // libseccomp refuses a rule that changes nothing
        }
        let compares = rule
            .args
            .iter()
            .map(|arg| {
                Ok(scmp_arg_cmp {
                    arg: arg.index,
                    op: operator(&arg.op)?,
                    datum_a: arg.value,
                    datum_b: arg.value_two,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for name in &rule.names {
            let Ok(cname) = CString::new(name.as_str()) else { continue };
            // SAFETY: a NUL-terminated name.
            let number = unsafe { seccomp_syscall_resolve_name(cname.as_ptr()) };
            if number == __NR_SCMP_ERROR {
                continue;
            }
            // SAFETY: a live context; the comparisons, which libseccomp copies.
            let rc = unsafe {
                seccomp_rule_add_array(
                    filter.0,
                    act,
                    number,
                    compares.len() as u32,
                    compares.as_ptr(),
                )
            };
            if rc < 0 {
                return Err(seccomp_error(rc, format!("seccomp rule for {name}")));
            }
        }
    }
    let memfd = nix::sys::memfd::memfd_create(c"seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .stage("seccomp", "memfd_create")?;
    let mut file = fs::File::from(memfd);
    // SAFETY: a live context and an open descriptor.
    let rc = unsafe { seccomp_export_bpf(filter.0, file.as_raw_fd()) };
    if rc < 0 {
        return Err(seccomp_error(rc, "seccomp_export_bpf".into()));
    }
    let mut program = Vec::new();
    file.rewind().stage("seccomp", "rewind the program")?;
    file.read_to_end(&mut program).stage("seccomp", "read the program")?;
    Ok(program)
}

// ---------------------------------------------------------------------------
// toybox spec
// ---------------------------------------------------------------------------

/// `toybox spec`: a config.json for a rootfs in `bundle/rootfs`, the same
/// container `runc spec` describes: `sh` on a terminal, three
/// capabilities, a read-only root, its own namespaces but the user's.
pub fn spec(bundle: &Path) -> Result<i32> {
    let path = bundle.join("config.json");
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let config = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [format!("PATH={}", crate::DEFAULT_PATH), "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "toybox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": crate::MASKED_PATHS,
            "readonlyPaths": crate::READ_ONLY_PATHS
        }
    });
    // O_EXCL: never over a config.json someone wrote (runc spec refuses too).
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .stage("spec", format!("create {}", path.display()))?;
    let text = serde_json::to_string_pretty(&config).map_err(|e| bad(e.to_string()))?;
    file.write_all(format!("{text}\n").as_bytes())
        .stage("spec", format!("write {}", path.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(json: &str) -> Result<ChildConfig> {
        let spec: Spec = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        child_config(spec, Path::new("/bundle"), "test")
    }

    const MINIMAL: &str = r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}]}, "unknown": {"ignored": true}}"#;

    #[test]
    fn versions_and_unknown_fields() {
        assert!(spec_of(MINIMAL).is_ok());
        for wrong in ["invalid", "2.0.0", "1.0", ""] {
            let json = MINIMAL.replace("1.0.2", wrong);
            assert!(spec_of(&json).is_err(), "{wrong}");
        }
        assert!(check_version("1.1.0-rc.1").is_ok());
    }

    #[test]
    fn rlimits_and_capabilities_are_checked() {
        let json = MINIMAL.replace(
            r#""cwd": "/""#,
            r#""cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}]"#,
        );
        assert!(spec_of(&json).is_err());
        let json = MINIMAL
            .replace(r#""cwd": "/""#, r#""cwd": "/", "capabilities": {"bounding": ["CAP_NOPE"]}"#);
        assert!(spec_of(&json).is_err());
    }

    #[test]
    fn cgroup_paths() {
        let path = |p| cgroup_path(p, "id").map_err(|e| e.to_string());
        assert_eq!(path(None), Ok(PathBuf::from("toybox/id")));
        assert_eq!(path(Some("/a/b")), Ok(PathBuf::from("a/b")));
        assert_eq!(path(Some("a")), Ok(PathBuf::from("toybox/a")));
        assert!(path(Some("/a/../b")).is_err());
        assert!(path(Some("/")).is_err());
        assert!(path(Some("machine.slice:libpod:id")).is_err());
    }

    #[test]
    fn only_namespaced_sysctls() {
        let net = CloneFlags::CLONE_NEWNET;
        assert!(check_sysctl("net.ipv4.ping_group_range", net).is_ok());
        assert!(check_sysctl("net.ipv4.ping_group_range", CloneFlags::empty()).is_err());
        assert!(check_sysctl("kernel.panic", net).is_err());
        assert!(check_sysctl("kernel.shmmax", CloneFlags::CLONE_NEWIPC).is_ok());
        assert!(check_sysctl("net.../kernel/panic", net).is_err());
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        let entry = SpecMount {
            destination: "/dev".into(),
            kind: Some("tmpfs".into()),
            source: None,
            options: ["nosuid", "strictatime", "mode=755", "size=65536k"]
                .map(String::from)
                .to_vec(),
        };
        let Ok(made) = mount(&entry, Path::new("/b")) else { panic!("mount") };
        assert_eq!(made.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(made.data, "mode=755,size=65536k");
        assert!(made.bind.is_none());
    }
}
