//! The `hark` binary end to end in a temp dir: generate a corpus, train a
//! tiny model for 2 epochs, evaluate, predict, resume, cross-validate two
//! folds, and the usage errors.

use std::path::PathBuf;

mod common;
use common::{hark, ok};

const CONFIG: &str = r#"
[data]
path = "corpus"

[features]
duration = 1.0
mel = { sample_rate = 16000, n_fft = 512, hop_length = 256, n_mels = 32 }

[model]
kind = "audio_cnn"

[train]
epochs = 2
batch_size = 8
optimizer = { kind = "adam", lr = 3e-3 }
"#;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    ok(
        &dir,
        &[
            "synth",
            "--out",
            "corpus",
            "--clips",
            "40",
            "--folds",
            "2",
            "--max-seconds",
            "1.5",
            "--seed",
            "1",
        ],
    );
    std::fs::write(dir.join("tiny.toml"), CONFIG).unwrap();
    (tmp, dir)
}

#[test]
fn train_eval_predict_resume_and_cv_work_from_the_command_line() {
    let (_tmp, dir) = setup();
    let out = ok(
        &dir,
        &[
            "-q",
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "runs/t",
            "--fold",
            "2",
        ],
    );
    assert!(
        out.contains("precision") && out.contains("test accuracy"),
        "{out}"
    );
    for f in [
        "config.toml",
        "model.json",
        "metrics.jsonl",
        "best.safetensors",
        "report.json",
        "predictions.csv",
        "confusion.png",
        "curves.png",
        "train.log",
        "split_summary.json",
    ] {
        assert!(dir.join("runs/t").join(f).exists(), "{f}");
    }
    // The split beside the run: the test CSV lists what the report counts.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("runs/t/report.json")).unwrap())
            .unwrap();
    let tested = report["result"]["examples"].as_u64().unwrap();
    for part in ["train", "val", "test"] {
        let csv = std::fs::read_to_string(dir.join(format!("runs/t/{part}.csv"))).unwrap();
        assert!(csv.starts_with("path,label,class,group,start,end"), "{csv}");
        assert!(
            part == "val" || csv.lines().count() > 1,
            "{part}.csv is empty"
        );
        if part == "test" {
            assert_eq!(csv.lines().count() as u64, tested + 1, "{part}.csv");
        }
    }
    // The run records its test fold, so eval and resume use it.
    let resolved = std::fs::read_to_string(dir.join("runs/t/config.toml")).unwrap();
    assert!(resolved.contains("fold = 2"), "{resolved}");

    let out = ok(&dir, &["-q", "eval", "--checkpoint", "runs/t"]);
    assert!(
        out.contains("weighted avg") && out.contains("test examples"),
        "{out}"
    );

    let wav = std::fs::read_dir(dir.join("corpus/audio/fold1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = ok(
        &dir,
        &[
            "-q",
            "predict",
            "--checkpoint",
            "runs/t",
            "--json",
            "--top-k",
            "2",
            wav.to_str().unwrap(),
        ],
    );
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "file");
    assert_eq!(last["top"].as_array().unwrap().len(), 2);
    let p = last["top"][0]["probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));

    // Continue the run for a third epoch; only the epoch count may change.
    let out = hark(
        &dir,
        &["train", "--resume", "runs/t", "--set", "train.batch_size=4"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.batch_size"));
    ok(
        &dir,
        &[
            "-q",
            "train",
            "--resume",
            "runs/t",
            "--set",
            "train.epochs=3",
        ],
    );
    let metrics = std::fs::read_to_string(dir.join("runs/t/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let log = std::fs::read_to_string(dir.join("runs/t/train.log")).unwrap();
    assert!(log.contains("resuming after epoch 2 of 3"), "{log}");
    assert!(log.contains("epoch 3: train loss"), "{log}");

    let out = ok(
        &dir,
        &[
            "-q",
            "cv",
            "--config",
            "tiny.toml",
            "--out",
            "runs/cv",
            "--folds",
            "1,2",
        ],
    );
    assert!(out.contains("| mean +- std |"), "{out}");
    assert!(dir.join("runs/cv/fold-02/report.txt").exists());
    assert!(dir.join("runs/cv/cv_summary.json").exists());
    assert!(dir.join("runs/cv/confusion.png").exists());
    let fold2 = std::fs::read_to_string(dir.join("runs/cv/fold-02/config.toml")).unwrap();
    assert!(fold2.contains("fold = 2"), "{fold2}");

    let out = ok(
        &dir,
        &[
            "inspect",
            "model",
            "--config",
            "tiny.toml",
            "--classes",
            "10",
        ],
    );
    assert!(out.contains("Trainable parameters: 25"), "{out}");
    let out = ok(&dir, &["inspect", "wav", wav.to_str().unwrap()]);
    assert!(out.contains("16000 Hz") || out.contains("Hz"), "{out}");
    assert!(ok(&dir, &["completions", "bash"]).contains("hark"));
}

#[test]
fn bad_usage_and_bad_configs_exit_2_naming_the_key() {
    let (_tmp, dir) = setup();
    std::fs::write(dir.join("bad.toml"), "[train]\nepocs = 3\n").unwrap();
    let out = hark(&dir, &["train", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("epocs"), "{err}");
    assert_eq!(hark(&dir, &["train"]).status.code(), Some(2));
    // A resumed run keeps its own test fold.
    let out = hark(&dir, &["train", "--resume", "runs/t", "--fold", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(hark(&dir, &["frobnicate"]).status.code(), Some(2));
    // A missing dataset is a failed run, not a usage error.
    let out = hark(
        &dir,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--set",
            "data.path=nowhere",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

#[test]
fn check_overfits_one_batch_or_exits_1_saying_so() {
    let (_tmp, dir) = setup();
    let out = ok(&dir, &["-q", "check", "--config", "tiny.toml"]);
    assert!(
        out.contains("overfitting one batch of 8 examples") && out.contains("passed: loss"),
        "{out}"
    );
    // The curve: a header, then falling losses.
    let losses: Vec<f32> = (out.lines())
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(losses.len() >= 3 && losses.last() < losses.first(), "{out}");
    // A CRNN whose conv stack comes from the config passes too.
    let crnn = r#"model={ kind = "crnn", conv = [{ channels = 8, kernel = 3, pool = 2 }], hidden = 16, lstm_layers = 1 }"#;
    let out = ok(
        &dir,
        &["-q", "check", "--config", "tiny.toml", "--set", crnn],
    );
    assert!(out.contains("crnn") && out.contains("passed"), "{out}");
    // Nothing can be learnt at a learning rate of 0.
    let out = hark(
        &dir,
        &[
            "-q",
            "check",
            "--config",
            "tiny.toml",
            "--steps",
            "20",
            "--set",
            "train.optimizer.lr=0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not fall to 0.05 in 20 steps"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2 + 11);
}
