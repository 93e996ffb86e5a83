//! The training loop end to end on a small in-memory corpus: learning,
//! run-directory files, checkpoints PyTorch names, resuming to identical
//! metrics, early stopping, NaN detection, and the experiment config.

use std::ops::ControlFlow;
use std::path::Path;

use hark_data::{
    AugmentConfig, FeatureConfig, FeatureExtractor, Features, Loader, LoaderConfig, Normalization,
};
use hark_models::{InputShape, Model, ModelSpec, SmallCnnConfig};
use hark_train::{
    Checkpoint, EarlyStopping, Error, ExperimentConfig, Monitor, OptimizerConfig, RunDir,
    ScheduleConfig, TrainConfig, Trainer, evaluate,
};

const MELS: usize = 16;
const FRAMES: usize = 24;

/// Two classes: energy in the low or the high mel rows, plus a fixed ripple.
fn clips(n_per_class: usize, offset: usize) -> (Vec<Features>, Vec<usize>) {
    let mut clips = Vec::new();
    let mut labels = Vec::new();
    for i in 0..2 * n_per_class {
        let label = i % 2;
        let k = i + offset;
        let data = (0..MELS * FRAMES)
            .map(|j| {
                let (row, t) = (j / FRAMES, j % FRAMES);
                let band = if (row < MELS / 2) == (label == 0) {
                    1.0
                } else {
                    0.0
                };
                band + 0.6 * ((k * 31 + row * 7 + t * 3) as f32 * 0.37).sin()
            })
            .collect();
        clips.push(Features {
            data,
            channels: 1,
            n_mels: MELS,
            frames: FRAMES,
        });
        labels.push(label);
    }
    (clips, labels)
}

fn loader(clips: Vec<Features>, labels: Vec<usize>, shuffle: bool) -> Loader {
    let extractor = FeatureExtractor::new(&FeatureConfig::default()).unwrap();
    let config = LoaderConfig {
        batch_size: 4,
        shuffle,
        seed: 5,
        ..Default::default()
    };
    Loader::new(
        clips,
        labels,
        extractor,
        AugmentConfig::default(),
        Normalization::PerExample,
        config,
    )
    .unwrap()
}

fn data() -> (Loader, Loader) {
    let (tc, tl) = clips(12, 0);
    let (vc, vl) = clips(4, 100);
    (loader(tc, tl, true), loader(vc, vl, false))
}

fn model() -> Model {
    let spec = ModelSpec::SmallCnn(SmallCnnConfig {
        channels: [4, 8, 8],
        dropout: 0.2,
    });
    Model::new(
        &spec,
        2,
        InputShape {
            channels: 1,
            height: MELS,
            frames: FRAMES,
        },
        11,
    )
    .unwrap()
}

fn train_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        optimizer: OptimizerConfig::Adam {
            lr: 1e-2,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-4,
            amsgrad: false,
        },
        schedule: ScheduleConfig::OneCycle {
            max_lr: None,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal: hark_train::Anneal::Linear,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        },
        grad_clip: Some(5.0),
        ..Default::default()
    }
}

fn keep_going(_: &hark_train::EpochMetrics) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn training_learns_and_writes_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = data();
    let m = model();
    let config = TrainConfig {
        save_every: std::num::NonZeroUsize::new(3),
        ..train_config(8)
    };
    let mut trainer = Trainer::new(&m, &config, train.batches_per_epoch()).unwrap();
    let state = trainer
        .fit(
            &train,
            Some(&val),
            &RunDir::new(dir.path()),
            &mut keep_going,
        )
        .unwrap()
        .clone();
    assert_eq!(state.epoch, 8);
    let last = state.history.last().unwrap();
    assert!(
        last.train_loss < state.history[0].train_loss,
        "{:?}",
        state.history
    );
    assert!(last.val_accuracy.unwrap() >= 0.9, "{:?}", state.history);
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 8);
    assert!(lines.lines().all(|l| l.starts_with("{\"epoch\":")));
    let run = RunDir::new(dir.path());
    for which in [Checkpoint::Best, Checkpoint::Last] {
        let (weights, train_state) = (run.weights(which), run.training_state(which));
        assert!(weights.exists() && train_state.exists(), "{which:?}");
    }
    // save_every = 3: epochs 3 and 6 are kept, each with its own weights.
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "epoch-003.safetensors",
            "epoch-003.train.safetensors",
            "epoch-006.safetensors",
            "epoch-006.train.safetensors"
        ]
    );
    let read = |which| std::fs::read(run.weights(which)).unwrap();
    assert_ne!(read(Checkpoint::Epoch(3)), read(Checkpoint::Epoch(6)));
    assert_ne!(read(Checkpoint::Epoch(6)), read(Checkpoint::Last));
    // The best weights load into a fresh model by their PyTorch names and
    // reproduce the recorded validation accuracy.
    let fresh = model();
    fresh.load(&run.weights(Checkpoint::Best)).unwrap();
    let (best, best_epoch) = state.best.unwrap();
    let eval = evaluate(&fresh, &val).unwrap();
    assert!(
        (eval.loss - best).abs() < 1e-9,
        "{} vs {best} (epoch {best_epoch})",
        eval.loss
    );
}

/// The history without its wall-clock fields.
fn comparable(h: &[hark_train::EpochMetrics]) -> Vec<hark_train::EpochMetrics> {
    h.iter()
        .map(|m| hark_train::EpochMetrics {
            seconds: 0.0,
            samples_per_second: 0.0,
            ..m.clone()
        })
        .collect()
}

#[test]
fn a_resumed_run_ends_with_exactly_the_metrics_of_a_straight_run() {
    let (train, val) = data();
    let straight_dir = tempfile::tempdir().unwrap();
    let m = model();
    let mut t = Trainer::new(&m, &train_config(4), train.batches_per_epoch()).unwrap();
    let straight = t
        .fit(
            &train,
            Some(&val),
            &RunDir::new(straight_dir.path()),
            &mut keep_going,
        )
        .unwrap()
        .clone();

    let dir = tempfile::tempdir().unwrap();
    {
        let m = model();
        let mut t = Trainer::new(&m, &train_config(4), train.batches_per_epoch()).unwrap();
        let mut stop_after_two = |e: &hark_train::EpochMetrics| {
            if e.epoch == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        assert_eq!(
            t.fit(
                &train,
                Some(&val),
                &RunDir::new(dir.path()),
                &mut stop_after_two
            )
            .unwrap()
            .epoch,
            2
        );
    }
    // A new process: the model is built again from the run's config and
    // picks up the weights, optimizer moments, schedule position and dropout
    // stream from the checkpoint.
    let m = model();
    let mut t = Trainer::new(&m, &train_config(4), train.batches_per_epoch()).unwrap();
    assert!(t.resume(&RunDir::new(dir.path())).unwrap());
    let resumed = t
        .fit(
            &train,
            Some(&val),
            &RunDir::new(dir.path()),
            &mut keep_going,
        )
        .unwrap()
        .clone();
    assert_eq!(comparable(&resumed.history), comparable(&straight.history));
    assert_eq!(resumed.best, straight.best);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );
}

#[test]
fn early_stopping_ends_a_run_that_stopped_improving() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let config = TrainConfig {
        epochs: 10,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.0,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        early_stopping: Some(EarlyStopping {
            monitor: Monitor::ValAccuracy,
            patience: 2,
        }),
        ..Default::default()
    };
    let mut t = Trainer::new(&m, &config, train.batches_per_epoch()).unwrap();
    let state = t
        .fit(
            &train,
            Some(&val),
            &RunDir::new(dir.path()),
            &mut keep_going,
        )
        .unwrap();
    // With a zero learning rate nothing improves after the first epoch.
    assert!(state.stopped_early);
    assert_eq!((state.epoch, state.best.unwrap().1), (3, 1));
}

#[test]
fn a_diverging_loss_stops_with_its_epoch_and_step_and_keeps_the_last_good_checkpoint() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let config = TrainConfig {
        epochs: 4,
        optimizer: OptimizerConfig::Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        // Epoch 2 runs at 1e-3 * 1e30.
        schedule: ScheduleConfig::Step {
            step_size: 1,
            gamma: 1e30,
        },
        ..Default::default()
    };
    let mut t = Trainer::new(&m, &config, train.batches_per_epoch()).unwrap();
    let err = t
        .fit(
            &train,
            Some(&val),
            &RunDir::new(dir.path()),
            &mut keep_going,
        )
        .unwrap_err();
    let Error::NonFinite { epoch, step, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(epoch, 2);
    assert!(step >= 2, "step {step}");
    assert!(err_text(epoch, step).contains("epoch 2"));
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1);
    // The last checkpoint is epoch 1's and resumes.
    let m2 = model();
    let mut t2 = Trainer::new(&m2, &config, train.batches_per_epoch()).unwrap();
    assert!(t2.resume(&RunDir::new(dir.path())).unwrap());
    assert_eq!(t2.state().epoch, 1);
}

fn err_text(epoch: usize, step: usize) -> String {
    Error::NonFinite {
        epoch,
        step,
        value: f32::NAN,
    }
    .to_string()
}

#[test]
fn experiment_configs_default_every_field_and_name_bad_keys_with_the_file() {
    let path = Path::new("configs/demo.toml");
    let c = ExperimentConfig::parse("", path, &[]).unwrap();
    assert_eq!(c.train.epochs, 20);
    assert_eq!(c.output.dir.as_deref(), Some(Path::new("runs/demo")));
    let text = r#"
[model]
kind = "crnn"
hidden = 32

[train]
epochs = 3
optimizer = { kind = "adam", lr = 5e-4, weight_decay = 0.02, amsgrad = true }
schedule = { kind = "step", step_size = 10, gamma = 0.5 }
early_stopping = { monitor = "val_loss", patience = 8 }
"#;
    let c = ExperimentConfig::parse(
        text,
        path,
        &[
            "train.epochs=7".into(),
            "data.path=/tmp/x".into(),
            "train.grad_clip=1.5".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.train.epochs, 7);
    assert_eq!(c.train.grad_clip, Some(1.5));
    assert_eq!(c.data.path, Path::new("/tmp/x"));
    assert!(matches!(c.model.spec, ModelSpec::Crnn(ref m) if m.hidden == 32));
    // The resolved config reads back to the same experiment.
    let back = ExperimentConfig::parse(&c.to_toml(path).unwrap(), path, &[]).unwrap();
    assert_eq!(back, c);

    let err = ExperimentConfig::parse("[train]\nepocs = 3\n", path, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("configs/demo.toml:") && err.contains("epocs"),
        "{err}"
    );
    let err = ExperimentConfig::parse("[train]\nepochs = \"three\"\n", path, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("epochs"), "{err}");
    let err = ExperimentConfig::parse("", path, &["train.epochs".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--set train.epochs"), "{err}");
    let err = ExperimentConfig::parse("", path, &["train.epochs.x=3".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("train.epochs"), "{err}");
    let err = ExperimentConfig::parse("[train]\nepochs = 3\n", path, &["train.epochs.x=3".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set train.epochs.x=3: `train.epochs` is not a table"),
        "{err}"
    );
    assert!(
        ExperimentConfig::load(Path::new("/no/such/config.toml"), &[])
            .unwrap_err()
            .to_string()
            .contains("/no/such/config.toml")
    );
}

#[test]
fn every_shipped_config_parses_and_builds_its_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = ExperimentConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            c.augment
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Its model builds for its input (two classes for a sigmoid).
            let m = &c.model;
            let classes = if m.output.is_softmax() { 10 } else { 2 };
            hark_models::Model::with_output(
                &m.spec,
                classes,
                m.output,
                c.input_shape().unwrap(),
                0,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert_eq!(n, 11);
}

#[test]
fn the_input_shape_of_a_config_is_what_its_extractor_makes_of_a_clip() {
    let path = Path::new("exp.toml");
    // No hop_length: hark-dsp's default hop is win_length / 2 (512), so a
    // centred 4 s clip at 22.05 kHz has 88200 / 512 + 1 = 173 frames.
    let text = "[features]\nduration = 4.0\nchannels = 2\n\
                mel = { sample_rate = 22050, n_fft = 1024, n_mels = 40 }\n";
    let c = ExperimentConfig::parse(text, path, &[]).unwrap();
    let shape = c.input_shape().unwrap();
    assert_eq!(
        shape,
        InputShape {
            channels: 2,
            height: 40,
            frames: 173
        }
    );
    let extractor = FeatureExtractor::new(&c.features).unwrap();
    let clip = Features {
        data: vec![0.01; 2 * 88_200],
        channels: 2,
        n_mels: 1,
        frames: 88_200,
    };
    let logmel = extractor.transform(&clip).unwrap();
    assert_eq!(logmel.shape(), [2, 40, 173]);
    // Uncentred frames need a full window (4 s, the default duration).
    let text = "[features]\nmel = { sample_rate = 16000, n_fft = 400, hop_length = 160, \
                n_mels = 40, center = false }\n";
    let c = ExperimentConfig::parse(text, path, &[]).unwrap();
    assert_eq!(c.input_shape().unwrap().frames, (64_000 - 400) / 160 + 1);
}
