//! hark-simd: run-time CPU dispatch for hark's hot loops, and the
//! workspace's only `unsafe`.
//!
//! [`dispatch`] runs a [`Kernel`] compiled with AVX2 and FMA where the CPU
//! has both (so the compiler's loops vectorise 8 wide instead of the x86-64
//! baseline's 4), and hands it a [`Simd`] token whose register-blocked tiles
//! use AVX2 + FMA intrinsics there and portable loops elsewhere. A test
//! forces the portable path by running the kernel with [`Portable`] itself.
//!
//! The `unsafe` here is of three kinds, each next to the check that makes
//! it sound: calling a function compiled for CPU features right after
//! detecting them, the intrinsics' loads and stores from slices checked to
//! hold them, and (feature `gemm`) the raw-pointer matrix product of the
//! `gemm` crate behind [`matmul`]'s length checks.
//!
//! ```
//! use hark_simd::{Kernel, Simd, dispatch};
//!
//! /// Sum and sum of squares of `x - 1`.
//! struct Moments<'a>(&'a [f32]);
//!
//! impl Kernel for Moments<'_> {
//!     type Output = [f64; 2];
//!     #[inline(always)]
//!     fn run<S: Simd>(self, simd: S) -> [f64; 2] {
//!         simd.centred_sums(None, self.0, 1.0)
//!     }
//! }
//!
//! assert_eq!(dispatch(Moments(&[1.0, 2.0, 3.0])), [3.0, 5.0]);
//! ```
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod lanes;
#[cfg(feature = "gemm")]
mod matmul;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use lanes::lane_sums;
#[cfg(feature = "gemm")]
pub use matmul::{Mat, matmul};
#[cfg(target_arch = "x86_64")]
pub use x86::Avx2;

/// Values per vector register (AVX2: 8 f32).
pub const LANES: usize = 8;

/// One vector register's worth of values.
pub type Lanes = [f32; LANES];

/// The inner loops, for one instruction set.
pub trait Simd: Copy {
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
pub trait Kernel {
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
pub fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
            kernel.run(Avx2 { _detected: () })
        }
        // SAFETY: `run_avx2` only needs AVX2 and FMA, both detected above.
        return unsafe { run_avx2(kernel) };
    }
    kernel.run(Portable)
}

/// Plain Rust loops over lane arrays, for any CPU.
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Simd for Portable {
    #[inline(always)]
    fn centred_sums(self, w: Option<&[f32]>, x: &[f32], k: f32) -> [f64; 2] {
        match w {
            Some(w) => crate::lane_sums([w, x], |[w, x]| [w, w * (x - k)]),
            None => crate::lane_sums([x], |[x]| [x - k, (x - k) * (x - k)]),
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
