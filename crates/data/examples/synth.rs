//! Writes the urban-synth demo corpus (UrbanSound8K layout) and prints what
//! it wrote and how long it took as JSON.
//!
//! ```text
//! synth --out datasets/urban-synth [--clips 1000] [--seed 0] [--folds 10] [--max-seconds 4]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use hark_data::{SynthConfig, generate_urban_synth};

fn main() {
    if let Err(e) = run() {
        eprintln!("synth: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = None;
    let mut cfg = SynthConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let bad = |what: &str| format!("{arg}: expected {what}, got {value:?}");
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(&value)),
            "--clips" => cfg.clips = value.parse().map_err(|_| bad("an integer"))?,
            "--seed" => cfg.seed = value.parse().map_err(|_| bad("an integer"))?,
            "--folds" => cfg.folds = value.parse().map_err(|_| bad("an integer"))?,
            "--max-seconds" => cfg.max_seconds = value.parse().map_err(|_| bad("seconds"))?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let out = out.ok_or("--out is required")?;
    let start = Instant::now();
    let s = generate_urban_synth(&out, &cfg)?;
    let json = serde_json::json!({
        "path": out,
        "clips": s.clips,
        "recordings": s.recordings,
        "megabytes": s.bytes as f64 / 1e6,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
