//! Mel scales and triangular mel filterbanks, equal to `torchaudio.functional.melscale_fbanks`
//! and `librosa.filters.mel`.
//!
//! # Conventions
//! - HTK scale: `mel = 2595 log10(1 + f / 700)`.
//! - Slaney scale (Auditory Toolbox, librosa's default): linear below 1 kHz at
//!   200/3 Hz per mel, logarithmic above with 27 mels per factor 6.4.
//! - Filters: `n_mels + 2` points equally spaced in mel between `f_min` and
//!   `f_max`; filter `m` rises from point `m` to `m + 1` and falls to `m + 2`,
//!   evaluated at the FFT bin frequencies. As in torchaudio, the points and bin
//!   frequencies (`linspace(0, sample_rate // 2, n_freqs)`) are float32, so
//!   weights equal torchaudio's to float rounding and librosa's (float64) to
//!   about 1e-5.
//! - Slaney norm divides filter `m` by half its width in Hz, `(f[m+2] - f[m]) / 2`,
//!   so every filter has about the same area.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::error::{buffer_len_mismatch, invalid};

/// The frequency-to-mel mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MelScale {
    /// `2595 log10(1 + f / 700)`: torchaudio's default, librosa `htk=True`.
    #[default]
    Htk,
    /// Slaney's Auditory Toolbox scale: librosa's default.
    Slaney,
}

/// Normalisation of each triangular filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MelNorm {
    /// Peak 1 (torchaudio's default `norm=None`).
    #[default]
    None,
    /// Area-normalised: divided by half the filter's width in Hz (librosa's default).
    Slaney,
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Converts a frequency in Hz to mels.
pub fn hz_to_mel(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney if hz >= SLANEY_MIN_LOG_HZ => {
            SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
        }
        MelScale::Slaney => hz / SLANEY_F_SP,
    }
}

/// Converts mels to a frequency in Hz; the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney if mel >= SLANEY_MIN_LOG_MEL => {
            SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
        }
        MelScale::Slaney => SLANEY_F_SP * mel,
    }
}

/// Frames whose mel bands [`MelFilterbank::apply_block`] computes together.
pub(crate) const BLOCK: usize = 8;

/// `torch.linspace(start, end, steps)` in float32, bit for bit: the first half
/// counts up from `start`, the second down from `end`, each point one fused
/// multiply-add of a float32 step (as torch's CPU kernel compiles).
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// [`mel_to_hz`] with torchaudio's float32 operation order.
fn mel_to_hz_f32(mel: f32, scale: MelScale) -> f32 {
    match scale {
        MelScale::Htk => 700.0 * (10f32.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney if mel >= SLANEY_MIN_LOG_MEL as f32 => {
            SLANEY_MIN_LOG_HZ as f32
                * (slaney_logstep() as f32 * (mel - SLANEY_MIN_LOG_MEL as f32)).exp()
        }
        MelScale::Slaney => SLANEY_F_SP as f32 * mel,
    }
}

/// The parameters of a mel filterbank, named as in torchaudio.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct MelConfig {
    /// Sample rate of the analysed signal in Hz. Default: 16000 (torchaudio).
    pub sample_rate: u32,
    /// FFT size the filters apply to; they span `n_fft / 2 + 1` bins.
    /// Default: 2048 (librosa; torchaudio's 400 leaves some of 128 HTK filters
    /// empty at 16 kHz, which hark rejects).
    pub n_fft: usize,
    /// Number of mel bands. Default: 128.
    pub n_mels: usize,
    /// Lowest frequency in Hz. Default: 0.
    pub f_min: f32,
    /// Highest frequency in Hz. Default: `None` = `sample_rate / 2`.
    pub f_max: Option<f32>,
    /// Mel scale. Default: HTK.
    pub mel_scale: MelScale,
    /// Filter normalisation. Default: none.
    pub norm: MelNorm,
}

impl Default for MelConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16000,
            n_fft: 2048,
            n_mels: 128,
            f_min: 0.0,
            f_max: None,
            mel_scale: MelScale::Htk,
            norm: MelNorm::None,
        }
    }
}

/// A triangular mel filterbank stored sparsely: each filter keeps only the
/// bins where it is non-zero, so applying it costs about `2 * n_freqs`
/// multiply-adds per frame instead of `n_mels * n_freqs`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    n_freqs: usize,
    /// First bin of each filter.
    starts: Vec<usize>,
    /// Filter `m`'s weights are `weights[offsets[m]..offsets[m + 1]]`.
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl MelFilterbank {
    /// Builds the filterbank.
    ///
    /// # Errors
    /// A sample rate, `n_fft` or `n_mels` of 0, `f_min < 0`, `f_max` above the
    /// Nyquist frequency, `f_min >= f_max`, or so many mels for the FFT size
    /// that a filter falls between two bins and is empty (torchaudio only warns).
    pub fn new(config: &MelConfig) -> Result<Self> {
        let sr = config.sample_rate;
        if sr == 0 {
            return Err(invalid("sample_rate", "must be > 0, got 0"));
        }
        if config.n_fft == 0 {
            return Err(invalid("n_fft", "must be > 0, got 0"));
        }
        if config.n_mels == 0 {
            return Err(invalid("n_mels", "must be > 0, got 0"));
        }
        let nyquist = sr as f32 / 2.0;
        let f_max = config.f_max.unwrap_or(nyquist);
        let f_min = config.f_min;
        if !(f_min.is_finite() && f_min >= 0.0) {
            return Err(invalid("f_min", format!("must be >= 0, got {f_min}")));
        }
        if !(f_max.is_finite() && f_max <= nyquist) {
            return Err(invalid(
                "f_max",
                format!("must be <= sample_rate / 2 ({nyquist}), got {f_max}"),
            ));
        }
        if f_min >= f_max {
            return Err(invalid(
                "f_min",
                format!("must be < f_max ({f_max}), got {f_min}"),
            ));
        }

        let n_freqs = config.n_fft / 2 + 1;
        let n_mels = config.n_mels;
        // torchaudio builds the bank in float32 from these points; doing the same
        // keeps every weight within float rounding of its output.
        let scale = config.mel_scale;
        let m_min = hz_to_mel(f_min as f64, scale) as f32;
        let m_max = hz_to_mel(f_max as f64, scale) as f32;
        let f_pts: Vec<f32> = linspace_f32(m_min, m_max, n_mels + 2)
            .into_iter()
            .map(|m| mel_to_hz_f32(m, scale))
            .collect();
        let all_freqs = linspace_f32(0.0, (sr / 2) as f32, n_freqs);

        let mut starts = Vec::with_capacity(n_mels);
        let mut offsets = Vec::with_capacity(n_mels + 1);
        let mut weights = Vec::new();
        offsets.push(0);
        for m in 0..n_mels {
            let (lo, mid, hi) = (f_pts[m], f_pts[m + 1], f_pts[m + 2]);
            let enorm = match config.norm {
                MelNorm::None => 1.0,
                MelNorm::Slaney => 2.0 / (hi - lo),
            };
            let mut start = None;
            for (k, &f) in all_freqs.iter().enumerate() {
                let up = (f - lo) / (mid - lo);
                let down = (hi - f) / (hi - mid);
                let w = up.min(down).max(0.0) * enorm;
                if w > 0.0 {
                    // Filters are convex, so the non-zero bins are contiguous.
                    start.get_or_insert(k);
                    weights.push(w);
                }
            }
            let Some(start) = start else {
                return Err(invalid(
                    "n_mels",
                    format!(
                        "{n_mels} mel bands are too many for n_fft {} at {sr} Hz \
                         ({f_min}..{f_max} Hz): filter {m} covers no frequency bin",
                        config.n_fft
                    ),
                ));
            };
            starts.push(start);
            offsets.push(weights.len());
        }
        Ok(Self {
            n_freqs,
            starts,
            offsets,
            weights,
        })
    }

    /// A "filterbank" that passes each of `n_freqs` STFT bins through as its
    /// own band: a linear-frequency spectrogram then takes the mel path
    /// unchanged (blocked STFT, streaming, stretching, dB).
    ///
    /// # Errors
    /// `n_freqs` of 0.
    pub fn identity(n_freqs: usize) -> Result<Self> {
        if n_freqs == 0 {
            return Err(invalid("n_freqs", "must be > 0, got 0"));
        }
        Ok(Self {
            n_freqs,
            starts: (0..n_freqs).collect(),
            offsets: (0..=n_freqs).collect(),
            weights: vec![1.0; n_freqs],
        })
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.starts.len()
    }

    /// Number of frequency bins each filter spans: `n_fft / 2 + 1`.
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// Non-zero weights stored.
    pub fn nnz(&self) -> usize {
        self.weights.len()
    }

    /// Mel band energies of one frame: `out[m] = sum_k fb[m, k] * spectrum[k]`.
    ///
    /// # Panics
    /// If `spectrum.len() != n_freqs` or `out.len() != n_mels`.
    #[inline]
    pub fn apply_frame(&self, spectrum: &[f32], out: &mut [f32]) {
        if spectrum.len() != self.n_freqs {
            buffer_len_mismatch("mel input frame", self.n_freqs, spectrum.len());
        }
        if out.len() != self.n_mels() {
            buffer_len_mismatch("mel output frame", self.n_mels(), out.len());
        }
        for (m, o) in out.iter_mut().enumerate() {
            *o = self.band(m, spectrum);
        }
    }

    /// Energy of band `m` in a spectrum frame of `n_freqs` values.
    #[inline]
    fn band(&self, m: usize, spectrum: &[f32]) -> f32 {
        let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
        w.iter()
            .zip(&spectrum[self.starts[m]..])
            .map(|(a, b)| a * b)
            .sum()
    }

    /// Mel bands of a block of `width <= BLOCK` frames held bin-major
    /// (`block[k * BLOCK + b]`), written to columns `t0..t0 + width` of the
    /// row-major `[n_mels, frames]` output. Each weight multiplies a
    /// contiguous run of frames, so the inner loop is a vector multiply-add.
    #[inline(always)]
    pub(crate) fn apply_block(&self, block: &[f32], width: usize, out: &mut [f32], t0: usize) {
        let frames = out.len() / self.n_mels();
        for m in 0..self.n_mels() {
            let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
            let cols = block[self.starts[m] * BLOCK..].chunks_exact(BLOCK);
            let mut acc = [0.0f32; BLOCK];
            for (&wk, col) in w.iter().zip(cols) {
                for (a, &p) in acc.iter_mut().zip(col) {
                    *a += wk * p;
                }
            }
            out[m * frames + t0..][..width].copy_from_slice(&acc[..width]);
        }
    }

    /// Applies the filterbank to a `[n_freqs, frames]` spectrogram, giving `[n_mels, frames]`.
    ///
    /// # Panics
    /// If `spectrogram.rows() != n_freqs`.
    pub fn apply(&self, spectrogram: &crate::Spectrogram) -> crate::Spectrogram {
        if spectrogram.rows() != self.n_freqs {
            buffer_len_mismatch("spectrogram rows", self.n_freqs, spectrogram.rows());
        }
        let frames = spectrogram.frames();
        let mut out = vec![0.0; self.n_mels() * frames];
        for (m, row) in out
            .chunks_exact_mut(frames.max(1))
            .enumerate()
            .take(self.n_mels())
        {
            let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
            for (i, &wk) in w.iter().enumerate() {
                let src = spectrogram.row(self.starts[m] + i);
                for (o, &x) in row.iter_mut().zip(src) {
                    *o += wk * x;
                }
            }
        }
        crate::Spectrogram::from_vec(out, self.n_mels(), frames)
    }

    /// The dense `[n_mels, n_freqs]` matrix, librosa's orientation
    /// (torchaudio's `melscale_fbanks` returns its transpose).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.n_mels() * self.n_freqs];
        for m in 0..self.n_mels() {
            let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
            let row = &mut dense[m * self.n_freqs..];
            row[self.starts[m]..self.starts[m] + w.len()].copy_from_slice(w);
        }
        dense
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_trip_and_agree_at_reference_points() {
        for scale in [MelScale::Htk, MelScale::Slaney] {
            for hz in [0.0, 60.0, 700.0, 999.0, 1000.0, 4000.0, 22050.0] {
                let back = mel_to_hz(hz_to_mel(hz, scale), scale);
                assert!((back - hz).abs() < 1e-9 * hz.max(1.0), "{scale:?} {hz}");
            }
        }
        assert!((hz_to_mel(700.0, MelScale::Htk) - 2595.0 * 2f64.log10()).abs() < 1e-9);
        assert!((hz_to_mel(1000.0, MelScale::Slaney) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(6400.0, MelScale::Slaney) - 42.0).abs() < 1e-9);
    }

    #[test]
    fn sparse_filters_equal_their_dense_form() {
        let fb = MelFilterbank::new(&MelConfig {
            sample_rate: 8000,
            n_fft: 256,
            n_mels: 20,
            ..Default::default()
        })
        .unwrap();
        let dense = fb.to_dense();
        let spectrum: Vec<f32> = (0..129).map(|k| (k as f32 * 0.3).sin().abs()).collect();
        let mut out = vec![0.0; 20];
        fb.apply_frame(&spectrum, &mut out);
        for m in 0..20 {
            let want: f32 = (0..129).map(|k| dense[m * 129 + k] * spectrum[k]).sum();
            assert!((out[m] - want).abs() < 1e-5);
        }
        assert!(
            fb.nnz() < 2 * 129,
            "about two filters per bin, got {}",
            fb.nnz()
        );
    }

    #[test]
    fn too_many_mels_is_an_error_naming_the_empty_filter() {
        let err = MelFilterbank::new(&MelConfig {
            sample_rate: 16000,
            n_fft: 64,
            n_mels: 64,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid n_mels: 64 mel bands are too many"),
            "{err}"
        );
        assert!(err.contains("filter 0 covers no frequency bin"), "{err}");
    }

    #[test]
    fn bad_frequency_ranges_are_errors() {
        let err = |cfg: MelConfig| MelFilterbank::new(&cfg).unwrap_err().to_string();
        assert_eq!(
            err(MelConfig {
                f_max: Some(8001.0),
                ..Default::default()
            }),
            "invalid f_max: must be <= sample_rate / 2 (8000), got 8001"
        );
        assert_eq!(
            err(MelConfig {
                f_min: 500.0,
                f_max: Some(500.0),
                ..Default::default()
            }),
            "invalid f_min: must be < f_max (500), got 500"
        );
        assert_eq!(
            err(MelConfig {
                f_min: -1.0,
                ..Default::default()
            }),
            "invalid f_min: must be >= 0, got -1"
        );
        assert_eq!(
            err(MelConfig {
                sample_rate: 0,
                ..Default::default()
            }),
            "invalid sample_rate: must be > 0, got 0"
        );
    }
}
