//! The error type of hark-data.

use std::path::PathBuf;

/// Errors from reading audio, datasets and caches. Each names the file (and,
/// for manifests, the row and column) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The file is not a WAV file, or its header is cut short or malformed.
    #[error("{}: not a readable WAV file: {reason}", path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `no RIFF/WAVE signature`.
        reason: String,
    },
    /// The data chunk is shorter than its header declares.
    #[error("{}: truncated data chunk: header declares {declared} bytes, file holds {available}", path.display())]
    TruncatedData {
        /// The file.
        path: PathBuf,
        /// Bytes the data chunk header declares.
        declared: u64,
        /// Bytes present after the data chunk header.
        available: u64,
    },
    /// The file's codec is one hark cannot decode.
    #[error("{}: unsupported codec {codec}", path.display())]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// The codec, e.g. `format tag 0x0055`.
        codec: String,
    },
    /// The decoder failed on the audio data.
    #[error("{}: decoding failed: {reason}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },
    /// The file holds no audio frames.
    #[error("{}: no audio frames", path.display())]
    NoFrames {
        /// The file.
        path: PathBuf,
    },
    /// Floating-point samples are NaN or infinite.
    #[error("{}: {count} of {total} samples are NaN or infinite", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Non-finite samples.
        count: usize,
        /// All samples.
        total: usize,
    },
    /// A manifest (CSV) or dataset layout breaks a rule; rows count data
    /// rows from 1, so row `r` is line `r + 1` of the file.
    #[error("{}: {}{reason}", path.display(), at(row, column))]
    Manifest {
        /// The manifest file or dataset root.
        path: PathBuf,
        /// The data row, 1-based.
        row: Option<usize>,
        /// The column.
        column: Option<String>,
        /// The rule broken and the value found.
        reason: String,
    },
    /// Files a manifest lists are missing or unreadable (with `strict`).
    #[error("{} of the dataset's files are missing or unreadable, e.g. {}", count, first.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    BadFiles {
        /// How many.
        count: usize,
        /// The first few, with their reasons.
        first: Vec<PathBuf>,
    },
    /// An option out of range.
    #[error("`{field}` {rule}, got {got}")]
    InvalidOption {
        /// The option, e.g. `max_seconds`.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
        /// The value given.
        got: String,
    },
    /// Clips given to a loader that do not fit together (none, labels of
    /// another count, mixed shapes, the wrong stage for the augmentation).
    #[error("loader: {reason}")]
    Loader {
        /// What does not fit.
        reason: String,
    },
    /// Augmenting or transforming one example of a loader failed.
    #[error("example {index}: {source}")]
    Example {
        /// The example's position in the loader.
        index: usize,
        /// The hark-dsp error.
        source: hark_dsp::DspError,
    },
    /// A signal-processing step failed on this file's audio.
    #[error("{}: {source}", path.display())]
    Dsp {
        /// The file.
        path: PathBuf,
        /// The hark-dsp error.
        source: hark_dsp::DspError,
    },
}

impl DataError {
    /// A manifest error at a row (1-based, header not counted) and column.
    pub(crate) fn manifest(
        path: &std::path::Path,
        row: Option<usize>,
        column: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        DataError::Manifest {
            path: path.to_path_buf(),
            row,
            column: column.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// Formats the optional row and column of a manifest error.
fn at(row: &Option<usize>, column: &Option<String>) -> String {
    match (row, column) {
        (Some(r), Some(c)) => format!("row {r} (line {}), column {c}: ", r + 1),
        (Some(r), None) => format!("row {r} (line {}): ", r + 1),
        (None, Some(c)) => format!("column {c}: "),
        (None, None) => String::new(),
    }
}

/// Shorthand for results of hark-data.
pub type Result<T> = std::result::Result<T, DataError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}
