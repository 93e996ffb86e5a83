//! File-system helpers: atomic writes and sorted directory listings.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use crate::error::{Result, io_error};

/// Writes `bytes` to a temporary file beside `path` and renames it into
/// place, so a reader never sees a half-written file. The temporary name
/// holds the process id and a random number: processes on different
/// machines sharing a file system (cross-validation folds run as cluster
/// jobs) may write the same file at once, and the last rename wins whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // RandomState's keys come from the operating system's randomness.
    let nonce = RandomState::new().build_hasher().finish();
    let tmp = dir.join(format!(".{name}.{}-{nonce:016x}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes)
        .map_err(io_error(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io_error(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Entries of `dir` that satisfy `keep`, sorted by name (so listings are the
/// same on every file system); hidden entries are skipped.
pub(crate) fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` is a file ending in `.wav` (any case).
pub(crate) fn is_audio(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| {
            crate::AUDIO_EXTENSIONS
                .iter()
                .any(|a| e.eq_ignore_ascii_case(a))
        })
}

/// The file name of `path` as text.
pub(crate) fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
