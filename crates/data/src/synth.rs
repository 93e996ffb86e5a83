//! `urban-synth`: a deterministic demo corpus in exact UrbanSound8K layout
//! (`metadata/UrbanSound8K.csv`, `audio/fold1..foldN/`), so the whole product
//! runs and is tested without the 6 GB download.
//!
//! Ten procedural sound families carry UrbanSound8K's class names and ids;
//! each "recording" (an `fsID`) draws its own parameters, yields one to six
//! slices that stay in one fold, and is mixed with coloured background noise
//! at a random SNR. Like the real corpus, files mix sample rates (8 to 96
//! kHz), channel counts and encodings (u8, i16, i24, i32, f32, IMA ADPCM).

use std::f64::consts::TAU;
use std::path::Path;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::Audio;
use crate::encode::{Encoding, write_wav};
use crate::error::{DataError, Result};
use crate::fold_csv::{URBANSOUND8K_COLUMNS, URBANSOUND8K_MANIFEST};
use crate::manifest::Manifest;

/// UrbanSound8K's classes, by class id.
pub const URBANSOUND8K_CLASSES: [&str; 10] = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
];

/// Size and seed of a generated corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Slices to write, about evenly over the classes. Default: 1000.
    pub clips: usize,
    /// Folds. Default: 10.
    pub folds: u32,
    /// Longest slice in seconds (most slices have this length). Default: 4.
    pub max_seconds: f64,
    /// Seed; the same seed writes the same corpus. Default: 0.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            clips: 1000,
            folds: 10,
            max_seconds: 4.0,
            seed: 0,
        }
    }
}

/// What [`generate_urban_synth`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// Slices written.
    pub clips: usize,
    /// Recordings (distinct fsIDs).
    pub recordings: usize,
    /// Bytes of audio written.
    pub bytes: u64,
}

const RATES: [(u32, f64); 9] = [
    (44100, 0.40),
    (48000, 0.15),
    (22050, 0.10),
    (16000, 0.10),
    (11025, 0.05),
    (8000, 0.05),
    (32000, 0.05),
    (24000, 0.05),
    (96000, 0.05),
];
const ENCODINGS: [(Encoding, f64); 6] = [
    (Encoding::I16, 0.55),
    (Encoding::I24, 0.15),
    (Encoding::F32, 0.08),
    (Encoding::U8, 0.07),
    (Encoding::I32, 0.05),
    (Encoding::ImaAdpcm, 0.10),
];

fn pick<T: Copy>(rng: &mut impl Rng, table: &[(T, f64)]) -> T {
    let mut u = rng.random::<f64>();
    for &(v, w) in table {
        if u < w {
            return v;
        }
        u -= w;
    }
    table[table.len() - 1].0
}

/// A slice's manifest row and the bytes its file takes.
type SliceRow = (Vec<String>, u64);

/// One recording: its class, fold and how it sounds and is stored.
struct Recording {
    fs_id: u64,
    class: usize,
    fold: u32,
    slices: usize,
    rate: u32,
    channels: usize,
    encoding: Encoding,
    seed: u64,
}

/// Writes the corpus into `root` (created if needed) and returns what it wrote.
/// Recordings are generated in parallel, each from its own seeded
/// generator, so the output does not depend on the thread count.
///
/// # Errors
/// [`DataError::InvalidOption`] for `max_seconds` under 0.1 s; a file that
/// cannot be written.
pub fn generate_urban_synth(root: &Path, config: &SynthConfig) -> Result<SynthSummary> {
    if !(config.max_seconds.is_finite() && config.max_seconds >= 0.1) {
        return Err(DataError::InvalidOption {
            field: "max_seconds",
            rule: "must be at least 0.1",
            got: config.max_seconds.to_string(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let folds = config.folds.max(1);
    // Plan recordings until the slice budget is used: each goes to the class
    // with the fewest slices so far, and, whole, to the fold with the fewest
    // slices of that class (then overall), so folds stay balanced.
    let mut plan = Vec::new();
    let mut planned = 0;
    let mut per_class = [0usize; 10];
    let mut per_fold = vec![0usize; folds as usize];
    let mut per_fold_class = vec![[0usize; 10]; folds as usize];
    while planned < config.clips {
        let class = (0..10)
            .min_by_key(|&c| (per_class[c], c))
            .expect("ten classes");
        let slices = rng.random_range(1..=6usize).min(config.clips - planned);
        let f = (0..folds as usize)
            .min_by_key(|&f| (per_fold_class[f][class], per_fold[f], f))
            .expect("a fold");
        per_fold[f] += slices;
        per_fold_class[f][class] += slices;
        let fold = f as u32 + 1;
        plan.push(Recording {
            fs_id: 100_000 + rng.random_range(0..900_000u64) * 10 + plan.len() as u64 % 10,
            class,
            fold,
            slices,
            rate: pick(&mut rng, &RATES),
            channels: if rng.random::<f64>() < 0.35 { 2 } else { 1 },
            encoding: pick(&mut rng, &ENCODINGS),
            seed: rng.random(),
        });
        planned += slices;
        per_class[class] += slices;
    }
    let rows: Vec<Result<Vec<SliceRow>>> = plan
        .par_iter()
        .map(|rec| write_recording(root, rec, config.max_seconds))
        .collect();
    let mut csv_rows = Vec::with_capacity(config.clips);
    let mut bytes = 0;
    for r in rows {
        for (row, b) in r? {
            csv_rows.push(row);
            bytes += b;
        }
    }
    Manifest::write(
        &root.join(URBANSOUND8K_MANIFEST),
        &URBANSOUND8K_COLUMNS,
        csv_rows,
    )?;
    Ok(SynthSummary {
        clips: planned,
        recordings: plan.len(),
        bytes,
    })
}

/// Generates and writes every slice of one recording; returns the CSV rows
/// and bytes written.
fn write_recording(
    root: &Path,
    rec: &Recording,
    max_seconds: f64,
) -> Result<Vec<(Vec<String>, u64)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(rec.seed);
    let voice = Voice::new(rec.class, &mut rng);
    let dir = root.join(format!("audio/fold{}", rec.fold));
    let mut rows = Vec::new();
    let mut start = rng.random_range(0.0..30.0f64);
    // Short slices last from half a second (or half the longest) up.
    let shortest = (max_seconds / 2.0).min(0.5);
    for slice in 0..rec.slices {
        let seconds = if rng.random::<f64>() < 0.7 {
            max_seconds
        } else {
            rng.random_range(shortest..max_seconds)
        };
        let frames = (seconds * rec.rate as f64) as usize;
        let mono = render(&voice, rec.rate, frames, &mut rng);
        let samples = match rec.channels {
            1 => mono,
            _ => {
                // A second microphone: the same scene, slightly delayed and quieter.
                let delay = rng.random_range(0..(rec.rate as usize / 500).max(1));
                let gain = rng.random_range(0.6..1.0f32);
                (0..frames)
                    .flat_map(|i| {
                        [
                            mono[i],
                            gain * if i >= delay { mono[i - delay] } else { 0.0 },
                        ]
                    })
                    .collect()
            }
        };
        let name = format!("{}-{}-{}-{}.wav", rec.fs_id, rec.class, slice / 3, slice);
        let path = dir.join(&name);
        let audio = Audio {
            samples,
            channels: rec.channels,
            sample_rate: rec.rate,
        };
        std::fs::create_dir_all(&dir).map_err(crate::error::io_error(&dir))?;
        write_wav(&path, &audio, rec.encoding)?;
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let salience = if rng.random::<f64>() < 0.6 { 1 } else { 2 };
        rows.push((
            vec![
                name,
                rec.fs_id.to_string(),
                format!("{start:.6}"),
                format!("{:.6}", start + seconds),
                salience.to_string(),
                rec.fold.to_string(),
                rec.class.to_string(),
                URBANSOUND8K_CLASSES[rec.class].to_string(),
            ],
            bytes,
        ));
        start += seconds + rng.random_range(0.0..2.0);
    }
    Ok(rows)
}

/// The parameters of one recording's sound source, drawn once so that all
/// slices of a recording sound alike.
struct Voice {
    class: usize,
    /// Fundamental or centre frequency in Hz.
    f0: f64,
    /// A second frequency or rate (sweep depth, pulse rate, AM rate...).
    f1: f64,
    /// A third parameter (sweep rate, decay, brightness...).
    p: f64,
    /// Background noise colour: 0 white, 1 brown-ish.
    colour: f64,
    /// Event-to-background ratio in dB.
    snr_db: f64,
}

impl Voice {
    fn new(class: usize, rng: &mut impl Rng) -> Self {
        let mut r = |lo: f64, hi: f64| rng.random_range(lo..hi);
        let (f0, f1, p) = match class {
            0 => (r(45.0, 65.0), r(300.0, 3000.0), r(0.2, 0.9)), // air_conditioner: hum, noise band, mix
            1 => (r(300.0, 520.0), r(1.15, 1.3), r(0.3, 1.6)), // car_horn: tone, second tone ratio, length
            2 => (r(200.0, 400.0), r(2.0, 5.0), r(3.0, 8.0)), // children_playing: pitch, voices, syllables/s
            3 => (r(350.0, 900.0), r(1.0, 4.0), r(0.08, 0.3)), // dog_bark: pitch, barks, bark length
            4 => (r(250.0, 900.0), r(5.0, 30.0), r(0.2, 0.8)), // drilling: whine, AM rate, AM depth
            5 => (r(20.0, 60.0), r(0.02, 0.1), r(2.0, 8.0)), // engine_idling: firing rate, jitter, harmonics
            6 => (r(0.05, 0.35), r(1.0, 3.0), r(0.0, 0.5)),  // gun_shot: decay, shots, echo
            7 => (r(8.0, 25.0), r(0.01, 0.04), r(800.0, 3000.0)), // jackhammer: hit rate, hit length, brightness
            8 => (r(600.0, 1100.0), r(200.0, 700.0), r(0.2, 4.0)), // siren: centre, depth, sweep rate
            _ => (r(110.0, 330.0), r(0.15, 0.5), r(2.0, 4.0)), // street_music: tonic, note length, voices
        };
        Self {
            class,
            f0,
            f1,
            p,
            colour: r(0.0, 1.0),
            snr_db: r(-3.0, 18.0),
        }
    }
}

/// A white-noise sample in [-1, 1).
fn noise(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>() * 2.0 - 1.0
}

/// Sum of `n` harmonics of phase `phase` (cycles), amplitudes falling as 1/k^tilt.
fn harmonics(phase: f64, n: usize, tilt: f64) -> f64 {
    (1..=n)
        .map(|k| (TAU * phase * k as f64).sin() / (k as f64).powf(tilt))
        .sum()
}

/// Renders one slice: the source event at a random onset and length, plus
/// background noise at the recording's SNR, normalised to a random peak.
fn render(v: &Voice, rate: u32, frames: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let sr = rate as f64;
    let nyquist = sr / 2.0;
    let mut event = vec![0.0f64; frames];
    let onset = rng.random_range(0..=frames / 3);
    let len = rng
        .random_range((frames - onset) / 3..=frames - onset)
        .max(1);
    let mut phase = 0.0;
    let mut state = [0.0f64; 2];
    let jitter: Vec<f64> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
    for i in 0..len {
        let t = i as f64 / sr;
        let lim = |f: f64| f.min(nyquist * 0.9);
        event[onset + i] = match v.class {
            0 => {
                state[0] = 0.97 * state[0] + 0.03 * noise(rng);
                v.p * harmonics(v.f0 * t, 6, 1.0) * 0.3 + (1.0 - v.p) * state[0] * 8.0
            }
            1 => {
                let on = (t % (v.p + 0.2)) < v.p;
                let n = (nyquist / (v.f0 * v.f1)).min(8.0) as usize;
                f64::from(u8::from(on))
                    * (harmonics(v.f0 * t, n, 0.7) + harmonics(v.f0 * v.f1 * t, n, 0.7))
            }
            2 => {
                let syll = (t * v.p) as usize;
                let pitch = v.f0 * (1.0 + 0.25 * jitter[syll % 16]);
                phase += pitch / sr;
                let formant = 1.0 + 0.5 * (TAU * (syll as f64 * 0.37)).sin();
                let voiced = harmonics(
                    phase,
                    (nyquist / pitch).min(12.0) as usize,
                    1.6 - 0.6 * formant,
                );
                voiced * (0.5 + 0.5 * (TAU * t * v.p).sin().abs()) + 0.2 * noise(rng) * v.f1 / 5.0
            }
            3 => {
                let period = len as f64 / sr / v.f1.max(1.0);
                let local = t % period;
                if local < v.p {
                    let env = (local / v.p * std::f64::consts::PI).sin();
                    phase += lim(v.f0 * (1.0 - 0.4 * local / v.p)) / sr;
                    env * (harmonics(phase, 5, 1.0) + 0.6 * noise(rng))
                } else {
                    0.0
                }
            }
            4 => {
                let am = 1.0 - v.p * (0.5 + 0.5 * (TAU * v.f1 * t).sin());
                am * (harmonics(lim(v.f0) * t, (nyquist / v.f0).min(6.0) as usize, 0.8)
                    + 0.3 * noise(rng))
            }
            5 => {
                phase += v.f0 * (1.0 + v.f1 * jitter[(t * 4.0) as usize % 16]) / sr;
                harmonics(phase, v.p as usize, 0.6) + 0.2 * noise(rng)
            }
            6 => {
                let shots = v.f1.floor().max(1.0);
                let gap = len as f64 / sr / shots;
                let local = t % gap;
                let echo = if local > 0.08 {
                    v.p * (-(local - 0.08) / v.f0).exp()
                } else {
                    0.0
                };
                ((-local / v.f0).exp() + echo) * noise(rng)
            }
            7 => {
                let local = t % (1.0 / v.f0);
                if local < v.f1 {
                    state[0] += (noise(rng) - state[0]) * (v.p / sr).min(1.0);
                    (1.0 - local / v.f1) * (state[0] * 3.0 + 0.5 * noise(rng))
                } else {
                    0.0
                }
            }
            8 => {
                let f = lim(v.f0 + v.f1 * (TAU * v.p * t / 4.0).sin());
                phase += f / sr;
                harmonics(phase, 3, 1.2)
            }
            _ => {
                let note = (t / v.f1) as usize;
                let scale = [0.0, 2.0, 4.0, 5.0, 7.0, 9.0, 11.0, 12.0];
                let step = scale[((jitter[note % 16] + 1.0) * 3.99) as usize];
                let mut s = 0.0;
                for voice in 0..v.p as usize {
                    let f = lim(v.f0 * 2f64.powf((step + 4.0 * voice as f64) / 12.0));
                    s += harmonics(f * t, (nyquist / f).min(5.0) as usize, 1.0);
                }
                s * (1.0 - (t % v.f1) / v.f1 * 0.7)
            }
        };
    }
    // Background: white noise through a one-pole low-pass whose pole sets the colour.
    let pole = 0.5 + 0.49 * v.colour;
    let mut bg = vec![0.0f64; frames];
    let mut y = 0.0;
    for b in &mut bg {
        y = pole * y + (1.0 - pole) * noise(rng);
        *b = y;
    }
    let rms = |x: &[f64]| {
        (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64)
            .sqrt()
            .max(1e-12)
    };
    let (e_rms, b_rms) = (rms(&event[onset..onset + len]), rms(&bg));
    let snr = v.snr_db + rng.random_range(-3.0..3.0);
    let bg_gain = e_rms / b_rms / 10f64.powf(snr / 20.0);
    let mix: Vec<f64> = event
        .iter()
        .zip(&bg)
        .map(|(e, b)| e + bg_gain * b)
        .collect();
    let peak = mix.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-9);
    let level = rng.random_range(0.1..0.95);
    mix.into_iter().map(|x| (x / peak * level) as f32).collect()
}
