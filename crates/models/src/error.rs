//! The error type of hark-models.

use std::path::PathBuf;

/// What can go wrong building, running, saving or loading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (shape mismatch, bad dtype, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A layer got a tensor of the wrong shape, or a name clash.
    #[error("{0}")]
    Layer(String),
    /// A model specification field is out of range.
    #[error("model spec field `{field}` {rule}, got {got}")]
    Spec {
        /// The field at fault, e.g. `dropout`.
        field: &'static str,
        /// The rule it breaks, e.g. `must be in [0, 1)`.
        rule: &'static str,
        /// The value given.
        got: String,
    },
    /// An input tensor or input shape the model cannot take.
    #[error("{model} expects {expected}, got {got:?}")]
    Input {
        /// The model name.
        model: &'static str,
        /// What the model expects, in words.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A checkpoint lacks a tensor the model has.
    #[error("{}: missing tensor `{name}`", path.display())]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The PyTorch state_dict name.
        name: String,
    },
    /// A checkpoint's tensor holds NaN or infinite values.
    #[error("{}: tensor `{name}` holds {count} NaN or infinite values", path.display())]
    NonFiniteTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The PyTorch state_dict name.
        name: String,
        /// How many values are not finite.
        count: usize,
    },
    /// A checkpoint holds a tensor the model does not have.
    #[error("{}: unexpected tensor `{name}` (the model has no such parameter)", path.display())]
    UnexpectedTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The PyTorch state_dict name.
        name: String,
    },
    /// A checkpoint tensor has the wrong shape or dtype.
    #[error("{}: tensor `{name}` should be {expected}, got {got}", path.display())]
    TensorMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The PyTorch state_dict name.
        name: String,
        /// Expected shape and dtype.
        expected: String,
        /// Found shape and dtype.
        got: String,
    },
    /// Reading or writing a checkpoint failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint file is not valid safetensors.
    #[error("{}: not a valid safetensors file: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
}

impl From<Error> for candle_core::Error {
    /// For the candle traits ([`Module`](candle_core::Module),
    /// [`ModuleT`](candle_core::ModuleT)) the layers implement: a tensor
    /// error goes back as it came, any other is wrapped with its message.
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}

/// The result type of hark-models.
pub type Result<T> = std::result::Result<T, Error>;
