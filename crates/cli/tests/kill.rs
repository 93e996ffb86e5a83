//! A run killed with SIGKILL at 20 points, between the two writes of a
//! checkpoint among them, and resumed each time, ends byte for byte as an
//! uninterrupted run: weights, report, predictions and metrics (wall times
//! aside).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::ok;

const CONFIG: &str = r#"
[data]
path = "corpus"

[features]
duration = 1.0
mel = { sample_rate = 8000, n_fft = 256, hop_length = 128, n_mels = 16 }

[augment]
time_shift = 0.2
spec_augment = { freq_masks = 1, freq_mask_param = { fraction = 0.2 }, time_masks = 1, time_mask_param = { fraction = 0.2 }, fill = "mean" }

[model]
kind = "audio_cnn"
dropout = 0.2

[train]
epochs = 16
batch_size = 8
optimizer = { kind = "adam_w", lr = 3e-3 }
schedule = { kind = "one_cycle", anneal = "linear" }
mixup = 0.2
threads = 1
"#;

/// `hark train` into `killed` (a fresh run, or `--resume` of it), pausing
/// 250 ms after each checkpoint commit (so that a kill lands there, and a
/// process gets through a bounded part of the run before its kill).
fn start(dir: &Path, resume: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hark"));
    if resume {
        cmd.args(["train", "--resume", "killed"]);
    } else {
        cmd.args(["train", "--config", "kill.toml", "--out", "killed"]);
    }
    cmd.env("HARK_TEST_PAUSE_AFTER_COMMIT", "250")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child` once it has paused after its `n`-th checkpoint commit;
/// returns whether it got that far (it may finish first).
fn kill_at_commit(mut child: Child, n: usize) -> bool {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    for line in stderr.lines() {
        if line.unwrap().starts_with("paused after committing") {
            seen += 1;
            if seen == n {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
        }
    }
    child.wait().unwrap();
    false
}

/// Kills `child` after `ms` milliseconds, if it still runs.
fn kill_after(mut child: Child, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    child.wait().unwrap();
}

/// Each JSON document of the file at `path` (one, or one per line) without
/// the wall-time fields, which no two runs share.
fn without_timings(path: &Path) -> Vec<serde_json::Value> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("seconds");
                m.remove("samples_per_second");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<serde_json::Value>()
        .map(|v| {
            let mut v = v.unwrap();
            strip(&mut v);
            v
        })
        .collect()
}

#[test]
fn a_run_killed_anywhere_and_resumed_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let synth = [
        "synth",
        "--out",
        "corpus",
        "--clips",
        "36",
        "--folds",
        "3",
        "--max-seconds",
        "1",
    ];
    ok(dir, &synth);
    std::fs::write(dir.join("kill.toml"), CONFIG).unwrap();
    ok(
        dir,
        &["-q", "train", "--config", "kill.toml", "--out", "whole"],
    );

    // 20 kills: every other one between the two writes of a checkpoint (the
    // 1st to 3rd commit of that process), the rest after 0.1 to 1 s.
    let mut started = false;
    let mut between = 0;
    for i in 0..20u64 {
        let child = start(dir, started);
        if i % 2 == 0 {
            let landed = kill_at_commit(child, 1 + (i as usize / 2) % 3);
            eprintln!("kill {i}: between two writes: {landed}");
            between += usize::from(landed);
        } else {
            kill_after(child, 100 + (i * 397) % 900);
        }
        started |= dir.join("killed/config.toml").exists();
        // A kill leaves no half-written file behind once the run goes on.
    }
    assert!(
        between >= 5,
        "only {between} kills landed between two writes"
    );
    let finish = start(dir, started).wait_with_output().unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );

    let (a, b) = (dir.join("whole"), dir.join("killed"));
    for name in ["best.safetensors", "last.safetensors", "predictions.csv"] {
        let (x, y) = (
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs after the kills");
    }
    // Compared as parsed values: serde_json reads floats back exactly, so
    // a value off by one ULP would show.
    for name in ["metrics.jsonl", "report.json"] {
        let (x, y) = (
            without_timings(&a.join(name)),
            without_timings(&b.join(name)),
        );
        assert!(!x.is_empty() && x == y, "{name} differs after the kills");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
