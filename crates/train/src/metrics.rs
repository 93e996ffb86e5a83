//! Classification metrics: the confusion matrix and a per-class report
//! equal to scikit-learn's `classification_report` (zero division counted
//! as 0, macro and support-weighted averages), in text and JSON.

use std::fmt;

use serde::Serialize;

use crate::{Error, Result};

/// Counts of (true class, predicted class): row = truth, column = prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// The matrix of `truth` against `predicted`.
    ///
    /// # Errors
    /// [`Error::Metrics`] for slices of different lengths or a class out of range.
    pub fn from_labels(classes: usize, truth: &[usize], predicted: &[usize]) -> Result<Self> {
        let mut m = Self::new(classes);
        if truth.len() != predicted.len() {
            return Err(Error::Metrics(format!(
                "{} labels but {} predictions",
                truth.len(),
                predicted.len()
            )));
        }
        for (&t, &p) in truth.iter().zip(predicted) {
            m.add(t, p)?;
        }
        Ok(m)
    }

    /// The matrix of `counts` (row = truth), which must be `classes` rows
    /// of `classes` counts: a matrix read back from a report.
    ///
    /// # Errors
    /// [`Error::Metrics`] for any other shape.
    pub fn from_counts(classes: usize, counts: Vec<Vec<u64>>) -> Result<Self> {
        if counts.len() != classes || counts.iter().any(|row| row.len() != classes) {
            let rows = counts.iter().map(Vec::len).collect::<Vec<_>>();
            return Err(Error::Metrics(format!(
                "a confusion matrix over {classes} classes needs {classes} rows of {classes}, \
                 got rows of {rows:?}"
            )));
        }
        Ok(Self { counts })
    }

    /// Counts one example.
    ///
    /// # Errors
    /// [`Error::Metrics`] for a class out of range.
    pub fn add(&mut self, truth: usize, predicted: usize) -> Result<()> {
        let n = self.counts.len();
        if truth >= n || predicted >= n {
            return Err(Error::Metrics(format!(
                "class {} is out of range for {n} classes",
                truth.max(predicted)
            )));
        }
        self.counts[truth][predicted] += 1;
        Ok(())
    }

    /// Adds another matrix of the same size (e.g. summing folds).
    ///
    /// # Errors
    /// [`Error::Metrics`] for matrices of different sizes.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.counts.len() != self.counts.len() {
            return Err(Error::Metrics(format!(
                "cannot add a {0}x{0} matrix to a {1}x{1} one",
                other.counts.len(),
                self.counts.len()
            )));
        }
        for (row, o) in self.counts.iter_mut().zip(&other.counts) {
            for (a, b) in row.iter_mut().zip(o) {
                *a = a
                    .checked_add(*b)
                    .ok_or_else(|| Error::Metrics("confusion counts overflow".into()))?;
            }
        }
        Ok(())
    }

    /// The counts, row = truth.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction on the diagonal (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Precision, recall, F1 and support of one class or one average.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// Class name, or `macro avg` / `weighted avg`.
    pub name: String,
    /// `tp / (tp + fp)`, 0 without predictions.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 without support.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// True examples of the class (all examples for an average).
    pub support: u64,
}

/// scikit-learn's classification report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// One row per class, in class order.
    pub classes: Vec<ClassScores>,
    /// Fraction of examples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean over classes.
    pub macro_avg: ClassScores,
    /// Mean over classes weighted by support.
    pub weighted_avg: ClassScores,
}

impl ClassificationReport {
    /// The report of `matrix` with `names` for its classes.
    ///
    /// # Errors
    /// [`Error::Metrics`] when the name count differs from the class count.
    pub fn new(matrix: &ConfusionMatrix, names: &[String]) -> Result<Self> {
        let n = matrix.counts.len();
        if names.len() != n {
            return Err(Error::Metrics(format!(
                "{} class names for {n} classes",
                names.len()
            )));
        }
        let classes: Vec<ClassScores> = (0..n)
            .map(|c| {
                let tp = matrix.counts[c][c];
                let predicted: u64 = matrix.counts.iter().map(|row| row[c]).sum();
                let support: u64 = matrix.counts[c].iter().sum();
                let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    name: names[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let total = matrix.total();
        let average = |name: &str, weight: &dyn Fn(&ClassScores) -> f64| {
            let norm: f64 = classes.iter().map(weight).sum();
            let mean = |f: fn(&ClassScores) -> f64| {
                if norm == 0.0 {
                    0.0
                } else {
                    classes.iter().map(|c| f(c) * weight(c)).sum::<f64>() / norm
                }
            };
            ClassScores {
                name: name.to_string(),
                precision: mean(|c| c.precision),
                recall: mean(|c| c.recall),
                f1: mean(|c| c.f1),
                support: total,
            }
        };
        Ok(Self {
            macro_avg: average("macro avg", &|_| 1.0),
            weighted_avg: average("weighted avg", &|c| c.support as f64),
            accuracy: matrix.accuracy(),
            classes,
        })
    }
}

/// The most characters of a class name that reports and plots show.
pub const SHOWN_NAME_CHARS: usize = 40;

/// `name` as reports and plots show it: cut to [`SHOWN_NAME_CHARS`] with
/// an ellipsis, so that a manifest's class name cannot size a table or an
/// image.
pub fn shown_name(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(SHOWN_NAME_CHARS) {
        None => name.into(),
        Some(_) => {
            let (cut, _) = name
                .char_indices()
                .nth(SHOWN_NAME_CHARS - 1)
                .unwrap_or((0, ' '));
            format!("{}\u{2026}", &name[..cut]).into()
        }
    }
}

impl fmt::Display for ClassificationReport {
    /// scikit-learn's layout with two decimals, names as [`shown_name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .classes
            .iter()
            .map(|c| shown_name(&c.name).chars().count())
            .max()
            .unwrap_or(0)
            .max("weighted avg".len());
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, c: &ClassScores| {
            writeln!(
                f,
                "{:>width$}  {:>9.2} {:>9.2} {:>9.2} {:>9}",
                shown_name(&c.name),
                c.precision,
                c.recall,
                c.f1,
                c.support
            )
        };
        for c in &self.classes {
            row(f, c)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9.2} {:>9}",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        )?;
        row(f, &self.macro_avg)?;
        row(f, &self.weighted_avg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_class_name_is_cut_in_reports_and_a_short_one_kept() {
        assert_eq!(shown_name("dog"), "dog");
        let exact = "é".repeat(SHOWN_NAME_CHARS);
        assert_eq!(shown_name(&exact), exact);
        let cut = shown_name(&"é".repeat(65_536)).into_owned();
        assert_eq!(cut.chars().count(), SHOWN_NAME_CHARS);
        assert!(cut.ends_with('\u{2026}'));
        // A name longer than a format width can be (u16::MAX) used to panic.
        let names = ["x".repeat(65_536), "dog".into()];
        let matrix = ConfusionMatrix::from_labels(2, &[0, 1], &[0, 0]).unwrap();
        let text = ClassificationReport::new(&matrix, &names)
            .unwrap()
            .to_string();
        assert!(text.lines().all(|l| l.chars().count() < 100), "{text}");
    }
}
