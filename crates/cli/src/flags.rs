//! The flags as the user types them: clap definitions and nothing else.
//! [`crate::args`] turns them into what the libraries take.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use hark_cli::download::Checksum;

/// Train, evaluate and run audio classifiers.
#[derive(Debug, Parser)]
#[command(
    name = "hark",
    version,
    after_help = "Exit codes: 0 success, 1 the run failed, 2 bad usage or config."
)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads (0: every core).
    #[arg(long, global = true, default_value_t = 0, value_parser = count::<0, 1024>)]
    pub threads: usize,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Schedulers `hark cv --emit` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// Slurm: an array job over the folds and a merge job after it.
    Slurm,
}

/// What `hark cv --emit slurm` asks the scheduler for, per task.
#[derive(Debug, Clone, clap::Args)]
pub struct SlurmArgs {
    /// Slurm partition.
    #[arg(long, requires = "emit")]
    pub partition: Option<String>,
    /// Time limit per task, e.g. `2:00:00`.
    #[arg(long, requires = "emit")]
    pub time: Option<String>,
    /// CPUs per task (hark's --threads follows them).
    #[arg(long, requires = "emit", value_parser = count::<1, 1024>)]
    pub cpus: Option<usize>,
    /// Memory per task, e.g. `8G`.
    #[arg(long, requires = "emit")]
    pub mem: Option<String>,
    /// GPUs per task.
    #[arg(long, requires = "emit", value_parser = count::<1, 64>)]
    pub gpus: Option<usize>,
    /// Feature-extraction tasks to run before training (`hark features
    /// --shard I/N`); 0: the folds extract their own.
    #[arg(long, requires = "emit", default_value_t = 0, value_parser = count::<0, 10_000>)]
    pub shards: usize,
}

/// The config file and its overrides, shared by the commands that read one.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The experiment config (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Override a config key: `--set train.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// The experiment config (TOML); not read by --merge.
        #[arg(long, short, required_unless_present = "merge")]
        config: Option<PathBuf>,
        /// Override a config key: `--set train.epochs=5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Only these folds, e.g. `1,3` (finished folds are skipped anyway);
        /// with --emit, the array's tasks.
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["fold", "merge"])]
        folds: Option<Vec<u32>>,
        /// Run exactly this fold and nothing else (no summary): one task of
        /// a cluster array job. Safe beside the other folds on a shared
        /// file system; resumes an unfinished fold, skips a finished one.
        #[arg(long, conflicts_with_all = ["merge", "emit"])]
        fold: Option<u32>,
        /// Summarise the finished folds under RUN_ROOT (cv_summary.json,
        /// cv_summary.md, confusion.png); exits 1 when any fold has not
        /// finished, unless --allow-missing.
        #[arg(long, value_name = "RUN_ROOT", conflicts_with = "emit")]
        merge: Option<PathBuf>,
        /// With --merge: a summary of the finished folds is success.
        #[arg(long, requires = "merge")]
        allow_missing: bool,
        /// Print a script that submits the cross-validation to a scheduler
        /// instead of running it (run it with `bash`).
        #[arg(long, value_enum)]
        emit: Option<Scheduler>,
        #[command(flatten)]
        slurm: SlurmArgs,
        /// Root of the fold directories (default: the config's output.dir);
        /// with --emit, the file the script is written to (the root is then
        /// output.dir: `--set output.dir=DIR`).
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
        #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
        split: EvalSplit,
    },
    /// Classify audio files with a trained run, in sliding windows for long files.
    Predict(PredictArgs),
    /// Detect events in a stream (standard input, a file, or the
    /// microphone) as it arrives: one line per event, flushed at once.
    Listen(ListenArgs),
    /// Write a speaker tree's phase_map.csv (seed 002's gen_phases): each
    /// speaker's utterances split on their own, seeded by train.seed, so
    /// that every speaker is in training, validation and test.
    Split {
        #[command(flatten)]
        config: ConfigArgs,
        /// Write `<data.path>/phase_map.csv`.
        #[arg(long, required = true)]
        write_phase_map: bool,
        /// Replace an existing phase map.
        #[arg(long)]
        force: bool,
    },
    /// Overfit one batch: a fresh model trains on one fixed batch of the
    /// training split (no augmentation, constant learning rate) until its
    /// loss is at most --target; prints the loss curve and exits 1 when
    /// the loss does not get there within --steps (seed 003's sanity check).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Most optimisation steps.
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// The loss to reach.
        #[arg(long, default_value_t = 0.05)]
        target: f32,
    },
    /// Compute and cache the features of a config's dataset.
    Features {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only the I-th of N disjoint shares of the examples (`3/8`): one
        /// task of an array job filling the cache of a large corpus.
        #[arg(long, value_name = "I/N")]
        shard: Option<hark_train::Shard>,
    },
    /// Describe a WAV file, a dataset or a model.
    Inspect {
        #[command(subcommand)]
        what: Inspect,
    },
    /// Generate a demo corpus: urban-synth (UrbanSound8K layout), or
    /// events (clips for a transient detector, and long recordings with an
    /// events.csv).
    Synth {
        /// Which corpus.
        #[arg(long, value_enum, default_value_t = SynthKind::Urban)]
        kind: SynthKind,
        /// Where to write it (default: datasets/urban-synth, or datasets/snaps).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Clips to write (default: 1000 urban slices, or 1200 event clips).
        #[arg(long, value_parser = count::<1, 1_000_000>)]
        clips: Option<usize>,
        /// Folds (urban).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        folds: u32,
        /// Longest slice in seconds (urban).
        #[arg(long, default_value_t = 4.0, value_parser = seconds)]
        max_seconds: f64,
        /// Long recordings (events).
        #[arg(long, default_value_t = 2, value_parser = count::<1, 10_000>)]
        recordings: usize,
        /// Seconds per long recording (events).
        #[arg(long, default_value_t = 60.0, value_parser = seconds)]
        recording_seconds: f64,
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

/// Flags of `hark predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// The run directory to take the best checkpoint from.
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: PathBuf,
    /// Classes to print per window and file.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// JSON Lines: `{"type": "window", ...}` per window and `{"type":
    /// "file", ...}` per file, each with `file`, `start`, `end` (seconds) and
    /// `top` (`[{"class", "probability"}]`).
    #[arg(long)]
    pub json: bool,
    /// Stop at the first unreadable file instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Audio files; `-` reads a WAV stream from standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Flags of `hark listen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hark listen --checkpoint runs/snap - < recording.wav
  arecord -f S16_LE -r 22050 -c 1 | hark listen --checkpoint runs/snap -
  sox in.mp3 -t raw -e float -b 32 -r 48000 -c 1 - | hark listen --checkpoint runs/snap --format f32le --rate 48000 -")]
pub struct ListenArgs {
    /// The run directory to take the best checkpoint from.
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: PathBuf,
    /// `-` for standard input (a WAV stream, or raw PCM with --format,
    /// --rate and --channels), or an audio file.
    #[arg(required_unless_present_any = ["mic", "list_devices"])]
    pub input: Option<PathBuf>,
    /// Raw sample format of standard input: u8, s16le, s24le, s32le,
    /// f32le or f64le.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Raw sample rate in Hz (checked against a WAV header).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Raw channel count (checked against a WAV header).
    #[arg(long)]
    pub channels: Option<u16>,
    /// Pace a file at its real speed instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Listen to a microphone (the default device, or DEVICE); needs a
    /// build with the `mic` feature.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "", conflicts_with = "input")]
    pub mic: Option<String>,
    /// List the input devices and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Probability at which an event starts (default: the run's decision
    /// threshold for a sigmoid output, else 0.5).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Probability below which an event ends (default: --threshold).
    #[arg(long)]
    pub off_threshold: Option<f32>,
    /// Drop events above the threshold for less than this many seconds
    /// (default: half the model's window).
    #[arg(long)]
    pub min_duration: Option<f64>,
    /// Seconds after an event in which no new one of its class starts.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Frames between evaluations of the model's window.
    #[arg(long, default_value_t = 1)]
    pub hop_frames: usize,
    /// Classes that make events (repeatable; default: all but the first).
    #[arg(long = "class", value_name = "CLASS")]
    pub classes: Vec<String>,
    /// How the model streams: `recurrent` steps a model with state (SnapRnn)
    /// once per frame, which needs features that are final frame by frame
    /// (features.db.clamp = "reference", normalization none or dataset);
    /// `window` evaluates the model's input length of frames every
    /// --hop-frames, clamped and normalised as a training clip; `auto`
    /// takes recurrent where it can.
    #[arg(long, value_enum, default_value_t = StreamKind::Auto)]
    pub stream: StreamKind,
    /// JSON Lines instead of tab-separated text.
    #[arg(long)]
    pub json: bool,
    /// Print every output's class probabilities instead of events.
    #[arg(long)]
    pub frames: bool,
    /// Score the events against this event list (file, onset, offset,
    /// class); the scores go to stderr, and as JSON to --score-json.
    #[arg(long, value_name = "EVENTS_CSV")]
    pub reference: Option<PathBuf>,
    /// Where to write the scores as JSON.
    #[arg(long, value_name = "FILE", requires = "reference")]
    pub score_json: Option<PathBuf>,
    /// Onset collar of the scoring, in seconds.
    #[arg(long, default_value_t = hark_train::DEFAULT_COLLAR)]
    pub collar: f64,
}

/// The corpora `hark synth` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthKind {
    /// urban-synth, in UrbanSound8K layout.
    Urban,
    /// Clips with and without a transient, and long recordings with events.
    Events,
}

/// Which model stream `hark listen` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamKind {
    /// Frame by frame when the model and its features allow it, else windows.
    Auto,
    /// The model's input length as a sliding window.
    Window,
    /// The model's recurrent state, frame by frame.
    Recurrent,
}

#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// Format, rate, channels and length of WAV files.
    Wav {
        /// The files.
        files: Vec<PathBuf>,
    },
    /// Classes, class balance, folds and the sample-rate histogram.
    Dataset {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also draw `sample_rates.png` and `class_balance.png` into DIR.
        #[arg(long, value_name = "DIR")]
        plot: Option<PathBuf>,
    },
    /// Layers, output shapes and parameter count of a config's model.
    Model {
        #[command(flatten)]
        config: ConfigArgs,
        /// Classes (default: the dataset's).
        #[arg(long, value_parser = count::<2, 100_000>)]
        classes: Option<usize>,
    },
}

/// A part of a dataset's split, for `hark eval --split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    /// The training examples.
    Train,
    /// The validation examples.
    Val,
    /// The test examples.
    Test,
}

/// The datasets `hark download` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    /// UrbanSound8K (6 GB, 10 folds).
    Urbansound8k,
    /// ESC-50 (600 MB, 5 folds).
    Esc50,
}

/// A count in `LO..=HI`, for the flags that size work or memory.
fn count<const LO: usize, const HI: usize>(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (LO..=HI).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be in {LO}..={HI}, got {n}"))
    }
}

/// A length of synthetic audio in seconds: more than 0, at most 600.
fn seconds(text: &str) -> Result<f64, String> {
    let s: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if s > 0.0 && s <= 600.0 {
        Ok(s)
    } else {
        Err(format!("must be in (0, 600] seconds, got {s}"))
    }
}
