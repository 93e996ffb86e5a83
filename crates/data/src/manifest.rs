//! CSV manifests read with polars, every column as text, then checked cell by
//! cell so that an error names the file, the row and the column.

use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataFrame, SerReader};

use crate::error::{DataError, Result};

/// A CSV table whose cells are validated on access.
pub(crate) struct Manifest {
    path: PathBuf,
    df: DataFrame,
}

impl Manifest {
    /// Reads `path`; every column is kept as text.
    pub(crate) fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(DataError::manifest(
                path,
                None,
                None,
                "manifest file not found",
            ));
        }
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| DataError::manifest(path, None, None, format!("unreadable CSV: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            df,
        })
    }

    /// Writes rows of text cells as CSV (quoting where needed).
    pub(crate) fn write(
        path: &Path,
        header: &[&str],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Result<()> {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut text = header.join(",");
        text.push('\n');
        for row in rows {
            text.push_str(&row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        crate::write_atomic(path, text.as_bytes())
    }

    /// The manifest's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Data rows.
    pub(crate) fn rows(&self) -> usize {
        self.df.height()
    }

    /// Fails naming every listed column the file lacks.
    pub(crate) fn require(&self, columns: &[&str]) -> Result<()> {
        let names: Vec<String> = self
            .df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !names.iter().any(|n| n == c))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(DataError::manifest(
            &self.path,
            None,
            None,
            format!(
                "missing column(s) {} (found: {})",
                missing.join(", "),
                names.join(", ")
            ),
        ))
    }

    /// The non-empty text of every cell of `column`.
    pub(crate) fn text(&self, column: &str) -> Result<Vec<String>> {
        let series = self
            .df
            .column(column)
            .map_err(|e| DataError::manifest(&self.path, None, Some(column), e.to_string()))?;
        let strings = series
            .str()
            .map_err(|e| DataError::manifest(&self.path, None, Some(column), e.to_string()))?;
        strings
            .iter()
            .enumerate()
            .map(|(i, cell)| match cell.map(str::trim) {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(DataError::manifest(
                    &self.path,
                    Some(i + 1),
                    Some(column),
                    "empty cell",
                )),
            })
            .collect()
    }

    /// Every cell of `column` parsed as `T`; `what` names the expected type.
    pub(crate) fn parsed<T: std::str::FromStr>(&self, column: &str, what: &str) -> Result<Vec<T>> {
        self.text(column)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.parse().map_err(|_| {
                    DataError::manifest(
                        &self.path,
                        Some(i + 1),
                        Some(column),
                        format!("expected {what}, got {v:?}"),
                    )
                })
            })
            .collect()
    }

    /// Every cell of `column` as a boolean (`true`/`false`, `1`/`0`, any case).
    pub(crate) fn bools(&self, column: &str) -> Result<Vec<bool>> {
        self.text(column)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(DataError::manifest(
                    &self.path,
                    Some(i + 1),
                    Some(column),
                    format!("expected true or false, got {v:?}"),
                )),
            })
            .collect()
    }

    /// Fails at the second row holding a value of `column` seen before.
    pub(crate) fn unique(&self, column: &str, values: &[String]) -> Result<()> {
        let mut seen = std::collections::HashMap::new();
        for (i, v) in values.iter().enumerate() {
            if let Some(first) = seen.insert(v.as_str(), i + 1) {
                return Err(DataError::manifest(
                    &self.path,
                    Some(i + 1),
                    Some(column),
                    format!("duplicate {v:?}, first at row {first}"),
                ));
            }
        }
        Ok(())
    }
}
