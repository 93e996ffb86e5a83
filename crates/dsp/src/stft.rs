//! Short-time Fourier transform with plan and buffer reuse, equal to `torch.stft`.
//!
//! # Conventions
//! - Frames: with `center`, the signal is padded by `n_fft / 2` on both sides and
//!   frame `t` starts at `t * hop_length` of the padded signal, so there are
//!   `1 + len / hop_length` frames (torch, librosa). Without `center`, there are
//!   `1 + (len - n_fft) / hop_length` frames.
//! - Padding: `reflect` mirrors without repeating the edge sample (`numpy.pad`
//!   `reflect`); signals shorter than the pad reflect back and forth as numpy does
//!   (torch rejects them). `constant` pads with zeros (librosa >= 0.9's default).
//! - Scaling: none (the forward DFT sum), or divided by `sqrt(sum(window^2))`
//!   with `normalized` (torchaudio's `normalized=True`).
//! - Output: bins `0..=n_fft / 2`, row-major `[n_freqs, n_frames]`.
//!
//! # Speed
//! Two real frames go through one complex FFT of `n_fft` points (frame `t`
//! as the real part, `t + 1` as the imaginary part) and are separated by the
//! DFT's conjugate symmetry, which costs less than a real-FFT's twiddle pass.

use std::fmt;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::{buffer_len_mismatch, check_signal, invalid};
use crate::window::{WindowKind, padded_window};
use crate::{DspError, Result, Spectrogram};

/// How the signal is extended at both ends when `center` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PadMode {
    /// Mirror the signal without repeating the edge sample (torch's default).
    #[default]
    Reflect,
    /// Pad with zeros (librosa's default since 0.9).
    Constant,
}

/// Framing and window of an STFT, named as in `torch.stft` and torchaudio.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct StftConfig {
    /// FFT size in samples. Default: 400 (torchaudio).
    pub n_fft: usize,
    /// Window length in samples, at most `n_fft`. Default: `None` = `n_fft`.
    pub win_length: Option<usize>,
    /// Samples between frame starts. Default: `None` = `win_length / 2`.
    pub hop_length: Option<usize>,
    /// Window shape. Default: Hann.
    pub window: WindowKind,
    /// Periodic (true) or symmetric (false) window. Default: true.
    pub window_periodic: bool,
    /// Pad so frame `t` is centred on sample `t * hop_length`. Default: true.
    pub center: bool,
    /// Padding used with `center`. Default: reflect.
    pub pad_mode: PadMode,
    /// Divide by the window's L2 norm. Default: false.
    pub normalized: bool,
}

impl Default for StftConfig {
    fn default() -> Self {
        Self {
            n_fft: 400,
            win_length: None,
            hop_length: None,
            window: WindowKind::Hann,
            window_periodic: true,
            center: true,
            pad_mode: PadMode::Reflect,
            normalized: false,
        }
    }
}

/// Reusable buffers for one thread of STFT work; make one with [`StftPlan::make_scratch`].
#[derive(Debug, Clone)]
pub struct StftScratch {
    /// The packed pair of frames, transformed in place.
    buf: Vec<Complex32>,
    fft: Vec<Complex32>,
    /// Padded samples of edge frames, before windowing.
    edge: [Vec<f32>; 2],
    /// Separated spectra of the two frames.
    spectra: [Vec<Complex32>; 2],
    /// `|X|^power` of the two frames, `2 * n_freqs`.
    power: Vec<f32>,
}

/// A planned STFT: window, FFT plan and framing built once, used for any number
/// of signals. `Send + Sync`; share it through `Arc` and give each thread its own
/// [`StftScratch`].
#[derive(Clone)]
pub struct StftPlan {
    n_fft: usize,
    hop_length: usize,
    center: bool,
    pad_mode: PadMode,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl fmt::Debug for StftPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StftPlan")
            .field("n_fft", &self.n_fft)
            .field("hop_length", &self.hop_length)
            .field("center", &self.center)
            .field("pad_mode", &self.pad_mode)
            .finish_non_exhaustive()
    }
}

impl StftPlan {
    /// Validates `config` and plans the FFT.
    ///
    /// # Errors
    /// `n_fft`, `win_length` or `hop_length` of 0, or `win_length > n_fft`.
    pub fn new(config: &StftConfig) -> Result<Self> {
        let n_fft = config.n_fft;
        if n_fft == 0 {
            return Err(invalid("n_fft", "must be > 0, got 0"));
        }
        let win_length = config.win_length.unwrap_or(n_fft);
        if win_length == 0 || win_length > n_fft {
            return Err(invalid(
                "win_length",
                format!("must be in 1..=n_fft ({n_fft}), got {win_length}"),
            ));
        }
        let hop_length = config.hop_length.unwrap_or((win_length / 2).max(1));
        if hop_length == 0 {
            return Err(invalid("hop_length", "must be > 0, got 0"));
        }
        let mut window = padded_window(config.window, win_length, n_fft, config.window_periodic);
        if config.normalized {
            // Scaling the window scales every DFT output by the same factor.
            let norm = window.iter().map(|w| w * w).sum::<f32>().sqrt();
            window.iter_mut().for_each(|w| *w /= norm);
        }
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n_fft);
        Ok(Self {
            n_fft,
            hop_length,
            center: config.center,
            pad_mode: config.pad_mode,
            window,
            fft,
        })
    }

    /// FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Samples between frames.
    pub fn hop_length(&self) -> usize {
        self.hop_length
    }

    /// Frequency bins per frame: `n_fft / 2 + 1`.
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames produced for a signal of `len` samples (0 where it is too short).
    pub fn n_frames(&self, len: usize) -> usize {
        let padded = if self.center {
            len + 2 * (self.n_fft / 2)
        } else {
            len
        };
        if len == 0 || padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop_length
        }
    }

    /// Allocates the buffers [`Self::power_into`] and friends work in.
    pub fn make_scratch(&self) -> StftScratch {
        let spectrum = vec![Complex32::default(); self.n_freqs()];
        StftScratch {
            buf: vec![Complex32::default(); self.n_fft],
            fft: vec![Complex32::default(); self.fft.get_inplace_scratch_len()],
            edge: [vec![0.0; self.n_fft], vec![0.0; self.n_fft]],
            spectra: [spectrum.clone(), spectrum],
            power: vec![0.0; 2 * self.n_freqs()],
        }
    }

    /// Checks a signal and returns its frame count.
    pub(crate) fn validate(&self, signal: &[f32]) -> Result<usize> {
        check_signal(signal)?;
        match self.n_frames(signal.len()) {
            0 => Err(DspError::SignalTooShort {
                len: signal.len(),
                needed: self.n_fft,
            }),
            n => Ok(n),
        }
    }

    /// Transforms frames `t` and `t + 1` (if `pair`) of a validated signal
    /// in one complex FFT, leaving `z = fft(a + ib)` in `scratch.buf`.
    #[inline(always)]
    fn transform_pair(&self, signal: &[f32], t: usize, pair: bool, scratch: &mut StftScratch) {
        let StftScratch { buf, fft, edge, .. } = scratch;
        let [edge_a, edge_b] = edge;
        let a = self.frame_samples(signal, t, edge_a);
        if pair {
            let b = self.frame_samples(signal, t + 1, edge_b);
            for (((o, &x), &y), &w) in buf.iter_mut().zip(a).zip(b).zip(&self.window) {
                *o = Complex32::new(x * w, y * w);
            }
        } else {
            for ((o, &x), &w) in buf.iter_mut().zip(a).zip(&self.window) {
                *o = Complex32::new(x * w, 0.0);
            }
        }
        self.fft.process_with_scratch(buf, fft);
    }

    /// Checks that `scratch` was made by a plan of this size.
    fn check_scratch(&self, scratch: &StftScratch) {
        if scratch.buf.len() != self.n_fft {
            buffer_len_mismatch("stft scratch", self.n_fft, scratch.buf.len());
        }
    }

    /// Runs the STFT of a validated signal and hands each frame's spectrum to
    /// `f`, in frame order.
    ///
    /// # Panics
    /// If `scratch` was made by a plan of another size.
    pub(crate) fn for_each_frame(
        &self,
        signal: &[f32],
        scratch: &mut StftScratch,
        mut f: impl FnMut(usize, &[Complex32]),
    ) {
        self.check_scratch(scratch);
        let frames = self.n_frames(signal.len());
        for t in (0..frames).step_by(2) {
            let pair = t + 1 < frames;
            self.transform_pair(signal, t, pair, scratch);
            let StftScratch { buf, spectra, .. } = scratch;
            let [spec_a, spec_b] = spectra;
            // With z = fft(a + ib): A[k] = (z[k] + conj z[n-k]) / 2 and
            // B[k] = (z[k] - conj z[n-k]) / 2i.
            let (z0, rest) = buf.split_first().expect("n_fft > 0");
            spec_a[0] = Complex32::new(z0.re, 0.0);
            spec_b[0] = Complex32::new(z0.im, 0.0);
            let mirrored = rest.iter().rev();
            for (((sa, sb), &u), &v) in spec_a[1..]
                .iter_mut()
                .zip(&mut spec_b[1..])
                .zip(rest)
                .zip(mirrored)
            {
                *sa = Complex32::new(0.5 * (u.re + v.re), 0.5 * (u.im - v.im));
                *sb = Complex32::new(0.5 * (u.im + v.im), 0.5 * (v.re - u.re));
            }
            f(t, spec_a);
            if pair {
                f(t + 1, spec_b);
            }
        }
    }

    /// Transforms frames `t` and `t + 1` (if there is one) of a validated
    /// signal and writes their `|X|^power` to `out[k * stride + col]` and
    /// `out[k * stride + col + 1]`.
    ///
    /// # Panics
    /// If `scratch` was made by a plan of another size, or `out` is too short.
    #[inline(always)]
    pub(crate) fn power_pair_into(
        &self,
        signal: &[f32],
        t: usize,
        power: Power,
        scratch: &mut StftScratch,
        out: &mut [f32],
        (stride, col): (usize, usize),
    ) {
        self.check_scratch(scratch);
        let pair = t + 1 < self.n_frames(signal.len());
        self.transform_pair(signal, t, pair, scratch);
        let (pa, pb) = scratch.power.split_at_mut(self.n_freqs());
        let (z0, rest) = scratch.buf.split_first().expect("n_fft > 0");
        pa[0] = z0.re * z0.re;
        pb[0] = z0.im * z0.im;
        // With z = fft(a + ib): |A[k]|^2 = |z[k] + conj z[n-k]|^2 / 4 and
        // |B[k]|^2 = |z[k] - conj z[n-k]|^2 / 4.
        let mirrored = rest.iter().rev();
        for (((ea, eb), &u), &v) in pa[1..].iter_mut().zip(&mut pb[1..]).zip(rest).zip(mirrored) {
            let (sr, di) = (u.re + v.re, u.im - v.im);
            let (si, dr) = (u.im + v.im, u.re - v.re);
            *ea = 0.25 * (sr * sr + di * di);
            *eb = 0.25 * (si * si + dr * dr);
        }
        let rows = out[col..].chunks_mut(stride);
        match power {
            Power::Energy => store_pair(pa, pb, pair, rows, |e| e),
            Power::Magnitude => store_pair(pa, pb, pair, rows, f32::sqrt),
            Power::Other(half) => store_pair(pa, pb, pair, rows, |e| e.powf(half)),
        }
    }

    /// The `n_fft` unwindowed samples of frame `t`: a slice of the signal, or,
    /// for frames that reach into the padding, `edge` filled through it.
    fn frame_samples<'a>(&self, signal: &'a [f32], t: usize, edge: &'a mut [f32]) -> &'a [f32] {
        let pad = if self.center { self.n_fft / 2 } else { 0 };
        let start = (t * self.hop_length) as isize - pad as isize;
        if start >= 0 && start as usize + self.n_fft <= signal.len() {
            return &signal[start as usize..start as usize + self.n_fft];
        }
        for (i, o) in edge.iter_mut().enumerate() {
            *o = self.padded_sample(signal, start + i as isize);
        }
        edge
    }

    /// The sample at `index` of the signal extended by the plan's pad mode.
    fn padded_sample(&self, signal: &[f32], index: isize) -> f32 {
        let len = signal.len() as isize;
        if (0..len).contains(&index) {
            return signal[index as usize];
        }
        match self.pad_mode {
            PadMode::Constant => 0.0,
            PadMode::Reflect if len == 1 => signal[0],
            PadMode::Reflect => {
                let period = 2 * (len - 1);
                let i = index.rem_euclid(period);
                signal[if i < len { i } else { period - i } as usize]
            }
        }
    }

    /// Complex STFT into `out`, row-major `[n_freqs, n_frames]`.
    ///
    /// # Errors
    /// An empty signal, one with NaN or infinite samples, or (without `center`)
    /// one shorter than `n_fft`.
    ///
    /// # Panics
    /// If `out.len() != n_freqs * n_frames(signal.len())` or `scratch` is from
    /// another plan.
    pub fn complex_into(
        &self,
        signal: &[f32],
        out: &mut [Complex32],
        scratch: &mut StftScratch,
    ) -> Result<()> {
        let frames = self.validate(signal)?;
        check_out_len(out.len(), self.n_freqs() * frames);
        self.for_each_frame(signal, scratch, |t, spectrum| {
            for (k, &c) in spectrum.iter().enumerate() {
                out[k * frames + t] = c;
            }
        });
        Ok(())
    }

    /// Complex STFT, allocating its output. See [`Self::complex_into`].
    ///
    /// # Errors
    /// As [`Self::complex_into`].
    pub fn complex(&self, signal: &[f32]) -> Result<Spectrogram<Complex32>> {
        // Sized before validation, which `complex_into` does first.
        let frames = self.n_frames(signal.len());
        let mut out = vec![Complex32::default(); self.n_freqs() * frames];
        self.complex_into(signal, &mut out, &mut self.make_scratch())?;
        Ok(Spectrogram::from_vec(out, self.n_freqs(), frames))
    }

    /// `|STFT|^power` into `out`, row-major `[n_freqs, n_frames]`: power 1 is the
    /// magnitude, 2 the power spectrogram (torchaudio `Spectrogram(power=..)`).
    ///
    /// # Errors
    /// As [`Self::complex_into`], and a `power` that is not finite and > 0.
    ///
    /// # Panics
    /// As [`Self::complex_into`].
    pub fn power_into(
        &self,
        signal: &[f32],
        power: f32,
        out: &mut [f32],
        scratch: &mut StftScratch,
    ) -> Result<()> {
        let power = Power::new(power)?;
        let frames = self.validate(signal)?;
        check_out_len(out.len(), self.n_freqs() * frames);
        for t in (0..frames).step_by(2) {
            self.power_pair_into(signal, t, power, scratch, out, (frames, t));
        }
        Ok(())
    }

    /// `|STFT|^power`, allocating its output. See [`Self::power_into`].
    ///
    /// # Errors
    /// As [`Self::power_into`].
    pub fn power(&self, signal: &[f32], power: f32) -> Result<Spectrogram> {
        // Sized before validation, which `power_into` does first.
        let frames = self.n_frames(signal.len());
        let mut out = vec![0.0; self.n_freqs() * frames];
        self.power_into(signal, power, &mut out, &mut self.make_scratch())?;
        Ok(Spectrogram::from_vec(out, self.n_freqs(), frames))
    }
}

/// The exponent applied to magnitudes, with fast paths for 1 and 2.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Power {
    Magnitude,
    Energy,
    Other(f32),
}

impl Power {
    /// Validates a torchaudio-style `power`.
    pub(crate) fn new(power: f32) -> Result<Self> {
        if !(power.is_finite() && power > 0.0) {
            return Err(invalid(
                "power",
                format!("must be finite and > 0, got {power}"),
            ));
        }
        Ok(match power {
            1.0 => Self::Magnitude,
            2.0 => Self::Energy,
            p => Self::Other(p / 2.0),
        })
    }
}

/// Stores `pow(a[k])` (and `pow(b[k])` for a pair) at the start of row `k`.
#[inline(always)]
fn store_pair<'a>(
    a: &[f32],
    b: &[f32],
    pair: bool,
    rows: impl Iterator<Item = &'a mut [f32]>,
    pow: impl Fn(f32) -> f32,
) {
    if pair {
        for ((row, &x), &y) in rows.zip(a).zip(b) {
            row[..2].copy_from_slice(&[pow(x), pow(y)]);
        }
    } else {
        for (row, &x) in rows.zip(a) {
            row[0] = pow(x);
        }
    }
}

fn check_out_len(got: usize, expected: usize) {
    if got != expected {
        buffer_len_mismatch("stft output", expected, got);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n_fft: usize, hop: usize, center: bool, pad_mode: PadMode) -> StftPlan {
        StftPlan::new(&StftConfig {
            n_fft,
            hop_length: Some(hop),
            center,
            pad_mode,
            ..Default::default()
        })
        .unwrap()
    }

    /// The textbook DFT of one padded, windowed frame, in f64.
    fn slow_dft(frame: &[f64]) -> Vec<(f64, f64)> {
        let n = frame.len();
        (0..=n / 2)
            .map(|k| {
                frame
                    .iter()
                    .enumerate()
                    .fold((0.0, 0.0), |(re, im), (i, &x)| {
                        let a = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                        (re + x * a.cos(), im + x * a.sin())
                    })
            })
            .collect()
    }

    #[test]
    fn complex_stft_matches_a_slow_dft_for_odd_and_even_sizes() {
        let signal: Vec<f32> = (0..97)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for n_fft in [8, 15, 16, 33] {
            for pad_mode in [PadMode::Reflect, PadMode::Constant] {
                let p = plan(n_fft, 5, true, pad_mode);
                let spec = p.complex(&signal).unwrap();
                let w = padded_window(WindowKind::Hann, n_fft, n_fft, true);
                for t in 0..spec.frames() {
                    let frame: Vec<f64> = (0..n_fft)
                        .map(|i| {
                            let idx = (t * 5 + i) as isize - (n_fft / 2) as isize;
                            p.padded_sample(&signal, idx) as f64 * w[i] as f64
                        })
                        .collect();
                    for (k, (re, im)) in slow_dft(&frame).into_iter().enumerate() {
                        let c = spec.get(k, t);
                        assert!((c.re as f64 - re).abs() < 1e-4, "n_fft {n_fft} bin {k}");
                        assert!((c.im as f64 - im).abs() < 1e-4, "n_fft {n_fft} bin {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn reflect_padding_mirrors_both_ends_without_repeating_the_edge() {
        let p = plan(8, 4, true, PadMode::Reflect);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let got: Vec<f32> = (-4..10).map(|i| p.padded_sample(&x, i)).collect();
        // numpy.pad([1..6], 4, mode="reflect")
        assert_eq!(
            got,
            [
                5.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 5.0, 4.0, 3.0, 2.0
            ]
        );
        // A pad longer than the signal reflects back and forth, as numpy does.
        let got: Vec<f32> = (-5..0)
            .map(|i| p.padded_sample(&[1.0, 2.0, 3.0], i))
            .collect();
        assert_eq!(got, [2.0, 1.0, 2.0, 3.0, 2.0]);
    }

    #[test]
    fn constant_padding_is_zero() {
        let p = plan(8, 4, true, PadMode::Constant);
        assert_eq!(p.padded_sample(&[1.0, 2.0], -1), 0.0);
        assert_eq!(p.padded_sample(&[1.0, 2.0], 2), 0.0);
    }

    #[test]
    fn parseval_holds_for_each_rectangular_frame() {
        // Without a window, sum |x|^2 = (|X0|^2 + 2 sum |Xk|^2 + |X_{N/2}|^2) / N.
        let n = 64;
        let p = StftPlan::new(&StftConfig {
            n_fft: n,
            hop_length: Some(n),
            window: WindowKind::Rectangular,
            center: false,
            ..Default::default()
        })
        .unwrap();
        let x: Vec<f32> = (0..3 * n)
            .map(|i| ((i as f32) * 0.37).sin() + 0.1)
            .collect();
        let power = p.power(&x, 2.0).unwrap();
        for t in 0..3 {
            let time: f64 = x[t * n..(t + 1) * n].iter().map(|v| (v * v) as f64).sum();
            let freq: f64 = (0..p.n_freqs())
                .map(|k| {
                    let w = if k == 0 || k == n / 2 { 1.0 } else { 2.0 };
                    w * *power.get(k, t) as f64
                })
                .sum::<f64>()
                / n as f64;
            assert!(
                (time - freq).abs() / time < 1e-5,
                "frame {t}: {time} vs {freq}"
            );
        }
    }

    #[test]
    fn frame_counts_follow_torch() {
        let p = plan(1024, 512, true, PadMode::Reflect);
        assert_eq!(p.n_frames(22050), 44);
        assert_eq!(p.n_frames(88200), 173);
        let p = plan(1024, 512, false, PadMode::Reflect);
        assert_eq!(p.n_frames(1023), 0);
        assert_eq!(p.n_frames(1024), 1);
        assert_eq!(p.n_frames(1536), 2);
    }

    #[test]
    fn magnitude_is_the_square_root_of_power() {
        let p = plan(32, 8, true, PadMode::Reflect);
        let x: Vec<f32> = (0..200).map(|i| (i as f32 * 0.1).cos()).collect();
        let mag = p.power(&x, 1.0).unwrap();
        let pow = p.power(&x, 2.0).unwrap();
        let p3 = p.power(&x, 3.0).unwrap();
        for ((m, e), c) in mag.as_slice().iter().zip(pow.as_slice()).zip(p3.as_slice()) {
            assert!((m * m - e).abs() <= 1e-4 * e.max(1.0));
            assert!((m.powi(3) - c).abs() <= 1e-4 * c.max(1.0));
        }
    }

    #[test]
    fn normalized_divides_by_the_window_norm() {
        let x: Vec<f32> = (0..300).map(|i| (i as f32 * 0.05).sin()).collect();
        let cfg = StftConfig {
            n_fft: 64,
            ..Default::default()
        };
        let plain = StftPlan::new(&cfg).unwrap().power(&x, 2.0).unwrap();
        let normed = StftPlan::new(&StftConfig {
            normalized: true,
            ..cfg
        })
        .unwrap()
        .power(&x, 2.0)
        .unwrap();
        // Periodic Hann of length N has sum(w^2) = 3N/8.
        let energy = 3.0 * 64.0 / 8.0;
        for (a, b) in plain.as_slice().iter().zip(normed.as_slice()) {
            assert!((a / energy - b).abs() <= 1e-5 * a.max(1.0));
        }
    }

    #[test]
    fn bad_parameters_are_errors_naming_the_field() {
        let err = |cfg: StftConfig| StftPlan::new(&cfg).unwrap_err().to_string();
        assert_eq!(
            err(StftConfig {
                n_fft: 0,
                ..Default::default()
            }),
            "invalid n_fft: must be > 0, got 0"
        );
        assert_eq!(
            err(StftConfig {
                hop_length: Some(0),
                ..Default::default()
            }),
            "invalid hop_length: must be > 0, got 0"
        );
        assert_eq!(
            err(StftConfig {
                win_length: Some(401),
                ..Default::default()
            }),
            "invalid win_length: must be in 1..=n_fft (400), got 401"
        );
        let p = plan(16, 4, true, PadMode::Reflect);
        assert!(
            p.power(&[1.0], 0.0)
                .unwrap_err()
                .to_string()
                .contains("power")
        );
    }

    #[test]
    fn bad_signals_are_errors() {
        let p = plan(16, 4, true, PadMode::Reflect);
        assert_eq!(p.power(&[], 2.0).unwrap_err(), DspError::EmptySignal);
        let x = [0.0, f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY];
        assert_eq!(
            p.power(&x, 2.0).unwrap_err(),
            DspError::NonFinite { count: 3, len: 5 }
        );
        let p = plan(16, 4, false, PadMode::Reflect);
        assert_eq!(
            p.complex(&[0.0; 15]).unwrap_err(),
            DspError::SignalTooShort {
                len: 15,
                needed: 16
            }
        );
    }
}
