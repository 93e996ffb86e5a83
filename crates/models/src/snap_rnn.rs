//! Seed 000's finger-snap detector: an Elman RNN with a learned weighting
//! over time, and its frame-by-frame stream for real-time use.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::ops::scan::{add_matvec_t, tanh, transpose};
use crate::stream::{FrameStream, WindowModel, check_frame};
use crate::summary::Trace;
use crate::{
    AudioModel, Dropout, DropoutRng, Error, InputShape, Linear, Recurrent, Result, dropout, linear,
    rnn,
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
    /// How the steps' outputs become one vector. Default: `linear`, seed
    /// 000's learned weighting.
    pub time_pool: TimePool,
}

/// How [`SnapRnn`] reduces its outputs over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePool {
    /// `time_fc`: Linear(T, 1) over the time axis, a weight per position
    /// (seed 000).
    #[default]
    Linear,
    /// The maximum over time of each hidden unit, without parameters: the
    /// same answer wherever in the window a sound falls.
    Max,
}

impl Default for SnapRnnConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 2,
            dropout: 0.0,
            time_pool: TimePool::Linear,
        }
    }
}

/// `rnn`: a stacked tanh Elman RNN over the frames (`[B, T, F]`, or a
/// `[B, 1, F, T]` spectrogram, transposed), Dropout, `time_fc`:
/// Linear(T, 1) applied over the time axis (a learned weighting of the
/// steps; with [`TimePool::Max`], the maximum over time instead), `head`:
/// Linear(hidden, classes).
///
/// 4,597 trainable parameters for 40 features, 50 frames, the default
/// sizes and 2 classes. [`AudioModel::recurrent_stream`] feeds it one
/// frame at a time ([`SnapRnnStream`]).
#[derive(Debug)]
pub struct SnapRnn {
    dropout_rng: DropoutRng,
    input: InputShape,
    rnn: Recurrent,
    dropout: Dropout,
    /// `None` for [`TimePool::Max`].
    time_fc: Option<Linear>,
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
            time_fc: match config.time_pool {
                TimePool::Linear => Some(linear(input.frames, 1, vb.pp("time_fc"))?),
                TimePool::Max => None,
            },
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
}

impl AudioModel for SnapRnn {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "SnapRnn"
    }

    fn recurrent_stream(&self) -> Result<Option<Box<dyn FrameStream>>> {
        Ok(Some(Box::new(SnapRnnStream::new(self)?)))
    }

    fn window_model(&self) -> Result<Option<Box<dyn WindowModel>>> {
        Ok(Some(Box::new(SnapRnnStream::new(self)?)))
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
        let z = match &self.time_fc {
            Some(time_fc) => {
                let z = time_fc.forward(&out.transpose(1, 2)?)?.squeeze(2)?;
                trace.record("time_fc", time_fc, &z);
                z
            }
            None => out.max(1)?,
        };
        let y = self.head.forward(&z)?;
        trace.record("head", &self.head, &y);
        Ok(y)
    }
}

/// Feeds a [`SnapRnn`] one spectrogram frame at a time, in plain loops over
/// a copy of its weights (a few thousand multiply-adds per frame).
///
/// The RNN state carries over from frame to frame; the time weighting is
/// applied to the last `T` top-layer outputs (zeros before the stream
/// began), so after exactly `T` frames the probabilities equal those of the
/// batch forward pass over those frames, and later ones weight a sliding
/// window over a state that remembers (fading) everything before it.
#[derive(Debug, Clone)]
pub struct SnapRnnStream {
    input: usize,
    hidden: usize,
    /// Per layer: `W_ih` and `W_hh` transposed (for [`add_matvec_t`]),
    /// `b_ih + b_hh`.
    layers: Vec<[Vec<f32>; 3]>,
    /// Per layer, `h`.
    state: Vec<Vec<f32>>,
    /// `time_fc`'s weights and bias; `None` for the maximum over time.
    time_fc: Option<(Vec<f32>, f32)>,
    /// The window's length in frames.
    frames: usize,
    head: Vec<f32>,
    head_bias: Vec<f32>,
    /// The last `T` top-layer outputs, frame-major, oldest at `next`.
    window: Vec<f32>,
    next: usize,
    pre: Vec<f32>,
    mixed: Vec<f32>,
    probabilities: Vec<f32>,
    /// One frame gathered from a `[features, frames]` window.
    frame: Vec<f32>,
}

impl SnapRnnStream {
    fn new(model: &SnapRnn) -> Result<Self> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
        let hidden = model.rnn.hidden_size();
        let layers = (model.rnn.layer_values()?.into_iter())
            .map(|[w_ih, w_hh, bias]| [transpose(&w_ih, hidden), transpose(&w_hh, hidden), bias])
            .collect::<Vec<_>>();
        Ok(Self {
            input: model.input.height,
            hidden,
            state: vec![vec![0.0; hidden]; layers.len()],
            layers,
            time_fc: match &model.time_fc {
                Some(fc) => Some((flat(fc.weight())?, flat(fc.bias())?[0])),
                None => None,
            },
            frames: model.input.frames,
            head: flat(model.head.weight())?,
            head_bias: flat(model.head.bias())?,
            window: vec![0.0; hidden * model.input.frames],
            next: 0,
            pre: vec![0.0; hidden],
            mixed: vec![0.0; hidden],
            // A one-logit (sigmoid) head still gives both classes.
            probabilities: vec![0.0; model.head.out_features().max(2)],
            frame: vec![0.0; model.input.height],
        })
    }
}

/// `out[j] = b[j] + sum_k w[j, k] x[k]` for a row-major `w`.
fn affine(out: &mut [f32], w: &[f32], b: &[f32], x: &[f32]) {
    for ((o, row), &bj) in out.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *o = bj + row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
    }
}

impl SnapRnnStream {
    /// One frame through the RNN; its top output joins the window.
    fn advance(&mut self, frame: &[f32]) {
        for (k, [w_ih, w_hh, bias]) in self.layers.iter().enumerate() {
            let (below, rest) = self.state.split_at_mut(k);
            let x = below.last().map_or(frame, |v| v.as_slice());
            self.pre.copy_from_slice(bias);
            add_matvec_t(&mut self.pre, w_ih, x);
            let state = &mut rest[0];
            add_matvec_t(&mut self.pre, w_hh, state);
            state
                .iter_mut()
                .zip(&self.pre)
                .for_each(|(s, &p)| *s = tanh(p));
        }
        let (h, top) = (self.hidden, self.state.last().expect("at least one layer"));
        self.window[self.next * h..][..h].copy_from_slice(top);
        self.next = (self.next + 1) % self.frames;
    }

    /// `time_fc` over the window, oldest step first (or the maximum over
    /// it), then the head.
    fn output(&mut self) -> &[f32] {
        let (h, frames) = (self.hidden, self.frames);
        let (window, next) = (&self.window, self.next);
        let step = |t: usize| &window[((next + t) % frames) * h..][..h];
        match &self.time_fc {
            Some((weights, bias)) => {
                self.mixed.fill(*bias);
                for (t, &w) in weights.iter().enumerate() {
                    self.mixed
                        .iter_mut()
                        .zip(step(t))
                        .for_each(|(m, o)| *m += w * o);
                }
            }
            None => {
                self.mixed.fill(f32::NEG_INFINITY);
                for t in 0..frames {
                    self.mixed
                        .iter_mut()
                        .zip(step(t))
                        .for_each(|(m, &o)| *m = m.max(o));
                }
            }
        }
        let outputs = self.head_bias.len();
        let logits = &mut self.probabilities[..outputs];
        affine(logits, &self.head, &self.head_bias, &self.mixed);
        probabilities_in_place(&mut self.probabilities, outputs == 1);
        &self.probabilities
    }
}

impl FrameStream for SnapRnnStream {
    fn frame_len(&self) -> usize {
        self.input
    }

    fn push(&mut self, frame: &[f32]) -> Result<Option<&[f32]>> {
        check_frame("SnapRnn", frame, self.input)?;
        self.advance(frame);
        Ok(Some(self.output()))
    }

    fn reset(&mut self) {
        self.state.iter_mut().for_each(|s| s.fill(0.0));
        self.window.fill(0.0);
        self.next = 0;
    }
}

/// A window from a zero state: the batch forward pass of one example, in
/// plain loops (some 200,000 multiply-adds for 50 frames).
impl WindowModel for SnapRnnStream {
    fn evaluate(&mut self, window: &[f32]) -> Result<&[f32]> {
        let (f, n) = (self.input, self.frames);
        check_frame("SnapRnn", window, f * n)?;
        self.reset();
        let mut frame = std::mem::take(&mut self.frame);
        for t in 0..n {
            frame
                .iter_mut()
                .enumerate()
                .for_each(|(m, v)| *v = window[m * n + t]);
            self.advance(&frame);
        }
        self.frame = frame;
        Ok(self.output())
    }
}

/// Class probabilities from logits in place, as
/// [`crate::class_probabilities`]: a softmax, or with `sigmoid` the one
/// logit `z` in `x[0]` becomes `[1 - sigmoid(z), sigmoid(z)]`.
fn probabilities_in_place(x: &mut [f32], sigmoid: bool) {
    if sigmoid {
        let p = 1.0 / (1.0 + (-x[0]).exp());
        x[..2].copy_from_slice(&[1.0 - p, p]);
        return;
    }
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = (*v - max).exp());
    let sum: f32 = x.iter().sum();
    x.iter_mut().for_each(|v| *v /= sum);
}
