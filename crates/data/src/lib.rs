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
//!
//! A [`FeatureExtractor`] turns an example into what a model takes: decode,
//! mix down, resample, pad or trim, then torchaudio's log-mel.
//!
//! ```
//! use hark_data::{Audio, Encoding, Example, FeatureConfig, FeatureExtractor, write_wav};
//! use hark_dsp::ResamplerCache;
//!
//! let dir = std::env::temp_dir().join(format!("hark-data-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("tone.wav");
//! // One second of a 440 Hz stereo tone at 44.1 kHz.
//! let frame = |i: usize| (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5;
//! let samples = (0..44_100).flat_map(|i| [frame(i), frame(i)]).collect();
//! write_wav(&path, &Audio { samples, channels: 2, sample_rate: 44_100 }, Encoding::I16)?;
//!
//! // The defaults: mono, 4 s at 22.05 kHz, 64 mels, hop 512.
//! let extractor = FeatureExtractor::new(&FeatureConfig::default()).unwrap();
//! let example = Example::new(path, 0, "tone".into());
//! let features = extractor.extract(&example, &mut ResamplerCache::new())?;
//! assert_eq!(features.shape(), [1, 64, 173]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), hark_data::DataError>(())
//! ```
#![warn(missing_docs)]

mod annotations;
mod audio;
mod augment;
mod cache;
mod dataset;
mod encode;
mod error;
mod events;
mod extract;
mod features;
mod fold_csv;
mod folders;
mod fsutil;
mod loader;
mod manifest;
mod pcm_stream;
mod riff;
mod speakers;
mod split;
mod survey;
mod synth;
mod synth_events;

pub use annotations::{AnnotationColumns, load_annotations};
pub use audio::{
    AUDIO_EXTENSIONS, Audio, decode_audio, decode_wav, inspect_audio, read_audio, read_wav,
};
pub use augment::{AugmentConfig, CropAugment, NoiseAugment, StretchAugment, example_rng};
pub use cache::{CacheLookup, FeatureCache};
pub use dataset::{Dataset, Example, LoadOptions, Skipped, Span};
pub use encode::{Encoding, encode_wav, write_wav};
pub use error::{DataError, Result};
pub use events::{EVENT_COLUMNS, EventRow, read_events, write_events};
pub use extract::{Extracted, NoProgress, Progress, extract_all};
pub use features::{FeatureConfig, FeatureExtractor, FeatureKind, Features, Stage};
pub use fold_csv::{load_esc50, load_urbansound8k};
pub use folders::{
    ChunkOptions, assign_splits, chunk_dataset, load_folders, write_split_manifests,
};
pub use fsutil::write_atomic;
pub use loader::{Batch, Batches, Loader, LoaderConfig, Normalization, band_stats, dataset_stats};
pub use pcm_stream::{AudioFile, PcmFormat, PcmStream, SampleFormat};
pub use riff::{Codec, MAX_CHANNELS, SAMPLE_RATES, WavInfo, inspect};
pub use speakers::{PHASE_MAP, load_speakers, read_phase_map, write_phase_map};
pub use split::{
    Split, SplitRatios, fold_split, random_split, speaker_split, stratified_split,
    unseen_in_training,
};
pub use survey::{DatasetKind, FormatHistogram, format_histogram, open_dataset};
pub use synth::{SynthConfig, SynthSummary, URBANSOUND8K_CLASSES, generate_urban_synth};
pub use synth_events::{EventSynthConfig, EventSynthSummary, generate_event_synth};
