//! Seed 000's finger-snap detector: an Elman RNN with a learned weighting
//! over time, and a streaming API for real-time use.

use std::collections::VecDeque;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::loss::softmax;
use crate::summary::Trace;
use crate::{
    AudioModel, Dropout, DropoutRng, Error, InputShape, Linear, Recurrent, RecurrentState, Result,
    dropout, linear, rnn,
};

/// Options of [`SnapRnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapRnnConfig {
    /// RNN hidden size. Default: 32.
    pub hidden: usize,
    /// RNN layers. Default: 2.
    pub layers: usize,
    /// Dropout on the RNN outputs. Default: 0.
    pub dropout: f64,
}

impl Default for SnapRnnConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 2,
            dropout: 0.0,
        }
    }
}

/// `rnn`: a stacked tanh Elman RNN over the frames (`[B, T, F]`, or a
/// `[B, 1, F, T]` spectrogram, transposed), Dropout, `time_fc`:
/// Linear(T, 1) applied over the time axis (a learned weighting of the
/// steps), `head`: Linear(hidden, classes).
///
/// 4,597 trainable parameters for 40 features, 50 frames, the default
/// sizes and 2 classes. [`SnapRnn::stream`] feeds one frame at a time.
#[derive(Debug)]
pub struct SnapRnn {
    dropout_rng: DropoutRng,
    input: InputShape,
    rnn: Recurrent,
    dropout: Dropout,
    time_fc: Linear,
    head: Linear,
}

impl SnapRnn {
    /// Builds the network from `vb` for `input.frames` steps of
    /// `input.height` features (mono only).
    ///
    /// # Errors
    /// [`Error::Input`] for more than one channel or zero frames,
    /// [`Error::Spec`] for a zero size or a dropout outside `[0, 1)`.
    pub fn new(
        config: &SnapRnnConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dropout_rng = DropoutRng::default();
        if input.channels != 1 || input.frames == 0 || input.height == 0 {
            return Err(Error::Input {
                model: "SnapRnn",
                expected: "one channel and a non-empty [features, frames]".into(),
                got: vec![input.channels, input.height, input.frames],
            });
        }
        if config.hidden == 0 || config.layers == 0 {
            return Err(Error::Spec {
                field: "hidden/layers",
                rule: "must be positive",
                got: format!("{}/{}", config.hidden, config.layers),
            });
        }
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            input,
            rnn: rnn(input.height, config.hidden, config.layers, vb.pp("rnn"))?,
            dropout: dropout(config.dropout, &dropout_rng)?,
            time_fc: linear(input.frames, 1, vb.pp("time_fc"))?,
            head: linear(config.hidden, n_classes, vb.pp("head"))?,
        })
    }

    /// `[B, T, F]` from `[B, T, F]` or `[B, 1, F, T]`.
    fn sequence(&self, x: &Tensor) -> Result<Tensor> {
        let (f, t) = (self.input.height, self.input.frames);
        match *x.dims() {
            [_, tt, ff] if tt == t && ff == f => Ok(x.clone()),
            [_, 1, ff, tt] if tt == t && ff == f => {
                Ok(x.squeeze(1)?.transpose(1, 2)?.contiguous()?)
            }
            _ => Err(Error::Input {
                model: "SnapRnn",
                expected: format!("[B, {t}, {f}] or [B, 1, {f}, {t}]"),
                got: x.dims().to_vec(),
            }),
        }
    }

    /// A real-time detector over this model (eval mode).
    pub fn stream(&self) -> SnapStream<'_> {
        SnapStream {
            model: self,
            state: RecurrentState::default(),
            window: VecDeque::new(),
        }
    }
}

impl AudioModel for SnapRnn {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "SnapRnn"
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        _lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let seq = self.sequence(x)?;
        let out = self.rnn.forward(&seq)?;
        trace.record("rnn", &self.rnn, &out);
        let out = self.dropout.forward_t(&out, train)?;
        let z = self.time_fc.forward(&out.transpose(1, 2)?)?.squeeze(2)?;
        trace.record("time_fc", &self.time_fc, &z);
        let y = self.head.forward(&z)?;
        trace.record("head", &self.head, &y);
        Ok(y)
    }
}

/// Feeds a [`SnapRnn`] one spectrogram frame at a time.
///
/// The RNN state carries over from frame to frame; the time weighting is
/// applied to the last `T` top-layer outputs (zeros before the stream
/// began), so after exactly `T` frames the probabilities equal those of the
/// batch forward pass over those frames, and later ones weight a sliding
/// window.
#[derive(Debug)]
pub struct SnapStream<'a> {
    model: &'a SnapRnn,
    state: RecurrentState,
    window: VecDeque<Vec<f32>>,
}

impl SnapStream<'_> {
    /// Consumes one frame of `F` features and returns the class
    /// probabilities (index 1 is "snap" for a two-class detector).
    ///
    /// # Errors
    /// [`Error::Input`] when the frame does not have `F` values.
    pub fn step(&mut self, frame: &[f32]) -> Result<Vec<f32>> {
        let m = self.model;
        if frame.len() != m.input.height {
            return Err(Error::Input {
                model: "SnapRnn",
                expected: format!("frames of {} features", m.input.height),
                got: vec![frame.len()],
            });
        }
        let x = Tensor::from_slice(frame, (1, frame.len()), &Device::Cpu)?;
        let h = m
            .rnn
            .step(&x, &mut self.state)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        let t = m.input.frames;
        if self.window.is_empty() {
            self.window = std::iter::repeat_n(vec![0.0; h.len()], t).collect();
        }
        self.window.pop_front();
        self.window.push_back(h);
        // Through the same Linear as the batch path: [1, H, T] -> [1, H, 1].
        let hidden = self.window[0].len();
        let mut ht = vec![0.0f32; hidden * t];
        for (step, v) in self.window.iter().enumerate() {
            for (j, &x) in v.iter().enumerate() {
                ht[j * t + step] = x;
            }
        }
        let ht = Tensor::from_vec(ht, (1, hidden, t), &Device::Cpu)?;
        let z = m.time_fc.forward(&ht)?.squeeze(2)?;
        let p = softmax(&m.head.forward(&z)?.to_dtype(DType::F32)?)?;
        Ok(p.squeeze(0)?.to_vec1()?)
    }

    /// Forgets every frame seen.
    pub fn reset(&mut self) {
        self.state = RecurrentState::default();
        self.window.clear();
    }
}
