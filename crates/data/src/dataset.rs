//! [`Dataset`]: a table of examples (file, label, group, fold or split) and
//! the class names, as every dataset layout loads into.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::split::Split;

/// A time span of a file, in seconds; an example that is one chunk of a
/// longer recording.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    /// Start in seconds.
    pub start: f64,
    /// End in seconds (may pass the file's end: the tail is zero-padded).
    pub end: f64,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// The audio file.
    pub path: PathBuf,
    /// Index into [`Dataset::classes`].
    pub label: usize,
    /// Examples sharing a group (a recording, a speaker's session, the chunks
    /// of one file) never go to different splits.
    pub group: String,
    /// The predefined fold, 1-based, where the dataset has folds.
    pub fold: Option<u32>,
    /// The assigned split, where one was made or read.
    pub split: Option<Split>,
    /// The part of the file this example covers; `None` is the whole file.
    pub span: Option<Span>,
}

impl Example {
    /// A whole-file example without fold or split.
    pub fn new(path: PathBuf, label: usize, group: String) -> Self {
        Self {
            path,
            label,
            group,
            fold: None,
            split: None,
            span: None,
        }
    }
}

/// A file left out of a dataset, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// Examples plus class names; what every loader returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    /// A short name of the layout, e.g. `urbansound8k`.
    pub kind: String,
    /// Class names; a label is an index into this.
    pub classes: Vec<String>,
    /// The examples.
    pub examples: Vec<Example>,
    /// Number of predefined folds (folds are `1..=n`), if any.
    pub folds: Option<u32>,
    /// Files the manifest lists but that were left out.
    pub skipped: Vec<Skipped>,
}

/// Options every loader takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Keep only these classes, relabelled `0..n` in this order. Default: all.
    pub classes: Option<Vec<String>>,
    /// Fail on the first missing or unreadable file instead of skipping it.
    /// Default: false.
    pub strict: bool,
    /// The column names of an annotation CSV (the `csv` layout). Default:
    /// `file` and `label`.
    pub columns: crate::AnnotationColumns,
}

impl Dataset {
    /// Examples per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        self.examples.iter().for_each(|e| counts[e.label] += 1);
        counts
    }

    /// Examples per `(fold or split name, class)`.
    pub fn counts_by_part(&self) -> BTreeMap<String, Vec<usize>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for e in &self.examples {
            let part = match (e.fold, e.split) {
                (_, Some(s)) => s.as_str().to_string(),
                (Some(f), None) => format!("fold{f}"),
                (None, None) => "all".to_string(),
            };
            out.entry(part)
                .or_insert_with(|| vec![0; self.classes.len()])[e.label] += 1;
        }
        out
    }

    /// Applies the class filter and the missing-file policy, and rejects an
    /// empty result. `root` names the dataset in errors.
    pub(crate) fn finish(mut self, root: &Path, options: &LoadOptions) -> Result<Self> {
        if let Some(keep) = &options.classes {
            let mut map = vec![None; self.classes.len()];
            for (new, name) in keep.iter().enumerate() {
                let old = self.classes.iter().position(|c| c == name).ok_or_else(|| {
                    DataError::manifest(
                        root,
                        None,
                        None,
                        format!(
                            "class filter names {name:?}, which the dataset lacks (it has {})",
                            self.classes.join(", ")
                        ),
                    )
                })?;
                map[old] = Some(new);
            }
            self.examples.retain_mut(|e| match map[e.label] {
                Some(new) => {
                    e.label = new;
                    true
                }
                None => false,
            });
            self.classes = keep.clone();
        }
        let (present, missing): (Vec<_>, Vec<_>) =
            self.examples.into_iter().partition(|e| e.path.is_file());
        self.examples = present;
        if !missing.is_empty() && options.strict {
            return Err(DataError::BadFiles {
                count: missing.len(),
                first: missing.iter().take(5).map(|e| e.path.clone()).collect(),
            });
        }
        self.skipped.extend(missing.into_iter().map(|e| Skipped {
            path: e.path,
            reason: "listed in the manifest but missing".into(),
        }));
        if self.examples.is_empty() {
            return Err(DataError::manifest(
                root,
                None,
                None,
                "no examples left after filtering",
            ));
        }
        Ok(self)
    }
}

/// Class names from parallel id and name columns: each id must always carry
/// the same name and vice versa, and ids must run `0..n`.
pub(crate) fn classes_from_ids(
    manifest: &crate::manifest::Manifest,
    id_column: &str,
    ids: &[usize],
    names: &[String],
) -> Result<Vec<String>> {
    let mut by_id: BTreeMap<usize, (&str, usize)> = BTreeMap::new();
    for (row, (&id, name)) in ids.iter().zip(names).enumerate() {
        let (first, first_row) = *by_id.entry(id).or_insert((name.as_str(), row + 1));
        if first != name {
            return Err(DataError::manifest(
                manifest.path(),
                Some(row + 1),
                Some(id_column),
                format!("{id_column} {id} is {name:?} here but {first:?} at row {first_row}"),
            ));
        }
    }
    let mut seen_names = BTreeMap::new();
    for (&id, &(name, row)) in &by_id {
        if let Some(other) = seen_names.insert(name, id) {
            return Err(DataError::manifest(
                manifest.path(),
                Some(row),
                Some(id_column),
                format!("class {name:?} has two ids, {other} and {id}"),
            ));
        }
    }
    if let Some((pos, (&id, &(_, row)))) =
        by_id.iter().enumerate().find(|(pos, (id, _))| *pos != **id)
    {
        return Err(DataError::manifest(
            manifest.path(),
            Some(row),
            Some(id_column),
            format!("ids must run 0..n without gaps, found {id} where {pos} was expected"),
        ));
    }
    Ok(by_id
        .into_values()
        .map(|(name, _)| name.to_string())
        .collect())
}
