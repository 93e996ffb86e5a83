//! Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW` (single
//! tensor path, `maximize = False`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::optimizer::{Slot, load_slots, slots_state};
use crate::{Optimizer, Result};

/// Adam with L2 weight decay (added to the gradient) or, `decoupled`,
/// AdamW (the weights shrink by `lr * weight_decay` before the update);
/// optionally AMSGrad.
#[derive(Debug)]
pub struct Adam {
    slots: Vec<Slot>,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    decoupled: bool,
}

impl Adam {
    /// An optimizer over `params`; see [`OptimizerConfig`](crate::OptimizerConfig).
    pub fn new(
        params: Vec<(String, Var)>,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        amsgrad: bool,
        decoupled: bool,
    ) -> Self {
        let buffers: &[&'static str] = if amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        };
        Self {
            slots: params
                .into_iter()
                .map(|(n, v)| Slot::new(n, v, buffers))
                .collect(),
            betas,
            eps,
            weight_decay,
            amsgrad,
            decoupled,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let (b1, b2) = self.betas;
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
            let (b1f, b2f, eps, wd) = (
                b1 as f32,
                b2 as f32,
                self.eps as f32,
                self.weight_decay as f32,
            );
            let shrink = (1.0 - lr * self.weight_decay) as f32;
            for i in 0..p.len() {
                let mut gi = g[i];
                if self.decoupled {
                    p[i] *= shrink;
                } else if wd != 0.0 {
                    gi += wd * p[i];
                }
                m[i] = b1f * m[i] + (1.0 - b1f) * gi;
                v[i] = b2f * v[i] + (1.0 - b2f) * gi * gi;
                let second = match (self.amsgrad, rest.first_mut()) {
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
        self.betas.0 = momentum;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        slots_state(&self.slots)
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        load_slots(&mut self.slots, tensors)
    }
}
