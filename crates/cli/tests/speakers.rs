//! Speaker identification splits end to end: a generated speaker tree,
//! `hark split --write-phase-map`, and training on the phase map, with
//! every speaker in training, validation and test.

use std::path::Path;

use hark_data::{Audio, Encoding, write_wav};

mod common;
use common::{hark, ok};

/// Speakers with 4, 2, 1 and 1 sessions: each a tone of its own pitch.
fn speaker_tree(root: &Path) {
    for (s, (name, sessions, per)) in [("ana", 4, 3), ("bo", 2, 4), ("cy", 1, 5), ("di", 1, 3)]
        .into_iter()
        .enumerate()
    {
        for c in 0..sessions {
            let dir = root.join(format!("raw/{name}/session{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for u in 0..per {
                let f = 200.0 * (s + 1) as f32 + 7.0 * u as f32;
                let samples = (0..8000)
                    .map(|i| 0.3 * (std::f32::consts::TAU * f * i as f32 / 8000.0).sin())
                    .collect();
                let audio = Audio {
                    samples,
                    channels: 1,
                    sample_rate: 8000,
                };
                write_wav(&dir.join(format!("{u}.wav")), &audio, Encoding::I16).unwrap();
            }
        }
    }
}

const CONFIG: &str = r#"
[data]
kind = "speakers"
path = "tree"

[features]
duration = 1.0
mel = { sample_rate = 8000, n_fft = 256, hop_length = 128, n_mels = 32 }

[model]
kind = "small_cnn"

[train]
epochs = 2
batch_size = 4
"#;

#[test]
fn a_phase_map_puts_every_speaker_in_every_part_and_training_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    speaker_tree(&dir.join("tree"));
    std::fs::write(dir.join("sp.toml"), CONFIG).unwrap();
    let out = ok(dir, &["split", "--write-phase-map", "-c", "sp.toml"]);
    assert!(out.contains("4 speakers"), "{out}");
    let map = std::fs::read_to_string(dir.join("tree/phase_map.csv")).unwrap();
    for speaker in ["ana", "bo", "cy", "di"] {
        for phase in ["1", "2", "4"] {
            assert!(
                map.lines()
                    .any(|l| l.contains(&format!(",{speaker},"))
                        && l.ends_with(&format!(",{phase}"))),
                "{speaker} has no phase {phase}:\n{map}"
            );
        }
    }
    // ana's four sessions stay whole.
    for c in 0..4 {
        let phases: std::collections::BTreeSet<&str> = (map.lines())
            .filter(|l| l.contains(&format!("raw/ana/session{c}/")))
            .map(|l| l.rsplit(',').next().unwrap())
            .collect();
        assert_eq!(phases.len(), 1, "session {c}: {phases:?}");
    }
    // An existing map is kept unless --force.
    let again = hark(dir, &["split", "--write-phase-map", "-c", "sp.toml"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let out = train(dir, "run", &["data.split=\"phase_map\""]);
    assert!(out.contains("test accuracy"), "{out}");
    let report = std::fs::read_to_string(dir.join("run/report.txt")).unwrap();
    for speaker in ["ana", "bo", "cy", "di"] {
        assert!(report.contains(speaker), "{report}");
    }

    // The dataset's pictures.
    ok(
        dir,
        &[
            "-q", "inspect", "dataset", "-c", "sp.toml", "--plot", "pics",
        ],
    );
    for png in ["pics/sample_rates.png", "pics/class_balance.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 2000, "{png}");
    }

    // Per-band statistics of the training split go into the run's config,
    // and the run evaluates and predicts with them.
    train(dir, "banded", &["train.normalization=\"dataset_per_band\""]);
    let config = std::fs::read_to_string(dir.join("banded/config.toml")).unwrap();
    let stats: toml::Value = toml::from_str(&config).unwrap();
    let mean = stats["train"]["normalization"]["per_band"]["mean"]
        .as_array()
        .unwrap();
    assert_eq!(mean.len(), 32, "{config}");
    ok(dir, &["-q", "eval", "--checkpoint", "banded"]);
    let wav = dir.join("tree/raw/cy/session0/0.wav");
    let out = ok(
        dir,
        &[
            "-q",
            "predict",
            "--checkpoint",
            "banded",
            wav.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with(wav.to_str().unwrap()), "{out}");

    // A map naming a speaker only in test is refused, naming the speaker.
    let edited: String = map
        .lines()
        .map(|l| match l.contains(",di,") {
            true => format!("{},4", &l[..l.rfind(',').unwrap()]),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("tree/phase_map.csv"), edited + "\n").unwrap();
    let bad = hark(dir, &["train", "-c", "sp.toml", "--out", "run2"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("speaker di has none"));

    // "phase_map" without a map is an error naming the file.
    std::fs::remove_file(dir.join("tree/phase_map.csv")).unwrap();
    let bad = hark(
        dir,
        &[
            "train",
            "-c",
            "sp.toml",
            "--set",
            "data.split=\"phase_map\"",
            "--out",
            "run3",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("phase_map.csv"));
}

/// `hark -q train -c sp.toml --set S.. --out out`'s output.
fn train(dir: &Path, out: &str, sets: &[&str]) -> String {
    let mut args = vec!["-q", "train", "-c", "sp.toml", "--out", out];
    for set in sets {
        args.extend(["--set", set]);
    }
    ok(dir, &args)
}

/// The probabilities `hark predict --json` gives `file`'s whole, per class.
fn predicted(dir: &Path, run: &str, file: &str) -> Vec<(String, f64)> {
    let out = ok(
        dir,
        &[
            "-q",
            "predict",
            "--checkpoint",
            run,
            "--json",
            "--top-k",
            "4",
            file,
        ],
    );
    let line = out.lines().last().unwrap();
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(record["type"], "file", "{out}");
    (record["top"].as_array().unwrap().iter())
        .map(|t| {
            let class = t["class"].as_str().unwrap().to_string();
            (class, t["probability"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn spectrogram_and_mfcc_features_train_and_predict_as_they_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    speaker_tree(&dir.join("tree"));
    std::fs::write(dir.join("sp.toml"), CONFIG).unwrap();
    for (kind, extra, rows) in [
        ("log_mel", "features.mel.power=2.0", 32),
        ("spectrogram", "features.mel.power=1.0", 129),
        ("mfcc", "features.n_mfcc=13", 13),
    ] {
        // Per-batch statistics would tie eval's figures to the batch.
        let sets = [
            &format!("features.kind=\"{kind}\""),
            extra,
            "train.normalization=\"per_example\"",
        ];
        let out = train(dir, kind, &sets);
        assert!(out.contains("test accuracy"), "{kind}: {out}");
        let model = std::fs::read_to_string(dir.join(kind).join("model.json")).unwrap();
        assert!(model.contains(&format!("{rows}")), "{kind}: {model}");
        let info: serde_json::Value = serde_json::from_str(&model).unwrap();
        assert_eq!(info["input"]["height"], rows, "{kind}: {model}");
        // Each clip is one model window long, so predict's stream gives
        // the test set's probabilities from eval.
        let csv = std::fs::read_to_string(dir.join(kind).join("predictions.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        for row in lines.take(3) {
            let fields: Vec<&str> = row.split(',').collect();
            let got = predicted(dir, kind, fields[0]);
            assert_eq!(got.len(), 4);
            for (class, p) in got {
                let column = header.iter().position(|h| *h == format!("p_{class}"));
                let want: f64 = fields[column.unwrap()].parse().unwrap();
                assert!(
                    (p - want).abs() < 2e-5,
                    "{kind}, {}: {class} {p} by predict, {want} by eval",
                    fields[0]
                );
            }
        }
    }
    // n_mfcc is refused where it means nothing.
    let bad = hark(
        dir,
        &["train", "-c", "sp.toml", "--set", "features.n_mfcc=13"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("n_mfcc"));
}
