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

/// An operand of [`matmul`]: a row-major matrix whose rows are `ld`
/// apart, read as is or as its transpose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    /// Distance between stored rows; 0 means "the row length".
    ld: usize,
    /// Read as the transpose of what is stored.
    transposed: bool,
}

impl<'a> Mat<'a> {
    /// The matrix as stored, rows contiguous.
    pub fn new(data: &'a [f32]) -> Self {
        Self {
            data,
            ld: 0,
            transposed: false,
        }
    }

    /// The transpose of the stored matrix.
    pub fn t(data: &'a [f32]) -> Self {
        Self {
            data,
            ld: 0,
            transposed: true,
        }
    }

    /// Stored rows are `ld` apart (a column block of a wider matrix).
    pub fn ld(self, ld: usize) -> Self {
        Self { ld, ..self }
    }

    /// (row stride, column stride) of the `rows x cols` view, and the
    /// number of stored values it spans.
    fn layout(&self, rows: usize, cols: usize) -> (isize, isize, usize) {
        let (stored_rows, stored_cols) = if self.transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let ld = if self.ld == 0 { stored_cols } else { self.ld };
        let span = if stored_rows == 0 {
            0
        } else {
            (stored_rows - 1) * ld + stored_cols
        };
        if self.transposed {
            (1, ld as isize, span)
        } else {
            (ld as isize, 1, span)
        }
    }
}

/// `c = a * b` (or `c += a * b` with `accumulate`) for an `m x k` matrix `a`,
/// a `k x n` matrix `b` and a row-major `m x n` matrix `c` whose rows are
/// `ldc` apart (0: `n`). `threads > 1` splits the product over rayon's pool.
///
/// # Panics
/// If a slice is shorter than its matrix spans.
pub(crate) fn matmul(
    c: &mut [f32],
    ldc: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let ldc = if ldc == 0 { n } else { ldc };
    check_len("dst", c.len(), (m - 1) * ldc + n);
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let (a_rs, a_cs, a_span) = a.layout(m, k);
    let (b_rs, b_cs, b_span) = b.layout(k, n);
    check_len("lhs", a.data.len(), a_span);
    check_len("rhs", b.data.len(), b_span);
    // Splitting a small product costs more in handing work between
    // threads than it saves.
    const PARALLEL_MACS: usize = 1 << 21;
    let parallelism = if threads > 1 && m * k * n >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: each slice was checked above to hold every element its
    // strides address for these sizes, and `c` is borrowed mutably, so it
    // aliases neither operand.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
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

/// Buffers handed back by [`recycle`], for [`recycled`].
static POOL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// Buffers the pool keeps; past it, the smallest are freed.
const POOL_BUFFERS: usize = 16;

/// A vector of `len` values for an output the caller writes in full: a
/// buffer [`recycle`]d earlier if one is large enough (its values are
/// whatever it last held), else a new one. A training step's intermediate
/// activations and gradients have the same sizes every step, so they reuse
/// the last step's memory instead of zeroing fresh pages.
pub(crate) fn recycled(len: usize) -> Vec<f32> {
    let found = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that holds `len`.
        let best = (pool.iter().enumerate())
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    };
    match found {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// Hands `buffer` back for [`recycled`] to reuse.
pub(crate) fn recycle(buffer: Vec<f32>) {
    if buffer.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.push(buffer);
    if pool.len() > POOL_BUFFERS {
        let smallest = (pool.iter().enumerate())
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        if let Some(i) = smallest {
            pool.swap_remove(i);
        }
    }
}

thread_local! {
    /// Buffers [`with_scratch`] lends out, kept between calls.
    static SCRATCH: std::cell::Cell<Vec<Vec<f32>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Calls `f` with `N` buffers of the given lengths, reused across calls on
/// this thread: no allocation or zeroing once they have grown (rayon calls
/// a `for_each_init` initialiser again for every piece it splits work
/// into). Their contents are whatever an earlier call left. A nested call
/// (work stolen while `f` runs) gets buffers of its own.
pub(crate) fn with_scratch<const N: usize, R>(
    lens: [usize; N],
    f: impl FnOnce([&mut [f32]; N]) -> R,
) -> R {
    let mut pool = SCRATCH.take();
    let mut bufs: [Vec<f32>; N] = std::array::from_fn(|_| pool.pop().unwrap_or_default());
    SCRATCH.set(pool);
    for (b, &len) in bufs.iter_mut().zip(&lens) {
        if b.len() < len {
            b.resize(len, 0.0);
        }
    }
    let mut lens = lens.into_iter();
    let out = f(bufs.each_mut().map(|b| {
        let len = lens.next().unwrap_or(0);
        &mut b[..len]
    }));
    let mut pool = SCRATCH.take();
    pool.extend(bufs);
    SCRATCH.set(pool);
    out
}

/// The `N` sums `sum_i f([inputs[0][i], .., inputs[M - 1][i]])[k]` over the
/// length of `inputs[0]` (the others at least as long), accumulated in
/// eight f32 lanes each and returned as f64 for the caller to combine
/// slices. One pass computes all `N`. Eight lanes make eight short chains of
/// dependent adds instead of one long one; the compiler does not reliably
/// turn them into vector code, so the hot sums use
/// [`crate::kernels::Simd::centred_sums`] instead.
#[inline(always)]
pub(crate) fn lane_sums<const M: usize, const N: usize>(
    inputs: [&[f32]; M],
    f: impl Fn([f32; M]) -> [f32; N],
) -> [f64; N] {
    let n = inputs.first().map_or(0, |s| s.len());
    let full = n / 8 * 8;
    let mut acc = [[0.0f32; 8]; N];
    for base in (0..full).step_by(8) {
        let chunks = inputs.map(|s| &s[base..base + 8]);
        for lane in 0..8 {
            for (a, v) in acc.iter_mut().zip(f(chunks.map(|c| c[lane]))) {
                a[lane] += v;
            }
        }
    }
    let mut out = acc.map(|a| a.iter().map(|&v| v as f64).sum::<f64>());
    for i in full..n {
        for (o, v) in out.iter_mut().zip(f(inputs.map(|s| s[i]))) {
            *o += v as f64;
        }
    }
    out
}

#[cold]
#[inline(never)]
fn too_short(what: &str, got: usize, needed: usize) -> ! {
    panic!("matmul {what} holds {got} values, needs {needed}")
}

#[inline]
fn check_len(what: &str, got: usize, needed: usize) {
    if got < needed {
        too_short(what, got, needed);
    }
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
    fn scratch_buffers_persist_and_a_nested_call_gets_its_own() {
        with_scratch([3, 5], |[a, b]| {
            assert_eq!((a.len(), b.len()), (3, 5));
            a.fill(1.0);
            // Work stolen while `a` is lent out must not see it.
            with_scratch([3], |[c]| c.fill(2.0));
            assert_eq!(a, [1.0; 3]);
        });
        // Buffers come back at the lengths asked, whatever they held.
        with_scratch([2, 7], |[a, b]| assert_eq!((a.len(), b.len()), (2, 7)));
    }

    #[test]
    fn recycled_buffers_come_at_the_length_asked_and_the_pool_stays_bounded() {
        for len in 1..=2 * POOL_BUFFERS {
            recycle(vec![7.0; len * 10]);
        }
        assert!(POOL.lock().unwrap().len() <= POOL_BUFFERS);
        for len in [60, 0, 5000] {
            assert_eq!(recycled(len).len(), len);
        }
    }

    #[test]
    fn lane_sums_add_every_value_tail_included() {
        let x: Vec<f32> = (1..=19).map(|i| i as f32).collect();
        let y: Vec<f32> = vec![2.0; 19];
        let [s, p] = lane_sums([&x, &y], |[x, y]| [x, x * y]);
        assert_eq!((s, p), (190.0, 380.0));
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
            matmul(&mut c, 0, wrap(&a, at), wrap(&b, bt), (m, k, n), true, 1);
            for (x, y) in c.iter().zip(&expect) {
                assert!((x - 1.0 - y).abs() < 1e-5, "{at} {bt}: {x} vs {y}");
            }
            matmul(&mut c, 0, wrap(&a, at), wrap(&b, bt), (m, k, n), false, 2);
            for (x, y) in c.iter().zip(&expect) {
                assert!((x - y).abs() < 1e-5);
            }
            // The same product into a column block of a wider matrix.
            let mut wide = vec![7.0; m * (n + 2)];
            matmul(
                &mut wide[1..],
                n + 2,
                wrap(&a, at),
                wrap(&b, bt),
                (m, k, n),
                false,
                1,
            );
            for (i, row) in wide.chunks(n + 2).enumerate() {
                assert_eq!((row[0], row[n + 1]), (7.0, 7.0));
                for (x, y) in row[1..=n].iter().zip(&expect[i * n..]) {
                    assert!((x - y).abs() < 1e-5);
                }
            }
        }
    }
}
