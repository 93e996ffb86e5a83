//! hark-train: what trains a hark model. So far: optimizers on candle
//! `Var`s (Adam with L2 decay and AMSGrad, AdamW, SGD with momentum and
//! Nesterov), learning-rate schedules as PyTorch computes them (constant,
//! StepLR, OneCycleLR with momentum cycling, cosine), and classification
//! metrics equal to scikit-learn's report. The loop, checkpoints and
//! cross-validation follow (issue 5).
#![warn(missing_docs)]

mod adam;
mod error;
mod metrics;
mod optimizer;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use error::{Error, Result};
pub use metrics::{ClassScores, ClassificationReport, ConfusionMatrix};
pub use optimizer::{Optimizer, OptimizerConfig};
pub use schedule::{Anneal, LrSchedule, ScheduleConfig};
pub use sgd::Sgd;
