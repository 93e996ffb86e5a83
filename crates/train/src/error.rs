//! The error type of hark-train.

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A model could not be built, run, saved or loaded.
    #[error(transparent)]
    Model(#[from] hark_models::Error),
    /// A feature setting the signal processing rejects.
    #[error(transparent)]
    Dsp(#[from] hark_dsp::DspError),
    /// The dataset, a file of it, its cache or a loader failed.
    #[error(transparent)]
    Data(#[from] hark_data::DataError),
    /// A file of a run could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// A JSON file of a run is malformed, or a value could not be written
    /// as JSON.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// What serde_json reported.
        source: serde_json::Error,
    },
    /// A directory that is not a finished run.
    #[error("{} is not a run directory: it has no {missing}", path.display())]
    NotARun {
        /// The directory.
        path: std::path::PathBuf,
        /// The file it lacks, e.g. `model.json`.
        missing: &'static str,
    },
    /// A part of the split that a run needs has no examples.
    #[error("the {0} set is empty")]
    EmptySplit(&'static str),
    /// Not one example of the dataset could be read.
    #[error("no example of the dataset could be read")]
    NoExamples,
    /// A configuration value is out of range.
    #[error("`{field}` {rule}, got {got}")]
    Config {
        /// The field, e.g. `train.optimizer.lr`.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
        /// The value given.
        got: String,
    },
    /// An experiment config that cannot be read: bad TOML, an unknown key,
    /// a wrong type or a bad override.
    #[error("{}: {msg}", path.display())]
    ConfigFile {
        /// The config file.
        path: std::path::PathBuf,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// A checkpoint that cannot be resumed from.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss became NaN or infinite.
    #[error(
        "the loss became {value} at epoch {epoch}, step {step}; the last checkpoint is the last good state"
    )]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        step: usize,
        /// The loss value.
        value: f32,
    },
    /// Optimizer state that does not fit the model's parameters.
    #[error("optimizer state: {0}")]
    OptimizerState(String),
    /// A plot that could not be drawn or written.
    #[error("{}: {msg}", path.display())]
    Plot {
        /// The picture being written.
        path: std::path::PathBuf,
        /// What failed.
        msg: String,
    },
    /// Labels and predictions of different lengths, or a label out of range.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// The result type of hark-train.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a path to an I/O error.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Attaches a path to a JSON error.
pub(crate) fn json_at(path: &std::path::Path) -> impl FnOnce(serde_json::Error) -> Error + '_ {
    move |source| Error::Json {
        path: path.to_path_buf(),
        source,
    }
}

/// Feature settings the extractor rejects, as the config error they are.
pub(crate) fn features_error(e: hark_dsp::DspError) -> Error {
    Error::Config {
        field: "features",
        rule: "must be settings the feature extractor takes",
        got: e.to_string(),
    }
}

/// Checks `lo <= value` (and `value < hi`, or `<= hi` with `inclusive`).
pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    rule: &'static str,
) -> Result<()> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(Error::Config {
            field,
            rule,
            got: value.to_string(),
        })
    }
}
