//! Errors: one type that says which stage failed, what it tried, and why,
//! e.g. `toybox: mounts: pivot_root(./rootfs, .): Invalid argument`.

use std::fmt;
use std::io;

use nix::errno::Errno;

/// Exit statuses, as `docker run` uses them.
pub const EXIT_TOYBOX_FAILED: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

pub struct Error {
    pub stage: &'static str,
    pub what: String,
    pub cause: String,
    pub exit_code: i32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.what)?;
        if !self.cause.is_empty() {
            write!(f, ": {}", self.cause)?;
        }
        Ok(())
    }
}

pub fn fail(stage: &'static str, what: impl Into<String>, exit_code: i32) -> Error {
    let what = what.into();
    Error { stage, what, cause: String::new(), exit_code }
}

/// Attach the stage and the attempted action to any OS error.
pub trait Stage<T> {
    fn stage(self, stage: &'static str, what: impl Into<String>) -> Result<T>;
}

impl<T, E: Cause> Stage<T> for std::result::Result<T, E> {
    fn stage(self, stage: &'static str, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error {
            stage,
            what: what.into(),
            cause: e.describe(),
            exit_code: EXIT_TOYBOX_FAILED,
        })
    }
}

/// The OS's own words for an error ("Permission denied"), without decoration.
pub trait Cause {
    fn describe(&self) -> String;
}

impl Cause for Errno {
    fn describe(&self) -> String {
        self.desc().to_string()
    }
}

impl Cause for io::Error {
    fn describe(&self) -> String {
        match self.raw_os_error() {
            Some(errno) => Errno::from_raw(errno).describe(),
            None => self.to_string(),
        }
    }
}

impl Cause for caps::errors::CapsError {
    fn describe(&self) -> String {
        self.to_string()
    }
}

// >> 19 oci
/// A failure the container's process has already reported itself (on
/// stderr and in the --log file): toybox only exits with its status.
pub fn reported(exit_code: i32) -> Error {
    Error { stage: "", what: String::new(), cause: String::new(), exit_code }
}
// << 19
