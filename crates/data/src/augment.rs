//! On-the-fly augmentation of one example from a generator seeded by
//! (seed, epoch, example), so a run reproduces exactly.

use hark_dsp::{
    SpecAugmentConfig, add_noise, add_noise_snr, fix_length, random_crop, spec_augment, time_shift,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::features::{FeatureExtractor, Features};

/// Additive Gaussian noise on the waveform, by deviation or by SNR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseAugment {
    /// Probability of applying it to an example.
    pub prob: f32,
    /// Standard deviation of the noise (seed 004: 0.005).
    pub std: Option<f32>,
    /// Or a signal-to-noise ratio in dB.
    pub snr_db: Option<f32>,
}

/// A random crop of the waveform, zero-padded back to the clip length when
/// the length is fixed (seed 004: prob 0.4, 25 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropAugment {
    /// Probability of applying it.
    pub prob: f32,
    /// Largest share of the clip removed.
    pub max_fraction: f32,
}

/// Phase-vocoder time stretch by a rate drawn from `1 +- max_delta` (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StretchAugment {
    /// Probability of applying it.
    pub prob: f32,
    /// Largest change of rate, below 1.
    pub max_delta: f32,
}

/// Every augmentation, each off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Largest time shift (with wrap) as a share of the clip, always applied (seed 001: 0.4).
    pub time_shift: Option<f32>,
    /// Waveform noise.
    pub noise: Option<NoiseAugment>,
    /// Waveform crop.
    pub crop: Option<CropAugment>,
    /// Time stretch.
    pub stretch: Option<StretchAugment>,
    /// SpecAugment masks on the log-mel.
    pub spec_augment: Option<SpecAugmentConfig>,
    /// Standard deviation of Gaussian noise added to the log-mel (seed 003: 0.01).
    pub spec_noise: Option<f32>,
    /// Pad or trim every training clip to `features.duration` at a random
    /// offset drawn anew every epoch (seed 001's `pad_trunc`), before the
    /// other waveform augmentations; held-out clips keep
    /// `features.placement`. Default: false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub random_placement: bool,
    /// Test-time augmentation: each held-out clip is placed this many times,
    /// the first by `features.placement`, the others at random offsets
    /// seeded by the clip's path and the crop's number, and the model's
    /// class probabilities averaged over them. Needs `random_placement`
    /// (the cache then holds whole clips to place). Validation during
    /// training sees the first placement only. Default: 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_crops: Option<usize>,
}

/// The most placements [`AugmentConfig::test_crops`] may ask for: each one
/// is a forward pass over the held-out set.
const MAX_TEST_CROPS: usize = 64;

impl AugmentConfig {
    /// How many placements each held-out clip gets ([`Self::test_crops`]).
    pub fn crops(&self) -> usize {
        self.test_crops.unwrap_or(1)
    }

    /// Whether any augmentation works on the waveform, so clips must be
    /// cached at [`crate::Stage::Waveform`] (at [`crate::Stage::Resampled`]
    /// for a random placement).
    pub fn needs_waveform(&self) -> bool {
        self.random_placement
            || self.time_shift.is_some()
            || self.noise.is_some()
            || self.crop.is_some()
            || self.stretch.is_some()
    }

    /// Checks probabilities and ranges.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] naming the field out of range.
    pub fn validate(&self) -> Result<(), DataError> {
        let check = |field: &'static str, v: f32, ok: bool, rule: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(DataError::InvalidOption {
                    field,
                    rule,
                    got: v.to_string(),
                })
            }
        };
        let prob = |field, p: f32| check(field, p, (0.0..=1.0).contains(&p), "must be in [0, 1]");
        if let Some(n) = &self.noise {
            prob("augment.noise.prob", n.prob)?;
            match (n.std, n.snr_db) {
                (Some(std), None) => check(
                    "augment.noise.std",
                    std,
                    std.is_finite() && std >= 0.0,
                    "must be finite and >= 0",
                )?,
                (None, Some(snr)) => check(
                    "augment.noise.snr_db",
                    snr,
                    (-100.0..=200.0).contains(&snr),
                    "must be in [-100, 200] dB",
                )?,
                _ => {
                    return Err(DataError::InvalidOption {
                        field: "augment.noise",
                        rule: "needs exactly one of std and snr_db",
                        got: format!("std {:?}, snr_db {:?}", n.std, n.snr_db),
                    });
                }
            }
        }
        if let Some(c) = &self.crop {
            prob("augment.crop.prob", c.prob)?;
            let f = c.max_fraction;
            check(
                "augment.crop.max_fraction",
                f,
                (0.0..=1.0).contains(&f),
                "must be in [0, 1]",
            )?;
        }
        if let Some(s) = &self.stretch {
            prob("augment.stretch.prob", s.prob)?;
            let d = s.max_delta;
            check(
                "augment.stretch.max_delta",
                d,
                (0.0..1.0).contains(&d),
                "must be in [0, 1)",
            )?;
        }
        if let Some(std) = self.spec_noise {
            check(
                "augment.spec_noise",
                std,
                std.is_finite() && std >= 0.0,
                "must be finite and >= 0",
            )?;
        }
        if let Some(n) = self.test_crops {
            let rule = if !(1..=MAX_TEST_CROPS).contains(&n) {
                Some("must be in [1, 64]")
            } else if n > 1 && !self.random_placement {
                Some("needs augment.random_placement = true")
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(DataError::InvalidOption {
                    field: "augment.test_crops",
                    rule,
                    got: n.to_string(),
                });
            }
        }
        if let Some(s) = &self.spec_augment {
            s.validate().map_err(|e| DataError::InvalidOption {
                field: "augment.spec_augment",
                rule: "must hold valid masks",
                got: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// A generator for one example in one epoch, independent of batch order and
/// threads: SplitMix-style mixing of the three numbers seeds ChaCha8.
pub fn example_rng(seed: u64, epoch: u64, example: u64) -> ChaCha8Rng {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ example.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// Augments one example. `clip` is a waveform when the config
/// [`AugmentConfig::needs_waveform`] (it is then turned into the log-mel;
/// with a random placement it is the whole resampled clip), else a log-mel.
///
/// # Errors
/// An invalid augmentation parameter, or a waveform the log-mel rejects.
pub(crate) fn augment(
    clip: &Features,
    config: &AugmentConfig,
    extractor: &FeatureExtractor,
    rng: &mut ChaCha8Rng,
) -> std::result::Result<Features, hark_dsp::DspError> {
    let mut out = if config.needs_waveform() {
        let placed;
        let clip = match config.random_placement {
            true => {
                placed = extractor.place_with(clip, hark_dsp::Placement::Random, rng);
                &placed
            }
            false => clip,
        };
        let len = clip.frames;
        let mut draw = |p: f32| rng.random::<f32>() < p;
        let crop = config.crop.filter(|c| draw(c.prob));
        let noise = config.noise.filter(|n| draw(n.prob));
        let stretch = config.stretch.filter(|s| draw(s.prob));
        let range = match crop {
            Some(c) => random_crop(len, c.max_fraction, rng)?,
            None => 0..len,
        };
        // Every channel replays the same generator, so all get the same shift
        // (and duplicated mono stays duplicated).
        let rate = stretch.map(|s| 1.0 + (rng.random::<f64>() * 2.0 - 1.0) * s.max_delta as f64);
        let base = ChaCha8Rng::seed_from_u64(rng.random::<u64>());
        let mut channels = Vec::with_capacity(clip.channels);
        for channel in clip.data.chunks_exact(len) {
            let mut ch_rng = base.clone();
            let mut x = channel[range.clone()].to_vec();
            if crop.is_some() && extractor.config().duration.is_some() {
                x = fix_length(&x, len, hark_dsp::Placement::Start, &mut ch_rng);
            }
            if let Some(limit) = config.time_shift {
                time_shift(&mut x, limit, &mut ch_rng)?;
            }
            match noise {
                Some(NoiseAugment { std: Some(std), .. }) => add_noise(&mut x, std, &mut ch_rng)?,
                Some(NoiseAugment {
                    snr_db: Some(snr), ..
                }) => {
                    add_noise_snr(&mut x, snr, &mut ch_rng)?;
                }
                _ => {}
            }
            channels.push(x);
        }
        let samples = channels[0].len();
        let wave = Features {
            data: channels.concat(),
            channels: clip.channels,
            n_mels: 1,
            frames: samples,
        };
        match rate {
            Some(rate) => extractor.stretched(&wave, rate)?,
            None => extractor.transform(&wave)?,
        }
    } else {
        clip.clone()
    };
    if let Some(cfg) = &config.spec_augment {
        spec_augment(&mut out.data, out.n_mels, out.frames, cfg, rng)?;
    }
    if let Some(std) = config.spec_noise {
        add_noise(&mut out.data, std, rng)?;
    }
    Ok(out)
}
