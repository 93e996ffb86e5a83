//! Batches for training and evaluation: seeded shuffling, on-the-fly
//! augmentation, padding of variable-length clips with a lengths vector,
//! normalisation, and prefetching on a worker thread.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment, example_rng};
use crate::error::{DataError, Result};
use crate::features::{FeatureExtractor, Features};

/// How batches are normalised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Values as they are.
    #[default]
    None,
    /// `(x - mean) / std` over each whole batch (seed 001).
    PerBatch,
    /// `(x - mean) / std` over each example.
    PerExample,
    /// `(x - mean) / std` over each row (mel band or frequency bin) of each
    /// example: cepstral mean and variance normalisation, which removes a
    /// recording channel's fixed colouring and gain (VGG-M's speaker
    /// recipe normalises every frequency bin so).
    PerExamplePerBand,
    /// Fixed statistics, computed on the training split with [`dataset_stats`] (seed 002).
    Dataset {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Fixed statistics per mel band, computed on the training split with
    /// [`band_stats`].
    PerBand {
        /// Mean of each band.
        mean: Vec<f32>,
        /// Standard deviation of each band.
        std: Vec<f32>,
    },
}

/// Mean and standard deviation over every value of `clips` (the training
/// split's features), for [`Normalization::Dataset`].
pub fn dataset_stats<'a>(clips: impl IntoIterator<Item = &'a Features>) -> (f32, f32) {
    let (mut n, mut sum, mut sq) = (0u64, 0f64, 0f64);
    for clip in clips {
        for &v in &clip.data {
            n += 1;
            sum += v as f64;
            sq += (v as f64) * (v as f64);
        }
    }
    let mean = sum / n.max(1) as f64;
    let var = (sq / n.max(1) as f64 - mean * mean).max(0.0);
    (mean as f32, var.sqrt() as f32)
}

/// Mean and standard deviation of each mel band over `clips` (every
/// channel and frame), for [`Normalization::PerBand`]; empty for no clips.
pub fn band_stats<'a>(clips: impl IntoIterator<Item = &'a Features>) -> (Vec<f32>, Vec<f32>) {
    let mut acc: Vec<(u64, f64, f64)> = Vec::new();
    for clip in clips {
        acc.resize(acc.len().max(clip.n_mels), (0, 0.0, 0.0));
        for (row, values) in clip.data.chunks_exact(clip.frames.max(1)).enumerate() {
            let a = &mut acc[row % clip.n_mels];
            for &v in values {
                *a = (a.0 + 1, a.1 + v as f64, a.2 + (v as f64) * (v as f64));
            }
        }
    }
    acc.iter()
        .map(|&(n, s, q)| {
            let mean = s / n.max(1) as f64;
            (
                mean as f32,
                (q / n.max(1) as f64 - mean * mean).max(0.0).sqrt() as f32,
            )
        })
        .unzip()
}

/// Batching options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Examples per batch. Default: 16.
    pub batch_size: usize,
    /// Reshuffle every epoch (training). Default: true.
    pub shuffle: bool,
    /// Drop a last, smaller batch. Default: false.
    pub drop_last: bool,
    /// Seed of the shuffles and augmentation. Default: 0.
    pub seed: u64,
    /// Value padded frames get in variable-length batches. Default: 0.
    pub pad_value: f32,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            shuffle: true,
            drop_last: false,
            seed: 0,
            pad_value: 0.0,
        }
    }
}

/// A batch: `data` is `[batch, channels, n_mels, max_frames]` row-major;
/// example `i` holds `lengths[i]` real frames, the rest is padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The values.
    pub data: Vec<f32>,
    /// `[batch, channels, n_mels, max_frames]`.
    pub shape: [usize; 4],
    /// Class indices.
    pub labels: Vec<usize>,
    /// Real frames per example.
    pub lengths: Vec<usize>,
    /// Positions of the examples in the loader's clip list.
    pub indices: Vec<usize>,
}

/// Makes batches of clips held in memory (features from the cache).
#[derive(Debug, Clone)]
pub struct Loader {
    clips: Arc<Vec<Features>>,
    /// The clip of each position.
    indices: Arc<Vec<usize>>,
    labels: Arc<Vec<usize>>,
    extractor: Arc<FeatureExtractor>,
    augment: Arc<AugmentConfig>,
    normalization: Normalization,
    config: LoaderConfig,
}

impl Loader {
    /// A loader over `clips` (log-mels, or waveforms when `augment` needs
    /// them) with one label each. `augment` is applied per example from a
    /// generator seeded by (seed, epoch, position), so batches reproduce.
    ///
    /// # Errors
    /// As [`Loader::shared`].
    pub fn new(
        clips: Vec<Features>,
        labels: Vec<usize>,
        extractor: FeatureExtractor,
        augment: AugmentConfig,
        normalization: Normalization,
        config: LoaderConfig,
    ) -> Result<Self> {
        let indices = (0..clips.len()).collect();
        let clips = Arc::new(clips);
        Self::shared(
            clips,
            indices,
            labels,
            extractor,
            augment,
            normalization,
            config,
        )
    }

    /// A loader over `clips[indices[i]]` with label `labels[i]`, the clips
    /// shared with other loaders (the folds of a cross-validation) instead
    /// of copied.
    ///
    /// # Errors
    /// No indices, an index out of range, mismatched labels, batch size 0,
    /// clips of different channels or bands, an invalid augmentation, or
    /// clips of the wrong stage for it (waveforms exactly when augmentation
    /// needs them).
    pub fn shared(
        clips: Arc<Vec<Features>>,
        indices: Vec<usize>,
        labels: Vec<usize>,
        extractor: FeatureExtractor,
        augment: AugmentConfig,
        normalization: Normalization,
        config: LoaderConfig,
    ) -> Result<Self> {
        let bad = |reason: String| DataError::Loader { reason };
        if indices.is_empty() {
            return Err(bad("no clips to load".into()));
        }
        if indices.len() != labels.len() {
            return Err(bad(format!(
                "{} clips but {} labels",
                indices.len(),
                labels.len()
            )));
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= clips.len()) {
            return Err(bad(format!("clip {i} of {}", clips.len())));
        }
        if config.batch_size == 0 {
            return Err(DataError::InvalidOption {
                field: "batch_size",
                rule: "must be > 0",
                got: "0".into(),
            });
        }
        let first = &clips[indices[0]];
        let (c, m) = (first.channels, first.n_mels);
        if let Some(&i) = indices
            .iter()
            .find(|&&i| (clips[i].channels, clips[i].n_mels) != (c, m))
        {
            return Err(bad(format!(
                "clip {i} is {}x{}, clip {} is {c}x{m}",
                clips[i].channels, clips[i].n_mels, indices[0]
            )));
        }
        augment.validate()?;
        if augment.needs_waveform() != (m == 1) {
            return Err(bad(match m {
                1 => "clips are waveforms ([C, 1, samples]) but no augmentation needs them: extract Stage::LogMel".to_string(),
                _ => format!("waveform augmentation needs waveform clips (Stage::Waveform), got {c}x{m} log-mels"),
            }));
        }
        Ok(Self {
            clips,
            indices: Arc::new(indices),
            labels: Arc::new(labels),
            extractor: Arc::new(extractor),
            augment: Arc::new(augment),
            normalization,
            config,
        })
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Examples per epoch (a dropped last batch not counted).
    pub fn examples_per_epoch(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        if self.config.drop_last { n / b * b } else { n }
    }

    /// The example order of `epoch`.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.indices.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                self.config.seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ));
        }
        order
    }

    /// Builds the batch of these positions.
    fn batch(&self, epoch: u64, positions: &[usize]) -> Result<Batch> {
        let clips: Vec<Features> = positions
            .iter()
            .map(|&i| {
                let mut rng = example_rng(self.config.seed, epoch, i as u64);
                augment(
                    &self.clips[self.indices[i]],
                    &self.augment,
                    &self.extractor,
                    &mut rng,
                )
                .map_err(|source| DataError::Example { index: i, source })
            })
            .collect::<Result<_>>()?;
        let (c, m) = (clips[0].channels, clips[0].n_mels);
        let t = clips.iter().map(|x| x.frames).max().unwrap_or(0);
        let mut data = vec![self.config.pad_value; clips.len() * c * m * t];
        for (b, clip) in clips.iter().enumerate() {
            for (row, src) in clip.data.chunks_exact(clip.frames.max(1)).enumerate() {
                let dst = (b * c * m + row) * t;
                data[dst..dst + clip.frames].copy_from_slice(src);
            }
        }
        let lengths: Vec<usize> = clips.iter().map(|x| x.frames).collect();
        normalize(
            &mut data,
            &lengths,
            [clips.len(), c, m, t],
            &self.normalization,
        );
        Ok(Batch {
            data,
            shape: [clips.len(), c, m, t],
            labels: positions.iter().map(|&i| self.labels[i]).collect(),
            lengths,
            indices: positions.to_vec(),
        })
    }

    /// The batches of `epoch`, built on a worker thread two batches ahead
    /// of the consumer. Dropping the iterator stops the worker.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let (tx, rx) = sync_channel(2);
        let loader = self.clone();
        std::thread::spawn(move || {
            let order = loader.order(epoch);
            for chunk in order.chunks(loader.config.batch_size) {
                if loader.config.drop_last && chunk.len() < loader.config.batch_size {
                    break;
                }
                if tx.send(loader.batch(epoch, chunk)).is_err() {
                    break;
                }
            }
        });
        Batches { rx }
    }
}

/// The batches of one epoch; see [`Loader::epoch`].
#[derive(Debug)]
pub struct Batches {
    rx: Receiver<Result<Batch>>,
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl Normalization {
    /// Normalises one example (a streamed window, `[bands, frames]`) in
    /// place: per batch and per example are the same for a batch of one.
    pub fn apply_one(&self, values: &mut [f32], bands: usize) {
        let frames = values.len() / bands.max(1);
        normalize(values, &[frames], [1, 1, bands, frames], self);
    }

    /// Whether each value is normalised without looking at the others, so
    /// that a stream can normalise frame by frame.
    pub fn is_pointwise(&self) -> bool {
        matches!(
            self,
            Self::None | Self::Dataset { .. } | Self::PerBand { .. }
        )
    }
}

/// Normalises a padded batch in place; statistics count real frames only.
fn normalize(data: &mut [f32], lengths: &[usize], [b, c, m, t]: [usize; 4], how: &Normalization) {
    let per_example = c * m * t;
    let valid = |e: usize| {
        (0..c * m).flat_map(move |row| (0..lengths[e]).map(move |f| e * per_example + row * t + f))
    };
    let stats = |data: &[f32], idx: &mut dyn Iterator<Item = usize>| {
        let (mut n, mut s, mut q) = (0f64, 0f64, 0f64);
        for i in idx {
            n += 1.0;
            s += data[i] as f64;
            q += (data[i] as f64).powi(2);
        }
        let mean = s / n.max(1.0);
        // Sample standard deviation, as torch's `std()`.
        let std = ((q - n * mean * mean) / (n - 1.0).max(1.0)).max(0.0).sqrt();
        (mean as f32, (std as f32).max(1e-6))
    };
    let apply = |data: &mut [f32], e: usize, (mean, std): (f32, f32)| {
        for i in valid(e) {
            data[i] = (data[i] - mean) / std;
        }
    };
    match how {
        Normalization::None => {}
        &Normalization::Dataset { mean, std } => {
            (0..b).for_each(|e| apply(data, e, (mean, std.max(1e-6))))
        }
        Normalization::PerBand { mean, std } => {
            for row in 0..b * c * m {
                let (band, e) = (row % m, row / (c * m));
                let (mu, sd) = (
                    mean.get(band).copied().unwrap_or(0.0),
                    std.get(band).copied().unwrap_or(1.0).max(1e-6),
                );
                data[row * t..][..lengths[e]]
                    .iter_mut()
                    .for_each(|v| *v = (*v - mu) / sd);
            }
        }
        Normalization::PerBatch => {
            let st = stats(data, &mut (0..b).flat_map(valid));
            (0..b).for_each(|e| apply(data, e, st));
        }
        Normalization::PerExample => (0..b).for_each(|e| {
            let st = stats(data, &mut valid(e));
            apply(data, e, st);
        }),
        Normalization::PerExamplePerBand => {
            for row in 0..b * c * m {
                let frames = lengths[row / (c * m)];
                let (mean, std) = stats(data, &mut (row * t..row * t + frames));
                data[row * t..][..frames]
                    .iter_mut()
                    .for_each(|v| *v = (*v - mean) / std);
            }
        }
    }
}
