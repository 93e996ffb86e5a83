//! The one conversion from flags to what the libraries take: configs are
//! loaded with their overrides, run directories resolved, names parsed. A
//! bad flag or config fails here, before any work starts.

use std::path::PathBuf;

use anyhow::Result;
use hark_cli::download::Source;
use hark_cli::slurm::{CvJobs, Resources};
use hark_data::{EventSynthConfig, Split, SynthConfig};
use hark_train::{Checkpoint, ExperimentConfig, RunDir, Shard};

use crate::flags::{
    Command, ConfigArgs, Dataset, EvalSplit, Inspect, ListenArgs, PredictArgs, Scheduler,
    SlurmArgs, SynthKind,
};

/// A command, ready to run.
#[derive(Debug)]
pub enum Task {
    /// Train one run (possibly resumed) into `run`.
    Train {
        /// The config, with overrides and the fold applied.
        config: Box<ExperimentConfig>,
        /// The run directory.
        run: RunDir,
    },
    /// Cross-validate into fold directories under `root`.
    Cv {
        /// The config.
        config: Box<ExperimentConfig>,
        /// The root of the fold directories.
        root: RunDir,
        /// Only these folds.
        folds: Option<Vec<u32>>,
    },
    /// Run one fold of a cross-validation under `root`.
    CvFold {
        /// The config.
        config: Box<ExperimentConfig>,
        /// The cross-validation root.
        root: RunDir,
        /// The test fold.
        fold: u32,
    },
    /// Summarise the finished folds under `root`.
    CvMerge {
        /// The cross-validation root.
        root: RunDir,
        /// Whether unfinished folds still mean success.
        allow_missing: bool,
    },
    /// Print or write a Slurm submit script.
    EmitSlurm {
        /// The config, to find the dataset's folds.
        config: Box<ExperimentConfig>,
        /// The jobs, paths absolute (folds filled in when run).
        jobs: Box<CvJobs>,
        /// Only these folds (default: every fold of the dataset).
        folds: Option<Vec<u32>>,
        /// Where to write the script (standard output when `None`).
        out: Option<PathBuf>,
    },
    /// Evaluate a run's best checkpoint on one part of its split.
    Eval {
        /// The run.
        run: RunDir,
        /// The test fold to evaluate on, when not the run's own.
        fold: Option<u32>,
        /// The part.
        split: Split,
    },
    /// Classify files with a run.
    Predict {
        /// The run.
        run: RunDir,
        /// The flags (files, output format).
        args: PredictArgs,
    },
    /// Detect events in a stream.
    Listen {
        /// The run.
        run: RunDir,
        /// The flags.
        args: ListenArgs,
    },
    /// Write a speaker tree's phase map.
    WritePhaseMap {
        /// The config naming the tree.
        config: Box<ExperimentConfig>,
        /// Replace an existing map.
        force: bool,
    },
    /// Overfit one batch.
    Check {
        /// The config.
        config: Box<ExperimentConfig>,
        /// Most steps.
        steps: usize,
        /// The loss to reach.
        target: f32,
    },
    /// Fill the feature cache (or one shard's part of it).
    Features(Box<ExperimentConfig>, Shard),
    /// Describe audio files.
    InspectWav(Vec<PathBuf>),
    /// Describe a config's dataset.
    InspectDataset {
        /// The config.
        config: Box<ExperimentConfig>,
        /// Where to draw its pictures.
        plot: Option<PathBuf>,
    },
    /// Describe a config's model.
    InspectModel {
        /// The config.
        config: Box<ExperimentConfig>,
        /// Classes, when not the dataset's.
        classes: Option<usize>,
    },
    /// Write the demo corpus.
    Synth {
        /// Where.
        out: PathBuf,
        /// What.
        config: SynthConfig,
    },
    /// Write the events corpus.
    SynthEvents {
        /// Where.
        out: PathBuf,
        /// What.
        config: EventSynthConfig,
    },
    /// Download a dataset.
    Download {
        /// The archive and its checksum.
        source: Source,
        /// The download directory.
        dir: PathBuf,
    },
    /// Print shell completions.
    Completions(clap_complete::Shell),
}

fn load(args: &ConfigArgs) -> Result<Box<ExperimentConfig>> {
    Ok(Box::new(ExperimentConfig::load(&args.config, &args.set)?))
}

/// The run directory: `out`, else the config's `output.dir`, else `runs/run`.
fn run_dir(config: &ExperimentConfig, out: Option<PathBuf>) -> RunDir {
    RunDir::new(
        out.or_else(|| config.output.dir.clone())
            .unwrap_or_else(|| PathBuf::from("runs/run")),
    )
}

/// The jobs of `hark cv --emit slurm`, every path made absolute (the
/// folds are filled in once the dataset is read).
fn cv_jobs(
    config: &std::path::Path,
    overrides: Vec<String>,
    root: &std::path::Path,
    slurm: SlurmArgs,
) -> Result<CvJobs> {
    let workdir = std::env::current_dir()?;
    Ok(CvJobs {
        hark: std::env::current_exe()?,
        config: std::path::absolute(config)?,
        overrides,
        root: std::path::absolute(root)?,
        workdir,
        folds: Vec::new(),
        shards: slurm.shards,
        resources: Resources {
            partition: slurm.partition,
            time: slurm.time,
            cpus: slurm.cpus,
            mem: slurm.mem,
            gpus: slurm.gpus,
        },
    })
}

impl Task {
    /// The task `command` asks for.
    ///
    /// # Errors
    /// A config that cannot be read or is out of range, a resume that
    /// changes more than the epoch count, a directory that is not a run.
    pub fn from_flags(command: Command) -> Result<Self> {
        Ok(match command {
            Command::Train {
                config,
                set,
                fold,
                out,
                resume,
            } => match (resume, config) {
                (Some(dir), _) => {
                    // Only the epoch count may change, so that the rest of
                    // the run trains as it began.
                    if let Some(bad) = set.iter().find(|s| !s.starts_with("train.epochs=")) {
                        return Err(hark_train::Error::Config {
                            field: "--set",
                            rule: "may only change train.epochs when resuming",
                            got: bad.clone(),
                        }
                        .into());
                    }
                    let run = RunDir::resumable(dir)?;
                    if !run.training_state(Checkpoint::Last).exists() {
                        tracing::warn!(
                            "{} has no checkpoint yet (stopped before its first epoch ended?): \
                             training from the start",
                            run.path().display()
                        );
                    }
                    Self::Train {
                        config: Box::new(run.read_config(&set)?),
                        run,
                    }
                }
                (None, Some(path)) => {
                    let mut config = load(&ConfigArgs { config: path, set })?;
                    if fold.is_some() {
                        config.data.fold = fold;
                    }
                    let run = run_dir(&config, out);
                    Self::Train { config, run }
                }
                (None, None) => unreachable!("clap requires --config without --resume"),
            },
            Command::Cv {
                config,
                set,
                folds,
                fold,
                merge,
                allow_missing,
                emit,
                slurm,
                out,
            } => match (merge, config) {
                (Some(root), _) => Self::CvMerge {
                    root: RunDir::new(root),
                    allow_missing,
                },
                (None, Some(path)) => {
                    let config = load(&ConfigArgs {
                        config: path.clone(),
                        set: set.clone(),
                    })?;
                    match (emit, fold) {
                        (Some(Scheduler::Slurm), _) => {
                            let root = run_dir(&config, None);
                            let jobs = cv_jobs(&path, set, root.path(), slurm)?;
                            Self::EmitSlurm {
                                config,
                                jobs: Box::new(jobs),
                                folds,
                                out,
                            }
                        }
                        (None, Some(fold)) => Self::CvFold {
                            root: run_dir(&config, out),
                            config,
                            fold,
                        },
                        (None, None) => Self::Cv {
                            root: run_dir(&config, out),
                            config,
                            folds,
                        },
                    }
                }
                (None, None) => unreachable!("clap requires --config without --merge"),
            },
            Command::Eval {
                checkpoint,
                fold,
                split,
            } => Self::Eval {
                run: RunDir::open(checkpoint)?,
                fold,
                split: match split {
                    EvalSplit::Train => Split::Train,
                    EvalSplit::Val => Split::Val,
                    EvalSplit::Test => Split::Test,
                },
            },
            Command::Predict(args) => Self::Predict {
                run: RunDir::open(&args.checkpoint)?,
                args,
            },
            Command::Listen(args) => Self::Listen {
                run: RunDir::open(&args.checkpoint)?,
                args,
            },
            Command::Split { config, force, .. } => Self::WritePhaseMap {
                config: load(&config)?,
                force,
            },
            Command::Check {
                config,
                steps,
                target,
            } => Self::Check {
                config: load(&config)?,
                steps,
                target,
            },
            Command::Features { config, shard } => {
                Self::Features(load(&config)?, shard.unwrap_or(Shard::WHOLE))
            }
            Command::Inspect { what } => match what {
                Inspect::Wav { files } => Self::InspectWav(files),
                Inspect::Dataset { config, plot } => Self::InspectDataset {
                    config: load(&config)?,
                    plot,
                },
                Inspect::Model { config, classes } => Self::InspectModel {
                    config: load(&config)?,
                    classes,
                },
            },
            Command::Synth {
                kind: SynthKind::Urban,
                out,
                clips,
                folds,
                max_seconds,
                seed,
                ..
            } => Self::Synth {
                out: out.unwrap_or_else(|| "datasets/urban-synth".into()),
                config: SynthConfig {
                    clips: clips.unwrap_or(1000),
                    folds,
                    max_seconds,
                    seed,
                },
            },
            Command::Synth {
                kind: SynthKind::Events,
                out,
                clips,
                recordings,
                recording_seconds,
                seed,
                ..
            } => {
                let defaults = EventSynthConfig::default();
                Self::SynthEvents {
                    out: out.unwrap_or_else(|| "datasets/snaps".into()),
                    config: EventSynthConfig {
                        clips: clips.unwrap_or(defaults.clips),
                        recordings,
                        recording_seconds,
                        seed,
                        ..defaults
                    },
                }
            }
            Command::Download {
                dataset,
                dir,
                url,
                checksum,
            } => {
                let mut source = Source::named(match dataset {
                    Dataset::Urbansound8k => "urbansound8k",
                    Dataset::Esc50 => "esc50",
                })?;
                if let Some(url) = url {
                    source.url = url;
                }
                if checksum.is_some() {
                    source.checksum = checksum;
                }
                Self::Download { source, dir }
            }
            Command::Completions { shell } => Self::Completions(shell),
        })
    }
}
