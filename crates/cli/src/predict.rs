//! `hark predict`: classify WAV files with a trained run. A file longer than
//! the model's clip is cut into half-overlapping windows; each window gets
//! its top classes with a timestamp and the file the mean of its windows.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hark_data::{Example, Span};
use hark_dsp::ResamplerCache;
use hark_models::softmax;
use hark_train::{ExperimentConfig, ModelInfo, batch_tensor, checkpoint_paths, loader};

/// Flags of `hark predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// The run directory to take the best checkpoint from.
    #[arg(long, value_name = "RUN_DIR")]
    checkpoint: PathBuf,
    /// Classes to print per window and file.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// JSON Lines: `{"type": "window", ...}` per window and `{"type":
    /// "file", ...}` per file, each with `file`, `start`, `end` (seconds) and
    /// `top` (`[{"class", "probability"}]`).
    #[arg(long)]
    json: bool,
    /// Stop at the first unreadable file instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// WAV files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The top `k` (class, probability) pairs.
fn top(probs: &[f32], classes: &[String], k: usize) -> Vec<(String, f32)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (classes[i].clone(), probs[i]))
        .collect()
}

fn json_line(kind: &str, file: &Path, (start, end): (f64, f64), top: &[(String, f32)]) -> String {
    let top: Vec<_> = top
        .iter()
        .map(|(c, p)| serde_json::json!({"class": c, "probability": p}))
        .collect();
    serde_json::json!({"type": kind, "file": file, "start": start, "end": end, "top": top})
        .to_string()
}

/// Runs `hark predict`.
///
/// # Errors
/// A run directory that cannot be loaded; with `--strict`, the first bad file.
pub fn predict(args: &PredictArgs, out: &mut impl Write) -> Result<()> {
    let config = ExperimentConfig::load(&args.checkpoint.join("config.toml"), &[])?;
    let info = ModelInfo::read(&args.checkpoint)?;
    let model = info.build(config.train.seed)?;
    model.load(&checkpoint_paths(&args.checkpoint, "best").0)?;
    let extractor = hark_data::FeatureExtractor::new(&config.features)?;
    let mut resamplers = ResamplerCache::new();
    let mut failed = 0;
    for file in &args.files {
        match predict_file(
            file,
            &config,
            &info,
            &model,
            &extractor,
            &mut resamplers,
            args,
            out,
        ) {
            Ok(()) => {}
            Err(e) if !args.strict && e.downcast_ref::<std::io::Error>().is_none() => {
                failed += 1;
                tracing::error!("{}: {e:#}", file.display());
            }
            Err(e) => return Err(e.context(file.display().to_string())),
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} files could not be classified",
            args.files.len()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn predict_file(
    file: &Path,
    config: &ExperimentConfig,
    info: &ModelInfo,
    model: &hark_models::Model,
    extractor: &hark_data::FeatureExtractor,
    resamplers: &mut ResamplerCache,
    args: &PredictArgs,
    out: &mut impl Write,
) -> Result<()> {
    let length = hark_data::inspect(file)?.duration_secs();
    // Windows of the training clip length, half overlapping; a clip model
    // without a fixed length sees the whole file at once.
    let window = config.features.duration.unwrap_or(length).max(1e-3);
    let hop = window / 2.0;
    let mut spans = vec![(0.0, window)];
    while spans.last().is_some_and(|s| s.1 < length) {
        let start = spans.len() as f64 * hop;
        spans.push((start, start + window));
    }
    let clips = spans
        .iter()
        .map(|&(start, end)| {
            let mut e = Example::new(file.to_path_buf(), 0, String::new());
            e.span = Some(Span { start, end });
            extractor.extract(&e, resamplers)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("extracting features")?;
    let n = clips.len();
    let batches = loader(extractor, config, (clips, vec![0; n]), false)?;
    let mut window_probs = Vec::with_capacity(n);
    for batch in batches.epoch(0) {
        let batch = batch.map_err(anyhow::Error::msg)?;
        let logits = model.forward_masked(&batch_tensor(&batch)?, Some(&batch.lengths), false)?;
        window_probs.extend(softmax(&logits)?.to_vec2::<f32>()?);
    }
    let classes = &info.classes;
    let k = args.top_k.max(1).min(classes.len());
    let mut mean = vec![0.0f32; classes.len()];
    for (probs, &(start, end)) in window_probs.iter().zip(&spans) {
        mean.iter_mut()
            .zip(probs)
            .for_each(|(m, p)| *m += p / n as f32);
        let t = top(probs, classes, k);
        if args.json {
            writeln!(
                out,
                "{}",
                json_line("window", file, (start, end.min(length)), &t)
            )?;
        } else if n > 1 {
            let list: Vec<String> = t.iter().map(|(c, p)| format!("{c} {p:.3}")).collect();
            writeln!(
                out,
                "{}\t{start:.2}-{:.2}s\t{}",
                file.display(),
                end.min(length),
                list.join(", ")
            )?;
        }
    }
    let t = top(&mean, classes, k);
    if args.json {
        writeln!(out, "{}", json_line("file", file, (0.0, length), &t))?;
    } else {
        let list: Vec<String> = t.iter().map(|(c, p)| format!("{c} {p:.3}")).collect();
        writeln!(out, "{}\t{}", file.display(), list.join(", "))?;
    }
    Ok(())
}
