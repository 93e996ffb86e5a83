//! One run: loaders, model, training, the best weights tested, and the
//! run directory written.

use hark_data::{Dataset, Example, Loader, Split, write_split_manifests};
use hark_models::{InputShape, Model, Output};
use serde::{Deserialize, Serialize};

use crate::loaders::with_statistics;
use crate::observer::RunLog;
use crate::run_dir::{write_file, write_json};
use crate::{
    Error, ExperimentConfig, Observer, Prepared, Result, RunDir, SPECS_GRID, SpecTile, Trainer,
    choose_threshold, curves_png, evaluate_crops, held_out, loader, specs_png, write_report,
};

/// What a run directory's `model.json` records to rebuild its model for
/// evaluation and prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The architecture.
    pub spec: hark_models::ModelSpec,
    /// What the last layer gives.
    #[serde(default, skip_serializing_if = "Output::is_softmax")]
    pub output: Output,
    /// For a sigmoid output: the threshold on the probability of class 1,
    /// chosen on the validation set, that eval, predict and listen decide by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// The input shape it was built for.
    pub input: InputShape,
}

impl ModelInfo {
    /// The model, initialised from `seed` (load a checkpoint into it).
    ///
    /// # Errors
    /// As [`Model::new`].
    pub fn build(&self, seed: u64) -> Result<Model> {
        Ok(Model::with_output(
            &self.spec,
            self.classes.len(),
            self.output,
            self.input,
            seed,
        )?)
    }

    /// The model built from `seed` with the state_dict at `weights`.
    ///
    /// # Errors
    /// As [`build`](Self::build); a checkpoint that is missing or does not
    /// fit the model.
    pub fn load(&self, seed: u64, weights: &std::path::Path) -> Result<Model> {
        let model = self.build(seed)?;
        model.load(weights)?;
        Ok(model)
    }
}

/// The held-out result of one run, as `report.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-averaged F1.
    pub macro_f1: f64,
    /// Test examples.
    pub examples: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose weights were tested: the best on validation, or
    /// the last when there is no validation set.
    pub best_epoch: usize,
    /// Training examples per second, over the run.
    pub samples_per_second: f64,
    /// Confusion matrix on the test set, row = truth.
    pub confusion: Vec<Vec<u64>>,
}

/// Keeps the run's split beside it, as seed 003 does: `train.csv`,
/// `val.csv`, `test.csv` and `split_summary.json` (the class balance of
/// each part), of the examples that were read.
fn write_split(prepared: &Prepared, splits: &[Split], run: &RunDir) -> Result<()> {
    let examples = (prepared.dataset.examples.iter())
        .zip(splits)
        .zip(&prepared.clip_of)
        .filter(|(_, clip)| clip.is_some())
        .map(|((e, &split), _)| Example {
            split: Some(split),
            ..e.clone()
        })
        .collect();
    let all = &prepared.dataset;
    let dataset = Dataset {
        kind: all.kind.clone(),
        classes: all.classes.clone(),
        examples,
        folds: all.folds,
        skipped: Vec::new(),
    };
    Ok(write_split_manifests(&dataset, run.path())?)
}

/// `specs.png`: the first training examples of each class in epoch 0's
/// batches, augmented and normalised, as the model is fed them (seeds 003
/// and 004 plot these so that a user sees the input is sane).
fn write_specs(train: &Loader, classes: &[String], run: &RunDir) -> Result<()> {
    let (max_classes, per_class) = SPECS_GRID;
    let wanted = classes.len().min(max_classes) * per_class;
    let mut count = vec![0usize; classes.len()];
    let mut tiles = Vec::new();
    // Shuffled batches fill the grid in a few; a rare class is not waited for.
    for batch in train.epoch(0).take(64) {
        let batch = batch?;
        let [_, c, m, t] = batch.shape;
        for (i, (&label, &frames)) in batch.labels.iter().zip(&batch.lengths).enumerate() {
            if label >= max_classes || count[label] == per_class {
                continue;
            }
            count[label] += 1;
            let start = i * c * m * t;
            let values = (0..m)
                .flat_map(|r| &batch.data[start + r * t..start + r * t + frames])
                .copied()
                .collect();
            tiles.push(SpecTile {
                label,
                values,
                rows: m,
                frames,
            });
        }
        if tiles.len() == wanted {
            break;
        }
    }
    let title =
        "training inputs as the model sees them (epoch 1: augmented, normalised; channel 1)";
    specs_png(&run.specs_png(), title, classes, &tiles)
}

/// Trains on the `Train` examples of `splits`, validates on `Val`, tests the
/// best weights (the last without `Val` examples) on `Test` and writes the run directory `run` (resuming a run
/// found there), `train.log` included; `observer` sees the run go.
///
/// # Errors
/// An empty training or test set, or anything training fails on.
pub fn run(
    prepared: &Prepared,
    config: &ExperimentConfig,
    splits: &[Split],
    run: &RunDir,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    let (train_part, val_part, test_part) = (
        prepared.subset(splits, Split::Train),
        prepared.subset(splits, Split::Val),
        prepared.subset(splits, Split::Test),
    );
    for (name, part) in [("training", &train_part), ("test", &test_part)] {
        if part.is_empty() {
            return Err(Error::EmptySplit(name));
        }
    }
    run.create()?;
    run.remove_temporaries()?;
    write_split(prepared, splits, run)?;
    // Statistics computed on the training part go into the run's config,
    // which eval, predict and listen read.
    let config = &with_statistics(prepared, config, &train_part)?;
    write_file(&run.config(), config.to_toml(&run.config())?.as_bytes())?;
    let train = loader(prepared, config, &train_part, true)?;
    write_specs(&train, &prepared.dataset.classes, run)?;
    // Validation during training sees the first placement only; the test
    // set and the decision threshold see every one (`held_out`).
    let val = match val_part.is_empty() {
        true => None,
        false => Some(loader(prepared, config, &val_part, false)?),
    };

    let mut info = ModelInfo {
        spec: config.model.spec.clone(),
        output: config.model.output,
        threshold: None,
        classes: prepared.dataset.classes.clone(),
        input: prepared.input_shape()?,
    };
    write_json(&run.model_info(), &info)?;
    let model = info.build(config.train.seed)?;
    let mut log = RunLog::open(&run.log(), observer)?;
    log.note(&format!(
        "{}: {} with {} parameters on {}x{}x{} inputs; {} training, {} validation, {} test examples",
        run.path().display(),
        config.model.spec.kind(),
        model.num_trainable(),
        info.input.channels,
        info.input.height,
        info.input.frames,
        train.examples_per_epoch(),
        val.as_ref().map_or(0, Loader::examples_per_epoch),
        test_part.examples.len()
    ));
    let mut trainer = Trainer::new(&model, &config.train, train.batches_per_epoch())?;
    if trainer.resume(run)? {
        log.note(&format!(
            "resuming after epoch {} of {}",
            trainer.state().epoch,
            config.train.epochs
        ));
    }
    let state = trainer.fit(&train, val.as_ref(), run, &mut log)?.clone();
    model.load(&run.best_weights()?)?;
    let mut eval = evaluate_crops(&model, held_out(prepared, config, &test_part))?;
    if info.output == Output::Sigmoid {
        let threshold = match val {
            Some(_) => choose_threshold(&evaluate_crops(
                &model,
                held_out(prepared, config, &val_part),
            )?),
            None => 0.5,
        };
        log.note(&format!(
            "decision threshold {threshold:.4} (macro F1 on validation)"
        ));
        info.threshold = Some(threshold);
        write_json(&run.model_info(), &info)?;
        eval = eval.with_threshold(threshold);
    }
    let result = write_report(prepared, &eval, &test_part.examples, run, &state)?;
    curves_png(&run.curves_png(), &state.history)?;
    log.note(&format!(
        "test: accuracy {:.4}, macro F1 {:.4} with the weights of epoch {}",
        result.accuracy, result.macro_f1, result.best_epoch
    ));
    Ok(result)
}
