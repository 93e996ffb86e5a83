//! Classifying files with a finished run: the file streams once through the
//! same chain as `hark listen` (see [`crate::Listener`]), its log-mel cut
//! into half-overlapping windows of the model's input length, the last one
//! padded with silence to reach the end; each window gets class
//! probabilities, and the file their mean. Memory is one window and one
//! read buffer, whatever the file's length or its header.

use std::path::Path;

use hark_data::AudioFile;
use hark_models::Model;

use crate::{
    ExperimentConfig, ListenOptions, Listener, ModelInfo, Output, Result, RunDir, StreamMode,
};

/// One window's class probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPrediction {
    /// Start, in seconds of the file.
    pub start: f64,
    /// End, in seconds (at most the file's length).
    pub end: f64,
    /// Per class, in the run's class order.
    pub probabilities: Vec<f32>,
}

/// A file's windows and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePrediction {
    /// The file's length in seconds.
    pub seconds: f64,
    /// Every window, in order.
    pub windows: Vec<WindowPrediction>,
    /// The mean of the windows' probabilities.
    pub mean: Vec<f32>,
    /// Problems at the end of the file that did not stop it (a partial
    /// frame, a header that claims more data than there is).
    pub warnings: Vec<String>,
}

/// A finished run's best model, its features and classes, ready to
/// classify files.
#[derive(Debug)]
pub struct Predictor {
    config: ExperimentConfig,
    info: ModelInfo,
    model: Model,
}

impl Predictor {
    /// The best checkpoint of `run`.
    ///
    /// # Errors
    /// A run directory whose config, model description or checkpoint
    /// cannot be read.
    pub fn open(run: &RunDir) -> Result<Self> {
        let config = run.read_config(&[])?;
        let info = run.read_model_info()?;
        let model = info.load(config.train.seed, &run.best_weights()?)?;
        Ok(Self {
            config,
            info,
            model,
        })
    }

    /// The run's config.
    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The model, with the best checkpoint's weights.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The decision threshold on class 1's probability that training chose
    /// for a sigmoid output.
    pub fn threshold(&self) -> Option<f32> {
        self.info.threshold
    }

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.info.classes
    }

    /// Classifies `file`'s windows.
    ///
    /// # Errors
    /// A file that cannot be read or decoded, or a failed forward pass.
    pub fn predict_file(&self, file: &Path) -> Result<FilePrediction> {
        let mut audio = AudioFile::open(file)?;
        let mut p = self.predict_stream(file, audio.rate(), |chunk| Ok(audio.read_mono(chunk)?))?;
        p.warnings = audio.warnings();
        Ok(p)
    }

    /// Classifies mono audio at `rate` Hz from `source` that `read` hands
    /// out chunk by chunk (replacing the buffer's contents, 0 at the end),
    /// e.g. a [`hark_data::PcmStream`] on standard input.
    ///
    /// # Errors
    /// A failed read, non-finite samples, no audio at all (naming
    /// `source`), or a failed forward pass.
    pub fn predict_stream(
        &self,
        source: &Path,
        rate: u32,
        mut read: impl FnMut(&mut Vec<f32>) -> Result<usize>,
    ) -> Result<FilePrediction> {
        let window = self.model.input_shape().frames;
        let options = ListenOptions {
            hop_frames: (window / 2).max(1),
            mode: StreamMode::Window,
            ..Default::default()
        };
        let mut listener = Listener::new(self, rate, &options)?;
        let mut windows = Vec::new();
        let mut keep = |o: Output| {
            if let Output::Probabilities {
                start,
                end,
                probabilities,
            } = o
            {
                windows.push(WindowPrediction {
                    start,
                    end,
                    probabilities: probabilities.to_vec(),
                });
            }
        };
        let mut chunk = Vec::new();
        while read(&mut chunk)? > 0 {
            listener.push(&chunk, &mut keep)?;
        }
        listener.finish(&mut keep)?;
        if windows.is_empty() {
            return Err(hark_data::DataError::NoFrames {
                path: source.to_path_buf(),
            }
            .into());
        }
        let seconds = listener.seconds();
        let mut mean = vec![0.0f32; self.info.classes.len()];
        let n = windows.len() as f32;
        for w in &mut windows {
            w.end = w.end.min(seconds);
            mean.iter_mut()
                .zip(&w.probabilities)
                .for_each(|(m, p)| *m += p / n);
        }
        Ok(FilePrediction {
            seconds,
            windows,
            mean,
            warnings: Vec::new(),
        })
    }
}
