//! Time stretching by phase vocoder on a complex STFT, equal to
//! `torchaudio.functional.phase_vocoder` / `torchaudio.transforms.TimeStretch`.

use std::f64::consts::PI;

use crate::error::invalid;
use crate::{Complex32, Result, Spectrogram};

/// Speeds a complex spectrogram `[n_freqs, frames]` up by `rate` (> 1 shorter,
/// < 1 longer), keeping pitch: output frame `t` reads input position
/// `t * rate`, interpolating magnitudes linearly and advancing each bin's
/// phase by its measured instantaneous frequency. `hop_length` is the STFT's.
///
/// There are `ceil(frames / rate)` output frames, as torchaudio gives.
///
/// # Errors
/// A `rate` that is not finite and > 0, or an empty spectrogram.
pub fn phase_vocoder(
    spec: &Spectrogram<Complex32>,
    rate: f64,
    hop_length: usize,
) -> Result<Spectrogram<Complex32>> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(invalid(
            "rate",
            format!("must be finite and > 0, got {rate}"),
        ));
    }
    let (n_freqs, frames) = spec.shape();
    if n_freqs == 0 || frames == 0 {
        return Err(invalid(
            "spectrogram",
            format!("must be non-empty, got {n_freqs}x{frames}"),
        ));
    }
    // torch.arange(0, frames, rate): the count is computed in double.
    let out_frames = (frames as f64 / rate).ceil() as usize;
    let steps: Vec<f64> = (0..out_frames).map(|t| t as f64 * rate).collect();
    let mut out = vec![Complex32::default(); n_freqs * out_frames];
    let at = |row: &[Complex32], i: usize| row.get(i).copied().unwrap_or_default();
    for k in 0..n_freqs {
        let row = spec.row(k);
        // Expected phase advance of bin k over one hop: pi * hop * k / (n_freqs - 1).
        let advance = if n_freqs > 1 {
            PI * hop_length as f64 * k as f64 / (n_freqs - 1) as f64
        } else {
            0.0
        };
        let mut phase = arg(row[0]);
        let dst = &mut out[k * out_frames..(k + 1) * out_frames];
        for (o, &step) in dst.iter_mut().zip(&steps) {
            let i = step.floor() as usize;
            let alpha = step - i as f64;
            let (c0, c1) = (at(row, i), at(row, i + 1));
            let mag = alpha * c1.norm() as f64 + (1.0 - alpha) * c0.norm() as f64;
            *o = Complex32::from_polar(mag as f32, phase as f32);
            let mut delta = arg(c1) - arg(c0) - advance;
            delta -= 2.0 * PI * (delta / (2.0 * PI)).round_ties_even();
            phase += delta + advance;
        }
    }
    Ok(Spectrogram::from_vec(out, n_freqs, out_frames))
}

fn arg(c: Complex32) -> f64 {
    (c.im as f64).atan2(c.re as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_spec(frames: usize) -> Spectrogram<Complex32> {
        // One bin whose phase advances exactly as a stationary tone's would.
        let adv = std::f32::consts::PI * 4.0 / 2.0;
        let row: Vec<Complex32> = (0..frames)
            .map(|t| Complex32::from_polar(2.0, adv * t as f32))
            .collect();
        let mut data = vec![Complex32::default(); frames];
        data.extend(row);
        data.extend(vec![Complex32::new(1.0, 0.0); frames]);
        Spectrogram::from_vec(data, 3, frames)
    }

    #[test]
    fn rate_one_keeps_every_frame_but_the_padded_end() {
        let spec = tone_spec(10);
        let out = phase_vocoder(&spec, 1.0, 4).unwrap();
        assert_eq!(out.shape(), (3, 10));
        for (a, b) in spec.as_slice().iter().zip(out.as_slice()) {
            assert!((a - b).norm() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn output_length_is_frames_over_rate_rounded_up() {
        let spec = tone_spec(10);
        assert_eq!(phase_vocoder(&spec, 2.0, 4).unwrap().frames(), 5);
        assert_eq!(phase_vocoder(&spec, 0.5, 4).unwrap().frames(), 20);
        assert_eq!(phase_vocoder(&spec, 3.0, 4).unwrap().frames(), 4);
    }

    #[test]
    fn a_stationary_tone_keeps_its_magnitude_when_stretched() {
        let out = phase_vocoder(&tone_spec(20), 0.7, 4).unwrap();
        // The last input frame interpolates towards the zero padding.
        for t in 0..out.frames() - 2 {
            assert!((out.get(1, t).norm() - 2.0).abs() < 1e-5);
        }
    }

    #[test]
    fn bad_rates_are_errors() {
        let spec = tone_spec(4);
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                phase_vocoder(&spec, rate, 4)
                    .unwrap_err()
                    .to_string()
                    .starts_with("invalid rate")
            );
        }
    }
}
