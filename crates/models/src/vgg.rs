//! Seed 002's VGG-style speaker-identification networks.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::check_image;
use crate::summary::Trace;
use crate::{
    Activation, AudioModel, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutRng,
    Error, InputShape, Linear, Result, batch_norm1d, batch_norm2d, conv2d, dropout, linear,
    max_pool2d, max_pool2d_hw,
};

/// Options of the small VGG stacks ([`Vgg`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggConfig {
    /// Dropout before the last linear layer. Default: 0.5.
    pub dropout: f64,
    /// BatchNorm1d between `fc1` and its ReLU (dense heads only; not in
    /// seed 002). Adam's first steps move each of `fc1`'s ~19k weights by
    /// about the learning rate in one direction, and its inputs are all
    /// non-negative, so a unit's pre-activation jumps by tens and the ReLU
    /// head can die whole, leaving the model at chance; the norm keeps every
    /// unit centred on the batch. Default: false (the seed's model).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub head_norm: bool,
}

impl Default for VggConfig {
    fn default() -> Self {
        Self {
            dropout: 0.5,
            head_norm: false,
        }
    }
}

/// Which small VGG stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggVariant {
    /// Two stages of one conv (8, 16 channels), then a dense head with 64
    /// hidden units.
    UltraMini,
    /// Three stages of one conv (16, 32, 64), then a dense head with 128
    /// hidden units.
    Mini,
    /// Four stages of two convs (16, 32, 64, 128), then global average
    /// pooling and one linear layer.
    Pool,
}

impl VggVariant {
    /// (channels, convs) per stage, and the dense head's hidden size (none
    /// for global pooling).
    fn plan(self) -> (&'static [(usize, usize)], Option<usize>) {
        match self {
            Self::UltraMini => (&[(8, 1), (16, 1)], Some(64)),
            Self::Mini => (&[(16, 1), (32, 1), (64, 1)], Some(128)),
            Self::Pool => (&[(16, 2), (32, 2), (64, 2), (128, 2)], None),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::UltraMini => "VggUltraMini",
            Self::Mini => "VggMini",
            Self::Pool => "VggPool",
        }
    }
}

/// The small VGG-style stacks of seed 002: stages of 3x3 convolutions
/// (padding 1) each followed by BatchNorm2d and ReLU, a 2x2 max pool after
/// every stage; then either a dense head (`fc1`: Linear(flattened, hidden)
/// -> ReLU -> Dropout -> `fc2`: Linear(hidden, classes)), whose size depends
/// on the input, or global average pooling -> Dropout -> `fc`.
///
/// Names: `conv{stage}_{i}`, `bn{stage}_{i}` (from 1), then the head.
/// Trainable parameters for `[1, 64, 128]` inputs and 10 classes:
/// VggUltraMini 526,298 (the dense `fc1` holds 524,352), VggMini 1,073,514,
/// VggPool 295,482 (whatever the input size).
#[derive(Debug)]
pub struct Vgg {
    dropout_rng: DropoutRng,
    variant: VggVariant,
    input: InputShape,
    stages: Vec<Vec<(Conv2d, BatchNorm)>>,
    head: VggHead,
}

#[derive(Debug)]
enum VggHead {
    Dense {
        fc1: Linear,
        norm: Option<BatchNorm>,
        dropout: Dropout,
        fc2: Linear,
    },
    Pool {
        dropout: Dropout,
        fc: Linear,
    },
}

impl Vgg {
    /// Builds `variant` from `vb`.
    ///
    /// # Errors
    /// [`Error::Input`] when an axis vanishes in the pools, [`Error::Spec`]
    /// for a dropout outside `[0, 1)`.
    pub fn new(
        variant: VggVariant,
        config: &VggConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dropout_rng = DropoutRng::default();
        let (plan, hidden) = variant.plan();
        let shrink = 1 << plan.len();
        if input.height < shrink || input.frames < shrink {
            return Err(Error::Input {
                model: variant.name(),
                expected: format!("at least {shrink}x{shrink}"),
                got: vec![input.channels, input.height, input.frames],
            });
        }
        let same = Conv2dConfig {
            stride: (1, 1),
            padding: (1, 1),
        };
        let mut cin = input.channels;
        let mut stages = Vec::new();
        for (s, &(cout, convs)) in plan.iter().enumerate() {
            let mut stage = Vec::new();
            for i in 0..convs {
                let tag = format!("{}_{}", s + 1, i + 1);
                let conv = conv2d(cin, cout, (3, 3), same, vb.pp(format!("conv{tag}")))?;
                let bn = batch_norm2d(cout, BatchNormConfig::default(), vb.pp(format!("bn{tag}")))?;
                stage.push((conv, bn));
                cin = cout;
            }
            stages.push(stage);
        }
        let head = match hidden {
            Some(hidden) => {
                let flat = cin * (input.height / shrink) * (input.frames / shrink);
                let norm = config
                    .head_norm
                    .then(|| batch_norm1d(hidden, BatchNormConfig::default(), vb.pp("bn_fc1")));
                VggHead::Dense {
                    fc1: linear(flat, hidden, vb.pp("fc1"))?,
                    norm: norm.transpose()?,
                    dropout: dropout(config.dropout, &dropout_rng)?,
                    fc2: linear(hidden, n_classes, vb.pp("fc2"))?,
                }
            }
            None => VggHead::Pool {
                dropout: dropout(config.dropout, &dropout_rng)?,
                fc: linear(cin, n_classes, vb.pp("fc"))?,
            },
        };
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            variant,
            input,
            stages,
            head,
        })
    }
}

impl AudioModel for Vgg {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        self.variant.name()
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        _lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let (b, frames) = check_image(self.name(), x, self.input.channels, self.input.height)?;
        let dense = matches!(self.head, VggHead::Dense { .. });
        if (dense && frames != self.input.frames) || frames < 1 << self.stages.len() {
            return Err(Error::Input {
                model: self.name(),
                expected: if dense {
                    format!("exactly {} frames (dense head)", self.input.frames)
                } else {
                    format!("at least {} frames", 1 << self.stages.len())
                },
                got: x.dims().to_vec(),
            });
        }
        let mut x = x.clone();
        for (s, stage) in self.stages.iter().enumerate() {
            for (i, (conv, bn)) in stage.iter().enumerate() {
                let tag = format!("{}_{}", s + 1, i + 1);
                x = conv.forward_t(&x, train)?;
                trace.record(&format!("conv{tag}"), conv, &x);
                x = bn.forward_act(&x, train, Activation::Relu)?;
                trace.record(&format!("bn{tag}"), bn, &x);
                trace.record(&format!("relu{tag}"), &"ReLU()", &x);
            }
            x = max_pool2d(&x, 2, 2)?;
            trace.record(
                &format!("pool{}", s + 1),
                &"MaxPool2d(kernel_size=2, stride=2)",
                &x,
            );
        }
        match &self.head {
            VggHead::Dense {
                fc1,
                norm,
                dropout,
                fc2,
            } => {
                let x = fc1.forward(&x.reshape((b, ()))?)?;
                let x = match norm {
                    Some(bn) => {
                        trace.record("fc1", fc1, &x);
                        let x = bn.forward_act(&x, train, Activation::Relu)?;
                        trace.record("bn_fc1", bn, &x);
                        x
                    }
                    None => {
                        let x = x.relu()?;
                        trace.record("fc1", fc1, &x);
                        x
                    }
                };
                let x = dropout.forward_t(&x, train)?;
                let x = fc2.forward(&x)?;
                trace.record("fc2", fc2, &x);
                Ok(x)
            }
            VggHead::Pool { dropout, fc } => {
                let x = x.mean((2, 3))?;
                trace.record("gap", &"AdaptiveAvgPool2d(output_size=1) + flatten", &x);
                let x = dropout.forward_t(&x, train)?;
                let x = fc.forward(&x)?;
                trace.record("fc", fc, &x);
                Ok(x)
            }
        }
    }
}

/// Options of [`VggM`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggMConfig {
    /// Multiplies every layer's width (96, 256, 384, 256, 256, 4096, 1024);
    /// 0.25 makes it CPU-sized. Default: 1.
    pub width: f64,
    /// Dropout after fc7. Default: 0.5.
    pub dropout: f64,
}

impl Default for VggMConfig {
    fn default() -> Self {
        Self {
            width: 1.0,
            dropout: 0.5,
        }
    }
}

/// VGG-M as used for speaker identification on VoxCeleb (Nagrani et al.
/// 2017): `conv1` 96@7x7 s2 p1 -> max pool 3x3 s2 -> `conv2` 256@5x5 s2 p1
/// -> max pool 3x3 s2 -> `conv3` 384@3x3 -> `conv4` 256@3x3 -> `conv5`
/// 256@3x3 (p1) -> max pool 5x3 s 3x2 -> `fc6` 4096 as a convolution over
/// the whole remaining frequency axis -> average over time -> `fc7`:
/// Linear(4096, 1024) -> ReLU -> Dropout -> `fc8`: Linear(1024, classes).
/// Every convolution (fc6 included) is followed by BatchNorm2d (`bn1..6`)
/// and ReLU; every width is scaled by `width`.
///
/// For `[1, 512, 300]` spectrograms and 1,251 classes at width 1:
/// 17,909,219 trainable parameters (fc6 alone 9.4 M); at width 0.25 on
/// `[1, 128, 128]` and 10 classes: 521,546. The input needs at least 97
/// rows and 65 frames.
#[derive(Debug)]
pub struct VggM {
    dropout_rng: DropoutRng,
    input: InputShape,
    convs: Vec<(Conv2d, BatchNorm)>,
    fc6: (Conv2d, BatchNorm),
    fc7: Linear,
    dropout: Dropout,
    fc8: Linear,
}

/// A max pool's (kernel, stride), each (rows, columns).
type PoolShape = ((usize, usize), (usize, usize));

/// Conv layers of VGG-M before fc6: (channels, kernel, stride, padding, pool after).
const VGGM_CONVS: [(usize, usize, usize, usize, Option<PoolShape>); 5] = [
    (96, 7, 2, 1, Some(((3, 3), (2, 2)))),
    (256, 5, 2, 1, Some(((3, 3), (2, 2)))),
    (384, 3, 1, 1, None),
    (256, 3, 1, 1, None),
    (256, 3, 1, 1, Some(((5, 3), (3, 2)))),
];

impl VggM {
    /// Builds the network from `vb`.
    ///
    /// # Errors
    /// [`Error::Input`] when the input vanishes before fc6, [`Error::Spec`]
    /// for a width outside `(0, 4]` or a dropout outside `[0, 1)`.
    pub fn new(
        config: &VggMConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dropout_rng = DropoutRng::default();
        if !(config.width > 0.0 && config.width <= 4.0) {
            return Err(Error::Spec {
                field: "width",
                rule: "must be in (0, 4]",
                got: config.width.to_string(),
            });
        }
        let scaled = |n: usize| ((n as f64 * config.width).round() as usize).max(1);
        let (mut h, mut w) = (input.height, input.frames);
        let mut cin = input.channels;
        let mut convs = Vec::new();
        for (i, &(c, k, s, p, pool)) in VGGM_CONVS.iter().enumerate() {
            let cfg = Conv2dConfig {
                stride: (s, s),
                padding: (p, p),
            };
            let cout = scaled(c);
            let conv = conv2d(cin, cout, (k, k), cfg, vb.pp(format!("conv{}", i + 1)))?;
            let size = conv.output_size((h, w)).and_then(|(oh, ow)| match pool {
                Some(((kh, kw), (sh, sw))) if oh >= kh && ow >= kw => {
                    Some(((oh - kh) / sh + 1, (ow - kw) / sw + 1))
                }
                Some(_) => None,
                None => Some((oh, ow)),
            });
            let Some(size) = size else {
                return Err(Error::Input {
                    model: "VggM",
                    expected: format!("an input that survives conv{} and its pool", i + 1),
                    got: vec![input.channels, input.height, input.frames],
                });
            };
            (h, w) = size;
            convs.push((
                conv,
                batch_norm2d(
                    cout,
                    BatchNormConfig::default(),
                    vb.pp(format!("bn{}", i + 1)),
                )?,
            ));
            cin = cout;
        }
        let fc6 = conv2d(
            cin,
            scaled(4096),
            (h, 1),
            Conv2dConfig::default(),
            vb.pp("fc6"),
        )?;
        let bn6 = batch_norm2d(scaled(4096), BatchNormConfig::default(), vb.pp("bn6"))?;
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            input,
            convs,
            fc6: (fc6, bn6),
            fc7: linear(scaled(4096), scaled(1024), vb.pp("fc7"))?,
            dropout: dropout(config.dropout, &dropout_rng)?,
            fc8: linear(scaled(1024), n_classes, vb.pp("fc8"))?,
        })
    }
}

impl AudioModel for VggM {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "VggM"
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        _lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        check_image(self.name(), x, self.input.channels, self.input.height)?;
        let too_short = || Error::Input {
            model: "VggM",
            expected: "enough frames to survive every pool".into(),
            got: x.dims().to_vec(),
        };
        let mut x = x.clone();
        for (i, ((conv, bn), &(.., pool))) in self.convs.iter().zip(VGGM_CONVS.iter()).enumerate() {
            let (h, w) = (x.dim(2)?, x.dim(3)?);
            conv.output_size((h, w)).ok_or_else(too_short)?;
            x = conv.forward_t(&x, train)?;
            trace.record(&format!("conv{}", i + 1), conv, &x);
            x = bn.forward_act(&x, train, Activation::Relu)?;
            trace.record(&format!("bn{}", i + 1), bn, &x);
            if let Some((k, s)) = pool {
                if x.dim(3)? < k.1 {
                    return Err(too_short());
                }
                x = max_pool2d_hw(&x, k, s)?;
                trace.record(
                    &format!("pool{}", i + 1),
                    &format!("MaxPool2d(kernel_size={k:?}, stride={s:?})"),
                    &x,
                );
            }
        }
        let (fc6, bn6) = &self.fc6;
        let x = fc6.forward_t(&x, train)?;
        trace.record("fc6", fc6, &x);
        let x = bn6.forward_act(&x, train, Activation::Relu)?;
        trace.record("bn6", bn6, &x);
        let x = x.mean((2, 3))?;
        trace.record("apool6", &"mean over time", &x);
        let x = self.fc7.forward(&x)?.relu()?;
        trace.record("fc7", &self.fc7, &x);
        let x = self.dropout.forward_t(&x, train)?;
        let x = self.fc8.forward(&x)?;
        trace.record("fc8", &self.fc8, &x);
        Ok(x)
    }
}
