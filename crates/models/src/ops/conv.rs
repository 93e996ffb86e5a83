//! The convolution op of [`crate::Conv2d`].
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

use std::marker::PhantomData;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use hark_simd::{Kernel, LANES, Mat, Simd, dispatch, lane_sums, matmul};
use rayon::prelude::*;

use crate::Activation;
use crate::ops::act::{Act, with_act};
use crate::ops::buffers::{f32_data, recycled, with_f32, with_scratch};

pub(crate) fn out_len(len: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = len + 2 * p;
    (padded >= k && s > 0).then(|| (padded - k) / s + 1)
}

/// The convolution op: inputs `x`, `weight`, `bias`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2dOp {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub act: Activation,
    pub kernels: Kernels,
}

/// Which kernels a convolution runs. Layers leave the choice to the sizes
/// ([`DIRECT_MAX_OUT`], [`SMALL_WEIGHT_GRAD`]); tests force each path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Kernels {
    /// The forward pass as [`DirectForward`] tiles (`true`) or im2col and
    /// GEMM (`false`); `None` by the output channel count.
    pub direct_forward: Option<bool>,
    /// The weight gradient as [`WeightGrad`] dot tiles (`true`) or GEMM
    /// (`false`); `None` by its size.
    pub tiled_weight_grad: Option<bool>,
}

impl Kernels {
    fn direct_forward(&self, g: &Geometry) -> bool {
        self.direct_forward.unwrap_or(g.out <= DIRECT_MAX_OUT)
    }

    fn tiled_weight_grad(&self, g: &Geometry) -> bool {
        self.tiled_weight_grad
            .unwrap_or(g.out * g.k <= SMALL_WEIGHT_GRAD)
    }
}

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub out: usize,
    pub oh: usize,
    pub ow: usize,
    /// Rows of the unfolded input: `channels * kh * kw`.
    pub k: usize,
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
    pub(crate) fn geometry(&self, x: &[usize], w: &[usize]) -> candle_core::Result<Geometry> {
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
    pub(crate) fn forward_slices(&self, g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let g = *g;
        let (k, n) = (g.k, g.n());
        let threads = gemm_threads(g.batch);
        let planes = self.planes(&g);
        let unfold = Unfold::new(self, &g, &planes);
        let mut y = recycled(g.batch * g.out * n);
        let direct = self.kernels.direct_forward(&g);
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
    pub(crate) fn backward_slices(
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
        let small_dw = self.kernels.tiled_weight_grad(&g);
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

/// The sum of the `len`-long rows of `per`, added in order.
pub(crate) fn sum_rows(per: &[f32], len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for row in per.chunks_exact(len) {
        total.iter_mut().zip(row).for_each(|(t, v)| *t += v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tolerance of f32 sums in another order than the reference's.
    const TOL: f32 = 1e-4;

    fn seq(n: usize, step: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + 1.0) * step).sin()).collect()
    }

    fn op(kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize)) -> Conv2dOp {
        Conv2dOp {
            kernel,
            stride,
            padding,
            act: Activation::Identity,
            kernels: Kernels::default(),
        }
    }

    fn geometry(op: &Conv2dOp, x: [usize; 4], out: usize) -> Geometry {
        op.geometry(&x, &[out, x[1], op.kernel.0, op.kernel.1])
            .unwrap()
    }

    /// The padded input value at `(b, c, row, col)` of padded coordinates.
    fn padded(
        x: &[f32],
        g: &Geometry,
        pad: (usize, usize),
        (b, c, r, q): (usize, usize, usize, usize),
    ) -> f32 {
        let (iy, ix) = (r.wrapping_sub(pad.0), q.wrapping_sub(pad.1));
        if iy < g.h && ix < g.w {
            x[((b * g.channels + c) * g.h + iy) * g.w + ix]
        } else {
            0.0
        }
    }

    /// The convolution and its three gradients by their definitions.
    fn reference(
        op: &Conv2dOp,
        g: &Geometry,
        (x, w, b, dy): (&[f32], &[f32], &[f32], &[f32]),
    ) -> [Vec<f32>; 4] {
        let (kh, kw) = op.kernel;
        let mut y = vec![0.0f32; g.batch * g.out * g.n()];
        let (mut dx, mut dw, mut db) = (
            vec![0.0f32; x.len()],
            vec![0.0f32; w.len()],
            vec![0.0f32; g.out],
        );
        for n in 0..g.batch {
            for o in 0..g.out {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let at = ((n * g.out + o) * g.oh + oy) * g.ow + ox;
                        let mut sum = b[o];
                        db[o] += dy[at];
                        for c in 0..g.channels {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let (r, q) = (oy * op.stride.0 + ky, ox * op.stride.1 + kx);
                                    let wi = ((o * g.channels + c) * kh + ky) * kw + kx;
                                    let v = padded(x, g, op.padding, (n, c, r, q));
                                    sum += w[wi] * v;
                                    dw[wi] += dy[at] * v;
                                    let (iy, ix) = (
                                        r.wrapping_sub(op.padding.0),
                                        q.wrapping_sub(op.padding.1),
                                    );
                                    if iy < g.h && ix < g.w {
                                        dx[((n * g.channels + c) * g.h + iy) * g.w + ix] +=
                                            dy[at] * w[wi];
                                    }
                                }
                            }
                        }
                        y[at] = sum;
                    }
                }
            }
        }
        [y, dx, dw, db]
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= TOL * (1.0 + b.abs()),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }

    #[test]
    fn every_kernel_path_equals_the_definition() {
        // (input [B, C, H, W], out, kernel, stride, padding): strides 1 to 3,
        // rows shorter and longer than a direct tile, non-square kernels.
        let cases = [
            ([2, 3, 7, 9], 4, (3, 3), (1, 1), (1, 1)),
            ([1, 2, 9, 19], 5, (5, 5), (2, 2), (2, 2)),
            ([2, 1, 8, 37], 3, (2, 3), (1, 3), (0, 1)),
            ([1, 4, 6, 5], 6, (3, 1), (2, 1), (1, 0)),
        ];
        for (x_dims, out, kernel, stride, padding) in cases {
            let base = op(kernel, stride, padding);
            let g = geometry(&base, x_dims, out);
            let x = seq(x_dims.iter().product(), 0.37);
            let w = seq(out * g.k, 0.11);
            let b = seq(out, 0.7);
            let dy = seq(g.batch * out * g.n(), 0.23);
            let [y, dx, dw, db] = reference(&base, &g, (&x, &w, &b, &dy));
            for direct in [false, true] {
                for tiled in [false, true] {
                    let op = Conv2dOp {
                        kernels: Kernels {
                            direct_forward: Some(direct),
                            tiled_weight_grad: Some(tiled),
                        },
                        ..base
                    };
                    let what =
                        format!("{x_dims:?} {kernel:?} {stride:?} direct {direct} tiled {tiled}");
                    assert_close(&op.forward_slices(&g, &x, &w, &b), &y, &format!("y {what}"));
                    for want_dx in [false, true] {
                        let (got_dx, got_dw, got_db) =
                            op.backward_slices(&g, (&x, &dy, &y, &w), want_dx);
                        assert_eq!(got_dx.is_some(), want_dx);
                        if let Some(got_dx) = got_dx {
                            assert_close(&got_dx, &dx, &format!("dx {what}"));
                        }
                        assert_close(&got_dw, &dw, &format!("dw {what}"));
                        assert_close(&got_db, &db, &format!("db {what}"));
                    }
                }
            }
        }
    }

    #[test]
    fn planes_hold_every_padded_value_and_join_reads_back_the_input() {
        for (stride, padding) in [((1, 1), (0, 0)), ((2, 2), (1, 2)), ((1, 3), (2, 1))] {
            let base = op((3, 3), stride, padding);
            let g = geometry(&base, [1, 2, 5, 11], 1);
            let planes = base.planes(&g);
            let x = seq(g.in_len(), 0.5);
            let mut buf = vec![f32::NAN; planes.len(g.channels)];
            planes.split(&g, padding, &x, &mut buf);
            for c in 0..g.channels {
                for r in 0..planes.rows {
                    // Every column a window reads.
                    for q in 0..(g.ow - 1) * stride.1 + base.kernel.1 {
                        let want = padded(&x, &g, padding, (0, c, r, q));
                        assert_eq!(buf[planes.at(c, r, q)], want, "{stride:?} {c} {r} {q}");
                    }
                }
            }
            let mut back = vec![0.0; x.len()];
            planes.join(&g, padding, &buf, &mut back);
            assert_eq!(back, x, "{stride:?} {padding:?}");
        }
    }

    #[test]
    fn im2col_unfolds_each_window_and_col2im_adds_it_back() {
        let base = op((2, 3), (2, 2), (1, 1));
        let g = geometry(&base, [1, 2, 6, 9], 1);
        let planes = base.planes(&g);
        let unfold = Unfold::new(&base, &g, &planes);
        let x = seq(g.in_len(), 0.3);
        let mut buf = vec![0.0; planes.len(g.channels)];
        planes.split(&g, base.padding, &x, &mut buf);
        let rows = (1, g.oh);
        let tn = (rows.1 - rows.0) * g.ow;
        let mut cols = vec![f32::NAN; g.k * tn];
        unfold.im2col(&buf, rows, &mut cols);
        let (kh, kw) = base.kernel;
        for tap in 0..g.k {
            let (c, ky, kx) = (tap / (kh * kw), tap / kw % kh, tap % kw);
            for oy in rows.0..rows.1 {
                for ox in 0..g.ow {
                    let (r, q) = (oy * 2 + ky, ox * 2 + kx);
                    let got = cols[tap * tn + (oy - rows.0) * g.ow + ox];
                    assert_eq!(got, padded(&x, &g, base.padding, (0, c, r, q)));
                }
            }
        }
        // col2im of ones counts how many windows cover each padded value.
        let mut counts = vec![0.0; buf.len()];
        unfold.col2im(&vec![1.0; cols.len()], rows, &mut counts);
        let covered: f32 = counts.iter().sum();
        assert_eq!(covered, cols.len() as f32);
    }

    #[test]
    fn gather_and_scatter_are_strided_copies_and_inverses() {
        for step in 1..=4 {
            for len in [0usize, 1, 7, 16] {
                let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
                let mut dst = vec![-1.0; len.div_ceil(step) + 2];
                gather(&mut dst, &src, step);
                for (i, d) in dst.iter().enumerate() {
                    let want = src.get(i * step).copied().unwrap_or(-1.0);
                    assert_eq!(*d, want, "gather step {step} len {len} at {i}");
                }
                let mut back = vec![-1.0; len];
                scatter(&mut back, &dst[..len.div_ceil(step)], step);
                for (i, b) in back.iter().enumerate() {
                    let want = if i % step == 0 { src[i] } else { -1.0 };
                    assert_eq!(*b, want, "scatter step {step} len {len} at {i}");
                }
            }
        }
    }

    #[test]
    fn packed_weights_are_tap_major_blocks_with_zero_filled_rows() {
        let (out, k) = (6, 5);
        let w: Vec<f32> = (0..out * k).map(|i| i as f32 + 1.0).collect();
        let packed = pack_weights(&w, out, k);
        assert_eq!(packed.len(), out.div_ceil(DIRECT_ROWS) * k * DIRECT_ROWS);
        for block in 0..out.div_ceil(DIRECT_ROWS) {
            for t in 0..k {
                for r in 0..DIRECT_ROWS {
                    let o = block * DIRECT_ROWS + r;
                    let want = if o < out { w[o * k + t] } else { 0.0 };
                    assert_eq!(packed[(block * k + t) * DIRECT_ROWS + r], want, "{o} {t}");
                }
            }
        }
    }
}
