//! The plain test harness tests/container.rs, tests/unpack.rs, tests/oci.rs
//! and tests/podman.rs share (no libtest: the tests run one at a time, as
//! root, against real containers, and a skip says why). `cargo test --release --test NAME -- SUBSTRING`
//! runs the tests whose names contain SUBSTRING.

use std::io::Write;
use std::time::Instant;

/// The tests named on the command line, or all of them.
#[allow(dead_code)] // tests/podman.rs names its rows at run time: it asks wanted()
pub fn selected<'a, T>(tests: &'a [(&'static str, T)]) -> Vec<&'a (&'static str, T)> {
    tests.iter().filter(|(name, _)| wanted(name)).collect()
}

/// Whether the command line selects the test `name` (no filter: all do).
pub fn wanted(name: &str) -> bool {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

#[derive(Default)]
pub struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Tally {
    pub fn skip(&mut self, name: &str, reason: &str) {
        println!("SKIP {name}: {reason}");
        self.skipped += 1;
    }

    pub fn fail(&mut self, name: &str, error: &str) {
        println!("FAIL {name}: {error}");
        self.failed += 1;
    }

    pub fn run(&mut self, name: &str, test: impl FnOnce() -> Result<(), String>) {
        let started = Instant::now();
        match test() {
            Ok(()) => {
                println!("ok   {name} ({} ms)", started.elapsed().as_millis());
                self.passed += 1;
            }
            Err(e) => self.fail(name, &e),
        }
        let _ = std::io::stdout().flush();
    }

    /// Prints the counts and exits, non-zero if anything failed.
    pub fn finish(self, suite: &str) -> ! {
        let Tally { passed, failed, skipped } = self;
        println!("{suite}: {passed} passed, {failed} failed, {skipped} skipped");
        std::process::exit(if failed == 0 { 0 } else { 1 });
    }
}
