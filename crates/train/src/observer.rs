//! What a run reports while it goes: [`Observer`] for progress bars, log
//! lines and stopping early from outside, and [`RunLog`], the observer
//! that writes a run directory's `train.log`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use crate::{EpochMetrics, Result, RunResult};

/// Hooks into a training run; every method defaults to doing nothing.
///
/// A closure `FnMut(&EpochMetrics) -> ControlFlow<()>` is an observer that
/// only sees finished epochs.
pub trait Observer {
    /// Cross-validation begins the run that tests on `fold`.
    fn fold_start(&mut self, _fold: u32) {}
    /// Epoch `epoch` (1-based) of `epochs` begins, over `examples` examples.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _examples: usize) {}
    /// A training batch finished: `seen` examples so far this epoch, with
    /// their mean loss and accuracy.
    fn batch(&mut self, _seen: usize, _loss: f64, _accuracy: f64) {}
    /// An epoch finished (validated and checkpointed); `Break` stops the run
    /// after it, to be resumed later.
    fn epoch_end(&mut self, _metrics: &EpochMetrics) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// The run that tested on `fold` finished.
    fn fold_end(&mut self, _fold: u32, _result: &RunResult) {}
    /// A line worth logging: what a run is about to do or has found.
    fn note(&mut self, _line: &str) {}
}

impl<F: FnMut(&EpochMetrics) -> ControlFlow<()>> Observer for F {
    fn epoch_end(&mut self, metrics: &EpochMetrics) -> ControlFlow<()> {
        self(metrics)
    }
}

/// Appends every epoch and note of a run to `train.log` (kept across a
/// resume) and passes everything on to the observer it wraps.
pub(crate) struct RunLog<'a> {
    file: std::fs::File,
    start: Instant,
    inner: &'a mut dyn Observer,
}

impl<'a> RunLog<'a> {
    /// Opens (or continues) the log at `path`.
    pub(crate) fn open(path: &Path, inner: &'a mut dyn Observer) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(crate::error::io_at(path))?;
        Ok(Self {
            file,
            start: Instant::now(),
            inner,
        })
    }

    fn line(&mut self, text: &str) {
        // The log is a record for people; a full disk shows up when the
        // checkpoint after it fails to write.
        let _ = writeln!(
            self.file,
            "[{:>8.1}s] {text}",
            self.start.elapsed().as_secs_f64()
        );
    }
}

impl Observer for RunLog<'_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, examples: usize) {
        self.inner.epoch_start(epoch, epochs, examples);
    }

    fn batch(&mut self, seen: usize, loss: f64, accuracy: f64) {
        self.inner.batch(seen, loss, accuracy);
    }

    fn epoch_end(&mut self, metrics: &EpochMetrics) -> ControlFlow<()> {
        self.line(&metrics.to_string());
        self.inner.epoch_end(metrics)
    }

    fn note(&mut self, line: &str) {
        self.line(line);
        self.inner.note(line);
    }
}
