//! A fully connected layer as PyTorch's `nn.Linear`: `y = x W^T + b`.

use std::fmt;

use candle_core::Tensor;

use crate::{Init, ParamBuilder, Result};

/// `weight` `[out, in]`, `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// `x` `[..., in]` to `[..., out]`.
    ///
    /// # Errors
    /// When the last axis of `x` is not `in`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.weight.t()?)?;
        Ok(y.broadcast_add(&self.bias)?)
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.bias.elem_count()
    }
}

impl fmt::Display for Linear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (o, i) = self.weight.dims2().map_err(|_| fmt::Error)?;
        write!(f, "Linear(in_features={i}, out_features={o}, bias=True)")
    }
}

/// A [`Linear`] registered under `pb` with PyTorch's default initialisation
/// (weight and bias `U(-1/sqrt(in), 1/sqrt(in))`).
///
/// # Errors
/// When a name is already registered.
pub fn linear(in_features: usize, out_features: usize, pb: &ParamBuilder) -> Result<Linear> {
    let init = Init::fan_in_uniform(in_features);
    Ok(Linear {
        weight: pb.param(&[out_features, in_features], "weight", init)?,
        bias: pb.param(&[out_features], "bias", init)?,
    })
}
