//! 2-D convolution as PyTorch's `nn.Conv2d` (cross-correlation, zero
//! padding, bias), with an optional fused activation.
//!
//! candle 0.11's CPU conv backward runs a naive transposed convolution; this
//! op uses im2col and one matrix product per example in both directions
//! (`dW += dY * cols^T`, `dcols = W^T * dY`, then col2im), parallel over the
//! batch. Weight gradients are summed over the batch in a fixed order, so
//! results do not depend on the thread count.

use std::fmt;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::{Act, with_act};
use crate::cpu::{Mat, f32_data, matmul, with_f32};
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
        let (_, _, kh, kw) = self.weight.dims4()?;
        let op = Conv2dOp {
            kernel: (kh, kw),
            stride: self.config.stride,
            padding: self.config.padding,
            act,
        };
        Ok(x.contiguous()?.apply_op3(&self.weight, &self.bias, op)?)
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
#[derive(Debug)]
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

    /// Output columns `[lo, hi)` whose input column `ox * s + kj - p` lies in `[0, len)`.
    fn valid(out: usize, len: usize, s: usize, kj: usize, p: usize) -> (usize, usize) {
        let lo = p.saturating_sub(kj).div_ceil(s).min(out);
        let hi = (len + p).saturating_sub(kj).div_ceil(s).clamp(lo, out);
        (lo, hi)
    }

    /// Calls `f(row segment, input row)` for every unfolded row `(c, ki,
    /// kj)` and output row `oy` in `rows`, with the valid output columns
    /// `[lo, hi)` and the first input column they read; `None` for an input
    /// row in the padding.
    fn for_each_segment(
        &self,
        g: &Geometry,
        (oy0, oy1): (usize, usize),
        mut f: impl FnMut(usize, usize, Option<usize>, (usize, usize), usize),
    ) {
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.kernel, self.stride, self.padding);
        for row in 0..g.k {
            let (c, ki, kj) = (row / (kh * kw), row / kw % kh, row % kw);
            let (lo, hi) = Self::valid(g.ow, g.w, sw, kj, pw);
            let first = (lo * sw + kj).saturating_sub(pw);
            for oy in oy0..oy1 {
                let iy = (oy * sh + ki).wrapping_sub(ph);
                let input_row = (iy < g.h).then(|| (c * g.h + iy) * g.w);
                f(row, oy - oy0, input_row, (lo, hi), first);
            }
        }
    }

    /// Unfolds output rows `rows` of one example `[C, H, W]` into `cols`
    /// `[K, rows * OW]`.
    fn im2col(&self, g: &Geometry, x: &[f32], rows: (usize, usize), cols: &mut [f32]) {
        let (sw, tn) = (self.stride.1, (rows.1 - rows.0) * g.ow);
        self.for_each_segment(g, rows, |row, r, input_row, (lo, hi), first| {
            let d = &mut cols[row * tn + r * g.ow..][..g.ow];
            let Some(start) = input_row.filter(|_| lo < hi) else {
                d.fill(0.0);
                return;
            };
            d[..lo].fill(0.0);
            d[hi..].fill(0.0);
            let src = &x[start + first..][..(hi - lo - 1) * sw + 1];
            let d = &mut d[lo..hi];
            match sw {
                1 => d.copy_from_slice(src),
                // Stride 2 (most strided convolutions): pairs, so the loop
                // has no bounds checks and vectorises.
                2 => {
                    let (pairs, last) = src.split_at(src.len() - 1);
                    let (head, tail) = d.split_at_mut(d.len() - 1);
                    for (v, p) in head.iter_mut().zip(pairs.chunks_exact(2)) {
                        *v = p[0];
                    }
                    tail[0] = last[0];
                }
                _ => {
                    for (v, s) in d.iter_mut().zip(src.iter().step_by(sw)) {
                        *v = *s;
                    }
                }
            }
        });
    }

    /// Adds `cols` `[K, rows * OW]` back into one example's gradient `[C, H, W]`.
    fn col2im(&self, g: &Geometry, cols: &[f32], rows: (usize, usize), dx: &mut [f32]) {
        let (sw, tn) = (self.stride.1, (rows.1 - rows.0) * g.ow);
        self.for_each_segment(g, rows, |row, r, input_row, (lo, hi), first| {
            let Some(start) = input_row.filter(|_| lo < hi) else {
                return;
            };
            let src = &cols[row * tn + r * g.ow..][lo..hi];
            let dst = &mut dx[start + first..][..(hi - lo - 1) * sw + 1];
            // One input value every `sw`: the last chunk may be short.
            for (d, v) in dst.chunks_mut(sw).zip(src) {
                d[0] += v;
            }
        });
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
        let (k, n) = (g.k, g.n());
        let threads = gemm_threads(g.batch);
        let mut y = vec![0.0f32; g.batch * g.out * n];
        y.par_chunks_mut(g.out * n)
            .zip(x.par_chunks(g.in_len()))
            .for_each_init(
                || vec![0.0f32; k * g.tile_rows() * g.ow],
                |cols, (yb, xb)| {
                    for rows in g.tiles() {
                        let tn = (rows.1 - rows.0) * g.ow;
                        self.im2col(&g, xb, rows, &mut cols[..k * tn]);
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
                },
            );
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
        let (k, n) = (g.k, g.n());
        let want_dx = x.track_op();
        let threads = gemm_threads(g.batch);
        let mut dx = vec![0.0f32; if want_dx { x.elem_count() } else { 0 }];
        let mut dw_per = vec![0.0f32; g.batch * g.out * k];
        let mut db_per = vec![0.0f32; g.batch * g.out];
        with_f32(x, |xs| {
            with_f32(grad, |dy| {
                with_f32(res, |y| {
                    with_f32(w, |ws| {
                        let mut dx_chunks: Vec<&mut [f32]> = dx.chunks_mut(g.in_len()).collect();
                        dx_chunks.resize_with(g.batch, Default::default);
                        let tile = k * g.tile_rows() * g.ow;
                        xs.par_chunks(g.in_len())
                            .zip(dy.par_chunks(g.out * n))
                            .zip(y.par_chunks(g.out * n))
                            .zip(dw_per.par_chunks_mut(g.out * k))
                            .zip(db_per.par_chunks_mut(g.out))
                            .zip(dx_chunks)
                            .for_each_init(
                                || {
                                    (
                                        Vec::new(),
                                        vec![0.0f32; tile],
                                        vec![0.0f32; if want_dx { tile } else { 0 }],
                                    )
                                },
                                |(dpre, cols, dcols), (((((xb, dyb), yb), dwb), dbb), dxb)| {
                                    // The gradient before the activation: dY * act'(y).
                                    let gb = if self.act == Activation::Identity {
                                        dyb
                                    } else {
                                        dpre.clear();
                                        with_act!(self.act, A => dpre.extend(
                                            dyb.iter().zip(yb).map(|(d, y)| d * A::grad(*y)),
                                        ));
                                        &dpre[..]
                                    };
                                    for (d, row) in dbb.iter_mut().zip(gb.chunks_exact(n)) {
                                        *d = row.iter().sum();
                                    }
                                    for (i, rows) in g.tiles().enumerate() {
                                        let tn = (rows.1 - rows.0) * g.ow;
                                        let cols = &mut cols[..k * tn];
                                        self.im2col(&g, xb, rows, cols);
                                        let gt = Mat::new(&gb[rows.0 * g.ow..]).ld(n);
                                        matmul(
                                            dwb,
                                            0,
                                            gt,
                                            Mat::t(cols),
                                            (g.out, tn, k),
                                            i > 0,
                                            threads,
                                        );
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
                                            self.col2im(&g, dcols, rows, dxb);
                                        }
                                    }
                                },
                            );
                        Ok(())
                    })
                })
            })
        })?;
        let dw = sum_rows(&dw_per, g.out * k);
        let db = sum_rows(&db_per, g.out);
        let dx = if want_dx {
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, g.out, w.device())?),
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
