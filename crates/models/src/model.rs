//! The model interface, the serde [`ModelSpec`] that names an architecture
//! and its options, and [`Model`], a built network with its parameters.

use std::path::Path;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::summary::{LayerSummary, ModelSummary, Trace};
use crate::{
    AudioCnn, AudioCnnConfig, Crnn, CrnnConfig, DropoutRng, Error, ParamStore, Result, SmallCnn,
    SmallCnnConfig, SnapRnn, SnapRnnConfig, Vgg, VggConfig, VggM, VggMConfig, VggVariant,
};

/// The per-example input a model is built for: a `[channels, height,
/// frames]` spectrogram (`height` is the mel or feature count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Audio channels (1 mono, 2 stereo).
    pub channels: usize,
    /// Mel bands (or features per frame).
    pub height: usize,
    /// Frames per example (the longest, for variable-length models).
    pub frames: usize,
}

/// A classifier over `[B, C, M, T]` spectrograms returning `[B, classes]`
/// logits.
pub trait AudioModel: Send + Sync + std::fmt::Debug {
    /// The architecture's name, e.g. `AudioCnn`.
    fn name(&self) -> &'static str;

    /// The stream the model's dropout masks come from (unused by a model
    /// without dropout).
    fn dropout_rng(&self) -> &DropoutRng;

    /// Logits for `x` `[B, C, M, T]`. `lengths` gives each example's valid
    /// frame count for models that honour padding (the CRNN); `train`
    /// selects batch statistics and dropout. Each layer's output is noted
    /// in `trace`.
    ///
    /// # Errors
    /// [`Error::Input`] for an input of the wrong shape, or a failed op.
    fn forward_traced(
        &self,
        x: &Tensor,
        lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor>;

    /// A stream that carries the model's state from frame to frame, for an
    /// architecture that has one; `None` for the rest, which stream
    /// through a [`WindowStream`](crate::WindowStream).
    ///
    /// # Errors
    /// Only if the weights cannot be read.
    fn recurrent_stream(&self) -> Result<Option<Box<dyn crate::FrameStream>>> {
        Ok(None)
    }

    /// An evaluator of single windows faster than the forward pass, for an
    /// architecture that has one; `None` for the rest.
    ///
    /// # Errors
    /// Only if the weights cannot be read.
    fn window_model(&self) -> Result<Option<Box<dyn crate::WindowModel>>> {
        Ok(None)
    }

    /// [`forward_traced`](Self::forward_traced) without a trace.
    ///
    /// # Errors
    /// As [`forward_traced`](Self::forward_traced).
    fn forward_masked(&self, x: &Tensor, lengths: Option<&[usize]>, train: bool) -> Result<Tensor> {
        self.forward_traced(x, lengths, train, &mut Trace::off())
    }
}

/// candle's [`ModuleT`] for each model: every frame of the input counts.
macro_rules! module_t {
    ($($model:ty),*) => {$(
        impl ModuleT for $model {
            fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
                Ok(self.forward_masked(x, None, train)?)
            }
        }
    )*};
}
module_t!(AudioCnn, Crnn, SmallCnn, SnapRnn, Vgg, VggM, Model);

/// An architecture and its options, as written in an experiment config
/// (`[model]` with `kind = "audio_cnn"` and the variant's fields, each with
/// a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Seed 001's four-block CNN.
    AudioCnn(AudioCnnConfig),
    /// Seed 004's CNN + LSTM.
    Crnn(CrnnConfig),
    /// Seed 003's three-conv CNN.
    SmallCnn(SmallCnnConfig),
    /// Seed 002's smallest VGG-style stack.
    VggUltraMini(VggConfig),
    /// Seed 002's staple VGG-style stack.
    VggMini(VggConfig),
    /// Seed 002's VGG-style stack ending in global pooling.
    VggPool(VggConfig),
    /// VGG-M for speaker identification (VoxCeleb), with a width multiplier.
    VggM(VggMConfig),
    /// Seed 000's Elman RNN snap detector.
    SnapRnn(SnapRnnConfig),
}

impl ModelSpec {
    /// The `kind` name a config gives the architecture, e.g. `audio_cnn`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AudioCnn(_) => "audio_cnn",
            Self::Crnn(_) => "crnn",
            Self::SmallCnn(_) => "small_cnn",
            Self::VggUltraMini(_) => "vgg_ultra_mini",
            Self::VggMini(_) => "vgg_mini",
            Self::VggPool(_) => "vgg_pool",
            Self::VggM(_) => "vgg_m",
            Self::SnapRnn(_) => "snap_rnn",
        }
    }
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self::AudioCnn(AudioCnnConfig::default())
    }
}

/// What a classifier's last layer gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// One logit per class, a softmax over them, cross-entropy.
    #[default]
    Softmax,
    /// For two classes: one logit, the sigmoid's probability of class 1,
    /// binary cross-entropy (seed 000's detector).
    Sigmoid,
}

impl Output {
    /// Whether this is the default (left out of saved configs).
    pub fn is_softmax(&self) -> bool {
        *self == Self::Softmax
    }

    /// The last layer's width for `n_classes` classes.
    ///
    /// # Errors
    /// [`Error::Spec`] for fewer than 2 classes, or a sigmoid over more.
    pub fn outputs(self, n_classes: usize) -> Result<usize> {
        match (self, n_classes) {
            (_, 0 | 1) => Err(Error::Spec {
                field: "n_classes",
                rule: "must be at least 2",
                got: n_classes.to_string(),
            }),
            (Self::Sigmoid, 2) => Ok(1),
            (Self::Sigmoid, n) => Err(Error::Spec {
                field: "output",
                rule: "sigmoid needs exactly 2 classes",
                got: n.to_string(),
            }),
            (Self::Softmax, n) => Ok(n),
        }
    }
}

/// Builds the network `spec` describes with `n_outputs` logits (the class
/// count, or 1 for a sigmoid output) and inputs of `input`, with its
/// tensors from `vb`.
///
/// # Errors
/// [`Error::Spec`] for an option out of range or no outputs, [`Error::Input`]
/// for an input shape the architecture cannot take.
pub fn build(
    spec: &ModelSpec,
    n_outputs: usize,
    input: InputShape,
    vb: VarBuilder,
) -> Result<Box<dyn AudioModel>> {
    if n_outputs == 0 {
        return Err(Error::Spec {
            field: "n_outputs",
            rule: "must be at least 1",
            got: "0".into(),
        });
    }
    Ok(match spec {
        ModelSpec::AudioCnn(c) => Box::new(AudioCnn::new(c, n_outputs, input, vb)?),
        ModelSpec::Crnn(c) => Box::new(Crnn::new(c, n_outputs, input, vb)?),
        ModelSpec::SmallCnn(c) => Box::new(SmallCnn::new(c, n_outputs, input, vb)?),
        ModelSpec::VggUltraMini(c) => {
            Box::new(Vgg::new(VggVariant::UltraMini, c, n_outputs, input, vb)?)
        }
        ModelSpec::VggMini(c) => Box::new(Vgg::new(VggVariant::Mini, c, n_outputs, input, vb)?),
        ModelSpec::VggPool(c) => Box::new(Vgg::new(VggVariant::Pool, c, n_outputs, input, vb)?),
        ModelSpec::VggM(c) => Box::new(VggM::new(c, n_outputs, input, vb)?),
        ModelSpec::SnapRnn(c) => Box::new(SnapRnn::new(c, n_outputs, input, vb)?),
    })
}

/// A built model with its parameters: what a training loop or a predictor
/// holds.
#[derive(Debug)]
pub struct Model {
    spec: ModelSpec,
    n_classes: usize,
    output: Output,
    input: InputShape,
    store: ParamStore,
    net: Box<dyn AudioModel>,
}

impl Model {
    /// Builds `spec` with a softmax over `n_classes` outputs, parameters
    /// and dropout masks drawn from `seed`.
    ///
    /// # Errors
    /// As [`build`], and fewer than 2 classes.
    pub fn new(spec: &ModelSpec, n_classes: usize, input: InputShape, seed: u64) -> Result<Self> {
        Self::with_output(spec, n_classes, Output::Softmax, input, seed)
    }

    /// [`Model::new`] with the last layer `output` asks for.
    ///
    /// # Errors
    /// As [`build`] and [`Output::outputs`].
    pub fn with_output(
        spec: &ModelSpec,
        n_classes: usize,
        output: Output,
        input: InputShape,
        seed: u64,
    ) -> Result<Self> {
        let store = ParamStore::new(seed);
        let net = build(spec, output.outputs(n_classes)?, input, store.var_builder())?;
        net.dropout_rng().reseed(seed);
        Ok(Self {
            spec: spec.clone(),
            n_classes,
            output,
            input,
            store,
            net,
        })
    }

    /// Logits `[B, classes]`; see [`AudioModel::forward_traced`].
    ///
    /// # Errors
    /// As [`AudioModel::forward_traced`].
    pub fn forward_masked(
        &self,
        x: &Tensor,
        lengths: Option<&[usize]>,
        train: bool,
    ) -> Result<Tensor> {
        self.net.forward_masked(x, lengths, train)
    }

    /// How many dropout masks have been drawn (see [`DropoutRng::step`]).
    pub fn dropout_step(&self) -> u64 {
        self.net.dropout_rng().step()
    }

    /// Restores [`dropout_step`](Self::dropout_step) for a resumed run.
    pub fn set_dropout_step(&self, step: u64) {
        self.net.dropout_rng().set_step(step);
    }

    /// See [`AudioModel::recurrent_stream`].
    ///
    /// # Errors
    /// As [`AudioModel::recurrent_stream`].
    pub fn recurrent_stream(&self) -> Result<Option<Box<dyn crate::FrameStream>>> {
        self.net.recurrent_stream()
    }

    /// The network itself.
    pub fn net(&self) -> &dyn AudioModel {
        self.net.as_ref()
    }

    /// The parameters and buffers.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// What the last layer gives.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The input shape it was built for.
    pub fn input_shape(&self) -> InputShape {
        self.input
    }

    /// Trainable parameter count.
    pub fn num_trainable(&self) -> usize {
        self.store.num_trainable("")
    }

    /// Writes the state_dict (see [`ParamStore::save`]).
    ///
    /// # Errors
    /// As [`ParamStore::save`].
    pub fn save(&self, path: &Path) -> Result<()> {
        self.store.save(path)
    }

    /// Loads a state_dict (see [`ParamStore::load`]).
    ///
    /// # Errors
    /// As [`ParamStore::load`].
    pub fn load(&self, path: &Path) -> Result<()> {
        self.store.load(path)
    }

    /// Layers, output shapes and parameter counts for one example of the
    /// built input shape (an eval-mode forward pass on zeros; the running
    /// statistics are not touched).
    ///
    /// # Errors
    /// Only from the forward pass.
    pub fn summary(&self) -> Result<ModelSummary> {
        let InputShape {
            channels,
            height,
            frames,
        } = self.input;
        let shape = [1, channels, height, frames];
        let x = Tensor::zeros(&shape[..], DType::F32, &Device::Cpu)?;
        let mut trace = Trace::on();
        self.net.forward_traced(&x, None, false, &mut trace)?;
        let layers = trace
            .into_layers()
            .into_iter()
            .map(|(name, description, output_shape)| LayerSummary {
                params: self.store.num_trainable(&name),
                name,
                description,
                output_shape,
            })
            .collect();
        Ok(ModelSummary {
            model: self.net.name().to_string(),
            input_shape: shape.to_vec(),
            layers,
            trainable_params: self.num_trainable(),
        })
    }
}

/// Checks that `x` is `[B, channels, height, T]` and returns `(B, T)`.
pub(crate) fn check_image(
    model: &'static str,
    x: &Tensor,
    channels: usize,
    height: usize,
) -> Result<(usize, usize)> {
    match *x.dims() {
        [b, c, h, t] if c == channels && h == height && b > 0 => Ok((b, t)),
        _ => Err(Error::Input {
            model,
            expected: format!("[B, {channels}, {height}, T]"),
            got: x.dims().to_vec(),
        }),
    }
}
