//! `cargo xtask`: repository automation. It builds the release `hark` with
//! the README's one build command and runs it; it holds no user-facing logic
//! and no dependencies of its own.
//!
//! - `cargo xtask cv [--config FILE] [hark cv flags]`: cross-validate; with
//!   no config, generate the demo corpus if missing and cross-validate
//!   `configs/demo.toml`.
//! - `cargo xtask synth [hark synth flags]`: write the demo corpus.
//! - `cargo xtask download urbansound8k|esc50 [hark download flags]`:
//!   `hark download`, into the repository's `datasets/` unless `--dir` says
//!   otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[cfg(test)]
mod tidy;

/// The build command of the README: building anything else (another
/// package, `--bin`, other features) would compile crates a second time.
const BUILD: [&str; 4] = ["build", "--release", "-p", "hark-cli"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        return usage();
    };
    let result = match task.as_str() {
        "cv" => cv(rest),
        "synth" => hark("synth", rest),
        "download" => {
            let mut rest = rest.to_vec();
            if !has_flag(&rest, "--dir") {
                rest.extend([
                    "--dir".into(),
                    root().join("datasets").display().to_string(),
                ]);
            }
            hark("download", &rest)
        }
        _ => return usage(),
    };
    result.err().unwrap_or(ExitCode::SUCCESS)
}

/// Prints `message` and fails with exit code 1.
fn fail(message: String) -> ExitCode {
    eprintln!("cargo xtask: {message}");
    ExitCode::FAILURE
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask cv [--config FILE] [hark cv flags]\n       \
         cargo xtask synth [hark synth flags]\n       \
         cargo xtask download urbansound8k|esc50 [hark download flags]"
    );
    ExitCode::from(2)
}

/// The repository root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether `args` set `flag`, as `--flag VALUE` or `--flag=VALUE`.
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// Builds `hark` in release mode (training must run optimised) and runs
/// `hark COMMAND ARGS` from the repository root. A failing `hark` passes its
/// exit code on, so usage errors still exit 2.
fn hark(command: &str, args: &[String]) -> Result<(), ExitCode> {
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(BUILD)
        .current_dir(&root)
        .status()
        .map_err(|e| fail(format!("running {cargo}: {e}")))?;
    if !status.success() {
        return Err(fail("building hark failed".into()));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("hark");
    let status = Command::new(&bin)
        .arg(command)
        .args(args)
        .current_dir(&root)
        .status()
        .map_err(|e| fail(format!("running {}: {e}", bin.display())))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        None => Err(fail(format!("hark {command} was stopped ({status})"))),
    }
}

fn cv(args: &[String]) -> Result<(), ExitCode> {
    let start = Instant::now();
    let mut args = args.to_vec();
    if !has_flag(&args, "--config") && !args.iter().any(|a| a == "-c") {
        let corpus = root().join("datasets/urban-synth");
        if !corpus.join("metadata/UrbanSound8K.csv").exists() {
            eprintln!(
                "cargo xtask: generating the demo corpus in {}",
                corpus.display()
            );
            hark("synth", &["--out".into(), corpus.display().to_string()])?;
        }
        args.extend(["--config".into(), "configs/demo.toml".into()]);
    }
    hark("cv", &args)?;
    eprintln!(
        "cargo xtask: cross-validation took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_found_in_both_spellings_and_not_by_prefix() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_flag(&args(&["esc50", "--dir", "x"]), "--dir"));
        assert!(has_flag(&args(&["--dir=x"]), "--dir"));
        assert!(!has_flag(&args(&["--directory", "x"]), "--dir"));
        assert!(!has_flag(&args(&["x"]), "--dir"));
    }
}
