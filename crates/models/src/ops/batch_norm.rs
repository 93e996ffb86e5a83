//! The batch-norm op of [`crate::BatchNorm`]: statistics, normalisation
//! with a fused activation (and optionally max pooling), and the exact
//! backward pass, each in one or two passes over the data.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use hark_simd::{Kernel, Simd, dispatch, lane_sums};
use rayon::prelude::*;

use crate::Activation;
use crate::ops::act::{Act, IdentityAct, with_act};
use crate::ops::buffers::{f32_data, recycled, with_f32};
use crate::ops::pool::Pool;

/// Values per channel in an input of shape `dims` (`[N, C, ...]`).
pub(crate) fn per_channel(dims: &[usize]) -> usize {
    dims.iter().product::<usize>() / dims[1].max(1)
}

pub(crate) fn inv_std(var: f64, eps: f64) -> f32 {
    (1.0 / (var + eps).sqrt()) as f32
}

/// One channel's batch statistics: mean and biased variance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchStat {
    pub mean: f64,
    pub var: f64,
}

/// Where the normalising statistics come from.
#[derive(Debug, Clone)]
pub(crate) enum Stats {
    /// Computed from the batch; the forward pass records them here.
    Batch(Arc<Mutex<Vec<BatchStat>>>),
    /// Given: per channel (mean, 1 / sqrt(var + eps)).
    Fixed(Vec<(f32, f32)>),
}

/// The op: inputs `x`, `weight`, `bias`.
#[derive(Debug)]
pub(crate) struct BatchNormOp {
    pub eps: f64,
    pub act: Activation,
    pub stats: Stats,
    /// Max pooling of the activations, fused.
    pub pool: Option<Pool>,
}

/// `[N, C, S]` view of the input.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn of(dims: &[usize]) -> Self {
        Self {
            n: dims[0],
            c: dims[1],
            s: dims[2..].iter().product(),
        }
    }

    /// The `n` slices of channel `c`.
    fn channel<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (cs, s) = (self.c * self.s, self.s);
        (0..self.n).map(move |i| &data[i * cs + c * s..][..s])
    }
}

impl BatchNormOp {
    /// The per-channel (mean, inverse std) the forward pass used.
    pub(crate) fn recorded_normalisers(&self) -> Vec<(f32, f32)> {
        match &self.stats {
            Stats::Fixed(v) => v.clone(),
            Stats::Batch(record) => record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|s| (s.mean as f32, inv_std(s.var, self.eps)))
                .collect(),
        }
    }

    /// Statistics and output of `x` `[N, C, S]` (`dims`), with `gamma` and
    /// `beta`: the forward pass on slices.
    pub(crate) fn forward_on(
        &self,
        dims: &[usize],
        x: &[f32],
        (gamma, beta): (&[f32], &[f32]),
    ) -> Vec<f32> {
        let d = Dims::of(dims);
        let affine = affine(&self.normalisers(d, x), gamma, beta);
        let mut y = recycled(x.len());
        with_act!(self.act, A => {
            y.par_chunks_mut(d.s)
                .zip(x.par_chunks(d.s))
                .enumerate()
                .with_min_len(64)
                .for_each(|(i, (y, x))| {
                    let (scale, shift) = affine[i % d.c];
                    dispatch(Normalise::<A> { y, x, scale, shift, act: PhantomData });
                })
        });
        y
    }

    /// The input, weight and bias gradients from the input `x`, output `y`
    /// and output gradient `g` (`[N, C, S]` as `dims` says). An input that
    /// is the output of activation `input_act` gets its gradient before
    /// that activation: the derivative is applied here, in the same pass.
    pub(crate) fn backward_on(
        &self,
        dims: &[usize],
        (x, y, g): (&[f32], &[f32], &[f32]),
        gamma: &[f32],
        input_act: Activation,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (d, norm) = (Dims::of(dims), self.recorded_normalisers());
        let batch = matches!(self.stats, Stats::Batch(_));
        with_act!(self.act, A => with_act!(input_act, B => {
            backward::<A, B>(d, x, y, g, &norm, gamma, batch)
        }))
    }

    /// Per channel (mean, inverse std): computed from `x` and recorded, or
    /// the fixed ones.
    fn normalisers(&self, d: Dims, x: &[f32]) -> Vec<(f32, f32)> {
        match &self.stats {
            Stats::Fixed(v) => v.clone(),
            Stats::Batch(record) => {
                let count = (d.n * d.s) as f64;
                let stats: Vec<BatchStat> = (0..d.c)
                    .into_par_iter()
                    .map(|c| {
                        let [k, s1, s2] = dispatch(ChannelSums { d, x, c });
                        let shift = s1 / count;
                        BatchStat {
                            mean: k + shift,
                            var: s2 / count - shift * shift,
                        }
                    })
                    .collect();
                let out = stats
                    .iter()
                    .map(|s| (s.mean as f32, inv_std(s.var, self.eps)))
                    .collect();
                *record.lock().unwrap_or_else(|e| e.into_inner()) = stats;
                out
            }
        }
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "hark-batch-norm"
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
        let (x, gamma, beta) = (f32_data(s1, l1)?, f32_data(s2, l2)?, f32_data(s3, l3)?);
        let Some(pool) = &self.pool else {
            let y = self.forward_on(l1.dims(), x, (gamma, beta));
            return Ok((CpuStorage::F32(y), l1.shape().clone()));
        };
        let d = Dims::of(l1.dims());
        let affine = affine(&self.normalisers(d, x), gamma, beta);
        with_act!(self.act, A => {
            let map = |i: usize, x: &[f32], y: &mut [f32]| {
                let (scale, shift) = affine[i % d.c];
                dispatch(Normalise::<A> { y, x, scale, shift, act: PhantomData });
            };
            pool.max_pool_planes(l1, x, Some(&map))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (d, dims) = (Dims::of(x.dims()), x.dims());
        let gamma = gamma.to_vec1::<f32>()?;
        let (dx, dgamma, dbeta) = match &self.pool {
            Some(pool) => {
                let (argmax, beta) = (pool.argmax()?, beta.to_vec1::<f32>()?);
                let norm = self.recorded_normalisers();
                let affine = affine(&norm, &gamma, &beta);
                let batch = matches!(self.stats, Stats::Batch(_));
                with_f32(x, |x| {
                    with_f32(grad, |g| {
                        let n = g.len() / (d.n * d.c);
                        let p = Pooled {
                            d,
                            x,
                            g,
                            argmax: &argmax,
                            n,
                        };
                        Ok(with_act!(self.act, A => p.backward::<A>(&norm, &affine, batch)))
                    })
                })?
            }
            None => with_f32(x, |x| {
                with_f32(res, |y| {
                    with_f32(grad, |g| {
                        let data = (x, y, g);
                        Ok(self.backward_on(dims, data, &gamma, Activation::Identity))
                    })
                })
            })?,
        };
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dgamma, d.c, dev)?),
            Some(Tensor::from_vec(dbeta, d.c, dev)?),
        ))
    }
}

/// Per channel, the `(scale, shift)` that normalise with `norm` (mean,
/// inverse std) and apply `gamma` and `beta`: `x * scale + shift`.
fn affine(norm: &[(f32, f32)], gamma: &[f32], beta: &[f32]) -> Vec<(f32, f32)> {
    norm.iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(mean, inv), (&g, &b))| (g * inv, b - mean * g * inv))
        .collect()
}

/// The input, weight and bias gradients of a batch norm followed by the
/// activation `A`, from its input `x`, output `y` and output gradient `g`.
/// With batch statistics the input gradient includes their dependence on
/// the input; with fixed ones it is the plain affine map.
fn backward<A: Act, B: Act>(
    d: Dims,
    x: &[f32],
    y: &[f32],
    g: &[f32],
    norm: &[(f32, f32)],
    gamma: &[f32],
    batch: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // Per channel: sum of dz and of dz * xhat, dz the gradient before the activation.
    let sums: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|c| {
            let (mean, inv) = norm[c];
            (0..d.n).fold((0.0, 0.0), |(sg, sgx), b| {
                let at = (b * d.c + c) * d.s;
                let (g, y, x) = (&g[at..][..d.s], &y[at..][..d.s], &x[at..][..d.s]);
                let [dz, dzx] = dispatch(GradSums::<A> {
                    g,
                    y,
                    x,
                    mean,
                    inv,
                    act: PhantomData,
                });
                (sg + dz, sgx + dzx)
            })
        })
        .collect();
    let count = (d.n * d.s) as f64;
    let mut dx = recycled(x.len());
    dx.par_chunks_mut(d.s)
        .enumerate()
        .with_min_len(64)
        .for_each(|(chunk, dx)| {
            let c = chunk % d.c;
            let (mean, inv) = norm[c];
            let at = chunk * d.s;
            let (g, y, x) = (&g[at..][..d.s], &y[at..][..d.s], &x[at..][..d.s]);
            // With fixed statistics, the input does not move them.
            let (mean_g, mean_gx) = if batch {
                ((sums[c].0 / count) as f32, (sums[c].1 / count) as f32)
            } else {
                (0.0, 0.0)
            };
            dispatch(InputGrad::<A, B> {
                dx,
                g,
                y,
                x,
                k: gamma[c] * inv,
                xhat: (mean, inv),
                means: (mean_g, mean_gx),
                act: PhantomData,
            });
        });
    let (dgamma, dbeta) = param_grads(&sums);
    (dx, dgamma, dbeta)
}

/// The weight and bias gradients from each channel's (sum of dz, sum of dz *
/// xhat).
fn param_grads(sums: &[(f64, f64)]) -> (Vec<f32>, Vec<f32>) {
    sums.iter().map(|&(g, gx)| (gx as f32, g as f32)).unzip()
}

/// The backward pass of a batch norm, activation and max pooling: the
/// pooled gradient `g` `[N, C, n]` reaches the pre-activation only at each
/// window's maximum `argmax` (indices within a plane of `x`).
struct Pooled<'a> {
    d: Dims,
    x: &'a [f32],
    g: &'a [f32],
    argmax: &'a [u32],
    /// Pooled outputs per plane.
    n: usize,
}

impl Pooled<'_> {
    /// Calls `f(index in x, dz)` for every pooled output of plane `p`, `dz`
    /// the gradient before the activation at its maximum.
    #[inline]
    fn each<A: Act>(&self, p: usize, (scale, shift): (f32, f32), mut f: impl FnMut(usize, f32)) {
        let (g, idx) = (
            &self.g[p * self.n..][..self.n],
            &self.argmax[p * self.n..][..self.n],
        );
        for (&g, &i) in g.iter().zip(idx) {
            let at = p * self.d.s + i as usize;
            f(at, g * A::grad(A::apply(self.x[at] * scale + shift)));
        }
    }

    /// The gradients, from the statistics `norm` and each channel's
    /// pre-activation `affine` (`x * scale + shift`).
    fn backward<A: Act>(
        &self,
        norm: &[(f32, f32)],
        affine: &[(f32, f32)],
        batch: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = self.d;
        let sums: Vec<(f64, f64)> = (0..d.c)
            .into_par_iter()
            .map(|c| {
                let (mean, inv) = norm[c];
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for b in 0..d.n {
                    self.each::<A>(b * d.c + c, affine[c], |at, dz| {
                        sg += dz as f64;
                        sgx += (dz * (self.x[at] - mean) * inv) as f64;
                    });
                }
                (sg, sgx)
            })
            .collect();
        let count = (d.n * d.s) as f64;
        let mut dx = vec![0.0f32; self.x.len()];
        dx.par_chunks_mut(d.s).enumerate().for_each(|(p, dx)| {
            let c = p % d.c;
            let (mean, inv) = norm[c];
            // d z / d x: gamma * inv.
            let k = affine[c].0;
            if batch {
                // Every position: k * (0 - mean_g - xhat * mean_gx).
                let (mean_g, mean_gx) = ((sums[c].0 / count) as f32, (sums[c].1 / count) as f32);
                let scale = -k * inv * mean_gx;
                let shift = -k * mean_g + k * inv * mean_gx * mean;
                dispatch(Normalise::<IdentityAct> {
                    y: dx,
                    x: &self.x[p * d.s..][..d.s],
                    scale,
                    shift,
                    act: PhantomData,
                });
            }
            // Plus k * dz at each maximum.
            self.each::<A>(p, affine[c], |at, dz| dx[at - p * d.s] += k * dz);
        });
        let (dgamma, dbeta) = param_grads(&sums);
        (dx, dgamma, dbeta)
    }
}

/// One channel's `[k, sum(x - k), sum((x - k)^2)]`, `k` the mean of its
/// first slice: close to the batch mean, so the variance does not cancel,
/// and one pass over the channel.
struct ChannelSums<'a> {
    d: Dims,
    x: &'a [f32],
    c: usize,
}

impl Kernel for ChannelSums<'_> {
    type Output = [f64; 3];
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> [f64; 3] {
        let first = self.d.channel(self.x, self.c).next().unwrap_or_default();
        let [sum, _] = simd.centred_sums(None, first, 0.0);
        let k = (sum / first.len().max(1) as f64) as f32;
        // A plain loop: an iterator chain's closure was compiled apart from
        // this function, without AVX2.
        let mut sums = [k as f64, 0.0, 0.0];
        for v in self.d.channel(self.x, self.c) {
            let [s1, s2] = simd.centred_sums(None, v, k);
            sums[1] += s1;
            sums[2] += s2;
        }
        sums
    }
}

/// `y = act(x * scale + shift)` over one slice.
struct Normalise<'a, A> {
    y: &'a mut [f32],
    x: &'a [f32],
    scale: f32,
    shift: f32,
    act: PhantomData<A>,
}

impl<A: Act> Kernel for Normalise<'_, A> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        for (y, x) in self.y.iter_mut().zip(self.x) {
            *y = A::apply(x * self.scale + self.shift);
        }
    }
}

/// Over one slice, the sums of `dz` and of `dz * xhat`, `dz = g * act'(y)`
/// the gradient before the activation and `xhat = (x - mean) * inv`.
struct GradSums<'a, A> {
    g: &'a [f32],
    y: &'a [f32],
    x: &'a [f32],
    mean: f32,
    inv: f32,
    act: PhantomData<A>,
}

impl<A: Act> Kernel for GradSums<'_, A> {
    type Output = [f64; 2];
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> [f64; 2] {
        if A::IDENTITY {
            let [dz, dzx] = simd.centred_sums(Some(self.g), self.x, self.mean);
            return [dz, dzx * self.inv as f64];
        }
        lane_sums([self.g, self.y, self.x], |[g, y, x]| {
            let dz = g * A::grad(y);
            [dz, dz * (x - self.mean) * self.inv]
        })
    }
}

/// Over one slice, `dx = k * (dz - mean_g - xhat * mean_gx) * B'(x)` with
/// `dz` and `xhat` as in [`GradSums`], `xhat = (x - mean) * inv`, and `B`
/// the activation whose output `x` is.
struct InputGrad<'a, A, B> {
    dx: &'a mut [f32],
    g: &'a [f32],
    y: &'a [f32],
    x: &'a [f32],
    k: f32,
    xhat: (f32, f32),
    means: (f32, f32),
    act: PhantomData<(A, B)>,
}

impl<A: Act, B: Act> Kernel for InputGrad<'_, A, B> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        let ((mean, inv), (mean_g, mean_gx)) = (self.xhat, self.means);
        let inputs = self.g.iter().zip(self.y).zip(self.x);
        for (v, ((g, y), x)) in self.dx.iter_mut().zip(inputs) {
            *v = self.k * (g * A::grad(*y) - mean_g - (x - mean) * inv * mean_gx) * B::grad(*x);
        }
    }
}
