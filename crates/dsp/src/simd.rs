//! Runtime CPU dispatch: the per-clip kernels are compiled a second time with
//! AVX2 and FMA enabled and chosen when the CPU has them, so the compiler's
//! vectorised loops use 8 lanes instead of the x86-64 baseline's 4.
//!
//! This module holds the crate's only `unsafe`: calling a function compiled
//! for CPU features the baseline lacks, right after checking for them.

/// A piece of per-clip work. `run` must be `#[inline(always)]` (and so must
/// what it calls) so that it is compiled into [`dispatch`]'s AVX2 copy;
/// a closure would not be inlined there reliably.
pub(crate) trait Kernel {
    /// Does the work.
    fn run(self);
}

/// Runs `kernel` compiled for AVX2 + FMA where the CPU has both, else as is.
#[inline]
pub(crate) fn dispatch(kernel: impl Kernel) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn run_avx2(kernel: impl Kernel) {
            kernel.run()
        }
        #[allow(unsafe_code)]
        // SAFETY: `run_avx2` only needs AVX2 and FMA, both detected above.
        return unsafe { run_avx2(kernel) };
    }
    kernel.run()
}
