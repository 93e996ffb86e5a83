//! An experiment end to end on a small generated corpus: features are
//! extracted once into the cache, every fold trains, validates on another
//! fold and tests on its own, the run directories and the summary are
//! written, and a re-run skips finished folds.

use std::ops::ControlFlow;
use std::path::Path;

use hark_data::{NoProgress, Split, SynthConfig, generate_urban_synth};
use hark_train::{
    Checkpoint, EpochMetrics, Evaluation, ExperimentConfig, FoldResult, Observer, Predictor,
    RunDir, RunResult, argmax, cross_validate, evaluate, evaluate_crops, held_out, prepare,
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
    corpus(tmp.path());
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
        summary.folds.iter().map(|f| f.examples).sum::<usize>()
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
            "specs.png",
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
            summary.folds[k as usize - 1].examples + 1
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
        fold.read_result().unwrap().map(|r| FoldResult::new(1, r)),
        Some(summary.folds[0].clone())
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

/// The corpus of [`config`]: 60 clips of up to 1 s in 3 folds.
fn corpus(root: &Path) {
    let synth = SynthConfig {
        clips: 60,
        folds: 3,
        max_seconds: 1.0,
        seed: 3,
    };
    generate_urban_synth(&root.join("corpus"), &synth).unwrap();
}

fn with(root: &Path, overrides: &[&str]) -> hark_train::Result<ExperimentConfig> {
    let text = toml::to_string(&config(root)).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ExperimentConfig::parse(&text, &root.join("exp.toml"), &overrides)
}

#[test]
fn seed_001s_protocol_trains_on_every_other_fold_and_tests_the_final_weights() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    let config = with(
        tmp.path(),
        &[
            "data.validation=none",
            "augment.random_placement=true",
            "features.placement=random",
        ],
    )
    .unwrap();
    let prepared = prepare(&config, &NoProgress).unwrap();
    assert_eq!(prepared.stage, hark_data::Stage::Resampled);
    let splits = prepared.splits(&config, Some(2)).unwrap();
    for (e, s) in prepared.dataset.examples.iter().zip(&splits) {
        let want = if e.fold == Some(2) {
            Split::Test
        } else {
            Split::Train
        };
        assert_eq!(*s, want);
    }
    let root = tmp.path().join("runs");
    let summary = cross_validate(
        &prepared,
        &config,
        Some(&[2]),
        &RunDir::new(&root),
        &mut Record::default(),
    )
    .unwrap();
    // No validation: the final weights are the run's.
    assert_eq!(summary.folds[0].best_epoch, 2);
    let fold = root.join("fold-02");
    let read = |name: &str| std::fs::read(fold.join(name)).unwrap();
    let (best, last) = (read("best.safetensors"), read("last.safetensors"));
    let first = best.iter().zip(&last).position(|(a, b)| a != b);
    assert!(
        first.is_none() && best.len() == last.len(),
        "differ at byte {first:?}"
    );
    assert!(read("val.csv").iter().filter(|&&b| b == b'\n').count() <= 1);
    let metrics = String::from_utf8(read("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"val_loss\":null"), "{metrics}");

    // Early stopping needs the validation set that "none" removes.
    let err = with(
        tmp.path(),
        &[
            "data.validation=none",
            "train.early_stopping={ patience = 2 }",
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train.early_stopping needs validation data"),
        "{err}"
    );
    // A random placement needs a clip length to place clips in.
    let err = prepare(
        &with(
            tmp.path(),
            &["augment.random_placement=true", "features.duration=1.0"],
        )
        .map(|mut c| {
            c.features.duration = None;
            c
        })
        .unwrap(),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("augment.random_placement"), "{err}");
}

#[test]
fn test_crops_average_each_held_out_clip_over_its_placements() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    // Clips of up to 1 s in a 1.5 s window: every placement differs.
    let crops = |n: &str| {
        let protocol = [
            "data.validation=none",
            "augment.random_placement=true",
            "features.duration=1.5",
        ];
        with(tmp.path(), &[&protocol[..], &[n]].concat()).unwrap()
    };
    let (one, three) = (crops("augment.test_crops=1"), crops("augment.test_crops=3"));
    let prepared = prepare(&three, &NoProgress).unwrap();
    let runs: Vec<_> = [("one", &one), ("three", &three)]
        .into_iter()
        .map(|(name, config)| {
            let root = tmp.path().join(name);
            let summary = cross_validate(
                &prepared,
                config,
                Some(&[2]),
                &RunDir::new(&root),
                &mut Record::default(),
            )
            .unwrap();
            (root.join("fold-02"), summary.folds[0].accuracy)
        })
        .collect();
    // Test crops change the test only, not training.
    let weights = |dir: &Path| std::fs::read(dir.join("best.safetensors")).unwrap();
    assert!(weights(&runs[0].0) == weights(&runs[1].0));

    let predictor = Predictor::open(&RunDir::new(&runs[1].0)).unwrap();
    let model = predictor.model();
    let part = prepared.subset(&prepared.splits(&three, Some(2)).unwrap(), Split::Test);
    let loaders: Vec<_> = held_out(&prepared, predictor.config(), &part)
        .collect::<hark_train::Result<_>>()
        .unwrap();
    assert_eq!(loaders.len(), 3);
    let each: Vec<Evaluation> = (loaders.iter())
        .map(|l| evaluate(model, l).unwrap())
        .collect();
    assert_eq!(
        evaluate_crops(model, loaders[..1].iter().map(Ok)).unwrap(),
        each[0]
    );
    assert_ne!(each[0].predictions, each[1].predictions);
    let mean = evaluate_crops(model, loaders.iter().map(Ok)).unwrap();
    // The first placement is the one-crop run's test, all three the run's.
    assert_eq!((each[0].accuracy, mean.accuracy), (runs[0].1, runs[1].1));
    let loss = each.iter().map(|e| e.loss).sum::<f64>() / 3.0;
    assert!((mean.loss - loss).abs() < 1e-9, "{} {loss}", mean.loss);
    for (i, p) in mean.predictions.iter().enumerate() {
        for (c, &got) in p.probabilities.iter().enumerate() {
            let want = each
                .iter()
                .map(|e| e.predictions[i].probabilities[c])
                .sum::<f32>()
                / 3.0;
            assert!((got - want).abs() < 1e-6, "example {i} class {c}");
        }
        assert_eq!(p.predicted, argmax(&p.probabilities));
    }

    for (set, rule) in [
        ("augment.test_crops=0", "must be in [1, 64]"),
        ("augment.test_crops=65", "must be in [1, 64]"),
        (
            "augment.random_placement=false",
            "needs augment.random_placement",
        ),
    ] {
        let err = with(tmp.path(), &["augment.test_crops=2", set])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("augment.test_crops") && err.contains(rule),
            "{err}"
        );
    }
}

#[test]
fn ignoring_the_folds_splits_at_random_by_ratio_as_seed_001_does() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    let config = with(
        tmp.path(),
        &[
            "data.ignore_folds=true",
            "data.validation=none",
            "data.split={ train = 0.8, val = 0.0, test = 0.2, stratified = false }",
        ],
    )
    .unwrap();
    let prepared = prepare(&config, &NoProgress).unwrap();
    let splits = prepared.splits(&config, None).unwrap();
    let count = |p| splits.iter().filter(|&&s| s == p).count();
    assert_eq!(
        [count(Split::Train), count(Split::Val), count(Split::Test)],
        [48, 0, 12]
    );
    // The test part draws from every fold.
    let mut folds: Vec<u32> = (prepared.dataset.examples.iter().zip(&splits))
        .filter(|(_, s)| **s == Split::Test)
        .filter_map(|(e, _)| e.fold)
        .collect();
    folds.sort_unstable();
    folds.dedup();
    assert_eq!(folds, [1, 2, 3]);
    assert!(prepared.splits(&config, Some(1)).is_err());
    let err = cross_validate(
        &prepared,
        &config,
        None,
        &RunDir::new(tmp.path().join("runs")),
        &mut Record::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("data.ignore_folds"), "{err}");
    let err = with(tmp.path(), &["data.ignore_folds=true", "data.fold=1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.ignore_folds"), "{err}");
    for bad in ["1.0", "-0.1", "nan"] {
        let err = with(tmp.path(), &[&format!("train.label_smoothing={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.label_smoothing must be in [0, 1)"),
            "{err}"
        );
    }
    for bad in ["-0.2", "nan", "inf"] {
        let err = with(tmp.path(), &[&format!("train.mixup={bad}")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.mixup must be a finite alpha"), "{err}");
    }
}
