//! The experiment config: one TOML file with `[data]`, `[features]`,
//! `[augment]`, `[model]`, `[train]` and `[output]`, every field defaulted,
//! an unknown key or a wrong type an error naming the key and the file, and
//! `section.key=value` overrides from the command line.

use std::path::{Path, PathBuf};

use hark_data::{
    AnnotationColumns, AugmentConfig, DatasetKind, FeatureConfig, FeatureExtractor, LoadOptions,
    Normalization, SplitRatios,
};
use hark_models::{InputShape, ModelSpec, Output};
use serde::{Deserialize, Serialize};

use crate::{Error, OptimizerConfig, Result, ScheduleConfig};

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// What to train on.
    pub data: DataConfig,
    /// How clips become log-mels (hark-data's feature pipeline).
    pub features: FeatureConfig,
    /// On-the-fly augmentation of training batches.
    pub augment: AugmentConfig,
    /// The architecture (`kind` and its options) and its output.
    pub model: ModelSection,
    /// The optimisation.
    pub train: TrainConfig,
    /// Where runs are written.
    pub output: OutputConfig,
}

/// `[model]`: the architecture's `kind` and options, and `output`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelSection {
    /// The architecture.
    #[serde(flatten)]
    pub spec: ModelSpec,
    /// `softmax` (one logit per class, cross-entropy) or `sigmoid` (for two
    /// classes: one logit, binary cross-entropy, and a decision threshold
    /// chosen on the validation set). Default: softmax.
    #[serde(default, skip_serializing_if = "Output::is_softmax")]
    pub output: Output,
}

/// `[data]`: the dataset and how it is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Layout: `urbansound8k` (also the demo corpus), `esc50`, `esc10`,
    /// `speakers`, `folders` or `csv`. Default: `urbansound8k`.
    pub kind: DatasetKind,
    /// Dataset root (or the CSV for `csv`). Default: `datasets/urban-synth`.
    pub path: PathBuf,
    /// Split ratios for datasets without folds or phases (default
    /// 0.8/0.1/0.1), or `"phase_map"`: a speaker tree's `phase_map.csv`,
    /// required (it is used whenever it exists anyway).
    pub split: SplitSetting,
    /// The test fold of a single run (`hark train`, `hark eval`) on a
    /// dataset with folds; cross-validation sets it per fold. Default: the
    /// first fold.
    pub fold: Option<u32>,
    /// Validation for a fold dataset: `next_fold` (fold k+1 when testing
    /// fold k), `slice` (a group-aware share of the training folds,
    /// `split.val`) or `none` (every fold but the test fold trains and the
    /// final weights are tested: the official UrbanSound8K protocol and
    /// seed 001's; in a ratio split the validation share trains too).
    /// Default: `next_fold`.
    pub validation: Validation,
    /// Split a dataset with folds by `split`'s ratios as if it had none
    /// (seed 001 tests on a `random_split` 20 %: `split = { train = 0.8,
    /// val = 0.0, test = 0.2, stratified = false }`). Cross-validation
    /// needs the folds and refuses it. Default: false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_folds: bool,
    /// Keep only these classes, in this order. Default: all.
    pub classes: Option<Vec<String>>,
    /// Fail on the first unreadable file instead of skipping it. Default: false.
    pub strict: bool,
    /// Let a manifest list files outside the dataset root (`../x.wav`, an
    /// absolute path, a symlink leading out). Default: false, an error
    /// naming the row.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_outside_root: bool,
    /// Cut every file into windows of this many seconds (seed 003). Default: none.
    pub chunk_seconds: Option<f64>,
    /// Feature cache directory. Default: `<path>/.hark-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Column names of an annotation CSV (`kind = "csv"`). Default:
    /// `{ file = "file", label = "label" }`.
    pub columns: AnnotationColumns,
}

impl DataConfig {
    /// What the dataset loader takes from this section.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            classes: self.classes.clone(),
            strict: self.strict,
            allow_outside_root: self.allow_outside_root,
            columns: self.columns.clone(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            kind: DatasetKind::UrbanSound8k,
            path: PathBuf::from("datasets/urban-synth"),
            split: SplitSetting::default(),
            fold: None,
            validation: Validation::NextFold,
            ignore_folds: false,
            classes: None,
            strict: false,
            allow_outside_root: false,
            chunk_seconds: None,
            cache_dir: None,
            columns: AnnotationColumns::default(),
        }
    }
}

/// `data.split`: ratios, or a named policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SplitSetting {
    /// A named policy.
    Policy(SplitPolicy),
    /// Train, validation and test shares.
    Ratios(SplitRatios),
}

/// The named split policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitPolicy {
    /// The dataset's `phase_map.csv` (1 train, 2 validation, 4 test).
    PhaseMap,
}

impl Default for SplitSetting {
    fn default() -> Self {
        Self::Ratios(SplitRatios::default())
    }
}

impl SplitSetting {
    /// The shares a ratio split uses (the defaults under a policy).
    pub fn ratios(&self) -> SplitRatios {
        match self {
            Self::Ratios(r) => *r,
            Self::Policy(_) => SplitRatios::default(),
        }
    }
}

/// Where a fold run's validation set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// The fold after the test fold (wrapping).
    #[default]
    NextFold,
    /// A group-aware share of the training folds.
    Slice,
    /// No validation set: what would have validated trains, and the final
    /// weights are the run's (nothing to choose a best epoch or stop by).
    None,
}

/// The longest clip or chunk, in seconds: a fixed duration sizes every
/// example's buffer (10 minutes of 48 kHz stereo is 220 MB as f32).
pub const MAX_DURATION: f64 = 600.0;
/// The largest STFT size (and hop).
pub const MAX_N_FFT: usize = 65_536;
/// The most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// The largest batch.
pub const MAX_BATCH: usize = 65_536;
/// The most worker threads.
pub const MAX_THREADS: usize = 1_024;

/// `key`'s `value` unless it is outside `lo..=hi` (or NaN): the error names
/// all three.
fn within<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    lo: T,
    hi: T,
) -> std::result::Result<(), String> {
    if value >= lo && value <= hi {
        Ok(())
    } else {
        Err(format!("{key} must be in {lo}..={hi}, got {value}"))
    }
}

/// `[train]`: the optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set. Default: 20.
    pub epochs: usize,
    /// Examples per batch. Default: 16.
    pub batch_size: usize,
    /// The optimizer. Default: Adam, lr 1e-3.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule. Default: constant.
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this. Default: none.
    pub grad_clip: Option<f64>,
    /// Stop when the monitored metric has not improved for `patience`
    /// epochs. Default: none.
    pub early_stopping: Option<EarlyStopping>,
    /// Input normalisation: `none`, `per_batch`, `per_example`, `per_example_per_band`, fixed
    /// `{ dataset = { mean, std } }` or `{ per_band = { mean, std } }`, or
    /// computed on the training split: `dataset` (one mean and standard
    /// deviation) or `dataset_per_band` (one per mel band), which the run
    /// stores in its config.toml, so that eval, predict and listen apply
    /// the same. Default: per batch (seed 001).
    pub normalization: NormalizationSetting,
    /// Label smoothing of the training loss, in [0, 1): the label's target
    /// is `1 - eps + eps / classes`, every other class's `eps / classes`
    /// (validation and test losses are not smoothed). Default: 0.
    pub label_smoothing: f64,
    /// Mixup: each training batch is blended with a shuffled copy of
    /// itself, `x = l a + (1 - l) b` with `l ~ Beta(alpha, alpha)` drawn per
    /// batch (the larger of `l` and `1 - l`, so `a` leads), and its loss is
    /// `l L(a) + (1 - l) L(b)`. This is `alpha`; 0 is off. Default: 0.
    pub mixup: f64,
    /// Seed of initialisation, shuffling, augmentation and dropout. Default: 0.
    pub seed: u64,
    /// Worker threads; 0 uses every core. Default: 0.
    pub threads: usize,
    /// Also keep the checkpoint of every N-th epoch, as
    /// `epoch-NNN.safetensors` (seed 004's `save_p`); best and last are
    /// always kept. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_every: Option<std::num::NonZeroUsize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 16,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            grad_clip: None,
            early_stopping: None,
            normalization: NormalizationSetting::Fixed(Normalization::PerBatch),
            label_smoothing: 0.0,
            mixup: 0.0,
            seed: 0,
            threads: 0,
            save_every: None,
        }
    }
}

/// `train.normalization`: statistics to compute on the training split, or
/// a normalisation as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NormalizationSetting {
    /// Computed when a run starts.
    Computed(ComputedNormalization),
    /// As given.
    Fixed(Normalization),
}

/// Statistics a run computes on its training split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputedNormalization {
    /// One mean and standard deviation (seed 002's `normalise_spectrograms`).
    Dataset,
    /// A mean and standard deviation per mel band.
    DatasetPerBand,
}

impl NormalizationSetting {
    /// The normalisation when it needs no statistics (`None` when it does:
    /// [`crate::run`] computes and stores them).
    pub fn fixed(&self) -> Option<&Normalization> {
        match self {
            Self::Fixed(n) => Some(n),
            Self::Computed(_) => None,
        }
    }
}

/// A metric to watch and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Validation loss, lower is better.
    ValLoss,
    /// Validation accuracy, higher is better.
    ValAccuracy,
}

impl Monitor {
    /// Whether `new` improves on `best`.
    pub fn improves(self, new: f64, best: f64) -> bool {
        match self {
            Self::ValLoss => new < best,
            Self::ValAccuracy => new > best,
        }
    }
}

/// `[train.early_stopping]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// The metric. Default: `val_loss`.
    #[serde(default = "default_monitor")]
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
}

fn default_monitor() -> Monitor {
    Monitor::ValLoss
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// The run directory. Default: `runs/<config file stem>`.
    pub dir: Option<PathBuf>,
}

/// The clip length [`ExperimentConfig::input_shape`] assumes for
/// variable-length features, in seconds.
pub const ASSUMED_SECONDS: f64 = 4.0;

impl ExperimentConfig {
    /// The input shape the config's features give a model, without reading
    /// the dataset: `features.duration` seconds (or, for variable-length
    /// features, [`ASSUMED_SECONDS`]) through the feature extractor itself,
    /// so every STFT default (hop, centring) is the one training uses.
    ///
    /// # Errors
    /// [`Error::Config`] for feature settings the extractor rejects.
    pub fn input_shape(&self) -> Result<InputShape> {
        let f = &self.features;
        let extractor = FeatureExtractor::new(f).map_err(crate::error::features_error)?;
        let seconds = f.duration.unwrap_or(ASSUMED_SECONDS);
        let samples = (seconds * f.mel.sample_rate as f64).round() as usize;
        Ok(InputShape {
            channels: f.channels,
            height: extractor.rows(),
            frames: extractor.n_frames(samples),
        })
    }

    /// Reads `path` and applies `overrides` (`section.key=value`, the value a
    /// TOML literal or else a bare string).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the file and the key for unreadable
    /// TOML, an unknown key, a wrong type or a malformed override.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::parse(&text, path, overrides)
    }

    /// [`load`](Self::load) from text; `path` only names the source in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |msg: String| Error::ConfigFile {
            path: path.to_path_buf(),
            msg,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        for item in overrides {
            set(&mut table, item).map_err(|msg| bad(format!("--set {item}: {msg}")))?;
        }
        let mut config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        config.check().map_err(bad)?;
        if config.output.dir.is_none() {
            let stem = path
                .file_stem()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned());
            config.output.dir = Some(PathBuf::from("runs").join(stem));
        }
        Ok(config)
    }

    /// Ranges of the numbers (the limits in configs/README.md) and rules
    /// between sections that their types cannot hold.
    fn check(&self) -> std::result::Result<(), String> {
        self.check_limits()?;
        FeatureExtractor::new(&self.features).map_err(|e| format!("features: {e}"))?;
        self.augment.validate().map_err(|e| e.to_string())?;
        // The optimizer and schedule check their own ranges when built.
        let t = &self.train;
        t.optimizer
            .build(Vec::new())
            .map_err(|e| format!("train: {e}"))?;
        crate::LrSchedule::new(&t.schedule, t.optimizer.lr(), t.epochs, 1)
            .map_err(|e| format!("train: {e}"))?;
        let eps = self.train.label_smoothing;
        if !(0.0..1.0).contains(&eps) {
            return Err(format!(
                "train.label_smoothing must be in [0, 1), got {eps}"
            ));
        }
        let alpha = self.train.mixup;
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!(
                "train.mixup must be a finite alpha >= 0 (0: off), got {alpha}"
            ));
        }
        if self.data.ignore_folds && self.data.fold.is_some() {
            return Err(
                "data.fold names a test fold, but data.ignore_folds = true splits by \
                 data.split: drop one of them"
                    .into(),
            );
        }
        if self.data.validation == Validation::None && self.train.early_stopping.is_some() {
            return Err(
                "train.early_stopping needs validation data, but data.validation = \"none\": \
                 drop one of them"
                    .into(),
            );
        }
        Ok(())
    }

    /// The numbers whose range the types do not hold, each checked before
    /// anything is sized by it.
    fn check_limits(&self) -> std::result::Result<(), String> {
        let (f, t) = (&self.features, &self.train);
        let rates = hark_data::SAMPLE_RATES;
        within(
            "features.channels",
            f.channels,
            1,
            hark_data::MAX_CHANNELS as usize,
        )?;
        if let Some(d) = f.duration {
            within("features.duration", d, 1e-3, MAX_DURATION)?;
        }
        within(
            "features.mel.sample_rate",
            f.mel.sample_rate,
            *rates.start(),
            *rates.end(),
        )?;
        within("features.mel.n_fft", f.mel.n_fft, 1, MAX_N_FFT)?;
        if let Some(hop) = f.mel.hop_length {
            within("features.mel.hop_length", hop, 1, MAX_N_FFT)?;
        }
        if let Some(win) = f.mel.win_length {
            within("features.mel.win_length", win, 1, f.mel.n_fft)?;
        }
        within("features.mel.n_mels", f.mel.n_mels, 1, f.mel.n_fft / 2 + 1)?;
        if let Some(shift) = self.augment.time_shift {
            within("augment.time_shift", shift, 0.0, 1.0)?;
        }
        if let Some(chunk) = self.data.chunk_seconds {
            within("data.chunk_seconds", chunk, 1e-3, MAX_DURATION)?;
        }
        if let SplitSetting::Ratios(r) = &self.data.split {
            within("data.split.train", r.train, 0.0, 1.0)?;
            within("data.split.val", r.val, 0.0, 1.0)?;
            within("data.split.test", r.test, 0.0, 1.0)?;
            let sum = r.train + r.val + r.test;
            if (sum - 1.0).abs() > 1e-6 {
                return Err(format!(
                    "data.split's shares must add up to 1, got {} + {} + {} = {sum}",
                    r.train, r.val, r.test
                ));
            }
        }
        within("train.epochs", t.epochs, 1, MAX_EPOCHS)?;
        within("train.batch_size", t.batch_size, 1, MAX_BATCH)?;
        within("train.threads", t.threads, 0, MAX_THREADS)?;
        if let Some(clip) = t.grad_clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(format!(
                "train.grad_clip must be a finite norm > 0, got {clip}"
            ));
        }
        if let Some(e) = &t.early_stopping {
            within("train.early_stopping.patience", e.patience, 1, MAX_EPOCHS)?;
        }
        let paths = [
            ("data.path", Some(self.data.path.as_path())),
            ("data.cache_dir", self.data.cache_dir.as_deref()),
            ("output.dir", self.output.dir.as_deref()),
        ];
        if let Some((key, _)) = paths
            .iter()
            .find(|(_, p)| p.is_some_and(|p| p.as_os_str().is_empty()))
        {
            return Err(format!("{key} is empty: name a directory"));
        }
        Ok(())
    }

    /// The config as TOML, every default written out, for `path` (a run
    /// directory's copy).
    ///
    /// # Errors
    /// Only if a value has no TOML form.
    pub fn to_toml(&self, path: &Path) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }
}

/// Applies one `a.b.c=value` override to `table`.
fn set(table: &mut toml::Table, item: &str) -> std::result::Result<(), String> {
    let (key, value) = item.split_once('=').ok_or("expected section.key=value")?;
    let value = value.trim();
    // A TOML literal (number, bool, array, inline table, quoted string), else a bare string.
    let value = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    let (last, path) = parts.split_last().ok_or("empty key")?;
    let mut node = table;
    for (i, part) in path.iter().enumerate() {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a table", parts[..=i].join(".")))?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}
