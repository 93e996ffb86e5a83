//! Stochastic gradient descent as `torch.optim.SGD`.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::optimizer::{Slot, load_slots, slots_state};
use crate::{Optimizer, Result};

/// SGD with L2 weight decay, momentum (with dampening) and Nesterov.
#[derive(Debug)]
pub struct Sgd {
    slots: Vec<Slot>,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
}

impl Sgd {
    /// An optimizer over `params`; see [`OptimizerConfig`](crate::OptimizerConfig).
    pub fn new(
        params: Vec<(String, Var)>,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
    ) -> Self {
        let buffers: &[&'static str] = if momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        };
        Self {
            slots: params
                .into_iter()
                .map(|(n, v)| Slot::new(n, v, buffers))
                .collect(),
            momentum,
            dampening,
            weight_decay,
            nesterov,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let (mu, damp, wd, lr) = (
            self.momentum as f32,
            self.dampening as f32,
            self.weight_decay as f32,
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
                if self.nesterov {
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
        self.momentum = momentum;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        slots_state(&self.slots)
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        load_slots(&mut self.slots, tensors)
    }
}
