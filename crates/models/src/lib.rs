//! hark-models: the seed architectures of hark in candle, with PyTorch's
//! state_dict names so checkpoints move both ways.
//!
//! - [`AudioCnn`] (seed 001), [`Crnn`] (seed 004, variable-length), [`SmallCnn`]
//!   (seed 003), the [`Vgg`] family and [`VggM`] (seed 002), [`SnapRnn`]
//!   (seed 000, with a streaming API).
//! - A serde [`ModelSpec`] names any of them; [`build`] or [`Model::new`]
//!   creates one with seeded PyTorch-default initialisation.
//! - Every layer and model is a candle-nn citizen: built from a
//!   [`candle_nn::VarBuilder`] with PyTorch's paths (`vb.pp("conv1")`), so
//!   the same constructor reads a hark checkpoint or a PyTorch state_dict,
//!   and run through candle's [`Module`](candle_core::Module) (linear,
//!   recurrent) or [`ModuleT`](candle_core::ModuleT) (convolution, batch
//!   norm, dropout, the models). A [`ParamStore`] is the VarBuilder backend
//!   that draws new parameters from a seed into a `candle_nn::VarMap`.
//! - Layers whose candle 0.11 versions are wrong or slow for training run
//!   hark's own CPU ops (`src/ops/`) with exact backward passes: [`Conv2d`]
//!   (im2col and register tiles), [`BatchNorm`] (fused with the activation,
//!   the pooling or the convolution before it), [`max_pool2d`] and
//!   [`avg_pool2d`] (PyTorch's gradient routing), and stacked [`Recurrent`]
//!   layers (RNN and LSTM).
//!
//! Models take `[B, C, M, T]` f32 spectrograms and return `[B, classes]`
//! logits; they know nothing of files or datasets.
//!
//! A candle user builds a model from any `VarBuilder` and runs it as a
//! `ModuleT`, here from a fresh `VarMap` (PyTorch's state_dict through
//! `VarBuilder::from_mmaped_safetensors` works the same way):
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use hark_models::{AudioCnn, AudioCnnConfig, InputShape};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let input = InputShape { channels: 1, height: 64, frames: 44 };
//! let model = AudioCnn::new(&AudioCnnConfig::default(), 10, input, vb)?;
//! let x = Tensor::zeros((3, 1, 64, 44), DType::F32, &Device::Cpu)?;
//! assert_eq!(model.forward_t(&x, false)?.dims(), [3, 10]);
//! assert!(varmap.data().lock().unwrap().contains_key("conv1.weight"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! hark's own training holds a [`Model`]: the network, its seeded
//! [`ParamStore`] and its spec.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use hark_models::{cross_entropy, InputShape, Model, ModelSpec};
//!
//! let input = InputShape { channels: 2, height: 64, frames: 44 };
//! let model = Model::new(&ModelSpec::default(), 10, input, 0)?;
//! assert_eq!(model.num_trainable(), 25_602);
//! let x = Tensor::zeros((3, 2, 64, 44), DType::F32, &Device::Cpu)?;
//! let logits = model.forward_masked(&x, None, true)?;
//! let loss = cross_entropy(&logits, &[0, 4, 9])?;
//! let grads = loss.backward()?;
//! assert!(grads.get(model.params().trainable()[0].1.as_tensor()).is_some());
//! # Ok::<(), hark_models::Error>(())
//! ```
#![warn(missing_docs)]

mod activation;
mod audio_cnn;
mod batch_norm;
mod conv;
mod crnn;
mod dropout;
mod error;
mod init;
mod linear;
mod loss;
mod model;
mod ops;
mod params;
mod pool;
mod rnn;
mod small_cnn;
mod snap_rnn;
mod stream;
mod summary;
mod vgg;

pub use activation::Activation;
pub use audio_cnn::{AudioCnn, AudioCnnConfig};
pub use batch_norm::{
    BatchNorm, BatchNormConfig, ConvBn, batch_norm1d, batch_norm2d, forward_conv_bn,
};
pub use conv::{Conv2d, Conv2dConfig, conv2d, conv2d_init};
pub use crnn::{ConvBlock, Crnn, CrnnConfig};
pub use dropout::{Dropout, DropoutRng, dropout};
pub use error::{Error, Result};
pub use init::Init;
pub use linear::{Linear, linear};
pub use loss::{
    binary_cross_entropy, class_probabilities, classification_loss, cross_entropy, log_softmax,
    smoothed_classification_loss, smoothed_cross_entropy, softmax,
};
pub use model::{AudioModel, InputShape, Model, ModelSpec, Output, build};
pub use params::{ParamStore, read_metadata, read_tensors, save_tensors};
pub use pool::{avg_pool2d, max_pool2d, max_pool2d_hw};
pub use rnn::{Cell, Recurrent, lstm, rnn};
pub use small_cnn::{SmallCnn, SmallCnnConfig};
pub use snap_rnn::{SnapRnn, SnapRnnConfig, SnapRnnStream, TimePool};
pub use stream::{FrameStream, PrepareWindow, ReshapeWindow, WindowModel, WindowStream};
pub use summary::{LayerSummary, ModelSummary, Trace};
pub use vgg::{Vgg, VggConfig, VggM, VggMConfig, VggVariant};
