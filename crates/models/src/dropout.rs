//! Dropout with masks drawn from a seeded stream, so a run is reproducible.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Tensor;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, ParamBuilder, Result};

/// Zeroes each element with probability `p` in train mode and scales the
/// rest by `1 / (1 - p)`, as `nn.Dropout`; the identity in eval mode.
///
/// Mask `i` of a model comes from the layer's seed and the model's count of
/// masks drawn (ChaCha8 stream `i`), so it depends on neither thread timing
/// nor anything but the seed and the step, and a resumed run can restore it
/// ([`ParamStore::set_dropout_step`](crate::ParamStore::set_dropout_step)).
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
    seed: u64,
    step: Arc<AtomicU64>,
}

/// A [`Dropout`] seeded from `pb`'s store.
///
/// # Errors
/// [`Error::Spec`] unless `0 <= p < 1`.
pub fn dropout(p: f64, pb: &ParamBuilder) -> Result<Dropout> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Spec {
            field: "dropout",
            rule: "must be in [0, 1)",
            got: p.to_string(),
        });
    }
    let (seed, step) = pb.dropout_rng();
    Ok(Dropout { p, seed, step })
}

impl Dropout {
    /// Applies the layer.
    ///
    /// # Errors
    /// Only from the tensor ops.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.step.fetch_add(1, Ordering::Relaxed));
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f64>() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        Ok((x * mask)?)
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl fmt::Display for Dropout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dropout(p={})", self.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use candle_core::Device;

    #[test]
    fn masks_repeat_with_the_step_and_scale_the_kept_values() {
        let store = ParamStore::new(3);
        let d = dropout(0.25, &store.root()).unwrap();
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        assert_ne!(a, b);
        store.set_dropout_step(0);
        let again: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        assert_eq!(a, again);
        let dropped = a.iter().filter(|&&v| v == 0.0).count();
        assert!((2300..2700).contains(&dropped), "{dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        assert_eq!(
            d.forward_t(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 10_000]
        );
        assert!(dropout(1.0, &store.root()).is_err());
    }
}
