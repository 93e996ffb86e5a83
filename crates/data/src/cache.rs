//! On-disk cache of per-clip features: one safetensors file per clip and
//! configuration, keyed by the file's identity and every feature parameter,
//! written atomically and checked on load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use safetensors::{Dtype, SafeTensors, serialize, tensor::TensorView};

use crate::dataset::Example;
use crate::error::{DataError, Result, io_error};
use crate::features::{FeatureConfig, Features, Stage, fnv1a};

/// Bumped whenever the pipeline's output for a given config changes.
const PIPELINE_VERSION: &str = "hark-data features v1";

/// What [`FeatureCache::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLookup {
    /// No entry for this key.
    Miss,
    /// An entry existed but was truncated, corrupt or for another key; it must be recomputed.
    Corrupt,
}

/// A directory of cached clips for one [`FeatureConfig`]; each entry is
/// for one [`Stage`], given on lookup and store.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    config_json: String,
}

impl FeatureCache {
    /// A cache in `dir` (created on first store) for clips made with `config`.
    pub fn new(dir: &Path, config: &FeatureConfig) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config_json: serde_json::to_string(config).expect("feature configs serialise"),
        }
    }

    /// The key of an example: its path, size, modification time and span,
    /// the stage, the whole feature configuration and the pipeline version.
    fn key(&self, example: &Example, stage: Stage) -> Result<String> {
        let path = &example.path;
        let meta = std::fs::metadata(path).map_err(io_error(path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let span = example
            .span
            .map_or(String::new(), |s| format!("{}..{}", s.start, s.end));
        Ok(format!(
            "{PIPELINE_VERSION}\n{:?}\n{}\n{}\n{mtime}\n{span}\n{}",
            stage,
            path.display(),
            meta.len(),
            self.config_json
        ))
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(format!("{:016x}.safetensors", fnv1a(key.as_bytes())))
    }

    /// The cached `stage` of `example`, or why there is none.
    ///
    /// # Errors
    /// The example's file cannot be read for its size and time.
    pub fn lookup(
        &self,
        example: &Example,
        stage: Stage,
    ) -> Result<std::result::Result<Features, CacheLookup>> {
        let key = self.key(example, stage)?;
        let Ok(bytes) = std::fs::read(self.entry_path(&key)) else {
            return Ok(Err(CacheLookup::Miss));
        };
        Ok(parse_entry(&bytes, &key).ok_or(CacheLookup::Corrupt))
    }

    /// Stores the `stage` of `example`, atomically.
    ///
    /// # Errors
    /// The entry cannot be written.
    pub fn store(&self, example: &Example, stage: Stage, features: &Features) -> Result<()> {
        let key = self.key(example, stage)?;
        let bytes: Vec<u8> = features.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let meta = HashMap::from([
            ("key".to_string(), key.clone()),
            ("checksum".to_string(), format!("{:016x}", fnv1a(&bytes))),
        ]);
        let view = TensorView::new(Dtype::F32, features.shape().to_vec(), &bytes)
            .expect("shape matches data");
        let file = serialize([("features", view)], Some(meta)).map_err(|e| DataError::Decode {
            path: self.entry_path(&key),
            reason: e.to_string(),
        })?;
        crate::write_atomic(&self.entry_path(&key), &file)
    }
}

/// The features in a cache entry, if it is whole and for `key`.
fn parse_entry(bytes: &[u8], key: &str) -> Option<Features> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).ok()?;
    let meta = metadata.metadata().as_ref()?;
    if meta.get("key").map(String::as_str) != Some(key) {
        return None;
    }
    let tensors = SafeTensors::deserialize(bytes).ok()?;
    let view = tensors.tensor("features").ok()?;
    let (data, shape) = (view.data(), view.shape());
    if view.dtype() != Dtype::F32
        || shape.len() != 3
        || meta.get("checksum")? != &format!("{:016x}", fnv1a(data))
    {
        return None;
    }
    Some(Features {
        data: data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        channels: shape[0],
        n_mels: shape[1],
        frames: shape[2],
    })
}
