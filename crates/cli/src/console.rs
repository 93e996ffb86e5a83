//! What the user sees while work goes on: progress bars on a terminal
//! (indicatif), plain log lines (tracing) when stderr is a pipe or a file.

use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::Instant;

use hark_data::Progress;
use hark_train::{EpochMetrics, Observer, RunResult};
use indicatif::{ProgressBar, ProgressStyle};

fn bar(len: usize, template: &str, prefix: String) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|e| unreachable!("a constant template parses: {e}"))
        .progress_chars("=> ");
    ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(prefix)
}

/// Reports a training run or a cross-validation.
#[derive(Debug)]
pub struct Console {
    bars: bool,
    bar: Option<(ProgressBar, Instant)>,
    fold: Option<u32>,
}

impl Console {
    /// With progress bars when `bars` (stderr is a terminal and not `-q`).
    pub fn new(bars: bool) -> Self {
        Self {
            bars,
            bar: None,
            fold: None,
        }
    }

    fn prefix(&self) -> String {
        self.fold.map(|k| format!("fold {k} ")).unwrap_or_default()
    }
}

impl Observer for Console {
    fn fold_start(&mut self, fold: u32) {
        self.fold = Some(fold);
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, examples: usize) {
        if self.bars {
            let bar = bar(
                examples,
                "{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                format!("{}epoch {epoch}/{epochs}", self.prefix()),
            );
            self.bar = Some((bar, Instant::now()));
        }
    }

    fn batch(&mut self, seen: usize, loss: f64, accuracy: f64) {
        if let Some((bar, start)) = &self.bar {
            let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(seen as u64);
            bar.set_message(format!(
                "loss {loss:.4} acc {accuracy:.3} {rate:.0} samples/s"
            ));
        }
    }

    fn epoch_end(&mut self, metrics: &EpochMetrics) -> ControlFlow<()> {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!("{}{metrics}", self.prefix());
        ControlFlow::Continue(())
    }

    fn fold_end(&mut self, fold: u32, result: &RunResult) {
        tracing::info!(
            "fold {fold}: test accuracy {:.4}, macro F1 {:.4}",
            result.accuracy,
            result.macro_f1
        );
        self.fold = None;
    }

    fn note(&mut self, line: &str) {
        tracing::info!("{line}");
    }
}

/// Reports feature extraction: a bar, or a log line about every 10 %.
#[derive(Debug)]
pub struct ExtractProgress {
    bars: bool,
    bar: OnceLock<ProgressBar>,
}

impl ExtractProgress {
    /// With a progress bar when `bars`.
    pub fn new(bars: bool) -> Self {
        Self {
            bars,
            bar: OnceLock::new(),
        }
    }
}

impl Progress for ExtractProgress {
    fn update(&self, done: usize, total: usize) {
        if !self.bars {
            if done == total || done.is_multiple_of((total / 10).max(1)) {
                tracing::info!("features: {done}/{total}");
            }
            return;
        }
        let bar = self.bar.get_or_init(|| {
            bar(
                total,
                "{prefix} [{bar:30}] {pos}/{len} ETA {eta}",
                "features".into(),
            )
        });
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
        }
    }
}
