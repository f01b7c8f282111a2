//! Compiles the seccomp filter (src/seccomp.rs) with libseccomp once, when
//! toybox is built, into OUT_DIR; the binaries embed the programs and load
//! them at start with one prctl each, instead of compiling the same rules at
//! every container start (chapters/07-seccomp/README.md has the numbers).

#[path = "src/seccomp.rs"]
mod seccomp;

use std::path::PathBuf;
use std::process::exit;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/seccomp.rs");
    // A build script runs on the build machine, and syscallz numbers the
    // calls for the architecture it is compiled for: that must be toybox's.
    let target = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !cfg!(target_arch = "x86_64") || target != "x86_64" {
        eprintln!("toybox: seccomp: the filter names x86_64 syscalls; build on and for x86_64");
        exit(1);
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        eprintln!("toybox: seccomp: cargo set no OUT_DIR");
        exit(1);
    };
    if let Err(error) = seccomp::export(&PathBuf::from(out_dir)) {
        eprintln!("toybox: seccomp: compile the filter with libseccomp: {error}");
        exit(1);
    }
}
