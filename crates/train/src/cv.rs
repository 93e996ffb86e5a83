//! Cross-validation: one run per test fold, and the summary across folds.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::run::run as run_fold;
use crate::run_dir::{write_file, write_json};
use crate::{
    ConfusionMatrix, Error, ExperimentConfig, Observer, Prepared, Result, RunDir, RunResult,
    confusion_png,
};

/// One fold's line of the cross-validation summary: its held-out scores,
/// without the wall-time figures of its `report.json`, so a summary is the
/// same byte for byte whether its folds ran in one process or as separate
/// cluster jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// The test fold.
    pub fold: u32,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-averaged F1.
    pub macro_f1: f64,
    /// Test examples.
    pub examples: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose weights were tested.
    pub best_epoch: usize,
    /// Confusion matrix on the test fold, row = truth.
    pub confusion: Vec<Vec<u64>>,
}

impl FoldResult {
    /// Fold `fold`'s line from its run's result.
    pub fn new(fold: u32, r: RunResult) -> Self {
        Self {
            fold,
            accuracy: r.accuracy,
            macro_f1: r.macro_f1,
            examples: r.examples,
            epochs: r.epochs,
            best_epoch: r.best_epoch,
            confusion: r.confusion,
        }
    }
}

/// The cross-validation summary, as `cv_summary.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    /// Per finished fold, in fold order.
    pub folds: Vec<FoldResult>,
    /// Mean and (population) standard deviation of the test accuracy.
    pub accuracy: (f64, f64),
    /// Mean and standard deviation of the test macro F1.
    pub macro_f1: (f64, f64),
    /// The confusion matrices of every fold, summed.
    pub confusion: Vec<Vec<u64>>,
    /// Class names.
    pub classes: Vec<String>,
    /// Folds of the plan without a finished run (empty when complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
}

/// The most folds a plan may list.
const MAX_FOLDS: usize = 1000;

/// What a cross-validation covers, as `cv.json` in its root holds it: every
/// fold job writes the same file (atomically, identical bytes), so
/// [`merge_folds`] needs neither the config nor the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvPlan {
    /// Every fold holding examples.
    pub folds: Vec<u32>,
    /// Class names.
    pub classes: Vec<String>,
}

impl CvPlan {
    /// The plan of cross-validating `prepared` with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for a dataset without folds or one split ignoring
    /// them.
    pub fn new(prepared: &Prepared, config: &ExperimentConfig) -> Result<Self> {
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
        Ok(Self {
            folds: prepared.folds(),
            classes: prepared.dataset.classes.clone(),
        })
    }

    /// Reads the plan in `root`.
    ///
    /// # Errors
    /// [`Error::Io`] when no fold has started there (no `cv.json`), or it
    /// cannot be parsed.
    pub fn read(root: &RunDir) -> Result<Self> {
        let path = root.cv_plan();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: std::io::Error::new(
                e.kind(),
                format!("{e}: not a cross-validation root, or no fold has started in it"),
            ),
        })?;
        let bad = |msg: String| Error::Io {
            path: path.clone(),
            source: std::io::Error::other(msg),
        };
        let plan: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        // A merge visits every fold's directory: the plan bounds that loop.
        if plan.folds.len() > MAX_FOLDS {
            return Err(bad(format!(
                "{} folds (a cross-validation has at most {MAX_FOLDS})",
                plan.folds.len()
            )));
        }
        Ok(plan)
    }

    fn write(&self, root: &RunDir) -> Result<()> {
        root.create()?;
        write_json(&root.cv_plan(), self)
    }

    fn check_fold(&self, k: u32) -> Result<()> {
        if self.folds.contains(&k) {
            return Ok(());
        }
        Err(Error::Config {
            field: "fold",
            rule: "must be a fold of the dataset",
            got: format!(
                "{k} (the dataset's folds are {})",
                self.folds
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// Runs test fold `k` in `root`'s `fold-KK/` and nothing else, resuming
/// its checkpoint when it has one; returns its result and whether it was
/// trained now (false: it had finished before). It writes only inside
/// `fold-KK/` (and `cv.json`, whose bytes every fold shares), so all folds
/// may run at once on machines sharing the file system.
///
/// # Errors
/// As [`cross_validate`].
pub fn cross_validate_fold(
    prepared: &Prepared,
    config: &ExperimentConfig,
    k: u32,
    root: &RunDir,
    observer: &mut dyn Observer,
) -> Result<(RunResult, bool)> {
    let plan = CvPlan::new(prepared, config)?;
    plan.check_fold(k)?;
    plan.write(root)?;
    run_one(prepared, config, k, root, observer)
}

/// Fold `k`'s result, and whether it was trained now rather than found.
fn run_one(
    prepared: &Prepared,
    config: &ExperimentConfig,
    k: u32,
    root: &RunDir,
    observer: &mut dyn Observer,
) -> Result<(RunResult, bool)> {
    let run = root.fold(k);
    let (result, trained) = match run.read_result()? {
        Some(result) => (result, false),
        None => {
            observer.fold_start(k);
            let mut config = config.clone();
            config.data.fold = Some(k);
            let splits = prepared.splits(&config, Some(k))?;
            (run_fold(prepared, &config, &splits, &run, observer)?, true)
        }
    };
    observer.fold_end(k, &result);
    Ok((result, trained))
}

/// Cross-validates over `folds` (every fold holding examples by default):
/// fold k tests on fold k in `root`'s `fold-KK/`, skipping folds whose
/// `report.json` exists (a re-run resumes), then merges every finished
/// fold, those of earlier runs too ([`merge_folds`]). Every fold's loaders
/// share `prepared`'s features.
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
    let plan = CvPlan::new(prepared, config)?;
    let selected = folds.unwrap_or(&plan.folds);
    selected.iter().try_for_each(|&k| plan.check_fold(k))?;
    plan.write(root)?;
    for &k in &plan.folds {
        if selected.contains(&k) {
            run_one(prepared, config, k, root, observer)?;
        }
    }
    merge_folds(root)
}

/// Writes `cv_summary.json`, `cv_summary.md` and the summed
/// `confusion.png` in `root` from the folds of its plan that finished;
/// the summary lists the others as `missing`.
///
/// # Errors
/// [`Error::Io`] without a plan or with no finished fold; a fold report
/// that does not match the plan's classes.
pub fn merge_folds(root: &RunDir) -> Result<CvSummary> {
    let plan = CvPlan::read(root)?;
    let classes = plan.classes;
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for &k in &plan.folds {
        match root.fold(k).read_result()? {
            Some(r) => results.push(FoldResult::new(k, r)),
            None => missing.push(k),
        }
    }
    // Each fold's matrix is checked against the plan before any is
    // summed, so nothing is sized by the plan alone.
    let mut confusion: Option<ConfusionMatrix> = None;
    for f in &results {
        let m = ConfusionMatrix::from_counts(classes.len(), f.confusion.clone()).map_err(|e| {
            let report = root.fold(f.fold).report_json();
            match e {
                Error::Metrics(m) => Error::Metrics(format!("{}: {m}", report.display())),
                e => e,
            }
        })?;
        match &mut confusion {
            Some(sum) => sum.merge(&m)?,
            None => confusion = Some(m),
        }
    }
    let Some(confusion) = confusion else {
        return Err(Error::Io {
            path: root.path().to_path_buf(),
            source: std::io::Error::other("no fold has finished: nothing to merge"),
        });
    };
    let acc: Vec<f64> = results.iter().map(|f| f.accuracy).collect();
    let f1: Vec<f64> = results.iter().map(|f| f.macro_f1).collect();
    let summary = CvSummary {
        folds: results,
        accuracy: mean_std(&acc),
        macro_f1: mean_std(&f1),
        confusion: confusion.counts().to_vec(),
        classes,
        missing,
    };
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
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {} | {} |",
                f.fold, f.accuracy, f.macro_f1, f.examples, f.best_epoch
            );
        }
        let _ = writeln!(
            s,
            "| mean +- std | {:.3} +- {:.3} | {:.3} +- {:.3} | {} | |",
            self.accuracy.0,
            self.accuracy.1,
            self.macro_f1.0,
            self.macro_f1.1,
            self.folds.iter().map(|f| f.examples).sum::<usize>()
        );
        if !self.missing.is_empty() {
            let list: Vec<String> = self.missing.iter().map(u32::to_string).collect();
            let _ = writeln!(s, "\nnot finished: fold {}", list.join(", "));
        }
        s
    }
}
