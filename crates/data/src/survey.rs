//! Dataset-wide views: opening any layout by name, and the histogram of
//! sample rates, bit depths, channels and codecs (seed 002's
//! `check_sample_rates`) with the files that cannot be read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, LoadOptions, Skipped};
use crate::error::{DataError, Result};
use crate::{load_annotations, load_esc50, load_folders, load_speakers, load_urbansound8k};

/// A dataset layout, by the name users give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// `metadata/UrbanSound8K.csv` + `audio/foldN/` (also the demo corpus).
    #[serde(rename = "urbansound8k", alias = "urban-synth")]
    UrbanSound8k,
    /// `meta/esc50.csv` + `audio/`.
    Esc50,
    /// ESC-50's ESC-10 subset.
    Esc10,
    /// `raw/<speaker>/<context>/*.wav`, grouped by context.
    Speakers,
    /// `<class>/*.wav`.
    Folders,
    /// An annotation CSV (`file`, `label` columns); audio beside it in
    /// `audio/` if that folder exists, else in the CSV's folder.
    Csv,
}

impl DatasetKind {
    /// Every layout, in the order the docs list them.
    pub const ALL: [Self; 6] = [
        Self::UrbanSound8k,
        Self::Esc50,
        Self::Esc10,
        Self::Speakers,
        Self::Folders,
        Self::Csv,
    ];

    /// The name a config or flag gives the layout.
    pub fn name(self) -> &'static str {
        match self {
            Self::UrbanSound8k => "urbansound8k",
            Self::Esc50 => "esc50",
            Self::Esc10 => "esc10",
            Self::Speakers => "speakers",
            Self::Folders => "folders",
            Self::Csv => "csv",
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    /// A layout by [`name`](Self::name) (`urban-synth` is UrbanSound8K's).
    fn from_str(s: &str) -> Result<Self> {
        if s == "urban-synth" {
            return Ok(Self::UrbanSound8k);
        }
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| DataError::InvalidOption {
                field: "kind",
                rule: "must be urbansound8k, esc50, esc10, speakers, folders or csv",
                got: format!("{s:?}"),
            })
    }
}

/// Loads the dataset of `kind` at `path` with default layout options.
///
/// # Errors
/// As the layout's loader.
pub fn open_dataset(kind: DatasetKind, path: &Path, options: &LoadOptions) -> Result<Dataset> {
    match kind {
        DatasetKind::UrbanSound8k => load_urbansound8k(path, options),
        DatasetKind::Esc50 => load_esc50(path, false, options),
        DatasetKind::Esc10 => load_esc50(path, true, options),
        DatasetKind::Speakers => load_speakers(path, true, options),
        DatasetKind::Folders => load_folders(path, options),
        DatasetKind::Csv => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let audio = if dir.join("audio").is_dir() {
                dir.join("audio")
            } else {
                dir.to_path_buf()
            };
            load_annotations(path, &audio, &options.columns, options)
        }
    }
}

/// Counts of each format property over a set of files.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FormatHistogram {
    /// Files per sample rate.
    pub sample_rates: BTreeMap<u32, usize>,
    /// Files per stored bit depth.
    pub bit_depths: BTreeMap<u16, usize>,
    /// Files per channel count.
    pub channels: BTreeMap<u16, usize>,
    /// Files per codec.
    pub codecs: BTreeMap<String, usize>,
    /// Total audio, in seconds.
    pub total_seconds: f64,
    /// Files whose header cannot be read, with the reason.
    pub unreadable: Vec<Skipped>,
}

/// Reads the header of every distinct file of `dataset` (in parallel) and
/// counts rates, bit depths, channels and codecs.
pub fn format_histogram(dataset: &Dataset) -> FormatHistogram {
    let paths: BTreeSet<&PathBuf> = dataset.examples.iter().map(|e| &e.path).collect();
    let infos: Vec<_> = paths
        .into_par_iter()
        .map(|p| (p, crate::inspect_audio(p)))
        .collect();
    let mut h = FormatHistogram::default();
    for (path, info) in infos {
        match info {
            Ok(i) => {
                *h.sample_rates.entry(i.sample_rate).or_default() += 1;
                *h.bit_depths.entry(i.bits_per_sample).or_default() += 1;
                *h.channels.entry(i.channels).or_default() += 1;
                *h.codecs.entry(i.codec.to_string()).or_default() += 1;
                h.total_seconds += i.duration_secs();
            }
            Err(e) => h.unreadable.push(Skipped {
                path: path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    h
}
