//! Seed 001's UrbanSound8K CNN.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::check_image;
use crate::summary::Trace;
use crate::{
    Activation, AudioModel, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvBn, Dropout,
    DropoutRng, Error, Init, InputShape, Linear, Result, batch_norm2d, conv2d_init, dropout,
    forward_conv_bn, linear,
};

/// Options of [`AudioCnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioCnnConfig {
    /// Dropout before the classifier. Default: 0 (the seed has none).
    pub dropout: f64,
    /// Channel multiplier: the blocks have 8, 16, 32 and 64 times `width`
    /// channels (the compute grows with its square). Default: 1 (the seed).
    #[serde(skip_serializing_if = "is_one")]
    pub width: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for AudioCnnConfig {
    fn default() -> Self {
        Self {
            dropout: 0.0,
            width: 1,
        }
    }
}

/// Four blocks Conv2d -> ReLU -> BatchNorm2d (2->8 k5 s2 p2, 8->16 k3 s2 p1,
/// 16->32 k3 s2 p1, 32->64 k3 s2 p1), adaptive average pooling to 1x1 and
/// `lin`: Linear(64, classes). Convolutions are initialised Kaiming-normal
/// with a = 0.1 and zero bias, as in the seed.
///
/// State_dict names `conv1..4`, `bn1..4`, `lin`. 25,602 trainable
/// parameters for 2 channels and 10 classes, whatever the input size: any
/// input works, e.g. `[B, 2, 64, 344]` for 4 s at 44.1 kHz.
#[derive(Debug)]
pub struct AudioCnn {
    dropout_rng: DropoutRng,
    input: InputShape,
    blocks: Vec<(Conv2d, BatchNorm)>,
    dropout: Dropout,
    lin: Linear,
}

impl AudioCnn {
    /// Builds the network from `vb`.
    ///
    /// # Errors
    /// [`Error::Spec`] for a dropout outside `[0, 1)`.
    pub fn new(
        config: &AudioCnnConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let w = config.width;
        if w == 0 || w > 64 {
            return Err(Error::Spec {
                field: "width",
                rule: "must be in 1..=64",
                got: w.to_string(),
            });
        }
        let dropout_rng = DropoutRng::default();
        let plan = [
            (input.channels, 8 * w, 5, 2),
            (8 * w, 16 * w, 3, 1),
            (16 * w, 32 * w, 3, 1),
            (32 * w, 64 * w, 3, 1),
        ];
        let blocks = plan
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, p))| {
                let conv = conv2d_init(
                    cin,
                    cout,
                    (k, k),
                    Conv2dConfig {
                        stride: (2, 2),
                        padding: (p, p),
                    },
                    Init::kaiming_normal(0.1, cin * k * k),
                    Init::Const(0.0),
                    vb.pp(format!("conv{}", i + 1)),
                )?;
                let bn = batch_norm2d(
                    cout,
                    BatchNormConfig::default(),
                    vb.pp(format!("bn{}", i + 1)),
                )?;
                Ok((conv, bn))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            input,
            blocks,
            dropout: dropout(config.dropout, &dropout_rng)?,
            lin: linear(64 * w, n_classes, vb.pp("lin"))?,
        })
    }
}

impl AudioModel for AudioCnn {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "AudioCnn"
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        _lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        check_image(self.name(), x, self.input.channels, self.input.height)?;
        let mut size = (x.dim(2)?, x.dim(3)?);
        for (conv, _) in &self.blocks {
            size = conv.output_size(size).ok_or_else(|| Error::Input {
                model: self.name(),
                expected: "at least 1x1 after each stride-2 convolution".into(),
                got: x.dims().to_vec(),
            })?;
        }
        let x = if trace.is_on() {
            let mut x = x.clone();
            for (i, (conv, bn)) in self.blocks.iter().enumerate() {
                x = conv.forward_act(&x, train, Activation::Relu)?;
                trace.record(&format!("conv{}", i + 1), conv, &x);
                trace.record(&format!("relu{}", i + 1), &"ReLU()", &x);
                x = bn.forward_t(&x, train)?;
                trace.record(&format!("bn{}", i + 1), bn, &x);
            }
            x
        } else {
            // The same layers in one op.
            let blocks: Vec<ConvBn<'_>> = (self.blocks.iter())
                .map(|(conv, bn)| ConvBn {
                    conv,
                    conv_act: Activation::Relu,
                    bn,
                    act: Activation::Identity,
                })
                .collect();
            forward_conv_bn(&blocks, x, train)?
        };
        let x = x.mean((2, 3))?;
        trace.record("ap", &"AdaptiveAvgPool2d(output_size=1) + flatten", &x);
        let x = self.dropout.forward_t(&x, train)?;
        let x = self.lin.forward(&x)?;
        trace.record("lin", &self.lin, &x);
        Ok(x)
    }
}
