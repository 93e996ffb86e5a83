//! Datasets with a metadata CSV and predefined folds: UrbanSound8K and ESC-50.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Example, LoadOptions, check_inside_root, classes_from_ids};
use crate::error::{DataError, Result};
use crate::manifest::Manifest;

/// How one fold-CSV layout names its columns and files.
struct Layout {
    kind: &'static str,
    manifest: &'static str,
    columns: &'static [&'static str],
    file: &'static str,
    fold: &'static str,
    id: &'static str,
    name: &'static str,
    group: &'static str,
    folds: u32,
    audio_path: fn(&Path, u32, &str) -> PathBuf,
}

/// UrbanSound8K's manifest, relative to the dataset root.
pub(crate) const URBANSOUND8K_MANIFEST: &str = "metadata/UrbanSound8K.csv";
/// UrbanSound8K's manifest columns, in file order.
pub(crate) const URBANSOUND8K_COLUMNS: [&str; 8] = [
    "slice_file_name",
    "fsID",
    "start",
    "end",
    "salience",
    "fold",
    "classID",
    "class",
];

const URBANSOUND8K: Layout = Layout {
    kind: "urbansound8k",
    manifest: URBANSOUND8K_MANIFEST,
    columns: &URBANSOUND8K_COLUMNS,
    file: "slice_file_name",
    fold: "fold",
    id: "classID",
    name: "class",
    group: "fsID",
    folds: 10,
    audio_path: |root, fold, file| root.join("audio").join(format!("fold{fold}")).join(file),
};

const ESC50: Layout = Layout {
    kind: "esc50",
    manifest: "meta/esc50.csv",
    columns: &[
        "filename", "fold", "target", "category", "esc10", "src_file", "take",
    ],
    file: "filename",
    fold: "fold",
    id: "target",
    name: "category",
    group: "src_file",
    folds: 5,
    audio_path: |root, _, file| root.join("audio").join(file),
};

/// Loads UrbanSound8K from `root` (`metadata/UrbanSound8K.csv` and
/// `audio/fold1..fold10/`): class names from the CSV, folds 1..10, the
/// freesound id `fsID` as group.
///
/// # Errors
/// A missing or malformed manifest (naming row and column: missing columns,
/// wrong types, folds outside 1..10, a classID disagreeing with its class,
/// duplicate files, `start > end`), missing files with `strict`, or no
/// examples left.
pub fn load_urbansound8k(root: &Path, options: &LoadOptions) -> Result<Dataset> {
    let manifest = Manifest::read(&root.join(URBANSOUND8K.manifest))?;
    manifest.require(URBANSOUND8K.columns)?;
    let (starts, ends): (Vec<f64>, Vec<f64>) = (
        manifest.parsed("start", "a number")?,
        manifest.parsed("end", "a number")?,
    );
    manifest.parsed::<u32>("salience", "an integer")?;
    if let Some(row) = starts
        .iter()
        .zip(&ends)
        .position(|(s, e)| !(0.0..=*e).contains(s))
    {
        return Err(DataError::manifest(
            manifest.path(),
            Some(row + 1),
            Some("start"),
            format!("start {} must be in 0..=end ({})", starts[row], ends[row]),
        ));
    }
    load(root, manifest, &URBANSOUND8K, None, options)
}

/// Loads ESC-50 from `root` (`meta/esc50.csv` and `audio/`): 5 folds, the
/// source clip `src_file` as group; with `esc10`, only the ESC-10 subset,
/// relabelled `0..10` in target order.
///
/// # Errors
/// As [`load_urbansound8k`], for folds 1..5.
pub fn load_esc50(root: &Path, esc10: bool, options: &LoadOptions) -> Result<Dataset> {
    let manifest = Manifest::read(&root.join(ESC50.manifest))?;
    manifest.require(ESC50.columns)?;
    let keep = if esc10 {
        Some(manifest.bools("esc10")?)
    } else {
        None
    };
    let mut ds = load(root, manifest, &ESC50, keep.as_deref(), options)?;
    ds.kind = if esc10 { "esc10".into() } else { ds.kind };
    Ok(ds)
}

fn load(
    root: &Path,
    manifest: Manifest,
    layout: &Layout,
    keep: Option<&[bool]>,
    options: &LoadOptions,
) -> Result<Dataset> {
    manifest.require(layout.columns)?;
    let files = manifest.text(layout.file)?;
    manifest.unique(layout.file, &files)?;
    let folds: Vec<u32> = manifest.parsed(layout.fold, "an integer")?;
    if let Some(row) = folds.iter().position(|f| !(1..=layout.folds).contains(f)) {
        return Err(DataError::manifest(
            manifest.path(),
            Some(row + 1),
            Some(layout.fold),
            format!("fold must be in 1..={}, got {}", layout.folds, folds[row]),
        ));
    }
    let ids: Vec<usize> = manifest.parsed(layout.id, "a non-negative integer")?;
    let names = manifest.text(layout.name)?;
    let groups = manifest.text(layout.group)?;
    let keep_row = |i: usize| keep.is_none_or(|k| k[i]);
    let rows: Vec<usize> = (0..manifest.rows()).filter(|&i| keep_row(i)).collect();
    // A subset keeps the original ids' order but renumbers them 0..n.
    let mut subset_ids: Vec<usize> = rows.iter().map(|&i| ids[i]).collect();
    subset_ids.sort_unstable();
    subset_ids.dedup();
    let relabel = |id: usize| subset_ids.binary_search(&id).expect("id of a kept row");
    let ids_kept: Vec<usize> = rows.iter().map(|&i| relabel(ids[i])).collect();
    // Row numbers in errors must stay the file's, so check the full columns
    // first: ids with a gap are an error, not renumbered without a word.
    let all = classes_from_ids(&manifest, layout.id, &ids, &names)?;
    let classes = match keep {
        Some(_) => subset_ids.iter().map(|&id| all[id].clone()).collect(),
        None => all,
    };
    let examples = rows
        .iter()
        .zip(ids_kept)
        .map(|(&i, label)| Example {
            path: (layout.audio_path)(root, folds[i], &files[i]),
            label,
            group: groups[i].clone(),
            fold: Some(folds[i]),
            split: None,
            span: None,
        })
        .collect::<Vec<_>>();
    check_inside_root(&examples, root, options, |i, reason| {
        DataError::manifest(
            manifest.path(),
            Some(rows[i] + 1),
            Some(layout.file),
            reason,
        )
    })?;
    Dataset {
        kind: layout.kind.into(),
        classes,
        examples,
        folds: Some(layout.folds),
        skipped: Vec::new(),
    }
    .finish(root, options)
}
