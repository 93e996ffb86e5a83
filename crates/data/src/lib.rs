//! hark-data: WAV decoding, dataset manifests, splits, the cached feature
//! pipeline and the synthetic demo corpus. Framework-free: it hands out f32
//! buffers with shapes and labels, never tensors.
//!
//! Every dataset layout loads into a [`Dataset`]: examples (file, label,
//! group, fold or split) plus class names.
//!
//! | layout | loader |
//! | --- | --- |
//! | UrbanSound8K (`metadata/UrbanSound8K.csv`, `audio/foldN/`) | [`load_urbansound8k`] |
//! | ESC-50 (`meta/esc50.csv`, `audio/`) | [`load_esc50`] |
//! | speaker tree (`raw/<speaker>/<context>/*.wav`) | [`load_speakers`] |
//! | folder per class (`<class>/*.wav`) | [`load_folders`] |
//! | annotation CSV + audio folder | [`load_annotations`] |
#![warn(missing_docs)]

mod annotations;
mod audio;
mod augment;
mod cache;
mod dataset;
mod encode;
mod error;
mod extract;
mod features;
mod fold_csv;
mod folders;
mod fsutil;
mod loader;
mod manifest;
mod riff;
mod speakers;
mod split;
mod survey;
mod synth;

pub use annotations::{AnnotationColumns, load_annotations};
pub use audio::{Audio, decode_wav, read_wav};
pub use augment::{AugmentConfig, CropAugment, NoiseAugment, StretchAugment, example_rng};
pub use cache::{CacheLookup, FeatureCache};
pub use dataset::{Dataset, Example, LoadOptions, Skipped, Span};
pub use encode::{Encoding, encode_wav, write_wav};
pub use error::{DataError, Result};
pub use extract::{Extracted, NoProgress, Progress, extract_all};
pub use features::{FeatureConfig, FeatureExtractor, Features, Stage};
pub use fold_csv::{load_esc50, load_urbansound8k};
pub use folders::{
    ChunkOptions, assign_splits, chunk_dataset, load_folders, write_split_manifests,
};
pub use fsutil::write_atomic;
pub use loader::{Batch, Batches, Loader, LoaderConfig, Normalization, dataset_stats};
pub use riff::{Codec, WavInfo, inspect};
pub use speakers::{load_speakers, read_phase_map, write_phase_map};
pub use split::{Split, SplitRatios, fold_split, stratified_split};
pub use survey::{DatasetKind, FormatHistogram, format_histogram, open_dataset};
pub use synth::{SynthConfig, SynthSummary, URBANSOUND8K_CLASSES, generate_urban_synth};
