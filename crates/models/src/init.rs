//! Seeded parameter initialisation with PyTorch's default schemes.
//!
//! candle's CPU RNG cannot be seeded, so every parameter is drawn from a
//! ChaCha8 stream owned by the [`ParamStore`](crate::ParamStore), in the
//! order the layers are built: the same seed gives the same weights.

/// How a parameter's initial values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every value equal to this constant.
    Const(f64),
    /// `U(-bound, bound)`.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// `N(0, std^2)`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
}

impl Init {
    /// PyTorch's default for conv and linear weights,
    /// `kaiming_uniform_(a = sqrt(5))`, which is `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`;
    /// PyTorch's default bias uses the same bound.
    pub fn fan_in_uniform(fan_in: usize) -> Self {
        Self::Uniform {
            bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
        }
    }

    /// `kaiming_normal_(a, mode = "fan_in", nonlinearity = "leaky_relu")`:
    /// `N(0, 2 / ((1 + a^2) fan_in))`, as seed 001 initialises its convolutions.
    pub fn kaiming_normal(a: f64, fan_in: usize) -> Self {
        Self::Normal {
            std: (2.0 / (1.0 + a * a)).sqrt() / (fan_in.max(1) as f64).sqrt(),
        }
    }
}

impl From<Init> for candle_nn::Init {
    /// The same scheme as candle-nn names it; a [`ParamStore`](crate::ParamStore)
    /// draws it bit for bit as hark always has.
    fn from(init: Init) -> Self {
        match init {
            Init::Const(v) => Self::Const(v),
            Init::Uniform { bound } => Self::Uniform {
                lo: -bound,
                up: bound,
            },
            Init::Normal { std } => Self::Randn {
                mean: 0.0,
                stdev: std,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn draw(init: Init, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        crate::params::sample(init.into(), &candle_core::Shape::from(n), rng).unwrap()
    }

    #[test]
    fn draws_have_the_scheme_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 200_000;
        let u = draw(Init::fan_in_uniform(9), n, &mut rng);
        assert!(u.iter().all(|v| v.abs() <= 1.0 / 3.0));
        let var = u.iter().map(|v| (v * v) as f64).sum::<f64>() / n as f64;
        assert!((var - 1.0 / 27.0).abs() < 1e-3, "{var}");
        let Init::Normal { std } = Init::kaiming_normal(0.1, 50) else {
            unreachable!()
        };
        assert!((std - 0.199007).abs() < 1e-6);
        let g = draw(Init::Normal { std: 2.0 }, n, &mut rng);
        let mean = g.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = g.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 4.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert_eq!(draw(Init::Const(1.5), 3, &mut rng), vec![1.5; 3]);
    }
}
