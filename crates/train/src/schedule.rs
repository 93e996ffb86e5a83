//! Learning-rate schedules as closed forms of the step, computed as
//! PyTorch's `torch.optim.lr_scheduler` does, so a resumed run needs only
//! its step count.
//!
//! `OneCycleLR` and the batch-stepped cosine advance once per batch;
//! `StepLR` and the epoch-stepped cosine once per epoch (as the seeds call
//! `scheduler.step()`).

use serde::{Deserialize, Serialize};

use crate::error::check_range;
use crate::{Error, Result};

/// How OneCycle anneals between its phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// Half a cosine (PyTorch's default).
    #[default]
    Cos,
    /// A straight line (seed 001).
    Linear,
}

/// A schedule, as written in `[train.schedule]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// The optimizer's learning rate throughout.
    #[default]
    Constant,
    /// `lr * gamma^(epoch / step_size)` (`StepLR`, stepped per epoch).
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor. Default: 0.1.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `OneCycleLR`, stepped per batch over the whole run.
    OneCycle {
        /// The peak; default: the optimizer's learning rate.
        #[serde(default)]
        max_lr: Option<f64>,
        /// Fraction of the steps spent rising. Default: 0.3.
        #[serde(default = "default_pct_start")]
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor`. Default: 25.
        #[serde(default = "default_div_factor")]
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor`. Default: 1e4.
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f64,
        /// Annealing shape. Default: cos.
        #[serde(default)]
        anneal: Anneal,
        /// Cycle the momentum (Adam's beta1) inversely to the rate, from
        /// `max_momentum` down to `base_momentum` and back. Default: true,
        /// as PyTorch.
        #[serde(default = "default_true")]
        cycle_momentum: bool,
        /// Default: 0.85.
        #[serde(default = "default_base_momentum")]
        base_momentum: f64,
        /// Default: 0.95.
        #[serde(default = "default_max_momentum")]
        max_momentum: f64,
    },
    /// `CosineAnnealingLR` from the optimizer's rate down to `eta_min` over
    /// the whole run, stepped per epoch.
    Cosine {
        /// The floor. Default: 0.
        #[serde(default)]
        eta_min: f64,
    },
}

fn default_gamma() -> f64 {
    0.1
}
fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}
fn default_true() -> bool {
    true
}
fn default_base_momentum() -> f64 {
    0.85
}
fn default_max_momentum() -> f64 {
    0.95
}

/// A schedule bound to a run: base rate, epochs and batches per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    config: ScheduleConfig,
    base_lr: f64,
    epochs: usize,
    steps_per_epoch: usize,
}

impl LrSchedule {
    /// Binds `config` to a run of `epochs` epochs of `steps_per_epoch`
    /// batches with the optimizer's `base_lr`.
    ///
    /// # Errors
    /// [`Error::Config`] for a value out of range or an empty run.
    pub fn new(
        config: &ScheduleConfig,
        base_lr: f64,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<Self> {
        if epochs == 0 || steps_per_epoch == 0 {
            return Err(Error::Config {
                field: "train.epochs",
                rule: "and the batches per epoch must be positive",
                got: format!("{epochs} epochs of {steps_per_epoch} batches"),
            });
        }
        match *config {
            ScheduleConfig::Step { step_size, gamma } => {
                check_range(
                    "schedule.step_size",
                    step_size as f64,
                    1.0,
                    f64::MAX,
                    "must be >= 1",
                )?;
                check_range("schedule.gamma", gamma, 0.0, f64::MAX, "must be >= 0")?;
            }
            ScheduleConfig::OneCycle {
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                check_range(
                    "schedule.max_lr",
                    max_lr.unwrap_or(base_lr),
                    0.0,
                    f64::MAX,
                    "must be >= 0",
                )?;
                check_range(
                    "schedule.pct_start",
                    pct_start,
                    0.0,
                    1.0,
                    "must be in [0, 1]",
                )?;
                check_range(
                    "schedule.div_factor",
                    div_factor,
                    f64::MIN_POSITIVE,
                    f64::MAX,
                    "must be > 0",
                )?;
                check_range(
                    "schedule.final_div_factor",
                    final_div_factor,
                    f64::MIN_POSITIVE,
                    f64::MAX,
                    "must be > 0",
                )?;
                // PyTorch needs both phases to span at least one step.
                let total = (epochs * steps_per_epoch) as f64;
                let end_up = pct_start * total - 1.0;
                if end_up <= 0.0 || end_up >= total - 1.0 {
                    return Err(Error::Config {
                        field: "schedule.pct_start",
                        rule: "must leave at least one step to each phase",
                        got: format!("{pct_start} of {total} steps"),
                    });
                }
            }
            ScheduleConfig::Constant | ScheduleConfig::Cosine { .. } => {}
        }
        Ok(Self {
            config: config.clone(),
            base_lr,
            epochs,
            steps_per_epoch,
        })
    }

    /// The total number of batches.
    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch
    }

    /// The learning rate of batch `step` (0-based over the whole run; later
    /// steps keep the last rate).
    pub fn lr(&self, step: usize) -> f64 {
        let step = step.min(self.total_steps() - 1);
        let epoch = step / self.steps_per_epoch;
        match self.config {
            ScheduleConfig::Constant => self.base_lr,
            ScheduleConfig::Step { step_size, gamma } => {
                self.base_lr * gamma.powi((epoch / step_size) as i32)
            }
            ScheduleConfig::Cosine { eta_min } => {
                let t = epoch as f64 / self.epochs as f64;
                eta_min + (self.base_lr - eta_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            ScheduleConfig::OneCycle {
                max_lr,
                div_factor,
                final_div_factor,
                anneal,
                ..
            } => {
                let max_lr = max_lr.unwrap_or(self.base_lr);
                let initial = max_lr / div_factor;
                self.one_cycle(step, anneal, (initial, max_lr, initial / final_div_factor))
            }
        }
    }

    /// The momentum of batch `step` when the schedule cycles it (OneCycle
    /// with `cycle_momentum`), else `None`.
    pub fn momentum(&self, step: usize) -> Option<f64> {
        match self.config {
            ScheduleConfig::OneCycle {
                cycle_momentum: true,
                anneal,
                base_momentum,
                max_momentum,
                ..
            } => {
                let step = step.min(self.total_steps() - 1);
                Some(self.one_cycle(step, anneal, (max_momentum, base_momentum, max_momentum)))
            }
            _ => None,
        }
    }

    /// PyTorch's two OneCycle phases: `start -> peak` until step
    /// `pct_start * total - 1`, then `peak -> end` at the last step.
    fn one_cycle(&self, step: usize, anneal: Anneal, (start, peak, end): (f64, f64, f64)) -> f64 {
        let ScheduleConfig::OneCycle { pct_start, .. } = self.config else {
            unreachable!("one_cycle is only called for OneCycle")
        };
        let total = self.total_steps() as f64;
        let end_up = pct_start * total - 1.0;
        let end_down = total - 1.0;
        let s = step as f64;
        let (from, to, pct) = if s <= end_up {
            (start, peak, s / end_up)
        } else {
            (peak, end, (s - end_up) / (end_down - end_up))
        };
        match anneal {
            Anneal::Cos => to + (from - to) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
            Anneal::Linear => (to - from) * pct + from,
        }
    }
}
