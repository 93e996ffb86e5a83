//! Runs the feature pipeline over a whole dataset, through the cache, with a
//! progress line on stderr, and prints clips/s, cache hits and failures as
//! JSON.
//!
//! ```text
//! extract --kind KIND --path DIR --cache DIR [--sample-rate 22050] [--n-fft 1024]
//!         [--hop-length 512] [--n-mels 64] [--duration 4|none] [--channels 1]
//!         [--threads N] [--strict]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hark_data::{
    DatasetKind, FeatureCache, FeatureConfig, FeatureExtractor, LoadOptions, Progress, Stage,
    extract_all, open_dataset,
};

/// Rewrites one stderr line at most every 1 %.
struct Line(AtomicUsize);

impl Progress for Line {
    fn update(&self, done: usize, total: usize) {
        let pct = done * 100 / total.max(1);
        if self.0.swap(pct, Ordering::Relaxed) != pct || done == total {
            eprint!("\rextracting: {done}/{total} ({pct}%)");
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("extract: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut kind, mut path, mut cache, mut strict, mut threads) = (None, None, None, false, None);
    let mut cfg = FeatureConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--strict" {
            strict = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let bad = |what: &str| format!("{arg}: expected {what}, got {value:?}");
        match arg.as_str() {
            "--kind" => kind = Some(value.parse::<DatasetKind>()?),
            "--path" => path = Some(PathBuf::from(&value)),
            "--cache" => cache = Some(PathBuf::from(&value)),
            "--sample-rate" => {
                cfg.mel.sample_rate = value.parse().map_err(|_| bad("a rate in Hz"))?
            }
            "--n-fft" => cfg.mel.n_fft = value.parse().map_err(|_| bad("an integer"))?,
            "--hop-length" => {
                cfg.mel.hop_length = Some(value.parse().map_err(|_| bad("an integer"))?)
            }
            "--n-mels" => cfg.mel.n_mels = value.parse().map_err(|_| bad("an integer"))?,
            "--channels" => cfg.channels = value.parse().map_err(|_| bad("an integer"))?,
            "--duration" => {
                cfg.duration = if value == "none" {
                    None
                } else {
                    Some(value.parse().map_err(|_| bad("seconds or none"))?)
                }
            }
            "--threads" => threads = Some(value.parse::<usize>().map_err(|_| bad("an integer"))?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let (kind, path) = (
        kind.ok_or("--kind is required")?,
        path.ok_or("--path is required")?,
    );
    let ds = open_dataset(
        kind,
        &path,
        &LoadOptions {
            strict,
            ..Default::default()
        },
    )?;
    let extractor = FeatureExtractor::new(&cfg)?;
    let cache = cache.map(|dir| FeatureCache::new(&dir, &cfg));
    let start = Instant::now();
    let out = extract_all(
        &ds,
        &extractor,
        Stage::LogMel,
        cache.as_ref(),
        strict,
        &Line(AtomicUsize::new(usize::MAX)),
    )?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!();
    let summary = serde_json::json!({
        "clips": ds.examples.len(),
        "seconds": secs,
        "clips_per_second": ds.examples.len() as f64 / secs,
        "cache_hits": out.cache_hits,
        "computed": out.computed,
        "corrupt_recomputed": out.corrupt,
        "failed": out.failed,
        "missing": ds.skipped,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
