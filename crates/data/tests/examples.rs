//! The `dataset_summary` and `extract` examples end to end on a small demo
//! corpus, run as the binaries `cargo test` builds.

use std::path::PathBuf;
use std::process::Command;

use hark_data::{SynthConfig, generate_urban_synth};
use tempfile::TempDir;

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = deps
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is missing: run `cargo test` (which builds examples)",
        exe.display()
    );
    exe
}

fn run(name: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(example(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn summary_and_extract_report_the_demo_corpus() {
    let dir = TempDir::new().unwrap();
    generate_urban_synth(
        dir.path(),
        &SynthConfig {
            clips: 40,
            max_seconds: 1.0,
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let csv = dir.path().join("metadata/UrbanSound8K.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let gone = text.lines().nth(1).unwrap().split(',').collect::<Vec<_>>();
    std::fs::remove_file(
        dir.path()
            .join(format!("audio/fold{}/{}", gone[5], gone[0])),
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();

    let summary = run(
        "dataset_summary",
        &["--kind", "urbansound8k", "--path", root],
    );
    assert_eq!(summary["examples"], 39);
    assert_eq!(summary["classes"], 10);
    assert_eq!(summary["missing"].as_array().unwrap().len(), 1);
    let rates = summary["formats"]["sample_rates"].as_object().unwrap();
    assert_eq!(rates.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 39);
    assert_eq!(summary["per_fold_or_split"].as_object().unwrap().len(), 10);

    let cache = dir.path().join("cache");
    let args = [
        "--kind",
        "urbansound8k",
        "--path",
        root,
        "--cache",
        cache.to_str().unwrap(),
        "--duration",
        "1",
    ];
    let cold = run("extract", &args);
    assert_eq!(
        (cold["computed"].as_u64(), cold["cache_hits"].as_u64()),
        (Some(39), Some(0))
    );
    let warm = run("extract", &args);
    assert_eq!(
        (warm["computed"].as_u64(), warm["cache_hits"].as_u64()),
        (Some(0), Some(39))
    );
    assert!(warm["clips_per_second"].as_f64().unwrap() > 0.0);

    let bad = Command::new(example("extract"))
        .args(["--kind", "mp3s", "--path", root])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains(
        "`kind` must be urbansound8k, esc50, esc10, speakers, folders or csv, got \"mp3s\""
    ));
}
