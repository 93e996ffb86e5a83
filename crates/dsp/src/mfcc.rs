//! Mel-frequency cepstral coefficients: an orthonormal DCT-II of the log-mel,
//! equal to `torchaudio.transforms.MFCC(norm="ortho")` and `librosa.feature.mfcc`.

use crate::error::{buffer_len_mismatch, invalid};
use crate::{DbConfig, LogMelSpectrogram, MelScratch, MelSpectrogramConfig, Result, Spectrogram};

/// Reusable buffers for [`Mfcc::process_into`].
#[derive(Debug, Clone)]
pub struct MfccScratch {
    mel: MelScratch,
    logmel: Vec<f32>,
}

/// A planned MFCC: a [`LogMelSpectrogram`] followed by the first `n_mfcc` rows
/// of the orthonormal DCT-II over the mel axis.
#[derive(Debug, Clone)]
pub struct Mfcc {
    logmel: LogMelSpectrogram,
    /// `[n_mfcc, n_mels]`, row `k` is `sqrt(2 / M) cos(pi k (m + 0.5) / M)`, row 0 scaled by `1 / sqrt(2)`.
    dct: Vec<f32>,
    n_mfcc: usize,
}

impl Mfcc {
    /// Builds the log-mel plan and the DCT matrix. torchaudio's MFCC uses
    /// `DbConfig::default()` (power dB, `top_db` 80) and `n_mfcc` 40.
    ///
    /// # Errors
    /// An invalid mel or dB parameter, or `n_mfcc` of 0 or above `n_mels`.
    pub fn new(mel: &MelSpectrogramConfig, db: &DbConfig, n_mfcc: usize) -> Result<Self> {
        if n_mfcc == 0 || n_mfcc > mel.n_mels {
            return Err(invalid(
                "n_mfcc",
                format!("must be in 1..=n_mels ({}), got {n_mfcc}", mel.n_mels),
            ));
        }
        let logmel = LogMelSpectrogram::new(mel, db)?;
        let n_mels = mel.n_mels;
        let scale = (2.0 / n_mels as f64).sqrt();
        let dct = (0..n_mfcc)
            .flat_map(|k| {
                (0..n_mels).map(move |m| {
                    let c =
                        (std::f64::consts::PI * k as f64 * (m as f64 + 0.5) / n_mels as f64).cos();
                    let norm = if k == 0 {
                        std::f64::consts::FRAC_1_SQRT_2
                    } else {
                        1.0
                    };
                    (scale * norm * c) as f32
                })
            })
            .collect();
        Ok(Self {
            logmel,
            dct,
            n_mfcc,
        })
    }

    /// The log-mel stage.
    pub fn logmel(&self) -> &LogMelSpectrogram {
        &self.logmel
    }

    /// Number of coefficients (output rows).
    pub fn n_mfcc(&self) -> usize {
        self.n_mfcc
    }

    /// Frames produced for `len` samples.
    pub fn n_frames(&self, len: usize) -> usize {
        self.logmel.n_frames(len)
    }

    /// Allocates the buffers [`Self::process_into`] works in.
    pub fn make_scratch(&self) -> MfccScratch {
        MfccScratch {
            mel: self.logmel.make_scratch(),
            logmel: Vec::new(),
        }
    }

    /// MFCCs into `out`, row-major `[n_mfcc, n_frames]`; returns the frame count.
    /// Allocation-free once `scratch` has seen a signal this long.
    ///
    /// # Errors
    /// As [`LogMelSpectrogram::process_into`].
    ///
    /// # Panics
    /// If `out.len() != n_mfcc * n_frames(signal.len())`.
    pub fn process_into(
        &self,
        signal: &[f32],
        out: &mut [f32],
        scratch: &mut MfccScratch,
    ) -> Result<usize> {
        let frames = self.logmel.n_frames(signal.len());
        if frames > 0 && out.len() != self.n_mfcc * frames {
            buffer_len_mismatch("mfcc output", self.n_mfcc * frames, out.len());
        }
        scratch
            .logmel
            .resize(self.logmel.output_len(signal.len()), 0.0);
        let frames = self
            .logmel
            .process_into(signal, &mut scratch.logmel, &mut scratch.mel)?;
        self.dct_into(&scratch.logmel, frames, out);
        Ok(frames)
    }

    /// The DCT step alone: MFCCs `[n_mfcc, frames]` of a log-mel
    /// `[n_mels, frames]` made (and dB-clamped) elsewhere, as a stream does
    /// once it knows a window's peak.
    ///
    /// # Panics
    /// If `logmel.len() != n_mels * frames` or `out.len() != n_mfcc * frames`.
    pub fn dct_into(&self, logmel: &[f32], frames: usize, out: &mut [f32]) {
        let n_mels = self.logmel.n_mels();
        if logmel.len() != n_mels * frames {
            buffer_len_mismatch("mfcc log-mel input", n_mels * frames, logmel.len());
        }
        if out.len() != self.n_mfcc * frames {
            buffer_len_mismatch("mfcc output", self.n_mfcc * frames, out.len());
        }
        out.fill(0.0);
        for (k, row) in out.chunks_exact_mut(frames.max(1)).enumerate() {
            for (m, &d) in self.dct[k * n_mels..(k + 1) * n_mels].iter().enumerate() {
                let src = &logmel[m * frames..(m + 1) * frames];
                for (o, &x) in row.iter_mut().zip(src) {
                    *o += d * x;
                }
            }
        }
    }

    /// MFCCs, allocating the output. See [`Self::process_into`].
    ///
    /// # Errors
    /// As [`Self::process_into`].
    pub fn process(&self, signal: &[f32]) -> Result<Spectrogram> {
        let mut out = vec![0.0; self.n_mfcc * self.n_frames(signal.len())];
        let frames = self.process_into(signal, &mut out, &mut self.make_scratch())?;
        Ok(Spectrogram::from_vec(out, self.n_mfcc, frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_rows_are_orthonormal() {
        let cfg = MelSpectrogramConfig {
            n_mels: 16,
            ..Default::default()
        };
        let mfcc = Mfcc::new(&cfg, &DbConfig::default(), 16).unwrap();
        for a in 0..16 {
            for b in 0..16 {
                let dot: f32 = (0..16)
                    .map(|m| mfcc.dct[a * 16 + m] * mfcc.dct[b * 16 + m])
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "rows {a}, {b}: {dot}");
            }
        }
    }

    #[test]
    fn the_dct_of_a_separate_log_mel_equals_the_whole_plan() {
        let cfg = MelSpectrogramConfig::default();
        let mfcc = Mfcc::new(&cfg, &DbConfig::default(), 20).unwrap();
        let signal: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.03).sin()).collect();
        let logmel = mfcc.logmel().process(&signal).unwrap();
        let mut out = vec![0.0; 20 * logmel.frames()];
        mfcc.dct_into(logmel.as_slice(), logmel.frames(), &mut out);
        assert_eq!(out, mfcc.process(&signal).unwrap().into_vec());
    }

    #[test]
    fn n_mfcc_out_of_range_is_an_error() {
        let cfg = MelSpectrogramConfig {
            n_mels: 16,
            ..Default::default()
        };
        let err = Mfcc::new(&cfg, &DbConfig::default(), 17)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid n_mfcc: must be in 1..=n_mels (16), got 17");
        assert!(Mfcc::new(&cfg, &DbConfig::default(), 0).is_err());
    }

    #[test]
    fn bad_signal_is_an_error_not_a_panic() {
        let mfcc = Mfcc::new(&MelSpectrogramConfig::default(), &DbConfig::default(), 13).unwrap();
        assert_eq!(mfcc.process(&[]).unwrap_err(), crate::DspError::EmptySignal);
    }
}
