//! Losses on logits with mean reduction: cross-entropy over `C >= 2`
//! outputs (`F.cross_entropy`), and binary cross-entropy over one sigmoid
//! output (`F.binary_cross_entropy_with_logits`, seed 000's detector). A
//! model with one output is a binary classifier whose output is the logit
//! of class 1; [`classification_loss`] and [`class_probabilities`] pick the
//! right form from the logits' width.

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
    smoothed_cross_entropy(logits, labels, 0.0)
}

/// [`cross_entropy`] against smoothed targets: `1 - eps + eps / C` for the
/// label and `eps / C` for every other class (`F.cross_entropy`'s
/// `label_smoothing`), which keeps the logits from growing without bound
/// on a small training set.
///
/// # Errors
/// As [`cross_entropy`].
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &[usize], eps: f64) -> Result<Tensor> {
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
    let (off, on) = ((eps / c as f64) as f32, (1.0 - eps + eps / c as f64) as f32);
    let mut targets = vec![off; b * c];
    for (row, &l) in labels.iter().enumerate() {
        targets[row * c + l] = on;
    }
    let targets = Tensor::from_vec(targets, (b, c), logits.device())?;
    let picked = (log_softmax(logits)? * targets)?.sum_all()?;
    Ok((picked.neg()? / b as f64)?)
}

/// Mean binary cross-entropy of one logit per example `[B, 1]` against
/// labels 0 or 1, smoothed towards 1/2 by `eps` (`y (1 - eps) + eps / 2`):
/// `max(z, 0) - z y + log(1 + exp(-|z|))`, which never overflows.
///
/// # Errors
/// When `labels` has not `B` entries or one is above 1.
pub fn binary_cross_entropy(logits: &Tensor, labels: &[usize], eps: f64) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    if c != 1 || labels.len() != b {
        return Err(crate::Error::Layer(format!(
            "binary_cross_entropy takes [B, 1] logits and B labels, got {:?} and {}",
            logits.dims(),
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l > 1) {
        return Err(crate::Error::Layer(format!(
            "label {bad} is out of range for a binary output"
        )));
    }
    let y: Vec<f32> = (labels.iter())
        .map(|&l| (l as f64 * (1.0 - eps) + eps / 2.0) as f32)
        .collect();
    let y = Tensor::from_vec(y, (b, 1), logits.device())?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let loss = ((logits.relu()? - (logits * y)?)? + soft)?;
    Ok((loss.sum_all()? / b as f64)?)
}

/// [`binary_cross_entropy`] for one output, else [`cross_entropy`].
///
/// # Errors
/// As the loss chosen.
pub fn classification_loss(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    smoothed_classification_loss(logits, labels, 0.0)
}

/// [`classification_loss`] with label smoothing `eps` (training only).
///
/// # Errors
/// As the loss chosen.
pub fn smoothed_classification_loss(logits: &Tensor, labels: &[usize], eps: f64) -> Result<Tensor> {
    match logits.dims2()? {
        (_, 1) => binary_cross_entropy(logits, labels, eps),
        _ => smoothed_cross_entropy(logits, labels, eps),
    }
}

/// Per-class probabilities `[B, C]`: the softmax of `C >= 2` logits, or
/// `[1 - p, p]` with `p = sigmoid(z)` for one logit.
///
/// # Errors
/// Only from the tensor ops.
pub fn class_probabilities(logits: &Tensor) -> Result<Tensor> {
    match logits.dims2()? {
        (_, 1) => {
            let p = crate::ops::act::sigmoid(logits)?;
            Ok(Tensor::cat(&[&(1.0 - &p)?, &p], 1)?)
        }
        _ => softmax(logits),
    }
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
    fn binary_cross_entropy_and_probabilities_of_one_logit() {
        let z = [2.0f32, -1.0, 30.0, -30.0];
        let logits = Tensor::new(&[[z[0]], [z[1]], [z[2]], [z[3]]], &Device::Cpu).unwrap();
        let labels = [1, 0, 0, 1];
        let got: f32 = classification_loss(&logits, &labels)
            .unwrap()
            .to_scalar()
            .unwrap();
        let want: f64 = z
            .iter()
            .zip(labels)
            .map(|(&z, y)| {
                // -ln(sigmoid(z)) = ln(1 + e^-z), -ln(1 - sigmoid(z)) = ln(1 + e^z).
                let z = z as f64;
                if y == 1 {
                    (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                }
            })
            .sum::<f64>()
            / 4.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        let p: Vec<Vec<f32>> = class_probabilities(&logits).unwrap().to_vec2().unwrap();
        let s = 1.0 / (1.0 + (-2.0f32).exp());
        assert!((p[0][1] - s).abs() < 1e-6 && (p[0][0] + p[0][1] - 1.0).abs() < 1e-6);
        assert!(binary_cross_entropy(&logits, &[0, 1, 2, 0], 0.0).is_err());
    }

    #[test]
    fn label_smoothing_equals_the_hand_computed_values() {
        // log_softmax([1, 2, 3]) against [0.1/3, 0.1/3, 0.9 + 0.1/3]: 0.507606
        // (PyTorch's F.cross_entropy(label_smoothing=0.1) gives the same).
        let logits = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu).unwrap();
        let got: f32 = smoothed_classification_loss(&logits, &[2], 0.1)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((got - 0.507_606).abs() < 1e-5, "{got}");
        // One logit 0.5, label 1 smoothed by 0.2 to 0.9:
        // 0.5 - 0.45 + ln(1 + e^-0.5) = 0.524077.
        let logit = Tensor::new(&[[0.5f32]], &Device::Cpu).unwrap();
        let got: f32 = smoothed_classification_loss(&logit, &[1], 0.2)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((got - 0.524_077).abs() < 1e-5, "{got}");
    }

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
