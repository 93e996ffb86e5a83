//! 2-D convolution as PyTorch's `nn.Conv2d` (cross-correlation, zero
//! padding, bias), with an optional fused activation.
//!
//! candle 0.11's CPU conv backward runs a naive transposed convolution; this
//! op uses im2col and one matrix product per example in both directions
//! (`dW += dY * cols^T`, `dcols = W^T * dY`, then col2im), parallel over the
//! batch. The input is first split into column phases ([`Planes`]), so that
//! im2col is a copy and col2im a vector add even for strided windows. Small
//! weight gradients are register tiles of dot products instead of a GEMM
//! ([`SMALL_WEIGHT_GRAD`]), and layers with few output channels run the
//! forward pass as register tiles straight over the planes
//! ([`DIRECT_MAX_OUT`]). Weight gradients are summed over the batch in a
//! fixed order, so results do not depend on the thread count.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::{Act, with_act};
use crate::batch_norm::BatchNormOp;
use crate::cpu::{Mat, f32_data, lane_sums, matmul, recycle, recycled, with_f32, with_scratch};
use crate::kernels::{Kernel, LANES, Simd, dispatch};
use crate::{Activation, Init, ParamBuilder, Result};

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

    /// `x` `[B, in, H, W]` to `[B, out, OH, OW]` (`train` is accepted for
    /// symmetry with the other layers: a convolution acts the same in both
    /// modes).
    ///
    /// # Errors
    /// A wrong rank, channel count, or an input smaller than the kernel.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity, train)
    }

    /// The convolution followed by `act`, in one op.
    ///
    /// # Errors
    /// As [`forward_t`](Self::forward_t).
    pub fn forward_act(&self, x: &Tensor, act: Activation, _train: bool) -> Result<Tensor> {
        Ok(x.contiguous()?
            .apply_op3(&self.weight, &self.bias, self.op(act)?)?)
    }
}

impl Conv2d {
    /// Output channels.
    pub(crate) fn out_channels(&self) -> usize {
        self.bias.elem_count()
    }

    /// The op of this layer with activation `act`.
    fn op(&self, act: Activation) -> Result<Conv2dOp> {
        let (_, _, kh, kw) = self.weight.dims4()?;
        Ok(Conv2dOp {
            kernel: (kh, kw),
            stride: self.config.stride,
            padding: self.config.padding,
            act,
        })
    }
}

/// One block of [`chain`]: a convolution with its activation, and
/// the batch norm op that follows it with its weight and bias.
pub(crate) struct ChainBlock<'a> {
    pub conv: &'a Conv2d,
    pub conv_act: Activation,
    pub bn: BatchNormOp,
    pub bn_params: (&'a Tensor, &'a Tensor),
}

/// The blocks applied in turn to `x`, as one op; see
/// [`crate::forward_conv_bn`].
pub(crate) fn chain(x: &Tensor, blocks: Vec<ChainBlock<'_>>) -> Result<Tensor> {
    // One tensor per op input: the packing's backward pass hands each
    // parameter its part of the gradient.
    let mut conv_params = Vec::new();
    let mut bn_params = Vec::new();
    let mut ops = Vec::new();
    for b in blocks {
        conv_params.extend([b.conv.weight.flatten_all()?, b.conv.bias.clone()]);
        bn_params.extend([b.bn_params.0, b.bn_params.1]);
        ops.push(ChainOp {
            conv: b.conv.op(b.conv_act)?,
            weight_dims: b.conv.weight.dims4()?.into(),
            bn: b.bn,
        });
    }
    let op = ConvBnChain {
        ops,
        kept: Mutex::new(Vec::new()),
    };
    let (conv_params, bn_params) = (Tensor::cat(&conv_params, 0)?, Tensor::cat(&bn_params, 0)?);
    Ok(x.contiguous()?.apply_op3(&conv_params, &bn_params, op)?)
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

/// A [`Conv2d`] registered as `weight` and `bias` under `pb`, with PyTorch's
/// default initialisation (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for both).
///
/// # Errors
/// When a name is already registered.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dConfig,
    pb: &ParamBuilder,
) -> Result<Conv2d> {
    let fan_in = in_channels * kernel.0 * kernel.1;
    conv2d_init(
        in_channels,
        out_channels,
        kernel,
        config,
        Init::fan_in_uniform(fan_in),
        Init::fan_in_uniform(fan_in),
        pb,
    )
}

/// A [`Conv2d`] whose weight and bias are drawn from the given schemes.
///
/// # Errors
/// When a name is already registered.
pub fn conv2d_init(
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    config: Conv2dConfig,
    weight_init: Init,
    bias_init: Init,
    pb: &ParamBuilder,
) -> Result<Conv2d> {
    let weight = pb.param(
        &[out_channels, in_channels, kernel.0, kernel.1],
        "weight",
        weight_init,
    )?;
    let bias = pb.param(&[out_channels], "bias", bias_init)?;
    Conv2d::new(weight, bias, config)
}

fn out_len(len: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = len + 2 * p;
    (padded >= k && s > 0).then(|| (padded - k) / s + 1)
}

/// The convolution op: inputs `x`, `weight`, `bias`.
#[derive(Debug, Clone, Copy)]
struct Conv2dOp {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    act: Activation,
}

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    channels: usize,
    h: usize,
    w: usize,
    out: usize,
    oh: usize,
    ow: usize,
    /// Rows of the unfolded input: `channels * kh * kw`.
    k: usize,
}

impl Geometry {
    /// Output positions per example.
    fn n(&self) -> usize {
        self.oh * self.ow
    }

    fn in_len(&self) -> usize {
        self.channels * self.h * self.w
    }

    /// Output rows per tile, so that a tile of the unfolded input (`k` rows
    /// of `rows * ow` values) stays in the L2 cache.
    fn tile_rows(&self) -> usize {
        const TILE_VALUES: usize = 48 * 1024;
        (TILE_VALUES / (self.k * self.ow).max(1)).clamp(1, self.oh)
    }

    /// The output row ranges of the tiles.
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (rows, oh) = (self.tile_rows(), self.oh);
        (0..oh).step_by(rows).map(move |r| (r, (r + rows).min(oh)))
    }
}

/// Per-example work runs on rayon; the matrix products inside split across
/// threads only when there are fewer examples than threads.
fn gemm_threads(batch: usize) -> usize {
    let threads = rayon::current_num_threads();
    if batch >= threads { 1 } else { threads }
}

impl Conv2dOp {
    fn geometry(&self, x: &[usize], w: &[usize]) -> candle_core::Result<Geometry> {
        let (&[batch, channels, h, wd], &[out, wc, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d expects a [B, C, H, W] input, got {x:?}")
        };
        if wc != channels || (kh, kw) != self.kernel {
            candle_core::bail!("conv2d weight {w:?} does not fit the input {x:?}");
        }
        let (Some(oh), Some(ow)) = (
            out_len(h, kh, self.stride.0, self.padding.0),
            out_len(wd, kw, self.stride.1, self.padding.1),
        ) else {
            candle_core::bail!("conv2d kernel {kh}x{kw} is larger than the padded {h}x{wd} input")
        };
        Ok(Geometry {
            batch,
            channels,
            h,
            w: wd,
            out,
            oh,
            ow,
            k: channels * kh * kw,
        })
    }

    /// The output `[B, out, OH, OW]` of input `x`, weights `w` and bias `b`.
    fn forward_slices(&self, g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let g = *g;
        let (k, n) = (g.k, g.n());
        let threads = gemm_threads(g.batch);
        let planes = self.planes(&g);
        let unfold = Unfold::new(self, &g, &planes);
        let mut y = recycled(g.batch * g.out * n);
        let direct = g.out <= DIRECT_MAX_OUT;
        let packed = if direct {
            pack_weights(w, g.out, k)
        } else {
            Vec::new()
        };
        let lens = if direct {
            [planes.len(g.channels) + DIRECT_SPAN, 0]
        } else {
            [planes.len(g.channels), k * g.tile_rows() * g.ow]
        };
        y.par_chunks_mut(g.out * n)
            .zip(x.par_chunks(g.in_len()))
            .for_each(|(yb, xb)| {
                with_scratch(lens, |[xp, cols]| {
                    planes.split(&g, self.padding, xb, xp);
                    if direct {
                        with_act!(self.act, A => dispatch(DirectForward::<A> {
                            y: yb,
                            planes: xp,
                            unfold: &unfold,
                            packed: &packed,
                            bias: b,
                            oh: g.oh,
                            act: PhantomData,
                        }));
                        return;
                    }
                    for rows in g.tiles() {
                        let tn = (rows.1 - rows.0) * g.ow;
                        unfold.im2col(xp, rows, &mut cols[..k * tn]);
                        let dst = &mut yb[rows.0 * g.ow..];
                        matmul(
                            dst,
                            n,
                            Mat::new(w),
                            Mat::new(&cols[..k * tn]),
                            (g.out, k, tn),
                            false,
                            threads,
                        );
                    }
                    for (row, bias) in yb.chunks_exact_mut(n).zip(b) {
                        with_act!(self.act, A => row.iter_mut().for_each(|v| *v = A::apply(*v + bias)));
                    }
                })
            });
        y
    }

    /// The input (if `want_dx`), weight and bias gradients from the input
    /// `xs`, the output gradient `dy`, the output `y` and the weights `ws`.
    fn backward_slices(
        &self,
        g: &Geometry,
        (xs, dy, y, ws): (&[f32], &[f32], &[f32], &[f32]),
        want_dx: bool,
    ) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
        let g = *g;
        let (k, n) = (g.k, g.n());
        let threads = gemm_threads(g.batch);
        let mut dx = recycled(if want_dx { g.batch * g.in_len() } else { 0 });
        let mut dw_per = vec![0.0f32; g.batch * g.out * k];
        let mut db_per = vec![0.0f32; g.batch * g.out];
        let mut dx_chunks: Vec<&mut [f32]> = dx.chunks_mut(g.in_len()).collect();
        dx_chunks.resize_with(g.batch, Default::default);
        let tile = k * g.tile_rows() * g.ow;
        let planes = self.planes(&g);
        let plen = planes.len(g.channels);
        // A small weight gradient is dot products straight over the
        // planes: no unfolding.
        let small_dw = g.out * k <= SMALL_WEIGHT_GRAD;
        let unfold = Unfold::new(self, &g, &planes);
        let cols_len = if small_dw { 0 } else { tile };
        xs.par_chunks(g.in_len())
            .zip(dy.par_chunks(g.out * n))
            .zip(y.par_chunks(g.out * n))
            .zip(dw_per.par_chunks_mut(g.out * k))
            .zip(db_per.par_chunks_mut(g.out))
            .zip(dx_chunks)
            .for_each(|(((((xb, dyb), yb), dwb), dbb), dxb)| {
                let dx_lens = if want_dx { (plen, tile) } else { (0, 0) };
                let pre_len = if self.act == Activation::Identity { 0 } else { g.out * n };
                let lens = [plen, cols_len, dx_lens.0, dx_lens.1, pre_len];
                with_scratch(lens, |[xp, cols, dxp, dcols, dpre]| {
                    planes.split(&g, self.padding, xb, xp);
                    dxp.fill(0.0);
                    // The gradient before the activation: dY * act'(y).
                    let gb = if self.act == Activation::Identity {
                        dyb
                    } else {
                        let pairs = dpre.iter_mut().zip(dyb.iter().zip(yb));
                        with_act!(self.act, A => pairs.for_each(|(p, (d, y))| *p = d * A::grad(*y)));
                        &dpre[..]
                    };
                    for (d, row) in dbb.iter_mut().zip(gb.chunks_exact(n)) {
                        // In eight lanes: a plain sum is one long chain of
                        // dependent adds.
                        *d = lane_sums([row], |[v]| [v])[0] as f32;
                    }
                    if small_dw {
                        dispatch(WeightGrad {
                            dz: (gb, n, g.ow),
                            x: (xp, &unfold.taps, unfold.step),
                            rows: g.oh,
                            len: g.ow,
                            dw: dwb,
                        });
                        if !want_dx {
                            return;
                        }
                    }
                    for (i, rows) in g.tiles().enumerate() {
                        let tn = (rows.1 - rows.0) * g.ow;
                        let gt = Mat::new(&gb[rows.0 * g.ow..]).ld(n);
                        if !small_dw {
                            let cols = &mut cols[..k * tn];
                            unfold.im2col(xp, rows, cols);
                            matmul(
                                dwb,
                                0,
                                gt,
                                Mat::t(cols),
                                (g.out, tn, k),
                                i > 0,
                                threads,
                            );
                        }
                        if want_dx {
                            let dcols = &mut dcols[..k * tn];
                            matmul(
                                dcols,
                                0,
                                Mat::t(ws),
                                gt,
                                (k, g.out, tn),
                                false,
                                threads,
                            );
                            unfold.col2im(dcols, rows, dxp);
                        }
                    }
                    if want_dx {
                        planes.join(&g, self.padding, dxp, dxb);
                    }
                })
            });
        let dw = sum_rows(&dw_per, g.out * k);
        let db = sum_rows(&db_per, g.out);
        (want_dx.then_some(dx), dw, db)
    }

    /// The phase-split layout of one example's padded input.
    fn planes(&self, g: &Geometry) -> Planes {
        let ((_, kw), (_, sw), (ph, _)) = (self.kernel, self.stride, self.padding);
        Planes {
            rows: g.h + 2 * ph,
            phases: sw,
            cols: g.ow + (kw - 1) / sw,
        }
    }

    /// The planes offset of every tap `(c, ki, kj)`'s window at output
    /// position (0, 0).
    fn tap_offsets(&self, g: &Geometry, planes: &Planes) -> Vec<usize> {
        let (kh, kw) = self.kernel;
        (0..g.k)
            .map(|tap| planes.at(tap / (kh * kw), tap / kw % kh, tap % kw))
            .collect()
    }
}

/// Where each unfolded row `(tap, oy)` of one example lies in its
/// [`Planes`]: `ow` values from `taps[tap] + oy * step` on.
#[derive(Debug)]
struct Unfold {
    ow: usize,
    /// Each tap's offset at output position (0, 0), from
    /// [`Conv2dOp::tap_offsets`].
    taps: Vec<usize>,
    /// Planes distance between output rows.
    step: usize,
}

impl Unfold {
    fn new(op: &Conv2dOp, g: &Geometry, planes: &Planes) -> Self {
        Self {
            ow: g.ow,
            taps: op.tap_offsets(g, planes),
            step: op.stride.0 * planes.row_stride(),
        }
    }

    /// Calls `f(unfolded row start, planes offset)` for every unfolded row
    /// `(tap, oy)` with `oy` in `rows`, in the `[K, rows * OW]` order.
    fn for_each_row(&self, (oy0, oy1): (usize, usize), mut f: impl FnMut(usize, usize)) {
        let tn = (oy1 - oy0) * self.ow;
        for (tap, &at) in self.taps.iter().enumerate() {
            for oy in oy0..oy1 {
                f(tap * tn + (oy - oy0) * self.ow, at + oy * self.step);
            }
        }
    }

    /// Unfolds output rows `rows` of one example's planes into `cols`
    /// `[K, rows * OW]`: one copy per unfolded row.
    fn im2col(&self, planes: &[f32], rows: (usize, usize), cols: &mut [f32]) {
        self.for_each_row(rows, |to, at| {
            cols[to..][..self.ow].copy_from_slice(&planes[at..][..self.ow]);
        });
    }

    /// Adds `cols` `[K, rows * OW]` back into one example's gradient planes.
    fn col2im(&self, cols: &[f32], rows: (usize, usize), planes: &mut [f32]) {
        self.for_each_row(rows, |from, at| {
            let src = &cols[from..][..self.ow];
            planes[at..][..self.ow]
                .iter_mut()
                .zip(src)
                .for_each(|(d, v)| *d += v);
        });
    }
}

/// One example's input `[C, H, W]` zero-padded and split into `phases` (the
/// column stride) column phases: `[C][H + 2 ph][phases][cols]`, padded
/// column `xi` in phase `xi % phases` at `xi / phases`. Every unfolded row
/// of the convolution is then `ow` consecutive values, so im2col is a copy
/// and col2im a vector add, where the strided windows of the input would be
/// gathers and scatters. Columns no window reads are left out.
#[derive(Debug, Clone, Copy)]
struct Planes {
    rows: usize,
    phases: usize,
    cols: usize,
}

impl Planes {
    fn len(&self, channels: usize) -> usize {
        channels * self.rows * self.phases * self.cols
    }

    /// Distance between padded rows.
    fn row_stride(&self) -> usize {
        self.phases * self.cols
    }

    /// Index of padded position `(row, xi)` of channel `c`.
    fn at(&self, c: usize, row: usize, xi: usize) -> usize {
        ((c * self.rows + row) * self.phases + xi % self.phases) * self.cols + xi / self.phases
    }

    /// Calls `f(input row, its first column in the phase, planes segment
    /// start)` for every input row of `g` and column phase that holds input.
    fn for_each_row(
        &self,
        g: &Geometry,
        (ph, pw): (usize, usize),
        mut f: impl FnMut(usize, usize, usize),
    ) {
        for row in 0..g.channels * g.h {
            let (c, iy) = (row / g.h, row % g.h);
            for phase in 0..self.phases {
                // The first input column in this phase.
                let ix = (phase + self.phases - pw % self.phases) % self.phases;
                if ix < g.w {
                    f(row, ix, self.at(c, iy + ph, ix + pw));
                }
            }
        }
    }

    /// Writes one example `x` into `planes`, padding included.
    fn split(&self, g: &Geometry, pad: (usize, usize), x: &[f32], planes: &mut [f32]) {
        planes.fill(0.0);
        self.for_each_row(g, pad, |row, ix, at| {
            let end = at - at % self.cols + self.cols;
            gather(
                &mut planes[at..end],
                &x[row * g.w + ix..(row + 1) * g.w],
                self.phases,
            );
        });
    }

    /// Reads one example's gradient `dx` back out of `planes`.
    fn join(&self, g: &Geometry, pad: (usize, usize), planes: &[f32], dx: &mut [f32]) {
        self.for_each_row(g, pad, |row, ix, at| {
            let end = at - at % self.cols + self.cols;
            scatter(
                &mut dx[row * g.w + ix..(row + 1) * g.w],
                &planes[at..end],
                self.phases,
            );
        });
    }
}

/// `dst[i] = src[i * step]` while both last.
fn gather(dst: &mut [f32], src: &[f32], step: usize) {
    match step {
        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
        // Pairs: the loop vectorises.
        2 => {
            let pairs = src.chunks_exact(2);
            let (n, rest) = (pairs.len().min(dst.len()), pairs.remainder());
            dst.iter_mut().zip(pairs).for_each(|(d, p)| *d = p[0]);
            if let (Some(d), [last]) = (dst.get_mut(n), rest) {
                *d = *last;
            }
        }
        _ => dst
            .iter_mut()
            .zip(src.iter().step_by(step))
            .for_each(|(d, s)| *d = *s),
    }
}

/// `dst[i * step] = src[i]` while both last: the inverse of [`gather`].
fn scatter(dst: &mut [f32], src: &[f32], step: usize) {
    match step {
        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
        2 => {
            let mut pairs = dst.chunks_exact_mut(2);
            let n = pairs.len().min(src.len());
            pairs.by_ref().zip(src).for_each(|(p, s)| p[0] = *s);
            if let ([last], Some(s)) = (pairs.into_remainder(), src.get(n)) {
                *last = *s;
            }
        }
        _ => dst
            .iter_mut()
            .step_by(step)
            .zip(src)
            .for_each(|(d, s)| *d = *s),
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "hark-conv2d"
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
        let g = self.geometry(l1.dims(), l2.dims())?;
        let (x, w, b) = (f32_data(s1, l1)?, f32_data(s2, l2)?, f32_data(s3, l3)?);
        let y = self.forward_slices(&g, x, w, b);
        Ok((
            CpuStorage::F32(y),
            Shape::from((g.batch, g.out, g.oh, g.ow)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry(x.dims(), w.dims())?;
        let want_dx = x.track_op();
        let (dx, dw, db) = with_f32(x, |xs| {
            with_f32(grad, |dy| {
                with_f32(res, |y| {
                    with_f32(w, |ws| {
                        Ok(self.backward_slices(&g, (xs, dy, y, ws), want_dx))
                    })
                })
            })
        })?;
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, x.shape(), x.device()))
            .transpose()?;
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, g.out, w.device())?),
        ))
    }
}

/// Weight gradients up to this size (`out * k`) are register tiles of dot
/// products over the planes, without im2col: AudioCnn's first two layers
/// (8 x 50 and 16 x 72). Past it GEMM wins: in ms at batch 16 on 1 thread,
/// the second layer's backward pass takes 3.7 this way and 3.85 by GEMM,
/// the third's (32 x 144) 2.7 and 2.5, the fourth's (64 x 288) 4.3 and 2.2.
const SMALL_WEIGHT_GRAD: usize = 2048;

/// `dw = dZ * X^T` for one example, `dw` `[out, k]`, as dot products in
/// 3 x 3 register tiles straight over the input [`Planes`], without
/// unfolding: output channel `o`'s gradient rows start at `o * ld` in `dz`,
/// tap `t`'s input rows at `taps[t]` in `x`, and each product runs over
/// `rows` rows of `len` values (row strides in the pairs); see
/// [`SMALL_WEIGHT_GRAD`] for when.
struct WeightGrad<'a> {
    dz: (&'a [f32], usize, usize),
    x: (&'a [f32], &'a [usize], usize),
    rows: usize,
    len: usize,
    dw: &'a mut [f32],
}

impl Kernel for WeightGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        // 9 accumulators and 6 loads: 4 x 3 (17 registers with the loads)
        // made the compiler spill an accumulator, which then waited on a
        // store and a load every step.
        const TILE: (usize, usize) = (3, 3);
        let ((dz, ld, dz_stride), (x, taps, x_stride)) = (self.dz, self.x);
        let k = taps.len();
        let out = self.dw.len() / k;
        for o0 in (0..out).step_by(TILE.0) {
            let a_at = std::array::from_fn(|r| (o0 + r).min(out - 1) * ld);
            for t0 in (0..k).step_by(TILE.1) {
                let b_at = std::array::from_fn(|i| taps[(t0 + i).min(k - 1)]);
                let acc = simd.dot_tile::<{ TILE.0 }, { TILE.1 }>(
                    (dz, a_at, dz_stride),
                    (x, b_at, x_stride),
                    self.rows,
                    self.len,
                );
                for (r, acc) in acc.iter().enumerate().take(out - o0) {
                    let dw = &mut self.dw[(o0 + r) * k + t0..];
                    dw[..(k - t0).min(TILE.1)].copy_from_slice(&acc[..(k - t0).min(TILE.1)]);
                }
            }
        }
    }
}

/// Layers with up to this many output channels run the forward pass as
/// [`DirectForward`] tiles, the others as im2col and GEMM, whose 16-row
/// tiles few channels leave part empty. AudioCnn's forward convolutions, in
/// ms at batch 16 on 1 thread (GEMM, direct): 8 channels 2.2-2.9, 1.7-1.9;
/// 16: 1.3-1.9, 1.24-1.26; 32: 1.1-1.5, 1.03-1.07; 64: 0.94-0.98,
/// 1.25-1.28. The CRNN's first layer (32 channels, 9 taps) is as fast
/// either way.
const DIRECT_MAX_OUT: usize = 32;
/// Output channels per tile of [`DirectForward`].
const DIRECT_ROWS: usize = 4;
/// Output columns per tile of [`DirectForward`], in vectors: with
/// [`DIRECT_ROWS`], 8 accumulators, 2 loads and a broadcast, well inside the
/// 16 vector registers (4 x 3 made the compiler spill an accumulator).
const DIRECT_VECTORS: usize = 2;
/// Output columns per tile of [`DirectForward`]: its reads reach this far
/// past a row's last output, so the planes carry this much slack.
const DIRECT_SPAN: usize = DIRECT_VECTORS * LANES;

/// `w` `[out, k]` in blocks of [`DIRECT_ROWS`] output channels, tap-major
/// within a block (`[out / R][k][R]`), zero rows filling the last block.
fn pack_weights(w: &[f32], out: usize, k: usize) -> Vec<f32> {
    let blocks = out.div_ceil(DIRECT_ROWS);
    let mut packed = vec![0.0f32; blocks * k * DIRECT_ROWS];
    for (o, row) in w.chunks_exact(k).enumerate() {
        let block = &mut packed[o / DIRECT_ROWS * k * DIRECT_ROWS..];
        for (t, &v) in row.iter().enumerate() {
            block[t * DIRECT_ROWS + o % DIRECT_ROWS] = v;
        }
    }
    packed
}

/// One example's convolution straight from its [`Planes`], without
/// unfolding, in tiles of [`DIRECT_ROWS`] channels by [`DIRECT_SPAN`]
/// columns of one output row: `y` `[out, oh * ow]` gets the sums (bias and
/// activation are the caller's).
struct DirectForward<'a, A> {
    y: &'a mut [f32],
    planes: &'a [f32],
    unfold: &'a Unfold,
    packed: &'a [f32],
    bias: &'a [f32],
    oh: usize,
    act: PhantomData<A>,
}

impl<A: Act> Kernel for DirectForward<'_, A> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let (ow, k) = (self.unfold.ow, self.unfold.taps.len());
        let n = self.oh * ow;
        let out = self.y.len() / n;
        for (block, w) in self.packed.chunks_exact(k * DIRECT_ROWS).enumerate() {
            for oy in 0..self.oh {
                for ox in (0..ow).step_by(DIRECT_SPAN) {
                    let base = oy * self.unfold.step + ox;
                    let acc = simd.tile::<DIRECT_ROWS, DIRECT_VECTORS>(
                        self.planes,
                        base,
                        &self.unfold.taps,
                        w,
                    );
                    let len = DIRECT_SPAN.min(ow - ox);
                    for (r, acc) in acc.iter().enumerate() {
                        let o = block * DIRECT_ROWS + r;
                        if o < out {
                            let dst = &mut self.y[o * n + oy * ow + ox..][..len];
                            for (d, v) in dst.iter_mut().zip(acc.as_flattened()) {
                                *d = A::apply(v + self.bias[o]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One convolution and the batch norm after it, in a [`ConvBnChain`].
#[derive(Debug)]
struct ChainOp {
    conv: Conv2dOp,
    weight_dims: [usize; 4],
    bn: BatchNormOp,
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
struct ConvBnChain {
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

/// The sum of the `len`-long rows of `per`, added in order.
pub(crate) fn sum_rows(per: &[f32], len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for row in per.chunks_exact(len) {
        total.iter_mut().zip(row).for_each(|(t, v)| *t += v);
    }
    total
}
