//! Streaming inference: feature frames in one at a time, class
//! probabilities out. A model with a recurrent stream ([`SnapRnn`]) carries
//! its state from frame to frame; any model can run through a
//! [`WindowStream`], which keeps the last `N` frames and evaluates them
//! every `H` frames.
//!
//! [`SnapRnn`]: crate::SnapRnn

use std::fmt;

use candle_core::{Device, Tensor};

use crate::{Error, Model, Result, class_probabilities};

/// A model fed one feature frame at a time.
pub trait FrameStream: Send + fmt::Debug {
    /// Values per frame (mel bands).
    fn frame_len(&self) -> usize;

    /// Feeds one frame. Returns the class probabilities when the model has
    /// an output at this frame.
    ///
    /// # Errors
    /// [`Error::Input`] for a frame of the wrong length, or a failed forward pass.
    fn push(&mut self, frame: &[f32]) -> Result<Option<&[f32]>>;

    /// Forgets every frame seen.
    fn reset(&mut self);
}

/// Checks a frame's length for a stream named `model`.
pub(crate) fn check_frame(model: &'static str, frame: &[f32], len: usize) -> Result<()> {
    if frame.len() == len {
        return Ok(());
    }
    Err(Error::Input {
        model,
        expected: format!("frames of {len} features"),
        got: vec![frame.len()],
    })
}

/// Evaluates whole windows: a model's forward pass on one example.
pub trait WindowModel: Send + fmt::Debug {
    /// Class probabilities of one mono window, row-major `[height, frames]`.
    ///
    /// # Errors
    /// A failed forward pass.
    fn evaluate(&mut self, window: &[f32]) -> Result<&[f32]>;
}

/// Any [`Model`] through its candle forward pass, the window repeated over
/// the channels of a model trained on more than one.
#[derive(Debug)]
struct ForwardWindow<'a> {
    model: &'a Model,
    probabilities: Vec<f32>,
}

impl WindowModel for ForwardWindow<'_> {
    fn evaluate(&mut self, window: &[f32]) -> Result<&[f32]> {
        let shape = self.model.input_shape();
        let (f, n) = (shape.height, shape.frames);
        let x = Tensor::from_slice(window, (1, 1, f, n), &Device::Cpu)?;
        let x = if shape.channels > 1 {
            x.repeat((1, shape.channels, 1, 1))?
        } else {
            x
        };
        let logits = self.model.forward_masked(&x, None, false)?;
        self.probabilities = class_probabilities(&logits)?.squeeze(0)?.to_vec1()?;
        Ok(&self.probabilities)
    }
}

/// Turns a window `[n_mels, frames]` into what the model was trained on
/// (the dB clamp against the window's peak, per-example normalisation).
pub type PrepareWindow<'a> = Box<dyn FnMut(&mut [f32]) + Send + 'a>;

/// Turns a window of stream frames `[frame_len, frames]` (which it may
/// change) into the model's input `[height, frames]`, for features a
/// stream cannot finish frame by frame: MFCCs, whose DCT follows a dB clamp
/// against the window's peak.
pub type ReshapeWindow<'a> = Box<dyn FnMut(&mut [f32], &mut [f32]) + Send + 'a>;

/// Runs any [`Model`] over a sliding window: the last `frames` frames (the
/// model's input length), evaluated once the window is full and then every
/// `hop` frames, by the model's own window evaluator
/// ([`crate::AudioModel::window_model`]) or else its forward pass. A mono
/// window is repeated over the channels of a model trained on more.
pub struct WindowStream<'a> {
    model: Box<dyn WindowModel + 'a>,
    frames: usize,
    hop: usize,
    frame_len: usize,
    /// The last `frames` frames, frame-major, oldest at `next` once full.
    ring: Vec<f32>,
    next: usize,
    seen: usize,
    since: usize,
    /// The stream frames of a window, `[frame_len, frames]`.
    raw: Vec<f32>,
    /// The model's input, `[height, frames]`.
    window: Vec<f32>,
    prepare: ReshapeWindow<'a>,
}

impl fmt::Debug for WindowStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStream")
            .field("frames", &self.frames)
            .field("hop", &self.hop)
            .field("seen", &self.seen)
            .field("model", &self.model)
            .finish()
    }
}

impl<'a> WindowStream<'a> {
    /// A window of the model's input length, evaluated every `hop` frames,
    /// each window passed through `prepare` first.
    ///
    /// # Errors
    /// [`Error::Spec`] for a zero hop.
    pub fn new(model: &'a Model, hop: usize, mut prepare: PrepareWindow<'a>) -> Result<Self> {
        let height = model.input_shape().height;
        let reshape = move |raw: &mut [f32], window: &mut [f32]| {
            prepare(raw);
            window.copy_from_slice(raw);
        };
        Self::reshaping(model, hop, height, Box::new(reshape))
    }

    /// As [`Self::new`], for stream frames of `frame_len` values that
    /// `prepare` turns into the model's input.
    ///
    /// # Errors
    /// As [`Self::new`], or a zero `frame_len`.
    pub fn reshaping(
        model: &'a Model,
        hop: usize,
        frame_len: usize,
        prepare: ReshapeWindow<'a>,
    ) -> Result<Self> {
        if frame_len == 0 {
            return Err(Error::Spec {
                field: "frame_len",
                rule: "must be at least 1 value",
                got: "0".into(),
            });
        }
        if hop == 0 {
            return Err(Error::Spec {
                field: "hop",
                rule: "must be at least 1 frame",
                got: "0".into(),
            });
        }
        let shape = model.input_shape();
        let evaluator = match model.net().window_model()? {
            Some(native) => native,
            None => Box::new(ForwardWindow {
                model,
                probabilities: Vec::new(),
            }),
        };
        Ok(Self {
            model: evaluator,
            frames: shape.frames,
            hop,
            frame_len,
            ring: vec![0.0; shape.frames * frame_len],
            next: 0,
            seen: 0,
            since: 0,
            raw: vec![0.0; shape.frames * frame_len],
            window: vec![0.0; shape.frames * shape.height],
            prepare,
        })
    }

    /// The window's length in frames.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

impl FrameStream for WindowStream<'_> {
    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn push(&mut self, frame: &[f32]) -> Result<Option<&[f32]>> {
        check_frame("WindowStream", frame, self.frame_len)?;
        let (f, n) = (self.frame_len, self.frames);
        self.ring[self.next * f..][..f].copy_from_slice(frame);
        self.next = (self.next + 1) % n;
        self.seen += 1;
        self.since += 1;
        if self.seen < n || (self.seen > n && self.since < self.hop) {
            return Ok(None);
        }
        self.since = 0;
        // Oldest frame first, transposed to [n_mels, frames].
        for t in 0..n {
            let src = &self.ring[((self.next + t) % n) * f..][..f];
            for (m, &v) in src.iter().enumerate() {
                self.raw[m * n + t] = v;
            }
        }
        (self.prepare)(&mut self.raw, &mut self.window);
        Ok(Some(self.model.evaluate(&self.window)?))
    }

    fn reset(&mut self) {
        self.next = 0;
        self.seen = 0;
        self.since = 0;
    }
}
