//! The tanh Elman recurrence `h_t = tanh(xp_t + W_hh h_{t-1})`, `h_{-1} =
//! 0`, over a whole `[B, T, H]` sequence in one op, with its exact backward
//! pass. Stepped in candle ops it costs a handful of tiny tensors per time
//! step, and their overhead, not the arithmetic, was the Elman RNN's
//! training time.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::ops::act::exp;
use crate::ops::buffers::f32_data;

/// `tanh(x)` from the fast `exp`, within 1e-7 of libm's, in a form that
/// vectorises: `sign(x) (1 - e) / (1 + e)` with `e = exp(-2|x|)`.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `out[j] += sum_k w[j, k] v[k]` for a row-major `[out, v]` `w` given as
/// its transpose `wt` (`wt[k * out + j] = w[j, k]`), so the inner loop runs
/// over a contiguous row and vectorises without a reduction.
#[inline(always)]
pub(crate) fn add_matvec_t(out: &mut [f32], wt: &[f32], v: &[f32]) {
    for (row, &vk) in wt.chunks_exact(out.len()).zip(v) {
        for (o, &w) in out.iter_mut().zip(row) {
            *o += w * vk;
        }
    }
}

/// The dims `(B, T, H)` of a recurrence input and its weight.
fn dims(xp: &Layout, w: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (b, t, h) = xp.shape().dims3()?;
    if w.shape().dims() != [h, h] {
        candle_core::bail!(
            "tanh scan: weight {:?} for hidden size {h}",
            w.shape().dims()
        )
    }
    Ok((b, t, h))
}

/// The transpose of a row-major `[rows, w.len() / rows]` matrix.
pub(crate) fn transpose(w: &[f32], rows: usize) -> Vec<f32> {
    let cols = w.len() / rows;
    let mut wt = vec![0.0; w.len()];
    for j in 0..rows {
        for k in 0..cols {
            wt[k * rows + j] = w[j * cols + k];
        }
    }
    wt
}

/// The recurrence as a candle op over `(xp, W_hh)`.
struct TanhScan;

impl CustomOp2 for TanhScan {
    fn name(&self) -> &'static str {
        "hark-tanh-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, t, h) = dims(l1, l2)?;
        let (xp, w) = (f32_data(s1, l1)?, f32_data(s2, l2)?);
        let wt = transpose(w, h);
        let mut out = xp.to_vec();
        for seq in out.chunks_exact_mut(t * h) {
            for step in 0..t {
                let (done, rest) = seq.split_at_mut(step * h);
                let cur = &mut rest[..h];
                if step > 0 {
                    add_matvec_t(cur, &wt, &done[(step - 1) * h..]);
                }
                cur.iter_mut().for_each(|v| *v = tanh(*v));
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _xp: &Tensor,
        w: &Tensor,
        h: &Tensor,
        dh: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dxp = h.apply_op3_no_bwd(w, &dh.contiguous()?, &TanhScanBackward)?;
        // dW_hh = sum over b, t of g_t h_{t-1}^T.
        let (b, t, n) = h.dims3()?;
        let prev = Tensor::cat(
            &[&h.zeros_like()?.narrow(1, 0, 1)?, &h.narrow(1, 0, t - 1)?],
            1,
        )?;
        let dw = dxp
            .reshape((b * t, n))?
            .t()?
            .matmul(&prev.reshape((b * t, n))?)?;
        Ok((Some(dxp), Some(dw)))
    }
}

/// The gradient of the pre-activations, `g_t = (dh_t + W_hh^T g_{t+1}) (1 -
/// h_t^2)`, from `(h, W_hh, dh)`: also the gradient of `xp`.
struct TanhScanBackward;

impl CustomOp3 for TanhScanBackward {
    fn name(&self) -> &'static str {
        "hark-tanh-scan-backward"
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
        let (_, t, n) = dims(l1, l2)?;
        let (h, w, dh) = (f32_data(s1, l1)?, f32_data(s2, l2)?, f32_data(s3, l3)?);
        let mut g = dh.to_vec();
        let mut carry = vec![0.0f32; n];
        for (seq, hs) in g.chunks_exact_mut(t * n).zip(h.chunks_exact(t * n)) {
            carry.fill(0.0);
            for step in (0..t).rev() {
                let gs = &mut seq[step * n..(step + 1) * n];
                for ((g, c), &y) in gs.iter_mut().zip(&carry).zip(&hs[step * n..]) {
                    *g = (*g + c) * (1.0 - y * y);
                }
                // carry = W^T g: the rows of W, weighted by g.
                carry.fill(0.0);
                add_matvec_t(&mut carry, w, gs);
            }
        }
        Ok((CpuStorage::F32(g), l1.shape().clone()))
    }
}

/// `h` `[B, T, H]` of the recurrence over the projected inputs `xp`
/// `[B, T, H]` with hidden-to-hidden weight `w_hh` `[H, H]`.
pub(crate) fn tanh_scan(xp: &Tensor, w_hh: &Tensor) -> candle_core::Result<Tensor> {
    xp.contiguous()?.apply_op2(&w_hh.contiguous()?, TanhScan)
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32 + 1).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn fast_tanh_is_within_1e_7_of_libm() {
        for i in -20_000..20_000 {
            let x = i as f32 * 1e-3 + 3.1e-5;
            assert!((tanh(x) - x.tanh()).abs() < 1.2e-7, "tanh({x})");
        }
    }

    #[test]
    fn scan_and_gradients_equal_the_stepped_candle_recurrence() {
        let (b, t, h) = (3, 7, 5);
        let dev = &Device::Cpu;
        let xp = Var::from_vec(values(b * t * h, 1), (b, t, h), dev).unwrap();
        let w = Var::from_vec(values(h * h, 2), (h, h), dev).unwrap();
        let weights = Tensor::from_vec(values(b * t * h, 3), (b, t, h), dev).unwrap();
        // Reference: one candle op chain per step.
        let mut state = Tensor::zeros((b, h), candle_core::DType::F32, dev).unwrap();
        let mut outs = Vec::new();
        for s in 0..t {
            let x = xp.narrow(1, s, 1).unwrap().squeeze(1).unwrap();
            state = (x + state.matmul(&w.t().unwrap()).unwrap())
                .unwrap()
                .tanh()
                .unwrap();
            outs.push(state.clone());
        }
        let want = Tensor::stack(&outs, 1).unwrap();
        let got = tanh_scan(&xp, &w).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(D::Minus1)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&got, &want) < 1e-6);
        let loss = |y: &Tensor| (y * &weights).unwrap().sum_all().unwrap();
        let g_want = loss(&want).backward().unwrap();
        let g_got = loss(&got).backward().unwrap();
        for var in [&xp, &w] {
            let (a, b) = (g_got.get(var).unwrap(), g_want.get(var).unwrap());
            assert!(diff(a, b) < 1e-5, "{:?}", var.dims());
        }
    }
}
