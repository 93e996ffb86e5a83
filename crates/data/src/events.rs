//! Event lists: `events.csv` with one row per sound event of a long
//! recording (`file`, `onset`, `offset` in seconds, `class`), the reference
//! that detections are scored against.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::manifest::Manifest;

/// The columns of an event list.
pub const EVENT_COLUMNS: [&str; 4] = ["file", "onset", "offset", "class"];

/// One annotated event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// The recording, as written in the list (a path relative to the list).
    pub file: String,
    /// Onset in seconds.
    pub onset: f64,
    /// Offset in seconds.
    pub offset: f64,
    /// The class name.
    pub class: String,
}

/// Reads an event list.
///
/// # Errors
/// A missing or malformed CSV, or a row whose times are not `0 <= onset <=
/// offset`, naming the row and column.
pub fn read_events(path: &Path) -> Result<Vec<EventRow>> {
    let manifest = Manifest::read(path)?;
    manifest.require(&EVENT_COLUMNS)?;
    let files = manifest.text("file")?;
    let onsets: Vec<f64> = manifest.parsed("onset", "seconds")?;
    let offsets: Vec<f64> = manifest.parsed("offset", "seconds")?;
    let classes = manifest.text("class")?;
    let rows = (files.into_iter().zip(onsets).zip(offsets).zip(classes))
        .map(|(((file, onset), offset), class)| EventRow {
            file,
            onset,
            offset,
            class,
        })
        .collect::<Vec<_>>();
    for (i, r) in rows.iter().enumerate() {
        let column = if r.onset.is_finite() && r.onset >= 0.0 {
            "offset"
        } else {
            "onset"
        };
        if !(r.onset.is_finite() && r.onset >= 0.0 && r.offset.is_finite() && r.offset >= r.onset) {
            return Err(DataError::manifest(
                path,
                Some(i + 1),
                Some(column),
                format!(
                    "times must be 0 <= onset <= offset, got {} to {}",
                    r.onset, r.offset
                ),
            ));
        }
    }
    Ok(rows)
}

/// Writes an event list.
///
/// # Errors
/// The file cannot be written.
pub fn write_events(path: &Path, rows: &[EventRow]) -> Result<()> {
    Manifest::write(
        path,
        &EVENT_COLUMNS,
        rows.iter().map(|r| {
            vec![
                r.file.clone(),
                format!("{:.3}", r.onset),
                format!("{:.3}", r.offset),
                r.class.clone(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_list_round_trips_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        let rows = vec![
            EventRow {
                file: "long/a.wav".into(),
                onset: 1.25,
                offset: 1.5,
                class: "clap".into(),
            },
            EventRow {
                file: "long/a.wav".into(),
                onset: 7.0,
                offset: 7.125,
                class: "click".into(),
            },
        ];
        write_events(&path, &rows).unwrap();
        assert_eq!(read_events(&path).unwrap(), rows);
        std::fs::write(&path, "file,onset,offset,class\na.wav,2.0,1.0,clap\n").unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("row 1") && err.contains("offset"), "{err}");
        std::fs::write(&path, "file,onset,class\na.wav,2.0,clap\n").unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("missing column(s) offset"), "{err}");
    }
}
