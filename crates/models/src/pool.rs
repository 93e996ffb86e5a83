//! 2-D max and average pooling with exact gradients.
//!
//! candle 0.11's `max_pool2d`/`avg_pool2d` backward scales gradients by
//! `1 / (kh * kw)` and misplaces them when the input is not a multiple of the
//! kernel, and a max reduction splits a tied maximum's gradient between the
//! ties. These ops follow PyTorch instead (floor mode, no padding): a window
//! covers `[o * s, o * s + k)`, trailing rows and columns that no window
//! covers get zero gradient, max pooling routes each output's gradient to the
//! first maximum of its window in row-major order, and average pooling gives
//! every covered element `grad / (kh * kw)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::f32_data;

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

/// A pooling window: kernel and stride per axis, PyTorch floor mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pool {
    kind: Kind,
    kernel: (usize, usize),
    stride: (usize, usize),
}

/// `[N, C, H, W]` dims of a pooling input and its output size.
struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Pool {
    fn geometry(&self, layout: &Layout) -> Result<Geometry> {
        let &[n, c, h, w] = layout.dims() else {
            candle_core::bail!("pooling expects [N, C, H, W], got {:?}", layout.dims())
        };
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        if h < kh || w < kw {
            candle_core::bail!("pooling kernel {kh}x{kw} is larger than the {h}x{w} input");
        }
        Ok(Geometry {
            planes: n * c,
            h,
            w,
            oh: (h - kh) / sh + 1,
            ow: (w - kw) / sw + 1,
        })
    }

    /// The flat index (within its plane) each output reads: the first
    /// maximum of its window for max pooling.
    fn argmax(&self, plane: &[f32], g: &Geometry, oy: usize, ox: usize) -> usize {
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let mut best = (oy * sh) * g.w + ox * sw;
        for y in oy * sh..oy * sh + kh {
            for x in ox * sw..ox * sw + kw {
                // Strictly greater keeps the first maximum; NaN wins, as in PyTorch.
                let v = plane[y * g.w + x];
                if v > plane[best] || v.is_nan() && !plane[best].is_nan() {
                    best = y * g.w + x;
                }
            }
        }
        best
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
        let g = self.geometry(layout)?;
        let ((kh, kw), (sh, sw)) = (self.kernel, self.stride);
        let scale = 1.0 / (kh * kw) as f32;
        let mut out = vec![0.0f32; g.planes * g.oh * g.ow];
        out.par_chunks_mut(g.oh * g.ow)
            .zip(x.par_chunks(g.h * g.w))
            .for_each(|(oplane, plane)| {
                for (i, o) in oplane.iter_mut().enumerate() {
                    let (oy, ox) = (i / g.ow, i % g.ow);
                    *o = match self.kind {
                        Kind::Max => plane[self.argmax(plane, &g, oy, ox)],
                        Kind::Avg => {
                            let rows =
                                (oy * sh..oy * sh + kh).map(|y| &plane[y * g.w + ox * sw..][..kw]);
                            rows.flatten().sum::<f32>() * scale
                        }
                    };
                }
            });
        let dims = layout.dims();
        Ok((
            CpuStorage::F32(out),
            Shape::from((dims[0], dims[1], g.oh, g.ow)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &PoolBackward(*self))?;
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
        let pool = self.0;
        let (x, dy) = (f32_data(s1, l1)?, f32_data(s2, l2)?);
        let g = pool.geometry(l1)?;
        let ((kh, kw), (sh, sw)) = (pool.kernel, pool.stride);
        let scale = 1.0 / (kh * kw) as f32;
        let mut dx = vec![0.0f32; x.len()];
        let planes = x
            .par_chunks(g.h * g.w)
            .zip(dy.par_chunks(g.oh * g.ow))
            .zip(dx.par_chunks_mut(g.h * g.w));
        planes.for_each(|((plane, dplane), dxplane)| {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let d = dplane[oy * g.ow + ox];
                    match pool.kind {
                        Kind::Max => dxplane[pool.argmax(plane, &g, oy, ox)] += d,
                        Kind::Avg => {
                            for y in oy * sh..oy * sh + kh {
                                dxplane[y * g.w + ox * sw..][..kw]
                                    .iter_mut()
                                    .for_each(|v| *v += d * scale);
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Max pooling over `[N, C, H, W]` f32 with a square `kernel` and `stride`,
/// as `torch.nn.functional.max_pool2d` (floor mode, no padding).
///
/// # Errors
/// Another rank or dtype, or a kernel larger than the input.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    pool(x, Kind::Max, (kernel, kernel), (stride, stride))
}

/// [`max_pool2d`] with a `(rows, columns)` kernel and stride.
///
/// # Errors
/// As [`max_pool2d`].
pub fn max_pool2d_hw(x: &Tensor, kernel: (usize, usize), stride: (usize, usize)) -> Result<Tensor> {
    pool(x, Kind::Max, kernel, stride)
}

/// Average pooling over `[N, C, H, W]` f32, as
/// `torch.nn.functional.avg_pool2d` (floor mode, no padding).
///
/// # Errors
/// As [`max_pool2d`].
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    pool(x, Kind::Avg, (kernel, kernel), (stride, stride))
}

fn pool(x: &Tensor, kind: Kind, kernel: (usize, usize), stride: (usize, usize)) -> Result<Tensor> {
    if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        candle_core::bail!("pooling kernel {kernel:?} and stride {stride:?} must be positive");
    }
    x.contiguous()?.apply_op1(Pool {
        kind,
        kernel,
        stride,
    })
}
