//! Decibel conversion with `top_db` clamping, equal to torchaudio's `AmplitudeToDB`
//! and librosa's `power_to_db` / `amplitude_to_db`.
//!
//! # Conventions
//! `db = multiplier * log10(max(x, amin)) - multiplier * log10(max(ref, amin))`,
//! with `multiplier` 10 for power and 20 for amplitude; then, with `top_db`,
//! `db = max(db, max(db) - top_db)` where the maximum is taken over the one
//! spectrogram passed in (torchaudio per `(C, F, T)` item; librosa 0.11 over
//! the whole array: pass one spectrogram at a time to get the same).

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::error::invalid;

/// Parameters of the dB conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct DbConfig {
    /// Reference value that maps to 0 dB. Default: 1.0.
    #[cfg_attr(feature = "serde", serde(rename = "ref"))]
    pub ref_value: f32,
    /// Floor applied before the logarithm. Default: 1e-10 (torchaudio, librosa power).
    pub amin: f32,
    /// Dynamic range kept below the spectrogram's peak, in dB; `None` keeps all.
    /// Default: 80 (librosa, and every seed recipe).
    pub top_db: Option<f32>,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            ref_value: 1.0,
            amin: 1e-10,
            top_db: Some(80.0),
        }
    }
}

impl DbConfig {
    /// Checks that `amin` and `ref` are positive and `top_db` non-negative.
    ///
    /// # Errors
    /// Names the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.amin.is_finite() && self.amin > 0.0) {
            return Err(invalid("amin", format!("must be > 0, got {}", self.amin)));
        }
        if !(self.ref_value.is_finite() && self.ref_value > 0.0) {
            return Err(invalid(
                "ref",
                format!("must be > 0, got {}", self.ref_value),
            ));
        }
        if let Some(top) = self.top_db {
            if !(top.is_finite() && top >= 0.0) {
                return Err(invalid("top_db", format!("must be >= 0, got {top}")));
            }
        }
        Ok(())
    }

    /// Converts values in place with the given multiplier (10 power, 20 amplitude).
    pub(crate) fn convert_in_place(&self, values: &mut [f32], multiplier: f32) {
        let offset = multiplier * self.ref_value.max(self.amin).log10();
        let mut peak = f32::NEG_INFINITY;
        for v in values.iter_mut() {
            *v = multiplier * v.max(self.amin).log10() - offset;
            peak = peak.max(*v);
        }
        if let Some(top) = self.top_db {
            let floor = peak - top;
            values.iter_mut().for_each(|v| *v = v.max(floor));
        }
    }
}

/// `10 log10(S / ref)` in place, clamped to `top_db` below the peak.
///
/// # Errors
/// An invalid [`DbConfig`].
pub fn power_to_db(values: &mut [f32], config: &DbConfig) -> Result<()> {
    config.validate()?;
    config.convert_in_place(values, 10.0);
    Ok(())
}

/// `20 log10(S / ref)` in place, clamped to `top_db` below the peak
/// (torchaudio `AmplitudeToDB("magnitude")`).
///
/// # Errors
/// An invalid [`DbConfig`].
pub fn amplitude_to_db(values: &mut [f32], config: &DbConfig) -> Result<()> {
    config.validate()?;
    config.convert_in_place(values, 20.0);
    Ok(())
}

/// Inverse of [`power_to_db`] (without the clamp): `ref * 10^(db / 10)`.
pub fn db_to_power(values: &mut [f32], ref_value: f32) {
    values
        .iter_mut()
        .for_each(|v| *v = ref_value * 10f32.powf(*v / 10.0));
}

/// Inverse of [`amplitude_to_db`] (without the clamp): `ref * 10^(db / 20)`.
pub fn db_to_amplitude(values: &mut [f32], ref_value: f32) {
    values
        .iter_mut()
        .for_each(|v| *v = ref_value * 10f32.powf(*v / 20.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_to_db_of_decades_is_tens() {
        let mut x = [1.0, 10.0, 100.0, 0.1, 0.0];
        let cfg = DbConfig {
            top_db: None,
            ..Default::default()
        };
        power_to_db(&mut x, &cfg).unwrap();
        assert_eq!(x, [0.0, 10.0, 20.0, -10.0, -100.0]);
    }

    #[test]
    fn amplitude_to_db_doubles_and_respects_ref() {
        let mut x = [1.0, 10.0, 0.5];
        let cfg = DbConfig {
            ref_value: 10.0,
            top_db: None,
            ..Default::default()
        };
        amplitude_to_db(&mut x, &cfg).unwrap();
        assert!((x[0] + 20.0).abs() < 1e-5 && x[1].abs() < 1e-5);
        assert!((x[2] - 20.0 * 0.05f32.log10()).abs() < 1e-4);
    }

    #[test]
    fn top_db_clamps_below_the_peak() {
        let mut x = [1e3, 1.0, 1e-9];
        power_to_db(
            &mut x,
            &DbConfig {
                top_db: Some(40.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(x, [30.0, 0.0, -10.0]);
    }

    #[test]
    fn db_round_trips_to_power_and_amplitude() {
        let orig = [1e-4f32, 0.3, 1.0, 7.5, 1e4];
        let cfg = DbConfig {
            ref_value: 2.0,
            top_db: None,
            ..Default::default()
        };
        let mut x = orig;
        power_to_db(&mut x, &cfg).unwrap();
        db_to_power(&mut x, 2.0);
        let mut y = orig;
        amplitude_to_db(&mut y, &cfg).unwrap();
        db_to_amplitude(&mut y, 2.0);
        for ((a, b), c) in orig.iter().zip(x).zip(y) {
            assert!((a - b).abs() <= 1e-5 * a && (a - c).abs() <= 1e-5 * a);
        }
    }

    #[test]
    fn invalid_config_names_the_field() {
        let mut x = [1.0];
        let bad = DbConfig {
            amin: 0.0,
            ..Default::default()
        };
        assert_eq!(
            power_to_db(&mut x, &bad).unwrap_err().to_string(),
            "invalid amin: must be > 0, got 0"
        );
        let bad = DbConfig {
            top_db: Some(-1.0),
            ..Default::default()
        };
        assert!(
            power_to_db(&mut x, &bad)
                .unwrap_err()
                .to_string()
                .starts_with("invalid top_db")
        );
    }
}
