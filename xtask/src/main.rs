//! `cargo xtask`: repository automation. It orchestrates the release-built
//! `hark` binary and holds no user-facing logic of its own.
//!
//! - `cargo xtask cv [--config FILE] [hark cv flags]`: cross-validate; with
//!   no config, generate the demo corpus if missing and cross-validate
//!   `configs/demo.toml`.
//! - `cargo xtask synth [hark synth flags]`: write the demo corpus.
//! - `cargo xtask download urbansound8k|esc50 [--dir DIR] [--url URL]
//!   [--checksum md5:HEX|sha256:HEX]`: download with resume, verify,
//!   unpack into `DIR` (default `datasets/`) and print the sample-rate and
//!   bit-depth histogram.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use xtask::download::{Source, describe};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("cv") => cv(&args[1..]),
        Some("synth") => hark(&with_default(&args[1..], "synth", &[])),
        Some("download") => match download_args(&args[1..]) {
            Ok((source, dir)) => download(&source, &dir),
            Err(e) => {
                eprintln!("cargo xtask download: {e:#}\n{DOWNLOAD_USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "usage: cargo xtask cv [--config FILE] [hark cv flags] | synth [flags]\n       {DOWNLOAD_USAGE}"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cargo xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `[command] + args`, with `extra` appended.
fn with_default(args: &[String], command: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![command.to_string()];
    v.extend(args.iter().cloned());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Builds `hark` in release mode (training must run optimised) and runs it.
fn hark(args: &[String]) -> Result<(), String> {
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "hark-cli", "--bin", "hark"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("running {cargo}: {e}"))?;
    if !status.success() {
        return Err("building hark failed".into());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("hark");
    let status = Command::new(&bin)
        .args(args)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("hark {} failed ({status})", args.join(" ")))
    }
}

fn cv(args: &[String]) -> Result<(), String> {
    let start = Instant::now();
    let mut args = args.to_vec();
    if !args
        .iter()
        .any(|a| a == "--config" || a == "-c" || a.starts_with("--config="))
    {
        let corpus = root().join("datasets/urban-synth");
        if !corpus.join("metadata/UrbanSound8K.csv").exists() {
            eprintln!(
                "cargo xtask: generating the demo corpus in {}",
                corpus.display()
            );
            hark(&[
                "synth".to_string(),
                "--out".to_string(),
                corpus.display().to_string(),
            ])?;
        }
        args.extend(["--config".to_string(), "configs/demo.toml".to_string()]);
    }
    hark(&with_default(&args, "cv", &[]))?;
    eprintln!(
        "cargo xtask: cross-validation took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

const DOWNLOAD_USAGE: &str = "usage: cargo xtask download urbansound8k|esc50 [--dir DIR] [--url URL] [--checksum md5:HEX|sha256:HEX]";

/// The dataset and download directory of `download`'s arguments.
fn download_args(args: &[String]) -> anyhow::Result<(Source, PathBuf)> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("which dataset?"))?;
    let mut source = Source::named(name)?;
    let mut dir = root().join("datasets");
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--dir" => dir = PathBuf::from(value()?),
            "--url" => source.url.clone_from(value()?),
            "--checksum" => source.checksum = Some(value()?.parse()?),
            other => anyhow::bail!("unknown flag {other:?}"),
        }
    }
    Ok((source, dir))
}

fn download(source: &Source, dir: &Path) -> Result<(), String> {
    let mut log = |line: &str| eprintln!("cargo xtask: {line}");
    let root = xtask::download::fetch(source, dir, &mut log).map_err(|e| format!("{e:#}"))?;
    let summary = describe(&source.kind, &root).map_err(|e| format!("{e:#}"))?;
    print!("{summary}");
    Ok(())
}
