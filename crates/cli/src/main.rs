//! The `hark` command-line tool: glue over hark-data, hark-models and
//! hark-train. [`flags`] holds what the user types, [`args`] turns it into
//! library configs, [`commands`] runs them; `main` only dispatches.
//!
//! Exit codes: 0 success, 1 the run failed, 2 bad usage or config.

mod args;
mod commands;
mod console;
mod flags;
mod listen;
mod mic;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Task;
use crate::flags::Flags;

// glibc returns large freed buffers to the OS after every training step and
// refills them through page faults; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let level = match (flags.quiet, flags.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::INFO,
        (false, 1) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_max_level(level)
        .init();
    if flags.threads > 0 {
        // Fails only if a pool exists already, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(flags.threads)
            .build_global();
    }
    let bars = std::io::stderr().is_terminal() && !flags.quiet;
    let result = Task::from_flags(flags.command)
        .and_then(|task| commands::run_task(task, bars, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hark: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A closed output pipe (`hark ... | head -1`) ends quietly.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, `: `-joined, each cause once: a library error
/// that already quotes its source ("x.wav: Is a directory") is not followed
/// by that source again.
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// 2 for an error in what the user asked (a config, an option, a flag), 1
/// for a run that failed.
fn exit_code(e: &anyhow::Error) -> u8 {
    use hark_data::DataError;
    use hark_train::Error;
    // The libraries' wrapping variants are transparent, so a cause can be
    // reached inside its wrapper or on its own.
    let data = |e: &DataError| matches!(e, DataError::InvalidOption { .. });
    let model = |e: &hark_models::Error| matches!(e, hark_models::Error::Spec { .. });
    let usage = e.chain().any(|c| {
        c.downcast_ref::<Error>().is_some_and(|e| match e {
            Error::Config { .. } | Error::ConfigFile { .. } => true,
            Error::Data(e) => data(e),
            Error::Model(e) => model(e),
            _ => false,
        }) || c.downcast_ref::<DataError>().is_some_and(data)
            || c.downcast_ref::<hark_models::Error>().is_some_and(model)
    });
    if usage { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_the_message_already_quotes_is_printed_once() {
        let kind = std::io::ErrorKind::IsADirectory;
        let data = hark_data::DataError::Io {
            path: "x.wav".into(),
            source: kind.into(),
        };
        let e = anyhow::Error::new(data).context("preparing data");
        let os = std::io::Error::from(kind);
        assert_eq!(message(&e), format!("preparing data: x.wav: {os}"), "{e:#}");
    }

    #[test]
    fn config_and_option_errors_exit_2_and_run_failures_1() {
        let config = hark_train::Error::Config {
            field: "train.epochs",
            rule: "must be > 0",
            got: "0".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::new(config).context("x")), 2);
        let option = hark_data::DataError::InvalidOption {
            field: "batch_size",
            rule: "must be > 0",
            got: "0".into(),
        };
        assert_eq!(exit_code(&hark_train::Error::from(option).into()), 2);
        let failed = hark_train::Error::EmptySplit("test");
        assert_eq!(exit_code(&failed.into()), 1);
    }
}
