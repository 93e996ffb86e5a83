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

/// The error of a CSV polars cannot parse: the row of a quote that never
/// closes when there is one, and polars' reason cut short (it may quote
/// the whole file).
fn unreadable(path: &Path, reason: &str) -> DataError {
    let text = std::fs::read(path).unwrap_or_default();
    let mut short: String = reason.chars().take(160).collect();
    if short.len() < reason.len() {
        short.push_str("...");
    }
    match unclosed_quote_line(&text) {
        Some(line) => DataError::manifest(
            path,
            line.checked_sub(1),
            None,
            format!("a quote opened on line {line} never closes (unreadable CSV: {short})"),
        ),
        None => DataError::manifest(path, None, None, format!("unreadable CSV: {short}")),
    }
}

/// The 1-based line on which a quoted field opens that the file never
/// closes.
fn unclosed_quote_line(text: &[u8]) -> Option<usize> {
    let (mut line, mut opened) = (1, None);
    for &b in text {
        match (b, opened) {
            (b'"', None) => opened = Some(line),
            (b'"', Some(_)) => opened = None,
            (b'\n', _) => line += 1,
            _ => {}
        }
    }
    opened
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
            .map_err(|e| unreadable(path, &e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_of_a_quote_that_never_closes_is_found() {
        assert_eq!(unclosed_quote_line(b"a,b\n\"x,1\n2,3\n"), Some(2));
        assert_eq!(
            unclosed_quote_line(b"a,b\n\"x \"\"y\"\"\",1\n\"z\n"),
            Some(3)
        );
        assert_eq!(unclosed_quote_line(b"a,b\n\"x\",1\n"), None);
    }
}
