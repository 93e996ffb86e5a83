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
    /// Let a manifest list files outside the dataset root. Default: false.
    pub allow_outside_root: bool,
    /// The column names of an annotation CSV (the `csv` layout). Default:
    /// `file` and `label`.
    pub columns: crate::AnnotationColumns,
}

/// Refuses, unless `options` allow it, the first of `examples` whose file
/// leads out of `root` (after following symlinks; a path that does not
/// exist is judged by its components): `error` makes the error of example
/// `i` from the reason.
///
/// # Errors
/// The one `error` makes.
pub(crate) fn check_inside_root(
    examples: &[Example],
    root: &Path,
    options: &LoadOptions,
    error: impl Fn(usize, String) -> DataError,
) -> Result<()> {
    if options.allow_outside_root {
        return Ok(());
    }
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| lexical(p));
    let inside = real(root);
    for (i, e) in examples.iter().enumerate() {
        let to = real(&e.path);
        if !to.starts_with(&inside) {
            return Err(error(
                i,
                format!(
                    "{} leads to {}, outside the dataset root {} (data.allow_outside_root = \
                     true allows it)",
                    e.path.display(),
                    to.display(),
                    inside.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `path` made absolute with `.` and `..` resolved by name.
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Dataset {
    /// Examples per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        self.examples.iter().for_each(|e| counts[e.label] += 1);
        counts
    }

    /// The folds that hold examples, in order.
    pub fn fold_ids(&self) -> Vec<u32> {
        let mut folds: Vec<u32> = self.examples.iter().filter_map(|e| e.fold).collect();
        folds.sort_unstable();
        folds.dedup();
        folds
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
        let mut missing = Vec::new();
        self.examples.retain(|e| match std::fs::metadata(&e.path) {
            Ok(m) if m.is_file() => true,
            Ok(_) => {
                missing.push((
                    e.path.clone(),
                    "listed in the manifest, but not a file".into(),
                ));
                false
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                missing.push((e.path.clone(), "listed in the manifest but missing".into()));
                false
            }
            Err(err) => {
                missing.push((e.path.clone(), format!("listed in the manifest: {err}")));
                false
            }
        });
        if !missing.is_empty() && options.strict {
            return Err(DataError::BadFiles {
                count: missing.len(),
                first: missing.iter().take(5).map(|(p, _)| p.clone()).collect(),
            });
        }
        self.skipped.extend(
            missing
                .into_iter()
                .map(|(path, reason)| Skipped { path, reason }),
        );
        if self.examples.is_empty() {
            return Err(DataError::manifest(
                root,
                None,
                None,
                "no examples left after filtering",
            ));
        }
        // A class without examples would be a model output that can never
        // be right, and a silently lopsided report.
        let counts = self.class_counts();
        if let Some(empty) = counts.iter().position(|&n| n == 0) {
            return Err(DataError::manifest(
                root,
                None,
                None,
                format!(
                    "class {:?} has no audio files (its folder is empty or its files are \
                     missing); remove it, or list the classes to train on in data.classes",
                    self.classes[empty]
                ),
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
            format!(
                "ids must run 0..n without gaps, found {id} where {pos} was expected (to \
                 train on some of the classes, keep their rows and list them in data.classes)"
            ),
        ));
    }
    Ok(by_id
        .into_values()
        .map(|(name, _)| name.to_string())
        .collect())
}
