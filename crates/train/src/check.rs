//! The overfit-one-batch sanity check (seed 003): a model that cannot
//! drive the loss of one fixed batch close to zero has a bug in its data,
//! labels or optimisation that a whole run would only hide.

use hark_data::{AugmentConfig, Loader, Split};
use hark_models::Model;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::loaders::{loader_config, normalization, with_statistics};
use crate::{Error, ExperimentConfig, Prepared, Result, ScheduleConfig, Trainer};

/// What [`overfit_one_batch`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct OverfitCheck {
    /// The loss before each step.
    pub losses: Vec<f32>,
    /// The examples in the batch.
    pub examples: usize,
    /// Whether a loss at or below the target was reached.
    pub passed: bool,
}

/// Trains a fresh model of `config` on one batch of its training split
/// (test fold `fold`), without augmentation, at the optimizer's constant
/// learning rate, for at most `steps` steps or until the loss is at most
/// `target`.
///
/// # Errors
/// An empty training split, a model or optimizer the config cannot build,
/// or a non-finite loss.
pub fn overfit_one_batch(
    prepared: &Prepared,
    config: &ExperimentConfig,
    fold: Option<u32>,
    steps: usize,
    target: f32,
) -> Result<OverfitCheck> {
    let splits = prepared.splits(config, fold)?;
    let part = prepared.subset(&splits, Split::Train);
    if part.is_empty() {
        return Err(Error::EmptySplit("training"));
    }
    let config = with_statistics(prepared, config, &part)?;
    // A seeded draw of the training examples (a manifest sorted by class
    // would give a batch of one class), as plain held-out features.
    let mut order: Vec<usize> = (0..part.clips.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(config.train.seed));
    order.truncate(config.train.batch_size.max(1));
    let clips = (order.iter())
        .map(|&i| prepared.logmel(part.examples[i], part.clips[i], 0))
        .collect::<Result<Vec<_>>>()?;
    let labels = order.iter().map(|&i| part.labels[i]).collect();
    let batch = Loader::new(
        clips,
        labels,
        prepared.extractor.clone(),
        AugmentConfig::default(),
        normalization(&config)?.clone(),
        loader_config(&config, false, order.len()),
    )?
    .epoch(0)
    .next()
    .ok_or(Error::EmptySplit("training"))??;
    let model = Model::with_output(
        &config.model.spec,
        prepared.dataset.classes.len(),
        config.model.output,
        prepared.input_shape()?,
        config.train.seed,
    )?;
    let mut train = config.train.clone();
    train.schedule = ScheduleConfig::default();
    train.epochs = steps.max(1);
    let mut trainer = Trainer::new(&model, &train, 1)?;
    // Grown as steps run: `steps` is a flag, not a size to allocate up front.
    let mut losses = Vec::new();
    for i in 0..steps {
        let loss = trainer.step(&batch, 0, i)?.0;
        losses.push(loss);
        if loss <= target {
            break;
        }
    }
    Ok(OverfitCheck {
        passed: losses.last().is_some_and(|&l| l <= target),
        examples: batch.labels.len(),
        losses,
    })
}
