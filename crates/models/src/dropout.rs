//! Dropout with masks drawn from a seeded stream, so a run is reproducible.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{ModuleT, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// Where a model's dropout masks come from: a seed, and the count of masks
/// drawn so far, shared by every [`Dropout`] made from it. Mask `i` of a
/// layer is ChaCha8 stream `i` of a seed mixed from this seed and the
/// layer's place among the model's dropouts, so it depends on neither
/// thread timing nor anything but the seed and the step, and a resumed run
/// restores it with [`set_step`](Self::set_step). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct DropoutRng {
    state: Arc<RngState>,
}

#[derive(Debug, Default)]
struct RngState {
    seed: AtomicU64,
    step: AtomicU64,
    layers: AtomicU64,
}

impl DropoutRng {
    /// A stream for `seed`, no mask drawn yet.
    pub fn new(seed: u64) -> Self {
        let rng = Self::default();
        rng.reseed(seed);
        rng
    }

    /// Sets the seed every layer's masks derive from.
    pub fn reseed(&self, seed: u64) {
        self.state.seed.store(seed, Ordering::Relaxed);
    }

    /// How many masks have been drawn; with the seed it fixes every later
    /// mask.
    pub fn step(&self) -> u64 {
        self.state.step.load(Ordering::Relaxed)
    }

    /// Restores the count returned by [`step`](Self::step).
    pub fn set_step(&self, step: u64) {
        self.state.step.store(step, Ordering::Relaxed);
    }
}

/// Zeroes each element with probability `p` in train mode and scales the
/// rest by `1 / (1 - p)`, as `nn.Dropout`; the identity in eval mode. Its
/// masks come from a [`DropoutRng`].
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
    /// The layer's place among its model's dropouts.
    layer: u64,
    rng: DropoutRng,
}

/// A [`Dropout`] drawing its masks from `rng`, as the next of its layers.
///
/// # Errors
/// [`Error::Spec`] unless `0 <= p < 1`.
pub fn dropout(p: f64, rng: &DropoutRng) -> Result<Dropout> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::Spec {
            field: "dropout",
            rule: "must be in [0, 1)",
            got: p.to_string(),
        });
    }
    let layer = rng.state.layers.fetch_add(1, Ordering::Relaxed);
    Ok(Dropout {
        p,
        layer,
        rng: rng.clone(),
    })
}

impl Dropout {
    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    fn mask(&self, x: &Tensor) -> Result<Tensor> {
        let state = &self.rng.state;
        // Distinct layers get unrelated streams (the golden-ratio step
        // spreads the layer index over the seed's bits).
        let seed = state.seed.load(Ordering::Relaxed)
            ^ (self.layer + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(state.step.fetch_add(1, Ordering::Relaxed));
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
        Ok(Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        x * self.mask(x)?
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
    use candle_core::Device;

    #[test]
    fn masks_repeat_with_the_step_and_scale_the_kept_values() {
        let rng = DropoutRng::new(3);
        let d = dropout(0.25, &rng).unwrap();
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        assert_ne!(a, b);
        rng.set_step(0);
        let again: Vec<f32> = d.forward_t(&x, true).unwrap().to_vec1().unwrap();
        assert_eq!(a, again);
        let dropped = a.iter().filter(|&&v| v == 0.0).count();
        assert!((2300..2700).contains(&dropped), "{dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        assert_eq!(
            d.forward_t(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 10_000]
        );
        assert!(dropout(1.0, &rng).is_err());
    }

    #[test]
    fn layers_of_one_stream_and_other_seeds_draw_other_masks() {
        let x = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let draw = |d: &Dropout| d.forward_t(&x, true).unwrap().to_vec1::<f32>().unwrap();
        let rng = DropoutRng::new(3);
        let (first, second) = (dropout(0.5, &rng).unwrap(), dropout(0.5, &rng).unwrap());
        let a = draw(&first);
        rng.set_step(0);
        assert_ne!(a, draw(&second));
        rng.reseed(4);
        rng.set_step(0);
        assert_ne!(a, draw(&first));
    }
}
