//! PyTorch-style model summaries: layers, output shapes, parameter counts.

use std::fmt;

use candle_core::Tensor;

/// Records each layer's output shape during a forward pass, when enabled.
#[derive(Debug, Default)]
pub struct Trace {
    layers: Option<Vec<(String, String, Vec<usize>)>>,
}

impl Trace {
    /// A trace that records nothing (the training and inference path).
    pub fn off() -> Self {
        Self { layers: None }
    }

    /// A trace that records every layer.
    pub fn on() -> Self {
        Self {
            layers: Some(Vec::new()),
        }
    }

    /// Whether it records: a model may then run its layers one by one
    /// where it would otherwise fuse them.
    pub fn is_on(&self) -> bool {
        self.layers.is_some()
    }

    /// Notes that layer `name` (described as `what`) produced `x`.
    pub fn record(&mut self, name: &str, what: &dyn fmt::Display, x: &Tensor) {
        if let Some(layers) = &mut self.layers {
            layers.push((name.to_string(), what.to_string(), x.dims().to_vec()));
        }
    }

    /// The recorded (name, description, output shape) rows.
    pub fn into_layers(self) -> Vec<(String, String, Vec<usize>)> {
        self.layers.unwrap_or_default()
    }
}

/// One row of a [`ModelSummary`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerSummary {
    /// The layer's state_dict prefix (`conv1`) or a name for a
    /// parameter-free step (`relu1`, `pool`).
    pub name: String,
    /// PyTorch's printed form, e.g. `Conv2d(2, 8, kernel_size=(5, 5), ...)`.
    pub description: String,
    /// The output shape for the summarised input.
    pub output_shape: Vec<usize>,
    /// Trainable parameters under this name.
    pub params: usize,
}

/// A printed model: every layer with its output shape and parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelSummary {
    /// The model's name, e.g. `AudioCnn`.
    pub model: String,
    /// The input shape summarised, batch 1.
    pub input_shape: Vec<usize>,
    /// The layers in forward order.
    pub layers: Vec<LayerSummary>,
    /// Trainable parameters of the whole model.
    pub trainable_params: usize,
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &[usize]| format!("{s:?}");
        let width = self
            .layers
            .iter()
            .map(|l| l.name.len() + l.description.len() + 4)
            .max()
            .unwrap_or(0);
        writeln!(f, "{}(  input {}", self.model, shape(&self.input_shape))?;
        for l in &self.layers {
            let left = format!("({}): {}", l.name, l.description);
            write!(f, "  {left:<width$}  -> {:<20}", shape(&l.output_shape))?;
            if l.params > 0 {
                write!(f, "  {} params", l.params)?;
            }
            writeln!(f)?;
        }
        writeln!(f, ")")?;
        write!(f, "Trainable parameters: {}", self.trainable_params)
    }
}
