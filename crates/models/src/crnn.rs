//! Seed 004's CNN + LSTM for variable-length clips.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::check_image;
use crate::summary::Trace;
use crate::{
    Activation, AudioModel, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutRng,
    Error, InputShape, Linear, Recurrent, Result, batch_norm1d, batch_norm2d, conv2d, dropout,
    linear, lstm, max_pool2d,
};

/// Options of [`Crnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrnnConfig {
    /// The conv blocks, first to last (seed 004's cfg-defined model).
    /// Default: 32, 64 and 64 channels, kernel 3, stride 1, pools 3, 4, 4.
    #[serde(skip_serializing_if = "is_default_stack")]
    pub conv: Vec<ConvBlock>,
    /// Dropout after each conv block. Default: 0.1 (seed 004's conv.cfg).
    pub conv_dropout: f64,
    /// Dropout before the classifier. Default: 0.1.
    pub head_dropout: f64,
    /// LSTM hidden size. Default: 64.
    pub hidden: usize,
    /// LSTM layers. Default: 2.
    pub lstm_layers: usize,
}

/// One conv block of [`Crnn`]: Conv2d(`kernel`, `stride`, no padding) ->
/// BatchNorm2d -> ELU -> MaxPool(`pool`) -> Dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvBlock {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride of the convolution on both axes. Default: 1.
    #[serde(default = "one")]
    pub stride: usize,
    /// Square max-pool size and stride (1: no pooling).
    pub pool: usize,
}

fn one() -> usize {
    1
}

impl ConvBlock {
    /// The size of an axis after this block, 0 if it vanishes.
    fn size_after(&self, n: usize) -> usize {
        match n.checked_sub(self.kernel) {
            Some(rest) => (rest / self.stride + 1) / self.pool,
            None => 0,
        }
    }
}

/// Seed 004's stack: channels 32, 64, 64, kernel 3, pools 3, 4, 4.
fn default_stack() -> Vec<ConvBlock> {
    [(32, 3), (64, 4), (64, 4)]
        .map(|(channels, pool)| ConvBlock {
            channels,
            kernel: 3,
            stride: 1,
            pool,
        })
        .to_vec()
}

fn is_default_stack(stack: &[ConvBlock]) -> bool {
    stack == default_stack()
}

impl Default for CrnnConfig {
    fn default() -> Self {
        Self {
            conv: default_stack(),
            conv_dropout: 0.1,
            head_dropout: 0.1,
            hidden: 64,
            lstm_layers: 2,
        }
    }
}

impl CrnnConfig {
    /// The size of an axis after the conv stack, 0 if it vanishes.
    pub fn size_after_convs(&self, n: usize) -> usize {
        self.conv.iter().fold(n, |n, block| block.size_after(n))
    }

    /// The smallest axis that survives the conv stack (80 for the default),
    /// worked back from one output step.
    fn min_size(&self) -> usize {
        (self.conv.iter().rev()).fold(1, |m: usize, b| {
            (m.saturating_mul(b.pool) - 1)
                .saturating_mul(b.stride)
                .saturating_add(b.kernel)
        })
    }
}

/// Conv blocks (by default three: Conv2d(k3, no padding) -> BatchNorm2d ->
/// ELU -> MaxPool (3, 4, 4) -> Dropout, with 32, 64, 64 channels; see
/// [`CrnnConfig::conv`]); the frames as a sequence of `C * F'` features
/// (frequency-major: feature `f * C + c`); a stacked LSTM (default 2 x 64);
/// its output at each example's last valid step; `bn_out`: BatchNorm1d;
/// Dropout; `lin`: Linear(hidden, classes).
///
/// Given each example's frame count, the valid length after the stack
/// ([`CrnnConfig::size_after_convs`], at least 1 step) is where the LSTM
/// output is taken, as with PyTorch's `pack_padded_sequence`: in eval mode,
/// padding never changes an example's logits. 139,786 trainable parameters
/// for the default stack, 128 mels and 10 classes.
#[derive(Debug)]
pub struct Crnn {
    dropout_rng: DropoutRng,
    input: InputShape,
    stack: CrnnConfig,
    blocks: Vec<(Conv2d, BatchNorm)>,
    conv_dropout: Dropout,
    lstm: Recurrent,
    bn_out: BatchNorm,
    head_dropout: Dropout,
    lin: Linear,
}

impl Crnn {
    /// Builds the network from `vb`.
    ///
    /// # Errors
    /// [`Error::Input`] when the mel axis vanishes in the conv stack,
    /// [`Error::Spec`] for a zero size or a dropout outside `[0, 1)`.
    pub fn new(
        config: &CrnnConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dropout_rng = DropoutRng::default();
        if let Some(bad) =
            (config.conv.iter()).find(|b| b.channels * b.kernel * b.stride * b.pool == 0)
        {
            return Err(Error::Spec {
                field: "conv",
                rule: "every block needs positive channels, kernel, stride and pool",
                got: format!("{bad:?}"),
            });
        }
        let freq = config.size_after_convs(input.height);
        if freq == 0 {
            return Err(Error::Input {
                model: "Crnn",
                expected: format!("at least {} mel bands", config.min_size()),
                got: vec![input.channels, input.height, input.frames],
            });
        }
        if config.hidden == 0 || config.lstm_layers == 0 {
            return Err(Error::Spec {
                field: "hidden/lstm_layers",
                rule: "must be positive",
                got: format!("{}/{}", config.hidden, config.lstm_layers),
            });
        }
        let mut cin = input.channels;
        let mut blocks = Vec::new();
        for (i, block) in config.conv.iter().enumerate() {
            let cout = block.channels;
            let conv = conv2d(
                cin,
                cout,
                (block.kernel, block.kernel),
                Conv2dConfig {
                    stride: (block.stride, block.stride),
                    ..Default::default()
                },
                vb.pp(format!("conv{}", i + 1)),
            )?;
            let bn = batch_norm2d(
                cout,
                BatchNormConfig::default(),
                vb.pp(format!("bn{}", i + 1)),
            )?;
            blocks.push((conv, bn));
            cin = cout;
        }
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            input,
            stack: config.clone(),
            blocks,
            conv_dropout: dropout(config.conv_dropout, &dropout_rng)?,
            lstm: lstm(cin * freq, config.hidden, config.lstm_layers, vb.pp("lstm"))?,
            bn_out: batch_norm1d(config.hidden, BatchNormConfig::default(), vb.pp("bn_out"))?,
            head_dropout: dropout(config.head_dropout, &dropout_rng)?,
            lin: linear(config.hidden, n_classes, vb.pp("lin"))?,
        })
    }

    /// The LSTM steps of each example: `max(1, size_after_convs(len))`.
    ///
    /// # Errors
    /// [`Error::Input`] when a length is 0 or exceeds the padded frame count.
    pub fn steps(&self, lengths: &[usize], frames: usize) -> Result<Vec<usize>> {
        lengths
            .iter()
            .map(|&len| {
                if len == 0 || len > frames {
                    return Err(Error::Input {
                        model: "Crnn",
                        expected: format!("lengths in 1..={frames}"),
                        got: lengths.to_vec(),
                    });
                }
                Ok(self.stack.size_after_convs(len).max(1))
            })
            .collect()
    }
}

impl AudioModel for Crnn {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "Crnn"
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let (b, frames) = check_image(self.name(), x, self.input.channels, self.input.height)?;
        let t_out = self.stack.size_after_convs(frames);
        if t_out == 0 {
            return Err(Error::Input {
                model: self.name(),
                expected: format!("at least {} frames", self.stack.min_size()),
                got: x.dims().to_vec(),
            });
        }
        let steps = match lengths {
            Some(l) if l.len() != b => {
                return Err(Error::Input {
                    model: self.name(),
                    expected: format!("{b} lengths"),
                    got: l.to_vec(),
                });
            }
            Some(l) => self.steps(l, frames)?,
            None => vec![t_out; b],
        };
        let mut x = x.clone();
        let pools = self.stack.conv.iter().map(|b| b.pool);
        for (i, ((conv, bn), pool)) in self.blocks.iter().zip(pools).enumerate() {
            x = conv.forward_t(&x, train)?;
            trace.record(&format!("conv{}", i + 1), conv, &x);
            if trace.is_on() {
                x = bn.forward_act(&x, train, Activation::Elu)?;
                trace.record(&format!("bn{}", i + 1), bn, &x);
                trace.record(&format!("elu{}", i + 1), &"ELU(alpha=1.0)", &x);
                x = max_pool2d(&x, pool, pool)?;
            } else {
                // The same three layers in one op, without storing the activations.
                x = bn.forward_act_max_pool(&x, train, Activation::Elu, pool)?;
            }
            trace.record(
                &format!("pool{}", i + 1),
                &format!("MaxPool2d(kernel_size={pool}, stride={pool})"),
                &x,
            );
            x = self.conv_dropout.forward_t(&x, train)?;
        }
        // (B, C, F', T') -> (B, T', F', C) -> (B, T', F' * C): feature f * C + c.
        let (_, _, _, t) = x.dims4()?;
        let seq = x.permute((0, 3, 2, 1))?.contiguous()?.reshape((b, t, ()))?;
        let out = self.lstm.forward(&seq)?;
        trace.record("lstm", &self.lstm, &out);
        // The output at each example's last valid step. A unidirectional LSTM
        // is causal, so later (padded) steps cannot change it.
        let mut pick = vec![0.0f32; b * t];
        for (i, s) in steps.iter().enumerate() {
            pick[i * t + s - 1] = 1.0;
        }
        let pick = Tensor::from_vec(pick, (b, t, 1), x.device())?;
        let last = out.broadcast_mul(&pick)?.sum(1)?;
        let x = self.bn_out.forward_t(&last, train)?;
        trace.record("bn_out", &self.bn_out, &x);
        let x = self.head_dropout.forward_t(&x, train)?;
        let x = self.lin.forward(&x)?;
        trace.record("lin", &self.lin, &x);
        Ok(x)
    }
}
