//! cgroup v2, beside main.rs's v1 path: the same limits through the unified
//! hierarchy most hosts run today (cgroups(7), Documentation/admin-guide/cgroup-v2.rst).
//!
//! One tree at /sys/fs/cgroup. A controller works in a group only if every
//! ancestor lists it in `cgroup.subtree_control`, and a group with processes
//! cannot hand controllers to children ("no internal processes"; the root is
//! exempt). So, as runtimes with a cgroupfs driver do, every container's
//! group is made in one parent, /sys/fs/cgroup/toybox, which holds no
//! process and whose subtree_control lists the controllers toybox needs.
//! Those are enabled once and left on: turning one off while another
//! container is starting would race it, and the root belongs to the host's
//! init. The root only gains what the parent needs and never loses any.
//! The child is cloned straight into its group with
//! clone3(CLONE_INTO_CGROUP), so it never runs a line outside it.

use std::fs;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use crate::{CGROUP_ROOT, Cause, CgroupSetting, GIB, Result, Stage, optional, required};

/// contained.c's limits in v2's terms.
/// - memory.swap.max 0: the 1 GiB is real memory; swap cannot stretch it
///   (v1's memsw limit says the same).
/// - cpu.weight 25: v1's cpu.shares 256 was a quarter of the default 1024;
///   v2's default weight is 100, so a quarter is 25. (The 1..262144 ->
///   1..10000 range mapping some runtimes use turns 256 into 10, a tenth.)
/// - io.weight 10: blkio.weight 50 was a tenth of v1's default 500; v2's
///   default is 100.
pub const SETTINGS: &[CgroupSetting] = &[
    required("memory", "memory.max", GIB),
    optional("memory", "memory.swap.max", "0"),
    required("cpu", "cpu.weight", "25"),
    required("pids", "pids.max", "64"),
    optional("io", "io.weight", "10"),
];

pub struct Group {
    pub path: PathBuf,
    /// The group's directory once made, for clone3's `cgroup` field.
    fd: Option<OwnedFd>,
    /// Where toybox was, if it had to join the group itself (no clone3).
    joined_from: Option<PathBuf>,
}

/// `group` is the container's, relative to the root: its parents are made
/// as needed, each handing the controllers down.
pub fn create(
    group: &Path,
    settings: &[CgroupSetting],
    devices: &[crate::DeviceRule],
) -> Result<Group> {
    let root = Path::new(CGROUP_ROOT);
    let available = read(&root.join("cgroup.controllers"))?;
    let mut wanted: Vec<&'static str> = settings.iter().map(|s| s.controller).collect();
    wanted.dedup();
    let missing: Vec<&str> = wanted.iter().copied().filter(|c| !has_word(&available, c)).collect();
    crate::warn_unlimited("v2", &missing);
    wanted.retain(|c| !missing.contains(c));

    enable_controllers(root, &wanted)?;
    let mut parent = root.to_path_buf();
    for part in group.parent().into_iter().flat_map(Path::components) {
        parent.push(part);
        crate::make_parent_group(&parent)?;
        enable_controllers(&parent, &wanted)?;
    }
    let mut group = Group { path: root.join(group), fd: None, joined_from: None };
    fs::create_dir(&group.path).stage("cgroups", format!("mkdir {}", group.path.display()))?;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = open(&group.path, flags, Mode::empty());
    group.fd = Some(fd.stage("cgroups", format!("open {}", group.path.display()))?);
    for setting in settings.iter().filter(|s| !missing.contains(&s.controller)) {
        crate::write_setting(&group.path, setting)?;
    }
    attach_device_filter(&group.path, devices)?;
    Ok(group)
}

impl Group {
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// The fallback where clone3 is missing (before 5.7) or refused: join
    /// the group as contained.c does, so the child is born inside. v2 moves
    /// whole processes only (`cgroup.threads` works only in threaded
    /// subtrees), so this write pays the wait v1's `tasks` avoids (see
    /// create_cgroups_v1); CLONE_INTO_CGROUP needs no write at all.
    pub fn join(&mut self) -> Result<()> {
        let own = read(Path::new("/proc/self/cgroup"))?;
        let current = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
        let procs = self.path.join("cgroup.procs");
        fs::write(&procs, "0").stage("cgroups", format!("write {}", procs.display()))?;
        self.joined_from = Some(Path::new(CGROUP_ROOT).join(current.trim_start_matches('/')));
        Ok(())
    }
}

impl Drop for Group {
    /// rmdir fails while the group is populated, and a reaped PID 1 may
    /// leave its namespace's last processes exiting for a moment: wait for
    /// `populated 0` in cgroup.events, which the kernel signals with POLLPRI.
    fn drop(&mut self) {
        if self.fd.is_none() {
            return; // the group was never made
        }
        if let Some(from) = &self.joined_from {
            let procs = from.join("cgroup.procs");
            if let Err(e) = fs::write(&procs, "0") {
                eprintln!("toybox: cleanup: write {}: {}", procs.display(), e.describe());
            }
        }
        if let Err(e) = wait_until_empty(&self.path) {
            eprintln!("toybox: cleanup: {e}");
        }
        if let Err(e) = fs::remove_dir(&self.path) {
            eprintln!("toybox: cleanup: rmdir {}: {}", self.path.display(), e.describe());
        }
    }
}

fn wait_until_empty(group: &Path) -> Result<()> {
    let path = group.join("cgroup.events");
    let mut events = fs::File::open(&path).stage("cleanup", format!("open {}", path.display()))?;
    loop {
        let mut text = String::new();
        events.rewind().stage("cleanup", format!("seek {}", path.display()))?;
        events.read_to_string(&mut text).stage("cleanup", format!("read {}", path.display()))?;
        if text.lines().any(|l| l == "populated 0") {
            return Ok(());
        }
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLPRI)];
        poll(&mut fds, PollTimeout::from(5000u16))
            .stage("cleanup", format!("poll {}", path.display()))?;
    }
}

/// Enable in `group`'s subtree_control those of `controllers` it lacks.
/// Writing one already on changes nothing, and another toybox may be doing
/// the same at once: only a "+", never a "-", so neither can undo the other.
fn enable_controllers(group: &Path, controllers: &[&str]) -> Result<()> {
    let file = group.join("cgroup.subtree_control");
    let active = read(&file)?;
    for controller in controllers.iter().filter(|c| !has_word(&active, c)) {
        fs::write(&file, format!("+{controller}"))
            .stage("cgroups", format!("write +{controller} to {}", file.display()))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    crate::read_kernel_file(path).stage("cgroups", format!("read {}", path.display()))
}

fn has_word(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// cgroup v2 has no devices files: the kernel asks a BPF program attached to
/// the group (BPF_PROG_TYPE_CGROUP_DEVICE; cgroup-v2.rst, "Device
/// controller") about every open and mknod of a device node, and it returns
/// 1 to allow, 0 to refuse. toybox writes the program out from v1's
/// devices.allow rows, so both versions allow the same devices.
fn attach_device_filter(group: &Path, devices: &[crate::DeviceRule]) -> Result<()> {
    let program = device_program(devices);
    let (insns, license) = (program.as_ptr() as u64, c"GPL".as_ptr() as u64);
    // The start of union bpf_attr for BPF_PROG_LOAD (bpf(2)): prog_type
    // BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt, insns, license, no log.
    let load = [15, program.len() as u32, insns as u32, (insns >> 32) as u32];
    let load = [load, [license as u32, (license >> 32) as u32, 0, 0]].concat();
    let prog = bpf(BPF_PROG_LOAD, &load).stage("cgroups", "bpf(BPF_PROG_LOAD, devices)")?;
    // SAFETY: BPF_PROG_LOAD returns a new descriptor, ours to close.
    let prog = unsafe { OwnedFd::from_raw_fd(prog) };
    // BPF_PROG_ATTACH wants a readable descriptor of the group, not O_PATH.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir =
        open(group, flags, Mode::empty()).stage("cgroups", format!("open {}", group.display()))?;
    // target_fd, attach_bpf_fd, attach_type BPF_CGROUP_DEVICE, attach_flags.
    let attach = [dir.as_raw_fd() as u32, prog.as_raw_fd() as u32, 6, 0];
    let what = format!("bpf(BPF_PROG_ATTACH, {})", group.display());
    bpf(BPF_PROG_ATTACH, &attach).stage("cgroups", what)?;
    Ok(()) // the group holds the program now; both descriptors may close
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;

fn bpf(cmd: libc::c_long, attr: &[u32]) -> std::io::Result<i32> {
    let size = std::mem::size_of_val(attr);
    // SAFETY: attr is the start of a union bpf_attr, `size` bytes; the
    // pointers in it (instructions, license) outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), size) };
    match rc {
        -1 => Err(std::io::Error::last_os_error()),
        rc => Ok(rc as i32),
    }
}

/// One eBPF instruction (struct bpf_insn): opcode, dst and src registers,
/// offset, immediate.
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

#[cfg(test)]
pub fn insn_jump(insn: &Insn) -> (u8, i16) {
    (insn.code, insn.off)
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// The program. Its context (struct bpf_cgroup_dev_ctx) is three u32s:
/// access_type (the access bits << 16 | the device type), major, minor.
/// Access bits are mknod 1, read 2, write 4, as v1's `m`, `r`, `w`; the
/// type of a block device is 1, of a character device 2. Each rule is a few
/// compares that jump past it on a mismatch, or allow; after the last comes
/// "refuse".
pub fn device_program(rules: &[crate::DeviceRule]) -> Vec<Insn> {
    const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
    const AND: u8 = 0x57; // dst &= imm
    const RSH: u8 = 0x77; // dst >>= imm
    const MOV: u8 = 0xb7; // dst = imm
    const MOV_X: u8 = 0xbf; // dst = src
    const JNE: u8 = 0x55; // if dst != imm, skip off instructions
    const EXIT: u8 = 0x95; // return r0
    let mut program = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = access_type
        insn(MOV_X, 3, 2, 0, 0),
        insn(AND, 3, 0, 0, 0xffff), // r3 = type
        insn(RSH, 2, 0, 0, 16),     // r2 = access
        insn(LDX_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_W, 5, 1, 8, 0),    // r5 = minor
    ];
    let mut body = Vec::new();
    for rule in rules.iter().rev() {
        // Built from the last rule back, so each knows how far "next" is.
        let mut this =
            vec![insn(JNE, 3, 0, 0, rule.kind as i32), insn(JNE, 4, 0, 0, rule.major as i32)];
        if let Some(minor) = rule.minor {
            this.push(insn(JNE, 5, 0, 0, minor as i32));
        }
        this.push(insn(MOV_X, 6, 2, 0, 0));
        this.push(insn(AND, 6, 0, 0, !(rule.access as i32))); // access not allowed
        this.push(insn(JNE, 6, 0, 2, 0));
        this.push(insn(MOV, 0, 0, 0, 1));
        this.push(insn(EXIT, 0, 0, 0, 0));
        let len = this.len() as i16;
        for (at, step) in this.iter_mut().enumerate() {
            if step.code == JNE && step.off == 0 {
                step.off = len - at as i16 - 1; // to the next rule
            }
        }
        this.append(&mut body);
        body = this;
    }
    program.append(&mut body);
    program.push(insn(MOV, 0, 0, 0, 0));
    program.push(insn(EXIT, 0, 0, 0, 0));
    program
}
