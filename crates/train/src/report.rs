//! A run's test report: `report.txt`, `report.json`, `predictions.csv` and
//! `confusion.png`.

use std::fmt::Write as _;

use crate::run_dir::{write_file, write_json};
use crate::{
    ClassificationReport, ConfusionMatrix, Evaluation, Prepared, Result, RunDir, RunResult,
    confusion_png,
};

/// The confusion matrix and per-class report of `eval` over classes
/// `names`.
///
/// # Errors
/// [`Error::Metrics`] for a label out of range.
pub fn classification_report(
    eval: &Evaluation,
    names: &[String],
) -> Result<(ConfusionMatrix, ClassificationReport)> {
    let truth: Vec<usize> = eval.predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<usize> = eval.predictions.iter().map(|p| p.predicted).collect();
    let matrix = ConfusionMatrix::from_labels(names.len(), &truth, &predicted)?;
    let report = ClassificationReport::new(&matrix, names)?;
    Ok((matrix, report))
}

/// Writes `report.txt`, `report.json`, `predictions.csv` and
/// `confusion.png` of `run` for `eval` (whose indices point into
/// `examples`, the dataset examples tested).
///
/// # Errors
/// [`Error::Io`] when a file cannot be written.
pub fn write_report(
    prepared: &Prepared,
    eval: &Evaluation,
    examples: &[usize],
    run: &RunDir,
    state: &crate::TrainState,
) -> Result<RunResult> {
    let names = &prepared.dataset.classes;
    let (matrix, report) = classification_report(eval, names)?;
    let seconds: f64 = state.history.iter().map(|m| m.seconds).sum();
    let seen: f64 = state
        .history
        .iter()
        .map(|m| m.samples_per_second * m.seconds)
        .sum();
    let result = RunResult {
        accuracy: report.accuracy,
        macro_f1: report.macro_avg.f1,
        examples: eval.predictions.len(),
        epochs: state.epoch,
        best_epoch: state.best.map_or(0, |b| b.1),
        samples_per_second: if seconds > 0.0 { seen / seconds } else { 0.0 },
        confusion: matrix.counts().to_vec(),
    };
    write_file(&run.report_txt(), report.to_string().as_bytes())?;
    let json = serde_json::json!({ "result": result, "report": report, "classes": names });
    write_json(&run.report_json(), &json)?;
    let mut csv = String::from("file,true,predicted");
    for n in names {
        let _ = write!(csv, ",p_{n}");
    }
    csv.push('\n');
    for p in &eval.predictions {
        let file = prepared.dataset.examples[examples[p.index]]
            .path
            .display()
            .to_string();
        let _ = write!(
            csv,
            "{},{},{}",
            csv_field(&file),
            csv_field(&names[p.label]),
            csv_field(&names[p.predicted])
        );
        for v in &p.probabilities {
            let _ = write!(csv, ",{v:.6}");
        }
        csv.push('\n');
    }
    write_file(&run.predictions(), csv.as_bytes())?;
    let title = format!(
        "test: accuracy {:.3}, macro F1 {:.3}",
        result.accuracy, result.macro_f1
    );
    confusion_png(&run.confusion_png(), &result.confusion, names, &title)?;
    Ok(result)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
