//! `hark cv --emit slurm` against a live Slurm: the emitted script is
//! submitted for a tiny generated corpus (3 folds, 2 epochs, features
//! extracted by a 2-task array first), and the merged summary must equal a
//! local `hark cv` byte for byte; submitted again after a fold's report is
//! lost, it re-runs that fold only.
//!
//! It needs a cluster: `scripts/slurm-local.sh run cargo test --test slurm`
//! starts a one-node one (`.ci/run` runs every test that way). Without
//! `SLURM_CONF` and a reachable controller the test says so and passes,
//! unless `HARK_REQUIRE_SLURM=1`, as in CI, where it fails.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::ok;

/// The longest the jobs may take, queueing included.
const TIMEOUT: Duration = Duration::from_secs(300);

fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Why no cluster can be used, if none can.
fn no_cluster() -> Option<String> {
    if std::env::var_os("SLURM_CONF").is_none() {
        return Some("SLURM_CONF is not set".into());
    }
    match Command::new("scontrol").arg("ping").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("UP") => None,
        Ok(out) => Some(format!(
            "scontrol ping: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        Err(e) => Some(format!("scontrol: {e}")),
    }
}

/// Submits `script` and waits for every job it printed to leave the queue.
fn submit_and_wait(script: &Path, dir: &Path) -> String {
    let out = run("bash", &[script.to_str().unwrap()], dir);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids: Vec<&str> = (printed.lines())
        .filter_map(|l| l.split_once(": job ").map(|(_, id)| id.trim()))
        .collect();
    assert_eq!(ids.len(), 3, "features, folds and merge: {printed}");
    let start = Instant::now();
    loop {
        let queue = run("squeue", &["-h", "-j", &ids.join(","), "-o", "%i %T"], dir);
        let queue = String::from_utf8_lossy(&queue.stdout).into_owned();
        if queue.trim().is_empty() {
            return printed;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "jobs still queued after {TIMEOUT:?}:\n{queue}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn emitted_slurm_jobs_merge_to_the_local_summary() {
    if let Some(why) = no_cluster() {
        assert!(
            std::env::var("HARK_REQUIRE_SLURM").as_deref() != Ok("1"),
            "HARK_REQUIRE_SLURM=1 but no cluster: {why}"
        );
        println!("skipped: no Slurm cluster ({why}); run under scripts/slurm-local.sh run");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::tiny_cv_corpus(dir, 24);
    let local = dir.join("local");
    ok(dir, &["cv", "--config", "tiny.toml", "--out", "local"]);

    let emitted = ok(
        dir,
        &[
            "cv",
            "--emit",
            "slurm",
            "--config",
            "tiny.toml",
            "--set",
            "output.dir=\"cluster\"",
            "--cpus",
            "1",
            "--time",
            "0:10:00",
            "--shards",
            "2",
            "--out",
            "submit.sh",
        ],
    );
    assert!(emitted.contains("3 fold tasks"), "{emitted}");
    let script = std::fs::read_to_string(dir.join("submit.sh")).unwrap();
    let root = dir.canonicalize().unwrap().join("cluster");
    for needle in [
        "#SBATCH --array=1-3",
        "#SBATCH --array=1-2",
        "--dependency=afterok:$features",
        "--dependency=afterok:$folds",
        "--threads \"${SLURM_CPUS_PER_TASK:-1}\"",
        "--fold \"$SLURM_ARRAY_TASK_ID\"",
        "--shard \"$SLURM_ARRAY_TASK_ID/2\"",
        &format!("cv --merge {}", root.display()),
    ] {
        assert!(script.contains(needle), "{needle} in\n{script}");
    }

    submit_and_wait(&dir.join("submit.sh"), dir);
    let logs = root.join("slurm-logs");
    for log in [
        "features-1",
        "features-2",
        "fold-1",
        "fold-2",
        "fold-3",
        "merge",
    ] {
        assert!(logs.join(format!("{log}.log")).is_file(), "{log}.log");
    }
    let merge_log = std::fs::read_to_string(logs.join("merge.log")).unwrap();
    let same = |file: &str| {
        let a = std::fs::read(local.join(file)).unwrap();
        let b = std::fs::read(root.join(file)).unwrap_or_else(|e| {
            panic!("{file}: {e}; merge.log:\n{merge_log}");
        });
        assert!(a == b, "{file} differs from the local run's");
    };
    same("cv_summary.json");
    same("cv_summary.md");

    // A lost fold report: submitting again re-evaluates that fold from its
    // checkpoint, skips the others, and merges to the same summary.
    std::fs::remove_file(root.join("fold-02/report.json")).unwrap();
    std::fs::remove_file(root.join("cv_summary.json")).unwrap();
    submit_and_wait(&dir.join("submit.sh"), dir);
    let fold = |k: u32| std::fs::read_to_string(logs.join(format!("fold-{k}.log"))).unwrap();
    assert!(fold(1).contains("(finished before)"), "{}", fold(1));
    assert!(!fold(2).contains("(finished before)"), "{}", fold(2));
    same("cv_summary.json");
    println!(
        "live Slurm: two submissions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
