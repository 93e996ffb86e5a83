//! The per-clip feature pipeline: decode, channels, resample, fixed length,
//! features (log-mel, linear spectrogram or MFCC), giving an f32 buffer
//! `[channels, rows, frames]`.

use std::path::Path;

use hark_dsp::{
    Bands, DbConfig, LogMelSpectrogram, MelSpectrogramConfig, Mfcc, Placement, ResamplerCache,
    Spectrogram, fix_length, mix_down, phase_vocoder, to_channels,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::Example;
use crate::error::{DataError, Result};

/// Everything that decides a clip's cached features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Output channels: 1 mixes down to mono (the mean); more keeps a file
    /// with that many channels and duplicates mono (seed 001 uses 2). Default: 1.
    pub channels: usize,
    /// Clip length in seconds after resampling; `None` keeps each clip's
    /// length (variable-length batches). Default: 4.
    pub duration: Option<f64>,
    /// Where a clip goes when padded or trimmed to `duration`. `random` draws
    /// from a generator seeded by the file path, so it is deterministic and
    /// cacheable. Default: start.
    pub placement: Placement,
    /// What the rows of the features are. Default: log-mel.
    #[serde(skip_serializing_if = "FeatureKind::is_log_mel")]
    pub kind: FeatureKind,
    /// Coefficients kept with `kind = "mfcc"` (at most `mel.n_mels`). Default: 40.
    #[serde(skip_serializing_if = "is_default_n_mfcc")]
    pub n_mfcc: usize,
    /// The STFT and mel filterbank; its `sample_rate` is the rate clips are
    /// resampled to. `kind = "spectrogram"` uses only its STFT fields and
    /// `power`. Default: 22050 Hz, n_fft 1024, hop 512, 64 mels.
    pub mel: MelSpectrogramConfig,
    /// The dB conversion. Default: ref 1, amin 1e-10, top_db 80.
    pub db: DbConfig,
}

/// The time-frequency representation a clip becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Mel band energies in dB (torchaudio's `MelSpectrogram` + `AmplitudeToDB`).
    #[default]
    LogMel,
    /// Every STFT bin, `n_fft / 2 + 1` rows, in dB: the linear spectrograms
    /// VGG-M was designed for.
    Spectrogram,
    /// The first `n_mfcc` coefficients of the orthonormal DCT of the log-mel
    /// (torchaudio's `MFCC(norm="ortho")`), the dB clamp applied before the DCT.
    Mfcc,
}

impl FeatureKind {
    /// Whether this is the default, left out of saved configs so that caches
    /// keyed by them stay valid.
    pub fn is_log_mel(&self) -> bool {
        *self == Self::LogMel
    }

    /// The rows of the dB spectrogram this kind starts from (MFCCs start
    /// from the log-mel).
    pub fn bands(self) -> Bands {
        match self {
            Self::Spectrogram => Bands::Linear,
            Self::LogMel | Self::Mfcc => Bands::Mel,
        }
    }
}

const DEFAULT_N_MFCC: usize = 40;

fn is_default_n_mfcc(n: &usize) -> bool {
    *n == DEFAULT_N_MFCC
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            channels: 1,
            duration: Some(4.0),
            placement: Placement::Start,
            kind: FeatureKind::LogMel,
            n_mfcc: DEFAULT_N_MFCC,
            mel: MelSpectrogramConfig {
                sample_rate: 22050,
                n_fft: 1024,
                hop_length: Some(512),
                n_mels: 64,
                ..Default::default()
            },
            db: DbConfig::default(),
        }
    }
}

/// How far [`FeatureExtractor::extract_stage`] goes, and so what a cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The whole clip resampled, its channels fixed, not yet padded or
    /// trimmed, `[channels, 1, samples]`: what a placement drawn anew every
    /// epoch starts from (`augment.random_placement`).
    Resampled,
    /// The fixed-length waveform, `[channels, 1, samples]`: what waveform
    /// augmentation (shift, noise, crop, stretch) starts from.
    Waveform,
    /// The features `kind` names, `[channels, rows, frames]` (the name is
    /// kept from when log-mels were the only kind; it keys caches).
    LogMel,
}

/// One clip's array, row-major `[channels, n_mels, frames]`; a waveform is
/// stored as `[channels, 1, samples]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// The values.
    pub data: Vec<f32>,
    /// Channels.
    pub channels: usize,
    /// Rows: mel bands, STFT bins or coefficients (1 for a waveform).
    pub n_mels: usize,
    /// Frames (samples for a waveform).
    pub frames: usize,
}

impl Features {
    /// `[channels, n_mels, frames]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.n_mels, self.frames]
    }
}

/// A planned feature pipeline; `Send + Sync`, shared by worker threads, each
/// of which keeps its own [`ResamplerCache`].
#[derive(Debug, Clone)]
pub struct FeatureExtractor {
    config: FeatureConfig,
    transform: Transform,
}

/// The planned transform from a waveform channel to features.
#[derive(Debug, Clone)]
enum Transform {
    /// Log-mel, or with linear bands a dB spectrogram.
    Bands(LogMelSpectrogram),
    Mfcc(Mfcc),
}

impl Transform {
    fn logmel(&self) -> &LogMelSpectrogram {
        match self {
            Self::Bands(plan) => plan,
            Self::Mfcc(mfcc) => mfcc.logmel(),
        }
    }

    fn rows(&self) -> usize {
        match self {
            Self::Bands(plan) => plan.n_mels(),
            Self::Mfcc(mfcc) => mfcc.n_mfcc(),
        }
    }

    /// Features from the dB rows of the log-mel plan (a whole clip's, so
    /// clamped against its peak).
    fn finish(&self, spec: Spectrogram) -> Spectrogram {
        match self {
            Self::Bands(_) => spec,
            Self::Mfcc(mfcc) => {
                let mut out = vec![0.0; mfcc.n_mfcc() * spec.frames()];
                mfcc.dct_into(spec.as_slice(), spec.frames(), &mut out);
                Spectrogram::from_vec(out, mfcc.n_mfcc(), spec.frames())
            }
        }
    }
}

impl FeatureExtractor {
    /// Validates the configuration and plans the log-mel.
    ///
    /// # Errors
    /// Zero channels, a non-positive duration, or an invalid mel or dB field.
    pub fn new(config: &FeatureConfig) -> std::result::Result<Self, hark_dsp::DspError> {
        if config.channels == 0 {
            return Err(hark_dsp::DspError::InvalidParameter {
                field: "channels",
                rule: "must be > 0, got 0".into(),
            });
        }
        if let Some(d) = config.duration.filter(|d| !(d.is_finite() && *d > 0.0)) {
            return Err(hark_dsp::DspError::InvalidParameter {
                field: "duration",
                rule: format!("must be > 0 seconds, got {d}"),
            });
        }
        if config.kind != FeatureKind::Mfcc && config.n_mfcc != DEFAULT_N_MFCC {
            return Err(hark_dsp::DspError::InvalidParameter {
                field: "n_mfcc",
                rule: format!(
                    "is only used with kind = \"mfcc\" (kind is {:?}), got {}",
                    config.kind, config.n_mfcc
                ),
            });
        }
        let (mel, db) = (&config.mel, &config.db);
        let transform = match config.kind {
            FeatureKind::Mfcc => Transform::Mfcc(Mfcc::new(mel, db, config.n_mfcc)?),
            kind => Transform::Bands(LogMelSpectrogram::with_bands(mel, db, kind.bands())?),
        };
        Ok(Self {
            config: config.clone(),
            transform,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// Rows of the features: mel bands, STFT bins or coefficients.
    pub fn rows(&self) -> usize {
        self.transform.rows()
    }

    /// Frames of the features of `samples` samples.
    pub fn n_frames(&self, samples: usize) -> usize {
        self.transform.logmel().n_frames(samples)
    }

    /// The DCT plan of MFCC features (`None` for other kinds), for a
    /// stream that takes the DCT after its own dB clamp.
    pub fn cepstrum(&self) -> Option<&Mfcc> {
        match &self.transform {
            Transform::Mfcc(mfcc) => Some(mfcc),
            Transform::Bands(_) => None,
        }
    }

    /// Runs the whole pipeline on one example: [`Self::extract_stage`] to
    /// the log-mel.
    ///
    /// # Errors
    /// The file cannot be decoded (see [`crate::read_wav`]) or processed.
    pub fn extract(&self, example: &Example, resamplers: &mut ResamplerCache) -> Result<Features> {
        self.extract_stage(example, Stage::LogMel, resamplers)
    }

    /// Runs the pipeline on one example up to `stage`.
    ///
    /// # Errors
    /// As [`Self::extract`].
    pub fn extract_stage(
        &self,
        example: &Example,
        stage: Stage,
        resamplers: &mut ResamplerCache,
    ) -> Result<Features> {
        let whole = self.resampled(example, resamplers)?;
        if stage == Stage::Resampled {
            return Ok(whole);
        }
        let wave = self.place(&whole, &example.path, 0);
        match stage {
            Stage::Resampled | Stage::Waveform => Ok(wave),
            Stage::LogMel => self.transform(&wave).map_err(|source| DataError::Dsp {
                path: example.path.clone(),
                source,
            }),
        }
    }

    /// A [`Stage::Resampled`] waveform of the file at `path` padded or
    /// trimmed to `duration`: [`Stage::Waveform`]. Crop 0 is placed by
    /// `placement` (a `random` offset drawn from a generator seeded by the
    /// path, so it is the same in every run); each further crop (test-time
    /// augmentation, `augment.test_crops`) at a random offset drawn from
    /// that generator's stream `crop`. Unchanged without a duration.
    pub fn place(&self, whole: &Features, path: &Path, crop: u64) -> Features {
        let mut rng = ChaCha8Rng::seed_from_u64(path_seed(path));
        rng.set_stream(crop);
        let placement = match crop {
            0 => self.config.placement,
            _ => Placement::Random,
        };
        self.place_with(whole, placement, &mut rng)
    }

    /// [`Self::place`] by `placement` drawing from `rng`; every channel
    /// gets the same offset.
    pub fn place_with(
        &self,
        whole: &Features,
        placement: Placement,
        rng: &mut ChaCha8Rng,
    ) -> Features {
        let Some(len) = self.samples() else {
            return whole.clone();
        };
        let base = rng.clone();
        let mut data = Vec::with_capacity(whole.channels * len);
        for channel in whole.data.chunks_exact(whole.frames.max(1)) {
            *rng = base.clone();
            data.extend(fix_length(channel, len, placement, rng));
        }
        Features {
            data,
            channels: whole.channels,
            n_mels: 1,
            frames: len,
        }
    }

    /// Samples of a clip of `duration` seconds at the feature rate.
    fn samples(&self) -> Option<usize> {
        let rate = self.config.mel.sample_rate as f64;
        self.config.duration.map(|d| (d * rate).round() as usize)
    }

    /// The features of a waveform made by [`Self::extract_stage`] (possibly
    /// augmented since), channel by channel.
    ///
    /// # Errors
    /// A channel that is empty, too short or non-finite.
    pub fn transform(&self, wave: &Features) -> std::result::Result<Features, hark_dsp::DspError> {
        let logmel = self.transform.logmel();
        self.per_channel(wave, |channel| logmel.process(channel))
    }

    /// The features of a waveform time-stretched by `rate` (a phase
    /// vocoder on its STFT), channel by channel.
    ///
    /// # Errors
    /// As [`Self::transform`], or a rate the vocoder rejects.
    pub fn stretched(
        &self,
        wave: &Features,
        rate: f64,
    ) -> std::result::Result<Features, hark_dsp::DspError> {
        let logmel = self.transform.logmel();
        let stft = logmel.mel().stft();
        self.per_channel(wave, |channel| {
            let complex = stft.complex(channel)?;
            logmel.process_complex(&phase_vocoder(&complex, rate, stft.hop_length())?)
        })
    }

    /// `spectral` (dB rows of the log-mel plan) on every channel, finished
    /// into the configured kind.
    fn per_channel(
        &self,
        wave: &Features,
        mut spectral: impl FnMut(&[f32]) -> std::result::Result<Spectrogram, hark_dsp::DspError>,
    ) -> std::result::Result<Features, hark_dsp::DspError> {
        let rows = self.rows();
        let mut data = Vec::with_capacity(wave.channels * rows * self.n_frames(wave.frames));
        let mut frames = 0;
        for channel in wave.data.chunks_exact(wave.frames.max(1)) {
            let spec = self.transform.finish(spectral(channel)?);
            frames = spec.frames();
            data.extend_from_slice(spec.as_slice());
        }
        Ok(Features {
            data,
            channels: wave.channels,
            n_mels: rows,
            frames,
        })
    }

    /// Decode, span, channels, resample: `[channels, 1, samples]`.
    fn resampled(&self, example: &Example, resamplers: &mut ResamplerCache) -> Result<Features> {
        let path = example.path.as_path();
        let dsp = |source| DataError::Dsp {
            path: path.to_path_buf(),
            source,
        };
        let mut audio = crate::read_audio(path)?;
        if let Some(span) = example.span {
            let rate = audio.sample_rate as f64;
            let ch = audio.channels;
            let (start, end) = (
                (span.start * rate).round() as usize,
                (span.end * rate).round() as usize,
            );
            if !(span.start >= 0.0 && end > start && start < audio.frames()) {
                return Err(DataError::Decode {
                    path: path.to_path_buf(),
                    reason: format!(
                        "span {}..{} s is empty or starts past the file's {:.3} s",
                        span.start,
                        span.end,
                        audio.duration_secs()
                    ),
                });
            }
            let mut cut = vec![0.0; (end - start) * ch];
            let have = audio.samples.len().min(end * ch) - start * ch;
            cut[..have].copy_from_slice(&audio.samples[start * ch..start * ch + have]);
            audio.samples = cut;
        }
        let planar = audio.planar();
        let channels = match self.config.channels {
            1 => vec![mix_down(&planar).map_err(dsp)?],
            n => to_channels(planar, n).map_err(dsp)?,
        };
        let target = self.config.mel.sample_rate;
        let mut data = Vec::new();
        let mut samples = 0;
        for channel in channels {
            let resampled = resamplers
                .resample(&channel, audio.sample_rate, target)
                .map_err(dsp)?;
            samples = resampled.len();
            data.extend_from_slice(&resampled);
        }
        Ok(Features {
            data,
            channels: self.config.channels,
            n_mels: 1,
            frames: samples,
        })
    }
}

/// FNV-1a 64 of bytes: a hash that is the same on every machine and release.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn path_seed(path: &Path) -> u64 {
    fnv1a(path.to_string_lossy().as_bytes())
}
