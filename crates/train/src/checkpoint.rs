//! Checkpoints: the model as a PyTorch state_dict (`<name>.safetensors`,
//! loadable by PyTorch as is) and beside it the training file
//! (`<name>.train.safetensors`): the optimizer state, the trainer's progress
//! and a copy of the weights. The training file is written first, in one
//! atomic rename, and is the commit: a kill before it leaves the previous
//! checkpoint whole, a kill after it leaves a weights file that resuming
//! rewrites from the copy.

use std::collections::HashMap;

use hark_models::{Model, read_metadata, read_tensors, save_tensors};
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, EpochMetrics, Error, Result, RunDir, StatefulOptimizer};

/// Metadata key of the completed epoch count, in both files.
const EPOCH_KEY: &str = "hark.epoch";
/// Metadata key of the [`TrainState`] JSON, in the training file.
const STATE_KEY: &str = "hark.state";
/// Prefix of the optimizer's tensors in the training file.
const OPTIMIZER: &str = "optimizer.";
/// Prefix of the copy of the weights in the training file.
const WEIGHTS: &str = "model.";

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
    let weights = model.params().state_dict();
    let training: Vec<_> = (optimizer.state().into_iter())
        .map(|(k, v)| (format!("{OPTIMIZER}{k}"), v))
        .chain(
            weights
                .iter()
                .map(|(k, v)| (format!("{WEIGHTS}{k}"), v.clone())),
        )
        .collect();
    save_tensors(&training, &meta, &train_path)?;
    pause_for_tests(&train_path);
    save_tensors(&weights, &epoch, &model_path)?;
    Ok(())
}

/// With `HARK_TEST_PAUSE_AFTER_COMMIT` set to a number of milliseconds,
/// sleeps between the two writes of a checkpoint and says so on stderr,
/// so that a test can kill the process there.
fn pause_for_tests(committed: &std::path::Path) {
    if let Some(ms) = std::env::var("HARK_TEST_PAUSE_AFTER_COMMIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("paused after committing {}", committed.display());
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Restores checkpoint `which` of `run` into `model` and `optimizer` and
/// returns the training state, after [`repair_checkpoint`].
///
/// # Errors
/// [`Error::Checkpoint`] when the state is unreadable, or when the two
/// files disagree on the epoch and cannot be repaired (a training file
/// written before it held a copy of the weights); the model's and
/// optimizer's own load errors (NaN or infinite weights among them).
pub fn load_checkpoint(
    run: &RunDir,
    which: Checkpoint,
    model: &Model,
    optimizer: &mut dyn StatefulOptimizer,
) -> Result<TrainState> {
    repair_checkpoint(run, which)?;
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
        .filter_map(|(k, v)| k.strip_prefix(OPTIMIZER).map(|k| (k.to_string(), v)))
        .collect();
    optimizer.load_state(&optim)?;
    model.set_dropout_step(state.dropout_step);
    Ok(state)
}

/// Rewrites the weights file of checkpoint `which` from the copy in its
/// training file when a kill between the two writes left it missing, cut
/// short or from another epoch; returns whether it did.
///
/// # Errors
/// An unreadable training file, or a weights file that cannot be written.
pub fn repair_checkpoint(run: &RunDir, which: Checkpoint) -> Result<bool> {
    let (model_path, train_path) = (run.weights(which), run.training_state(which));
    if !train_path.exists() {
        return Ok(false);
    }
    let epoch = read_metadata(&train_path)?.get(EPOCH_KEY).cloned();
    let model_epoch = (read_metadata(&model_path).ok()).and_then(|m| m.get(EPOCH_KEY).cloned());
    if epoch == model_epoch {
        return Ok(false);
    }
    let weights: Vec<(String, candle_core::Tensor)> = (read_tensors(&train_path)?.into_iter())
        .filter_map(|(k, v)| k.strip_prefix(WEIGHTS).map(|k| (k.to_string(), v)))
        .collect();
    if weights.is_empty() {
        return Ok(false);
    }
    let meta = HashMap::from([(EPOCH_KEY.to_string(), epoch.unwrap_or_default())]);
    save_tensors(&weights, &meta, &model_path)?;
    Ok(true)
}
