//! Hostile input through the `hark` binary: every case must end within 5 s
//! under a 2 GiB address-space limit, with exit 1 or 2 and a message that
//! names the file, row or key, and never a panic. The corpus is
//! `tests/hostile/` (written by `make_corpus.py` beside it); run
//! directories are made from a real run here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a case must end in.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Exit 1 or 2, stderr naming this.
    Error(&'static str),
    /// Exit 0, the output holding this (a bad file reported and skipped).
    Warning(&'static str),
}

use End::{Error, Warning};

/// `hark predict` on each WAV of the corpus: what it is, what hark says.
const WAVS: &[(&str, &str, &str)] = &[
    ("empty", "an empty file", "not WAV, FLAC"),
    ("riff-only", "4 bytes of RIFF", "shorter than a RIFF header"),
    ("not-wave", "RIFF of form AVI", "no RIFF/WAVE signature"),
    ("rifx", "big-endian RIFX", "not WAV, FLAC"),
    ("text", "a text file named .wav", "not WAV, FLAC"),
    ("no-fmt", "a data chunk only", "data chunk before fmt"),
    ("no-data", "a fmt chunk only", "no data chunk"),
    ("data-before-fmt", "data, then fmt", "data chunk before fmt"),
    (
        "fmt-short",
        "a fmt chunk of 4 bytes",
        "fmt chunk of 4 bytes",
    ),
    (
        "fmt-huge-len",
        "a fmt chunk claiming 4 GB",
        "fmt chunk of 4294967280",
    ),
    ("zero-channels", "0 channels", "0 channels"),
    ("zero-rate", "0 Hz", "sample rate of 0 Hz"),
    (
        "rate-1hz",
        "1 Hz (used to hang resampling)",
        "sample rate of 1 Hz",
    ),
    ("rate-4ghz", "4 GHz (used to size 16 GB)", "4000000000 Hz"),
    ("channels-65535", "65,535 channels", "65535 channels"),
    ("channels-1024", "1,024 channels", "1024 channels"),
    ("zero-align", "block align 0", "block align of 0"),
    (
        "align-mismatch",
        "24-bit with block align 5",
        "block align 5",
    ),
    ("bits-0", "0-bit PCM", "0 bits"),
    ("bits-7", "7-bit PCM", "7 bits"),
    ("bits-64-int", "64-bit integer PCM", "64 bits"),
    ("float-16", "16-bit float", "16 bits"),
    ("float-nan", "float samples all NaN", "non-finite"),
    ("float-inf", "float samples half infinite", "non-finite"),
    ("mp3-tag", "format tag 0x55 in a WAV", "format tag 0x0055"),
    ("ext-short", "EXTENSIBLE fmt of 24 bytes", "40 needed"),
    (
        "ext-unknown-guid",
        "EXTENSIBLE of an unknown subformat",
        "format tag 0x0077",
    ),
    ("two-fmt", "two fmt chunks", "two fmt chunks"),
    ("data-empty", "a data chunk of 0 bytes", "no audio frames"),
    ("data-one-byte", "a data chunk of 1 byte", "no audio frames"),
    (
        "ima-align-4-stereo",
        "IMA ADPCM, align 4, 2 channels",
        "block align 4",
    ),
    ("ms-align-2", "MS ADPCM, align 2", "block align 2"),
    (
        "ima-per-block-65535",
        "IMA claiming 65,535 frames a block",
        "65535 frames per block",
    ),
    (
        "ima-per-block-0",
        "IMA claiming 0 frames a block",
        "0 frames per block",
    ),
    ("ms-coefs-0", "MS ADPCM without coefficients", "fmt_adpcm"),
    (
        "ms-coefs-huge",
        "MS ADPCM claiming 65,535 coefficients",
        "fmt_adpcm",
    ),
    (
        "ms-bad-predictor",
        "MS ADPCM block predictor 99",
        "predictor",
    ),
];

/// `hark predict` on each compressed file of the corpus (FLAC frames written
/// by the generator, the rest cut or patched copies of the data crate's
/// fixtures): what it is, what hark says.
const COMPRESSED: &[(&str, &str, &str)] = &[
    (
        "flac-bomb.flac",
        "118 KB of FLAC decoding to 524M samples (used to abort)",
        "decodes to more than 67108864 samples",
    ),
    (
        "flac-rate-100.flac",
        "FLAC at 100 Hz (used to be read)",
        "100 Hz, 1 channel(s)",
    ),
    (
        "flac-cut.flac",
        "FLAC cut in its header",
        "cut-short container",
    ),
    (
        "flac-bad-crc.flac",
        "FLAC whose last frame's CRC is wrong",
        "flac-bad-crc.flac: decoding failed",
    ),
    ("mp3-cut.mp3", "MP3 cut inside its ID3 tag", "not WAV, FLAC"),
    (
        "mp3-garbage.mp3",
        "an MP3 sync word, then noise",
        "not WAV, FLAC",
    ),
    (
        "ogg-cut.ogg",
        "Ogg cut in its first page",
        "cut-short container",
    ),
    (
        "m4a-cut.m4a",
        "M4A cut before its moov",
        "missing moov atom",
    ),
    (
        "m4a-stsz-huge.m4a",
        "M4A claiming 4e9 sample sizes",
        "unexpected end of atom",
    ),
    (
        "m4a-stts-huge.m4a",
        "M4A claiming 4e9 time-to-sample entries",
        "unexpected end of atom",
    ),
    (
        "m4a-moov-huge.m4a",
        "M4A whose moov claims 4 GB",
        "missing moov atom",
    ),
    (
        "m4a-mdhd-rate-0.m4a",
        "M4A with a time scale of 0",
        "timescale is zero",
    ),
];

/// `hark train` on each folder-per-class and speaker tree of the corpus
/// (`trees/NAME`, with `config/tree-NAME.toml`): what it is, how it ends.
const TREES: &[(&str, &str, End)] = &[
    (
        "folders-empty",
        "a file but no class folders",
        Error("no class folders"),
    ),
    (
        "folders-one-class",
        "one class folder",
        Error("at least 2 classes"),
    ),
    (
        "folders-empty-class",
        "a class folder without audio (used to be a dead class)",
        Error("class \"c\" has no audio files"),
    ),
    (
        "folders-bad-file",
        "a text file named .wav among good ones",
        Warning("b-bad.wav"),
    ),
    (
        "folders-all-bad",
        "every file without frames",
        Error("training set is empty"),
    ),
    ("speakers-no-raw", "no raw/ folder", Error("no raw/ folder")),
    (
        "speakers-flat",
        "raw/<speaker>/*.wav without sessions (used to say \"no examples left\")",
        Error("a folder per recording session"),
    ),
    ("speakers-one", "one speaker", Error("at least 2 classes")),
    (
        "speakers-bad-file",
        "a broken ADPCM file among good ones",
        Warning("bad.wav"),
    ),
    (
        "speakers-empty-speaker",
        "a speaker without audio",
        Error("class \"c\" has no audio files"),
    ),
];

/// WAVs that decode with a warning (streaming writers leave such sizes).
const WARNED_WAVS: &[(&str, &str, &str)] = &[
    (
        "data-len-huge",
        "data chunk claiming 4 GB",
        "ended 4294963280 bytes before",
    ),
    (
        "data-odd-truncated",
        "a frame cut in half",
        "1 bytes dropped",
    ),
    (
        "riff-size-huge",
        "RIFF size 0xffffffff",
        "riff-size-huge.wav",
    ),
    (
        "ima-fact-huge",
        "IMA fact chunk claiming 4e9 frames",
        "ima-fact-huge.wav",
    ),
    (
        "ms-fact-huge",
        "MS fact chunk claiming 4e9 frames",
        "ms-fact-huge.wav",
    ),
];

/// `hark train` on a dataset of the corpus (with config/good.toml).
const DATASETS: &[(&str, &str, End)] = &[
    (
        "missing-column",
        "no classID column",
        Error("missing column(s) classID"),
    ),
    (
        "unmatched-quote",
        "a quote that never closes",
        Error("row 1 (line 2)"),
    ),
    (
        "class-id-text",
        "classID \"x\"",
        Error("row 5 (line 6), column classID"),
    ),
    ("fold-0", "fold 0", Error("row 3 (line 4), column fold")),
    (
        "fold-11",
        "fold 11 of 10",
        Error("row 3 (line 4), column fold"),
    ),
    (
        "fold-negative",
        "fold -1",
        Error("row 3 (line 4), column fold"),
    ),
    ("class-id-gap", "ids 0, 2, 4", Error("without gaps")),
    (
        "class-id-conflict",
        "classID 0 named twice",
        Error("row 9 (line 10), column classID"),
    ),
    (
        "duplicate-file",
        "a file listed twice",
        Error("duplicate \"dog-1.wav\""),
    ),
    ("header-only", "a header without rows", Error("no examples")),
    ("empty-csv", "a 0-byte manifest", Error("UrbanSound8K.csv")),
    (
        "dotdot-path",
        "../../../ out of the root",
        Error("outside the dataset root"),
    ),
    (
        "absolute-path",
        "/etc/hostname",
        Error("outside the dataset root"),
    ),
    ("nul-byte", "a NUL in a file name", Error("no examples")),
    (
        "not-utf8",
        "bytes that are not UTF-8",
        Error("UrbanSound8K.csv"),
    ),
    ("short-row", "a row of 3 cells", Error("row 1 (line 2)")),
    (
        "start-after-end",
        "start 3, end 1",
        Error("row 1 (line 2), column start"),
    ),
    (
        "start-nan",
        "start NaN",
        Error("row 1 (line 2), column start"),
    ),
    ("one-class", "a single class", Error("data.path")),
    ("missing-files", "6 of 9 files missing", Error("missing")),
    ("all-bad-wavs", "every file unreadable", Error("empty")),
    ("huge-id", "classID 10^12", Error("without gaps")),
    (
        "one-bad-wav",
        "one bad file among good ones",
        Warning("skipped"),
    ),
    (
        "long-class-name",
        "a class named by 65,536 characters",
        Warning("test accuracy"),
    ),
];

/// `hark train --config config/NAME.toml`.
const CONFIGS: &[(&str, &str, End)] = &[
    ("not-toml", "an unclosed table", Error("line 11")),
    (
        "empty",
        "an empty file (every default)",
        Error("urban-synth"),
    ),
    ("binary", "bytes, not text", Error("binary.toml")),
    (
        "unknown-key",
        "train.colour",
        Error("unknown field `colour`"),
    ),
    ("wrong-type", "epochs = \"one\"", Error("train.epochs")),
    (
        "batch-size-0",
        "a batch of 0 (a division by zero)",
        Error("train.batch_size"),
    ),
    ("epochs-0", "no epochs", Error("train.epochs")),
    ("epochs-huge", "10^12 epochs", Error("train.epochs")),
    ("threads-huge", "100,000 threads", Error("train.threads")),
    ("lr-negative", "lr -1e-3", Error("optimizer.lr")),
    ("lr-nan", "lr NaN", Error("optimizer.lr")),
    ("lr-inf", "lr infinite", Error("optimizer.lr")),
    (
        "weight-decay-negative",
        "weight decay -1",
        Error("weight_decay"),
    ),
    ("betas-out-of-range", "beta1 1.5", Error("betas")),
    (
        "grad-clip-negative",
        "grad_clip -1 (gradient ascent)",
        Error("train.grad_clip"),
    ),
    ("grad-clip-nan", "grad_clip NaN", Error("train.grad_clip")),
    (
        "patience-0",
        "stop after epoch 1",
        Error("train.early_stopping.patience"),
    ),
    (
        "label-smoothing-1",
        "label smoothing 1",
        Error("train.label_smoothing"),
    ),
    ("mixup-negative", "mixup -0.5", Error("train.mixup")),
    ("one-cycle-pct-2", "pct_start 2", Error("pct_start")),
    ("step-size-0", "step_size 0", Error("step_size")),
    ("gamma-negative", "gamma -0.5", Error("gamma")),
    ("split-val-negative", "val -0.2", Error("data.split.train")),
    ("split-sum", "shares adding up to 2.4", Error("add up to 1")),
    ("fold-99", "fold 99 of 3", Error("fold")),
    ("duration-huge", "1e9 s clips", Error("features.duration")),
    (
        "duration-negative",
        "-1 s clips",
        Error("features.duration"),
    ),
    ("duration-nan", "NaN s clips", Error("features.duration")),
    ("n-fft-huge", "n_fft 10^9", Error("features.mel.n_fft")),
    ("n-fft-0", "n_fft 0", Error("features.mel.n_fft")),
    ("hop-0", "hop 0", Error("features.mel.hop_length")),
    ("n-mels-0", "0 mels", Error("features.mel.n_mels")),
    ("n-mels-huge", "100,000 mels", Error("features.mel.n_mels")),
    ("sample-rate-0", "0 Hz", Error("features.mel.sample_rate")),
    (
        "sample-rate-huge",
        "4 GHz",
        Error("features.mel.sample_rate"),
    ),
    ("channels-0", "0 channels", Error("features.channels")),
    (
        "channels-huge",
        "100,000 channels",
        Error("features.channels"),
    ),
    ("dropout-2", "dropout 2", Error("dropout")),
    (
        "crnn-input-too-short",
        "a CRNN on 16 mels",
        Error("at least 80 mel bands"),
    ),
    ("width-huge", "a CNN 100,000 times wider", Error("width")),
    ("top-db-negative", "top_db -80", Error("top_db")),
    (
        "noise-prob-2",
        "noise probability 2",
        Error("augment.noise.prob"),
    ),
    (
        "momentum-5",
        "SGD momentum 5 (used to train, diverging)",
        Error("optimizer.momentum"),
    ),
    (
        "eps-0",
        "Adam eps 0 (used to write NaN weights)",
        Error("optimizer.eps"),
    ),
    (
        "output-dir-empty",
        "output.dir = \"\" (used to say \": No such file\")",
        Error("output.dir is empty"),
    ),
    (
        "noise-std-negative",
        "noise std -0.1",
        Error("augment.noise.std"),
    ),
    (
        "noise-snr-nan",
        "noise SNR NaN",
        Error("augment.noise.snr_db"),
    ),
    (
        "noise-both",
        "noise by std and by SNR",
        Error("exactly one of std and snr_db"),
    ),
    (
        "crop-fraction-2",
        "a crop of 200 %",
        Error("augment.crop.max_fraction"),
    ),
    (
        "stretch-delta-1",
        "a stretch by up to 100 %",
        Error("augment.stretch.max_delta"),
    ),
    (
        "spec-noise-inf",
        "infinite log-mel noise",
        Error("augment.spec_noise"),
    ),
    (
        "spec-augment-many",
        "10^12 frequency masks (a hang)",
        Error("freq_masks"),
    ),
    (
        "time-shift-nan",
        "time shift NaN",
        Error("augment.time_shift"),
    ),
    (
        "data-path-missing",
        "no such dataset",
        Error("us8k/nowhere"),
    ),
    (
        "data-path-file",
        "a file as the dataset",
        Error("wav/text.wav"),
    ),
    (
        "output-dir-file",
        "a file as the run directory",
        Error("is a file"),
    ),
    (
        "cache-dir-file",
        "a file as the cache",
        Warning("cache cannot be written"),
    ),
    (
        "dotdot-dataset",
        "a row leading out of the root",
        Error("row 10 (line 11)"),
    ),
    (
        "absolute-dataset",
        "a row naming /etc/hostname",
        Error("row 10 (line 11)"),
    ),
    (
        "one-class-dataset",
        "a single class",
        Error("at least 2 classes"),
    ),
    ("huge-id-dataset", "classID 10^12", Error("classID")),
    ("gap-dataset", "ids with a gap", Error("classID")),
    (
        "all-bad-dataset",
        "every file unreadable",
        Error("training set is empty"),
    ),
    (
        "one-bad-strict",
        "one bad file under strict",
        Error("drill-3.wav"),
    ),
    (
        "long-class-dataset",
        "a class name of 65,536 characters",
        Warning("test accuracy"),
    ),
];

/// Run directories made from a real run: (name, what, how, what hark
/// says to `predict`, or to `train --resume` for `resume-*`).
type RunCase = (&'static str, &'static str, fn(&Path), End);

const RUNS: &[RunCase] = &[
    (
        "nan-weights",
        "a NaN in the best weights",
        nan_weights,
        Error("NaN or infinite"),
    ),
    (
        "cut-weights",
        "best.safetensors cut in half",
        cut_weights,
        Error("best.safetensors"),
    ),
    (
        "no-weights",
        "no best checkpoint",
        no_weights,
        Error("best.safetensors"),
    ),
    (
        "huge-header",
        "a safetensors header claiming 2^64 bytes",
        huge_header,
        Error("best.safetensors"),
    ),
    (
        "bad-model-json",
        "model.json of one brace",
        bad_model_json,
        Error("model.json"),
    ),
    (
        "bad-config",
        "config.toml that is not TOML",
        bad_config,
        Error("config.toml"),
    ),
    (
        "config-only",
        "only config.toml",
        config_only,
        Error("model.json"),
    ),
    (
        "resume-config-only",
        "only config.toml, resumed",
        config_only,
        Warning("no checkpoint yet"),
    ),
    (
        "resume-nan",
        "a NaN in the last weights, resumed",
        nan_last,
        Error("NaN or infinite"),
    ),
];

/// Overwrites the last f32 of `file` (safetensors sorts f32 tensors after
/// the i64 counters) with a NaN.
fn nan_at_end(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

fn nan_weights(run: &Path) {
    nan_at_end(&run.join("best.safetensors"));
}

fn nan_last(run: &Path) {
    // Both copies: the training file's is what a resume loads from.
    nan_at_end(&run.join("last.safetensors"));
    nan_at_end(&run.join("last.train.safetensors"));
}

fn cut_weights_kept_copy(run: &Path) {
    let path = run.join("best.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
}

fn cut_weights(run: &Path) {
    cut_weights_kept_copy(run);
    std::fs::remove_file(run.join("best.train.safetensors")).unwrap();
}

fn no_weights(run: &Path) {
    std::fs::remove_file(run.join("best.safetensors")).unwrap();
    std::fs::remove_file(run.join("best.train.safetensors")).unwrap();
}

fn huge_header(run: &Path) {
    let path = run.join("best.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_file(run.join("best.train.safetensors")).unwrap();
}

fn bad_model_json(run: &Path) {
    std::fs::write(run.join("model.json"), "{").unwrap();
}

fn bad_config(run: &Path) {
    std::fs::write(run.join("config.toml"), "[data\n").unwrap();
}

fn config_only(run: &Path) {
    for entry in std::fs::read_dir(run).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "config.toml" {
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// Command lines that size work by a flag.
const FLAGS: &[(&[&str], &str, &str)] = &[
    (
        &["--threads", "100000", "inspect", "wav", "wav/good.wav"],
        "100,000 threads",
        "--threads",
    ),
    (
        &[
            "inspect",
            "model",
            "--config",
            "config/good.toml",
            "--classes",
            "100000000000",
        ],
        "10^11 classes",
        "--classes",
    ),
    (
        &["synth", "--out", "s", "--max-seconds", "1e9"],
        "1e9 s slices",
        "--max-seconds",
    ),
    (
        &["synth", "--out", "s", "--clips", "0"],
        "an empty corpus",
        "--clips",
    ),
    (
        &["synth", "--out", "s", "--folds", "0"],
        "no folds",
        "--folds",
    ),
    (
        &["predict", "--checkpoint", "config", "wav/good.wav"],
        "a run without files",
        "not a run directory",
    ),
    (
        &["eval", "--checkpoint", "out/nowhere"],
        "no such run",
        "out/nowhere",
    ),
    (
        &["train", "--resume", "wav"],
        "resume of a directory of WAVs",
        "not a run directory",
    ),
];

/// Runs `hark args` in `dir` under a 2 GiB address-space limit, killed
/// after 5 s: (exit code, stdout + stderr), or `None` if it was killed.
fn run(dir: &Path, args: &[&str]) -> Option<(i32, String)> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hark"))
        .args(["--threads", "1"].iter().filter(|_| args[0] != "--threads"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.code().unwrap_or(-1), text))
}

/// Checks one case; returns what went wrong, if anything.
fn check(dir: &Path, name: &str, args: &[&str], end: End) -> Option<String> {
    let Some((code, text)) = run(dir, args) else {
        return Some(format!("{name}: still running after 5 s: {args:?}"));
    };
    let short: String = text
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if text.contains("panicked") || text.contains("memory allocation") {
        return Some(format!(
            "{name}: panicked or aborted (exit {code}): {short}"
        ));
    }
    let (ok, needle) = match end {
        Error(n) => (code == 1 || code == 2, n),
        Warning(n) => (code == 0, n),
    };
    if !ok || !text.contains(needle) {
        return Some(format!("{name}: exit {code}, expected {end:?}: {short}"));
    }
    None
}

/// Copies the corpus to `to`, leaving out the generator.
fn copy_corpus(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_corpus(&path, &target);
        } else if path.extension().is_none_or(|e| e != "py") {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn hostile_inputs_end_in_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_corpus(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile"),
        dir,
    );
    // A real run to predict with.
    let (code, text) = run(dir, &["train", "--config", "config/good.toml"]).expect("trains in 5 s");
    assert_eq!(code, 0, "{text}");
    // What the file system holds but a manifest cannot: a directory named
    // like a WAV, and a symlink loop.
    std::fs::create_dir_all(dir.join("wav/dir.wav")).unwrap();
    std::os::unix::fs::symlink("loop.wav", dir.join("wav/loop.wav")).unwrap();
    // A dataset whose file is a symlink leading out of its root.
    let out = dir.join("us8k/symlink-out");
    std::fs::create_dir_all(&out).unwrap();
    copy_corpus(&dir.join("us8k/good"), &out);
    let link = out.join("audio/fold1/dog-1.wav");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(dir.join("wav/good.wav"), &link).unwrap();

    let mut cases: Vec<(String, Vec<String>, End)> = Vec::new();
    let owned = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let wavs = WAVS.iter().map(|(name, _, n)| (format!("{name}.wav"), n));
    let compressed = COMPRESSED.iter().map(|(file, _, n)| (file.to_string(), n));
    for (file, needle) in wavs.chain(compressed) {
        let file = format!("wav/{file}");
        cases.push((
            file.clone(),
            owned(&["predict", "--checkpoint", "out/good", &file]),
            Error(needle),
        ));
    }
    for (name, _, needle) in WARNED_WAVS {
        let file = format!("wav/{name}.wav");
        cases.push((
            file.clone(),
            owned(&["predict", "--checkpoint", "out/good", &file]),
            Warning(needle),
        ));
    }
    for (file, needle) in [("wav/dir.wav", "dir.wav"), ("wav/loop.wav", "loop.wav")] {
        cases.push((
            file.into(),
            owned(&["predict", "--checkpoint", "out/good", file]),
            Error(needle),
        ));
        cases.push((file.into(), owned(&["inspect", "wav", file]), Error(needle)));
    }
    let symlink_out = (
        "symlink-out",
        "a symlink out of the root",
        Error("row 1 (line 2)"),
    );
    for (name, _, end) in DATASETS.iter().chain([&symlink_out]) {
        let args = [
            "train",
            "--config",
            "config/good.toml",
            "--set",
            &format!("data.path=\"us8k/{name}\""),
            "--set",
            &format!("output.dir=\"out/{name}\""),
        ];
        cases.push((format!("us8k/{name}"), owned(&args), *end));
    }
    for (name, _, end) in CONFIGS {
        let file = format!("config/{name}.toml");
        cases.push((file.clone(), owned(&["train", "--config", &file]), *end));
    }
    for (name, _, end) in TREES {
        let file = format!("config/tree-{name}.toml");
        cases.push((file.clone(), owned(&["train", "--config", &file]), *end));
    }
    for (args, what, needle) in FLAGS {
        cases.push((what.to_string(), owned(args), Error(needle)));
    }
    for (name, _, make, end) in RUNS {
        let run = dir.join("runs").join(name);
        copy_corpus(&dir.join("out/good"), &{
            std::fs::create_dir_all(&run).unwrap();
            run.clone()
        });
        make(&run);
        let run = format!("runs/{name}");
        let args = match name.strip_prefix("resume-") {
            Some(_) => owned(&["train", "--resume", &run]),
            None => owned(&["predict", "--checkpoint", &run, "wav/good.wav"]),
        };
        cases.push((run, args, *end));
    }
    // Every cache entry cut short: computed again, and the run goes on.
    for entry in std::fs::read_dir(dir.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    }
    let args = [
        "train",
        "--config",
        "config/good.toml",
        "--set",
        "output.dir=\"out/recached\"",
    ];
    cases.push((
        "cache entries cut short".into(),
        owned(&args),
        Warning("test accuracy"),
    ));
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, args, end)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            check(dir, name, &args, *end)
        })
        .collect();
    // A new run that failed before its first checkpoint leaves nothing
    // (the model is built once the run directory exists).
    assert!(!dir.join("out/crnn-input-too-short").exists());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} hostile cases ended as their table says", cases.len());
}

/// The corpus on disk matches the tables: no case without its file.
#[test]
fn every_case_has_its_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    for (name, _, _) in WAVS.iter().chain(WARNED_WAVS) {
        assert!(root.join(format!("wav/{name}.wav")).is_file(), "{name}");
    }
    for (name, _, _) in DATASETS {
        assert!(
            root.join(format!("us8k/{name}/metadata/UrbanSound8K.csv"))
                .is_file(),
            "{name}"
        );
    }
    for (name, _, _) in CONFIGS {
        assert!(root.join(format!("config/{name}.toml")).is_file(), "{name}");
    }
    for (file, _, _) in COMPRESSED {
        assert!(root.join("wav").join(file).is_file(), "{file}");
    }
    for (name, _, _) in TREES {
        assert!(root.join("trees").join(name).is_dir(), "{name}");
        let config = root.join(format!("config/tree-{name}.toml"));
        assert!(config.is_file(), "{name}");
    }
}
