//! The inner loops with AVX2 and FMA intrinsics: the accumulators are
//! vector values, so they stay in registers.

use std::arch::x86_64::{
    _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm256_sub_ps,
};

use crate::{LANES, Lanes, Simd};

/// Proof that the CPU has AVX2 and FMA: only [`crate::dispatch`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Avx2 {
    pub(crate) _detected: (),
}

impl Simd for Avx2 {
    #[inline(always)]
    fn centred_sums(self, w: Option<&[f32]>, x: &[f32], k: f32) -> [f64; 2] {
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
        unsafe { centred_sums(w, x, k) }
    }

    #[inline(always)]
    fn tile<const R: usize, const V: usize>(
        self,
        src: &[f32],
        base: usize,
        offs: &[usize],
        w: &[f32],
    ) -> [[Lanes; V]; R] {
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
        unsafe { tile(src, base, offs, w) }
    }

    #[inline(always)]
    fn dot_tile<const R: usize, const T: usize>(
        self,
        a: (&[f32], [usize; R], usize),
        b: (&[f32], [usize; T], usize),
        rows: usize,
        len: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
        unsafe { dot_tile(a, b, rows, len) }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn centred_sums(w: Option<&[f32]>, x: &[f32], k: f32) -> [f64; 2] {
    let n = w.map_or(x.len(), |w| w.len().min(x.len()));
    let kv = _mm256_set1_ps(k);
    // Two vectors of each sum per step, so the adds overlap.
    let mut acc = [_mm256_setzero_ps(); 4];
    let full = n / (2 * LANES) * (2 * LANES);
    for i in (0..full).step_by(2 * LANES) {
        for h in 0..2 {
            let at = i + h * LANES;
            // SAFETY: `at + LANES <= full <= n`, and `x` (and `w`) hold
            // `n` values.
            let e = _mm256_sub_ps(unsafe { _mm256_loadu_ps(x.as_ptr().add(at)) }, kv);
            let wv = match w {
                // SAFETY: as above.
                Some(w) => unsafe { _mm256_loadu_ps(w.as_ptr().add(at)) },
                None => e,
            };
            acc[h] = _mm256_add_ps(acc[h], wv);
            acc[2 + h] = _mm256_fmadd_ps(wv, e, acc[2 + h]);
        }
    }
    let mut lanes = [0.0f32; LANES];
    let mut out = [0.0f64; 2];
    for (j, v) in acc.iter().enumerate() {
        // SAFETY: `lanes` holds the 8 values written.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *v) };
        out[j / 2] += lanes.iter().map(|&v| v as f64).sum::<f64>();
    }
    for i in full..n {
        let e = x[i] - k;
        let wi = w.map_or(e, |w| w[i]);
        out[0] += wi as f64;
        out[1] += (wi * e) as f64;
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
fn tile<const R: usize, const V: usize>(
    src: &[f32],
    base: usize,
    offs: &[usize],
    w: &[f32],
) -> [[Lanes; V]; R] {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    for (&off, wt) in offs.iter().zip(w.chunks_exact(R)) {
        let s = &src[base + off..][..V * LANES];
        let mut x = [_mm256_setzero_ps(); V];
        for (v, x) in x.iter_mut().enumerate() {
            // SAFETY: `s` holds `V * LANES` values, so every load is inside.
            *x = unsafe { _mm256_loadu_ps(s.as_ptr().add(v * LANES)) };
        }
        for r in 0..R {
            let wr = _mm256_set1_ps(wt[r]);
            for v in 0..V {
                acc[r][v] = _mm256_fmadd_ps(wr, x[v], acc[r][v]);
            }
        }
    }
    let mut out = [[[0.0f32; LANES]; V]; R];
    for r in 0..R {
        for v in 0..V {
            // SAFETY: `out[r][v]` holds the 8 values written.
            unsafe { _mm256_storeu_ps(out[r][v].as_mut_ptr(), acc[r][v]) };
        }
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)]
fn dot_tile<const R: usize, const T: usize>(
    (a, a_at, a_stride): (&[f32], [usize; R], usize),
    (b, b_at, b_stride): (&[f32], [usize; T], usize),
    rows: usize,
    len: usize,
) -> [[f32; T]; R] {
    // `[t][r]`: each `b` vector is loaded once and used `R` times.
    let mut acc = [[_mm256_setzero_ps(); R]; T];
    // The last `len % LANES` products of each row.
    let mut out = [[0.0f32; T]; R];
    let full = len / LANES * LANES;
    for row in 0..rows {
        let mut av = [a; R];
        for r in 0..R {
            av[r] = &a[a_at[r] + row * a_stride..][..len];
        }
        let mut bv = [b; T];
        for t in 0..T {
            bv[t] = &b[b_at[t] + row * b_stride..][..len];
        }
        for j in (0..full).step_by(LANES) {
            let mut x = [_mm256_setzero_ps(); R];
            for r in 0..R {
                // SAFETY: every slice holds `len` values and `j + LANES <= len`.
                x[r] = unsafe { _mm256_loadu_ps(av[r].as_ptr().add(j)) };
            }
            for t in 0..T {
                // SAFETY: as above.
                let y = unsafe { _mm256_loadu_ps(bv[t].as_ptr().add(j)) };
                for r in 0..R {
                    acc[t][r] = _mm256_fmadd_ps(x[r], y, acc[t][r]);
                }
            }
        }
        for j in full..len {
            for t in 0..T {
                for r in 0..R {
                    out[r][t] += av[r][j] * bv[t][j];
                }
            }
        }
    }
    let mut lanes = [0.0f32; LANES];
    for t in 0..T {
        for r in 0..R {
            // SAFETY: `lanes` holds the 8 values written.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[t][r]) };
            out[r][t] += lanes.iter().sum::<f32>();
        }
    }
    out
}
