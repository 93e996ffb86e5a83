//! Checkpoints: the model as a PyTorch state_dict (`<name>.safetensors`,
//! loadable by PyTorch as is) and beside it the optimizer state and the
//! trainer's progress (`<name>.train.safetensors`), each written atomically.

use std::collections::HashMap;

use hark_models::{Model, read_metadata, read_tensors, save_tensors};
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, EpochMetrics, Error, Result, RunDir, StatefulOptimizer};

/// Metadata key of the completed epoch count, in both files.
const EPOCH_KEY: &str = "hark.epoch";
/// Metadata key of the [`TrainState`] JSON, in the training file.
const STATE_KEY: &str = "hark.state";

/// Where training stands after an epoch: everything but the weights and
/// the optimizer moments that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken (the schedule's position).
    pub step: usize,
    /// The best monitored value so far and its epoch (1-based).
    pub best: Option<(f64, usize)>,
    /// Epochs since the monitored value last improved.
    pub stale: usize,
    /// Dropout masks drawn (see `Model::dropout_step`).
    pub dropout_step: u64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// One entry per completed epoch.
    pub history: Vec<EpochMetrics>,
}

/// Writes checkpoint `which` of `run`.
///
/// # Errors
/// [`Error::Model`] when a file cannot be written.
pub fn save_checkpoint(
    run: &RunDir,
    which: Checkpoint,
    model: &Model,
    optimizer: &dyn StatefulOptimizer,
    state: &TrainState,
) -> Result<()> {
    let (model_path, train_path) = (run.weights(which), run.training_state(which));
    let epoch = HashMap::from([(EPOCH_KEY.to_string(), state.epoch.to_string())]);
    let mut meta = epoch.clone();
    meta.insert(
        STATE_KEY.into(),
        serde_json::to_string(state).map_err(|e| Error::Checkpoint(e.to_string()))?,
    );
    let optim: Vec<_> = optimizer
        .state()
        .into_iter()
        .map(|(k, v)| (format!("optimizer.{k}"), v))
        .collect();
    save_tensors(&optim, &meta, &train_path)?;
    save_tensors(&model.params().state_dict(), &epoch, &model_path)?;
    Ok(())
}

/// Restores checkpoint `which` of `run` into `model` and `optimizer` and
/// returns the training state.
///
/// # Errors
/// [`Error::Checkpoint`] when the two files disagree on the epoch or the
/// state is unreadable; the model's and optimizer's own load errors.
pub fn load_checkpoint(
    run: &RunDir,
    which: Checkpoint,
    model: &Model,
    optimizer: &mut dyn StatefulOptimizer,
) -> Result<TrainState> {
    let (model_path, train_path) = (run.weights(which), run.training_state(which));
    let meta = read_metadata(&train_path)?;
    let model_epoch = read_metadata(&model_path)?.get(EPOCH_KEY).cloned();
    if meta.get(EPOCH_KEY) != model_epoch.as_ref() {
        return Err(Error::Checkpoint(format!(
            "{} (epoch {:?}) and {} (epoch {:?}) are from different epochs",
            model_path.display(),
            model_epoch,
            train_path.display(),
            meta.get(EPOCH_KEY)
        )));
    }
    let state: TrainState = meta
        .get(STATE_KEY)
        .ok_or_else(|| Error::Checkpoint(format!("{}: no training state", train_path.display())))
        .and_then(|json| {
            serde_json::from_str(json)
                .map_err(|e| Error::Checkpoint(format!("{}: {e}", train_path.display())))
        })?;
    model.load(&model_path)?;
    let optim = read_tensors(&train_path)?
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("optimizer.").map(|k| (k.to_string(), v)))
        .collect();
    optimizer.load_state(&optim)?;
    model.set_dropout_step(state.dropout_step);
    Ok(state)
}
