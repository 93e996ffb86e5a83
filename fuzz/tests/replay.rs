//! Replays the hostile corpus of `crates/cli/tests/hostile` through each
//! fuzz target's binary (libFuzzer runs the files it is given once each),
//! so `cargo test` builds the targets from the workspace's own artifacts and
//! every input that ever crashed one stays a regression test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files under `hostile/DIR` (recursively) whose names end in one of `exts`.
fn corpus(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, exts, out);
            } else if exts
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/cli/tests/hostile");
    let mut out = Vec::new();
    walk(&root.join(dir), exts, &mut out);
    out.sort();
    out
}

/// Runs `binary` on `inputs`; it must exit 0 having run every one of them.
fn replay(binary: &str, inputs: &[PathBuf], at_least: usize) {
    assert!(
        inputs.len() >= at_least,
        "{binary}: only {} inputs found",
        inputs.len()
    );
    let out = Command::new(binary)
        .args(inputs)
        .output()
        .expect("the fuzz target runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{binary} failed:\n{stderr}");
    let ran = stderr
        .lines()
        .filter(|l| l.starts_with("Running: "))
        .count();
    assert_eq!(
        ran,
        inputs.len(),
        "{binary} ran {ran} of the inputs:\n{stderr}"
    );
}

#[test]
fn wav_target_takes_every_hostile_wav() {
    replay(env!("CARGO_BIN_EXE_wav"), &corpus("wav", &["wav"]), 40);
}

#[test]
fn audio_target_takes_every_hostile_audio_file() {
    let files = corpus("wav", &["wav", "flac", "mp3", "ogg", "m4a"]);
    replay(env!("CARGO_BIN_EXE_audio"), &files, 50);
}

#[test]
fn manifest_target_takes_every_hostile_manifest() {
    replay(
        env!("CARGO_BIN_EXE_manifest"),
        &corpus("us8k", &["csv"]),
        20,
    );
}

#[test]
fn config_target_takes_every_hostile_config() {
    replay(
        env!("CARGO_BIN_EXE_config"),
        &corpus("config", &["toml"]),
        60,
    );
}
