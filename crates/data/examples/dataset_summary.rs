//! Prints a JSON summary of a dataset: examples per class and per fold or
//! split, the sample-rate / bit-depth / channel / codec histogram, and files
//! that are missing or unreadable, with reasons.
//!
//! ```text
//! dataset_summary --kind urbansound8k|esc50|esc10|speakers|folders|csv --path DIR [--strict]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use hark_data::{DatasetKind, LoadOptions, format_histogram, open_dataset};

fn main() {
    if let Err(e) = run() {
        eprintln!("dataset_summary: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut kind, mut path, mut strict) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kind" => {
                kind = Some(
                    args.next()
                        .ok_or("--kind needs a value")?
                        .parse::<DatasetKind>()?,
                )
            }
            "--path" => path = Some(PathBuf::from(args.next().ok_or("--path needs a value")?)),
            "--strict" => strict = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --kind KIND --path DIR [--strict]"
                )
                .into());
            }
        }
    }
    let (kind, path) = (
        kind.ok_or("--kind is required")?,
        path.ok_or("--path is required")?,
    );
    let ds = open_dataset(
        kind,
        &path,
        &LoadOptions {
            strict,
            ..Default::default()
        },
    )?;
    let per_class: BTreeMap<&str, usize> = ds
        .classes
        .iter()
        .map(String::as_str)
        .zip(ds.class_counts())
        .collect();
    let per_part: BTreeMap<String, BTreeMap<&str, usize>> = ds
        .counts_by_part()
        .into_iter()
        .map(|(part, counts)| {
            (
                part,
                ds.classes.iter().map(String::as_str).zip(counts).collect(),
            )
        })
        .collect();
    let formats = format_histogram(&ds);
    let summary = serde_json::json!({
        "kind": ds.kind,
        "path": path,
        "examples": ds.examples.len(),
        "classes": ds.classes.len(),
        "per_class": per_class,
        "per_fold_or_split": per_part,
        "formats": formats,
        "missing": ds.skipped,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
