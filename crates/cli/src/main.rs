//! The `hark` command-line tool: glue over hark-data, hark-models and
//! hark-train. Parse the flags, call the library, print.
//!
//! Exit codes: 0 success, 1 the run failed, 2 bad usage or config.

mod console;
mod predict;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use console::{Console, ExtractProgress};
use hark_cli::download::{self, Checksum, Source};
use hark_data::Split;
use hark_train::{
    ClassificationReport, ConfusionMatrix, ExperimentConfig, ModelInfo, Prepared, checkpoint_paths,
    cross_validate, evaluate, loader, prepare, run,
};

// glibc returns large freed buffers to the OS after every training step and
// refills them through page faults; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train, evaluate and run audio classifiers.
#[derive(Debug, Parser)]
#[command(
    name = "hark",
    version,
    after_help = "Exit codes: 0 success, 1 the run failed, 2 bad usage or config."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads (0: every core).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// The config file and its overrides, shared by the commands that read one.
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The experiment config (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Override a config key: `--set train.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train one model (a fold of a fold dataset, or the dataset's split).
    Train {
        /// The experiment config (TOML).
        #[arg(long, short, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Override a config key: `--set train.epochs=5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Test fold, for datasets with folds (default: the config's
        /// data.fold, else the first).
        #[arg(long)]
        fold: Option<u32>,
        /// Run directory (default: the config's output.dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in RUN_DIR from its last checkpoint with the
        /// run's own config.toml; `--set train.epochs=N` may extend it.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["out", "config", "fold"])]
        resume: Option<PathBuf>,
    },
    /// Cross-validate over a dataset's folds.
    Cv {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only these folds, e.g. `1,3` (finished folds are skipped anyway).
        #[arg(long, value_delimiter = ',')]
        folds: Option<Vec<u32>>,
        /// Root of the fold directories (default: the config's output.dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Evaluate a run's best checkpoint on its test data and print the report.
    Eval {
        /// The run directory.
        #[arg(long, value_name = "RUN_DIR")]
        checkpoint: PathBuf,
        /// Test fold (default: the run's own).
        #[arg(long)]
        fold: Option<u32>,
        /// Which part to evaluate when the dataset has no folds.
        #[arg(long, default_value = "test", value_parser = ["train", "val", "test"])]
        split: String,
    },
    /// Classify WAV files with a trained run, in sliding windows for long files.
    Predict(predict::PredictArgs),
    /// Compute and cache the features of a config's dataset.
    Features {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Describe a WAV file, a dataset or a model.
    Inspect {
        #[command(subcommand)]
        what: Inspect,
    },
    /// Generate the urban-synth demo corpus (UrbanSound8K layout).
    Synth {
        /// Where to write it.
        #[arg(long, default_value = "datasets/urban-synth")]
        out: PathBuf,
        /// Slices to write.
        #[arg(long, default_value_t = 1000)]
        clips: usize,
        /// Folds.
        #[arg(long, default_value_t = 10)]
        folds: u32,
        /// Longest slice in seconds.
        #[arg(long, default_value_t = 4.0)]
        max_seconds: f64,
        /// Seed: the same seed writes the same corpus.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Download a public dataset (resumable, checksum-verified), unpack it
    /// and print its sample-rate and bit-depth histogram.
    Download {
        /// The dataset.
        dataset: Dataset,
        /// The download directory; the dataset lands in a folder inside it.
        #[arg(long, default_value = "datasets")]
        dir: PathBuf,
        /// Fetch the archive from this URL instead (a mirror).
        #[arg(long)]
        url: Option<String>,
        /// The archive's expected digest, `md5:HEX` or `sha256:HEX`
        /// (default: the published one, if any).
        #[arg(long)]
        checksum: Option<Checksum>,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The datasets `hark download` knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dataset {
    /// UrbanSound8K (6 GB, 10 folds).
    Urbansound8k,
    /// ESC-50 (600 MB, 5 folds).
    Esc50,
}

#[derive(Debug, Subcommand)]
enum Inspect {
    /// Format, rate, channels and length of WAV files.
    Wav {
        /// The files.
        files: Vec<PathBuf>,
    },
    /// Classes, class balance, folds and the sample-rate histogram.
    Dataset {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Layers, output shapes and parameter count of a config's model.
    Model {
        #[command(flatten)]
        config: ConfigArgs,
        /// Classes (default: the dataset's).
        #[arg(long)]
        classes: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let level = match (cli.quiet, cli.verbose) {
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
    if cli.threads > 0 {
        // Fails only if a pool exists already, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cli.threads)
            .build_global();
    }
    let bars = std::io::stderr().is_terminal() && !cli.quiet;
    match run_command(cli.command, bars) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("hark: {e:#}");
            let usage = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<hark_train::Error>(),
                    Some(hark_train::Error::Config { .. } | hark_train::Error::ConfigFile { .. })
                )
            });
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn load_config(args: &ConfigArgs) -> Result<ExperimentConfig> {
    Ok(ExperimentConfig::load(&args.config, &args.set)?)
}

fn prepared(config: &ExperimentConfig, bars: bool) -> Result<Prepared> {
    let p = prepare(config, &ExtractProgress::new(bars))
        .with_context(|| format!("preparing {}", config.data.path.display()))?;
    for s in &p.skipped {
        tracing::warn!("skipped {}: {}", s.path.display(), s.reason);
    }
    tracing::info!(
        "{} examples in {} classes ({} features from the cache, {} files skipped)",
        p.dataset.examples.len(),
        p.dataset.classes.len(),
        p.cache_hits,
        p.skipped.len()
    );
    Ok(p)
}

fn out_dir(config: &ExperimentConfig, out: Option<PathBuf>) -> PathBuf {
    out.or_else(|| config.output.dir.clone())
        .unwrap_or_else(|| PathBuf::from("runs/run"))
}

fn run_command(command: Command, bars: bool) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Train {
            config,
            set,
            fold,
            out,
            resume,
        } => {
            let (mut config, dir) = match (resume, config) {
                (Some(dir), _) => (resumed_config(&dir, &set)?, dir),
                (None, Some(path)) => {
                    let c = load_config(&ConfigArgs { config: path, set })?;
                    let dir = out_dir(&c, out);
                    (c, dir)
                }
                (None, None) => unreachable!("clap requires --config without --resume"),
            };
            if fold.is_some() {
                config.data.fold = fold;
            }
            let p = prepared(&config, bars)?;
            let splits = p.splits(&config, test_fold(&config, &p))?;
            let result = run(&p, &config, &splits, &dir, &mut Console::new(bars))?;
            writeln!(
                stdout,
                "{}",
                std::fs::read_to_string(dir.join("report.txt"))?
            )?;
            writeln!(
                stdout,
                "test accuracy {:.4}, macro F1 {:.4}; run directory {}",
                result.accuracy,
                result.macro_f1,
                dir.display()
            )?;
        }
        Command::Cv { config, folds, out } => {
            let config = load_config(&config)?;
            let root = out_dir(&config, out);
            let p = prepared(&config, bars)?;
            let summary = cross_validate(
                &p,
                &config,
                folds.as_deref(),
                &root,
                &mut Console::new(bars),
            )?;
            write!(stdout, "{}", summary.to_markdown())?;
            writeln!(stdout, "summary: {}", root.join("cv_summary.md").display())?;
        }
        Command::Eval {
            checkpoint,
            fold,
            split,
        } => eval(&checkpoint, fold, &split, bars, &mut stdout)?,
        Command::Predict(args) => predict::predict(&args, &mut stdout)?,
        Command::Features { config } => {
            let config = load_config(&config)?;
            let p = prepared(&config, bars)?;
            let n = p.features.iter().flatten().count();
            writeln!(
                stdout,
                "{n} of {} examples have features in the cache",
                p.dataset.examples.len()
            )?;
        }
        Command::Inspect { what } => inspect(what, bars, &mut stdout)?,
        Command::Synth {
            out,
            clips,
            folds,
            max_seconds,
            seed,
        } => {
            let config = hark_data::SynthConfig {
                clips,
                folds,
                max_seconds,
                seed,
            };
            let s = hark_data::generate_urban_synth(&out, &config)?;
            writeln!(
                stdout,
                "wrote {} clips of {} recordings ({:.1} MB) to {}",
                s.clips,
                s.recordings,
                s.bytes as f64 / 1e6,
                out.display()
            )?;
        }
        Command::Download {
            dataset,
            dir,
            url,
            checksum,
        } => {
            let name = dataset
                .to_possible_value()
                .map(|v| v.get_name().to_string());
            let mut source = Source::named(name.as_deref().unwrap_or_default())?;
            if let Some(url) = url {
                source.url = url;
            }
            if checksum.is_some() {
                source.checksum = checksum;
            }
            let root = download::fetch(&source, &dir, &mut |line| tracing::info!("{line}"))?;
            write!(stdout, "{}", download::describe(&source.kind, &root)?)?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hark", &mut stdout);
        }
    }
    Ok(())
}

/// The test fold of a single run: the config's, or else the dataset's first
/// (none for a dataset without folds).
fn test_fold(config: &ExperimentConfig, p: &Prepared) -> Option<u32> {
    config
        .data
        .fold
        .or_else(|| p.dataset.folds.and(p.folds().first().copied()))
}

/// The config of the run in `dir` for resuming it: only the epoch count may
/// change, so that the rest of the run trains as it began.
fn resumed_config(dir: &Path, set: &[String]) -> Result<ExperimentConfig> {
    if let Some(bad) = set.iter().find(|s| !s.starts_with("train.epochs=")) {
        return Err(hark_train::Error::Config {
            field: "--set",
            rule: "may only change train.epochs when resuming",
            got: bad.clone(),
        }
        .into());
    }
    Ok(ExperimentConfig::load(&dir.join("config.toml"), set)?)
}

fn eval(
    dir: &Path,
    fold: Option<u32>,
    split: &str,
    bars: bool,
    out: &mut impl Write,
) -> Result<()> {
    let mut config = ExperimentConfig::load(&dir.join("config.toml"), &[])?;
    let info = ModelInfo::read(dir)?;
    let model = info.build(config.train.seed)?;
    model.load(&checkpoint_paths(dir, "best").0)?;
    let p = prepared(&config, bars)?;
    if p.dataset.classes != info.classes {
        bail!(
            "the dataset's classes {:?} are not the run's {:?}",
            p.dataset.classes,
            info.classes
        );
    }
    if fold.is_some() {
        config.data.fold = fold;
    }
    let splits = p.splits(&config, test_fold(&config, &p))?;
    let which = match split {
        "train" => Split::Train,
        "val" => Split::Val,
        _ => Split::Test,
    };
    let (clips, labels, _) = p.subset(&splits, which);
    if clips.is_empty() {
        bail!("no {split} examples to evaluate");
    }
    let eval = evaluate(
        &model,
        &loader(&p.extractor, &config, (clips, labels), false)?,
    )?;
    let truth: Vec<usize> = eval.predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<usize> = eval.predictions.iter().map(|p| p.predicted).collect();
    let matrix = ConfusionMatrix::from_labels(info.classes.len(), &truth, &predicted)?;
    let report = ClassificationReport::new(&matrix, &info.classes)?;
    let text = report.to_string();
    std::fs::write(dir.join(format!("eval_{split}.txt")), &text)
        .with_context(|| format!("writing to {}", dir.display()))?;
    writeln!(out, "{text}")?;
    writeln!(
        out,
        "loss {:.4}, accuracy {:.4} on {} {split} examples",
        eval.loss,
        eval.accuracy,
        eval.predictions.len()
    )?;
    Ok(())
}

fn inspect(what: Inspect, bars: bool, out: &mut impl Write) -> Result<()> {
    match what {
        Inspect::Wav { files } => {
            let mut bad = 0;
            for f in &files {
                match hark_data::inspect(f) {
                    Ok(i) => writeln!(
                        out,
                        "{}: {:?}{}, {} Hz, {} bit, {} channel(s), {} frames, {:.3} s",
                        f.display(),
                        i.codec,
                        if i.extensible { " (extensible)" } else { "" },
                        i.sample_rate,
                        i.bits_per_sample,
                        i.channels,
                        i.frames,
                        i.duration_secs()
                    )?,
                    Err(e) => {
                        bad += 1;
                        tracing::error!("{e}");
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} of {} files could not be read", files.len());
            }
        }
        Inspect::Dataset { config } => {
            let config = load_config(&config)?;
            let kind = config
                .data
                .kind
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?;
            let options = hark_data::LoadOptions {
                classes: config.data.classes.clone(),
                strict: config.data.strict,
            };
            let d = hark_data::open_dataset(kind, &config.data.path, &options)?;
            let hist = hark_data::format_histogram(&d);
            let summary = serde_json::json!({
                "kind": d.kind,
                "examples": d.examples.len(),
                "classes": d.classes.iter().zip(d.class_counts()).map(|(c, n)| serde_json::json!({"class": c, "examples": n})).collect::<Vec<_>>(),
                "by_part": d.counts_by_part(),
                "skipped": d.skipped.len(),
                "formats": hist,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
        }
        Inspect::Model { config, classes } => {
            let config = load_config(&config)?;
            let (n, input) = match classes {
                Some(n) => (n, input_shape_of(&config)),
                None => {
                    let p = prepared(&config, bars)?;
                    (p.dataset.classes.len(), p.input_shape()?)
                }
            };
            let model = hark_models::Model::new(&config.model, n, input, config.train.seed)?;
            writeln!(out, "{}", model.summary()?)?;
        }
    }
    Ok(())
}

/// The input shape a config's features give, without reading the dataset
/// (fixed-length features only; variable length assumes 4 s).
fn input_shape_of(config: &ExperimentConfig) -> hark_models::InputShape {
    let f = &config.features;
    let samples = (f.duration.unwrap_or(4.0) * f.mel.sample_rate as f64).round() as usize;
    let hop = f.mel.hop_length.unwrap_or(f.mel.n_fft / 4).max(1);
    let frames = if f.mel.center {
        samples / hop + 1
    } else {
        (samples.saturating_sub(f.mel.n_fft)) / hop + 1
    };
    hark_models::InputShape {
        channels: f.channels,
        height: f.mel.n_mels,
        frames,
    }
}
