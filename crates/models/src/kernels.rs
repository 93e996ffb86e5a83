//! Runtime CPU dispatch: [`dispatch`] runs a [`Kernel`] compiled with AVX2
//! and FMA where the CPU has both (so batch norm's loops vectorise 8 wide),
//! and hands it a [`Simd`] token whose register-blocked tiles (the
//! convolution's small weight gradients and thin forward passes) use AVX2 +
//! FMA intrinsics there, portable loops elsewhere.
//!
//! This module holds the crate's only `unsafe` outside the matrix product:
//! calling functions compiled for CPU features the baseline lacks, right
//! after checking for them, and the intrinsics' pointer loads, each from a
//! slice checked to hold it.

/// Values per vector register (AVX2: 8 f32).
pub(crate) const LANES: usize = 8;

/// One vector register's worth of values.
pub(crate) type Lanes = [f32; LANES];

/// The inner loops, for one instruction set.
pub(crate) trait Simd: Copy {
    /// `R` rows of `V * LANES` consecutive outputs of a correlation:
    /// `out[r][v][l] = sum_t w[t * R + r] * src[base + offs[t] + v * LANES + l]`.
    ///
    /// # Panics
    /// If `w` holds fewer than `offs.len() * R` values or a read leaves `src`.
    fn tile<const R: usize, const V: usize>(
        self,
        src: &[f32],
        base: usize,
        offs: &[usize],
        w: &[f32],
    ) -> [[Lanes; V]; R];

    /// `[sum_i w_i, sum_i w_i * (x_i - k)]` over `x`, with `w_i = x_i - k`
    /// where `w` is `None` (then the centred sum and sum of squares),
    /// summed in f32 lanes and returned as f64.
    fn centred_sums(self, w: Option<&[f32]>, x: &[f32], k: f32) -> [f64; 2];

    /// `R x T` dot products over `rows` rows of `len` values, rows `stride`
    /// apart: `out[r][t] = sum_row sum_j a[a_at[r] + row * a_stride + j] *
    /// b[b_at[t] + row * b_stride + j]`, in `R x T` vector accumulators.
    ///
    /// # Panics
    /// If a read leaves `a` or `b`.
    fn dot_tile<const R: usize, const T: usize>(
        self,
        a: (&[f32], [usize; R], usize),
        b: (&[f32], [usize; T], usize),
        rows: usize,
        len: usize,
    ) -> [[f32; T]; R];
}

/// Work generic over the instruction set, run by [`dispatch`].
pub(crate) trait Kernel {
    /// What the work returns.
    type Output;
    /// Does the work. Must be `#[inline(always)]`, and so must what it
    /// calls, so that it is compiled into [`dispatch`]'s AVX2 copy, where the
    /// AVX2 inner loops inline.
    fn run<S: Simd>(self, simd: S) -> Self::Output;
}

/// Runs `kernel` with the AVX2 + FMA loops where the CPU has both, else
/// with the portable ones.
#[inline]
pub(crate) fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
            kernel.run(x86::Avx2 { _detected: () })
        }
        #[allow(unsafe_code)]
        // SAFETY: `run_avx2` only needs AVX2 and FMA, both detected above.
        return unsafe { run_avx2(kernel) };
    }
    kernel.run(Portable)
}

/// Plain Rust loops over lane arrays, for any CPU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    #[inline(always)]
    fn centred_sums(self, w: Option<&[f32]>, x: &[f32], k: f32) -> [f64; 2] {
        match w {
            Some(w) => crate::cpu::lane_sums([w, x], |[w, x]| [w, w * (x - k)]),
            None => crate::cpu::lane_sums([x], |[x]| [x - k, (x - k) * (x - k)]),
        }
    }

    #[inline(always)]
    fn tile<const R: usize, const V: usize>(
        self,
        src: &[f32],
        base: usize,
        offs: &[usize],
        w: &[f32],
    ) -> [[Lanes; V]; R] {
        let mut acc = [[[0.0f32; LANES]; V]; R];
        for (&off, wt) in offs.iter().zip(w.chunks_exact(R)) {
            let s = &src[base + off..][..V * LANES];
            for (acc, w) in acc.iter_mut().zip(wt) {
                for (a, s) in acc.iter_mut().flatten().zip(s) {
                    *a += w * s;
                }
            }
        }
        acc
    }

    #[inline(always)]
    fn dot_tile<const R: usize, const T: usize>(
        self,
        (a, a_at, a_stride): (&[f32], [usize; R], usize),
        (b, b_at, b_stride): (&[f32], [usize; T], usize),
        rows: usize,
        len: usize,
    ) -> [[f32; T]; R] {
        let mut out = [[0.0f32; T]; R];
        for row in 0..rows {
            for (out, &at) in out.iter_mut().zip(&a_at) {
                let x = &a[at + row * a_stride..][..len];
                for (out, &bt) in out.iter_mut().zip(&b_at) {
                    let y = &b[bt + row * b_stride..][..len];
                    let (xs, ys) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
                    let tail: f32 = (xs.remainder().iter().zip(ys.remainder()))
                        .map(|(x, y)| x * y)
                        .sum();
                    let mut acc = [0.0f32; LANES];
                    for (x, y) in xs.zip(ys) {
                        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
                            *a += x * y;
                        }
                    }
                    *out += acc.iter().sum::<f32>() + tail;
                }
            }
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! The inner loops with AVX2 and FMA intrinsics: the accumulators are
    //! vector values, so they stay in registers.

    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm256_sub_ps,
    };

    use super::{LANES, Lanes, Simd};

    /// Proof that the CPU has AVX2 and FMA: only [`super::dispatch`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2 {
        pub(super) _detected: (),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct Tile<'a>(&'a [f32], &'a [usize], &'a [f32]);

    impl Kernel for Tile<'_> {
        type Output = [[Lanes; 2]; 3];
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) -> Self::Output {
            simd.tile::<3, 2>(self.0, 1, self.1, self.2)
        }
    }

    #[derive(Clone, Copy)]
    struct Dot<'a>(&'a [f32], &'a [f32]);

    impl Kernel for Dot<'_> {
        type Output = [[f32; 3]; 2];
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) -> Self::Output {
            simd.dot_tile::<2, 3>((self.0, [0, 5], 20), (self.1, [1, 2, 7], 30), 2, 19)
        }
    }

    fn seq(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37).sin()).collect()
    }

    /// Both instruction sets: what this CPU dispatches to, and the portable loops.
    fn both<K: Kernel + Copy>(kernel: K) -> [K::Output; 2] {
        [dispatch(kernel), kernel.run(Portable)]
    }

    #[test]
    fn tile_sums_the_weighted_shifted_rows() {
        let (src, offs, w) = (seq(64), [0usize, 3, 40], seq(9));
        for got in both(Tile(&src, &offs, &w)) {
            for r in 0..3 {
                for i in 0..16 {
                    let want: f32 = (0..3).map(|t| w[t * 3 + r] * src[1 + offs[t] + i]).sum();
                    assert!((got[r][i / 8][i % 8] - want).abs() < 1e-5, "{r} {i}");
                }
            }
        }
    }

    #[derive(Clone, Copy)]
    struct Centred<'a>(Option<&'a [f32]>, &'a [f32]);

    impl Kernel for Centred<'_> {
        type Output = [f64; 2];
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) -> Self::Output {
            simd.centred_sums(self.0, self.1, 0.25)
        }
    }

    #[test]
    fn centred_sums_weight_the_centred_values_tail_included() {
        // 37 values: two 16-wide steps and a tail of 5.
        let (w, x) = (seq(37), seq(40));
        let x = &x[3..];
        for (weights, got) in [
            (None, both(Centred(None, x))),
            (Some(&w[..]), both(Centred(Some(&w), x))),
        ] {
            let want = (0..37).fold([0.0f64; 2], |[a, b], i| {
                let e = (x[i] - 0.25) as f64;
                let wi = weights.map_or(e, |w| w[i] as f64);
                [a + wi, b + wi * e]
            });
            for got in got {
                assert!(
                    (got[0] - want[0]).abs() < 1e-4 && (got[1] - want[1]).abs() < 1e-4,
                    "{got:?} {want:?}"
                );
            }
        }
    }

    #[test]
    fn dot_tile_sums_products_over_rows_tail_included() {
        let (a, b) = (seq(60), seq(80));
        for got in both(Dot(&a, &b)) {
            for (r, ra) in [0usize, 5].into_iter().enumerate() {
                for (t, tb) in [1usize, 2, 7].into_iter().enumerate() {
                    let want: f32 = (0..2)
                        .flat_map(|row| (0..19).map(move |j| (row, j)))
                        .map(|(row, j)| a[ra + row * 20 + j] * b[tb + row * 30 + j])
                        .sum();
                    assert!((got[r][t] - want).abs() < 1e-4, "{r} {t}");
                }
            }
        }
    }
}
