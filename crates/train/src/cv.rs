//! Cross-validation: one run per test fold, and the summary across folds.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::run::run as run_fold;
use crate::run_dir::{write_file, write_json};
use crate::{
    ConfusionMatrix, Error, ExperimentConfig, Observer, Prepared, Result, RunDir, RunResult,
    confusion_png,
};

/// One fold's line of the cross-validation summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// The test fold.
    pub fold: u32,
    /// Its held-out result.
    pub result: RunResult,
}

/// The cross-validation summary, as `cv_summary.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    /// Per fold, in fold order.
    pub folds: Vec<FoldResult>,
    /// Mean and (population) standard deviation of the test accuracy.
    pub accuracy: (f64, f64),
    /// Mean and standard deviation of the test macro F1.
    pub macro_f1: (f64, f64),
    /// The confusion matrices of every fold, summed.
    pub confusion: Vec<Vec<u64>>,
    /// Class names.
    pub classes: Vec<String>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// Cross-validates over `folds` (every fold holding examples by default):
/// fold k tests on fold k in `root`'s `fold-KK/`, skipping folds whose
/// `report.json` exists (a re-run resumes), then writes `cv_summary.json`,
/// `cv_summary.md` and the summed `confusion.png` over every finished fold
/// (those of earlier runs too). Every fold's loaders share `prepared`'s
/// features.
///
/// # Errors
/// [`Error::Config`] for a dataset without folds or a fold out of range;
/// anything a fold's run fails on.
pub fn cross_validate(
    prepared: &Prepared,
    config: &ExperimentConfig,
    folds: Option<&[u32]>,
    root: &RunDir,
    observer: &mut dyn Observer,
) -> Result<CvSummary> {
    if prepared.dataset.folds.is_none() {
        return Err(Error::Config {
            field: "data.kind",
            rule: "must be a dataset with folds for cross-validation",
            got: config.data.kind.to_string(),
        });
    }
    if config.data.ignore_folds {
        return Err(Error::Config {
            field: "data.ignore_folds",
            rule: "must be false for cross-validation, which tests fold by fold",
            got: "true".into(),
        });
    }
    let all = prepared.folds();
    let selected = folds.unwrap_or(&all);
    let mut results = Vec::new();
    for &k in &all {
        let run = root.fold(k);
        let finished = run.read_result()?;
        let result = match finished {
            Some(result) => Some(result),
            None if selected.contains(&k) => {
                observer.fold_start(k);
                let mut config = config.clone();
                config.data.fold = Some(k);
                let splits = prepared.splits(&config, Some(k))?;
                Some(run_fold(prepared, &config, &splits, &run, observer)?)
            }
            None => None,
        };
        if let Some(result) = result {
            if selected.contains(&k) {
                observer.fold_end(k, &result);
            }
            results.push(FoldResult { fold: k, result });
        }
    }
    let classes = prepared.dataset.classes.clone();
    let mut confusion = ConfusionMatrix::new(classes.len());
    for f in &results {
        let mut m = ConfusionMatrix::new(classes.len());
        for (t, row) in f.result.confusion.iter().enumerate() {
            for (p, &c) in row.iter().enumerate() {
                (0..c).try_for_each(|_| m.add(t, p))?;
            }
        }
        confusion.merge(&m)?;
    }
    let acc: Vec<f64> = results.iter().map(|f| f.result.accuracy).collect();
    let f1: Vec<f64> = results.iter().map(|f| f.result.macro_f1).collect();
    let summary = CvSummary {
        folds: results,
        accuracy: mean_std(&acc),
        macro_f1: mean_std(&f1),
        confusion: confusion.counts().to_vec(),
        classes,
    };
    root.create()?;
    write_json(&root.cv_summary_json(), &summary)?;
    write_file(&root.cv_summary_md(), summary.to_markdown().as_bytes())?;
    let title = format!(
        "{} folds summed: accuracy {:.3} +- {:.3}",
        summary.folds.len(),
        summary.accuracy.0,
        summary.accuracy.1
    );
    confusion_png(
        &root.confusion_png(),
        &summary.confusion,
        &summary.classes,
        &title,
    )?;
    Ok(summary)
}

impl CvSummary {
    /// The per-fold table with mean and standard deviation, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| fold | accuracy | macro F1 | test clips | best epoch |\n| ---: | ---: | ---: | ---: | ---: |\n",
        );
        for f in &self.folds {
            let r = &f.result;
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {} | {} |",
                f.fold, r.accuracy, r.macro_f1, r.examples, r.best_epoch
            );
        }
        let _ = writeln!(
            s,
            "| mean +- std | {:.3} +- {:.3} | {:.3} +- {:.3} | {} | |",
            self.accuracy.0,
            self.accuracy.1,
            self.macro_f1.0,
            self.macro_f1.1,
            self.folds.iter().map(|f| f.result.examples).sum::<usize>()
        );
        s
    }
}
