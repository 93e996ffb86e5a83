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
    /// The data loader failed.
    #[error("data: {0}")]
    Data(String),
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
