//! Waveform and spectrogram augmentation, each drawn from a caller's seeded
//! RNG so a run is reproducible: time shift, additive noise, random crop and
//! SpecAugment masks.

use std::ops::Range;

use rand::{Rng, RngExt};
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::error::{buffer_len_mismatch, invalid};

/// One draw from the standard normal distribution (Box-Muller in f64).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn check_fraction(field: &'static str, value: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(invalid(field, format!("must be in [0, 1], got {value}")));
    }
    Ok(())
}

/// Rotates the signal right by `floor(u * shift_limit * len)` samples with
/// `u ~ U[0, 1)`, wrapping the end round to the start (seed 001's
/// `time_shift`, `torch.roll`). Returns the shift.
///
/// # Errors
/// `shift_limit` outside `[0, 1]`.
pub fn time_shift<R: Rng + ?Sized>(
    signal: &mut [f32],
    shift_limit: f32,
    rng: &mut R,
) -> Result<usize> {
    check_fraction("shift_limit", shift_limit)?;
    let shift = (rng.random::<f64>() * shift_limit as f64 * signal.len() as f64) as usize;
    if !signal.is_empty() {
        signal.rotate_right(shift % signal.len());
    }
    Ok(shift)
}

/// Adds Gaussian noise of standard deviation `std` to every value
/// (`x + std * randn`, seeds 003 and 004). Works on waveforms and spectrograms.
///
/// # Errors
/// A `std` that is not finite and >= 0.
pub fn add_noise<R: Rng + ?Sized>(values: &mut [f32], std: f32, rng: &mut R) -> Result<()> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(invalid(
            "noise std",
            format!("must be finite and >= 0, got {std}"),
        ));
    }
    for v in values.iter_mut() {
        *v += (std as f64 * standard_normal(rng)) as f32;
    }
    Ok(())
}

/// Adds white Gaussian noise at a signal-to-noise ratio of `snr_db` dB
/// relative to the signal's mean power. A silent signal is left unchanged.
/// Returns the noise standard deviation used.
///
/// # Errors
/// A non-finite `snr_db`.
pub fn add_noise_snr<R: Rng + ?Sized>(signal: &mut [f32], snr_db: f32, rng: &mut R) -> Result<f32> {
    if !snr_db.is_finite() {
        return Err(invalid("snr_db", format!("must be finite, got {snr_db}")));
    }
    if signal.is_empty() {
        return Ok(0.0);
    }
    let power = signal.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / signal.len() as f64;
    let std = (power / 10f64.powf(snr_db as f64 / 10.0)).sqrt() as f32;
    add_noise(signal, std, rng)?;
    Ok(std)
}

/// A random window of `len * (1 - u * max_fraction)` samples (`u ~ U[0, 1)`,
/// at least one sample of a non-empty signal) at a uniformly random start:
/// seed 004's random crop. Returns the range to keep.
///
/// # Errors
/// `max_fraction` outside `[0, 1]`.
pub fn random_crop<R: Rng + ?Sized>(
    len: usize,
    max_fraction: f32,
    rng: &mut R,
) -> Result<Range<usize>> {
    check_fraction("crop max_fraction", max_fraction)?;
    let keep = ((len as f64 * (1.0 - rng.random::<f64>() * max_fraction as f64)) as usize)
        .clamp(len.min(1), len);
    let start = rng.random_range(0..=len - keep);
    Ok(start..start + keep)
}

/// The value masked cells are set to.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MaskFill {
    /// The spectrogram's mean before masking (seed 001).
    Mean,
    /// A fixed value, e.g. 0 (seed 003, torchaudio's default).
    Value(f32),
}

/// The largest mask width: torchaudio's `mask_param`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MaskParam {
    /// An absolute number of bins or frames.
    Bins(f32),
    /// A fraction of the axis length (seed 001's `max_mask_pct`).
    Fraction(f32),
}

impl MaskParam {
    fn bins(self, axis_len: usize) -> f32 {
        match self {
            Self::Bins(b) => b,
            Self::Fraction(f) => f * axis_len as f32,
        }
    }
}

/// SpecAugment (Park et al. 2019) frequency and time masks, as torchaudio's
/// `FrequencyMasking` and `TimeMasking` applied `n` times each.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SpecAugmentConfig {
    /// Number of frequency masks. Default: 1.
    pub freq_masks: usize,
    /// Largest frequency mask. Default: 10 % of the bands.
    pub freq_mask_param: MaskParam,
    /// Number of time masks. Default: 1.
    pub time_masks: usize,
    /// Largest time mask. Default: 10 % of the frames.
    pub time_mask_param: MaskParam,
    /// Value of masked cells. Default: the mean (seed 001).
    pub fill: MaskFill,
}

impl Default for SpecAugmentConfig {
    fn default() -> Self {
        Self {
            freq_masks: 1,
            freq_mask_param: MaskParam::Fraction(0.1),
            time_masks: 1,
            time_mask_param: MaskParam::Fraction(0.1),
            fill: MaskFill::Mean,
        }
    }
}

impl SpecAugmentConfig {
    /// Checks mask parameters: bins finite and >= 0, fractions in `[0, 1]`.
    ///
    /// # Errors
    /// Names the parameter at fault.
    pub fn validate(&self) -> Result<()> {
        for (field, n) in [
            ("freq_masks", self.freq_masks),
            ("time_masks", self.time_masks),
        ] {
            if n > MAX_MASKS {
                return Err(invalid(
                    field,
                    format!("must be at most {MAX_MASKS}, got {n}"),
                ));
            }
        }
        for (field, p) in [
            ("freq_mask_param", self.freq_mask_param),
            ("time_mask_param", self.time_mask_param),
        ] {
            match p {
                MaskParam::Fraction(f) => check_fraction(field, f)?,
                MaskParam::Bins(b) if !(b.is_finite() && b >= 0.0) => {
                    return Err(invalid(field, format!("must be finite and >= 0, got {b}")));
                }
                MaskParam::Bins(_) => {}
            }
        }
        Ok(())
    }
}

/// The most masks of one kind: each is a pass over the spectrogram, and a
/// few cover it whole.
pub const MAX_MASKS: usize = 1024;

/// The cells one mask covers along an axis of `size`: width `floor(u1 * param)`
/// from `floor(u2 * (size - u1 * param))` (torchaudio's `mask_along_axis`).
fn mask_range<R: Rng + ?Sized>(size: usize, param: f32, rng: &mut R) -> Range<usize> {
    let value = rng.random::<f64>() * param as f64;
    let min_value = rng.random::<f64>() * (size as f64 - value).max(0.0);
    let start = (min_value as usize).min(size);
    start..(start + value as usize).min(size)
}

/// Applies SpecAugment to `spec` of shape `[channels, rows, frames]`
/// (row-major); every channel gets the same masks, as torchaudio does for
/// one example.
///
/// # Errors
/// An invalid configuration.
///
/// # Panics
/// If `spec.len()` is not a multiple of `rows * frames`.
pub fn spec_augment<R: Rng + ?Sized>(
    spec: &mut [f32],
    rows: usize,
    frames: usize,
    config: &SpecAugmentConfig,
    rng: &mut R,
) -> Result<()> {
    config.validate()?;
    let plane = rows * frames;
    if plane == 0 || !spec.len().is_multiple_of(plane) {
        buffer_len_mismatch(
            "spec_augment input (a multiple of rows * frames)",
            plane,
            spec.len(),
        );
    }
    let fill = match config.fill {
        MaskFill::Value(v) => v,
        MaskFill::Mean => (spec.iter().map(|&v| v as f64).sum::<f64>() / spec.len() as f64) as f32,
    };
    for _ in 0..config.freq_masks {
        let r = mask_range(rows, config.freq_mask_param.bins(rows), rng);
        for channel in spec.chunks_exact_mut(plane) {
            channel[r.start * frames..r.end * frames].fill(fill);
        }
    }
    for _ in 0..config.time_masks {
        let r = mask_range(frames, config.time_mask_param.bins(frames), rng);
        for row in spec.chunks_exact_mut(frames) {
            row[r.clone()].fill(fill);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn time_shift_rolls_right_within_the_limit_and_is_seeded() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut a = x.clone();
        let shift = time_shift(&mut a, 0.4, &mut rng(3)).unwrap();
        assert!(shift < 40);
        assert_eq!(a[shift], 0.0);
        assert_eq!(a[(shift + 99) % 100], 99.0);
        let mut b = x.clone();
        assert_eq!(time_shift(&mut b, 0.4, &mut rng(3)).unwrap(), shift);
        assert_eq!(a, b);
        assert!(time_shift(&mut b, 1.5, &mut rng(3)).is_err());
    }

    #[test]
    fn noise_has_the_requested_deviation_and_snr() {
        let mut x = vec![0.0f32; 20000];
        add_noise(&mut x, 0.5, &mut rng(1)).unwrap();
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let std =
            (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.02 && (std - 0.5).abs() < 0.02,
            "mean {mean} std {std}"
        );

        let clean: Vec<f32> = (0..20000).map(|i| (i as f32 * 0.05).sin()).collect();
        let mut noisy = clean.clone();
        add_noise_snr(&mut noisy, 10.0, &mut rng(2)).unwrap();
        let p_sig: f64 = clean.iter().map(|&v| (v as f64).powi(2)).sum();
        let p_noise: f64 = clean
            .iter()
            .zip(&noisy)
            .map(|(&a, &b)| ((b - a) as f64).powi(2))
            .sum();
        let snr = 10.0 * (p_sig / p_noise).log10();
        assert!((snr - 10.0).abs() < 0.2, "snr {snr}");
        assert!(add_noise(&mut noisy, -1.0, &mut rng(0)).is_err());
    }

    #[test]
    fn random_crop_keeps_at_least_the_allowed_share() {
        let mut r = rng(5);
        for _ in 0..200 {
            let c = random_crop(1000, 0.25, &mut r).unwrap();
            assert!(c.len() >= 750 && c.end <= 1000, "{c:?}");
        }
        assert_eq!(random_crop(1, 1.0, &mut r).unwrap(), 0..1);
        assert_eq!(random_crop(0, 0.5, &mut r).unwrap(), 0..0);
        assert!(random_crop(10, 1.1, &mut r).is_err());
    }

    #[test]
    fn spec_augment_masks_whole_bands_and_frames_on_every_channel() {
        let (rows, frames) = (16, 40);
        let mut spec: Vec<f32> = (0..2 * rows * frames)
            .map(|i| (i % 7) as f32 + 1.0)
            .collect();
        let cfg = SpecAugmentConfig {
            freq_masks: 2,
            freq_mask_param: MaskParam::Bins(6.0),
            time_masks: 2,
            time_mask_param: MaskParam::Fraction(0.2),
            fill: MaskFill::Value(0.0),
        };
        spec_augment(&mut spec, rows, frames, &cfg, &mut rng(11)).unwrap();
        let masked = |c: usize, r: usize, t: usize| spec[c * rows * frames + r * frames + t] == 0.0;
        let rows_masked: Vec<usize> = (0..rows)
            .filter(|&r| (0..frames).all(|t| masked(0, r, t)))
            .collect();
        let frames_masked: Vec<usize> = (0..frames)
            .filter(|&t| (0..rows).all(|r| masked(0, r, t)))
            .collect();
        assert!(rows_masked.len() <= 10 && frames_masked.len() <= 14);
        assert!(
            !rows_masked.is_empty() || !frames_masked.is_empty(),
            "seed 11 draws a mask"
        );
        for r in 0..rows {
            for t in 0..frames {
                assert_eq!(
                    masked(0, r, t),
                    masked(1, r, t),
                    "same masks on both channels"
                );
                let in_mask = rows_masked.contains(&r) || frames_masked.contains(&t);
                assert_eq!(masked(0, r, t), in_mask, "cell ({r}, {t})");
            }
        }
    }

    #[test]
    fn mean_fill_uses_the_mean_before_masking() {
        let mut spec = vec![1.0, 3.0, 1.0, 3.0];
        let cfg = SpecAugmentConfig {
            freq_masks: 0,
            time_masks: 1,
            time_mask_param: MaskParam::Bins(2.0),
            ..Default::default()
        };
        // Draw until the mask is non-empty, then every masked cell holds 2.
        for seed in 0..20 {
            let mut s = spec.clone();
            spec_augment(&mut s, 2, 2, &cfg, &mut rng(seed)).unwrap();
            if s != spec {
                assert!(s.iter().all(|&v| v == 2.0 || spec.contains(&v)));
                assert!(s.contains(&2.0));
                spec = s;
                break;
            }
        }
        assert!(spec.contains(&2.0), "some seed masks a frame");
    }

    #[test]
    fn invalid_mask_params_are_errors() {
        let cfg = SpecAugmentConfig {
            time_mask_param: MaskParam::Fraction(2.0),
            ..Default::default()
        };
        let err = spec_augment(&mut [0.0; 4], 2, 2, &cfg, &mut rng(0))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid time_mask_param: must be in [0, 1], got 2");
    }
}
