//! A run directory and every file in it, named in this one place: what a
//! training run writes, what evaluation, prediction and resuming read, and
//! the fold directories and summary of a cross-validation.

use std::path::{Path, PathBuf};

use hark_data::write_atomic;
use hark_models::Model;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{io_at, json_at};
use crate::{Error, ExperimentConfig, ModelInfo, Result, RunResult};

/// Which of a run's two checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The weights of the best epoch on the monitored metric.
    Best,
    /// The weights after the last finished epoch (what a resume continues).
    Last,
    /// The weights after epoch N (from 1), kept by `train.save_every`.
    Epoch(usize),
}

impl Checkpoint {
    fn stem(self) -> String {
        match self {
            Self::Best => "best".into(),
            Self::Last => "last".into(),
            Self::Epoch(n) => format!("epoch-{n:03}"),
        }
    }
}

/// The directory of one run (or the root of a cross-validation's folds).
/// Paths are computed, never checked, except by [`RunDir::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { root: path.into() }
    }

    /// A finished run at `path`: one with its resolved config and its
    /// model description.
    ///
    /// # Errors
    /// [`Error::NotARun`] naming the file that is missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let dir = Self::new(path);
        for (file, name) in [
            (dir.config(), "config.toml"),
            (dir.model_info(), "model.json"),
        ] {
            if !file.is_file() {
                return Err(Error::NotARun {
                    path: dir.root.clone(),
                    missing: name,
                });
            }
        }
        Ok(dir)
    }

    /// A run at `path` that can be resumed: one with its resolved config.
    ///
    /// # Errors
    /// [`Error::NotARun`] when `config.toml` is missing.
    pub fn resumable(path: impl Into<PathBuf>) -> Result<Self> {
        let dir = Self::new(path);
        if !dir.config().is_file() {
            return Err(Error::NotARun {
                path: dir.root,
                missing: "config.toml",
            });
        }
        Ok(dir)
    }

    /// Creates the directory (and its parents).
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory.
    pub fn create(&self) -> Result<()> {
        let root = &self.root;
        if root.exists() && !root.is_dir() {
            return Err(Error::Io {
                path: root.clone(),
                source: std::io::Error::other("the run directory is a file, not a directory"),
            });
        }
        std::fs::create_dir_all(root).map_err(io_at(root))
    }

    /// Removes what interrupted atomic writes left in the directory (the
    /// `.NAME.PID-RANDOM.tmp` files of [`write_atomic`](hark_data::write_atomic)).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be listed or a leftover
    /// removed.
    pub fn remove_temporaries(&self) -> Result<()> {
        let root = &self.root;
        for entry in std::fs::read_dir(root).map_err(io_at(root))? {
            let path = entry.map_err(io_at(root))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp")) && path.is_file() {
                std::fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The best weights, repaired first when a kill between a checkpoint's
    /// two writes left them behind their training file.
    ///
    /// # Errors
    /// As [`repair_checkpoint`](crate::repair_checkpoint).
    pub fn best_weights(&self) -> Result<PathBuf> {
        crate::repair_checkpoint(self, Checkpoint::Best)?;
        Ok(self.weights(Checkpoint::Best))
    }

    /// `config.toml`: the resolved experiment config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `model.json`: the [`ModelInfo`] that rebuilds the model.
    pub fn model_info(&self) -> PathBuf {
        self.root.join("model.json")
    }

    /// `metrics.jsonl`: one line per finished epoch.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `best.safetensors`, `last.safetensors` or `epoch-NNN.safetensors`:
    /// the model's state_dict, loadable by PyTorch.
    pub fn weights(&self, which: Checkpoint) -> PathBuf {
        self.root.join(format!("{}.safetensors", which.stem()))
    }

    /// `best.train.safetensors` or `last.train.safetensors`: the optimizer
    /// state and the trainer's progress beside the weights.
    pub fn training_state(&self, which: Checkpoint) -> PathBuf {
        self.root
            .join(format!("{}.train.safetensors", which.stem()))
    }

    /// `report.txt`: the per-class report on the test set.
    pub fn report_txt(&self) -> PathBuf {
        self.root.join("report.txt")
    }

    /// `report.json`: the [`RunResult`] and the per-class report.
    pub fn report_json(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// `eval_<split>.txt`: the report of `hark eval` on a split.
    pub fn eval_report(&self, split: &str) -> PathBuf {
        self.root.join(format!("eval_{split}.txt"))
    }

    /// `predictions.csv`: file, truth, prediction and probabilities.
    pub fn predictions(&self) -> PathBuf {
        self.root.join("predictions.csv")
    }

    /// `confusion.png`: the confusion matrix (of a run, or summed over a
    /// cross-validation's folds).
    pub fn confusion_png(&self) -> PathBuf {
        self.root.join("confusion.png")
    }

    /// `curves.png`: loss and accuracy per epoch.
    pub fn curves_png(&self) -> PathBuf {
        self.root.join("curves.png")
    }

    /// `specs.png`: training inputs of each class as the model sees them.
    pub fn specs_png(&self) -> PathBuf {
        self.root.join("specs.png")
    }

    /// `train.log`: every epoch and note of the run.
    pub fn log(&self) -> PathBuf {
        self.root.join("train.log")
    }

    /// The run of test fold `k` of a cross-validation rooted here:
    /// `fold-KK/`.
    pub fn fold(&self, k: u32) -> Self {
        Self::new(self.root.join(format!("fold-{k:02}")))
    }

    /// `slurm-logs/`: the per-task logs of a cross-validation's cluster jobs.
    pub fn slurm_logs(&self) -> PathBuf {
        self.root.join("slurm-logs")
    }

    /// `cv.json`: the folds and classes of a cross-validation rooted here.
    pub fn cv_plan(&self) -> PathBuf {
        self.root.join("cv.json")
    }

    /// `cv_summary.json` of a cross-validation rooted here.
    pub fn cv_summary_json(&self) -> PathBuf {
        self.root.join("cv_summary.json")
    }

    /// `cv_summary.md`: the per-fold table.
    pub fn cv_summary_md(&self) -> PathBuf {
        self.root.join("cv_summary.md")
    }

    /// The run's resolved config, with `overrides` applied.
    ///
    /// # Errors
    /// As [`ExperimentConfig::load`].
    pub fn read_config(&self, overrides: &[String]) -> Result<ExperimentConfig> {
        ExperimentConfig::load(&self.config(), overrides)
    }

    /// The run's [`ModelInfo`].
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Json`] naming `model.json`.
    pub fn read_model_info(&self) -> Result<ModelInfo> {
        read_json(&self.model_info())
    }

    /// The run's model with the weights of `which` (built with the run's
    /// seed, so its dropout stream is the run's too).
    ///
    /// # Errors
    /// As [`read_config`](Self::read_config) and
    /// [`read_model_info`](Self::read_model_info); a checkpoint that is
    /// missing or does not fit the model.
    pub fn model(&self, which: Checkpoint) -> Result<Model> {
        let seed = self.read_config(&[])?.train.seed;
        self.read_model_info()?.load(seed, &self.weights(which))
    }

    /// The held-out result in `report.json`, or `None` before the run
    /// finished.
    ///
    /// # Errors
    /// [`Error::Json`] for a `report.json` that is there but malformed.
    pub fn read_result(&self) -> Result<Option<RunResult>> {
        let path = self.report_json();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        #[derive(serde::Deserialize)]
        struct Report {
            result: RunResult,
        }
        let report: Report = serde_json::from_str(&text).map_err(json_at(&path))?;
        Ok(Some(report.result))
    }
}

/// `value` as pretty JSON at `path`, written atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(json_at(path))?;
    write_file(path, json.as_bytes())
}

/// `bytes` at `path`, written atomically.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(write_atomic(path, bytes)?)
}

/// The JSON value at `path`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_at(path))?;
    serde_json::from_str(&text).map_err(json_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_lies_in_the_run_and_folds_nest_under_the_root() {
        let run = RunDir::new("runs/x");
        assert_eq!(
            run.weights(Checkpoint::Best),
            Path::new("runs/x/best.safetensors")
        );
        assert_eq!(
            run.training_state(Checkpoint::Last),
            Path::new("runs/x/last.train.safetensors")
        );
        assert_eq!(run.fold(3).path(), Path::new("runs/x/fold-03"));
        assert_eq!(
            run.fold(3).report_json(),
            Path::new("runs/x/fold-03/report.json")
        );
        assert_eq!(run.eval_report("val"), Path::new("runs/x/eval_val.txt"));
    }

    #[test]
    fn opening_a_directory_that_is_not_a_run_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("has no config.toml"), "{err}");
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let err = RunDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("has no model.json"), "{err}");
        std::fs::write(dir.path().join("model.json"), "{").unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        let err = run.read_model_info().unwrap_err().to_string();
        assert!(err.contains("model.json"), "{err}");
        assert!(run.read_result().unwrap().is_none());
    }
}
