//! Decibel conversion with `top_db` clamping, equal to torchaudio's `AmplitudeToDB`
//! and librosa's `power_to_db` / `amplitude_to_db`.
//!
//! # Conventions
//! `db = multiplier * log10(max(x, amin)) - multiplier * log10(max(ref, amin))`,
//! with `multiplier` 10 for power and 20 for amplitude; then, with `top_db`,
//! `db = max(db, max(db) - top_db)` where the maximum is taken over the one
//! spectrogram passed in (torchaudio per `(C, F, T)` item; librosa 0.11 over
//! the whole array: pass one spectrogram at a time to get the same).
//!
//! A stream does not know its peak yet, so [`DbClamp::Reference`] offers a
//! floor fixed at `top_db` below `ref` instead, which each frame can apply
//! alone; [`DbConfig::clamp_to_peak`] applies the peak clamp afterwards to a
//! window of frames converted without it.

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
    /// What `top_db` counts down from. Default: the peak.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "DbClamp::is_peak"))]
    pub clamp: DbClamp,
}

/// The level `top_db` counts down from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DbClamp {
    /// The peak of the spectrogram converted (torchaudio and librosa): a
    /// clip's peak offline, the peak of the model's window in a stream.
    #[default]
    Peak,
    /// `ref` itself: values below `-top_db` dB are raised to it. Every
    /// frame is clamped alone, so a stream gives the offline values frame
    /// by frame, and a recurrent model can carry its state across windows.
    Reference,
}

impl DbClamp {
    /// Whether this is the default, [`DbClamp::Peak`] (left out of saved
    /// configs, so caches keyed by them stay valid).
    pub fn is_peak(&self) -> bool {
        *self == Self::Peak
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            ref_value: 1.0,
            amin: 1e-10,
            top_db: Some(80.0),
            clamp: DbClamp::Peak,
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

    /// Converts values in place with the given multiplier (10 power, 20
    /// amplitude), clamped as [`Self::clamp`] says.
    #[inline(always)]
    pub(crate) fn convert_in_place(&self, values: &mut [f32], multiplier: f32) {
        self.convert_inner(values, multiplier, Some(self.clamp));
    }

    /// Converts values in place, applying `top_db` only with
    /// [`DbClamp::Reference`]: what one frame of a stream can know.
    #[inline(always)]
    pub(crate) fn convert_frame(&self, values: &mut [f32], multiplier: f32) {
        let clamp = match self.clamp {
            DbClamp::Reference => Some(DbClamp::Reference),
            DbClamp::Peak => None,
        };
        self.convert_inner(values, multiplier, clamp);
    }

    /// The conversion, clamped as `clamp` says (`None`: not at all).
    #[inline(always)]
    fn convert_inner(&self, values: &mut [f32], multiplier: f32, clamp: Option<DbClamp>) {
        let amin = self.amin;
        let offset = multiplier * self.ref_value.max(amin).log10();
        let top = self.top_db.filter(|_| clamp.is_some());
        if amin < f32::MIN_POSITIVE {
            // The fast logarithm needs normal inputs; a subnormal floor takes libm's.
            values
                .iter_mut()
                .for_each(|v| *v = multiplier * v.max(amin).log10() - offset);
            if let Some(top) = top {
                let peak = match clamp {
                    Some(DbClamp::Peak) => values.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
                    _ => 0.0,
                };
                values.iter_mut().for_each(|v| *v = v.max(peak - top));
            }
            return;
        }
        // The logarithm is monotonic, so the peak in dB is the dB of the peak,
        // and the clamp can join the conversion in one vectorised pass.
        let scale = multiplier * std::f32::consts::LOG10_E;
        let to_db = |x: f32| scale * ln_normal(x.max(amin)) - offset;
        let floor = match (top, clamp) {
            (Some(top), Some(DbClamp::Peak)) => to_db(max(values)) - top,
            (Some(top), _) => -top,
            (None, _) => f32::NEG_INFINITY,
        };
        values.iter_mut().for_each(|v| *v = to_db(*v).max(floor));
    }

    /// Applies a [`DbClamp::Peak`] `top_db` to dB values converted without
    /// it (a stream's frames of one model window): afterwards they equal an
    /// offline conversion of the same window. Does nothing for
    /// [`DbClamp::Reference`], which each frame applied already, or without
    /// `top_db`.
    pub fn clamp_to_peak(&self, values: &mut [f32]) {
        if let (Some(top), DbClamp::Peak) = (self.top_db, self.clamp) {
            let floor = max(values) - top;
            values.iter_mut().for_each(|v| *v = v.max(floor));
        }
    }
}

/// Largest value, with eight running maxima so the loop vectorises.
#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .cloned()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    lanes.into_iter().fold(tail, f32::max)
}

/// Natural logarithm of a positive normal `f32`, within about 2 ulp of libm's
/// (Cephes `logf`), written without branches so loops over it vectorise. Plain
/// multiply-adds, not `mul_add`, which is a library call without target FMA.
#[inline(always)]
fn ln_normal(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = m * 2^e with m in [0.5, 1).
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Move m to [sqrt(1/2), sqrt(2)) and take log(1 + f) for f = m - 1.
    let low = m < SQRT_HALF;
    let e = (e - low as i32) as f32;
    let f = if low { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let p = 7.037_683_6e-2_f32;
    let p = p * f + -1.151_461_1e-1;
    let p = p * f + 1.167_699_9e-1;
    let p = p * f + -1.242_014_1e-1;
    let p = p * f + 1.424_932_3e-1;
    let p = p * f + -1.666_805_8e-1;
    let p = p * f + 2.000_071_5e-1;
    let p = p * f + -2.499_999_4e-1;
    let p = p * f + 0.333_333_3;
    let y = p * f * z - 2.121_944_4e-4 * e - 0.5 * z;
    f + y + 0.693_359_4 * e
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

    fn assert_close(got: &[f32], want: &[f32]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn power_to_db_of_decades_is_tens() {
        let mut x = [1.0, 10.0, 100.0, 0.1, 0.0];
        let cfg = DbConfig {
            top_db: None,
            ..Default::default()
        };
        power_to_db(&mut x, &cfg).unwrap();
        assert_close(&x, &[0.0, 10.0, 20.0, -10.0, -100.0]);
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
        assert_close(&x, &[30.0, 0.0, -10.0]);
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
    fn fast_log_is_within_a_few_ulp_of_libm_over_the_whole_range() {
        let mut x = f32::MIN_POSITIVE;
        while x < f32::MAX / 1.01 {
            let (got, want) = (ln_normal(x), x.ln());
            assert!(
                (got - want).abs() <= 3.0 * f32::EPSILON * want.abs().max(1.0),
                "ln({x}): {got} vs {want}"
            );
            x *= 1.000_37;
        }
    }

    #[test]
    fn subnormal_floors_and_no_clamp_still_convert() {
        let mut x = [1e-40, 1.0, 100.0];
        power_to_db(
            &mut x,
            &DbConfig {
                amin: 1e-42,
                top_db: Some(20.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(x, [0.0, 0.0, 20.0]);
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
