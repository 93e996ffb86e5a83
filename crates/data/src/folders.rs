//! Folder-per-class datasets (`<root>/<class>/*.wav`, seed 003), optionally
//! cut into fixed-length chunks, and their split manifests.

use std::collections::BTreeMap;
use std::path::Path;

use hark_dsp::{Tail, chunk_ranges};

use crate::dataset::{Dataset, Example, LoadOptions, Skipped, Span};
use crate::error::{DataError, Result};
use crate::fsutil::{is_audio, name_of, sorted_entries, write_atomic};
use crate::manifest::Manifest;
use crate::split::{Split, SplitRatios, stratified_split};

/// How to cut files into fixed windows; each window is one example, and the
/// windows of one file share a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkOptions {
    /// Window length in seconds.
    pub seconds: f64,
    /// Seconds between window starts. Default: `seconds` (no overlap).
    pub hop_seconds: Option<f64>,
    /// Whether a last partial window is dropped or zero-padded.
    pub tail: Tail,
}

/// Loads `<root>/<class>/*.wav`: classes are the sub-folders in name order,
/// each file's group is `class/file`. Cut long files into windows with
/// [`chunk_dataset`].
///
/// # Errors
/// `root` unreadable or without class folders, or no examples.
pub fn load_folders(root: &Path, options: &LoadOptions) -> Result<Dataset> {
    let class_dirs = sorted_entries(root, Path::is_dir)?;
    if class_dirs.is_empty() {
        return Err(DataError::manifest(
            root,
            None,
            None,
            "no class folders: expected <root>/<class>/*.wav",
        ));
    }
    let classes: Vec<String> = class_dirs.iter().map(|d| name_of(d)).collect();
    let mut examples = Vec::new();
    for (label, dir) in class_dirs.iter().enumerate() {
        for path in sorted_entries(dir, is_audio)? {
            let group = format!("{}/{}", classes[label], name_of(&path));
            examples.push(Example::new(path, label, group));
        }
    }
    Dataset {
        kind: "folders".into(),
        classes,
        examples,
        folds: None,
        skipped: Vec::new(),
    }
    .finish(root, options)
}

/// Cuts every whole-file example of any dataset into fixed windows (seed
/// 003's 2-second chunks), reading each file's length from its header. The
/// windows keep the file's label, fold and group, so a split never
/// separates them; files shorter than a window with [`Tail::Drop`], or
/// unreadable, are moved to [`Dataset::skipped`] (or fail under `strict`).
///
/// # Errors
/// Non-positive window or hop, a bad file with `strict`, or no examples left.
pub fn chunk_dataset(mut dataset: Dataset, chunks: &ChunkOptions, strict: bool) -> Result<Dataset> {
    let hop = chunks.hop_seconds.unwrap_or(chunks.seconds);
    let here = Path::new(&dataset.kind).to_path_buf();
    if !(chunks.seconds > 0.0 && hop > 0.0) {
        return Err(DataError::manifest(
            &here,
            None,
            None,
            format!(
                "chunk seconds and hop must be > 0, got {} and {hop}",
                chunks.seconds
            ),
        ));
    }
    let mut examples = Vec::with_capacity(dataset.examples.len());
    for example in std::mem::take(&mut dataset.examples) {
        if example.span.is_some() {
            examples.push(example);
            continue;
        }
        match spans(&example.path, chunks) {
            Ok(s) if s.is_empty() => dataset.skipped.push(Skipped {
                path: example.path,
                reason: format!("shorter than one {} s chunk", chunks.seconds),
            }),
            Ok(s) => examples.extend(s.into_iter().map(|span| Example {
                span: Some(span),
                ..example.clone()
            })),
            Err(e) if strict => return Err(e),
            Err(e) => dataset.skipped.push(Skipped {
                path: example.path,
                reason: e.to_string(),
            }),
        }
    }
    if examples.is_empty() {
        return Err(DataError::manifest(
            &here,
            None,
            None,
            "no examples left after chunking",
        ));
    }
    dataset.examples = examples;
    Ok(dataset)
}

/// The chunk spans of one file, from its header.
fn spans(path: &Path, c: &ChunkOptions) -> Result<Vec<Span>> {
    let info = crate::inspect_audio(path)?;
    let rate = info.sample_rate as f64;
    let window = (c.seconds * rate).round().max(1.0) as usize;
    let hop = (c.hop_seconds.unwrap_or(c.seconds) * rate).round().max(1.0) as usize;
    let ranges = chunk_ranges(info.frames as usize, window, hop, c.tail).map_err(|source| {
        DataError::Dsp {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(ranges
        .into_iter()
        .map(|r| Span {
            start: r.start as f64 / rate,
            end: (r.start + window) as f64 / rate,
        })
        .collect())
}

/// Gives every example a split: stratified by class, grouped, seeded (see
/// [`stratified_split`]).
pub fn assign_splits(dataset: &mut Dataset, ratios: SplitRatios, seed: u64) {
    let labels: Vec<usize> = dataset.examples.iter().map(|e| e.label).collect();
    let groups: Vec<&str> = dataset.examples.iter().map(|e| e.group.as_str()).collect();
    let splits = stratified_split(&labels, &groups, ratios, seed);
    dataset
        .examples
        .iter_mut()
        .zip(splits)
        .for_each(|(e, s)| e.split = Some(s));
}

/// Writes `train.csv`, `val.csv` and `test.csv` (columns `path, label,
/// class, group, start, end`; `start`/`end` empty for whole files) and
/// `split_summary.json` (examples per split and class) into `dir`.
///
/// # Errors
/// An example without a split, or a file that cannot be written.
pub fn write_split_manifests(dataset: &Dataset, dir: &Path) -> Result<()> {
    if let Some(e) = dataset.examples.iter().find(|e| e.split.is_none()) {
        return Err(DataError::manifest(
            &e.path,
            None,
            None,
            "example has no split; call assign_splits first",
        ));
    }
    for split in [Split::Train, Split::Val, Split::Test] {
        let rows = dataset
            .examples
            .iter()
            .filter(|e| e.split == Some(split))
            .map(|e| {
                let (start, end) = e.span.map_or((String::new(), String::new()), |s| {
                    (s.start.to_string(), s.end.to_string())
                });
                vec![
                    e.path.display().to_string(),
                    e.label.to_string(),
                    dataset.classes[e.label].clone(),
                    e.group.clone(),
                    start,
                    end,
                ]
            });
        Manifest::write(
            &dir.join(format!("{}.csv", split.as_str())),
            &["path", "label", "class", "group", "start", "end"],
            rows,
        )?;
    }
    let summary: BTreeMap<String, BTreeMap<&str, usize>> = dataset
        .counts_by_part()
        .into_iter()
        .map(|(part, counts)| {
            (
                part,
                dataset
                    .classes
                    .iter()
                    .map(String::as_str)
                    .zip(counts)
                    .collect(),
            )
        })
        .collect();
    let json = serde_json::to_vec_pretty(&summary).expect("maps of strings and counts serialise");
    write_atomic(&dir.join("split_summary.json"), &json)
}
