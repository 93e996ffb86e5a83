//! Sample-rate conversion with rubato, one cached resampler per rate pair.
//!
//! # Conventions
//! A clip of `n` samples at `from` Hz becomes `ceil(n * to / from)` samples at
//! `to` Hz (as torchaudio's `Resample`), with the resampler's delay removed so
//! events keep their times. Rate pairs whose reduced ratio is small (every
//! common one: 44.1k->16k is 441:160) use rubato's FFT resampler; others, such
//! as 44101 Hz, fall back to its windowed-sinc resampler.

use std::collections::HashMap;
use std::fmt;

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::error::{check_signal, invalid};
use crate::{DspError, Result};

/// Reduced input block above which the FFT resampler gets too large and the
/// sinc resampler is used instead.
const MAX_FFT_BLOCK: usize = 4096;
/// Smallest FFT sub-chunk, in frames of the larger side.
const SUB_CHUNK: usize = 512;
/// FFT sub-chunks per processing chunk.
const SUB_CHUNKS: usize = 4;
/// Frames per chunk of the sinc resampler.
const SINC_CHUNK: usize = 2048;

/// Resamples one mono clip from `from` Hz to `to` Hz. For many clips, keep a
/// [`ResamplerCache`] instead so the resampler is built once per rate pair.
///
/// # Errors
/// A rate of 0, an empty signal or non-finite samples.
pub fn resample(signal: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    ResamplerCache::new().resample(signal, from, to)
}

/// Resamplers built on first use for each `(from, to)` pair and reused for
/// every later clip. It holds mutable state, so give each thread its own.
#[derive(Default)]
pub struct ResamplerCache {
    resamplers: HashMap<(u32, u32), Box<dyn Resampler<f32>>>,
}

impl fmt::Debug for ResamplerCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResamplerCache")
            .field("rate_pairs", &self.resamplers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResamplerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rate pairs with a built resampler.
    pub fn len(&self) -> usize {
        self.resamplers.len()
    }

    /// Whether no resampler has been built yet.
    pub fn is_empty(&self) -> bool {
        self.resamplers.is_empty()
    }

    /// Resamples a mono clip; returns a copy when the rates are equal.
    ///
    /// # Errors
    /// A rate of 0, an empty signal or non-finite samples.
    pub fn resample(&mut self, signal: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
        check_rates(from, to)?;
        check_signal(signal)?;
        if from == to {
            return Ok(signal.to_vec());
        }
        let resampler = match self.resamplers.entry((from, to)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(build(from, to)?),
        };
        let rubato_err = |e: &dyn std::error::Error| DspError::Resample {
            from,
            to,
            reason: e.to_string(),
        };
        let input = SequentialSlice::new(signal, 1, signal.len()).map_err(|e| rubato_err(&e))?;
        let out = resampler
            .process_all(&input, signal.len(), None)
            .map_err(|e| rubato_err(&e))?;
        Ok(out.take_data())
    }

    /// Resamples each channel of a planar multi-channel clip.
    ///
    /// # Errors
    /// As [`Self::resample`], for the first channel that fails.
    pub fn resample_channels(
        &mut self,
        channels: &[Vec<f32>],
        from: u32,
        to: u32,
    ) -> Result<Vec<Vec<f32>>> {
        channels
            .iter()
            .map(|c| self.resample(c, from, to))
            .collect()
    }
}

/// Resamples a mono stream chunk by chunk: the output equals [`resample`]
/// of the whole signal (the same rubato resampler fed the same blocks, its
/// delay trimmed), and after the first block nothing is allocated.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` when the rates are equal.
    resampler: Option<Box<dyn Resampler<f32>>>,
    /// Input waiting for a whole block.
    input: Vec<f32>,
    output: Vec<f32>,
    /// Output frames of the resampler's delay still to drop.
    to_trim: usize,
    samples_in: u64,
    samples_out: u64,
}

impl fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("samples_in", &self.samples_in)
            .field("samples_out", &self.samples_out)
            .finish()
    }
}

impl StreamResampler {
    /// A stream from `from` Hz to `to` Hz (a pass-through when equal).
    ///
    /// # Errors
    /// A rate of 0, or a resampler rubato cannot build.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        check_rates(from, to)?;
        let resampler = if from == to {
            None
        } else {
            Some(build(from, to)?)
        };
        let (block, out, delay) = resampler.as_ref().map_or((0, 0, 0), |r| {
            (
                r.input_frames_max(),
                r.output_frames_max(),
                r.output_delay(),
            )
        });
        Ok(Self {
            from,
            to,
            resampler,
            input: Vec::with_capacity(block),
            output: vec![0.0; out],
            to_trim: delay,
            samples_in: 0,
            samples_out: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Appends `chunk` and hands every output it completes to `on_output`.
    ///
    /// # Errors
    /// Non-finite samples (nothing of the chunk is taken), or a rubato failure.
    pub fn push(&mut self, chunk: &[f32], mut on_output: impl FnMut(&[f32])) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        check_signal(chunk)?;
        self.samples_in += chunk.len() as u64;
        let Some(block) = self.resampler.as_ref().map(|r| r.input_frames_next()) else {
            self.samples_out += chunk.len() as u64;
            on_output(chunk);
            return Ok(());
        };
        let mut rest = chunk;
        while !rest.is_empty() {
            let (take, tail) = rest.split_at((block - self.input.len()).min(rest.len()));
            self.input.extend_from_slice(take);
            rest = tail;
            if self.input.len() == block {
                self.process(None, &mut on_output)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: resamples what is left (padded with silence) up to
    /// `ceil(samples_in * to / from)` output samples in all, hands it to
    /// `on_output`, and resets for a new stream.
    ///
    /// # Errors
    /// A rubato failure.
    pub fn finish(&mut self, mut on_output: impl FnMut(&[f32])) -> Result<()> {
        if self.resampler.is_some() {
            let total = (self.samples_in * self.to as u64).div_ceil(self.from as u64);
            let mut partial = self.input.len();
            // Each block yields output, so this ends.
            while self.samples_out < total {
                self.process(Some(partial), &mut on_output)?;
                partial = 0;
            }
        }
        self.reset();
        Ok(())
    }

    /// Runs one block (`partial`: the valid input frames of a last one)
    /// and emits its output past the delay, never past the signal's length
    /// once the stream is finishing.
    fn process(
        &mut self,
        partial: Option<usize>,
        on_output: &mut impl FnMut(&[f32]),
    ) -> Result<()> {
        let (from, to) = (self.from, self.to);
        let err = |e: &dyn std::error::Error| DspError::Resample {
            from,
            to,
            reason: e.to_string(),
        };
        let resampler = self.resampler.as_mut().expect("resampling stream");
        let frames = resampler.input_frames_next();
        self.input.resize(frames, 0.0);
        let input = SequentialSlice::new(&self.input[..], 1, frames).map_err(|e| err(&e))?;
        let out_len = self.output.len();
        let mut output =
            SequentialSlice::new_mut(&mut self.output[..], 1, out_len).map_err(|e| err(&e))?;
        let indexing = partial.map(|n| rubato::Indexing::new().partial_len(n));
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| err(&e))?;
        self.input.clear();
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let mut emit = &self.output[skip..produced];
        if partial.is_some() {
            let total = (self.samples_in * to as u64).div_ceil(from as u64);
            let left = total.saturating_sub(self.samples_out) as usize;
            emit = &emit[..emit.len().min(left)];
        }
        self.samples_out += emit.len() as u64;
        on_output(emit);
        Ok(())
    }

    /// Forgets the stream so far.
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.resampler {
            r.reset();
            self.to_trim = r.output_delay();
        }
        self.input.clear();
        self.samples_in = 0;
        self.samples_out = 0;
    }
}

fn check_rates(from: u32, to: u32) -> Result<()> {
    if from == 0 {
        return Err(invalid("from rate", "must be > 0 Hz, got 0"));
    }
    if to == 0 {
        return Err(invalid("to rate", "must be > 0 Hz, got 0"));
    }
    Ok(())
}

fn build(from: u32, to: u32) -> Result<Box<dyn Resampler<f32>>> {
    let err = |e: rubato::ResamplerConstructionError| DspError::Resample {
        from,
        to,
        reason: e.to_string(),
    };
    let gcd = gcd(from, to);
    let (block_in, block_out) = ((from / gcd) as usize, (to / gcd) as usize);
    if block_in <= MAX_FFT_BLOCK && block_out <= MAX_FFT_BLOCK {
        // rubato rounds sub-chunks up to multiples of the reduced blocks; a
        // power-of-two multiple keeps the FFT sizes free of large prime
        // factors (a plain 2048 / 8 gives 48 kHz -> 16 kHz a factor of 43).
        let m = (SUB_CHUNK / block_in.max(block_out))
            .max(1)
            .next_power_of_two();
        let fft = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            block_in * m * SUB_CHUNKS,
            SUB_CHUNKS,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(err)?;
        Ok(Box::new(fft))
    } else {
        let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2);
        let ratio = to as f64 / from as f64;
        let sinc = Async::<f32>::new_sinc(ratio, 1.0, &params, SINC_CHUNK, 1, FixedAsync::Input)
            .map_err(err)?;
        Ok(Box::new(sinc))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, sr: u32, secs: f64) -> Vec<f32> {
        let n = (sr as f64 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / sr as f64).sin() as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Frequency of the strongest DFT bin, by a direct DFT over the middle of the clip.
    fn peak_hz(x: &[f32], sr: u32) -> f64 {
        let n = 4096.min(x.len());
        let seg = &x[(x.len() - n) / 2..][..n];
        (1..n / 2)
            .map(|k| {
                let (re, im) = seg
                    .iter()
                    .enumerate()
                    .fold((0.0, 0.0), |(re, im), (i, &v)| {
                        let a = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                        (re + v as f64 * a.cos(), im - v as f64 * a.sin())
                    });
                (k, re * re + im * im)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| k as f64 * sr as f64 / n as f64)
            .unwrap()
    }

    #[test]
    fn a_1khz_sine_keeps_its_frequency_and_rms_from_44k1_to_16k() {
        let x = sine(1000.0, 44100, 1.0);
        let y = resample(&x, 44100, 16000).unwrap();
        assert_eq!(y.len(), 16000);
        assert!((peak_hz(&y, 16000) - 1000.0).abs() <= 16000.0 / 4096.0);
        // Edges aside (the clip starts and stops abruptly), the level is kept.
        let (a, b) = (rms(&x[4410..39690]), rms(&y[1600..14400]));
        assert!((a - b).abs() / a < 0.01, "rms {a} -> {b}");
    }

    #[test]
    fn any_rate_pair_gives_the_expected_length_and_keeps_a_tone() {
        for (from, to) in [
            (8000, 22050),
            (96000, 44100),
            (11025, 16000),
            (48000, 16000),
            (44101, 16000),
        ] {
            let x = sine(440.0, from, 0.5);
            let y = resample(&x, from, to).unwrap();
            let want = (x.len() as u64 * to as u64).div_ceil(from as u64) as usize;
            assert_eq!(y.len(), want, "{from} -> {to}");
            assert!(
                (peak_hz(&y, to) - 440.0).abs() <= to as f64 / 4096.0,
                "{from} -> {to}"
            );
            let mid = y.len() / 4..3 * y.len() / 4;
            assert!(
                (rms(&y[mid]) - 0.5f64.sqrt()).abs() < 0.01,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn the_delay_is_removed_so_an_onset_keeps_its_time() {
        let mut x = vec![0.0f32; 44100];
        x[22050..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 * 0.06).sin());
        let y = resample(&x, 44100, 16000).unwrap();
        let onset = y.iter().position(|v| v.abs() > 0.1).unwrap();
        assert!((onset as i64 - 8000).abs() <= 8, "onset at {onset}");
    }

    #[test]
    fn the_cache_builds_one_resampler_per_pair_and_gives_the_same_output() {
        let mut cache = ResamplerCache::new();
        let x = sine(300.0, 22050, 0.3);
        let first = cache.resample(&x, 22050, 16000).unwrap();
        let second = cache.resample(&x, 22050, 16000).unwrap();
        cache.resample(&x, 22050, 8000).unwrap();
        assert_eq!(first, second, "state is reset between clips");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.resample(&x, 16000, 16000).unwrap(), x);
    }

    #[test]
    fn bad_rates_and_signals_are_errors() {
        assert_eq!(
            resample(&[0.0; 10], 0, 16000).unwrap_err().to_string(),
            "invalid from rate: must be > 0 Hz, got 0"
        );
        assert!(resample(&[0.0; 10], 16000, 0).is_err());
        assert_eq!(
            resample(&[], 8000, 16000).unwrap_err(),
            DspError::EmptySignal
        );
        assert_eq!(
            resample(&[0.0, f32::NAN], 8000, 16000).unwrap_err(),
            DspError::NonFinite { count: 1, len: 2 }
        );
    }

    #[test]
    fn the_cache_can_move_to_another_thread() {
        fn check<T: Send>() {}
        check::<ResamplerCache>();
    }

    #[test]
    fn very_short_clips_resample() {
        let y = resample(&[0.5], 8000, 16000).unwrap();
        assert_eq!(y.len(), 2);
    }

    /// `signal` through a [`StreamResampler`] in chunks of `size`.
    fn streamed(signal: &[f32], from: u32, to: u32, size: usize) -> Vec<f32> {
        let mut stream = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in signal.chunks(size) {
            stream.push(chunk, |o| out.extend_from_slice(o)).unwrap();
        }
        stream.finish(|o| out.extend_from_slice(o)).unwrap();
        out
    }

    #[test]
    fn a_stream_resamples_exactly_as_the_whole_clip() {
        let x: Vec<f32> = sine(1000.0, 48000, 0.7)
            .iter()
            .zip(sine(7300.0, 48000, 0.7))
            .map(|(a, b)| a * 0.5 + b * 0.3)
            .collect();
        for (from, to) in [
            (48000, 22050),
            (44100, 16000),
            (44100, 22050),
            (16000, 16000),
            (44101, 16000),
        ] {
            let x = &x[..(from as usize * 7 / 10).min(x.len())];
            let whole = resample(x, from, to).unwrap();
            for size in [1, 7, 512, 4096, 100_000] {
                let got = streamed(x, from, to, size);
                assert_eq!(got.len(), whole.len(), "{from}->{to} by {size}");
                for (i, (a, b)) in got.iter().zip(&whole).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-6,
                        "{from}->{to} by {size} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_stream_rejects_a_non_finite_chunk_and_zero_rates() {
        let mut stream = StreamResampler::new(48000, 16000).unwrap();
        assert!(stream.push(&[0.0, f32::INFINITY], |_| {}).is_err());
        assert!(StreamResampler::new(0, 16000).is_err());
        assert!(StreamResampler::new(16000, 0).is_err());
        // Nothing in, nothing out.
        let mut n = 0;
        stream.finish(|o| n += o.len()).unwrap();
        assert_eq!(n, 0);
    }
}
