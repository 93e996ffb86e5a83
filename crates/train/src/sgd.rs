//! Stochastic gradient descent as `torch.optim.SGD`.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::optimizer::{Slot, load_slots, slots_state};
use crate::{Result, StatefulOptimizer};

/// Settings of [`Sgd`], PyTorch's names and defaults (`torch.optim.SGD`,
/// with the learning rate hark's configs default to).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate. Default: 0.01.
    pub lr: f64,
    /// Momentum factor. Default: 0.
    pub momentum: f64,
    /// Dampening of the momentum. Default: 0.
    pub dampening: f64,
    /// L2 penalty. Default: 0.
    pub weight_decay: f64,
    /// Nesterov momentum. Default: false.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD with L2 weight decay, momentum (with dampening) and Nesterov. A
/// candle-nn [`Optimizer`](candle_nn::Optimizer).
#[derive(Debug)]
pub struct Sgd {
    slots: Vec<Slot>,
    config: SgdConfig,
}

impl Sgd {
    /// An optimizer over named `params`, whose state is saved under those
    /// names (see [`StatefulOptimizer::state`]).
    pub fn named(params: Vec<(String, Var)>, config: SgdConfig) -> Self {
        let buffers: &[&'static str] = if config.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
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

crate::optimizer::candle_optimizer!(Sgd, SgdConfig);

impl StatefulOptimizer for Sgd {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let (mu, damp, wd, lr) = (
            self.config.momentum as f32,
            self.config.dampening as f32,
            self.config.weight_decay as f32,
            lr as f32,
        );
        for slot in &mut self.slots {
            let Some((mut p, mut g)) = slot.read(grads)? else {
                continue;
            };
            slot.steps += 1;
            if wd != 0.0 {
                g.iter_mut().zip(&p).for_each(|(g, p)| *g += wd * p);
            }
            if let Some((_, buf)) = slot.buffers.first_mut() {
                // The first step copies the gradient into the buffer, as PyTorch does.
                if buf.is_empty() {
                    buf.clone_from(&g);
                } else {
                    buf.iter_mut()
                        .zip(&g)
                        .for_each(|(b, g)| *b = mu * *b + (1.0 - damp) * g);
                }
                if self.config.nesterov {
                    g.iter_mut().zip(buf.iter()).for_each(|(g, b)| *g += mu * b);
                } else {
                    g.clone_from(buf);
                }
            }
            p.iter_mut().zip(&g).for_each(|(p, g)| *p -= lr * g);
            slot.write(p)?;
        }
        Ok(())
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.config.momentum = momentum;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        slots_state(&self.slots)
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        load_slots(&mut self.slots, tensors)
    }
}
