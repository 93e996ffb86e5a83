//! `hark listen` end to end: train the snap detector on a generated corpus,
//! pipe a generated minute-long recording through standard input as a
//! child process, and score its events; then the bad streams.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::ok;

/// Runs `hark listen` with `input` written to its stdin in 4 KiB chunks;
/// returns its output.
fn listen(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    piped(dir, &[&["listen"], args].concat(), input)
}

/// Runs `hark args` with `input` written to its stdin in 4 KiB chunks from
/// another thread.
fn piped(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hark"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = input.to_vec();
    let writer = std::thread::spawn(move || {
        for chunk in bytes.chunks(4096) {
            if stdin.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A corpus and a snap detector trained on it, shared by the tests.
fn trained() -> &'static (tempfile::TempDir, PathBuf) {
    static RUN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        ok(
            &dir,
            &[
                "synth",
                "--kind",
                "events",
                "--out",
                "corpus",
                "--clips",
                "1200",
                "--recordings",
                "1",
                "--seed",
                "7",
            ],
        );
        train_snap(&dir, "runs/snap", &[]);
        (tmp, dir)
    })
}

/// Trains configs/snap-rnn.toml for 20 epochs on the corpus, with `sets`.
fn train_snap(dir: &Path, out: &str, sets: &[&str]) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/snap-rnn.toml");
    let mut args = vec!["-q", "train", "--config", config, "--out", out];
    for set in ["data.path=\"corpus/annotations.csv\"", "train.epochs=20"]
        .iter()
        .chain(sets)
    {
        args.extend(["--set", set]);
    }
    ok(dir, &args);
}

fn recording(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("corpus/long/recording-00.wav")).unwrap()
}

#[test]
fn a_piped_recording_gives_its_events_at_f1_above_0_8() {
    let (_tmp, dir) = trained();
    let mut wav = recording(dir);
    // As arecord writes to a pipe: a data chunk of unknown size.
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    wav[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let out = listen(
        dir,
        &[
            "--checkpoint",
            "runs/snap",
            "--json",
            "--reference",
            "corpus/events.csv",
            "--score-json",
            "score.json",
            "-",
        ],
        &wav,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["class"], "1");
        let (on, off) = (e["onset"].as_f64().unwrap(), e["offset"].as_f64().unwrap());
        assert!((0.0..=60.0).contains(&on) && off >= on, "{e}");
    }
    let score: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("score.json")).unwrap()).unwrap();
    let f1 = score["f1"].as_f64().unwrap();
    assert!(f1 >= 0.8, "event F1 {f1}: {score}\n{stderr}");
    assert_eq!(score["detected"].as_u64().unwrap() as usize, events.len());
    // The summary: seconds of audio, real-time factor, per-hop times.
    assert!(
        stderr.contains("60.0 s of audio") && stderr.contains("p99"),
        "{stderr}"
    );
}

#[test]
fn a_file_and_raw_pcm_on_stdin_give_the_same_events() {
    let (_tmp, dir) = trained();
    let from_file = ok(
        dir,
        &[
            "-q",
            "listen",
            "--checkpoint",
            "runs/snap",
            "corpus/long/recording-00.wav",
        ],
    );
    // The same audio as raw f32le: the data chunk after its 44-byte header.
    let wav = recording(dir);
    let raw: Vec<u8> = wav[44..]
        .chunks_exact(2)
        .flat_map(|b| (i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).to_le_bytes())
        .collect();
    let out = listen(
        dir,
        &[
            "-q",
            "--checkpoint",
            "runs/snap",
            "--format",
            "f32le",
            "--rate",
            "48000",
            "-",
        ],
        &raw,
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), from_file);
    assert!(from_file.lines().count() > 5);
}

#[test]
fn predict_reads_a_wav_stream_from_stdin_as_it_reads_the_file() {
    let (_tmp, dir) = trained();
    let args = ["-q", "predict", "--checkpoint", "runs/snap", "--json"];
    let file = ok(
        dir,
        &[&args[..], &["corpus/long/recording-00.wav"]].concat(),
    );
    let out = piped(dir, &[&args[..], &["-"]].concat(), &recording(dir));
    assert!(out.status.success());
    let name = |text: &str| text.replace("corpus/long/recording-00.wav", "-");
    assert_eq!(String::from_utf8_lossy(&out.stdout), name(&file));
    // 2,584 frames: the first window at frame 50, one every 25 frames after
    // it (102 in all), one more padded to the end, and the file's line.
    assert_eq!(file.lines().count(), 104);
}

#[test]
fn bad_streams_end_in_a_clear_message_or_documented_handling() {
    let (_tmp, dir) = trained();
    let run = ["--checkpoint", "runs/snap"];
    // Raw bytes without a format.
    let out = listen(dir, &[&run[..], &["-"]].concat(), &[1, 2, 3, 4, 5, 6]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    // Flags that disagree with the WAV header.
    let wav = recording(dir);
    let out = listen(dir, &[&run[..], &["--rate", "16000", "-"]].concat(), &wav);
    assert!(String::from_utf8_lossy(&out.stderr).contains("48000 Hz"));
    // NaN and infinity in float input become silence, with a warning.
    let mut raw: Vec<u8> = (0..48_000)
        .flat_map(|i| ((i as f32 * 0.01).sin() * 0.1).to_le_bytes())
        .collect();
    raw[400..404].copy_from_slice(&f32::NAN.to_le_bytes());
    raw[800..804].copy_from_slice(&f32::INFINITY.to_le_bytes());
    // ... and a partial sample at the end is dropped, with a warning.
    raw.extend_from_slice(&[0, 0]);
    let args = [&run[..], &["--format", "f32le", "--rate", "48000", "-"]].concat();
    let out = listen(dir, &args, &raw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 NaN or infinite samples"), "{stderr}");
    assert!(stderr.contains("2 bytes dropped"), "{stderr}");
    // A stream shorter than one window is evaluated once, padded.
    let short: Vec<u8> = raw[..4800].to_vec();
    let args = [
        &run[..],
        &["--frames", "--format", "f32le", "--rate", "48000", "-"],
    ]
    .concat();
    let out = listen(dir, &args, &short);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // A WAV header claiming more than arrives ends with the stream.
    let cut = &wav[..wav.len() / 2];
    let out = listen(dir, &[&run[..], &["-"]].concat(), cut);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("before the size its WAV header declares")
    );
    // Printed events stay printed when the reader goes away: `| head -1`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hark"))
        .args([
            "listen",
            "--checkpoint",
            "runs/snap",
            "--frames",
            "corpus/long/recording-00.wav",
        ])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn an_mfcc_detector_streams_frame_by_frame_and_finds_the_snaps() {
    let (_tmp, dir) = trained();
    train_snap(
        dir,
        "runs/snap-mfcc",
        &[
            "features.kind=\"mfcc\"",
            "features.n_mfcc=20",
            "features.db.clamp=\"reference\"",
            "train.normalization=\"dataset\"",
        ],
    );
    // Each frame's DCT follows its own (reference) clamp, so the recurrent
    // stream takes MFCC frames one at a time.
    let out = listen(
        dir,
        &[
            "--checkpoint",
            "runs/snap-mfcc",
            "--stream",
            "recurrent",
            "--reference",
            "corpus/events.csv",
            "--score-json",
            "mfcc-score.json",
            "-",
        ],
        &recording(dir),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let score: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mfcc-score.json")).unwrap())
            .unwrap();
    let f1 = score["f1"].as_f64().unwrap();
    assert!(f1 >= 0.6, "event F1 {f1}: {score}\n{stderr}");
}
