//! The training loop: seeded batches, train and eval modes, gradient
//! clipping, the schedule, early stopping, NaN detection, per-epoch metrics
//! and checkpoints, and resuming to exactly the metrics of an uninterrupted
//! run.

use std::borrow::Borrow;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use hark_data::{Batch, Loader, example_rng, write_atomic};
use hark_models::{Model, class_probabilities, classification_loss, smoothed_classification_loss};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{load_checkpoint, save_checkpoint};
use crate::config::Monitor;
use crate::{
    Checkpoint, Error, LrSchedule, Observer, Result, RunDir, StatefulOptimizer, TrainConfig,
    TrainState,
};

/// One epoch's numbers: one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last batch.
    pub lr: f64,
    /// Mean training loss over the epoch's examples.
    pub train_loss: f64,
    /// Training accuracy (with augmentation and dropout on).
    pub train_accuracy: f64,
    /// Validation loss, when there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when there is a validation set.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training examples per second.
    pub samples_per_second: f64,
}

impl std::fmt::Display for EpochMetrics {
    /// `epoch 3: train loss 1.2345 acc 0.456, val loss ... acc ..., lr ..., N samples/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}: train loss {:.4} acc {:.3}",
            self.epoch, self.train_loss, self.train_accuracy
        )?;
        if let (Some(l), Some(a)) = (self.val_loss, self.val_accuracy) {
            write!(f, ", val loss {l:.4} acc {a:.3}")?;
        }
        write!(
            f,
            ", lr {:.2e}, {:.0} samples/s, {:.1} s",
            self.lr, self.samples_per_second, self.seconds
        )
    }
}

/// One example's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Index of the example in the loader's clips.
    pub index: usize,
    /// True class.
    pub label: usize,
    /// Most probable class.
    pub predicted: usize,
    /// Probability of every class.
    pub probabilities: Vec<f32>,
}

/// A pass over a loader in eval mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy (binary for a sigmoid output).
    pub loss: f64,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Every example, in loader order.
    pub predictions: Vec<Prediction>,
}

/// A batch as the `[B, C, M, T]` tensor models take.
///
/// # Errors
/// Only from tensor creation.
pub fn batch_tensor(batch: &Batch) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        &batch.data,
        batch.shape.to_vec(),
        &Device::Cpu,
    )?)
}

/// Salt of the mixup generator's seed, so that its draws are not those of
/// the example augmentations.
const MIXUP_STREAM: u64 = 0x6d69_7875_705f_7631;

/// Blends `batch` with a shuffled copy of itself: returns the mixed batch
/// (each length the longer of the pair's), the weight `l` of the original
/// examples (`l >= 0.5`, drawn from Beta(`alpha`, `alpha`)) and the labels
/// of their partners.
fn mixup(batch: &Batch, alpha: f64, rng: &mut impl Rng) -> Result<(Batch, f64, Vec<usize>)> {
    let beta = Beta::new(alpha, alpha).map_err(|e| Error::Config {
        field: "train.mixup",
        rule: "must be a finite alpha > 0",
        got: format!("{alpha} ({e})"),
    })?;
    let lambda: f64 = beta.sample(rng);
    let lambda = lambda.max(1.0 - lambda);
    let mut order: Vec<usize> = (0..batch.labels.len()).collect();
    order.shuffle(rng);
    let size = batch.shape[1..].iter().product::<usize>();
    let mut mixed = batch.clone();
    let (wa, wb) = (lambda as f32, (1.0 - lambda) as f32);
    for (k, &j) in order.iter().enumerate() {
        let b = &batch.data[j * size..(j + 1) * size];
        for (x, &y) in mixed.data[k * size..(k + 1) * size].iter_mut().zip(b) {
            *x = wa * *x + wb * y;
        }
        mixed.lengths[k] = batch.lengths[k].max(batch.lengths[j]);
    }
    let partners = order.iter().map(|&j| batch.labels[j]).collect();
    Ok((mixed, lambda, partners))
}

/// Runs `model` in eval mode over every batch of `loader` (epoch 0 of a
/// loader that should not augment); the predictions are in loader order
/// whatever order the batches took.
///
/// # Errors
/// [`Error::Data`] from the loader, or a failed forward pass.
pub fn evaluate(model: &Model, loader: &Loader) -> Result<Evaluation> {
    let (mut loss_sum, mut correct, mut predictions) = (0.0f64, 0usize, Vec::new());
    for batch in loader.epoch(0) {
        let batch = batch?;
        // On a worker of the pool, as a training step.
        let (loss, probs) = rayon::scope(|_| -> Result<(f32, Vec<Vec<f32>>)> {
            let logits =
                model.forward_masked(&batch_tensor(&batch)?, Some(&batch.lengths), false)?;
            let loss = classification_loss(&logits, &batch.labels)?.to_scalar()?;
            Ok((loss, class_probabilities(&logits)?.to_vec2()?))
        })?;
        loss_sum += loss as f64 * batch.labels.len() as f64;
        for ((p, &label), &index) in probs.into_iter().zip(&batch.labels).zip(&batch.indices) {
            let predicted = argmax(&p);
            correct += usize::from(predicted == label);
            predictions.push(Prediction {
                index,
                label,
                predicted,
                probabilities: p,
            });
        }
    }
    // A loader may mix its batches (see `loader_config`); results keep its order.
    predictions.sort_by_key(|p| p.index);
    let n = predictions.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        predictions,
    })
}

/// [`evaluate`] over each placement of the same held-out clips
/// ([`crate::held_out`]): every example's class probabilities are the mean
/// over its placements and its prediction their most probable class; the
/// loss is the mean of the placements' losses. One loader gives exactly
/// [`evaluate`]'s result. Loaders are taken one at a time, so only one
/// placement of the held-out set is in memory.
///
/// # Errors
/// As [`evaluate`] or the loaders; [`Error::NoExamples`] without loaders.
pub fn evaluate_crops<L: Borrow<Loader>>(
    model: &Model,
    loaders: impl IntoIterator<Item = Result<L>>,
) -> Result<Evaluation> {
    let mut loaders = loaders.into_iter();
    let first = loaders.next().ok_or(Error::NoExamples)??;
    let mut eval = evaluate(model, first.borrow())?;
    let mut crops = 1;
    for loader in loaders {
        let other = evaluate(model, loader?.borrow())?;
        crops += 1;
        eval.loss += other.loss;
        for (p, q) in eval.predictions.iter_mut().zip(other.predictions) {
            p.probabilities
                .iter_mut()
                .zip(q.probabilities)
                .for_each(|(a, b)| *a += b);
        }
    }
    if crops == 1 {
        return Ok(eval);
    }
    eval.loss /= crops as f64;
    for p in &mut eval.predictions {
        p.probabilities.iter_mut().for_each(|a| *a /= crops as f32);
        p.predicted = argmax(&p.probabilities);
    }
    eval.recount();
    Ok(eval)
}

impl Evaluation {
    /// The same predictions decided by a threshold on the probability of
    /// class 1 instead of the most probable class (binary classifiers).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        for p in &mut self.predictions {
            p.predicted = usize::from(p.probabilities[1] >= threshold);
        }
        self.recount();
        self
    }

    /// The accuracy of the predictions as they now stand.
    fn recount(&mut self) {
        let correct = (self.predictions.iter())
            .filter(|p| p.predicted == p.label)
            .count();
        self.accuracy = correct as f64 / self.predictions.len().max(1) as f64;
    }
}

/// The threshold on the probability of class 1 that gives the best macro
/// F1 over `eval`'s binary predictions (a validation set): the midpoints
/// between its distinct probabilities, and 0.5, are tried; ties go to the
/// one nearest 0.5. With no predictions, 0.5.
pub fn choose_threshold(eval: &Evaluation) -> f32 {
    let mut p: Vec<f32> = eval
        .predictions
        .iter()
        .map(|p| p.probabilities[1])
        .collect();
    p.sort_by(f32::total_cmp);
    p.dedup();
    let candidates = p.windows(2).map(|w| 0.5 * (w[0] + w[1])).chain([0.5]);
    let macro_f1 = |t: f32| {
        let mut counts = [[0usize; 2]; 2];
        for q in &eval.predictions {
            counts[q.label.min(1)][usize::from(q.probabilities[1] >= t)] += 1;
        }
        let f1 = |c: usize| {
            let tp = counts[c][c] as f64;
            let (predicted, actual) = (tp + counts[1 - c][c] as f64, tp + counts[c][1 - c] as f64);
            if predicted + actual == 0.0 {
                1.0
            } else {
                2.0 * tp / (predicted + actual)
            }
        };
        (f1(0) + f1(1)) / 2.0
    };
    candidates
        .map(|t| (macro_f1(t), -(t - 0.5).abs(), t))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map_or(0.5, |(_, _, t)| t)
}

/// The index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Scales the gradients of `vars` so their global L2 norm is at most
/// `max_norm`, as `torch.nn.utils.clip_grad_norm_`; returns the norm before.
///
/// # Errors
/// Only from tensor ops.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// Trains one model: owns its optimizer, schedule and progress.
#[derive(Debug)]
pub struct Trainer<'a> {
    model: &'a Model,
    config: TrainConfig,
    vars: Vec<(String, Var)>,
    optimizer: Box<dyn StatefulOptimizer>,
    schedule: LrSchedule,
    state: TrainState,
}

impl<'a> Trainer<'a> {
    /// A trainer for `model` with `steps_per_epoch` batches per epoch.
    ///
    /// # Errors
    /// [`Error::Config`] for an optimizer or schedule out of range.
    pub fn new(model: &'a Model, config: &TrainConfig, steps_per_epoch: usize) -> Result<Self> {
        let vars = model.params().trainable();
        let optimizer = config.optimizer.build(vars.clone())?;
        let schedule = LrSchedule::new(
            &config.schedule,
            config.optimizer.lr(),
            config.epochs,
            steps_per_epoch,
        )?;
        Ok(Self {
            model,
            config: config.clone(),
            vars,
            optimizer,
            schedule,
            state: TrainState::default(),
        })
    }

    /// Progress so far.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Continues from the `last` checkpoint in `dir`, if there is one;
    /// returns whether there was.
    ///
    /// # Errors
    /// As [`load_checkpoint`].
    pub fn resume(&mut self, run: &RunDir) -> Result<bool> {
        if !run.training_state(Checkpoint::Last).exists() {
            return Ok(false);
        }
        crate::repair_checkpoint(run, Checkpoint::Best)?;
        let optimizer = self.optimizer.as_mut();
        self.state = load_checkpoint(run, Checkpoint::Last, self.model, optimizer)?;
        Ok(true)
    }

    /// One training epoch (`epoch` is 0-based), reporting each batch to
    /// `observer`; returns (mean loss, accuracy, examples).
    ///
    /// # Errors
    /// [`Error::NonFinite`] when the loss is NaN or infinite, [`Error::Data`]
    /// from the loader.
    pub fn train_epoch(
        &mut self,
        loader: &Loader,
        epoch: usize,
        observer: &mut dyn Observer,
    ) -> Result<(f64, f64, usize)> {
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (i, batch) in loader.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            // On a worker of the pool: the model's parallel loops then start
            // there, instead of each handing its work over from this thread
            // and waiting (12% of a 1-thread AudioCnn step). The loader is
            // read out here, outside: the worker never waits on it.
            let (value, right) = rayon::scope(|_| self.step(&batch, epoch, i))?;
            let n = batch.labels.len();
            loss_sum += value as f64 * n as f64;
            correct += right;
            seen += n;
            observer.batch(seen, loss_sum / seen as f64, correct as f64 / seen as f64);
        }
        let n = seen.max(1) as f64;
        Ok((loss_sum / n, correct as f64 / n, seen))
    }

    /// One optimisation step on `batch` (step `i` of `epoch`): its loss and
    /// how many of its examples the model got right before the step.
    pub(crate) fn step(&mut self, batch: &Batch, epoch: usize, i: usize) -> Result<(f32, usize)> {
        let eps = self.config.label_smoothing;
        let (logits, loss) = if self.config.mixup > 0.0 {
            let mut rng = example_rng(self.config.seed ^ MIXUP_STREAM, epoch as u64, i as u64);
            let (mixed, lambda, partners) = mixup(batch, self.config.mixup, &mut rng)?;
            let logits =
                self.model
                    .forward_masked(&batch_tensor(&mixed)?, Some(&mixed.lengths), true)?;
            let a = smoothed_classification_loss(&logits, &batch.labels, eps)?;
            let b = smoothed_classification_loss(&logits, &partners, eps)?;
            let loss = ((a * lambda)? + (b * (1.0 - lambda))?)?;
            (logits, loss)
        } else {
            let logits =
                self.model
                    .forward_masked(&batch_tensor(batch)?, Some(&batch.lengths), true)?;
            let loss = smoothed_classification_loss(&logits, &batch.labels, eps)?;
            (logits, loss)
        };
        let value: f32 = loss.to_scalar()?;
        if !value.is_finite() {
            return Err(Error::NonFinite {
                epoch: epoch + 1,
                step: i + 1,
                value,
            });
        }
        let mut grads = loss.backward()?;
        if let Some(max) = self.config.grad_clip {
            clip_grad_norm(&mut grads, &self.vars, max)?;
        }
        if let Some(m) = self.schedule.momentum(self.state.step) {
            self.optimizer.set_momentum(m);
        }
        self.optimizer
            .step(&grads, self.schedule.lr(self.state.step))?;
        self.state.step += 1;
        let rows = class_probabilities(&logits.detach())?.to_vec2::<f32>()?;
        let right = rows.iter().zip(&batch.labels);
        Ok((value, right.filter(|(row, l)| argmax(row) == **l).count()))
    }

    /// Trains from the current state to the configured epoch count, writing
    /// `metrics.jsonl`, `last.*` every epoch and `best.*` on improvement
    /// (every epoch without validation data) to `dir`. `observer` sees batches and epochs and may break off after an
    /// epoch (the run can then be resumed).
    ///
    /// # Errors
    /// As [`train_epoch`](Self::train_epoch) and [`evaluate`]; a file that
    /// cannot be written.
    pub fn fit(
        &mut self,
        train: &Loader,
        val: Option<&Loader>,
        run: &RunDir,
        observer: &mut dyn Observer,
    ) -> Result<&TrainState> {
        if val.is_none() && self.config.early_stopping.is_some() {
            return Err(Error::Config {
                field: "train.early_stopping",
                rule: "needs validation data",
                got: "no validation examples".into(),
            });
        }
        run.create()?;
        let monitor = self
            .config
            .early_stopping
            .map_or(Monitor::ValLoss, |e| e.monitor);
        while self.state.epoch < self.config.epochs && !self.state.stopped_early {
            let epoch = self.state.epoch;
            let start = Instant::now();
            observer.epoch_start(epoch + 1, self.config.epochs, train.examples_per_epoch());
            let (train_loss, train_accuracy, seen) = self.train_epoch(train, epoch, observer)?;
            let train_seconds = start.elapsed().as_secs_f64();
            let eval = val.map(|v| evaluate(self.model, v)).transpose()?;
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                lr: self.schedule.lr(self.state.step.saturating_sub(1)),
                train_loss,
                train_accuracy,
                val_loss: eval.as_ref().map(|e| e.loss),
                val_accuracy: eval.as_ref().map(|e| e.accuracy),
                seconds: start.elapsed().as_secs_f64(),
                samples_per_second: seen as f64 / train_seconds.max(1e-9),
            };
            // Without validation data there is nothing to choose by: the
            // latest weights are the run's.
            let watched = match (monitor, &eval) {
                (Monitor::ValLoss, Some(e)) => e.loss,
                (Monitor::ValAccuracy, Some(e)) => e.accuracy,
                (Monitor::ValLoss, None) => train_loss,
                (Monitor::ValAccuracy, None) => train_accuracy,
            };
            let improved = eval.is_none()
                || self
                    .state
                    .best
                    .is_none_or(|(best, _)| monitor.improves(watched, best));
            if improved {
                self.state.best = Some((watched, epoch + 1));
                self.state.stale = 0;
            } else {
                self.state.stale += 1;
            }
            self.state.stopped_early = self
                .config
                .early_stopping
                .is_some_and(|e| self.state.stale >= e.patience);
            self.state.epoch += 1;
            self.state.dropout_step = self.model.dropout_step();
            self.state.history.push(metrics.clone());
            self.write_metrics(run)?;
            if improved {
                save_checkpoint(
                    run,
                    Checkpoint::Best,
                    self.model,
                    self.optimizer.as_ref(),
                    &self.state,
                )?;
            }
            let every = self.config.save_every.map_or(0, |n| n.get());
            let kept = (every > 0 && self.state.epoch.is_multiple_of(every))
                .then_some(Checkpoint::Epoch(self.state.epoch));
            for which in [Some(Checkpoint::Last), kept].into_iter().flatten() {
                save_checkpoint(run, which, self.model, self.optimizer.as_ref(), &self.state)?;
            }
            if observer.epoch_end(&metrics).is_break() {
                break;
            }
        }
        Ok(&self.state)
    }

    fn write_metrics(&self, run: &RunDir) -> Result<()> {
        let path = run.metrics();
        let mut text = String::new();
        for m in &self.state.history {
            text.push_str(&serde_json::to_string(m).map_err(crate::error::json_at(&path))?);
            text.push('\n');
        }
        Ok(write_atomic(&path, text.as_bytes())?)
    }
}

#[cfg(test)]
mod threshold_tests {
    use super::*;

    fn eval(cases: &[(usize, f32)]) -> Evaluation {
        let predictions = (cases.iter().enumerate())
            .map(|(index, &(label, p))| Prediction {
                index,
                label,
                predicted: usize::from(p >= 0.5),
                probabilities: vec![1.0 - p, p],
            })
            .collect();
        Evaluation {
            loss: 0.0,
            accuracy: 0.0,
            predictions,
        }
    }

    #[test]
    fn the_threshold_separating_the_classes_is_chosen_and_applied() {
        // Every probability is low, but class 1's are the higher ones.
        let e = eval(&[(0, 0.05), (0, 0.1), (1, 0.3), (1, 0.4), (0, 0.2)]);
        let t = choose_threshold(&e);
        assert!((t - 0.25).abs() < 1e-6, "{t}");
        let e = e.with_threshold(t);
        assert_eq!(e.accuracy, 1.0);
        assert_eq!(e.predictions[2].predicted, 1);
        // Already separated at 0.5: 0.5 itself wins the tie.
        assert_eq!(choose_threshold(&eval(&[(0, 0.1), (1, 0.9)])), 0.5);
        assert_eq!(choose_threshold(&eval(&[])), 0.5);
    }
}

#[cfg(test)]
mod mixup_tests {
    use super::*;

    #[test]
    fn a_mixed_batch_blends_each_example_with_its_partner() {
        // Three examples of 1x1x2 values; the third is one frame long.
        let batch = Batch {
            data: vec![1.0, 2.0, 10.0, 20.0, 100.0, 0.0],
            shape: [3, 1, 1, 2],
            labels: vec![0, 1, 2],
            lengths: vec![2, 2, 1],
            indices: vec![0, 1, 2],
        };
        let draw = |seed| mixup(&batch, 0.4, &mut example_rng(seed, 0, 0)).unwrap();
        for seed in 0..20 {
            let (mixed, l, partners) = draw(seed);
            assert!((0.5..=1.0).contains(&l), "{l}");
            for (k, &p) in partners.iter().enumerate() {
                let j = batch.labels.iter().position(|&c| c == p).unwrap();
                for v in 0..2 {
                    let want =
                        l as f32 * batch.data[2 * k + v] + (1.0 - l) as f32 * batch.data[2 * j + v];
                    assert!((mixed.data[2 * k + v] - want).abs() < 1e-4);
                }
                assert_eq!(mixed.lengths[k], batch.lengths[k].max(batch.lengths[j]));
            }
            // A permutation of the batch, and the same for the same generator.
            let mut sorted = partners.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2]);
            assert_eq!(draw(seed).0.data, mixed.data);
        }
        // The weights vary with the generator.
        assert_ne!(draw(0).1, draw(1).1);
    }
}
