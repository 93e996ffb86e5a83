//! Computes a log-mel spectrogram of a WAV file and writes it as a float32
//! `.npy` array of shape `[n_mels, n_frames]`.
//!
//! ```text
//! logmel INPUT.wav OUTPUT.npy [--n-fft 400] [--hop-length N] [--win-length N]
//!        [--n-mels 128] [--f-min 0] [--f-max HZ] [--mel-scale htk|slaney]
//!        [--norm none|slaney] [--power 2] [--center true|false]
//!        [--pad-mode reflect|constant] [--top-db 80|none] [--sample-rate HZ]
//! ```
//!
//! Defaults are torchaudio's `MelSpectrogram` + `AmplitudeToDB(top_db=80)`
//! except `n_fft`, which is 400 as in torchaudio. Multi-channel files are mixed
//! down to mono; `--sample-rate` resamples first. With `--power 1` the dB
//! conversion is 20 log10 (amplitude), with `--power 2` 10 log10 (power).

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use hark_dsp::{
    DbConfig, LogMelSpectrogram, MelNorm, MelScale, MelSpectrogramConfig, PadMode,
    mix_down_interleaved, resample,
};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const USAGE: &str = "usage: logmel INPUT.wav OUTPUT.npy [--n-fft N] [--hop-length N] \
[--win-length N] [--n-mels N] [--f-min HZ] [--f-max HZ] [--mel-scale htk|slaney] \
[--norm none|slaney] [--power P] [--center true|false] [--pad-mode reflect|constant] \
[--top-db DB|none] [--sample-rate HZ]";

fn main() {
    if let Err(err) = run(std::env::args().skip(1).collect()) {
        eprintln!("logmel: {err}");
        std::process::exit(2);
    }
}

fn run(args: Vec<String>) -> BoxResult<()> {
    let mut positional = Vec::new();
    let mut cfg = MelSpectrogramConfig {
        n_fft: 400,
        ..Default::default()
    };
    let mut db = DbConfig::default();
    let mut target_rate = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if !arg.starts_with("--") {
            positional.push(arg);
            continue;
        }
        if arg == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = iter
            .next()
            .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{arg}: expected {what}, got {value:?}");
        match arg.as_str() {
            "--n-fft" => cfg.n_fft = value.parse().map_err(|_| bad("an integer"))?,
            "--hop-length" => cfg.hop_length = Some(value.parse().map_err(|_| bad("an integer"))?),
            "--win-length" => cfg.win_length = Some(value.parse().map_err(|_| bad("an integer"))?),
            "--n-mels" => cfg.n_mels = value.parse().map_err(|_| bad("an integer"))?,
            "--f-min" => cfg.f_min = value.parse().map_err(|_| bad("a number"))?,
            "--f-max" => cfg.f_max = Some(value.parse().map_err(|_| bad("a number"))?),
            "--power" => cfg.power = value.parse().map_err(|_| bad("a number"))?,
            "--sample-rate" => {
                target_rate = Some(value.parse().map_err(|_| bad("an integer rate in Hz"))?)
            }
            "--center" => cfg.center = value.parse().map_err(|_| bad("true or false"))?,
            "--mel-scale" => {
                cfg.mel_scale = match value.as_str() {
                    "htk" => MelScale::Htk,
                    "slaney" => MelScale::Slaney,
                    _ => return Err(bad("htk or slaney").into()),
                }
            }
            "--norm" => {
                cfg.norm = match value.as_str() {
                    "none" => MelNorm::None,
                    "slaney" => MelNorm::Slaney,
                    _ => return Err(bad("none or slaney").into()),
                }
            }
            "--pad-mode" => {
                cfg.pad_mode = match value.as_str() {
                    "reflect" => PadMode::Reflect,
                    "constant" => PadMode::Constant,
                    _ => return Err(bad("reflect or constant").into()),
                }
            }
            "--top-db" => {
                db.top_db = match value.as_str() {
                    "none" => None,
                    v => Some(v.parse().map_err(|_| bad("a number or none"))?),
                }
            }
            _ => return Err(format!("unknown flag {arg}\n{USAGE}").into()),
        }
    }
    let [input, output] = positional.as_slice() else {
        return Err(USAGE.into());
    };

    let (samples, rate) = read_mono(Path::new(input))?;
    let samples = match target_rate {
        Some(to) if to != rate => {
            resample(&samples, rate, to).map_err(|e| format!("{input}: {e}"))?
        }
        _ => samples,
    };
    cfg.sample_rate = target_rate.unwrap_or(rate);
    let logmel = LogMelSpectrogram::new(&cfg, &db)?;
    let spec = logmel
        .process(&samples)
        .map_err(|e| format!("{input}: {e}"))?;
    write_npy(Path::new(output), spec.as_slice(), spec.shape())?;
    eprintln!(
        "{output}: {} x {} log-mel at {} Hz",
        spec.rows(),
        spec.frames(),
        cfg.sample_rate
    );
    Ok(())
}

/// Reads a PCM or float WAV into mono f32 samples in [-1, 1] and its rate.
fn read_mono(path: &Path) -> BoxResult<(Vec<f32>, u32)> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()?
        }
    };
    let mono = mix_down_interleaved(&interleaved, spec.channels as usize)?;
    Ok((mono, spec.sample_rate))
}

/// Writes a row-major float32 `.npy` (format 1.0).
fn write_npy(path: &Path, data: &[f32], (rows, cols): (usize, usize)) -> BoxResult<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out =
        BufWriter::new(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?);
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}
