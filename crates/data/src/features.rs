//! The per-clip feature pipeline: decode, channels, resample, fixed length,
//! log-mel, giving an f32 buffer `[channels, n_mels, frames]`.

use std::path::Path;

use hark_dsp::{
    DbConfig, LogMelSpectrogram, MelSpectrogramConfig, Placement, ResamplerCache, fix_length,
    mix_down, to_channels,
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
    /// The log-mel; its `sample_rate` is the rate clips are resampled to.
    /// Default: 22050 Hz, n_fft 1024, hop 512, 64 mels.
    pub mel: MelSpectrogramConfig,
    /// The dB conversion. Default: ref 1, amin 1e-10, top_db 80.
    pub db: DbConfig,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            channels: 1,
            duration: Some(4.0),
            placement: Placement::Start,
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
    /// The fixed-length waveform, `[channels, 1, samples]`: what waveform
    /// augmentation (shift, noise, crop, stretch) starts from.
    Waveform,
    /// The log-mel, `[channels, n_mels, frames]`.
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
    /// Mel bands (1 for a waveform).
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
    logmel: LogMelSpectrogram,
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
        Ok(Self {
            config: config.clone(),
            logmel: LogMelSpectrogram::new(&config.mel, &config.db)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// The planned log-mel.
    pub fn logmel_plan(&self) -> &LogMelSpectrogram {
        &self.logmel
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
        let wave = self.waveform(example, resamplers)?;
        match stage {
            Stage::Waveform => Ok(wave),
            Stage::LogMel => self.logmel(&wave).map_err(|source| DataError::Dsp {
                path: example.path.clone(),
                source,
            }),
        }
    }

    /// The log-mel of a waveform made by [`Self::extract_stage`] (possibly
    /// augmented since), channel by channel.
    ///
    /// # Errors
    /// A channel that is empty, too short or non-finite.
    pub fn logmel(&self, wave: &Features) -> std::result::Result<Features, hark_dsp::DspError> {
        let mut data = Vec::with_capacity(wave.channels * self.logmel.output_len(wave.frames));
        let mut frames = 0;
        for channel in wave.data.chunks_exact(wave.frames.max(1)) {
            let spec = self.logmel.process(channel)?;
            frames = spec.frames();
            data.extend_from_slice(spec.as_slice());
        }
        Ok(Features {
            data,
            channels: wave.channels,
            n_mels: self.logmel.n_mels(),
            frames,
        })
    }

    /// Decode, span, channels, resample, fixed length: `[channels, 1, samples]`.
    fn waveform(&self, example: &Example, resamplers: &mut ResamplerCache) -> Result<Features> {
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
        let len = self
            .config
            .duration
            .map(|d| (d * target as f64).round() as usize);
        let mut data = Vec::new();
        let mut samples = 0;
        for channel in channels {
            let resampled = resamplers
                .resample(&channel, audio.sample_rate, target)
                .map_err(dsp)?;
            let fixed = match len {
                // One generator per channel, seeded alike, so every channel gets the same offset.
                Some(len) => fix_length(
                    &resampled,
                    len,
                    self.config.placement,
                    &mut ChaCha8Rng::seed_from_u64(path_seed(path)),
                ),
                None => resampled,
            };
            samples = fixed.len();
            data.extend_from_slice(&fixed);
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
