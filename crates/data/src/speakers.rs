//! Speaker-identification trees (`raw/<speaker>/<context>/<file>.wav`, seed
//! 002) and their phase map: 1 train, 2 validation, 4 test.

use std::collections::HashMap;
use std::path::Path;

use crate::dataset::{Dataset, Example, LoadOptions};
use crate::error::{DataError, Result};
use crate::fsutil::{is_audio, name_of, sorted_entries};
use crate::manifest::Manifest;
use crate::split::Split;

/// Loads `<root>/raw/<speaker>/<context>/*.wav`: one class per speaker in
/// name order. With `group_by_context`, all files of one context (a
/// recording session) form a group, so a split never puts one session on
/// both sides; otherwise each file is its own group.
///
/// # Errors
/// No `raw/` folder or speaker folders, or no examples.
pub fn load_speakers(
    root: &Path,
    group_by_context: bool,
    options: &LoadOptions,
) -> Result<Dataset> {
    let raw = root.join("raw");
    if !raw.is_dir() {
        return Err(DataError::manifest(
            root,
            None,
            None,
            "no raw/ folder: expected raw/<speaker>/<context>/*.wav",
        ));
    }
    let speakers = sorted_entries(&raw, Path::is_dir)?;
    let classes: Vec<String> = speakers.iter().map(|d| name_of(d)).collect();
    let mut examples = Vec::new();
    for (label, speaker) in speakers.iter().enumerate() {
        if let Some(file) = sorted_entries(speaker, is_audio)?.first() {
            return Err(DataError::manifest(
                file,
                None,
                None,
                "an audio file directly in a speaker's folder: expected \
                 raw/<speaker>/<context>/*.wav (a folder per recording session)",
            ));
        }
        for context in sorted_entries(speaker, Path::is_dir)? {
            for path in sorted_entries(&context, is_audio)? {
                let session = format!("{}/{}", classes[label], name_of(&context));
                let group = if group_by_context {
                    session
                } else {
                    format!("{session}/{}", name_of(&path))
                };
                examples.push(Example::new(path, label, group));
            }
        }
    }
    Dataset {
        kind: "speakers".into(),
        classes,
        examples,
        folds: None,
        skipped: Vec::new(),
    }
    .finish(root, options)
}

/// The file name of a speaker tree's phase map, at its root.
pub const PHASE_MAP: &str = "phase_map.csv";

fn phase(split: Split) -> u8 {
    match split {
        Split::Train => 1,
        Split::Val => 2,
        Split::Test => 4,
    }
}

/// Writes the phase map CSV (`path, speaker, context, phase`, paths relative
/// to `root`) of a speaker dataset whose examples have splits.
///
/// # Errors
/// An example without a split or outside `root`, or an unwritable file.
pub fn write_phase_map(dataset: &Dataset, root: &Path, path: &Path) -> Result<()> {
    let rows = dataset
        .examples
        .iter()
        .map(|e| {
            let split = e.split.ok_or_else(|| {
                DataError::manifest(
                    &e.path,
                    None,
                    None,
                    "example has no split; call assign_splits first",
                )
            })?;
            let rel = e.path.strip_prefix(root).map_err(|_| {
                DataError::manifest(&e.path, None, None, format!("not under {}", root.display()))
            })?;
            let context = e.path.parent().map(name_of).unwrap_or_default();
            Ok(vec![
                rel.display().to_string(),
                dataset.classes[e.label].clone(),
                context,
                phase(split).to_string(),
            ])
        })
        .collect::<Result<Vec<_>>>()?;
    Manifest::write(path, &["path", "speaker", "context", "phase"], rows)
}

/// Sets each example's split from a phase map written by [`write_phase_map`].
///
/// # Errors
/// A malformed map (naming row and column): missing columns, a phase other
/// than 1, 2 or 4, a path the dataset lacks; or a dataset file the map lacks.
pub fn read_phase_map(dataset: &mut Dataset, root: &Path, path: &Path) -> Result<()> {
    let manifest = Manifest::read(path)?;
    manifest.require(&["path", "phase"])?;
    let paths = manifest.text("path")?;
    let phases: Vec<u8> = manifest.parsed("phase", "1, 2 or 4")?;
    let mut index: HashMap<&Path, usize> = dataset
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_path(), i))
        .collect();
    let mut assigned = Vec::with_capacity(paths.len());
    for (row, (rel, &ph)) in paths.iter().zip(&phases).enumerate() {
        let split = match ph {
            1 => Split::Train,
            2 => Split::Val,
            4 => Split::Test,
            _ => {
                return Err(DataError::manifest(
                    path,
                    Some(row + 1),
                    Some("phase"),
                    format!("expected 1, 2 or 4, got {ph}"),
                ));
            }
        };
        let full = root.join(rel);
        let i = index.remove(full.as_path()).ok_or_else(|| {
            DataError::manifest(
                path,
                Some(row + 1),
                Some("path"),
                format!("{rel} is not in the dataset (or is listed twice)"),
            )
        })?;
        assigned.push((i, split));
    }
    if let Some((p, _)) = index.iter().next() {
        return Err(DataError::manifest(
            path,
            None,
            Some("path"),
            format!(
                "{} of the dataset's files are not in the map, e.g. {}",
                index.len(),
                p.display()
            ),
        ));
    }
    assigned
        .into_iter()
        .for_each(|(i, s)| dataset.examples[i].split = Some(s));
    Ok(())
}
