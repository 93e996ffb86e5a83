//! Each task: call the libraries, print the result.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use hark_data::Split;
use hark_train::{
    Checkpoint, ExperimentConfig, FilePrediction, Predictor, Prepared, RunDir, Shard,
    classification_report, cross_validate, cross_validate_fold, evaluate_crops, held_out,
    merge_folds, overfit_one_batch, prepare_shard, run,
};

use crate::args::Task;
use crate::console::{Console, ExtractProgress};
use crate::flags::{Flags, PredictArgs};

/// Runs `task`, printing results to `out` (progress bars on stderr when
/// `bars`).
pub fn run_task(task: Task, bars: bool, out: &mut impl Write) -> Result<()> {
    match task {
        Task::Train { config, run: dir } => {
            let p = prepared(&config, bars)?;
            let splits = p.splits(&config, test_fold(&config, &p))?;
            let fresh = !dir.path().exists();
            let result =
                run(&p, &config, &splits, &dir, &mut Console::new(bars)).inspect_err(|_| {
                    // A new run that failed before its first checkpoint
                    // leaves nothing to resume: no half-made directory.
                    if fresh && !dir.training_state(Checkpoint::Last).exists() {
                        let _ = std::fs::remove_dir_all(dir.path());
                    }
                })?;
            let report = std::fs::read_to_string(dir.report_txt())
                .with_context(|| format!("reading {}", dir.report_txt().display()))?;
            writeln!(out, "{report}")?;
            writeln!(
                out,
                "test accuracy {:.4}, macro F1 {:.4}; run directory {}",
                result.accuracy,
                result.macro_f1,
                dir.path().display()
            )?;
        }
        Task::Cv {
            config,
            root,
            folds,
        } => {
            let p = prepared(&config, bars)?;
            let mut console = Console::new(bars);
            let summary = cross_validate(&p, &config, folds.as_deref(), &root, &mut console)?;
            write!(out, "{}", summary.to_markdown())?;
            writeln!(out, "summary: {}", root.cv_summary_md().display())?;
        }
        Task::Eval { run, fold, split } => eval(&run, fold, split, bars, out)?,
        Task::Predict { run, args } => predict(&run, &args, out)?,
        Task::Listen { run, args } => crate::listen::listen(&run, &args, out)?,
        Task::Check {
            config,
            steps,
            target,
        } => check(&config, steps, target, bars, out)?,
        Task::CvFold { config, root, fold } => {
            let p = prepared(&config, bars)?;
            let mut console = Console::new(bars);
            let (result, trained) = cross_validate_fold(&p, &config, fold, &root, &mut console)?;
            writeln!(
                out,
                "fold {fold}{}: test accuracy {:.4}, macro F1 {:.4}; {}",
                if trained { "" } else { " (finished before)" },
                result.accuracy,
                result.macro_f1,
                root.fold(fold).path().display()
            )?;
        }
        Task::CvMerge {
            root,
            allow_missing,
        } => {
            let summary = merge_folds(&root)?;
            write!(out, "{}", summary.to_markdown())?;
            writeln!(out, "summary: {}", root.cv_summary_md().display())?;
            if !summary.missing.is_empty() && !allow_missing {
                let list: Vec<String> = summary.missing.iter().map(u32::to_string).collect();
                bail!(
                    "{}: fold {} not finished (the summary covers the others; \
                     --allow-missing makes that success)",
                    root.path().display(),
                    list.join(", ")
                );
            }
        }
        Task::EmitSlurm {
            config,
            mut jobs,
            folds,
            out: file,
        } => {
            let dataset = hark_data::open_dataset(
                config.data.kind,
                &config.data.path,
                &config.data.load_options(),
            )
            .with_context(|| format!("reading {}", config.data.path.display()))?;
            let all = dataset.fold_ids();
            if all.is_empty() || config.data.ignore_folds {
                bail!(
                    "{}: cross-validation needs a dataset with folds (and data.ignore_folds = false)",
                    config.data.path.display()
                );
            }
            jobs.folds = folds.unwrap_or_else(|| all.clone());
            jobs.folds.sort_unstable();
            jobs.folds.dedup();
            if let Some(k) = jobs.folds.iter().find(|k| !all.contains(k)) {
                bail!(
                    "--folds: {} has no fold {k} (its folds: {all:?})",
                    config.data.path.display()
                );
            }
            let script = jobs.script();
            match file {
                Some(path) => {
                    hark_data::write_atomic(&path, script.as_bytes())?;
                    writeln!(
                        out,
                        "wrote {}: {} fold tasks; submit with `bash {}`",
                        path.display(),
                        jobs.folds.len(),
                        path.display()
                    )?;
                }
                None => write!(out, "{script}")?,
            }
        }
        Task::Features(config, shard) => {
            let p = prepared_shard(&config, shard, bars)?;
            if shard != Shard::WHOLE {
                write!(out, "shard {}/{}: ", shard.index, shard.count)?;
            }
            writeln!(
                out,
                "{} of {} examples have features in the cache",
                p.clips.len(),
                p.dataset.examples.len()
            )?;
        }
        Task::InspectWav(files) => {
            let mut bad = 0;
            for f in &files {
                match hark_data::inspect_audio(f) {
                    Ok(i) => writeln!(
                        out,
                        "{}: {}{}, {} Hz, {} bit, {} channel(s), {} frames, {:.3} s",
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
        Task::WritePhaseMap { config, force } => write_phase_map(&config, force, out)?,
        Task::InspectDataset { config, plot } => {
            let options = config.data.load_options();
            let d = hark_data::open_dataset(config.data.kind, &config.data.path, &options)?;
            let formats = hark_data::format_histogram(&d);
            let classes: Vec<_> = (d.classes.iter().zip(d.class_counts()))
                .map(|(c, n)| serde_json::json!({"class": c, "examples": n}))
                .collect();
            let summary = serde_json::json!({
                "kind": d.kind,
                "examples": d.examples.len(),
                "classes": classes,
                "by_part": d.counts_by_part(),
                "skipped": d.skipped.len(),
                "formats": formats,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
            if let Some(dir) = plot {
                std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
                let rates: Vec<(String, u64)> = (formats.sample_rates.iter())
                    .map(|(r, n)| (format!("{r} Hz"), *n as u64))
                    .collect();
                hark_train::bars_png(
                    &dir.join("sample_rates.png"),
                    "files per sample rate",
                    &rates,
                )?;
                let balance: Vec<(String, u64)> = (d.classes.iter().zip(d.class_counts()))
                    .map(|(c, n)| (c.clone(), n as u64))
                    .collect();
                hark_train::bars_png(
                    &dir.join("class_balance.png"),
                    "examples per class",
                    &balance,
                )?;
                writeln!(out, "pictures: {}", dir.display())?;
            }
        }
        Task::InspectModel { config, classes } => {
            let (n, input) = match classes {
                Some(n) => (n, config.input_shape()?),
                None => {
                    let p = prepared(&config, bars)?;
                    (p.dataset.classes.len(), p.input_shape()?)
                }
            };
            let m = &config.model;
            let model =
                hark_models::Model::with_output(&m.spec, n, m.output, input, config.train.seed)?;
            writeln!(out, "{}", model.summary()?)?;
        }
        Task::Synth { out: dir, config } => {
            let s = hark_data::generate_urban_synth(&dir, &config)?;
            writeln!(
                out,
                "wrote {} clips of {} recordings ({:.1} MB) to {}",
                s.clips,
                s.recordings,
                s.bytes as f64 / 1e6,
                dir.display()
            )?;
        }
        Task::SynthEvents { out: dir, config } => {
            let s = hark_data::generate_event_synth(&dir, &config)?;
            writeln!(
                out,
                "wrote {} clips with a transient and {} without, and {} recordings with {} events, to {}",
                s.clips.0,
                s.clips.1,
                config.recordings,
                s.events,
                dir.display()
            )?;
        }
        Task::Download { source, dir } => {
            let mut log = |line: &str| tracing::info!("{line}");
            let root = hark_cli::download::fetch(&source, &dir, &mut log)?;
            write!(
                out,
                "{}",
                hark_cli::download::describe(&source.kind, &root)?
            )?;
        }
        Task::Completions(shell) => {
            clap_complete::generate(shell, &mut Flags::command(), "hark", out);
        }
    }
    Ok(())
}

/// `hark split --write-phase-map`.
fn write_phase_map(config: &ExperimentConfig, force: bool, out: &mut impl Write) -> Result<()> {
    let root = &config.data.path;
    if config.data.kind != hark_data::DatasetKind::Speakers {
        bail!(
            "a phase map is for a speaker tree (data.kind = \"speakers\"), not {}",
            config.data.kind
        );
    }
    let path = root.join(hark_data::PHASE_MAP);
    if path.exists() && !force {
        bail!("{} exists; --force replaces it", path.display());
    }
    let mut d = hark_data::open_dataset(config.data.kind, root, &config.data.load_options())?;
    let labels: Vec<usize> = d.examples.iter().map(|e| e.label).collect();
    let groups: Vec<&str> = d.examples.iter().map(|e| e.group.as_str()).collect();
    let splits = hark_data::speaker_split(
        &labels,
        &groups,
        config.data.split.ratios(),
        config.train.seed,
    );
    let mut counts = [0usize; 3];
    for (e, s) in d.examples.iter_mut().zip(splits) {
        counts[s as usize] += 1;
        e.split = Some(s);
    }
    hark_data::write_phase_map(&d, root, &path)?;
    writeln!(
        out,
        "wrote {}: {} speakers; {} train, {} validation, {} test utterances",
        path.display(),
        d.classes.len(),
        counts[0],
        counts[1],
        counts[2]
    )?;
    Ok(())
}

/// The config's dataset with its features, skipped files logged.
fn prepared(config: &ExperimentConfig, bars: bool) -> Result<Prepared> {
    prepared_shard(config, Shard::WHOLE, bars)
}

/// As [`prepared`], for one shard of the dataset.
fn prepared_shard(config: &ExperimentConfig, shard: Shard, bars: bool) -> Result<Prepared> {
    let p = prepare_shard(config, shard, &ExtractProgress::new(bars))
        .with_context(|| format!("preparing {}", config.data.path.display()))?;
    for s in &p.skipped {
        tracing::warn!("skipped {}: {}", s.path.display(), s.reason);
    }
    if let Some(e) = &p.cache_error {
        tracing::warn!("the feature cache cannot be written, going on without it: {e}");
    }
    if p.cache_corrupt > 0 {
        tracing::debug!("{} corrupt cache entries computed again", p.cache_corrupt);
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

/// The test fold of a single run: the config's, or else the dataset's first
/// (none for a dataset without folds).
fn test_fold(config: &ExperimentConfig, p: &Prepared) -> Option<u32> {
    config.data.fold.or_else(|| {
        let folds = p.dataset.folds.filter(|_| !config.data.ignore_folds);
        folds.and(p.folds().first().copied())
    })
}

/// `hark check`: the overfit-one-batch loss curve, and an error when the
/// loss does not reach `target`.
fn check(
    config: &ExperimentConfig,
    steps: usize,
    target: f32,
    bars: bool,
    out: &mut impl Write,
) -> Result<()> {
    if !(target.is_finite() && target > 0.0) || steps == 0 {
        bail!("--target must be a positive loss and --steps at least 1 (got {target}, {steps})");
    }
    let p = prepared(config, bars)?;
    let c = overfit_one_batch(&p, config, test_fold(config, &p), steps, target)?;
    writeln!(
        out,
        "overfitting one batch of {} examples, {} ({} steps at most)",
        c.examples,
        config.model.spec.kind(),
        steps
    )?;
    writeln!(out, "step  loss")?;
    let last = c.losses.len();
    for (i, loss) in c.losses.iter().enumerate() {
        let step = i + 1;
        if step <= 10 || step % 10 == 0 || step == last {
            writeln!(out, "{step:4}  {loss:.4}")?;
        }
    }
    let final_loss = c.losses.last().copied().unwrap_or(f32::NAN);
    if !c.passed {
        bail!(
            "the loss of one batch did not fall to {target} in {steps} steps (last {final_loss:.4}): \
             check the labels, the learning rate and the normalisation before a full run"
        );
    }
    writeln!(
        out,
        "passed: loss {final_loss:.4} <= {target} after {last} steps"
    )?;
    Ok(())
}

fn eval(
    dir: &RunDir,
    fold: Option<u32>,
    split: Split,
    bars: bool,
    out: &mut impl Write,
) -> Result<()> {
    let mut config = dir.read_config(&[])?;
    let info = dir.read_model_info()?;
    let model = info.load(config.train.seed, &dir.best_weights()?)?;
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
    let name = match split {
        Split::Train => "train",
        Split::Val => "val",
        Split::Test => "test",
    };
    let part = p.subset(&splits, split);
    if part.is_empty() {
        bail!("no {name} examples to evaluate");
    }
    let mut eval = evaluate_crops(&model, held_out(&p, &config, &part))?;
    if let Some(t) = info.threshold {
        eval = eval.with_threshold(t);
    }
    let (_, report) = classification_report(&eval, &info.classes)?;
    let text = report.to_string();
    let path = dir.eval_report(name);
    hark_data::write_atomic(&path, text.as_bytes())?;
    writeln!(out, "{text}")?;
    writeln!(
        out,
        "loss {:.4}, accuracy {:.4} on {} {name} examples",
        eval.loss,
        eval.accuracy,
        eval.predictions.len()
    )?;
    Ok(())
}

/// The top `k` (class, probability) pairs.
fn top<'a>(probs: &[f32], classes: &'a [String], k: usize) -> Vec<(&'a str, f32)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    (order.into_iter().take(k))
        .map(|i| (classes[i].as_str(), probs[i]))
        .collect()
}

/// One JSON Lines record of `hark predict --json`.
fn json_line(kind: &str, file: &std::path::Path, span: (f64, f64), top: &[(&str, f32)]) -> String {
    let top: Vec<_> = (top.iter())
        .map(|(c, p)| serde_json::json!({"class": c, "probability": p}))
        .collect();
    serde_json::json!({"type": kind, "file": file, "start": span.0, "end": span.1, "top": top})
        .to_string()
}

fn top_text(top: &[(&str, f32)]) -> String {
    let list: Vec<String> = top.iter().map(|(c, p)| format!("{c} {p:.3}")).collect();
    list.join(", ")
}

/// `error`'s message, led by `file` unless it names the file already.
fn naming(file: &std::path::Path, error: &impl std::fmt::Display) -> String {
    let (name, msg) = (file.display().to_string(), error.to_string());
    if msg.contains(&name) {
        msg
    } else {
        format!("{name}: {msg}")
    }
}

/// One file's prediction; `-` is a WAV stream on standard input.
fn predict_one(
    predictor: &Predictor,
    file: &std::path::Path,
) -> hark_train::Result<FilePrediction> {
    if file != std::path::Path::new("-") {
        return predictor.predict_file(file);
    }
    let mut stdin = hark_data::PcmStream::open(std::io::stdin(), file, None)?;
    let rate = stdin.format().rate;
    let mut p = predictor.predict_stream(file, rate, |chunk| Ok(stdin.read_mono(chunk)?))?;
    p.warnings = stdin.warnings();
    Ok(p)
}

/// `hark predict`: each file's windows (with more than one) and its mean,
/// as text or JSON Lines. A bad file is reported and skipped unless
/// `--strict`.
fn predict(run: &RunDir, args: &PredictArgs, out: &mut impl Write) -> Result<()> {
    let predictor = Predictor::open(run)?;
    let classes = predictor.classes();
    let k = args.top_k.clamp(1, classes.len());
    let mut failed = 0;
    for file in &args.files {
        let p = match predict_one(&predictor, file) {
            Ok(p) => p,
            Err(e) if !args.strict => {
                failed += 1;
                tracing::error!("{}", naming(file, &e));
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!(naming(file, &e))),
        };
        p.warnings.iter().for_each(|w| tracing::warn!("{w}"));
        for w in &p.windows {
            let t = top(&w.probabilities, classes, k);
            if args.json {
                writeln!(out, "{}", json_line("window", file, (w.start, w.end), &t))?;
            } else if p.windows.len() > 1 {
                let (start, end) = (w.start, w.end);
                let text = top_text(&t);
                writeln!(out, "{}\t{start:.2}-{end:.2}s\t{text}", file.display())?;
            }
        }
        let t = top(&p.mean, classes, k);
        if args.json {
            writeln!(out, "{}", json_line("file", file, (0.0, p.seconds), &t))?;
        } else {
            writeln!(out, "{}\t{}", file.display(), top_text(&t))?;
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
