//! The seccomp filter's rules: contained.c's `seccomp_rule_add` list, then
//! what kernels since 4.6 added that reaches the same ends (the audit table is
//! in chapters/07-seccomp). Every other call is allowed.
//!
//! libseccomp, through syscallz, compiles them to classic BPF once, when
//! toybox is built: build.rs calls `export`, and main.rs loads the programs
//! with one prctl each. libseccomp writes the architecture check, the x32
//! check and the jumps. Compiling at every start instead cost ~0.14 ms more
//! per container (chapters/07-seccomp/README.md).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use seccomp_sys::{
    SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, scmp_arg_cmp, scmp_compare,
};
use seccomp_sys::{scmp_filter_attr, scmp_filter_ctx, seccomp_attr_set, seccomp_init};
use seccomp_sys::{
    seccomp_export_bpf, seccomp_export_pfc, seccomp_release, seccomp_rule_add_array,
};
use syscallz::{Action, Cmp, Comparator, Context, Syscall};

const EPERM: Action = Action::Errno(libc::EPERM as u16);
const ENOSYS: Action = Action::Errno(libc::ENOSYS as u16);

/// setuid and setgid: a file with either would let a later process gain
/// this uid on the host. "Either bit" is one rule per bit: libseccomp ORs the
/// rules of one call.
const SET_ID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];
/// The open flags that make a file: O_CREAT, and O_TMPFILE's own bit (it is
/// defined with O_DIRECTORY, which alone makes nothing).
const CREATE_FLAGS: [u64; 2] =
    [libc::O_CREAT as u64, (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64];
const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
const TIOCSTI: u64 = libc::TIOCSTI;

/// Argument `arg` has `bit` set: `SCMP_CMP_MASKED_EQ, bit, bit`.
fn has(arg: u32, bit: u64) -> Comparator {
    Comparator::new(arg, Cmp::MaskedEq, bit, Some(bit))
}

/// Argument `arg` is `value` in its low 32 bits. Not `Cmp::Eq`, which
/// compares all 64: the kernel reads an int argument (ioctl's command) as 32
/// bits, so TIOCSTI with a high bit set would pass Eq and still be TIOCSTI.
fn is(arg: u32, value: u64) -> Comparator {
    Comparator::new(arg, Cmp::MaskedEq, 0xffff_ffff, Some(value))
}

/// The rules, as libseccomp takes them. The default action allows.
pub fn filter() -> syscallz::Result<Context> {
    let mut filter = Context::init_with_action(Action::Allow)?;
    for bit in SET_ID_BITS {
        filter.set_rule_for_syscall(EPERM, Syscall::chmod, &[has(1, bit)])?;
        filter.set_rule_for_syscall(EPERM, Syscall::fchmod, &[has(1, bit)])?;
        filter.set_rule_for_syscall(EPERM, Syscall::fchmodat, &[has(2, bit)])?;
    }
    // A nested user namespace gives back every capability dropped here.
    filter.set_rule_for_syscall(EPERM, Syscall::unshare, &[has(0, CLONE_NEWUSER)])?;
    filter.set_rule_for_syscall(EPERM, Syscall::clone, &[has(0, CLONE_NEWUSER)])?;
    // TIOCSTI pushes keystrokes into the terminal outside. Matched exactly:
    // contained.c's masked match also hit TIOCGWINSZ and FIONREAD.
    filter.set_rule_for_syscall(EPERM, Syscall::ioctl, &[is(1, TIOCSTI)])?;
    // The kernel keyring is not namespaced.
    filter.set_action_for_syscall(EPERM, Syscall::keyctl)?;
    filter.set_action_for_syscall(EPERM, Syscall::add_key)?;
    filter.set_action_for_syscall(EPERM, Syscall::request_key)?;
    // ptrace has a history of seccomp bypasses on older kernels.
    filter.set_action_for_syscall(EPERM, Syscall::ptrace)?;
    // NUMA placement reaches past the container's own memory.
    filter.set_action_for_syscall(EPERM, Syscall::mbind)?;
    filter.set_action_for_syscall(EPERM, Syscall::migrate_pages)?;
    filter.set_action_for_syscall(EPERM, Syscall::move_pages)?;
    filter.set_action_for_syscall(EPERM, Syscall::set_mempolicy)?;
    // Lets a kernel exploit pause the kernel mid-copy.
    filter.set_action_for_syscall(EPERM, Syscall::userfaultfd)?;
    // Leaks kernel addresses and has had many exploitable bugs.
    filter.set_action_for_syscall(EPERM, Syscall::perf_event_open)?;

    // --- Since 2016. A setuid/setgid file can also be made at creation time
    // (fchmodat2, 6.6, is in `SecondFilter`).
    for bit in SET_ID_BITS {
        for create in CREATE_FLAGS {
            filter.set_rule_for_syscall(EPERM, Syscall::open, &[has(1, create), has(2, bit)])?;
            filter.set_rule_for_syscall(EPERM, Syscall::openat, &[has(2, create), has(3, bit)])?;
        }
        filter.set_rule_for_syscall(EPERM, Syscall::creat, &[has(1, bit)])?;
        filter.set_rule_for_syscall(EPERM, Syscall::mknod, &[has(1, bit)])?;
        filter.set_rule_for_syscall(EPERM, Syscall::mknodat, &[has(2, bit)])?;
    }
    // clone3 (5.3) and openat2 (5.6) pass flags and mode in a struct in
    // memory, which a filter cannot read. ENOSYS makes libc fall back to
    // clone and openat, which the rules above can check.
    filter.set_action_for_syscall(ENOSYS, Syscall::clone3)?;
    filter.set_action_for_syscall(ENOSYS, Syscall::openat2)?;
    // io_uring (5.1) performs opens and more without syscalls the filter sees.
    filter.set_action_for_syscall(EPERM, Syscall::io_uring_setup)?;
    filter.set_action_for_syscall(EPERM, Syscall::io_uring_enter)?;
    filter.set_action_for_syscall(EPERM, Syscall::io_uring_register)?;
    Ok(filter)
}

/// What syscallz 0.17 cannot say, said to libseccomp directly (seccomp-sys,
/// syscallz's own binding): its `Syscall` list ends at 451, before fchmodat2
/// (6.6, fchmodat with flags), and its `Context` cannot set the action for
/// other ABIs (i386 `int 0x80`, x32), whose numbers mean other calls:
/// libseccomp's default there kills only the thread. The kernel runs both
/// filters and takes the strictest answer (seccomp(2)), so this one's
/// KILL_PROCESS decides for other ABIs.
pub struct SecondFilter(*mut scmp_filter_ctx);

impl SecondFilter {
    pub fn new() -> io::Result<SecondFilter> {
        // SAFETY: seccomp_init returns an owned context or null; Drop releases it.
        let filter = SecondFilter(unsafe { seccomp_init(SCMP_ACT_ALLOW) });
        if filter.0.is_null() {
            return Err(io::Error::other("seccomp_init failed"));
        }
        let bad_arch = scmp_filter_attr::SCMP_FLTATR_ACT_BADARCH;
        // SAFETY: a live context; plain values.
        check(unsafe { seccomp_attr_set(filter.0, bad_arch, SCMP_ACT_KILL_PROCESS) })?;
        for bit in SET_ID_BITS {
            let mode = scmp_arg_cmp {
                arg: 2,
                op: scmp_compare::SCMP_CMP_MASKED_EQ,
                datum_a: bit,
                datum_b: bit,
            };
            let eperm = SCMP_ACT_ERRNO(libc::EPERM as u32);
            // SAFETY: a live context; one comparison, which libseccomp copies.
            check(unsafe { seccomp_rule_add_array(filter.0, eperm, SYS_FCHMODAT2, 1, &mode) })?;
        }
        Ok(filter)
    }
}

const SYS_FCHMODAT2: i32 = 452; // asm/unistd_64.h

impl Drop for SecondFilter {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the context came from seccomp_init and is released once.
            unsafe { seccomp_release(self.0) }
        }
    }
}

/// libseccomp returns 0 or a negated errno.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::from_raw_os_error(-rc)) } else { Ok(()) }
}

/// Writes both filters into `dir` as the kernel takes them (seccomp.bpf,
/// seccomp-second.bpf) and as libseccomp's readable pseudo code (.pfc).
pub fn export(dir: &Path) -> io::Result<()> {
    let create = |name: &str| File::create(dir.join(name));
    let syscallz = |e: syscallz::Error| io::Error::other(e.to_string());
    let first = filter().map_err(syscallz)?;
    first.export_bpf(&mut create("seccomp.bpf")?).map_err(syscallz)?;
    first.export_pfc(&mut create("seccomp.pfc")?).map_err(syscallz)?;
    let second = SecondFilter::new()?;
    // SAFETY: a live context and an open file descriptor.
    check(unsafe { seccomp_export_bpf(second.0, create("seccomp-second.bpf")?.as_raw_fd()) })?;
    check(unsafe { seccomp_export_pfc(second.0, create("seccomp-second.pfc")?.as_raw_fd()) })
}
