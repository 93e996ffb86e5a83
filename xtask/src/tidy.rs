//! Repository checks that `cargo test` enforces.

use std::fs;
use std::path::{Path, PathBuf};

use crate::root;

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_none_or(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn only_hark_simd_allows_unsafe_code() {
    let simd = root().join("crates/simd");
    let mut offenders = Vec::new();
    for dir in ["crates", "xtask"] {
        for file in rust_files(&root().join(dir)) {
            if file.starts_with(&simd) {
                continue;
            }
            // Without white space, so `unsafe{` and `unsafe  fn` are caught too.
            let text: String = (fs::read_to_string(&file).unwrap_or_default())
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let allows = [
                "allow(unsafe_code)",
                "unsafe{",
                "unsafefn",
                "unsafeimpl",
                "unsafeextern",
            ];
            // This file names them to look for them.
            if !file.ends_with("xtask/src/tidy.rs") && allows.iter().any(|a| text.contains(a)) {
                offenders.push(file.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe code outside crates/simd: {offenders:?}"
    );
}

#[test]
fn hark_simd_documents_every_unsafe_block() {
    let lib = fs::read_to_string(root().join("crates/simd/src/lib.rs")).unwrap();
    assert!(lib.contains("#![deny(clippy::undocumented_unsafe_blocks)]"));
}

#[test]
fn run_directory_file_names_are_spelled_only_in_run_dir() {
    let names = [
        "\"config.toml\"",
        "\"model.json\"",
        "\"metrics.jsonl\"",
        "best.safetensors",
        "last.safetensors",
        ".train.safetensors",
        "\"report.txt\"",
        "\"report.json\"",
        "\"predictions.csv\"",
        "\"confusion.png\"",
        "\"curves.png\"",
        "\"train.log\"",
        "cv_summary.json\"",
        "cv_summary.md\"",
        "\"cv.json\"",
        "\"slurm-logs\"",
        "\"fold-{",
    ];
    let owner = root().join("crates/train/src/run_dir.rs");
    let mut offenders = Vec::new();
    for file in rust_files(&root().join("crates")) {
        // Only library and binary code: tests look at the files by name.
        let in_src = file.components().any(|c| c.as_os_str() == "src");
        if file == owner || !in_src {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        let code: String = (text.split("#[cfg(test)]").next().unwrap_or_default())
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        for name in names.iter().filter(|n| code.contains(*n)) {
            offenders.push(format!("{}: {name}", file.display()));
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
