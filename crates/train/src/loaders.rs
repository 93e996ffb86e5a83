//! The loaders of a run: training (shuffled, augmented) and held-out
//! (in order, plain log-mels).

use std::sync::Arc;

use hark_data::{Loader, LoaderConfig, Normalization, Stage, band_stats, dataset_stats};

use crate::{
    ComputedNormalization, Error, ExperimentConfig, NormalizationSetting, Part, Prepared, Result,
};

/// A loader over `part` of `prepared`: shuffled and augmented for
/// training; in order, plain and as log-mels otherwise. Log-mel clips are
/// shared with `prepared`, not copied.
///
/// # Errors
/// [`Error::Data`] for clips the loader rejects.
pub fn loader(
    prepared: &Prepared,
    config: &ExperimentConfig,
    part: &Part,
    training: bool,
) -> Result<Loader> {
    placed_loader(prepared, config, part, training, 0)
}

/// One held-out loader over `part` per placement of its clips
/// (`augment.test_crops`), each built when [`crate::evaluate_crops`] comes
/// to it; an item is an error as [`loader`]'s.
pub fn held_out<'a>(
    prepared: &'a Prepared,
    config: &'a ExperimentConfig,
    part: &'a Part,
) -> impl Iterator<Item = Result<Loader>> + 'a {
    (0..config.augment.crops() as u64)
        .map(move |crop| placed_loader(prepared, config, part, false, crop))
}

/// [`loader`], its held-out clips placed as `crop`.
fn placed_loader(
    prepared: &Prepared,
    config: &ExperimentConfig,
    part: &Part,
    training: bool,
    crop: u64,
) -> Result<Loader> {
    let extractor = &prepared.extractor;
    let augment = if training {
        config.augment.clone()
    } else {
        Default::default()
    };
    // Held-out clips are log-mels even when training clips are waveforms.
    let (clips, indices) = if !training && prepared.stage != Stage::LogMel {
        (
            Arc::new(logmels(prepared, part, crop)?),
            (0..part.clips.len()).collect(),
        )
    } else {
        (prepared.clips.clone(), part.clips.clone())
    };
    Ok(Loader::shared(
        clips,
        indices,
        part.labels.clone(),
        extractor.clone(),
        augment,
        normalization(config)?.clone(),
        loader_config(config, training, part.clips.len()),
    )?)
}

/// The run's normalisation, whose statistics [`with_statistics`] computed.
///
/// # Errors
/// [`Error::Config`] for statistics not computed yet.
pub(crate) fn normalization(config: &ExperimentConfig) -> Result<&Normalization> {
    config.train.normalization.fixed().ok_or(Error::Config {
        field: "train.normalization",
        rule: "must have its statistics computed on the training split first",
        got: format!("{:?}", config.train.normalization),
    })
}

/// `config` with a computed normalisation's statistics taken from the
/// training part's log-mels (an unchanged copy when it needs none).
///
/// # Errors
/// A training clip whose log-mel cannot be computed.
pub(crate) fn with_statistics(
    prepared: &Prepared,
    config: &ExperimentConfig,
    train: &Part,
) -> Result<ExperimentConfig> {
    let NormalizationSetting::Computed(kind) = config.train.normalization else {
        return Ok(config.clone());
    };
    let logmels = logmels(prepared, train, 0)?;
    let fixed = match kind {
        ComputedNormalization::Dataset => {
            let (mean, std) = dataset_stats(&logmels);
            Normalization::Dataset { mean, std }
        }
        ComputedNormalization::DatasetPerBand => {
            let (mean, std) = band_stats(&logmels);
            Normalization::PerBand { mean, std }
        }
    };
    let mut config = config.clone();
    config.train.normalization = NormalizationSetting::Fixed(fixed);
    Ok(config)
}

/// The held-out features of every clip of `part`, placed as `crop`.
fn logmels(prepared: &Prepared, part: &Part, crop: u64) -> Result<Vec<hark_data::Features>> {
    (part.examples.iter().zip(&part.clips))
        .map(|(&example, &clip)| prepared.logmel(example, clip, crop))
        .collect()
}

/// The loader settings of `config` for `n` examples: shuffled for
/// training, in order otherwise, except that per-batch normalisation mixes
/// held-out batches in a fixed seeded order too: a manifest is often sorted
/// by class, and batches of one class would each be standardised by their
/// own class's statistics (seed 001's validation batches are a random mix).
pub(crate) fn loader_config(config: &ExperimentConfig, training: bool, n: usize) -> LoaderConfig {
    let batch = config.train.batch_size;
    let per_batch = config.train.normalization.fixed() == Some(&Normalization::PerBatch);
    LoaderConfig {
        batch_size: batch,
        shuffle: training || per_batch,
        // A last batch of one example cannot be batch-normalised.
        drop_last: training && batch > 0 && n % batch == 1,
        seed: config.train.seed,
        pad_value: 0.0,
    }
}
