//! The `logmel` example end to end: a WAV file in, a `.npy` out, equal to
//! torchaudio's log-mel of the same samples (the golden `signal_22050hz_1s.wav`
//! is the float32 WAV of `signal_22050hz_1s.npy`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{data_path, read_npy, read_npy_path};

/// The example binary `cargo test` builds next to the test executables.
fn logmel_binary() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = deps
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("logmel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is missing: run `cargo test` (which builds examples)",
        exe.display()
    );
    exe
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(logmel_binary()).args(args).output().unwrap()
}

#[test]
fn logmel_writes_torchaudios_log_mel_as_npy() {
    let out = std::env::temp_dir().join(format!("hark-logmel-{}.npy", std::process::id()));
    let wav = data_path("signal_22050hz_1s.wav");
    let status = run(&[
        wav.to_str().unwrap(),
        out.to_str().unwrap(),
        "--n-fft",
        "1024",
        "--hop-length",
        "512",
        "--n-mels",
        "64",
        "--center",
        "true",
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let got = read_npy_path(&out);
    std::fs::remove_file(&out).unwrap();
    let want = read_npy("htk_norm-none_reflect.torchaudio.db.npy");
    assert_eq!(got.shape, want.shape);
    let worst = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 0.01, "max error {worst} dB");
}

#[test]
fn logmel_names_bad_flags_and_files() {
    let bad_flag = run(&["a.wav", "b.npy", "--center", "maybe"]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_flag.stderr)
            .contains("--center: expected true or false, got \"maybe\"")
    );
    let missing = run(&["/nonexistent/x.wav", "b.npy"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.wav"));
}
