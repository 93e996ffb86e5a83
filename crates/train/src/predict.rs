//! Classifying files with a finished run: a file longer than the model's
//! clip is cut into half-overlapping windows of the training clip length,
//! each window gets class probabilities, and the file their mean.

use std::path::Path;

use hark_data::{Example, FeatureExtractor, Features, Loader, Span};
use hark_dsp::ResamplerCache;
use hark_models::{Model, softmax};

use crate::error::features_error;
use crate::loaders::loader_config;
use crate::{Checkpoint, ExperimentConfig, ModelInfo, Result, RunDir, batch_tensor};

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
}

/// A finished run's best model, its features and classes, ready to
/// classify files.
#[derive(Debug)]
pub struct Predictor {
    config: ExperimentConfig,
    info: ModelInfo,
    model: Model,
    extractor: FeatureExtractor,
}

impl Predictor {
    /// The best checkpoint of `run`.
    ///
    /// # Errors
    /// A run directory whose config, model description or checkpoint
    /// cannot be read; feature settings the extractor rejects.
    pub fn open(run: &RunDir) -> Result<Self> {
        let config = run.read_config(&[])?;
        let extractor = FeatureExtractor::new(&config.features).map_err(features_error)?;
        let info = run.read_model_info()?;
        let model = info.load(config.train.seed, &run.weights(Checkpoint::Best))?;
        Ok(Self {
            config,
            info,
            model,
            extractor,
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

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.info.classes
    }

    /// The windows of a file of `seconds`: the training clip length, half
    /// overlapping, the last reaching the end; a model trained without a
    /// fixed length sees the whole file at once.
    pub fn windows(&self, seconds: f64) -> Vec<(f64, f64)> {
        let window = self.config.features.duration.unwrap_or(seconds).max(1e-3);
        let hop = window / 2.0;
        let mut spans = vec![(0.0, window)];
        while spans.last().is_some_and(|s| s.1 < seconds) {
            let start = spans.len() as f64 * hop;
            spans.push((start, start + window));
        }
        spans
    }

    /// Classifies `file`'s windows; `resamplers` is reused across files.
    ///
    /// # Errors
    /// A file that cannot be read or decoded, or a failed forward pass.
    pub fn predict_file(
        &self,
        file: &Path,
        resamplers: &mut ResamplerCache,
    ) -> Result<FilePrediction> {
        let seconds = hark_data::inspect(file)?.duration_secs();
        let spans = self.windows(seconds);
        let clips = spans
            .iter()
            .map(|&(start, end)| {
                let mut e = Example::new(file.to_path_buf(), 0, String::new());
                e.span = Some(Span { start, end });
                self.extractor.extract(&e, resamplers)
            })
            .collect::<std::result::Result<Vec<Features>, _>>()?;
        let n = clips.len();
        let batches = Loader::new(
            clips,
            vec![0; n],
            self.extractor.clone(),
            Default::default(),
            self.config.train.normalization,
            loader_config(&self.config, false, n),
        )?;
        let mut probabilities = Vec::with_capacity(n);
        for batch in batches.epoch(0) {
            let batch = batch?;
            let x = batch_tensor(&batch)?;
            let logits = self.model.forward_masked(&x, Some(&batch.lengths), false)?;
            probabilities.extend(softmax(&logits)?.to_vec2::<f32>()?);
        }
        let mut mean = vec![0.0f32; self.info.classes.len()];
        for probs in &probabilities {
            mean.iter_mut()
                .zip(probs)
                .for_each(|(m, p)| *m += p / n as f32);
        }
        let windows = (spans.into_iter().zip(probabilities))
            .map(|((start, end), probabilities)| WindowPrediction {
                start,
                end: end.min(seconds),
                probabilities,
            })
            .collect();
        Ok(FilePrediction {
            seconds,
            windows,
            mean,
        })
    }
}
