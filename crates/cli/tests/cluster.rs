//! The pieces of a cluster cross-validation without a cluster: folds run
//! as separate, concurrent `hark cv --fold K` processes sharing one feature
//! cache, `hark cv --merge` of them equals `hark cv` byte for byte, a
//! missing fold fails the merge unless allowed, and `hark features --shard`
//! fills disjoint shares of the cache. (`tests/slurm.rs` runs the same
//! through a live Slurm.)

use std::path::Path;
use std::process::Command;

mod common;
use common::{hark, ok};

fn cache_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("cache"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn folds_run_apart_merge_to_the_summary_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::tiny_cv_corpus(dir, 30);

    // Shards: disjoint, and together the whole dataset.
    let one = ok(
        dir,
        &["features", "--config", "tiny.toml", "--shard", "1/2"],
    );
    assert!(one.starts_with("shard 1/2: 15 of 15 examples"), "{one}");
    assert_eq!(cache_entries(dir), 15);
    ok(
        dir,
        &["features", "--config", "tiny.toml", "--shard", "2/2"],
    );
    assert_eq!(cache_entries(dir), 30);
    let bad = hark(
        dir,
        &["features", "--config", "tiny.toml", "--shard", "3/2"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 <= I <= N"));
    std::fs::remove_dir_all(dir.join("cache")).unwrap();

    // Three folds at once, as three array tasks would run them, all
    // computing the same cache entries.
    let children: Vec<_> = (1..=3)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_hark"))
                .args(["cv", "--config", "tiny.toml", "--out", "apart", "--fold"])
                .arg(k.to_string())
                .current_dir(dir)
                .output()
        })
        .collect();
    for (k, child) in (1..).zip(children) {
        let out = child.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "fold {k}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with(&format!("fold {k}: test accuracy")),
            "{stdout}"
        );
    }
    assert!(
        !dir.join("apart/cv_summary.json").exists(),
        "a fold writes no summary"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    ok(dir, &["cv", "--config", "tiny.toml", "--out", "together"]);
    let merged = ok(dir, &["cv", "--merge", "apart"]);
    assert!(merged.contains("| mean +- std |"), "{merged}");
    for file in [
        "cv_summary.json",
        "cv_summary.md",
        "confusion.png",
        "cv.json",
    ] {
        let a = std::fs::read(dir.join("together").join(file)).unwrap();
        let b = std::fs::read(dir.join("apart").join(file)).unwrap();
        assert!(a == b, "{file} differs");
    }

    // A finished fold is skipped; a fold outside the dataset is refused.
    let fold = |k| ["cv", "--config", "tiny.toml", "--out", "apart", "--fold", k];
    let again = ok(dir, &fold("2"));
    assert!(again.contains("(finished before)"), "{again}");
    let out = hark(dir, &fold("7"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("folds are 1, 2, 3"));

    // A missing fold: the summary of the others, and exit 1 unless allowed.
    std::fs::remove_dir_all(dir.join("apart/fold-03")).unwrap();
    let out = hark(dir, &["cv", "--merge", "apart"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fold 3 not finished"));
    let summary = std::fs::read_to_string(dir.join("apart/cv_summary.json")).unwrap();
    assert!(summary.contains("\"missing\": [\n    3\n  ]"), "{summary}");
    let allowed = ok(dir, &["cv", "--merge", "apart", "--allow-missing"]);
    assert!(allowed.contains("not finished: fold 3"), "{allowed}");
    let out = hark(dir, &["cv", "--merge", "corpus"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cross-validation root"));

    // Hostile merges: a report whose matrix does not fit the plan, a plan
    // that is not JSON. Each names its file.
    let report = dir.join("apart/fold-01/report.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    json["result"]["confusion"] = serde_json::json!([[1, 2]]);
    std::fs::write(&report, json.to_string()).unwrap();
    let out = hark(dir, &["cv", "--merge", "apart", "--allow-missing"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fold-01/report.json: a confusion matrix over"),
        "{stderr}"
    );
    let many: Vec<u32> = (1..=5000).collect();
    let plan = serde_json::json!({ "folds": many, "classes": ["a", "b"] });
    std::fs::write(dir.join("apart/cv.json"), plan.to_string()).unwrap();
    let out = hark(dir, &["cv", "--merge", "apart"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("5000 folds (a cross-validation has at most 1000)"),
        "{stderr}"
    );
    std::fs::write(dir.join("apart/cv.json"), "{\"folds\": [1, 2").unwrap();
    let out = hark(dir, &["cv", "--merge", "apart"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cv.json"), "{stderr}");

    // The emitted script names every piece by absolute path.
    let script = ok(
        dir,
        &[
            "cv",
            "--emit",
            "slurm",
            "--config",
            "tiny.toml",
            "--cpus",
            "2",
        ],
    );
    let root = dir.canonicalize().unwrap();
    assert!(
        script.contains(&format!("--config {}", root.join("tiny.toml").display())),
        "{script}"
    );
    assert!(script.contains("#SBATCH --cpus-per-task=2"), "{script}");
    assert!(script.contains("#SBATCH --array=1-3"), "{script}");
    assert!(
        !script.contains("hark-features"),
        "no shards asked for: {script}"
    );
    let args = ["cv", "--emit", "slurm", "--config", "tiny.toml", "--folds"];
    let script = ok(dir, &[&args[..], &["3,1"]].concat());
    assert!(script.contains("#SBATCH --array=1,3"), "{script}");
    let out = hark(dir, &[&args[..], &["4"]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no fold 4"));
}
