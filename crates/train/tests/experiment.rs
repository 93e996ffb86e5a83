//! An experiment end to end on a small generated corpus: features are
//! extracted once into the cache, every fold trains, validates on another
//! fold and tests on its own, the run directories and the summary are
//! written, and a re-run skips finished folds.

use std::ops::ControlFlow;
use std::path::Path;

use hark_data::{NoProgress, Split, SynthConfig, generate_urban_synth};
use hark_train::{
    Checkpoint, EpochMetrics, ExperimentConfig, Observer, RunDir, RunResult, cross_validate,
    prepare,
};

/// Counts what a cross-validation reports.
#[derive(Default)]
struct Record {
    started: Vec<u32>,
    finished: Vec<u32>,
    epochs: usize,
    batches: usize,
    notes: usize,
}

impl Observer for Record {
    fn fold_start(&mut self, fold: u32) {
        self.started.push(fold);
    }
    fn batch(&mut self, seen: usize, loss: f64, accuracy: f64) {
        assert!(seen > 0 && loss.is_finite() && (0.0..=1.0).contains(&accuracy));
        self.batches += 1;
    }
    fn epoch_end(&mut self, _: &EpochMetrics) -> ControlFlow<()> {
        self.epochs += 1;
        ControlFlow::Continue(())
    }
    fn fold_end(&mut self, fold: u32, _: &RunResult) {
        self.finished.push(fold);
    }
    fn note(&mut self, _: &str) {
        self.notes += 1;
    }
}

fn config(root: &Path) -> ExperimentConfig {
    let text = format!(
        r#"
[data]
path = "{}"

[features]
duration = 1.0
mel = {{ sample_rate = 16000, n_fft = 512, hop_length = 256, n_mels = 32 }}

[augment]
time_shift = 0.2

[model]
kind = "audio_cnn"

[train]
epochs = 2
batch_size = 8
optimizer = {{ kind = "adam", lr = 3e-3 }}
"#,
        root.join("corpus").display()
    );
    ExperimentConfig::parse(&text, &root.join("exp.toml"), &[]).unwrap()
}

#[test]
fn cross_validation_writes_every_fold_and_a_summary_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = SynthConfig {
        clips: 60,
        folds: 3,
        max_seconds: 1.0,
        seed: 3,
    };
    generate_urban_synth(&tmp.path().join("corpus"), &synth).unwrap();
    let config = config(tmp.path());
    let prepared = prepare(&config, &NoProgress).unwrap();
    assert_eq!(prepared.folds(), [1, 2, 3]);
    assert!(prepared.skipped.is_empty(), "{:?}", prepared.skipped);

    // Fold k is never trained or validated on.
    for k in 1..=3 {
        let splits = prepared.splits(&config, Some(k)).unwrap();
        for (e, s) in prepared.dataset.examples.iter().zip(&splits) {
            assert_eq!(e.fold == Some(k), *s == Split::Test);
            if e.fold == Some(k % 3 + 1) {
                assert_eq!(*s, Split::Val);
            }
        }
    }
    assert!(prepared.splits(&config, Some(4)).is_err());

    let root = tmp.path().join("runs");
    let mut record = Record::default();
    let summary =
        cross_validate(&prepared, &config, None, &RunDir::new(&root), &mut record).unwrap();
    assert_eq!(record.started, [1, 2, 3]);
    assert_eq!(record.finished, [1, 2, 3]);
    assert_eq!(record.epochs, 6);
    assert!(record.batches >= 6, "{}", record.batches);
    assert_eq!(record.notes, 6, "a start and a test line per fold");
    assert_eq!(summary.folds.len(), 3);
    let total: u64 = summary.confusion.iter().flatten().sum();
    assert_eq!(
        total as usize,
        summary
            .folds
            .iter()
            .map(|f| f.result.examples)
            .sum::<usize>()
    );
    assert_eq!(total as usize, prepared.dataset.examples.len());
    for k in 1..=3 {
        let dir = root.join(format!("fold-{k:02}"));
        for file in [
            "config.toml",
            "metrics.jsonl",
            "best.safetensors",
            "last.safetensors",
            "report.txt",
            "report.json",
            "predictions.csv",
            "confusion.png",
            "curves.png",
            "train.log",
        ] {
            assert!(dir.join(file).exists(), "fold {k}: {file}");
        }
        let log = std::fs::read_to_string(dir.join("train.log")).unwrap();
        assert_eq!(log.lines().count(), 4, "{log}");
        assert!(
            log.contains("audio_cnn with") && log.contains("epoch 2: train loss"),
            "{log}"
        );
        assert!(
            log.lines().last().unwrap().contains("test: accuracy"),
            "{log}"
        );
        let csv = std::fs::read_to_string(dir.join("predictions.csv")).unwrap();
        assert!(
            csv.starts_with("file,true,predicted,p_air_conditioner,"),
            "{csv}"
        );
        assert_eq!(
            csv.lines().count(),
            summary.folds[k as usize - 1].result.examples + 1
        );
    }
    let md = std::fs::read_to_string(root.join("cv_summary.md")).unwrap();
    assert!(md.contains("| mean +- std |"), "{md}");
    assert!(root.join("cv_summary.json").exists());
    assert!(root.join("confusion.png").exists());
    // A finished fold opens as a run and gives back its best model.
    let fold = RunDir::open(root.join("fold-01")).unwrap();
    let model = fold.model(Checkpoint::Best).unwrap();
    assert_eq!(model.n_classes(), prepared.dataset.classes.len());
    assert_eq!(
        fold.read_result().unwrap(),
        Some(summary.folds[0].result.clone())
    );

    // A second run trains nothing and gives the same summary.
    let mut record = Record::default();
    let again = cross_validate(
        &prepared,
        &config,
        Some(&[2]),
        &RunDir::new(&root),
        &mut record,
    )
    .unwrap();
    assert_eq!((record.epochs, record.started.len()), (0, 0));
    assert_eq!(record.finished, [2]);
    assert_eq!(again, summary);

    // Features were computed once: a second preparation reads them all from the cache.
    let cached = prepare(&config, &NoProgress).unwrap();
    assert_eq!(cached.cache_hits, prepared.dataset.examples.len());
}
