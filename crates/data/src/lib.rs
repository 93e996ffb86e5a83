//! hark-data: WAV decoding, dataset manifests, splits, the cached feature
//! pipeline and the synthetic demo corpus. Framework-free: it hands out f32
//! buffers with shapes and labels, never tensors.
#![warn(missing_docs)]

mod audio;
mod encode;
mod error;
mod riff;

pub use audio::{Audio, decode_wav, read_wav};
pub use encode::{Encoding, encode_wav, write_wav};
pub use error::{DataError, Result};
pub use riff::{Codec, WavInfo, inspect};
