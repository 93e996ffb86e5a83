//! Activations fused into the convolution and batch-norm ops, whose
//! derivatives are computed from the activation's output alone, and the
//! logistic sigmoid (candle-core has none with a backward pass).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::cpu::f32_data;

/// An elementwise activation applied after a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`; the gradient is 0 where the output is 0 (PyTorch's
    /// `threshold_backward`).
    Relu,
    /// `x` for `x > 0`, else `exp(x) - 1` (alpha 1).
    Elu,
}

impl Activation {
    /// The activation of `x`.
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => x.max(0.0),
            Self::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
        }
    }

    /// The derivative at the input whose activation is `y`.
    #[inline]
    pub(crate) fn grad_from_output(self, y: f32) -> f32 {
        match self {
            Self::Identity => 1.0,
            Self::Relu => f32::from(y > 0.0),
            // For x <= 0, y = exp(x) - 1, so d/dx = exp(x) = y + 1.
            Self::Elu => {
                if y > 0.0 {
                    1.0
                } else {
                    y + 1.0
                }
            }
        }
    }
}

/// The logistic sigmoid `1 / (1 + exp(-x))`.
struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "hark-sigmoid"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(storage, layout)?;
        let y = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.mul(&(y * (1.0 - y)?)?)?))
    }
}

/// The logistic sigmoid of an f32 tensor, with its backward pass.
pub(crate) fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Sigmoid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_its_gradient_match_the_formula() {
        let x = candle_core::Var::new(&[-3.0f32, 0.0, 2.5], &candle_core::Device::Cpu).unwrap();
        let y = sigmoid(x.as_tensor()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx: Vec<f32> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
        for (i, v) in [-3.0f32, 0.0, 2.5].iter().enumerate() {
            let s = 1.0 / (1.0 + (-v).exp());
            assert!((y.to_vec1::<f32>().unwrap()[i] - s).abs() < 1e-7);
            assert!((dx[i] - s * (1.0 - s)).abs() < 1e-7);
        }
    }

    #[test]
    fn derivatives_from_outputs_match_finite_differences() {
        for act in [Activation::Identity, Activation::Relu, Activation::Elu] {
            for x in [-2.0f32, -0.3, 0.4, 1.7] {
                let h = 1e-3;
                let fd = (act.apply(x + h) - act.apply(x - h)) / (2.0 * h);
                let d = act.grad_from_output(act.apply(x));
                assert!((fd - d).abs() < 1e-3, "{act:?} at {x}: {fd} vs {d}");
            }
        }
    }
}
