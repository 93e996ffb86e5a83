//! Activations as types for the fused kernels, whose derivatives are
//! computed from the activation's output alone, and the logistic sigmoid
//! (candle-core has none with a backward pass).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::ops::buffers::f32_data;

/// An [`Activation`] as a type, so a loop applying it is compiled once per
/// kind, without a branch on the kind per element, and vectorises.
pub(crate) trait Act {
    /// Whether this is the identity: kernels may skip `grad`, always 1.
    const IDENTITY: bool = false;
    /// The activation of `x`.
    fn apply(x: f32) -> f32;
    /// The derivative at the input whose activation is `y`.
    fn grad(y: f32) -> f32;
}

/// [`Activation::Identity`] as a type.
pub(crate) struct IdentityAct;
/// [`Activation::Relu`] as a type.
pub(crate) struct ReluAct;
/// [`Activation::Elu`] as a type.
pub(crate) struct EluAct;

impl Act for IdentityAct {
    const IDENTITY: bool = true;

    #[inline(always)]
    fn apply(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn grad(_: f32) -> f32 {
        1.0
    }
}

impl Act for ReluAct {
    #[inline(always)]
    fn apply(x: f32) -> f32 {
        x.max(0.0)
    }
    #[inline(always)]
    fn grad(y: f32) -> f32 {
        f32::from(y > 0.0)
    }
}

impl Act for EluAct {
    #[inline(always)]
    fn apply(x: f32) -> f32 {
        if x > 0.0 { x } else { exp(x) - 1.0 }
    }
    /// For `x <= 0`, `y = exp(x) - 1`, so `d/dx = exp(x) = y + 1`.
    #[inline(always)]
    fn grad(y: f32) -> f32 {
        if y > 0.0 { 1.0 } else { y + 1.0 }
    }
}

/// Evaluates `$body` with `$a` naming the [`Act`] type of `$act`.
macro_rules! with_act {
    ($act:expr, $a:ident => $body:expr) => {
        match $act {
            $crate::Activation::Identity => {
                type $a = $crate::ops::act::IdentityAct;
                $body
            }
            $crate::Activation::Relu => {
                type $a = $crate::ops::act::ReluAct;
                $body
            }
            $crate::Activation::Elu => {
                type $a = $crate::ops::act::EluAct;
                $body
            }
        }
    };
}
pub(crate) use with_act;

/// `e^x` within 2 ulp over the f32 range, without a libm call, so the
/// loops that use it vectorise (libm's `expm1f` took an eighth of a CRNN
/// training step). Cody-Waite reduction to `[-ln2/2, ln2/2]` and Cephes'
/// degree-6 polynomial.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let e = (p * r * r + r) + 1.0;
    let k = (t.to_bits() as i32) - (ROUND.to_bits() as i32);
    e * f32::from_bits(((k + 127) << 23) as u32)
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
    use crate::Activation;

    #[test]
    fn fast_exp_is_within_two_ulp_of_the_true_value() {
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 1.234e-5;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 2.5e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
    }

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
                let f = |x| with_act!(act, A => A::apply(x));
                let fd = (f(x + h) - f(x - h)) / (2.0 * h);
                let d = with_act!(act, A => A::grad(f(x)));
                assert!((fd - d).abs() < 1e-3, "{act:?} at {x}: {fd} vs {d}");
            }
        }
    }
}
