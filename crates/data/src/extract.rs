//! Feature extraction over a whole dataset: parallel over clips (rayon),
//! through the cache, reporting progress through a trait, skipping (or,
//! under `strict`, failing on) bad files.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hark_dsp::ResamplerCache;
use rayon::prelude::*;

use crate::cache::{CacheLookup, FeatureCache};
use crate::dataset::{Dataset, Skipped};
use crate::error::Result;
use crate::features::{FeatureExtractor, Features, Stage};

/// Receives progress from long work; the library itself prints nothing.
pub trait Progress: Sync {
    /// `done` of `total` items are finished.
    fn update(&self, done: usize, total: usize);
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: usize, _: usize) {}
}

/// The outcome of [`extract_all`].
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Features per example, in dataset order; `None` for a skipped file.
    pub features: Vec<Option<Features>>,
    /// Entries read from the cache.
    pub cache_hits: usize,
    /// Entries computed (and stored, with a cache).
    pub computed: usize,
    /// Cache entries found corrupt and recomputed.
    pub corrupt: usize,
    /// Files that could not be processed, with the reason.
    pub failed: Vec<Skipped>,
    /// Why the cache could not be written, if it could not: the features
    /// are computed all the same, and no more stores are tried.
    pub cache_error: Option<String>,
}

enum Outcome {
    Hit(Features),
    Computed(Features, bool),
    Failed(Skipped),
}

/// Computes (or loads from `cache`) every example up to `stage`, in
/// parallel on rayon's pool with one resampler cache per worker.
///
/// # Errors
/// With `strict`, the first file that fails; otherwise failures are listed
/// in [`Extracted::failed`]. A cache that cannot be written is not an
/// error: the run goes on without it ([`Extracted::cache_error`]).
pub fn extract_all(
    dataset: &Dataset,
    extractor: &FeatureExtractor,
    stage: Stage,
    cache: Option<&FeatureCache>,
    strict: bool,
    progress: &dyn Progress,
) -> Result<Extracted> {
    let total = dataset.examples.len();
    let done = AtomicUsize::new(0);
    let (cache_failed, cache_error) = (AtomicBool::new(false), Mutex::new(None));
    let outcomes: Vec<Result<Outcome>> = dataset
        .examples
        .par_iter()
        .map_init(ResamplerCache::new, |resamplers, example| {
            let outcome = (|| {
                let corrupt = match cache.map(|c| c.lookup(example, stage)).transpose()? {
                    Some(Ok(features)) => return Ok(Outcome::Hit(features)),
                    Some(Err(found)) => found == CacheLookup::Corrupt,
                    None => false,
                };
                match extractor.extract_stage(example, stage, resamplers) {
                    Ok(features) => {
                        if let Some(c) = cache.filter(|_| !cache_failed.load(Ordering::Relaxed)) {
                            if let Err(e) = c.store(example, stage, &features) {
                                cache_failed.store(true, Ordering::Relaxed);
                                let mut first = cache_error.lock().expect("not poisoned");
                                first.get_or_insert_with(|| e.to_string());
                            }
                        }
                        Ok(Outcome::Computed(features, corrupt))
                    }
                    Err(e) if strict => Err(e),
                    Err(e) => Ok(Outcome::Failed(Skipped {
                        path: example.path.clone(),
                        reason: e.to_string(),
                    })),
                }
            })();
            progress.update(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            outcome
        })
        .collect();
    let mut out = Extracted {
        cache_error: cache_error.into_inner().expect("not poisoned"),
        ..Default::default()
    };
    for outcome in outcomes {
        match outcome? {
            Outcome::Hit(f) => {
                out.cache_hits += 1;
                out.features.push(Some(f));
            }
            Outcome::Computed(f, corrupt) => {
                out.computed += 1;
                out.corrupt += corrupt as usize;
                out.features.push(Some(f));
            }
            Outcome::Failed(s) => {
                out.failed.push(s);
                out.features.push(None);
            }
        }
    }
    Ok(out)
}
