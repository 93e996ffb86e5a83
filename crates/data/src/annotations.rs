//! Annotation-CSV datasets (seed 000): a CSV of file and label columns plus
//! an audio directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Example, LoadOptions, check_inside_root};
use crate::error::{DataError, Result};
use crate::manifest::Manifest;

/// Column names of an annotation CSV (a config's `data.columns`, e.g.
/// `{ file = "name", label = "snap" }` for seed 000's layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnotationColumns {
    /// The file column; a name without an extension gets `.wav`. Default: `file`.
    pub file: String,
    /// The label column, text or integers. Default: `label`.
    pub label: String,
    /// An optional group column. Default: none (each file its own group).
    pub group: Option<String>,
}

impl Default for AnnotationColumns {
    fn default() -> Self {
        Self {
            file: "file".into(),
            label: "label".into(),
            group: None,
        }
    }
}

/// Loads the files `csv` lists from `audio_dir`. Classes are the distinct
/// labels, in numeric order when all are integers, else in text order.
///
/// # Errors
/// A missing or malformed CSV (naming row and column), duplicate files,
/// missing files with `strict`, or no examples.
pub fn load_annotations(
    csv: &Path,
    audio_dir: &Path,
    columns: &AnnotationColumns,
    options: &LoadOptions,
) -> Result<Dataset> {
    let manifest = Manifest::read(csv)?;
    let mut required = vec![columns.file.as_str(), columns.label.as_str()];
    required.extend(columns.group.as_deref());
    manifest.require(&required)?;
    let files = manifest.text(&columns.file)?;
    manifest.unique(&columns.file, &files)?;
    let labels = manifest.text(&columns.label)?;
    let groups = match &columns.group {
        Some(g) => manifest.text(g)?,
        None => files.clone(),
    };
    let mut classes: Vec<String> = labels.clone();
    classes.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) if labels.iter().all(|l| l.parse::<i64>().is_ok()) => x.cmp(&y),
        _ => a.cmp(b),
    });
    classes.dedup();
    let examples = files
        .iter()
        .zip(&labels)
        .zip(groups)
        .map(|((file, label), group)| {
            let name = if Path::new(file).extension().is_some() {
                file.clone()
            } else {
                format!("{file}.wav")
            };
            let label = classes
                .iter()
                .position(|c| c == label)
                .expect("label is a class");
            Example::new(audio_dir.join(name), label, group)
        })
        .collect::<Vec<_>>();
    check_inside_root(&examples, audio_dir, options, |i, reason| {
        DataError::manifest(csv, Some(i + 1), Some(&columns.file), reason)
    })?;
    Dataset {
        kind: "annotations".into(),
        classes,
        examples,
        folds: None,
        skipped: Vec::new(),
    }
    .finish(csv, options)
}
