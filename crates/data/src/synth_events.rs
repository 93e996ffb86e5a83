//! `hark synth --kind events`: a deterministic corpus for a transient
//! detector (seed 000's finger-snap detector), so the detection workflow
//! runs and is tested end to end without recordings.
//!
//! - `annotations.csv` (seed 000's columns `name` and `snap`) over
//!   `audio/*.wav`: short clips holding one transient (a click, snap, clap
//!   or knock, label 1) or none (label 0), over varied backgrounds; 70 % of
//!   the clips without one, and 30 % of those with one, hold a distractor
//!   (a tone or a noise swell, its attack 30 ms or slower), so that neither
//!   loudness nor an onset alone decides.
//! - `long/recording-NN.wav`: recordings of a minute or more at 48 kHz
//!   (so listening resamples) whose background changes every few seconds,
//!   with transients and distractors at random times, and `events.csv`
//!   (`file`, `onset`, `offset`, `class`) listing the transients as class
//!   `1`.

use std::f64::consts::TAU;
use std::path::Path;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Audio;
use crate::encode::{Encoding, write_wav};
use crate::error::{DataError, Result, io_error};
use crate::events::{EventRow, write_events};
use crate::manifest::Manifest;

/// Size and seed of an events corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSynthConfig {
    /// Short clips, half with a transient. Default: 1,200 (with 400 the
    /// snap recipe's detector is noticeably weaker).
    pub clips: usize,
    /// Seconds per clip. Default: 1.5.
    pub clip_seconds: f64,
    /// Long recordings. Default: 2.
    pub recordings: usize,
    /// Seconds per long recording. Default: 60.
    pub recording_seconds: f64,
    /// Seed; the same seed writes the same corpus. Default: 0.
    pub seed: u64,
}

impl Default for EventSynthConfig {
    fn default() -> Self {
        Self {
            clips: 1200,
            clip_seconds: 1.5,
            recordings: 2,
            recording_seconds: 60.0,
            seed: 0,
        }
    }
}

/// The transient kinds, all of class `1`.
const TRANSIENTS: [&str; 4] = ["click", "snap", "clap", "knock"];
/// Clip rates, so training resamples too.
const CLIP_RATES: [u32; 3] = [22050, 44100, 48000];
/// The long recordings' rate.
const RECORDING_RATE: u32 = 48000;

/// What [`generate_event_synth`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSynthSummary {
    /// Clips written (with a transient, without).
    pub clips: (usize, usize),
    /// Events in the long recordings.
    pub events: usize,
}

/// Writes the corpus into `root` (created if needed).
///
/// # Errors
/// [`DataError::InvalidOption`] for clips shorter than 0.3 s, no clips,
/// or recordings shorter than 10 s; a file that cannot be written.
pub fn generate_event_synth(root: &Path, config: &EventSynthConfig) -> Result<EventSynthSummary> {
    let invalid = |field, rule, got: f64| {
        Err(DataError::InvalidOption {
            field,
            rule,
            got: got.to_string(),
        })
    };
    if config.clips == 0 {
        return invalid("clips", "must be at least 1", 0.0);
    }
    if !(config.clip_seconds.is_finite() && (0.3..=60.0).contains(&config.clip_seconds)) {
        return invalid(
            "clip_seconds",
            "must be within [0.3, 60]",
            config.clip_seconds,
        );
    }
    let long = config.recording_seconds;
    if config.recordings > 0 && !(long.is_finite() && (10.0..=3600.0).contains(&long)) {
        return invalid("recording_seconds", "must be within [10, 3600]", long);
    }
    let audio_dir = root.join("audio");
    std::fs::create_dir_all(&audio_dir).map_err(io_error(&audio_dir))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut rows = Vec::with_capacity(config.clips);
    let mut positives = 0;
    for i in 0..config.clips {
        let rate = CLIP_RATES[rng.random_range(0..CLIP_RATES.len())];
        let n = (config.clip_seconds * rate as f64) as usize;
        let mut clip = background(&mut rng, rate, n);
        let label = i % 2;
        // Distractors in most negatives and some positives, so that neither
        // a sound's presence nor its absence gives the label away.
        if rng.random::<f64>() < [0.7, 0.3][label] {
            let d = distractor(&mut rng, rate, config.clip_seconds * 0.8);
            let at = rng.random_range(0..(n - d.len()).max(1));
            mix(&mut clip, &d, at);
        }
        if label == 1 {
            // Anywhere with 50 ms to spare at either end.
            let at = rng.random_range(0.05..config.clip_seconds - 0.25);
            mix(
                &mut clip,
                &transient(&mut rng, rate),
                (at * rate as f64) as usize,
            );
            positives += 1;
        }
        let name = format!("clip-{i:05}");
        let path = audio_dir.join(format!("{name}.wav"));
        write_wav(&path, &mono(clip, rate), Encoding::I16)?;
        rows.push(vec![name, label.to_string()]);
    }
    Manifest::write(&root.join("annotations.csv"), &["name", "snap"], rows)?;
    let mut events = Vec::new();
    if config.recordings > 0 {
        let dir = root.join("long");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        for r in 0..config.recordings {
            let file = format!("long/recording-{r:02}.wav");
            let (audio, onsets) = recording(&mut rng, long);
            write_wav(&root.join(&file), &audio, Encoding::I16)?;
            events.extend(onsets.into_iter().map(|(onset, offset)| EventRow {
                file: file.clone(),
                onset,
                offset,
                class: "1".into(),
            }));
        }
        write_events(&root.join("events.csv"), &events)?;
    }
    Ok(EventSynthSummary {
        clips: (positives, config.clips - positives),
        events: events.len(),
    })
}

fn mono(samples: Vec<f32>, sample_rate: u32) -> Audio {
    Audio {
        samples,
        channels: 1,
        sample_rate,
    }
}

/// A long recording and its transients' (onset, offset) times: backgrounds
/// that change every 4 to 12 s, a transient every 1.5 to 5 s, a distractor
/// now and then in between.
fn recording(rng: &mut ChaCha8Rng, seconds: f64) -> (Audio, Vec<(f64, f64)>) {
    let rate = RECORDING_RATE;
    let n = (seconds * rate as f64) as usize;
    let mut samples = Vec::with_capacity(n);
    while samples.len() < n {
        let len = ((rng.random_range(4.0..12.0) * rate as f64) as usize).min(n - samples.len());
        samples.extend(background(rng, rate, len));
    }
    let mut events = Vec::new();
    let mut t = rng.random_range(1.0..3.0);
    while t < seconds - 1.0 {
        let sound = transient(rng, rate);
        mix(&mut samples, &sound, (t * rate as f64) as usize);
        events.push((t, t + sound.len() as f64 / rate as f64));
        let gap = rng.random_range(1.5..5.0);
        if gap > 3.0 && rng.random::<f64>() < 0.6 {
            let d = distractor(rng, rate, 1.0);
            mix(&mut samples, &d, ((t + 0.7) * rate as f64) as usize);
        }
        t += gap;
    }
    (mono(samples, rate), events)
}

/// Adds `sound` into `into` from `at`, clipped at the end.
fn mix(into: &mut [f32], sound: &[f32], at: usize) {
    for (o, s) in into.iter_mut().skip(at).zip(sound) {
        *o = (*o + s).clamp(-1.0, 1.0);
    }
}

fn uniform(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>() * 2.0 - 1.0
}

/// A one-pole low-pass coefficient for a cutoff of `hz`.
fn pole(hz: f64, rate: u32) -> f64 {
    (-TAU * hz / rate as f64).exp()
}

/// Band-limited noise: white noise through a one-pole high-pass at `lo`
/// and low-pass at `hi`.
fn band_noise(rng: &mut impl Rng, rate: u32, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let (a_hi, a_lo) = (pole(hi, rate), pole(lo, rate));
    let (mut low, mut slow) = (0.0, 0.0);
    (0..n)
        .map(|_| {
            low = a_hi * low + (1.0 - a_hi) * uniform(rng);
            slow = a_lo * slow + (1.0 - a_lo) * low;
            low - slow
        })
        .collect()
}

/// Scales `x` to an RMS of `level` dBFS.
fn at_level(x: &[f64], level: f64) -> Vec<f32> {
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let gain = 10f64.powf(level / 20.0) / rms.max(1e-12);
    x.iter().map(|v| (v * gain) as f32).collect()
}

/// Background levels in dBFS (RMS).
const BACKGROUND_DB: std::ops::Range<f64> = -60.0..-28.0;
/// A transient's energy above that of the loudest background over one
/// 46 ms analysis frame, in dB: always visible in the frame it falls in.
const TRANSIENT_SNR_DB: std::ops::Range<f64> = 6.0..30.0;
/// The frame [`TRANSIENT_SNR_DB`] is measured over, in seconds.
const SNR_FRAME: f64 = 0.046;

/// A background: coloured noise, mains hum, a murmur of modulated bands,
/// or near silence, at a level within [`BACKGROUND_DB`].
fn background(rng: &mut ChaCha8Rng, rate: u32, n: usize) -> Vec<f32> {
    let level = rng.random_range(BACKGROUND_DB);
    let x: Vec<f64> = match rng.random_range(0..4) {
        0 => {
            let hi = rng.random_range(500.0..8000.0);
            band_noise(rng, rate, n, 20.0, hi)
        }
        1 => {
            let mains = if rng.random::<bool>() { 50.0 } else { 60.0 };
            let hiss = band_noise(rng, rate, n, 20.0, 6000.0);
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate as f64;
                    (1..=4)
                        .map(|h| (TAU * mains * h as f64 * t).sin() / h as f64)
                        .sum::<f64>()
                        + 0.2 * hiss[i]
                })
                .collect()
        }
        2 => {
            // Voices far away: bands of noise whose loudness drifts at syllable rate.
            let bands: Vec<(Vec<f64>, f64, f64)> = (0..3)
                .map(|_| {
                    let lo = rng.random_range(200.0..1500.0);
                    let noise = band_noise(rng, rate, n, lo, lo * 2.0);
                    (
                        noise,
                        rng.random_range(2.0..6.0),
                        rng.random_range(0.0..TAU),
                    )
                })
                .collect();
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate as f64;
                    bands
                        .iter()
                        .map(|(b, f, p)| b[i] * (0.6 + 0.4 * (TAU * f * t + p).sin()))
                        .sum()
                })
                .collect()
        }
        _ => band_noise(rng, rate, n, 20.0, 3000.0)
            .into_iter()
            .map(|v| v * 0.05)
            .collect(),
    };
    at_level(&x, level)
}

/// A short sharp sound: one of [`TRANSIENTS`], its energy
/// [`TRANSIENT_SNR_DB`] above a frame of the loudest background (its peak
/// at most -1 dBFS): always audible, not always loud.
fn transient(rng: &mut ChaCha8Rng, rate: u32) -> Vec<f32> {
    let ms = |v: f64| (v * rate as f64 / 1000.0) as usize;
    let kind = TRANSIENTS[rng.random_range(0..TRANSIENTS.len())];
    let x: Vec<f64> = match kind {
        "click" => {
            let n = ms(rng.random_range(3.0..8.0));
            let tau = rng.random_range(0.4..1.5);
            let noise = band_noise(rng, rate, n, 1000.0, 12000.0);
            (0..n)
                .map(|i| noise[i] * (-(i as f64) / ms(tau).max(1) as f64).exp())
                .collect()
        }
        "snap" => {
            let n = ms(rng.random_range(25.0..60.0));
            let centre = rng.random_range(1800.0..4000.0);
            let tau = ms(rng.random_range(4.0..12.0)).max(1) as f64;
            let noise = band_noise(rng, rate, n, centre * 0.6, centre * 1.6);
            (0..n)
                .map(|i| noise[i] * (-(i as f64) / tau).exp())
                .collect()
        }
        "clap" => {
            let n = ms(rng.random_range(80.0..160.0));
            let tau = ms(rng.random_range(15.0..35.0)).max(1) as f64;
            let noise = band_noise(rng, rate, n, 700.0, 5000.0);
            // Two to four hands' worth of bursts a few milliseconds apart.
            let bursts: Vec<usize> = (0..rng.random_range(2..5))
                .map(|k| ms(k as f64 * rng.random_range(3.0..9.0)))
                .collect();
            (0..n)
                .map(|i| {
                    let env: f64 = (bursts.iter())
                        .filter(|&&b| i >= b)
                        .map(|&b| (-((i - b) as f64) / tau).exp())
                        .sum();
                    noise[i] * env
                })
                .collect()
        }
        _ => {
            // A knock: damped low resonances and a contact click.
            let n = ms(rng.random_range(60.0..140.0));
            let modes: Vec<(f64, f64)> = (0..2)
                .map(|_| (rng.random_range(120.0..600.0), rng.random_range(15.0..45.0)))
                .collect();
            let click = band_noise(rng, rate, n, 800.0, 6000.0);
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate as f64;
                    let body: f64 = (modes.iter())
                        .map(|(f, tau)| (TAU * f * t).sin() * (-t * 1000.0 / tau).exp())
                        .sum();
                    body + 0.5 * click[i] * (-t * 1000.0 / 2.0).exp()
                })
                .collect()
        }
    };
    let energy = x.iter().map(|v| v * v).sum::<f64>().max(1e-24);
    let frame = 10f64.powf(BACKGROUND_DB.end / 10.0) * SNR_FRAME * rate as f64;
    let target = frame * 10f64.powf(rng.random_range(TRANSIENT_SNR_DB) / 10.0);
    let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let gain = (target / energy).sqrt().min(10f64.powf(-1.0 / 20.0) / peak);
    x.iter().map(|v| (v * gain) as f32).collect()
}

/// A sound that is not a transient: a tone or a noise swell with a slow
/// attack and release, at most `max_seconds` long.
fn distractor(rng: &mut ChaCha8Rng, rate: u32, max_seconds: f64) -> Vec<f32> {
    let seconds = rng.random_range(0.3..1.0f64).min(max_seconds);
    let n = (seconds * rate as f64) as usize;
    let attack = rng.random_range(0.1..0.4) * seconds;
    let x: Vec<f64> = if rng.random::<bool>() {
        let f = rng.random_range(200.0..2000.0);
        (0..n)
            .map(|i| (TAU * f * i as f64 / rate as f64).sin())
            .collect()
    } else {
        band_noise(rng, rate, n, 200.0, 4000.0)
    };
    let env = |i: usize| {
        let t = i as f64 / rate as f64;
        (t / attack).min(1.0).min((seconds - t) / attack).max(0.0)
    };
    let shaped: Vec<f64> = x.iter().enumerate().map(|(i, v)| v * env(i)).collect();
    at_level(&shaped, rng.random_range(-30.0..-12.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_has_balanced_clips_and_listed_events() {
        let dir = tempfile::tempdir().unwrap();
        let config = EventSynthConfig {
            clips: 12,
            recordings: 1,
            recording_seconds: 20.0,
            ..Default::default()
        };
        let s = generate_event_synth(dir.path(), &config).unwrap();
        assert_eq!(s.clips, (6, 6));
        assert!(s.events >= 4, "{s:?}");
        let rows = crate::read_events(&dir.path().join("events.csv")).unwrap();
        assert_eq!(rows.len(), s.events);
        assert!(rows.windows(2).all(|w| w[1].onset - w[0].onset >= 1.5));
        let long = crate::read_wav(&dir.path().join("long/recording-00.wav")).unwrap();
        assert_eq!((long.sample_rate, long.frames()), (48000, 960_000));
        // The same seed writes the same bytes.
        let again = tempfile::tempdir().unwrap();
        generate_event_synth(again.path(), &config).unwrap();
        for f in [
            "annotations.csv",
            "events.csv",
            "audio/clip-00003.wav",
            "long/recording-00.wav",
        ] {
            let read = |d: &Path| std::fs::read(d.join(f)).unwrap();
            assert_eq!(read(dir.path()), read(again.path()), "{f}");
        }
        assert!(
            generate_event_synth(dir.path(), &EventSynthConfig { clips: 0, ..config }).is_err()
        );
    }
}
