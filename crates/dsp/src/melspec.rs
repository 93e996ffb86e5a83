//! Mel spectrograms and log-mel spectrograms, equal to torchaudio's `MelSpectrogram`
//! (followed by `AmplitudeToDB`) and librosa's `feature.melspectrogram` (+ `power_to_db`).

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::buffer_len_mismatch;
use crate::mel::{MelConfig, MelFilterbank, MelNorm, MelScale};
use crate::stft::{PadMode, Power, StftConfig, StftPlan, StftScratch};
use crate::window::WindowKind;
use crate::{DbConfig, Result, Spectrogram};
use hark_simd::{Kernel, Simd};

/// All parameters of a mel spectrogram, with torchaudio's names and defaults
/// (`torchaudio.transforms.MelSpectrogram`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct MelSpectrogramConfig {
    /// Sample rate of the input in Hz. Default: 16000.
    pub sample_rate: u32,
    /// FFT size in samples. Default: 2048 (librosa; torchaudio's 400 leaves
    /// some of 128 HTK filters empty at 16 kHz, which hark rejects).
    pub n_fft: usize,
    /// Window length in samples. Default: `None` = `n_fft`.
    pub win_length: Option<usize>,
    /// Samples between frames. Default: `None` = `win_length / 2`.
    pub hop_length: Option<usize>,
    /// Lowest filter frequency in Hz. Default: 0.
    pub f_min: f32,
    /// Highest filter frequency in Hz. Default: `None` = `sample_rate / 2`.
    pub f_max: Option<f32>,
    /// Number of mel bands. Default: 128.
    pub n_mels: usize,
    /// Window shape. Default: Hann.
    pub window: WindowKind,
    /// Periodic (true) or symmetric window. Default: true.
    pub window_periodic: bool,
    /// Exponent of the magnitude: 1 magnitude, 2 power. Default: 2.
    pub power: f32,
    /// Divide the STFT by the window's L2 norm. Default: false.
    pub normalized: bool,
    /// Centre frames on `t * hop_length` by padding. Default: true.
    pub center: bool,
    /// Padding with `center`. Default: reflect (librosa >= 0.9 uses constant).
    pub pad_mode: PadMode,
    /// Mel scale. Default: HTK (librosa uses Slaney).
    pub mel_scale: MelScale,
    /// Filter normalisation. Default: none (librosa uses Slaney).
    pub norm: MelNorm,
}

impl Default for MelSpectrogramConfig {
    fn default() -> Self {
        let mel = MelConfig::default();
        let stft = StftConfig {
            n_fft: mel.n_fft,
            ..Default::default()
        };
        Self {
            sample_rate: mel.sample_rate,
            n_fft: stft.n_fft,
            win_length: stft.win_length,
            hop_length: stft.hop_length,
            f_min: mel.f_min,
            f_max: mel.f_max,
            n_mels: mel.n_mels,
            window: stft.window,
            window_periodic: stft.window_periodic,
            power: 2.0,
            normalized: stft.normalized,
            center: stft.center,
            pad_mode: stft.pad_mode,
            mel_scale: mel.mel_scale,
            norm: mel.norm,
        }
    }
}

impl MelSpectrogramConfig {
    /// The STFT part of the configuration.
    pub fn stft(&self) -> StftConfig {
        StftConfig {
            n_fft: self.n_fft,
            win_length: self.win_length,
            hop_length: self.hop_length,
            window: self.window,
            window_periodic: self.window_periodic,
            center: self.center,
            pad_mode: self.pad_mode,
            normalized: self.normalized,
        }
    }

    /// The filterbank part of the configuration.
    pub fn mel(&self) -> MelConfig {
        MelConfig {
            sample_rate: self.sample_rate,
            n_fft: self.n_fft,
            n_mels: self.n_mels,
            f_min: self.f_min,
            f_max: self.f_max,
            mel_scale: self.mel_scale,
            norm: self.norm,
        }
    }
}

/// Reusable buffers for one thread of mel work; make one with [`MelSpectrogram::make_scratch`].
#[derive(Debug, Clone)]
pub struct MelScratch {
    stft: StftScratch,
    /// Power spectra of up to [`BLOCK`] frames, bin-major: `block[k * BLOCK + b]`.
    block: Vec<f32>,
}

/// Frames whose mel bands are computed together.
const BLOCK: usize = crate::mel::BLOCK;

/// What the rows of a [`MelSpectrogram`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bands {
    /// The mel filterbank the configuration describes.
    #[default]
    Mel,
    /// Every STFT bin, `n_fft / 2 + 1` rows (a linear-frequency
    /// spectrogram); the configuration's filterbank fields are unused.
    Linear,
}

/// A planned mel spectrogram: STFT plan and sparse filterbank built once.
/// `Send + Sync`; give each thread its own [`MelScratch`].
#[derive(Debug, Clone)]
pub struct MelSpectrogram {
    stft: StftPlan,
    filterbank: MelFilterbank,
    power: Power,
}

impl MelSpectrogram {
    /// Validates the configuration and builds the plan.
    ///
    /// # Errors
    /// Any invalid STFT, filterbank or `power` parameter, naming the field.
    pub fn new(config: &MelSpectrogramConfig) -> Result<Self> {
        Self::with_bands(config, Bands::Mel)
    }

    /// As [`Self::new`], with rows of the kind `bands` says.
    ///
    /// # Errors
    /// As [`Self::new`]; with [`Bands::Linear`], only the STFT and `power`
    /// are checked.
    pub fn with_bands(config: &MelSpectrogramConfig, bands: Bands) -> Result<Self> {
        let stft = StftPlan::new(&config.stft())?;
        let filterbank = match bands {
            Bands::Mel => MelFilterbank::new(&config.mel())?,
            Bands::Linear => MelFilterbank::identity(stft.n_freqs())?,
        };
        Ok(Self {
            stft,
            filterbank,
            power: Power::new(config.power)?,
        })
    }

    /// The STFT plan.
    pub fn stft(&self) -> &StftPlan {
        &self.stft
    }

    /// The filterbank.
    pub fn filterbank(&self) -> &MelFilterbank {
        &self.filterbank
    }

    /// Number of mel bands (output rows).
    pub fn n_mels(&self) -> usize {
        self.filterbank.n_mels()
    }

    /// Frames produced for `len` samples.
    pub fn n_frames(&self, len: usize) -> usize {
        self.stft.n_frames(len)
    }

    /// Output length for `len` samples: `n_mels * n_frames(len)`.
    pub fn output_len(&self, len: usize) -> usize {
        self.n_mels() * self.n_frames(len)
    }

    /// Allocates the buffers [`Self::process_into`] works in.
    pub fn make_scratch(&self) -> MelScratch {
        MelScratch {
            stft: self.stft.make_scratch(),
            block: vec![0.0; self.stft.n_freqs() * BLOCK],
        }
    }

    /// Mel spectrogram into `out`, row-major `[n_mels, n_frames]`; returns the frame count.
    ///
    /// # Errors
    /// An empty signal, NaN or infinite samples, or a signal too short for the framing.
    ///
    /// # Panics
    /// If `out.len() != self.output_len(signal.len())` or `scratch` is from another plan.
    pub fn process_into(
        &self,
        signal: &[f32],
        out: &mut [f32],
        scratch: &mut MelScratch,
    ) -> Result<usize> {
        let frames = self.stft.validate(signal)?;
        if out.len() != self.n_mels() * frames {
            buffer_len_mismatch("mel output", self.n_mels() * frames, out.len());
        }
        hark_simd::dispatch(FillMel {
            plan: self,
            signal,
            frames,
            out,
            scratch,
        });
        Ok(frames)
    }

    /// The body of [`Self::process_into`] for a validated signal of `frames` frames.
    #[inline(always)]
    fn fill(&self, signal: &[f32], frames: usize, out: &mut [f32], scratch: &mut MelScratch) {
        let MelScratch { stft, block } = scratch;
        for t in (0..frames).step_by(2) {
            let pair = t + 1 < frames;
            // Pairs start at even frames and BLOCK is even, so a pair never
            // straddles two blocks.
            let b = t % BLOCK;
            let cols = (BLOCK, b);
            self.stft
                .power_pair_into(signal, t, self.power, stft, block, cols);
            let done = t + 1 + pair as usize;
            if done.is_multiple_of(BLOCK) || done == frames {
                let t0 = t - b;
                self.filterbank.apply_block(block, done - t0, out, t0);
            }
        }
    }

    /// Mel spectrogram, allocating its output. See [`Self::process_into`].
    ///
    /// # Errors
    /// As [`Self::process_into`].
    pub fn process(&self, signal: &[f32]) -> Result<Spectrogram> {
        // Sized before validation, which `process_into` does; a signal that
        // fails it never reaches the length check.
        let mut out = vec![0.0; self.output_len(signal.len())];
        let frames = self.process_into(signal, &mut out, &mut self.make_scratch())?;
        Ok(Spectrogram::from_vec(out, self.n_mels(), frames))
    }
}

/// [`MelSpectrogram::fill`] as a [`Kernel`].
struct FillMel<'a> {
    plan: &'a MelSpectrogram,
    signal: &'a [f32],
    frames: usize,
    out: &'a mut [f32],
    scratch: &'a mut MelScratch,
}

impl Kernel for FillMel<'_> {
    type Output = ();
    /// Plain loops that the compiler vectorises: the instruction set only
    /// matters through the features they are compiled with.
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        self.plan
            .fill(self.signal, self.frames, self.out, self.scratch);
    }
}

/// [`DbConfig::convert_in_place`] as a [`Kernel`].
struct ToDb<'a> {
    db: &'a DbConfig,
    multiplier: f32,
    values: &'a mut [f32],
}

impl Kernel for ToDb<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        self.db.convert_in_place(self.values, self.multiplier);
    }
}

/// A planned log-mel spectrogram: [`MelSpectrogram`] then dB with `top_db`
/// per spectrogram. The dB multiplier is `20 / power`: 10 for a power
/// spectrogram, 20 for a magnitude one, as torchaudio's `AmplitudeToDB` with
/// the matching `stype`.
#[derive(Debug, Clone)]
pub struct LogMelSpectrogram {
    mel: MelSpectrogram,
    db: DbConfig,
    multiplier: f32,
}

impl LogMelSpectrogram {
    /// Validates both configurations and builds the plan.
    ///
    /// # Errors
    /// Any invalid mel or dB parameter, naming the field.
    pub fn new(mel: &MelSpectrogramConfig, db: &DbConfig) -> Result<Self> {
        Self::with_bands(mel, db, Bands::Mel)
    }

    /// As [`Self::new`], with rows of the kind `bands` says: with
    /// [`Bands::Linear`], a log-power (dB) linear-frequency spectrogram.
    ///
    /// # Errors
    /// As [`MelSpectrogram::with_bands`], or an invalid dB parameter.
    pub fn with_bands(mel: &MelSpectrogramConfig, db: &DbConfig, bands: Bands) -> Result<Self> {
        db.validate()?;
        Ok(Self {
            mel: MelSpectrogram::with_bands(mel, bands)?,
            db: *db,
            multiplier: 20.0 / mel.power,
        })
    }

    /// The mel stage.
    pub fn mel(&self) -> &MelSpectrogram {
        &self.mel
    }

    /// Number of mel bands (output rows).
    pub fn n_mels(&self) -> usize {
        self.mel.n_mels()
    }

    /// Frames produced for `len` samples.
    pub fn n_frames(&self, len: usize) -> usize {
        self.mel.n_frames(len)
    }

    /// Output length for `len` samples.
    pub fn output_len(&self, len: usize) -> usize {
        self.mel.output_len(len)
    }

    /// Allocates the buffers [`Self::process_into`] works in.
    pub fn make_scratch(&self) -> MelScratch {
        self.mel.make_scratch()
    }

    fn to_db(&self, values: &mut [f32]) {
        hark_simd::dispatch(ToDb {
            db: &self.db,
            multiplier: self.multiplier,
            values,
        });
    }

    /// Log-mel spectrogram in dB into `out`, row-major `[n_mels, n_frames]`;
    /// returns the frame count. Allocation-free.
    ///
    /// # Errors
    /// As [`MelSpectrogram::process_into`].
    ///
    /// # Panics
    /// As [`MelSpectrogram::process_into`].
    pub fn process_into(
        &self,
        signal: &[f32],
        out: &mut [f32],
        scratch: &mut MelScratch,
    ) -> Result<usize> {
        let frames = self.mel.process_into(signal, out, scratch)?;
        self.to_db(out);
        Ok(frames)
    }

    /// Log-mel spectrogram, allocating its output. See [`Self::process_into`].
    ///
    /// # Errors
    /// As [`Self::process_into`].
    pub fn process(&self, signal: &[f32]) -> Result<Spectrogram> {
        let mut out = self.mel.process(signal)?;
        self.db
            .convert_in_place(out.as_mut_slice(), self.multiplier);
        Ok(out)
    }

    /// The log-mel of a complex STFT made with this plan's STFT (for example
    /// one stretched by [`crate::phase_vocoder`]): `|X|^power`, mel, dB.
    ///
    /// # Errors
    /// A spectrogram whose rows are not this plan's `n_freqs`, or one
    /// without frames.
    pub fn process_complex(&self, spec: &Spectrogram<crate::Complex32>) -> Result<Spectrogram> {
        let n_freqs = self.mel.stft.n_freqs();
        if spec.rows() != n_freqs || spec.frames() == 0 {
            return Err(crate::error::invalid(
                "spectrogram",
                format!(
                    "must be {n_freqs} x (frames > 0), got {} x {}",
                    spec.rows(),
                    spec.frames()
                ),
            ));
        }
        let mut power: Vec<f32> = spec
            .as_slice()
            .iter()
            .map(|c| c.re * c.re + c.im * c.im)
            .collect();
        match self.mel.power {
            crate::stft::Power::Energy => {}
            crate::stft::Power::Magnitude => power.iter_mut().for_each(|e| *e = e.sqrt()),
            crate::stft::Power::Other(half) => power.iter_mut().for_each(|e| *e = e.powf(half)),
        }
        let mut out =
            self.mel
                .filterbank
                .apply(&Spectrogram::from_vec(power, n_freqs, spec.frames()));
        self.to_db(out.as_mut_slice());
        Ok(out)
    }

    /// Log-mel spectrograms of many clips, spread over rayon's thread pool
    /// with one scratch per worker; results are in input order.
    #[cfg(feature = "parallel")]
    pub fn process_batch(&self, clips: &[&[f32]]) -> Vec<Result<Spectrogram>> {
        use rayon::prelude::*;
        clips
            .par_iter()
            .map_init(
                || self.make_scratch(),
                |scratch, clip| {
                    let mut out = vec![0.0; self.output_len(clip.len())];
                    let frames = self.process_into(clip, &mut out, scratch)?;
                    Ok(Spectrogram::from_vec(out, self.n_mels(), frames))
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, sr: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / sr as f32).sin())
            .collect()
    }

    #[test]
    fn a_sine_lands_in_the_band_whose_peak_is_nearest_its_frequency() {
        let cfg = MelSpectrogramConfig {
            sample_rate: 16000,
            n_fft: 1024,
            hop_length: Some(256),
            n_mels: 40,
            ..Default::default()
        };
        let mel = MelSpectrogram::new(&cfg).unwrap();
        for freq in [250.0, 1000.0, 3000.0, 6000.0] {
            let spec = mel.process(&sine(freq, 16000, 16000)).unwrap();
            let t = spec.frames() / 2;
            let loudest = (0..40)
                .max_by(|&a, &b| spec.get(a, t).total_cmp(spec.get(b, t)))
                .unwrap();
            // Band m peaks at the (m + 1)-th of n_mels + 2 points equally spaced in mel.
            let m_max = crate::hz_to_mel(8000.0, MelScale::Htk);
            let centre = |m: usize| crate::mel_to_hz(m_max * (m + 1) as f64 / 41.0, MelScale::Htk);
            let nearest = (0..40)
                .min_by(|&a, &b| {
                    (centre(a) - freq as f64)
                        .abs()
                        .total_cmp(&(centre(b) - freq as f64).abs())
                })
                .unwrap();
            assert_eq!(loudest, nearest, "{freq} Hz");
        }
    }

    fn logmel_32() -> LogMelSpectrogram {
        let cfg = MelSpectrogramConfig {
            n_mels: 32,
            ..Default::default()
        };
        LogMelSpectrogram::new(&cfg, &DbConfig::default()).unwrap()
    }

    #[test]
    fn process_into_matches_process_and_reuses_scratch() {
        let logmel = logmel_32();
        let mut scratch = logmel.make_scratch();
        for len in [500, 8000, 12345] {
            let x = sine(440.0, 16000, len);
            let mut out = vec![0.0; logmel.output_len(len)];
            let frames = logmel.process_into(&x, &mut out, &mut scratch).unwrap();
            let spec = logmel.process(&x).unwrap();
            assert_eq!(frames, spec.frames());
            assert_eq!(out, spec.as_slice());
        }
    }

    #[cfg(feature = "parallel")]
    #[test]
    fn batch_equals_one_at_a_time_and_reports_each_bad_clip() {
        let logmel = logmel_32();
        let clips: Vec<Vec<f32>> = (0..6)
            .map(|i| sine(200.0 * (i + 1) as f32, 16000, 4000 + i * 100))
            .collect();
        let mut refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        refs.insert(2, &[]);
        let out = logmel.process_batch(&refs);
        assert_eq!(out.len(), 7);
        assert_eq!(out[2], Err(crate::DspError::EmptySignal));
        for (clip, got) in refs.iter().zip(&out).filter(|(c, _)| !c.is_empty()) {
            assert_eq!(got.as_ref().unwrap(), &logmel.process(clip).unwrap());
        }
    }

    #[test]
    fn the_baseline_kernels_equal_the_dispatched_ones() {
        // CI machines take the AVX2 path; this runs the x86-64 baseline code too.
        let cfg = MelSpectrogramConfig {
            n_fft: 512,
            n_mels: 40,
            power: 1.0,
            ..Default::default()
        };
        let logmel = LogMelSpectrogram::new(&cfg, &DbConfig::default()).unwrap();
        let x = sine(523.0, 16000, 7001);
        let dispatched = logmel.process(&x).unwrap();
        let frames = logmel.n_frames(x.len());
        let mut baseline = vec![0.0; logmel.output_len(x.len())];
        let plan = &logmel.mel;
        let scratch = &mut plan.make_scratch();
        FillMel {
            plan,
            signal: &x,
            frames,
            out: &mut baseline,
            scratch,
        }
        .run(hark_simd::Portable);
        ToDb {
            db: &logmel.db,
            multiplier: logmel.multiplier,
            values: &mut baseline,
        }
        .run(hark_simd::Portable);
        for (a, b) in dispatched.as_slice().iter().zip(&baseline) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn the_log_mel_of_a_complex_stft_equals_the_direct_one() {
        for power in [1.0, 2.0, 1.5] {
            let cfg = MelSpectrogramConfig {
                n_mels: 32,
                power,
                ..Default::default()
            };
            let logmel = LogMelSpectrogram::new(&cfg, &DbConfig::default()).unwrap();
            let x = sine(700.0, 16000, 9000);
            let complex = logmel.mel().stft().complex(&x).unwrap();
            let via = logmel.process_complex(&complex).unwrap();
            let direct = logmel.process(&x).unwrap();
            for (a, b) in via.as_slice().iter().zip(direct.as_slice()) {
                assert!((a - b).abs() < 1e-3, "power {power}: {a} vs {b}");
            }
        }
        let logmel = logmel_32();
        let wrong = Spectrogram::from_vec(vec![crate::Complex32::default(); 6], 3, 2);
        assert!(logmel.process_complex(&wrong).is_err());
    }

    #[test]
    fn non_finite_input_never_reaches_the_output() {
        let mel = MelSpectrogram::new(&MelSpectrogramConfig::default()).unwrap();
        let mut x = sine(440.0, 16000, 4000);
        x[100] = f32::NAN;
        assert_eq!(
            mel.process(&x).unwrap_err(),
            crate::DspError::NonFinite {
                count: 1,
                len: 4000
            }
        );
    }

    #[test]
    fn plans_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MelSpectrogram>();
        check::<LogMelSpectrogram>();
        check::<StftPlan>();
    }
}
