//! Optimizers on candle `Var`s, as PyTorch's `torch.optim` computes them.
//!
//! Parameters without a gradient in a step (BatchNorm buffers are never
//! passed in; a frozen parameter, a head unused by a batch) are skipped and
//! keep their state. The state is per parameter, saved and restored by name
//! for checkpoints.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::check_range;
use crate::{Adam, AdamConfig, Error, Result, Sgd, SgdConfig};

/// An optimizer and its settings, as written in `[train.optimizer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam with L2 weight decay added to the gradient (`torch.optim.Adam`).
    Adam {
        /// Learning rate (the schedule's base). Default: 1e-3.
        #[serde(default = "default_adam_lr")]
        lr: f64,
        /// (beta1, beta2). Default: (0.9, 0.999).
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator. Default: 1e-8.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty. Default: 0.
        #[serde(default)]
        weight_decay: f64,
        /// Use the running maximum of the second moment. Default: false.
        #[serde(default)]
        amsgrad: bool,
    },
    /// Adam with decoupled weight decay (`torch.optim.AdamW`).
    AdamW {
        /// Learning rate. Default: 1e-3.
        #[serde(default = "default_adam_lr")]
        lr: f64,
        /// (beta1, beta2). Default: (0.9, 0.999).
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator. Default: 1e-8.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Decoupled decay. Default: 0.01.
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
        /// Use the running maximum of the second moment. Default: false.
        #[serde(default)]
        amsgrad: bool,
    },
    /// SGD with momentum and Nesterov (`torch.optim.SGD`).
    Sgd {
        /// Learning rate. Default: 0.01.
        #[serde(default = "default_sgd_lr")]
        lr: f64,
        /// Momentum factor. Default: 0.
        #[serde(default)]
        momentum: f64,
        /// Dampening of the momentum. Default: 0.
        #[serde(default)]
        dampening: f64,
        /// L2 penalty. Default: 0.
        #[serde(default)]
        weight_decay: f64,
        /// Nesterov momentum (needs momentum > 0, dampening 0). Default: false.
        #[serde(default)]
        nesterov: bool,
    },
}

fn default_adam_lr() -> f64 {
    1e-3
}
fn default_sgd_lr() -> f64 {
    1e-2
}
fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    1e-2
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Adam {
            lr: default_adam_lr(),
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Self::Adam { lr, .. } | Self::AdamW { lr, .. } | Self::Sgd { lr, .. } => lr,
        }
    }

    /// Builds the optimizer over `params` (name, variable).
    ///
    /// # Errors
    /// [`Error::Config`] for a value out of range.
    pub fn build(&self, params: Vec<(String, Var)>) -> Result<Box<dyn StatefulOptimizer>> {
        check_range(
            "optimizer.lr",
            self.lr(),
            0.0,
            f64::MAX,
            "must be >= 0 and finite",
        )?;
        let lr = self.lr();
        Ok(match *self {
            Self::Adam {
                betas,
                eps,
                weight_decay,
                amsgrad,
                ..
            }
            | Self::AdamW {
                betas,
                eps,
                weight_decay,
                amsgrad,
                ..
            } => {
                check_range(
                    "optimizer.betas.0",
                    betas.0,
                    0.0,
                    1.0 - f64::EPSILON,
                    "must be in [0, 1)",
                )?;
                check_range(
                    "optimizer.betas.1",
                    betas.1,
                    0.0,
                    1.0 - f64::EPSILON,
                    "must be in [0, 1)",
                )?;
                // 0 divides 0 by 0 for a weight whose gradient stays 0.
                check_range(
                    "optimizer.eps",
                    eps,
                    f64::MIN_POSITIVE,
                    f64::MAX,
                    "must be > 0",
                )?;
                check_range(
                    "optimizer.weight_decay",
                    weight_decay,
                    0.0,
                    f64::MAX,
                    "must be >= 0",
                )?;
                let decoupled = matches!(self, Self::AdamW { .. });
                let config = AdamConfig {
                    lr,
                    betas,
                    eps,
                    weight_decay,
                    amsgrad,
                    decoupled,
                };
                Box::new(Adam::named(params, config))
            }
            Self::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => {
                // From 1 on, each step's velocity never decays: divergence.
                check_range(
                    "optimizer.momentum",
                    momentum,
                    0.0,
                    1.0 - f64::EPSILON,
                    "must be in [0, 1)",
                )?;
                check_range(
                    "optimizer.dampening",
                    dampening,
                    0.0,
                    1.0,
                    "must be in [0, 1]",
                )?;
                check_range(
                    "optimizer.weight_decay",
                    weight_decay,
                    0.0,
                    f64::MAX,
                    "must be >= 0",
                )?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::Config {
                        field: "optimizer.nesterov",
                        rule: "needs momentum > 0 and dampening 0",
                        got: format!("momentum {momentum}, dampening {dampening}"),
                    });
                }
                let config = SgdConfig {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                };
                Box::new(Sgd::named(params, config))
            }
        })
    }
}

/// The object-safe face of an optimizer that the [`Trainer`](crate::Trainer)
/// drives: a step at the schedule's learning rate, the momentum a schedule
/// cycles, and the state a checkpoint keeps. [`Adam`] and [`Sgd`] are also
/// candle-nn [`Optimizer`](candle_nn::Optimizer)s, whose step uses their own
/// learning rate.
pub trait StatefulOptimizer: Send + std::fmt::Debug {
    /// One update with learning rate `lr`; parameters absent from `grads`
    /// are left alone.
    ///
    /// # Errors
    /// Only from tensor conversions.
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()>;

    /// Sets the momentum a schedule cycles: Adam's beta1, SGD's momentum.
    fn set_momentum(&mut self, momentum: f64);

    /// The state to checkpoint, as named tensors (`<param>.<slot>`).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores [`state`](Self::state).
    ///
    /// # Errors
    /// [`Error::OptimizerState`] naming a missing or misshapen tensor.
    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()>;
}

/// One parameter and its optimizer slots, as flat f32 buffers.
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: String,
    pub var: Var,
    /// Updates applied to this parameter (PyTorch's per-parameter `step`).
    pub steps: u64,
    /// Named state buffers, each the parameter's size (possibly empty until first used).
    pub buffers: Vec<(&'static str, Vec<f32>)>,
}

impl Slot {
    pub fn new(name: String, var: Var, buffers: &[&'static str]) -> Self {
        Self {
            name,
            var,
            steps: 0,
            buffers: buffers.iter().map(|&b| (b, Vec::new())).collect(),
        }
    }

    /// The parameter's values and gradient, or `None` without a gradient.
    pub fn read(&self, grads: &GradStore) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let Some(g) = grads.get(self.var.as_tensor()) else {
            return Ok(None);
        };
        let p = self.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        Ok(Some((p, g.flatten_all()?.to_vec1::<f32>()?)))
    }

    /// Writes the updated values back.
    pub fn write(&self, values: Vec<f32>) -> Result<()> {
        let t = Tensor::from_vec(values, self.var.shape(), &Device::Cpu)?;
        Ok(self.var.set(&t)?)
    }
}

/// candle-nn's `Optimizer` for an optimizer with `named(params, config)`
/// and a `config.lr`: candle-nn gives no names, so the parameters are
/// `param0`, `param1`, ... in the state, and a step uses the optimizer's
/// own learning rate.
macro_rules! candle_optimizer {
    ($optimizer:ty, $config:ty) => {
        impl candle_nn::Optimizer for $optimizer {
            type Config = $config;

            fn new(vars: Vec<candle_core::Var>, config: $config) -> candle_core::Result<Self> {
                Ok(Self::named(crate::optimizer::numbered(vars), config))
            }

            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                let lr = self.config.lr;
                StatefulOptimizer::step(self, grads, lr).map_err(candle_core::Error::wrap)
            }

            fn learning_rate(&self) -> f64 {
                self.config.lr
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.config.lr = lr;
            }
        }
    };
}
pub(crate) use candle_optimizer;

/// `vars` named `param0`, `param1`, ..., for an optimizer built by
/// candle-nn's `Optimizer::new`, which gives no names.
pub(crate) fn numbered(vars: Vec<Var>) -> Vec<(String, Var)> {
    (vars.into_iter().enumerate())
        .map(|(i, v)| (format!("param{i}"), v))
        .collect()
}

/// Named state tensors of `slots` (buffers and the step count).
pub(crate) fn slots_state(slots: &[Slot]) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for s in slots {
        let steps = Tensor::new(s.steps as i64, &Device::Cpu).expect("scalar tensor");
        out.push((format!("{}.step", s.name), steps));
        for (b, v) in &s.buffers {
            if !v.is_empty() {
                let t = Tensor::from_slice(v, v.len(), &Device::Cpu).expect("vector tensor");
                out.push((format!("{}.{b}", s.name), t));
            }
        }
    }
    out
}

/// Restores what [`slots_state`] saved.
pub(crate) fn load_slots(slots: &mut [Slot], tensors: &HashMap<String, Tensor>) -> Result<()> {
    let bad = |msg: String| Error::OptimizerState(msg);
    for s in slots.iter_mut() {
        let key = format!("{}.step", s.name);
        let steps = tensors
            .get(&key)
            .ok_or_else(|| bad(format!("missing `{key}`")))?;
        s.steps = steps
            .to_scalar::<i64>()
            .map_err(|e| bad(format!("`{key}`: {e}")))? as u64;
        let n = s.var.elem_count();
        for (b, v) in s.buffers.iter_mut() {
            let key = format!("{}.{b}", s.name);
            *v = match tensors.get(&key) {
                Some(t) if t.elem_count() == n => t.flatten_all()?.to_vec1::<f32>()?,
                Some(t) => {
                    return Err(bad(format!(
                        "`{key}` has {} values, the parameter {n}",
                        t.elem_count()
                    )));
                }
                None if s.steps == 0 => Vec::new(),
                None => return Err(bad(format!("missing `{key}`"))),
            };
        }
    }
    Ok(())
}
