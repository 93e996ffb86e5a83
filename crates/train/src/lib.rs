//! hark-train: what trains a hark model.
//!
//! - [`ExperimentConfig`]: one TOML file per experiment, every field
//!   defaulted, unknown keys and wrong types named with the file, and
//!   `section.key=value` overrides.
//! - Optimizers on candle `Var`s ([`Adam`] with L2 decay and AMSGrad, AdamW,
//!   [`Sgd`] with momentum and Nesterov), each a candle-nn
//!   [`Optimizer`](candle_nn::Optimizer), and learning-rate schedules as PyTorch
//!   computes them ([`LrSchedule`]: constant, StepLR, OneCycleLR with momentum
//!   cycling, cosine).
//! - [`Trainer`]: the loop, gradient clipping, early stopping, NaN detection,
//!   `metrics.jsonl`, best and last checkpoints, and resuming to the metrics
//!   of an uninterrupted run; [`evaluate`] for eval-mode passes.
//! - [`ConfusionMatrix`] and [`ClassificationReport`], equal to scikit-learn's;
//!   [`confusion_png`] and [`curves_png`] draw them and the training curves.
//!
//! One run on an in-memory config, into a temporary run directory:
//!
//! ```
//! use hark_data::{NoProgress, SynthConfig, generate_urban_synth};
//! use hark_train::{Checkpoint, ExperimentConfig, RunDir, prepare, run};
//!
//! let tmp = std::env::temp_dir().join(format!("hark-train-doc-{}", std::process::id()));
//! let corpus = tmp.join("corpus");
//! let synth = SynthConfig { clips: 60, folds: 3, max_seconds: 1.0, seed: 1 };
//! generate_urban_synth(&corpus, &synth)?;
//! let toml = format!(
//!     "[data]\npath = {:?}\n[features]\nduration = 1.0\n\
//!      mel = {{ sample_rate = 8000, n_fft = 256, hop_length = 128, n_mels = 16 }}\n\
//!      [train]\nepochs = 1\nbatch_size = 8\n",
//!     corpus.display().to_string()
//! );
//! let config = ExperimentConfig::parse(&toml, "doc.toml".as_ref(), &[])?;
//! let prepared = prepare(&config, &NoProgress)?;
//! let splits = prepared.splits(&config, Some(1))?;
//! let dir = RunDir::new(tmp.join("run"));
//! let result = run(&prepared, &config, &splits, &dir, &mut |_: &_| {
//!     std::ops::ControlFlow::Continue(())
//! })?;
//! assert!((0.0..=1.0).contains(&result.accuracy));
//! let model = RunDir::open(dir.path())?.model(Checkpoint::Best)?;
//! assert_eq!(model.n_classes(), prepared.dataset.classes.len());
//! # std::fs::remove_dir_all(&tmp).unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod adam;
mod check;
mod checkpoint;
mod config;
mod cv;
mod error;
mod event_score;
mod listen;
mod loaders;
mod metrics;
mod observer;
mod optimizer;
mod plot;
mod predict;
mod prepare;
mod report;
mod run;
mod run_dir;
mod schedule;
mod sgd;
mod splits;
mod trainer;

pub use adam::{Adam, AdamConfig};
pub use check::{OverfitCheck, overfit_one_batch};
pub use checkpoint::{TrainState, load_checkpoint, repair_checkpoint, save_checkpoint};
pub use config::{
    ASSUMED_SECONDS, ComputedNormalization, DataConfig, EarlyStopping, ExperimentConfig,
    ModelSection, Monitor, NormalizationSetting, OutputConfig, SplitPolicy, SplitSetting,
    TrainConfig, Validation,
};
pub use cv::{CvPlan, CvSummary, FoldResult, cross_validate, cross_validate_fold, merge_folds};
pub use error::{Error, Result};
pub use event_score::{DEFAULT_COLLAR, EventScores, score_events};
pub use listen::{Event, HopTimes, ListenOptions, Listener, Output, StreamMode};
pub use loaders::{held_out, loader};
pub use metrics::{ClassScores, ClassificationReport, ConfusionMatrix};
pub use observer::Observer;
pub use optimizer::{OptimizerConfig, StatefulOptimizer};
pub use plot::{SPECS_GRID, SpecTile, bars_png, confusion_png, curves_png, specs_png};
pub use predict::{FilePrediction, Predictor, WindowPrediction};
pub use prepare::{Part, Prepared, Shard, prepare, prepare_shard};
pub use report::{classification_report, write_report};
pub use run::{ModelInfo, RunResult, run};
pub use run_dir::{Checkpoint, RunDir};
pub use schedule::{Anneal, LrSchedule, ScheduleConfig};
pub use sgd::{Sgd, SgdConfig};
pub use trainer::{
    EpochMetrics, Evaluation, Prediction, Trainer, argmax, batch_tensor, choose_threshold,
    clip_grad_norm, evaluate, evaluate_crops,
};
