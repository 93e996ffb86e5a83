//! Cross-entropy on logits, as `F.cross_entropy(logits, labels)` with mean
//! reduction.

use candle_core::{D, Tensor};

use crate::Result;

/// `log_softmax` over the last axis. The row maximum is subtracted as a
/// constant (detached), which leaves the value and the gradient unchanged
/// and keeps `exp` from overflowing.
///
/// # Errors
/// Only from the tensor ops.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let z = logits.broadcast_sub(&max)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(z.broadcast_sub(&lse)?)
}

/// Mean over the batch of `-log_softmax(logits)[b, labels[b]]` for logits
/// `[B, C]`.
///
/// # Errors
/// When `labels` has not `B` entries or one is `>= C`.
pub fn cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    if labels.len() != b {
        return Err(crate::Error::Layer(format!(
            "cross_entropy got {} labels for {b} logit rows",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= c) {
        return Err(crate::Error::Layer(format!(
            "label {bad} is out of range for {c} classes"
        )));
    }
    let mut onehot = vec![0.0f32; b * c];
    for (row, &l) in labels.iter().enumerate() {
        onehot[row * c + l] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, c), logits.device())?;
    let picked = (log_softmax(logits)? * onehot)?.sum_all()?;
    Ok((picked.neg()? / b as f64)?)
}

/// Softmax over the last axis (no backward needed: for reporting).
///
/// # Errors
/// Only from the tensor ops.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    Ok(log_softmax(logits)?.exp()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_equals_the_hand_computed_value() {
        let logits =
            Tensor::new(&[[1.0f32, 2.0, 3.0], [1000.0, 0.0, -1000.0]], &Device::Cpu).unwrap();
        let loss: f32 = cross_entropy(&logits, &[2, 0])
            .unwrap()
            .to_scalar()
            .unwrap();
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        assert!((loss - (lse - 3.0) / 2.0).abs() < 1e-6, "{loss}");
        assert!(cross_entropy(&logits, &[3, 0]).is_err());
        assert!(cross_entropy(&logits, &[0]).is_err());
    }
}
