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
            let text = fs::read_to_string(&file).unwrap_or_default();
            let allows = ["allow(unsafe_code)", "unsafe {", "unsafe fn", "unsafe impl"];
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
