//! A fully connected layer as PyTorch's `nn.Linear`: `y = x W^T + b`.

use std::fmt;

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::{Init, Result};

/// `weight` `[out, in]`, `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// A layer over existing tensors: `weight` `[out, in]`, `bias` `[out]`.
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    /// The weight, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.bias.elem_count()
    }
}

impl Module for Linear {
    /// `x` `[..., in]` to `[..., out]`; an error when the last axis of `x`
    /// is not `in`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)
    }
}

impl fmt::Display for Linear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (o, i) = self.weight.dims2().map_err(|_| fmt::Error)?;
        write!(f, "Linear(in_features={i}, out_features={o}, bias=True)")
    }
}

/// A [`Linear`] with `weight` and `bias` from `vb`, initialised (where `vb`
/// creates them) as PyTorch does: both `U(-1/sqrt(in), 1/sqrt(in))`.
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn linear(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Linear> {
    let init = Init::fan_in_uniform(in_features).into();
    Ok(Linear {
        weight: vb.get_with_hints((out_features, in_features), "weight", init)?,
        bias: vb.get_with_hints(out_features, "bias", init)?,
    })
}
