//! From an experiment config to results: load the dataset, extract (and
//! cache) features once, split, train, test on held-out data and write the
//! run directory; cross-validation runs that per fold and summarises.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hark_data::{
    ChunkOptions, Dataset, FeatureCache, FeatureExtractor, Features, LoadOptions, Loader,
    LoaderConfig, Progress, Split, SplitRatios, Stage, chunk_dataset, extract_all, fold_split,
    open_dataset, stratified_split, write_atomic,
};
use hark_models::{InputShape, Model};
use serde::{Deserialize, Serialize};

use crate::checkpoint::checkpoint_paths;
use crate::observer::RunLog;
use crate::{
    ClassificationReport, ConfusionMatrix, Error, Evaluation, ExperimentConfig, Observer, Result,
    Trainer, Validation, confusion_png, curves_png, evaluate,
};

/// A dataset with its features extracted: what every split of an
/// experiment draws from.
#[derive(Debug)]
pub struct Prepared {
    /// The dataset (examples whose files failed are still listed).
    pub dataset: Dataset,
    /// Features per example; `None` for a file that could not be read.
    pub features: Vec<Option<Features>>,
    /// The extractor, also used to turn augmented waveforms into log-mels.
    pub extractor: FeatureExtractor,
    /// Files skipped while loading or extracting, with the reason.
    pub skipped: Vec<hark_data::Skipped>,
    /// Features read from the cache rather than computed.
    pub cache_hits: usize,
}

fn data_err(e: impl std::fmt::Display) -> Error {
    Error::Data(e.to_string())
}

/// Loads and extracts the dataset of `config` (through its feature cache).
///
/// # Errors
/// [`Error::Data`] for a dataset that cannot be loaded, a bad file under
/// `strict`, or a cache that cannot be written.
pub fn prepare(config: &ExperimentConfig, progress: &dyn Progress) -> Result<Prepared> {
    let kind = config
        .data
        .kind
        .parse()
        .map_err(|e: String| Error::Config {
            field: "data.kind",
            rule: "must be urbansound8k, esc50, esc10, speakers, folders or csv",
            got: e,
        })?;
    let options = LoadOptions {
        classes: config.data.classes.clone(),
        strict: config.data.strict,
    };
    let mut dataset = open_dataset(kind, &config.data.path, &options).map_err(data_err)?;
    if let Some(seconds) = config.data.chunk_seconds {
        let chunks = ChunkOptions {
            seconds,
            hop_seconds: None,
            tail: hark_dsp::Tail::Drop,
        };
        dataset = chunk_dataset(dataset, &chunks, config.data.strict).map_err(data_err)?;
    }
    let extractor = FeatureExtractor::new(&config.features).map_err(data_err)?;
    let stage = if config.augment.needs_waveform() {
        Stage::Waveform
    } else {
        Stage::LogMel
    };
    let cache_dir = config
        .data
        .cache_dir
        .clone()
        .unwrap_or_else(|| cache_dir_for(&config.data.path));
    let cache = FeatureCache::new(&cache_dir, &config.features);
    let extracted = extract_all(
        &dataset,
        &extractor,
        stage,
        Some(&cache),
        config.data.strict,
        progress,
    )
    .map_err(data_err)?;
    let mut skipped = dataset.skipped.clone();
    skipped.extend(extracted.failed);
    Ok(Prepared {
        dataset,
        features: extracted.features,
        extractor,
        skipped,
        cache_hits: extracted.cache_hits,
    })
}

/// `<dataset>/.hark-cache`, or beside the CSV for a CSV dataset.
fn cache_dir_for(path: &Path) -> PathBuf {
    let root = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    root.join(".hark-cache")
}

impl Prepared {
    /// The input shape models are built for: `[channels, mels, frames]` of
    /// the longest log-mel.
    ///
    /// # Errors
    /// [`Error::Data`] when no example could be read.
    pub fn input_shape(&self) -> Result<InputShape> {
        // The longest clip has the most frames; a waveform's log-mel shape
        // is found by transforming that one clip.
        let longest = self
            .features
            .iter()
            .flatten()
            .max_by_key(|f| f.frames)
            .ok_or_else(|| Error::Data("no example could be read".into()))?;
        let [channels, height, frames] = if longest.n_mels == 1 {
            self.extractor.logmel(longest).map_err(data_err)?.shape()
        } else {
            longest.shape()
        };
        Ok(InputShape {
            channels,
            height,
            frames,
        })
    }

    /// The folds that hold examples, in order (a corpus may use fewer than
    /// its layout's ten).
    pub fn folds(&self) -> Vec<u32> {
        let mut folds: Vec<u32> = self
            .dataset
            .examples
            .iter()
            .filter_map(|e| e.fold)
            .collect();
        folds.sort_unstable();
        folds.dedup();
        folds
    }

    /// The split of every example for test fold `fold` (datasets with
    /// folds) or for the dataset's own or a seeded stratified split.
    ///
    /// # Errors
    /// [`Error::Config`] for a fold out of range or a fold asked of a
    /// dataset without folds.
    pub fn splits(&self, config: &ExperimentConfig, fold: Option<u32>) -> Result<Vec<Split>> {
        let ex = &self.dataset.examples;
        let labels: Vec<usize> = ex.iter().map(|e| e.label).collect();
        let groups: Vec<&str> = ex.iter().map(|e| e.group.as_str()).collect();
        match (self.dataset.folds, fold) {
            (Some(_), Some(k)) => {
                let present = self.folds();
                let Some(at) = present.iter().position(|&f| f == k) else {
                    return Err(Error::Config {
                        field: "fold",
                        rule: "must be one of the dataset's folds",
                        got: format!("{k} (folds: {present:?})"),
                    });
                };
                let folds: Vec<u32> = ex.iter().map(|e| e.fold.unwrap_or(0)).collect();
                let next = present[(at + 1) % present.len()];
                let val = (config.data.validation == Validation::NextFold && present.len() > 2)
                    .then_some(next);
                let mut splits = fold_split(&folds, k, val);
                if val.is_none() {
                    // A group-aware share of the training folds validates.
                    let train: Vec<usize> = (0..ex.len())
                        .filter(|&i| splits[i] == Split::Train)
                        .collect();
                    let ratios = SplitRatios {
                        train: 1.0 - config.data.split.val,
                        val: config.data.split.val,
                        test: 0.0,
                    };
                    let sub = stratified_split(
                        &train.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
                        &train.iter().map(|&i| groups[i]).collect::<Vec<_>>(),
                        ratios,
                        config.train.seed,
                    );
                    for (&i, s) in train.iter().zip(sub) {
                        splits[i] = s;
                    }
                }
                Ok(splits)
            }
            (None, Some(k)) => Err(Error::Config {
                field: "fold",
                rule: "needs a dataset with folds",
                got: k.to_string(),
            }),
            (_, None) if ex.iter().all(|e| e.split.is_some()) => {
                Ok(ex.iter().map(|e| e.split.unwrap_or(Split::Train)).collect())
            }
            (_, None) => Ok(stratified_split(
                &labels,
                &groups,
                config.data.split,
                config.train.seed,
            )),
        }
    }

    /// Clips and labels of the readable examples in `split`, with their
    /// dataset indices.
    pub fn subset(
        &self,
        splits: &[Split],
        split: Split,
    ) -> (Vec<Features>, Vec<usize>, Vec<usize>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for (i, (f, s)) in self.features.iter().zip(splits).enumerate() {
            if let (Some(f), true) = (f, *s == split) {
                out.0.push(f.clone());
                out.1.push(self.dataset.examples[i].label);
                out.2.push(i);
            }
        }
        out
    }
}

/// What a run directory's `model.json` records to rebuild its model for
/// evaluation and prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The architecture.
    pub spec: hark_models::ModelSpec,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// The input shape it was built for.
    pub input: InputShape,
}

impl ModelInfo {
    /// Reads `<dir>/model.json`.
    ///
    /// # Errors
    /// [`Error::Data`] naming the file when it is missing or malformed.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))
    }

    /// The model, initialised from `seed` (load a checkpoint into it).
    ///
    /// # Errors
    /// As [`Model::new`].
    pub fn build(&self, seed: u64) -> Result<Model> {
        Ok(Model::new(
            &self.spec,
            self.classes.len(),
            self.input,
            seed,
        )?)
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
    /// The epoch whose weights were tested (the best on validation).
    pub best_epoch: usize,
    /// Training examples per second, over the run.
    pub samples_per_second: f64,
    /// Confusion matrix on the test set, row = truth.
    pub confusion: Vec<Vec<u64>>,
}

/// A loader over `part` (clips, labels): shuffled and augmented for
/// training; in order, plain and as log-mels otherwise.
///
/// # Errors
/// [`Error::Data`] for clips the loader rejects.
pub fn loader(
    extractor: &FeatureExtractor,
    config: &ExperimentConfig,
    part: (Vec<Features>, Vec<usize>),
    training: bool,
) -> Result<Loader> {
    let augment = if training {
        config.augment.clone()
    } else {
        Default::default()
    };
    // Held-out clips are log-mels even when training clips are waveforms.
    let clips = if !training && part.0.first().is_some_and(|f| f.n_mels == 1) {
        part.0
            .iter()
            .map(|w| extractor.logmel(w))
            .collect::<std::result::Result<_, _>>()
            .map_err(data_err)?
    } else {
        part.0
    };
    let loader_config = LoaderConfig {
        batch_size: config.train.batch_size,
        shuffle: training,
        // A last batch of one example cannot be batch-normalised.
        drop_last: training && clips.len() % config.train.batch_size == 1,
        seed: config.train.seed,
        pad_value: 0.0,
    };
    Loader::new(
        clips,
        part.1,
        extractor.clone(),
        augment,
        config.train.normalization,
        loader_config,
    )
    .map_err(Error::Data)
}

/// Trains on the `Train` examples of `splits`, validates on `Val`, tests the
/// best weights on `Test` and writes the run directory `dir` (resuming a run
/// found there), `train.log` included; `observer` sees the run go.
///
/// # Errors
/// An empty training or test set, or anything training fails on.
pub fn run(
    prepared: &Prepared,
    config: &ExperimentConfig,
    splits: &[Split],
    dir: &Path,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    let (train_part, val_part, test_part) = (
        prepared.subset(splits, Split::Train),
        prepared.subset(splits, Split::Val),
        prepared.subset(splits, Split::Test),
    );
    for (name, part) in [("training", &train_part), ("test", &test_part)] {
        if part.0.is_empty() {
            return Err(Error::Data(format!("the {name} set is empty")));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Data(format!("{}: {e}", dir.display())))?;
    write_atomic(&dir.join("config.toml"), config.to_toml()?.as_bytes()).map_err(data_err)?;
    let train = loader(
        &prepared.extractor,
        config,
        (train_part.0, train_part.1),
        true,
    )?;
    let val = if val_part.0.is_empty() {
        None
    } else {
        Some(loader(
            &prepared.extractor,
            config,
            (val_part.0, val_part.1),
            false,
        )?)
    };
    let test_indices = test_part.2.clone();
    let test = loader(
        &prepared.extractor,
        config,
        (test_part.0, test_part.1),
        false,
    )?;

    let info = ModelInfo {
        spec: config.model.clone(),
        classes: prepared.dataset.classes.clone(),
        input: prepared.input_shape()?,
    };
    let json = serde_json::to_string_pretty(&info).map_err(data_err)?;
    write_atomic(&dir.join("model.json"), json.as_bytes()).map_err(data_err)?;
    let model = info.build(config.train.seed)?;
    let mut log = RunLog::open(dir, observer)?;
    log.note(&format!(
        "{}: {} with {} parameters on {}x{}x{} inputs; {} training, {} validation, {} test examples",
        dir.display(),
        config.model.kind(),
        model.num_trainable(),
        info.input.channels,
        info.input.height,
        info.input.frames,
        train.examples_per_epoch(),
        val.as_ref().map_or(0, Loader::examples_per_epoch),
        test_indices.len()
    ));
    let mut trainer = Trainer::new(&model, &config.train, train.batches_per_epoch())?;
    if trainer.resume(dir)? {
        log.note(&format!(
            "resuming after epoch {} of {}",
            trainer.state().epoch,
            config.train.epochs
        ));
    }
    let state = trainer.fit(&train, val.as_ref(), dir, &mut log)?.clone();
    model.load(&checkpoint_paths(dir, "best").0)?;
    let eval = evaluate(&model, &test)?;
    let result = write_report(prepared, &eval, &test_indices, dir, &state)?;
    curves_png(&dir.join("curves.png"), &state.history)?;
    log.note(&format!(
        "test: accuracy {:.4}, macro F1 {:.4} with the weights of epoch {}",
        result.accuracy, result.macro_f1, result.best_epoch
    ));
    Ok(result)
}

/// Writes `report.txt`, `report.json`, `predictions.csv` and
/// `confusion.png` for `eval`
/// (whose indices point into `indices`, the dataset examples tested).
///
/// # Errors
/// [`Error::Data`] when a file cannot be written.
pub fn write_report(
    prepared: &Prepared,
    eval: &Evaluation,
    indices: &[usize],
    dir: &Path,
    state: &crate::TrainState,
) -> Result<RunResult> {
    let names = &prepared.dataset.classes;
    let truth: Vec<usize> = eval.predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<usize> = eval.predictions.iter().map(|p| p.predicted).collect();
    let matrix = ConfusionMatrix::from_labels(names.len(), &truth, &predicted)?;
    let report = ClassificationReport::new(&matrix, names)?;
    let seconds: f64 = state.history.iter().map(|m| m.seconds).sum();
    let seen: f64 = state
        .history
        .iter()
        .map(|m| m.samples_per_second * m.seconds)
        .sum();
    let result = RunResult {
        accuracy: report.accuracy,
        macro_f1: report.macro_avg.f1,
        examples: eval.predictions.len(),
        epochs: state.epoch,
        best_epoch: state.best.map_or(0, |b| b.1),
        samples_per_second: if seconds > 0.0 { seen / seconds } else { 0.0 },
        confusion: matrix.counts().to_vec(),
    };
    write_atomic(&dir.join("report.txt"), report.to_string().as_bytes()).map_err(data_err)?;
    let json = serde_json::json!({ "result": result, "report": report, "classes": names });
    write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&json)
            .map_err(data_err)?
            .as_bytes(),
    )
    .map_err(data_err)?;
    let mut csv = String::from("file,true,predicted");
    for n in names {
        let _ = write!(csv, ",p_{n}");
    }
    csv.push('\n');
    for p in &eval.predictions {
        let file = prepared.dataset.examples[indices[p.index]]
            .path
            .display()
            .to_string();
        let _ = write!(
            csv,
            "{},{},{}",
            csv_field(&file),
            csv_field(&names[p.label]),
            csv_field(&names[p.predicted])
        );
        for v in &p.probabilities {
            let _ = write!(csv, ",{v:.6}");
        }
        csv.push('\n');
    }
    write_atomic(&dir.join("predictions.csv"), csv.as_bytes()).map_err(data_err)?;
    let title = format!(
        "test: accuracy {:.3}, macro F1 {:.3}",
        result.accuracy, result.macro_f1
    );
    confusion_png(&dir.join("confusion.png"), &result.confusion, names, &title)?;
    Ok(result)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One fold's line of the cross-validation summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// The test fold.
    pub fold: u32,
    /// Its held-out result.
    pub result: RunResult,
}

/// The cross-validation summary, as `cv_summary.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    /// Per fold, in fold order.
    pub folds: Vec<FoldResult>,
    /// Mean and (population) standard deviation of the test accuracy.
    pub accuracy: (f64, f64),
    /// Mean and standard deviation of the test macro F1.
    pub macro_f1: (f64, f64),
    /// The confusion matrices of every fold, summed.
    pub confusion: Vec<Vec<u64>>,
    /// Class names.
    pub classes: Vec<String>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// Cross-validates over `folds` (every fold holding examples by default): fold k
/// tests on fold k in `root/fold-kk/`, skipping folds whose `report.json`
/// exists (a re-run resumes), then writes `cv_summary.json`,
/// `cv_summary.md` and the summed `confusion.png` over every finished fold.
///
/// # Errors
/// [`Error::Config`] for a dataset without folds or a fold out of range;
/// anything a fold's run fails on.
pub fn cross_validate(
    prepared: &Prepared,
    config: &ExperimentConfig,
    folds: Option<&[u32]>,
    root: &Path,
    observer: &mut dyn Observer,
) -> Result<CvSummary> {
    if prepared.dataset.folds.is_none() {
        return Err(Error::Config {
            field: "data.kind",
            rule: "must be a dataset with folds for cross-validation",
            got: config.data.kind.clone(),
        });
    }
    let all = prepared.folds();
    let folds = folds.unwrap_or(&all);
    for &k in folds {
        let dir = root.join(format!("fold-{k:02}"));
        let report = dir.join("report.json");
        let result = match std::fs::read_to_string(&report) {
            Ok(text) => {
                read_result(&text).map_err(|e| Error::Data(format!("{}: {e}", report.display())))?
            }
            Err(_) => {
                observer.fold_start(k);
                let mut config = config.clone();
                config.data.fold = Some(k);
                let splits = prepared.splits(&config, Some(k))?;
                run(prepared, &config, &splits, &dir, observer)?
            }
        };
        observer.fold_end(k, &result);
    }
    // The summary covers every finished fold, also those of earlier runs.
    let mut results = Vec::new();
    for &k in &all {
        if let Ok(text) = std::fs::read_to_string(root.join(format!("fold-{k:02}/report.json"))) {
            let result = read_result(&text).map_err(|e| Error::Data(format!("fold {k}: {e}")))?;
            results.push(FoldResult { fold: k, result });
        }
    }
    let classes = prepared.dataset.classes.clone();
    let mut confusion = ConfusionMatrix::new(classes.len());
    for f in &results {
        let mut m = ConfusionMatrix::new(classes.len());
        for (t, row) in f.result.confusion.iter().enumerate() {
            for (p, &c) in row.iter().enumerate() {
                (0..c).try_for_each(|_| m.add(t, p))?;
            }
        }
        confusion.merge(&m)?;
    }
    let acc: Vec<f64> = results.iter().map(|f| f.result.accuracy).collect();
    let f1: Vec<f64> = results.iter().map(|f| f.result.macro_f1).collect();
    let summary = CvSummary {
        folds: results,
        accuracy: mean_std(&acc),
        macro_f1: mean_std(&f1),
        confusion: confusion.counts().to_vec(),
        classes,
    };
    write_atomic(
        &root.join("cv_summary.json"),
        serde_json::to_string_pretty(&summary)
            .map_err(data_err)?
            .as_bytes(),
    )
    .map_err(data_err)?;
    write_atomic(
        &root.join("cv_summary.md"),
        summary.to_markdown().as_bytes(),
    )
    .map_err(data_err)?;
    let title = format!(
        "{} folds summed: accuracy {:.3} +- {:.3}",
        summary.folds.len(),
        summary.accuracy.0,
        summary.accuracy.1
    );
    confusion_png(
        &root.join("confusion.png"),
        &summary.confusion,
        &summary.classes,
        &title,
    )?;
    Ok(summary)
}

fn read_result(text: &str) -> std::result::Result<RunResult, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    serde_json::from_value(v["result"].clone())
}

impl CvSummary {
    /// The per-fold table with mean and standard deviation, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| fold | accuracy | macro F1 | test clips | best epoch |\n| ---: | ---: | ---: | ---: | ---: |\n",
        );
        for f in &self.folds {
            let r = &f.result;
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {} | {} |",
                f.fold, r.accuracy, r.macro_f1, r.examples, r.best_epoch
            );
        }
        let _ = writeln!(
            s,
            "| mean +- std | {:.3} +- {:.3} | {:.3} +- {:.3} | {} | |",
            self.accuracy.0,
            self.accuracy.1,
            self.macro_f1.0,
            self.macro_f1.1,
            self.folds.iter().map(|f| f.result.examples).sum::<usize>()
        );
        s
    }
}
