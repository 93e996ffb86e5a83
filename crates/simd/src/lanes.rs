//! Sums in eight f32 lanes, for the loops that have no intrinsics.

/// The `N` sums `sum_i f([inputs[0][i], .., inputs[M - 1][i]])[k]` over the
/// length of `inputs[0]` (the others at least as long), accumulated in
/// eight f32 lanes each and returned as f64 for the caller to combine
/// slices. One pass computes all `N`. Eight lanes make eight short chains of
/// dependent adds instead of one long one; the compiler does not reliably
/// turn them into vector code, so the hot sums use
/// [`crate::Simd::centred_sums`] instead.
#[inline(always)]
pub fn lane_sums<const M: usize, const N: usize>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_add_every_value_tail_included() {
        let x: Vec<f32> = (1..=19).map(|i| i as f32).collect();
        let y: Vec<f32> = vec![2.0; 19];
        let [s, p] = lane_sums([&x, &y], |[x, y]| [x, x * y]);
        assert_eq!((s, p), (190.0, 380.0));
    }
}
