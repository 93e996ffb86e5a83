//! Running the `hark` binary from the integration tests.

// Each test binary compiles its own copy and uses a part of it.
#![allow(dead_code)]

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

/// A 2-epoch AudioCnn on 1 s clips at 8 kHz over `corpus/`, caching in
/// `cache/`: the cross-validation tests' config.
pub const TINY_CV_CONFIG: &str = r#"
[data]
path = "corpus"
cache_dir = "cache"

[features]
duration = 1.0
mel = { sample_rate = 8000, n_fft = 256, hop_length = 128, n_mels = 16 }

[model]
kind = "audio_cnn"

[train]
epochs = 2
batch_size = 8
threads = 1
"#;

/// Writes a generated 3-fold corpus of `clips` clips of up to 1 s to
/// `dir/corpus` and [`TINY_CV_CONFIG`] to `dir/tiny.toml`.
pub fn tiny_cv_corpus(dir: &Path, clips: usize) {
    let clips = clips.to_string();
    let args = [
        "synth", "--out", "corpus", "--clips", &clips, "--folds", "3",
    ];
    ok(
        dir,
        &[&args[..], &["--max-seconds", "1", "--seed", "2"]].concat(),
    );
    std::fs::write(dir.join("tiny.toml"), TINY_CV_CONFIG).unwrap();
}
