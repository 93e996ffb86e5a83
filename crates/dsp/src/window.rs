//! Analysis windows: Hann, Hamming and rectangular, as `torch.*_window` builds them.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The shape of an analysis window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum WindowKind {
    /// `0.5 - 0.5 cos(2 pi n / N)`: `torch.hann_window`, `scipy.signal.get_window("hann")`.
    #[default]
    Hann,
    /// `0.54 - 0.46 cos(2 pi n / N)`: `torch.hamming_window`.
    Hamming,
    /// All ones.
    Rectangular,
}

/// Builds a window of `len` samples.
///
/// A periodic window (`periodic = true`, torch's and librosa's default for
/// spectral analysis) uses `N = len`; a symmetric one uses `N = len - 1`, so
/// its last sample equals its first. A window of length 1 is `[1.0]`.
pub fn window(kind: WindowKind, len: usize, periodic: bool) -> Vec<f32> {
    if len == 1 {
        return vec![1.0];
    }
    let denom = if periodic { len } else { len - 1 } as f64;
    let (a, b) = match kind {
        WindowKind::Hann => (0.5, 0.5),
        WindowKind::Hamming => (0.54, 0.46),
        WindowKind::Rectangular => return vec![1.0; len],
    };
    (0..len)
        .map(|n| (a - b * (2.0 * std::f64::consts::PI * n as f64 / denom).cos()) as f32)
        .collect()
}

/// Builds a window of `win_length` samples zero-padded to `n_fft`, centred as
/// `torch.stft` does: `(n_fft - win_length) / 2` zeros on the left.
///
/// # Panics
/// If `win_length > n_fft`; [`crate::StftPlan::new`] rejects that with an error first.
pub fn padded_window(
    kind: WindowKind,
    win_length: usize,
    n_fft: usize,
    periodic: bool,
) -> Vec<f32> {
    assert!(
        win_length <= n_fft,
        "win_length {win_length} > n_fft {n_fft}"
    );
    let left = (n_fft - win_length) / 2;
    let mut out = vec![0.0; n_fft];
    out[left..left + win_length].copy_from_slice(&window(kind, win_length, periodic));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_hann_of_four_is_zero_half_one_half() {
        let w = window(WindowKind::Hann, 4, true);
        let want = [0.0, 0.5, 1.0, 0.5];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{w:?}");
        }
    }

    #[test]
    fn symmetric_window_ends_equal_its_start() {
        for kind in [WindowKind::Hann, WindowKind::Hamming] {
            let w = window(kind, 9, false);
            assert!((w[0] - w[8]).abs() < 1e-7);
            assert!((w[4] - 1.0).abs() < 1e-7, "peak of {kind:?} is 1");
        }
        assert!((window(WindowKind::Hamming, 9, false)[0] - 0.08).abs() < 1e-7);
    }

    #[test]
    fn short_window_is_centred_in_zeros() {
        let w = padded_window(WindowKind::Rectangular, 4, 10, true);
        assert_eq!(w, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        let w = padded_window(WindowKind::Rectangular, 3, 6, true);
        assert_eq!(w, [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn window_of_one_is_one() {
        assert_eq!(window(WindowKind::Hann, 1, true), [1.0]);
    }
}
