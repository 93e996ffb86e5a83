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
    /// A signal-processing step failed on this file's audio.
    #[error("{}: {source}", path.display())]
    Dsp {
        /// The file.
        path: PathBuf,
        /// The hark-dsp error.
        source: hark_dsp::DspError,
    },
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
