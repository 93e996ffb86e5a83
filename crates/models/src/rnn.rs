//! Stacked recurrent layers with PyTorch's `nn.RNN` (tanh Elman) and
//! `nn.LSTM` weight names, layouts and gate math, `batch_first`, zero
//! initial state.
//!
//! candle-nn's LSTM is a single layer stepped one matrix product at a time;
//! here each layer projects all time steps' inputs in one matrix product and
//! only the hidden-to-hidden product runs per step (for the tanh cell, the
//! whole recurrence is one op with its own backward pass).

use std::fmt;

use candle_core::{D, Module, Tensor};
use candle_nn::VarBuilder;

use crate::ops::act::sigmoid;
use crate::ops::scan::tanh_scan;
use crate::{Init, Result};

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`.
    Tanh,
    /// LSTM with gate rows ordered input, forget, cell, output.
    Lstm,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Self::Tanh => 1,
            Self::Lstm => 4,
        }
    }
}

/// One layer's weights: `weight_ih_l{k}` `[G*H, in]`, `weight_hh_l{k}`
/// `[G*H, H]`, `bias_ih_l{k}` and `bias_hh_l{k}` `[G*H]`.
#[derive(Debug, Clone)]
struct Layer {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

/// A stack of recurrent layers over `[B, T, F]`.
#[derive(Debug, Clone)]
pub struct Recurrent {
    cell: Cell,
    input_size: usize,
    hidden: usize,
    layers: Vec<Layer>,
}

/// A stacked `nn.RNN(nonlinearity="tanh")` with its tensors from `vb`,
/// initialised (where `vb` creates them) as PyTorch does: every tensor
/// `U(-1/sqrt(H), 1/sqrt(H))`.
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn rnn(
    input_size: usize,
    hidden: usize,
    num_layers: usize,
    vb: VarBuilder,
) -> Result<Recurrent> {
    recurrent(Cell::Tanh, input_size, hidden, num_layers, vb)
}

/// A stacked `nn.LSTM` with its tensors from `vb`, initialised as [`rnn`].
///
/// # Errors
/// A tensor `vb` cannot give in the layer's shape.
pub fn lstm(
    input_size: usize,
    hidden: usize,
    num_layers: usize,
    vb: VarBuilder,
) -> Result<Recurrent> {
    recurrent(Cell::Lstm, input_size, hidden, num_layers, vb)
}

fn recurrent(
    cell: Cell,
    input_size: usize,
    hidden: usize,
    num_layers: usize,
    vb: VarBuilder,
) -> Result<Recurrent> {
    let init = Init::fan_in_uniform(hidden).into();
    let rows = cell.gates() * hidden;
    let layers = (0..num_layers)
        .map(|k| {
            let inp = if k == 0 { input_size } else { hidden };
            Ok(Layer {
                w_ih: vb.get_with_hints((rows, inp), &format!("weight_ih_l{k}"), init)?,
                w_hh: vb.get_with_hints((rows, hidden), &format!("weight_hh_l{k}"), init)?,
                b_ih: vb.get_with_hints(rows, &format!("bias_ih_l{k}"), init)?,
                b_hh: vb.get_with_hints(rows, &format!("bias_hh_l{k}"), init)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Recurrent {
        cell,
        input_size,
        hidden,
        layers,
    })
}

impl Layer {
    /// `x W_ih^T + b_ih + b_hh` for `x` `[..., in]`.
    fn project(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&self.w_ih.t()?)?
            .broadcast_add(&self.b_ih)?
            .broadcast_add(&self.b_hh)
    }
}

impl Recurrent {
    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// One LSTM step of layer `layer` from its projected input `xp`
    /// `[B, 4H]`; updates `h` and `c` in place.
    fn lstm_cell(
        layer: &Layer,
        xp: &Tensor,
        h: &mut Tensor,
        c: &mut Tensor,
    ) -> candle_core::Result<()> {
        let pre = (xp + h.matmul(&layer.w_hh.t()?)?)?;
        let gates = pre.chunk(4, D::Minus1)?;
        let (i, f) = (sigmoid(&gates[0])?, sigmoid(&gates[1])?);
        let (g, o) = (gates[2].tanh()?, sigmoid(&gates[3])?);
        *c = ((f * &*c)? + (i * g)?)?;
        *h = (o * c.tanh()?)?;
        Ok(())
    }

    /// The top layer's output at every step, `[B, T, H]`, from `x`
    /// `[B, T, F]` and a zero initial state.
    ///
    /// # Errors
    /// When `x` is not `[B, T, input_size]` with `T > 0`.
    pub fn forward_seq(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, f) = x.dims3()?;
        if f != self.input_size || t == 0 {
            return Err(crate::Error::Layer(format!(
                "recurrent layer expects [B, T > 0, {}], got {:?}",
                self.input_size,
                x.dims()
            )));
        }
        let mut seq = x.clone();
        for layer in &self.layers {
            let xp = layer.project(&seq)?;
            if self.cell == Cell::Tanh {
                seq = tanh_scan(&xp, &layer.w_hh)?;
                continue;
            }
            // The LSTM steps in candle ops: its gates are a quarter of the
            // CRNN's step, which already beats PyTorch.
            let mut h = Tensor::zeros((b, self.hidden), x.dtype(), x.device())?;
            let mut c = h.clone();
            let mut outs = Vec::with_capacity(t);
            for step in 0..t {
                Self::lstm_cell(layer, &xp.narrow(1, step, 1)?.squeeze(1)?, &mut h, &mut c)?;
                outs.push(h.clone());
            }
            seq = Tensor::stack(&outs, 1)?;
        }
        Ok(seq)
    }

    /// The cell type.
    pub fn cell_kind(&self) -> Cell {
        self.cell
    }

    /// Each layer's `W_ih` `[G*H, in]` and `W_hh` `[G*H, H]`, row-major, and
    /// `b_ih + b_hh`: what a frame-by-frame stream computes with.
    ///
    /// # Errors
    /// Only if a tensor cannot be read.
    pub(crate) fn layer_values(&self) -> Result<Vec<[Vec<f32>; 3]>> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
        self.layers
            .iter()
            .map(|l| Ok([flat(&l.w_ih)?, flat(&l.w_hh)?, flat(&(&l.b_ih + &l.b_hh)?)?]))
            .collect()
    }
}

impl Module for Recurrent {
    /// [`Recurrent::forward_seq`].
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_seq(x)?)
    }
}

impl fmt::Display for Recurrent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.cell {
            Cell::Tanh => "RNN",
            Cell::Lstm => "LSTM",
        };
        write!(
            f,
            "{name}({}, {}, num_layers={}, batch_first=True)",
            self.input_size,
            self.hidden,
            self.layers.len()
        )
    }
}
