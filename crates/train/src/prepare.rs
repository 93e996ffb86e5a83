//! Feature preparation: a config's dataset loaded, its features extracted
//! (through the cache) once, and the parts of a split drawn from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hark_data::{
    ChunkOptions, Dataset, DatasetKind, FeatureCache, FeatureExtractor, Features, PHASE_MAP,
    Progress, Split, Stage, chunk_dataset, extract_all, open_dataset, read_phase_map,
};
use hark_models::InputShape;

use crate::error::features_error;
use crate::{Error, ExperimentConfig, Result, SplitPolicy, SplitSetting};

/// A dataset with its features extracted: what every split of an
/// experiment draws from.
#[derive(Debug)]
pub struct Prepared {
    /// The dataset (examples whose files failed are still listed).
    pub dataset: Dataset,
    /// The features of the readable examples, shared by every loader
    /// made from them (a cross-validation's folds copy none).
    pub clips: Arc<Vec<Features>>,
    /// Per example, its position in `clips`; `None` for a file that could
    /// not be read.
    pub clip_of: Vec<Option<usize>>,
    /// The extractor, also used to turn augmented waveforms into log-mels.
    pub extractor: FeatureExtractor,
    /// What `clips` hold: log-mels, or waveforms for waveform augmentation.
    pub stage: Stage,
    /// Files skipped while loading or extracting, with the reason.
    pub skipped: Vec<hark_data::Skipped>,
    /// Features read from the cache rather than computed.
    pub cache_hits: usize,
    /// Cache entries found corrupt and computed again.
    pub cache_corrupt: usize,
    /// Why the cache could not be written, when it could not (the run
    /// goes on without it).
    pub cache_error: Option<String>,
}

/// The readable examples of one part of a split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// Their positions in [`Prepared::clips`].
    pub clips: Vec<usize>,
    /// Their labels.
    pub labels: Vec<usize>,
    /// Their indices in the dataset's examples.
    pub examples: Vec<usize>,
}

impl Part {
    /// Whether the part has no examples.
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }
}

/// Loads and extracts the dataset of `config` (through its feature cache).
///
/// # Errors
/// [`Error::Data`] for a dataset that cannot be loaded, a bad file under
/// `strict`, or a cache that cannot be written; [`Error::Config`] for
/// feature settings the extractor rejects.
pub fn prepare(config: &ExperimentConfig, progress: &dyn Progress) -> Result<Prepared> {
    prepare_shard(config, Shard::WHOLE, progress)
}

/// One of `count` disjoint shares of a dataset's examples: those whose
/// position `i` (after chunking) has `i % count == index - 1`, so every
/// share mixes classes and folds as the whole does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, from 1.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl Shard {
    /// The whole dataset.
    pub const WHOLE: Self = Self { index: 1, count: 1 };

    fn holds(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with 1 <= I <= N.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if (1..=count).contains(&index) => Ok(Self { index, count }),
            _ => Err(format!("expected I/N with 1 <= I <= N, got {s:?}")),
        }
    }
}

/// As [`prepare`], for the examples of one [`Shard`] only: an array job's
/// task fills its share of the feature cache.
///
/// # Errors
/// As [`prepare`].
pub fn prepare_shard(
    config: &ExperimentConfig,
    shard: Shard,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let options = config.data.load_options();
    let mut dataset = open_dataset(config.data.kind, &config.data.path, &options)?;
    if dataset.classes.len() < 2 {
        return Err(Error::Config {
            field: "data.path",
            rule: "must hold at least 2 classes to classify",
            got: format!(
                "{} with {} ({})",
                config.data.path.display(),
                dataset.classes.len(),
                dataset.classes.join(", ")
            ),
        });
    }
    read_phases(config, &mut dataset)?;
    if let Some(seconds) = config.data.chunk_seconds {
        let chunks = ChunkOptions {
            seconds,
            hop_seconds: None,
            tail: hark_dsp::Tail::Drop,
        };
        dataset = chunk_dataset(dataset, &chunks, config.data.strict)?;
    }
    if shard != Shard::WHOLE {
        let mut position = 0;
        dataset.examples.retain(|_| {
            position += 1;
            shard.holds(position - 1)
        });
    }
    let extractor = FeatureExtractor::new(&config.features).map_err(features_error)?;
    let stage = match (
        config.augment.random_placement,
        config.augment.needs_waveform(),
    ) {
        (true, _) if config.features.duration.is_none() => {
            return Err(Error::Config {
                field: "augment.random_placement",
                rule: "needs a clip length, features.duration",
                got: "features.duration unset".into(),
            });
        }
        (true, _) => Stage::Resampled,
        (false, true) => Stage::Waveform,
        (false, false) => Stage::LogMel,
    };
    let cache_dir = config
        .data
        .cache_dir
        .clone()
        .unwrap_or_else(|| cache_dir_for(&config.data.path));
    let cache = FeatureCache::new(&cache_dir, &config.features);
    let extracted = extract_all(
        &dataset,
        &extractor,
        stage,
        Some(&cache),
        config.data.strict,
        progress,
    )?;
    let mut skipped = dataset.skipped.clone();
    skipped.extend(extracted.failed);
    let mut clips = Vec::with_capacity(extracted.features.len());
    let clip_of = (extracted.features.into_iter())
        .map(|f| {
            f.map(|f| {
                clips.push(f);
                clips.len() - 1
            })
        })
        .collect();
    Ok(Prepared {
        dataset,
        clips: Arc::new(clips),
        clip_of,
        extractor,
        stage,
        skipped,
        cache_hits: extracted.cache_hits,
        cache_corrupt: extracted.corrupt,
        cache_error: extracted.cache_error,
    })
}

/// A speaker tree's `phase_map.csv`, when it has one or `data.split =
/// "phase_map"` asks for it.
fn read_phases(config: &ExperimentConfig, dataset: &mut Dataset) -> Result<()> {
    let required = config.data.split == SplitSetting::Policy(SplitPolicy::PhaseMap);
    let map = config.data.path.join(PHASE_MAP);
    if config.data.kind != DatasetKind::Speakers || !map.is_file() {
        return match required {
            false => Ok(()),
            true => Err(Error::Config {
                field: "data.split",
                rule: "\"phase_map\" needs a speaker dataset with a phase_map.csv",
                got: map.display().to_string(),
            }),
        };
    }
    Ok(read_phase_map(dataset, &config.data.path, &map)?)
}

/// `<dataset>/.hark-cache`, or beside the CSV for a CSV dataset.
fn cache_dir_for(path: &Path) -> PathBuf {
    let root = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    root.join(".hark-cache")
}

impl Prepared {
    /// The input shape models are built for: `[channels, mels, frames]` of
    /// the longest log-mel.
    ///
    /// # Errors
    /// [`Error::NoExamples`] when no example could be read.
    pub fn input_shape(&self) -> Result<InputShape> {
        // The longest clip has the most frames; a waveform's log-mel shape
        // is found by transforming that one clip.
        let longest = (self.clip_of.iter().enumerate())
            .filter_map(|(example, clip)| clip.map(|c| (example, c)))
            .max_by_key(|&(_, c)| self.clips[c].frames)
            .ok_or(Error::NoExamples)?;
        let [channels, height, frames] = self.logmel(longest.0, longest.1, 0)?.shape();
        Ok(InputShape {
            channels,
            height,
            frames,
        })
    }

    /// The held-out features of `example`, whose clip is `clip`: the
    /// cached log-mel, or the log-mel of its waveform placed as `crop`
    /// (0: by `features.placement`; see [`hark_data::FeatureExtractor::place`]).
    ///
    /// # Errors
    /// A waveform the extractor rejects.
    pub fn logmel(&self, example: usize, clip: usize, crop: u64) -> Result<Features> {
        let features = &self.clips[clip];
        Ok(match self.stage {
            Stage::LogMel => features.clone(),
            Stage::Waveform => self.extractor.transform(features)?,
            Stage::Resampled => {
                let path = &self.dataset.examples[example].path;
                self.extractor
                    .transform(&self.extractor.place(features, path, crop))?
            }
        })
    }

    /// The folds that hold examples, in order (a corpus may use fewer than
    /// its layout's ten).
    pub fn folds(&self) -> Vec<u32> {
        self.dataset.fold_ids()
    }

    /// The readable examples in `split`.
    pub fn subset(&self, splits: &[Split], split: Split) -> Part {
        let mut part = Part::default();
        for (i, (clip, s)) in self.clip_of.iter().zip(splits).enumerate() {
            if let (Some(clip), true) = (clip, *s == split) {
                part.clips.push(*clip);
                part.labels.push(self.dataset.examples[i].label);
                part.examples.push(i);
            }
        }
        part
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_parse_and_split_positions_disjointly() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let owners: Vec<usize> = (0..7)
            .map(|i| {
                let shards = (1..=3).filter(|&k| Shard { index: k, count: 3 }.holds(i));
                let owners: Vec<usize> = shards.collect();
                assert_eq!(owners.len(), 1, "position {i}");
                owners[0]
            })
            .collect();
        assert_eq!(owners, [1, 2, 3, 1, 2, 3, 1]);
        assert!((0..5).all(|i| Shard::WHOLE.holds(i)));
    }
}
