//! The 2-D max and average pooling ops, with exact gradients.
//!
//! candle 0.11's `max_pool2d`/`avg_pool2d` backward scales gradients by
//! `1 / (kh * kw)` and misplaces them when the input is not a multiple of the
//! kernel, and a max reduction splits a tied maximum's gradient between the
//! ties. These ops follow PyTorch instead (floor mode, no padding): a window
//! covers `[o * s, o * s + k)`, trailing rows and columns that no window
//! covers get zero gradient, max pooling routes each output's gradient to the
//! first maximum of its window in row-major order, and average pooling gives
//! every covered element `grad / (kh * kw)`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::buffers::{f32_data, with_scratch};

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Max,
    Avg,
}

/// A pooling window: kernel and stride per axis, PyTorch floor mode.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    kind: Kind,
    kernel: (usize, usize),
    stride: (usize, usize),
    /// Max pooling whose gradient is wanted: the forward pass records here,
    /// per output, the index of its maximum within its plane, so the
    /// backward pass is a scatter (PyTorch's `max_pool2d_with_indices`).
    argmax: Option<Arc<Mutex<Vec<u32>>>>,
}

/// `[N, C, H, W]` dims of a pooling input and its output size.
struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

/// `a` comes before `b` as a maximum: greater, or NaN where `b` is not.
/// Without short-circuits, so loops over it vectorise.
#[inline(always)]
fn beats(a: f32, b: f32) -> bool {
    (a > b) | (a.is_nan() & !b.is_nan())
}

/// `a` and `b` are the same maximum: equal, or both NaN.
#[inline(always)]
fn ties(a: f32, b: f32) -> bool {
    (a == b) | (a.is_nan() & b.is_nan())
}

/// What the fused ops compute for each plane before pooling it: `(plane
/// index, input plane, output plane)`.
pub(crate) type PlaneMap<'a> = &'a (dyn Fn(usize, &[f32], &mut [f32]) + Sync);

impl Pool {
    /// Max pooling with a square `kernel` and stride; `record` the maxima
    /// for a backward pass.
    pub(crate) fn max(kernel: usize, record: bool) -> Self {
        Self::new(Kind::Max, (kernel, kernel), (kernel, kernel), record)
    }

    /// A `kind` window of `kernel` and `stride` (rows, columns); a max
    /// window `record`s its maxima for a backward pass.
    pub(crate) fn new(
        kind: Kind,
        kernel: (usize, usize),
        stride: (usize, usize),
        record: bool,
    ) -> Self {
        Self {
            kind,
            kernel,
            stride,
            argmax: (kind == Kind::Max && record).then(Default::default),
        }
    }

    /// The maxima the forward pass recorded.
    ///
    /// # Errors
    /// When it recorded none.
    pub(crate) fn argmax(&self) -> Result<std::sync::MutexGuard<'_, Vec<u32>>> {
        match &self.argmax {
            Some(record) => Ok(record.lock().unwrap_or_else(|e| e.into_inner())),
            None => candle_core::bail!("max pooling backward without recorded maxima"),
        }
    }

    /// Max pooling of every plane of `x` (`[N, C, H, W]` as `layout` says),
    /// each first mapped by `map` if given, recording the maxima if asked.
    pub(crate) fn max_pool_planes(
        &self,
        layout: &Layout,
        x: &[f32],
        map: Option<PlaneMap<'_>>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(layout)?;
        let (n, hw) = (g.oh * g.ow, g.h * g.w);
        let mut out = vec![0.0f32; g.planes * n];
        let record = self.argmax.is_some();
        let mut argmax = vec![0u32; if record { g.planes * n } else { 0 }];
        let mut argmax_planes: Vec<&mut [u32]> = argmax.chunks_mut(n.max(1)).collect();
        argmax_planes.resize_with(g.planes, Default::default);
        let mapped_len = if map.is_some() { hw } else { 0 };
        out.par_chunks_mut(n)
            .zip(x.par_chunks(hw))
            .zip(argmax_planes)
            .enumerate()
            .for_each_init(
                || vec![0u32; g.w],
                |col_row, (i, ((o, plane), a))| {
                    with_scratch([mapped_len, g.w], |[mapped, col_max]| {
                        let plane = match map {
                            Some(map) => {
                                map(i, plane, mapped);
                                &*mapped
                            }
                            None => plane,
                        };
                        self.max_plane(&g, plane, (col_max, col_row), o, record.then_some(a));
                    })
                },
            );
        if let Some(record) = &self.argmax {
            *record.lock().unwrap_or_else(|e| e.into_inner()) = argmax;
        }
        let dims = layout.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from((dims[0], dims[1], g.oh, g.ow)),
        ))
    }

    fn geometry(&self, layout: &Layout) -> Result<Geometry> {
        let &[n, c, h, w] = layout.dims() else {
            candle_core::bail!("pooling expects [N, C, H, W], got {:?}", layout.dims())
        };
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        if h < kh || w < kw {
            candle_core::bail!("pooling kernel {kh}x{kw} is larger than the {h}x{w} input");
        }
        if u32::try_from(h * w).is_err() {
            candle_core::bail!("pooling planes of {h}x{w} values are too large");
        }
        Ok(Geometry {
            planes: n * c,
            h,
            w,
            oh: (h - kh) / sh + 1,
            ow: (w - kw) / sw + 1,
        })
    }

    /// Max pooling of one plane into `out`, and each output's index into
    /// `argmax`: the first maximum of its window in row-major order (NaN
    /// counts as the largest). First each column's maximum over the
    /// window's rows, for a whole output row at once (the loop vectorises),
    /// then the best of the window's columns.
    fn max_plane(
        &self,
        g: &Geometry,
        plane: &[f32],
        (col_max, col_row): (&mut [f32], &mut [u32]),
        out: &mut [f32],
        mut argmax: Option<&mut [u32]>,
    ) {
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        // Columns some window covers.
        let width = (g.ow - 1) * sw + kw;
        let (col_max, col_row) = (&mut col_max[..width], &mut col_row[..width]);
        for oy in 0..g.oh {
            let y0 = oy * sh;
            col_max.copy_from_slice(&plane[y0 * g.w..][..width]);
            col_row.fill(y0 as u32);
            for y in y0 + 1..y0 + kh {
                let row = &plane[y * g.w..][..width];
                for ((m, r), &v) in col_max.iter_mut().zip(col_row.iter_mut()).zip(row) {
                    let take = beats(v, *m);
                    *m = if take { v } else { *m };
                    *r = if take { y as u32 } else { *r };
                }
            }
            for ox in 0..g.ow {
                let x0 = ox * sw;
                let (mut best, mut at) = (col_max[x0], (col_row[x0], x0));
                for x in x0 + 1..x0 + kw {
                    let (v, r) = (col_max[x], col_row[x]);
                    // An equal maximum in an earlier row comes first.
                    // Selects, not a branch: maxima are unpredictable.
                    let take = beats(v, best) | (ties(v, best) & (r < at.0));
                    best = if take { v } else { best };
                    at = if take { (r, x) } else { at };
                }
                out[oy * g.ow + ox] = best;
                if let Some(argmax) = argmax.as_deref_mut() {
                    argmax[oy * g.ow + ox] = at.0 * g.w as u32 + at.1 as u32;
                }
            }
        }
    }

    fn avg_plane(&self, g: &Geometry, plane: &[f32], out: &mut [f32]) {
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let scale = 1.0 / (kh * kw) as f32;
        for (i, o) in out.iter_mut().enumerate() {
            let (oy, ox) = (i / g.ow, i % g.ow);
            let rows = (oy * sh..oy * sh + kh).map(|y| &plane[y * g.w + ox * sw..][..kw]);
            *o = rows.flatten().sum::<f32>() * scale;
        }
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "hark-max-pool2d",
            Kind::Avg => "hark-avg-pool2d",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(storage, layout)?;
        if self.kind == Kind::Max {
            return self.max_pool_planes(layout, x, None);
        }
        let g = self.geometry(layout)?;
        let n = g.oh * g.ow;
        let mut out = vec![0.0f32; g.planes * n];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(g.h * g.w))
            .for_each(|(o, plane)| self.avg_plane(&g, plane, o));
        let dims = layout.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from((dims[0], dims[1], g.oh, g.ow)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &PoolBackward(self.clone()))?;
        Ok(Some(grad))
    }
}

/// The input gradient of a [`Pool`], from the input and the output gradient.
struct PoolBackward(Pool);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "hark-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let pool = &self.0;
        let (x, dy) = (f32_data(s1, l1)?, f32_data(s2, l2)?);
        let g = pool.geometry(l1)?;
        let ((kh, kw), (sh, sw)) = (pool.kernel, pool.stride);
        let n = g.oh * g.ow;
        let mut dx = vec![0.0f32; x.len()];
        let planes = dy.par_chunks(n).zip(dx.par_chunks_mut(g.h * g.w));
        match pool.kind {
            Kind::Max => {
                let argmax = pool.argmax()?;
                if argmax.len() != dy.len() {
                    candle_core::bail!("max pooling backward without its forward pass");
                }
                planes
                    .zip(argmax.par_chunks(n))
                    .for_each(|((dplane, dxplane), idx)| {
                        for (&d, &i) in dplane.iter().zip(idx) {
                            dxplane[i as usize] += d;
                        }
                    });
            }
            Kind::Avg => {
                let scale = 1.0 / (kh * kw) as f32;
                planes.for_each(|(dplane, dxplane)| {
                    for (i, &d) in dplane.iter().enumerate() {
                        let (oy, ox) = (i / g.ow, i % g.ow);
                        for y in oy * sh..oy * sh + kh {
                            dxplane[y * g.w + ox * sw..][..kw]
                                .iter_mut()
                                .for_each(|v| *v += d * scale);
                        }
                    }
                });
            }
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
