//! Waveform utilities: channel mix-down and duplication, pad/trim to a length,
//! and chunking into fixed windows.

use std::ops::Range;

use rand::{Rng, RngExt};
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::invalid;
use crate::{DspError, Result};

/// Splits interleaved samples (`L R L R ...`) into one `Vec` per channel.
///
/// # Errors
/// `channels` of 0, or a sample count that is not a multiple of it.
pub fn deinterleave(samples: &[f32], channels: usize) -> Result<Vec<Vec<f32>>> {
    check_interleaved(samples, channels)?;
    Ok((0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect())
}

/// Mean over channels of interleaved samples: the mono mix-down of a decoded file.
///
/// # Errors
/// As [`deinterleave`].
pub fn mix_down_interleaved(samples: &[f32], channels: usize) -> Result<Vec<f32>> {
    check_interleaved(samples, channels)?;
    let scale = 1.0 / channels as f32;
    Ok(samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect())
}

/// Mean over planar channels (torchaudio's `waveform.mean(dim=0)`).
///
/// # Errors
/// No channel, or channels of different lengths.
pub fn mix_down<C: AsRef<[f32]>>(channels: &[C]) -> Result<Vec<f32>> {
    let len = check_planar(channels)?;
    let mut out = vec![0.0; len];
    for c in channels {
        out.iter_mut().zip(c.as_ref()).for_each(|(o, x)| *o += x);
    }
    let scale = 1.0 / channels.len() as f32;
    out.iter_mut().for_each(|o| *o *= scale);
    Ok(out)
}

/// Brings planar audio to `n` channels: kept as is when it has `n`, a mono
/// signal is duplicated (seed 001's mono-to-stereo), anything else is mixed
/// down to mono first and then duplicated.
///
/// # Errors
/// `n` of 0, no channel, or channels of different lengths.
pub fn to_channels(channels: Vec<Vec<f32>>, n: usize) -> Result<Vec<Vec<f32>>> {
    if n == 0 {
        return Err(invalid("channels", "must be > 0, got 0"));
    }
    check_planar(&channels)?;
    if channels.len() == n {
        return Ok(channels);
    }
    let mono = match channels.len() {
        1 => channels.into_iter().next().expect("one channel"),
        _ => mix_down(&channels)?,
    };
    Ok(vec![mono; n])
}

fn check_interleaved(samples: &[f32], channels: usize) -> Result<()> {
    if channels == 0 {
        return Err(invalid("channels", "must be > 0, got 0"));
    }
    if !samples.len().is_multiple_of(channels) {
        return Err(invalid(
            "samples",
            format!(
                "{} interleaved samples do not divide into {channels} channels",
                samples.len()
            ),
        ));
    }
    Ok(())
}

fn check_planar<C: AsRef<[f32]>>(channels: &[C]) -> Result<usize> {
    let first = channels
        .first()
        .ok_or_else(|| invalid("channels", "must be > 0, got 0"))?
        .as_ref()
        .len();
    for (i, c) in channels.iter().enumerate() {
        if c.as_ref().len() != first {
            return Err(DspError::ChannelLengthMismatch {
                channel: i,
                expected: first,
                got: c.as_ref().len(),
            });
        }
    }
    Ok(first)
}

/// Where a signal goes when [`fix_length`] pads or trims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Placement {
    /// Keep the start: pad zeros at the end, trim the end (`librosa.util.fix_length`).
    #[default]
    Start,
    /// Centre: pad or trim both ends equally, the odd sample at the end.
    Center,
    /// Uniformly random offset: random leading silence when padding (seed 001's
    /// `pad_trunc`), a random window when trimming.
    Random,
}

/// Pads with zeros or trims `signal` to exactly `len` samples. `rng` is drawn
/// from only with [`Placement::Random`] (once).
pub fn fix_length<R: Rng + ?Sized>(
    signal: &[f32],
    len: usize,
    placement: Placement,
    rng: &mut R,
) -> Vec<f32> {
    let mut out = vec![0.0; len];
    fix_length_into(signal, &mut out, placement, rng);
    out
}

/// [`fix_length`] into a caller buffer whose length is the target length.
pub fn fix_length_into<R: Rng + ?Sized>(
    signal: &[f32],
    out: &mut [f32],
    placement: Placement,
    rng: &mut R,
) {
    let (n, len) = (signal.len(), out.len());
    let slack = n.abs_diff(len);
    let offset = match placement {
        Placement::Start => 0,
        Placement::Center => slack / 2,
        Placement::Random => rng.random_range(0..=slack),
    };
    out.fill(0.0);
    if n >= len {
        out.copy_from_slice(&signal[offset..offset + len]);
    } else {
        out[offset..offset + n].copy_from_slice(signal);
    }
}

/// What [`chunk_ranges`] does with samples after the last full window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tail {
    /// Drop them: every chunk is a full window of real samples.
    #[default]
    Drop,
    /// Keep them in one more chunk, zero-padded to the window.
    Pad,
}

/// The sample ranges of fixed windows of `window` samples every `hop` samples
/// over a signal of `len` samples. With [`Tail::Pad`] the last range may be
/// shorter than `window`; [`chunks`] pads it.
///
/// # Errors
/// `window` or `hop` of 0.
pub fn chunk_ranges(
    len: usize,
    window: usize,
    hop: usize,
    tail: Tail,
) -> Result<Vec<Range<usize>>> {
    if window == 0 {
        return Err(invalid("window", "must be > 0, got 0"));
    }
    if hop == 0 {
        return Err(invalid("hop", "must be > 0, got 0"));
    }
    let full = if len >= window {
        (len - window) / hop + 1
    } else {
        0
    };
    let mut ranges: Vec<_> = (0..full).map(|i| i * hop..i * hop + window).collect();
    let covered = ranges.last().map_or(0, |r| r.end);
    if tail == Tail::Pad && covered < len {
        let start = full * hop;
        ranges.push(start..len);
    }
    Ok(ranges)
}

/// Cuts `signal` into windows of `window` samples every `hop` samples (seed
/// 003's 2-second chunks), zero-padding a [`Tail::Pad`] tail.
///
/// # Errors
/// As [`chunk_ranges`].
pub fn chunks(signal: &[f32], window: usize, hop: usize, tail: Tail) -> Result<Vec<Vec<f32>>> {
    Ok(chunk_ranges(signal.len(), window, hop, tail)?
        .into_iter()
        .map(|r| {
            let mut c = signal[r].to_vec();
            c.resize(window, 0.0);
            c
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn mix_down_averages_channels_in_both_layouts() {
        let inter = [1.0, 3.0, 2.0, 4.0, -1.0, 1.0];
        assert_eq!(mix_down_interleaved(&inter, 2).unwrap(), [2.0, 3.0, 0.0]);
        let planar = deinterleave(&inter, 2).unwrap();
        assert_eq!(planar, [vec![1.0, 2.0, -1.0], vec![3.0, 4.0, 1.0]]);
        assert_eq!(mix_down(&planar).unwrap(), [2.0, 3.0, 0.0]);
        assert_eq!(mix_down_interleaved(&inter, 1).unwrap(), inter);
    }

    #[test]
    fn mismatched_channels_are_errors() {
        assert!(
            mix_down_interleaved(&[1.0, 2.0, 3.0], 2)
                .unwrap_err()
                .to_string()
                .contains("3 interleaved samples")
        );
        assert!(mix_down_interleaved(&[1.0], 0).is_err());
        assert_eq!(
            mix_down(&[vec![1.0, 2.0], vec![1.0]]).unwrap_err(),
            DspError::ChannelLengthMismatch {
                channel: 1,
                expected: 2,
                got: 1
            }
        );
        assert!(mix_down::<Vec<f32>>(&[]).is_err());
    }

    #[test]
    fn to_channels_duplicates_mono_and_keeps_matching_counts() {
        assert_eq!(
            to_channels(vec![vec![1.0, 2.0]], 2).unwrap(),
            [vec![1.0, 2.0], vec![1.0, 2.0]]
        );
        let stereo = vec![vec![1.0], vec![3.0]];
        assert_eq!(to_channels(stereo.clone(), 2).unwrap(), stereo);
        assert_eq!(to_channels(stereo, 1).unwrap(), [vec![2.0]]);
        assert!(to_channels(vec![vec![1.0]], 0).is_err());
    }

    #[test]
    fn fix_length_places_the_signal() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = [1.0, 2.0, 3.0];
        assert_eq!(
            fix_length(&x, 5, Placement::Start, &mut rng),
            [1.0, 2.0, 3.0, 0.0, 0.0]
        );
        assert_eq!(
            fix_length(&x, 6, Placement::Center, &mut rng),
            [0.0, 1.0, 2.0, 3.0, 0.0, 0.0]
        );
        assert_eq!(fix_length(&x, 2, Placement::Start, &mut rng), [1.0, 2.0]);
        assert_eq!(
            fix_length(&[1.0, 2.0, 3.0, 4.0], 2, Placement::Center, &mut rng),
            [2.0, 3.0]
        );
        assert_eq!(fix_length(&x, 0, Placement::Random, &mut rng), [0.0; 0]);
        assert_eq!(fix_length(&[], 2, Placement::Random, &mut rng), [0.0, 0.0]);
    }

    #[test]
    fn random_placement_is_seeded_and_covers_every_offset() {
        let x = [1.0, 2.0];
        let offsets = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|_| {
                    fix_length(&x, 5, Placement::Random, &mut rng)
                        .iter()
                        .position(|&v| v == 1.0)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let a = offsets(7);
        assert_eq!(a, offsets(7));
        for o in 0..=3 {
            assert!(a.contains(&o), "offset {o} never drawn");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let long: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let cut = fix_length(&long, 4, Placement::Random, &mut rng);
        assert!(
            cut.windows(2).all(|w| w[1] == w[0] + 1.0),
            "a contiguous window: {cut:?}"
        );
    }

    #[test]
    fn chunk_counts_at_edge_lengths() {
        let count = |len, tail| chunk_ranges(len, 4, 4, tail).unwrap().len();
        for (len, drop, pad) in [
            (0, 0, 0),
            (1, 0, 1),
            (4, 1, 1),
            (5, 1, 2),
            (8, 2, 2),
            (9, 2, 3),
        ] {
            assert_eq!(count(len, Tail::Drop), drop, "len {len} drop");
            assert_eq!(count(len, Tail::Pad), pad, "len {len} pad");
        }
    }

    #[test]
    fn overlapping_chunks_pad_the_tail() {
        let x: Vec<f32> = (1..=5).map(|i| i as f32).collect();
        let c = chunks(&x, 4, 2, Tail::Pad).unwrap();
        assert_eq!(c, [vec![1.0, 2.0, 3.0, 4.0], vec![3.0, 4.0, 5.0, 0.0]]);
        assert_eq!(chunks(&x, 4, 2, Tail::Drop).unwrap().len(), 1);
        assert!(chunk_ranges(5, 0, 1, Tail::Drop).is_err());
        assert!(chunk_ranges(5, 1, 0, Tail::Drop).is_err());
    }
}
