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
    if let Err(error) = seccomp::export(&PathBuf::from(&out_dir)) {
        eprintln!("toybox: seccomp: compile the filter with libseccomp: {error}");
        exit(1);
    }
    link_libseccomp_statically(&PathBuf::from(out_dir));
}

/// toybox itself calls libseccomp too, for an OCI bundle's profile
/// (src/oci.rs), and stays a static binary. seccomp-sys asks for
/// `-lseccomp`, which ld resolves in the first directory that has either
/// file: a directory searched first that holds only libseccomp.a makes it
/// the static library (Debian's libseccomp-dev ships both).
fn link_libseccomp_statically(out_dir: &std::path::Path) {
    let found = std::process::Command::new("cc").arg("-print-file-name=libseccomp.a").output();
    let archive = found.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let archive = match archive {
        Ok(path) if path.is_absolute() && path.exists() => path,
        _ => {
            eprintln!("toybox: seccomp: libseccomp.a not found (apt-get install libseccomp-dev)");
            exit(1);
        }
    };
    let dir = out_dir.join("static-libseccomp");
    let _ = std::fs::create_dir_all(&dir);
    let link = dir.join("libseccomp.a");
    let _ = std::fs::remove_file(&link);
    if let Err(error) = std::os::unix::fs::symlink(&archive, &link) {
        eprintln!("toybox: seccomp: link {}: {error}", link.display());
        exit(1);
    }
    println!("cargo::rustc-link-search=native={}", dir.display());
    // The archive comes after libc on rustc's command line: libc again.
    println!("cargo::rustc-link-arg=-Wl,-Bstatic");
    println!("cargo::rustc-link-arg=-lc");
}
