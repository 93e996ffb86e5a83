//! Convolutions each followed by a batch norm, as one op
//! ([`crate::forward_conv_bn`]): built on the two ops, neither of which
//! knows of it.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::Activation;
use crate::ops::batch_norm::BatchNormOp;
use crate::ops::buffers::{f32_data, recycle, with_f32};
use crate::ops::conv::{Conv2dOp, Geometry};

/// One convolution and the batch norm after it, in a [`ConvBnChain`].
#[derive(Debug)]
pub(crate) struct ChainOp {
    /// The convolution, with its activation.
    pub conv: Conv2dOp,
    /// The convolution's weight shape `[out, in, kh, kw]`.
    pub weight_dims: [usize; 4],
    /// The batch norm, with its activation.
    pub bn: BatchNormOp,
}

/// What the forward pass keeps of one [`ChainOp`] for the backward pass.
#[derive(Debug)]
struct Kept {
    /// The convolution's output.
    conv_out: Vec<f32>,
    /// The batch norm's output, the next op's input; the last op's is the
    /// chain's output, which candle keeps.
    out: Vec<f32>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.conv_out));
        recycle(std::mem::take(&mut self.out));
    }
}

/// Convolutions each followed by a batch norm: inputs `x`, every
/// convolution's weight and bias flattened into one tensor (in order), and
/// every batch norm's weight and bias likewise. The activations between
/// the ops stay inside, so they get no gradient tensors of the graph and
/// each backward step hands its input gradient straight to the one before.
#[derive(Debug)]
pub(crate) struct ConvBnChain {
    ops: Vec<ChainOp>,
    kept: Mutex<Vec<Kept>>,
}

/// One [`ChainOp`]'s sizes in a call: its geometry, its output's dims, and
/// where its parameters start in the two parameter tensors.
#[derive(Debug, Clone, Copy)]
struct ChainStep {
    g: Geometry,
    dims: [usize; 4],
    conv_at: usize,
    bn_at: usize,
}

impl ChainStep {
    /// The convolution's weight and bias in the concatenated parameters.
    fn conv<'a>(&self, params: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        let (out, k) = (self.g.out, self.g.k);
        params[self.conv_at..self.conv_at + out * (k + 1)].split_at(out * k)
    }

    /// The batch norm's weight and bias in the concatenated parameters.
    fn bn<'a>(&self, params: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        params[self.bn_at..self.bn_at + 2 * self.g.out].split_at(self.g.out)
    }
}

impl ConvBnChain {
    /// The chain of `ops`, applied in order.
    pub(crate) fn new(ops: Vec<ChainOp>) -> Self {
        Self {
            ops,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Each op's sizes for input dims `x`.
    fn plan(&self, x: &[usize]) -> candle_core::Result<Vec<ChainStep>> {
        let (mut dims, mut conv_at, mut bn_at) = (x.to_vec(), 0, 0);
        self.ops
            .iter()
            .map(|op| {
                let g = op.conv.geometry(&dims, &op.weight_dims)?;
                let step = ChainStep {
                    g,
                    dims: [g.batch, g.out, g.oh, g.ow],
                    conv_at,
                    bn_at,
                };
                dims = step.dims.to_vec();
                (conv_at, bn_at) = (conv_at + g.out * (g.k + 1), bn_at + 2 * g.out);
                Ok(step)
            })
            .collect()
    }

    /// The input (if `want_dx`), convolution-parameter and batch-norm
    /// parameter gradients, from the chain's input `x`, its output `last`,
    /// the output's gradient and the two parameter tensors.
    fn backward_slices(
        &self,
        plan: &[ChainStep],
        (x, last, grad): (&[f32], &[f32], &[f32]),
        (conv, bn): (&[f32], &[f32]),
        want_dx: bool,
    ) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let (mut dconv, mut dbn) = (vec![0.0f32; conv.len()], vec![0.0f32; bn.len()]);
        let mut dz: Option<Vec<f32>> = None;
        for (i, (op, step)) in self.ops.iter().zip(plan).enumerate().rev() {
            let conv_out = &kept[i].conv_out;
            let out = if i + 1 == plan.len() {
                last
            } else {
                &kept[i].out
            };
            let input = if i == 0 { x } else { &kept[i - 1].out };
            let dz_now = dz.as_deref().unwrap_or(grad);
            let bn_data = (&conv_out[..], out, dz_now);
            let (dy, dgamma, dbeta) =
                op.bn
                    .backward_on(&step.dims, bn_data, step.bn(bn).0, op.conv.act);
            // `dy` is the gradient before the convolution's activation.
            let conv_op = Conv2dOp {
                act: Activation::Identity,
                ..op.conv
            };
            let data = (input, &dy[..], &conv_out[..], step.conv(conv).0);
            let (dx, dw, db) = conv_op.backward_slices(&step.g, data, i > 0 || want_dx);
            for (at, part) in [
                (step.conv_at, dw),
                (step.conv_at + step.g.out * step.g.k, db),
            ] {
                dconv[at..][..part.len()].copy_from_slice(&part);
            }
            for (at, part) in [(step.bn_at, dgamma), (step.bn_at + step.g.out, dbeta)] {
                dbn[at..][..part.len()].copy_from_slice(&part);
            }
            recycle(dy);
            if let Some(used) = std::mem::replace(&mut dz, dx) {
                recycle(used);
            }
        }
        (dz, dconv, dbn)
    }
}

impl CustomOp3 for ConvBnChain {
    fn name(&self) -> &'static str {
        "hark-conv2d-batch-norm-chain"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let plan = self.plan(l1.dims())?;
        let (x, conv, bn) = (f32_data(s1, l1)?, f32_data(s2, l2)?, f32_data(s3, l3)?);
        let mut kept = Vec::with_capacity(self.ops.len());
        for (op, step) in self.ops.iter().zip(&plan) {
            let input = kept.last().map_or(x, |k: &Kept| &k.out);
            let (w, b) = step.conv(conv);
            let conv_out = op.conv.forward_slices(&step.g, input, w, b);
            let out = op.bn.forward_on(&step.dims, &conv_out, step.bn(bn));
            kept.push(Kept { conv_out, out });
        }
        let (last, dims) = match (kept.last_mut(), plan.last()) {
            (Some(k), Some(step)) => (std::mem::take(&mut k.out), step.dims),
            _ => candle_core::bail!("a conv/batch-norm chain needs at least one block"),
        };
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = kept;
        Ok((CpuStorage::F32(last), Shape::from(dims.to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        conv: &Tensor,
        bn: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let plan = self.plan(x.dims())?;
        let (bn_params, want_dx) = (bn.to_vec1::<f32>()?, x.track_op());
        let (dx, dconv, dbn) = with_f32(x, |xs| {
            with_f32(res, |last| {
                with_f32(grad, |grad| {
                    with_f32(conv, |conv| {
                        let data = (xs, last, grad);
                        Ok(self.backward_slices(&plan, data, (conv, &bn_params), want_dx))
                    })
                })
            })
        })?;
        let dev = x.device();
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, x.shape(), dev))
            .transpose()?;
        Ok((
            dx,
            Some(Tensor::from_vec(dconv, conv.shape(), dev)?),
            Some(Tensor::from_vec(dbn, bn.shape(), dev)?),
        ))
    }
}
