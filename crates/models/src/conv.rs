//! 2-D convolution as PyTorch's `nn.Conv2d` (cross-correlation, zero
//! padding, bias), with an optional fused activation. The kernels are in
//! [`crate::ops::conv`].

use std::fmt;

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

use crate::ops::conv::{Conv2dOp, Kernels, out_len};
use crate::{Activation, Init, Result};

/// Options of a [`Conv2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows, (rows, columns). Default: (1, 1).
    pub stride: (usize, usize),
    /// Zeros added on each side, (rows, columns). Default: (0, 0).
    pub padding: (usize, usize),
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
        }
    }
}

/// A 2-D convolution layer: `weight` `[out, in, kh, kw]`, `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    config: Conv2dConfig,
}

impl Conv2d {
    /// A layer over existing tensors.
    ///
    /// # Errors
    /// When `weight` is not 4-D or `bias` does not have one value per output
    /// channel.
    pub fn new(weight: Tensor, bias: Tensor, config: Conv2dConfig) -> Result<Self> {
        let (out, ..) = weight.dims4()?;
        if bias.dims() != [out] {
            return Err(crate::Error::Layer(format!(
                "conv bias must be [{out}], got {:?}",
                bias.dims()
            )));
        }
        Ok(Self {
            weight,
            bias,
            config,
        })
    }

    /// The output size of the last two axes for an `h x w` input.
    pub fn output_size(&self, (h, w): (usize, usize)) -> Option<(usize, usize)> {
        let (_, _, kh, kw) = self.weight.dims4().ok()?;
        Some((
            out_len(h, kh, self.config.stride.0, self.config.padding.0)?,
            out_len(w, kw, self.config.stride.1, self.config.padding.1)?,
        ))
    }

    /// The convolution followed by `act`, in one op: `x` `[B, in, H, W]` to
    /// `[B, out, OH, OW]` (`train` is accepted for symmetry with the other
    /// layers: a convolution acts the same in both modes).
    ///
    /// # Errors
    /// A wrong rank, channel count, or an input smaller than the kernel.
    pub fn forward_act(&self, x: &Tensor, _train: bool, act: Activation) -> Result<Tensor> {
        Ok(x.contiguous()?
            .apply_op3(&self.weight, &self.bias, self.op(act)?)?)
    }
}

impl Conv2d {
    /// The weight, `[out, in, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Stride and padding.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// Output channels.
    pub(crate) fn out_channels(&self) -> usize {
        self.bias.elem_count()
    }

    /// The op of this layer with activation `act`.
    pub(crate) fn op(&self, act: Activation) -> Result<Conv2dOp> {
        let (_, _, kh, kw) = self.weight.dims4()?;
        Ok(Conv2dOp {
            kernel: (kh, kw),
            stride: self.config.stride,
            padding: self.config.padding,
            act,
            kernels: Kernels::default(),
        })
    }
}

impl ModuleT for Conv2d {
    /// [`Conv2d::forward_act`] without an activation.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_act(x, train, Activation::Identity)?)
    }
}

impl fmt::Display for Conv2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (o, i, kh, kw) = self.weight.dims4().map_err(|_| fmt::Error)?;
        let Conv2dConfig { stride, padding } = self.config;
        write!(
            f,
            "Conv2d({i}, {o}, kernel_size=({kh}, {kw}), stride=({}, {})",
            stride.0, stride.1
        )?;
        if padding != (0, 0) {
            write!(f, ", padding=({}, {})", padding.0, padding.1)?;
        }
        write!(f, ")")
    }
}

/// A [`Conv2d`] with `weight` and `bias` from `vb`, initialised (where `vb`
/// creates them) as PyTorch does: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
/// both.
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let fan_in = in_channels * kernel.0 * kernel.1;
    conv2d_init(
        in_channels,
        out_channels,
        kernel,
        config,
        Init::fan_in_uniform(fan_in),
        Init::fan_in_uniform(fan_in),
        vb,
    )
}

/// A [`Conv2d`] whose weight and bias, where `vb` creates them, are drawn
/// from the given schemes.
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn conv2d_init(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dConfig,
    weight_init: Init,
    bias_init: Init,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let weight = vb.get_with_hints(
        (out_channels, in_channels, kernel.0, kernel.1),
        "weight",
        weight_init.into(),
    )?;
    let bias = vb.get_with_hints(out_channels, "bias", bias_init.into())?;
    Conv2d::new(weight, bias, config)
}
