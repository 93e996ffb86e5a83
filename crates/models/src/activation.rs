//! The activations fused into the convolution and batch-norm ops; their
//! kernels are in [`crate::ops::act`].

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
