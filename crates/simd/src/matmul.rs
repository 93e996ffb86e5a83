//! A safe matrix product over the `gemm` crate's raw-pointer API: every
//! operand's span is checked against its slice before the call.

/// An operand of [`matmul`]: a row-major matrix whose rows are `ld`
/// apart, read as is or as its transpose.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
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
pub fn matmul(
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
