//! Batch normalisation as PyTorch's `nn.BatchNorm1d`/`nn.BatchNorm2d`, with
//! an optional fused activation.
//!
//! Train mode normalises with the batch mean and the biased batch variance
//! over every axis but the channel one, and moves the running statistics by
//! `momentum` toward the batch mean and the unbiased batch variance. Eval mode
//! normalises with the running statistics. The op ([`crate::ops::batch_norm`]) computes the output and
//! its three gradients (input, weight, bias) in two passes each, where
//! candle-nn's composition of tensor ops makes about ten.

use std::fmt;
use std::sync::{Arc, Mutex};

use candle_core::{DType, ModuleT, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::ops::batch_norm::{BatchNormOp, BatchStat, Stats, inv_std, per_channel};
use crate::ops::conv_bn::{ChainOp, ConvBnChain};
use crate::ops::pool::Pool;
use crate::{Activation, Result};

/// Options of a [`BatchNorm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root. Default: 1e-5.
    pub eps: f64,
    /// Weight of the batch statistics in the running update. Default: 0.1.
    pub momentum: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// A batch-norm layer over the channel axis (axis 1) of `[N, C, ...]`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    config: BatchNormConfig,
    /// 1 or 2, for the printed name only.
    spatial_dims: usize,
}

/// A [`BatchNorm`] for `[N, C, H, W]` with PyTorch's names from `vb` and,
/// where `vb` creates them, PyTorch's initial values (weight 1, bias 0,
/// running mean 0, running var 1). A state_dict without
/// `num_batches_tracked` (PyTorch loads those too) starts it at 0.
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn batch_norm2d(channels: usize, config: BatchNormConfig, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(channels, config, 2, vb)
}

/// A [`BatchNorm`] for `[N, C]`, as [`batch_norm2d`].
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn batch_norm1d(channels: usize, config: BatchNormConfig, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(channels, config, 1, vb)
}

fn batch_norm(
    channels: usize,
    config: BatchNormConfig,
    spatial_dims: usize,
    vb: VarBuilder,
) -> Result<BatchNorm> {
    // From a `VarMap`-like backend these are its variables, so the running
    // updates land there; from a file they become variables of their own.
    let buffer = |name, value| -> Result<Var> {
        Ok(Var::from_tensor(&vb.get_with_hints(
            channels,
            name,
            Init::Const(value),
        )?)?)
    };
    let tracked = "num_batches_tracked";
    let num_batches_tracked =
        match vb.get_with_hints_dtype((), tracked, Init::Const(0.0), DType::I64) {
            Ok(t) => Var::from_tensor(&t)?,
            Err(_) if !vb.contains_tensor(tracked) => Var::zeros((), DType::I64, vb.device())?,
            Err(e) => return Err(e.into()),
        };
    Ok(BatchNorm {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        running_mean: buffer("running_mean", 0.0)?,
        running_var: buffer("running_var", 1.0)?,
        num_batches_tracked,
        config,
        spatial_dims,
    })
}

impl BatchNorm {
    /// The scale, `[C]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift, `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The running mean, `[C]`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running (unbiased) variance, `[C]`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Epsilon and momentum.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// Normalises `x` `[N, C, ...]` then applies `act`, in one op; in train
    /// mode also updates the running statistics.
    ///
    /// # Errors
    /// A rank below 2, a channel count other than the layer's, or a train-mode
    /// batch with a single value per channel.
    pub fn forward_act(&self, x: &Tensor, train: bool, act: Activation) -> Result<Tensor> {
        self.apply(x, train, act, None)
    }

    /// [`forward_act`](Self::forward_act) followed by max pooling with a
    /// square `kernel` and stride (PyTorch floor mode), in one op: the
    /// activations are pooled as they are computed and never stored, and
    /// the backward pass takes the pooled gradient straight back through
    /// each window's maximum. Same results as the two layers, with a tenth
    /// of the memory traffic for a 3x3 window.
    ///
    /// # Errors
    /// As [`forward_act`](Self::forward_act), an input that is not 4-D, or a
    /// kernel larger than the input.
    pub fn forward_act_max_pool(
        &self,
        x: &Tensor,
        train: bool,
        act: Activation,
        kernel: usize,
    ) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(crate::Error::Layer(format!(
                "batch norm with pooling expects [N, C, H, W], got {:?}",
                x.dims()
            )));
        }
        let pool = Pool::max(kernel, x.track_op());
        self.apply(x, train, act, Some(pool))
    }

    fn apply(
        &self,
        x: &Tensor,
        train: bool,
        act: Activation,
        pool: Option<Pool>,
    ) -> Result<Tensor> {
        self.run(x.dims(), train, act, pool, |op| {
            Ok(x.contiguous()?.apply_op3(&self.weight, &self.bias, op)?)
        })
    }

    /// Builds the op for an input of shape `dims`, lets `apply` run it and
    /// moves the running statistics in train mode.
    fn run(
        &self,
        dims: &[usize],
        train: bool,
        act: Activation,
        pool: Option<Pool>,
        apply: impl FnOnce(BatchNormOp) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let op = self.op(dims, train, act, pool)?;
        let stats = op.stats.clone();
        let y = apply(op)?;
        self.record(&stats, dims)?;
        Ok(y)
    }

    /// The op for an input of shape `dims`.
    fn op(
        &self,
        dims: &[usize],
        train: bool,
        act: Activation,
        pool: Option<Pool>,
    ) -> Result<BatchNormOp> {
        let channels = self.weight.elem_count();
        if dims.len() < 2 || dims[1] != channels {
            return Err(crate::Error::Layer(format!(
                "batch norm over {channels} channels got an input of shape {dims:?}"
            )));
        }
        let stats = if train {
            if per_channel(dims) < 2 {
                return Err(crate::Error::Layer(format!(
                    "batch norm in train mode needs more than one value per channel, got {dims:?}"
                )));
            }
            Stats::Batch(Arc::new(Mutex::new(Vec::new())))
        } else {
            let mean = self.running_mean.as_tensor().to_vec1::<f32>()?;
            let var = self.running_var.as_tensor().to_vec1::<f32>()?;
            Stats::Fixed(
                mean.iter()
                    .zip(&var)
                    .map(|(&m, &v)| (m, inv_std(v as f64, self.config.eps)))
                    .collect(),
            )
        };
        Ok(BatchNormOp {
            eps: self.config.eps,
            act,
            stats,
            pool,
        })
    }

    /// Moves the running statistics toward the batch statistics an op
    /// recorded in `stats` for an input of shape `dims` (train mode only).
    fn record(&self, stats: &Stats, dims: &[usize]) -> Result<()> {
        match stats {
            Stats::Batch(batch) => self.update_running(
                &batch.lock().unwrap_or_else(|e| e.into_inner()),
                per_channel(dims),
            ),
            Stats::Fixed(_) => Ok(()),
        }
    }

    fn update_running(&self, batch: &[BatchStat], n: usize) -> Result<()> {
        let m = self.config.momentum;
        let unbias = n as f64 / (n - 1) as f64;
        let mean = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let var = self.running_var.as_tensor().to_vec1::<f32>()?;
        let new_mean: Vec<f32> = mean
            .iter()
            .zip(batch)
            .map(|(&r, s)| ((1.0 - m) * r as f64 + m * s.mean) as f32)
            .collect();
        let new_var: Vec<f32> = var
            .iter()
            .zip(batch)
            .map(|(&r, s)| ((1.0 - m) * r as f64 + m * s.var * unbias) as f32)
            .collect();
        let dev = self.weight.device();
        self.running_mean
            .set(&Tensor::from_vec(new_mean, mean.len(), dev)?)?;
        self.running_var
            .set(&Tensor::from_vec(new_var, var.len(), dev)?)?;
        let tracked = self.num_batches_tracked.as_tensor().to_scalar::<i64>()?;
        self.num_batches_tracked
            .set(&Tensor::new(tracked + 1, dev)?.to_dtype(DType::I64)?)?;
        Ok(())
    }
}

/// A convolution with its activation, then a batch norm with its
/// activation: a block of [`forward_conv_bn`].
#[derive(Debug, Clone, Copy)]
pub struct ConvBn<'a> {
    /// The convolution.
    pub conv: &'a crate::Conv2d,
    /// The activation after the convolution.
    pub conv_act: Activation,
    /// The batch norm.
    pub bn: &'a BatchNorm,
    /// The activation after the batch norm.
    pub act: Activation,
}

/// The `blocks` applied in turn to `x`
/// (`bn.forward_act(conv.forward_act(x, conv_act), act)` for each), in one
/// op: the activations between the layers are kept inside it rather than
/// made tensors of the graph, so they get no gradient tensors of their own,
/// and the backward pass hands each layer's input gradient straight to the
/// layer before. Same results as the layers one by one.
///
/// # Errors
/// No blocks, or as the layers: a wrong input shape or channel count, a
/// kernel larger than the padded input, a train-mode batch with a single
/// value per channel.
pub fn forward_conv_bn(blocks: &[ConvBn<'_>], x: &Tensor, train: bool) -> Result<Tensor> {
    if blocks.is_empty() {
        return Err(crate::Error::Layer(
            "a conv/batch-norm chain needs a block".into(),
        ));
    }
    let (n, c, h, w) = x.dims4()?;
    let mut dims = [n, c, h, w];
    let mut ops = Vec::with_capacity(blocks.len());
    let mut stats = Vec::with_capacity(blocks.len());
    // The op takes every convolution's weight and bias as one tensor, and
    // every batch norm's likewise (a custom op has three inputs); the
    // concatenation's backward pass hands each parameter its gradient.
    let mut conv_params = Vec::with_capacity(2 * blocks.len());
    let mut bn_params = Vec::with_capacity(2 * blocks.len());
    for b in blocks {
        let Some((oh, ow)) = b.conv.output_size((dims[2], dims[3])) else {
            return Err(crate::Error::Layer(format!(
                "the convolution's kernel is larger than the padded input {dims:?}"
            )));
        };
        dims = [n, b.conv.out_channels(), oh, ow];
        let bn = b.bn.op(&dims, train, b.act, None)?;
        stats.push((bn.stats.clone(), dims));
        ops.push(ChainOp {
            conv: b.conv.op(b.conv_act)?,
            weight_dims: b.conv.weight().dims4()?.into(),
            bn,
        });
        conv_params.extend([b.conv.weight().flatten_all()?, b.conv.bias().clone()]);
        bn_params.extend([&b.bn.weight, &b.bn.bias]);
    }
    let (conv_params, bn_params) = (Tensor::cat(&conv_params, 0)?, Tensor::cat(&bn_params, 0)?);
    let y = x
        .contiguous()?
        .apply_op3(&conv_params, &bn_params, ConvBnChain::new(ops))?;
    for (b, (stats, dims)) in blocks.iter().zip(stats) {
        b.bn.record(&stats, &dims)?;
    }
    Ok(y)
}

impl ModuleT for BatchNorm {
    /// [`BatchNorm::forward_act`] without an activation.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_act(x, train, Activation::Identity)?)
    }
}

impl fmt::Display for BatchNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BatchNorm{}d({}, eps={:e}, momentum={}, affine=True, track_running_stats=True)",
            self.spatial_dims,
            self.weight.elem_count(),
            self.config.eps,
            self.config.momentum
        )
    }
}
