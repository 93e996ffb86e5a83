//! Raw CPU access for the custom ops: f32 slices of tensors and a safe
//! wrapper over the `gemm` crate's matrix product.

use candle_core::{CpuStorage, Layout, Storage, Tensor};

/// The contiguous f32 data of a storage as its layout sees it.
pub(crate) fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("hark op needs a contiguous input")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Calls `f` on the f32 data of `t` (made contiguous first).
pub(crate) fn with_f32<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("hark ops run on the CPU only")
    };
    f(f32_data(cpu, layout)?)
}

/// A row-major `rows x cols` operand of [`matmul`], possibly stored transposed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    /// Stored as `cols x rows` (read as its transpose).
    pub transposed: bool,
}

impl<'a> Mat<'a> {
    pub fn new(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: false,
        }
    }

    pub fn t(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: true,
        }
    }

    /// Row and column strides for a `rows x cols` view.
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize) {
        if self.transposed {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        }
    }
}

/// `c = a * b` (or `c += a * b` with `accumulate`) for an `m x k` matrix `a`,
/// a `k x n` matrix `b` and a row-major `m x n` matrix `c`. `threads > 1`
/// splits the product over rayon's pool.
///
/// # Panics
/// If a slice's length is not its matrix's size.
pub(crate) fn matmul(
    c: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    check_len("lhs", a.data.len(), m * k);
    check_len("rhs", b.data.len(), k * n);
    check_len("dst", c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = a.strides(m, k);
    let (b_rs, b_cs) = b.strides(k, n);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three slices were checked above to hold exactly the
    // `m x k`, `k x n` and `m x n` elements the strides address, and `c` is
    // borrowed mutably, so it aliases neither operand.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cold]
#[inline(never)]
fn check_len(what: &str, got: usize, expected: usize) {
    assert_eq!(
        got, expected,
        "matmul {what} holds {got} values, expected {expected}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], at: bool, b: &[f32], bt: bool, m: usize, k: usize, n: usize) -> Vec<f32> {
        let ga = |i: usize, p: usize| if at { a[p * m + i] } else { a[i * k + p] };
        let gb = |p: usize, j: usize| if bt { b[j * k + p] } else { b[p * n + j] };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| ga(i, p) * gb(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn matmul_equals_the_naive_product_for_every_transposition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            let expect = naive(&a, at, &b, bt, m, k, n);
            let wrap = |d, t| if t { Mat::t(d) } else { Mat::new(d) };
            let mut c = vec![1.0; m * n];
            matmul(&mut c, wrap(&a, at), wrap(&b, bt), (m, k, n), true, 1);
            for (x, y) in c.iter().zip(&expect) {
                assert!((x - 1.0 - y).abs() < 1e-5, "{at} {bt}: {x} vs {y}");
            }
            matmul(&mut c, wrap(&a, at), wrap(&b, bt), (m, k, n), false, 2);
            for (x, y) in c.iter().zip(&expect) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }
}
