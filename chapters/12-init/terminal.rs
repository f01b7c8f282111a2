//! The terminal: with one on stdin, the container gets the foreground.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{Pid, getpgrp, setpgid, tcgetpgrp, tcsetpgrp};

use crate::error::{Result, Stage};

/// With a terminal on stdin, the container becomes its foreground process
/// group, as a shell does for a job: Ctrl-C then reaches the processes in the
/// container, not toybox (which would forward it to PID 1 and, after the grace
/// period, kill it). Dropping this hands the terminal back.
pub struct Foreground {
    pgrp: Pid,
}

pub fn give_terminal_to(pid: Pid) -> Result<Option<Foreground>> {
    let Ok(owner) = tcgetpgrp(io::stdin()) else {
        return Ok(None); // not a terminal
    };
    let pgrp = getpgrp();
    if owner != pgrp {
        return Ok(None); // toybox itself runs in the background
    }
    setpgid(pid, pid).stage("terminal", format!("setpgid({pid}, {pid})"))?;
    tcsetpgrp(io::stdin(), pid).stage("terminal", format!("tcsetpgrp(stdin, {pid})"))?;
    Ok(Some(Foreground { pgrp }))
}

impl Drop for Foreground {
    /// From the background, tcsetpgrp needs SIGTTOU blocked (tcsetpgrp(3)).
    fn drop(&mut self) {
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None);
        let _ = tcsetpgrp(io::stdin(), self.pgrp);
    }
}
