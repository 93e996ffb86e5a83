//! Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW` (single
//! tensor path, `maximize = False`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::optimizer::{Slot, load_slots, slots_state};
use crate::{Result, StatefulOptimizer};

/// Settings of [`Adam`], PyTorch's names and defaults (`torch.optim.Adam`;
/// [`AdamConfig::adamw`] for `torch.optim.AdamW`'s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate. Default: 1e-3.
    pub lr: f64,
    /// (beta1, beta2). Default: (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator. Default: 1e-8.
    pub eps: f64,
    /// L2 penalty, or the decoupled decay with `decoupled`. Default: 0.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment. Default: false.
    pub amsgrad: bool,
    /// AdamW: shrink the weights instead of adding the decay to the
    /// gradient. Default: false.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults: decoupled decay 0.01.
    pub fn adamw() -> Self {
        Self {
            weight_decay: 1e-2,
            decoupled: true,
            ..Self::default()
        }
    }
}

/// Adam with L2 weight decay (added to the gradient) or, `decoupled`,
/// AdamW (the weights shrink by `lr * weight_decay` before the update);
/// optionally AMSGrad. A candle-nn [`Optimizer`](candle_nn::Optimizer).
#[derive(Debug)]
pub struct Adam {
    slots: Vec<Slot>,
    config: AdamConfig,
}

impl Adam {
    /// An optimizer over named `params`, whose state is saved under those
    /// names (see [`StatefulOptimizer::state`]).
    pub fn named(params: Vec<(String, Var)>, config: AdamConfig) -> Self {
        let buffers: &[&'static str] = if config.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        };
        Self {
            slots: params
                .into_iter()
                .map(|(n, v)| Slot::new(n, v, buffers))
                .collect(),
            config,
        }
    }
}

crate::optimizer::candle_optimizer!(Adam, AdamConfig);

impl StatefulOptimizer for Adam {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let AdamConfig {
            betas: (b1, b2),
            eps,
            weight_decay,
            amsgrad,
            decoupled,
            ..
        } = self.config;
        for slot in &mut self.slots {
            let Some((mut p, g)) = slot.read(grads)? else {
                continue;
            };
            slot.steps += 1;
            let t = slot.steps as i32;
            let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            let step_size = (lr / bc1) as f32;
            let bc2_sqrt = bc2.sqrt() as f32;
            for (_, buf) in slot.buffers.iter_mut() {
                if buf.is_empty() {
                    *buf = vec![0.0; p.len()];
                }
            }
            let [(_, m), (_, v), rest @ ..] = &mut slot.buffers[..] else {
                unreachable!("adam has two moments")
            };
            let (b1f, b2f, eps, wd) = (b1 as f32, b2 as f32, eps as f32, weight_decay as f32);
            let shrink = (1.0 - lr * weight_decay) as f32;
            for i in 0..p.len() {
                let mut gi = g[i];
                if decoupled {
                    p[i] *= shrink;
                } else if wd != 0.0 {
                    gi += wd * p[i];
                }
                m[i] = b1f * m[i] + (1.0 - b1f) * gi;
                v[i] = b2f * v[i] + (1.0 - b2f) * gi * gi;
                let second = match (amsgrad, rest.first_mut()) {
                    (true, Some((_, vmax))) => {
                        vmax[i] = vmax[i].max(v[i]);
                        vmax[i]
                    }
                    _ => v[i],
                };
                let denom = second.sqrt() / bc2_sqrt + eps;
                p[i] -= step_size * m[i] / denom;
            }
            slot.write(p)?;
        }
        Ok(())
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.config.betas.0 = momentum;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        slots_state(&self.slots)
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        load_slots(&mut self.slots, tensors)
    }
}
