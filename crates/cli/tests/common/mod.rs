//! Running the `hark` binary from the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `hark args` in `dir`.
pub fn hark(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hark"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Runs `hark args` in `dir`, fails the test unless it succeeds, and returns
/// its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = hark(dir, args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "hark {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout.into_owned()
}
