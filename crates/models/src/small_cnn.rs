//! Seed 003's small CNN for chunked clips.

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::check_image;
use crate::summary::Trace;
use crate::{
    Activation, AudioModel, Conv2d, Conv2dConfig, Dropout, DropoutRng, Error, InputShape, Linear,
    Result, conv2d, dropout, linear, max_pool2d,
};

/// Options of [`SmallCnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmallCnnConfig {
    /// Channels of the three convolutions. Default: [16, 32, 64].
    pub channels: [usize; 3],
    /// Dropout before the classifier. Default: 0.3.
    pub dropout: f64,
}

impl Default for SmallCnnConfig {
    fn default() -> Self {
        Self {
            channels: [16, 32, 64],
            dropout: 0.3,
        }
    }
}

/// `conv1` (3x3, padding 1) -> ReLU -> MaxPool 2 -> `conv2` -> ReLU ->
/// MaxPool 2 -> `conv3` -> ReLU -> global average pooling -> Dropout ->
/// `fc`: Linear(last width, classes).
///
/// 23,946 trainable parameters for 1 channel, the default widths and 10
/// classes (`160 + 4,640 + 18,496 + 650`), independent of the input size
/// (at least 4x4).
#[derive(Debug)]
pub struct SmallCnn {
    dropout_rng: DropoutRng,
    input: InputShape,
    convs: Vec<Conv2d>,
    dropout: Dropout,
    fc: Linear,
}

impl SmallCnn {
    /// Builds the network from `vb`.
    ///
    /// # Errors
    /// [`Error::Input`] for an input under 4x4, [`Error::Spec`] for a zero
    /// width or a dropout outside `[0, 1)`.
    pub fn new(
        config: &SmallCnnConfig,
        n_classes: usize,
        input: InputShape,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dropout_rng = DropoutRng::default();
        if input.height < 4 || input.frames < 4 {
            return Err(Error::Input {
                model: "SmallCnn",
                expected: "at least 4x4 (two 2x2 pools)".into(),
                got: vec![input.channels, input.height, input.frames],
            });
        }
        if config.channels.contains(&0) {
            return Err(Error::Spec {
                field: "channels",
                rule: "must be positive",
                got: format!("{:?}", config.channels),
            });
        }
        let same = Conv2dConfig {
            stride: (1, 1),
            padding: (1, 1),
        };
        let mut cin = input.channels;
        let mut convs = Vec::new();
        for (i, &cout) in config.channels.iter().enumerate() {
            convs.push(conv2d(
                cin,
                cout,
                (3, 3),
                same,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            cin = cout;
        }
        Ok(Self {
            dropout_rng: dropout_rng.clone(),
            input,
            convs,
            dropout: dropout(config.dropout, &dropout_rng)?,
            fc: linear(cin, n_classes, vb.pp("fc"))?,
        })
    }
}

impl AudioModel for SmallCnn {
    fn dropout_rng(&self) -> &DropoutRng {
        &self.dropout_rng
    }

    fn name(&self) -> &'static str {
        "SmallCnn"
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        _lengths: Option<&[usize]>,
        train: bool,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let (_, frames) = check_image(self.name(), x, self.input.channels, self.input.height)?;
        if frames < 4 {
            return Err(Error::Input {
                model: self.name(),
                expected: "at least 4 frames".into(),
                got: x.dims().to_vec(),
            });
        }
        let mut x = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward_act(&x, train, Activation::Relu)?;
            trace.record(&format!("conv{}", i + 1), conv, &x);
            trace.record(&format!("relu{}", i + 1), &"ReLU()", &x);
            if i < 2 {
                x = max_pool2d(&x, 2, 2)?;
                trace.record(
                    &format!("pool{}", i + 1),
                    &"MaxPool2d(kernel_size=2, stride=2)",
                    &x,
                );
            }
        }
        let x = x.mean((2, 3))?;
        trace.record("gap", &"AdaptiveAvgPool2d(output_size=1) + flatten", &x);
        let x = self.dropout.forward_t(&x, train)?;
        trace.record("dropout", &self.dropout, &x);
        let x = self.fc.forward(&x)?;
        trace.record("fc", &self.fc, &x);
        Ok(x)
    }
}
