//! `hark listen`: a stream of audio (standard input, a file, or the
//! microphone) through a run's model, printing each event as it ends.
//!
//! Non-finite float samples are replaced by silence and counted in the
//! summary; a partial frame at the end of the input is dropped, and a WAV
//! header that claims more data than arrives ends with the input, both
//! with a warning. Ctrl-C ends the input as EOF does: the open event is
//! printed, then the summary.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hark_data::{AudioFile, PcmFormat, PcmStream};
use hark_train::{ListenOptions, Listener, Output, Predictor, RunDir, StreamMode, score_events};

use crate::flags::{ListenArgs, StreamKind};

/// Writes each output as a line, flushed, and keeps the events for scoring.
struct Sink<'a, W: Write> {
    out: &'a mut W,
    classes: &'a [String],
    json: bool,
    frames: bool,
    events: Vec<(usize, f64)>,
    error: Option<std::io::Error>,
}

impl<W: Write> Sink<'_, W> {
    fn take(&mut self, output: Output) {
        if self.error.is_some() {
            return;
        }
        let line = match output {
            Output::Probabilities {
                start,
                end,
                probabilities,
            } if self.frames => {
                if self.json {
                    serde_json::json!({"start": start, "end": end, "probabilities": probabilities})
                        .to_string()
                } else {
                    let p: Vec<String> = probabilities.iter().map(|p| format!("{p:.4}")).collect();
                    format!("{start:.3}\t{end:.3}\t{}", p.join("\t"))
                }
            }
            Output::Probabilities { .. } => return,
            Output::Event(e) => {
                self.events.push((e.class, e.onset));
                if self.frames {
                    return;
                }
                let class = &self.classes[e.class];
                if self.json {
                    serde_json::json!({"class": class, "onset": e.onset, "offset": e.offset, "peak": e.peak})
                        .to_string()
                } else {
                    format!("{class}\t{:.3}\t{:.3}\t{:.3}", e.onset, e.offset, e.peak)
                }
            }
        };
        if let Err(e) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.error = Some(e);
        }
    }

    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Runs `hark listen`.
pub fn listen(run: &RunDir, args: &ListenArgs, out: &mut impl Write) -> Result<()> {
    if args.list_devices {
        return crate::mic::list_devices(out);
    }
    // Checked before any audio is read, not after the stream ends.
    if !(args.collar.is_finite() && args.collar >= 0.0) {
        bail!("--collar must be >= 0 seconds, got {}", args.collar);
    }
    let predictor = Predictor::open(run)?;
    let options = ListenOptions {
        threshold: args.threshold,
        off_threshold: args.off_threshold,
        min_duration: args.min_duration,
        hold: args.hold,
        hop_frames: args.hop_frames,
        classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
        mode: match args.stream {
            StreamKind::Auto => StreamMode::Auto,
            StreamKind::Window => StreamMode::Window,
            StreamKind::Recurrent => StreamMode::Recurrent,
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Fails only if a handler is set already; Ctrl-C then ends the process.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut sink = Sink {
        out,
        classes: predictor.classes(),
        json: args.json,
        frames: args.frames,
        events: Vec::new(),
        error: None,
    };
    let mut source = open_source(args, &stop)?;
    let mut listener = Listener::new(&predictor, source.rate(), &options)?;
    tracing::info!(
        "listening at {} Hz through the model's {} stream; events of {}",
        source.rate(),
        if listener.is_recurrent() {
            "recurrent"
        } else {
            "window"
        },
        (listener.event_classes().iter())
            .map(|&c| predictor.classes()[c].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    let mut chunk = Vec::new();
    let mut non_finite = 0u64;
    while !stop.load(Ordering::SeqCst) && source.read(&mut chunk)? > 0 {
        for v in chunk.iter_mut().filter(|v| !v.is_finite()) {
            *v = 0.0;
            non_finite += 1;
        }
        listener.push(&chunk, |o| sink.take(o))?;
        sink.check()?;
        if args.realtime {
            let ahead = listener.seconds() - started.elapsed().as_secs_f64();
            if ahead > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(ahead));
            }
        }
    }
    listener.finish(|o| sink.take(o))?;
    sink.check()?;
    let wall = started.elapsed().as_secs_f64();
    for warning in source.warnings() {
        tracing::warn!("{warning}");
    }
    if non_finite > 0 {
        tracing::warn!("{non_finite} NaN or infinite samples were replaced by silence");
    }
    let times = listener.hop_times();
    tracing::info!(
        "{:.1} s of audio in {wall:.2} s ({:.0}x real time), {} events; per hop: median {:.1} us, p99 {:.1} us",
        listener.seconds(),
        listener.seconds() / wall.max(1e-9),
        sink.events.len(),
        times.quantile(0.5) * 1e6,
        times.quantile(0.99) * 1e6,
    );
    if let Some(reference) = &args.reference {
        score(
            args,
            reference,
            &predictor,
            &sink.events,
            listener.seconds(),
        )?;
    }
    Ok(())
}

/// Where the samples come from.
enum Source {
    /// A WAV or raw PCM stream on standard input.
    Stdin(Box<PcmStream<std::io::Stdin>>),
    /// An audio file.
    File(AudioFile),
    /// The microphone.
    Mic(crate::mic::Mic),
}

impl Source {
    fn rate(&self) -> u32 {
        match self {
            Self::Stdin(s) => s.format().rate,
            Self::File(f) => f.rate(),
            Self::Mic(m) => m.rate(),
        }
    }

    /// The next mono chunk; 0 at the end.
    fn read(&mut self, chunk: &mut Vec<f32>) -> Result<usize> {
        match self {
            Self::Stdin(s) => Ok(s.read_mono(chunk)?),
            Self::File(f) => Ok(f.read_mono(chunk)?),
            Self::Mic(m) => m.read(chunk),
        }
    }

    fn warnings(&self) -> Vec<String> {
        match self {
            Self::Stdin(s) => s.warnings(),
            Self::File(f) => f.warnings(),
            Self::Mic(_) => Vec::new(),
        }
    }
}

/// The raw format the flags give, if any.
fn raw_format(args: &ListenArgs) -> Result<Option<PcmFormat>> {
    if args.format.is_none() && args.rate.is_none() && args.channels.is_none() {
        return Ok(None);
    }
    let Some(rate) = args.rate else {
        bail!("--rate is needed with --format or --channels");
    };
    Ok(Some(PcmFormat {
        sample: args.format.as_deref().unwrap_or("s16le").parse()?,
        rate,
        channels: args.channels.unwrap_or(1),
    }))
}

fn open_source(args: &ListenArgs, stop: &Arc<AtomicBool>) -> Result<Source> {
    if let Some(device) = &args.mic {
        return Ok(Source::Mic(crate::mic::Mic::open(device, stop.clone())?));
    }
    let input = args.input.as_deref().expect("clap requires an input");
    if input == Path::new("-") {
        let stdin = PcmStream::open(std::io::stdin(), input, raw_format(args)?)?;
        return Ok(Source::Stdin(Box::new(stdin)));
    }
    if raw_format(args)?.is_some() {
        bail!("--format, --rate and --channels describe standard input; a file has its own header");
    }
    Ok(Source::File(AudioFile::open(input)?))
}

/// Scores the detected events against the reference list's events of this
/// input, prints the scores and writes them as JSON.
fn score(
    args: &ListenArgs,
    reference: &Path,
    predictor: &Predictor,
    detected: &[(usize, f64)],
    seconds: f64,
) -> Result<()> {
    let rows = hark_data::read_events(reference)?;
    let name = args
        .input
        .as_deref()
        .filter(|p| *p != Path::new("-"))
        .and_then(Path::file_name);
    let rows: Vec<_> = match name {
        Some(name) => (rows.iter())
            .filter(|r| Path::new(&r.file).file_name() == Some(name))
            .collect(),
        None => {
            let first = rows.first().map(|r| r.file.as_str());
            if rows.iter().any(|r| Some(r.file.as_str()) != first) {
                bail!(
                    "{}: the list names several files; on standard input, give a list of one file's events",
                    reference.display()
                );
            }
            rows.iter().collect()
        }
    };
    let classes = predictor.classes();
    let events = (rows.iter())
        .map(|r| match classes.iter().position(|c| *c == r.class) {
            Some(c) => Ok((c, r.onset)),
            None => bail!(
                "{}: class {:?} is not one of the run's ({})",
                reference.display(),
                r.class,
                classes.join(", ")
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    let s = score_events(&events, detected, args.collar, seconds);
    tracing::info!(
        "events: F1 {:.3}, precision {:.3}, recall {:.3} ({} found of {}, {} false alarms, {:.1} per hour)",
        s.f1,
        s.precision,
        s.recall,
        s.true_positives,
        s.reference,
        s.false_positives,
        s.false_alarms_per_hour
    );
    if let Some(path) = &args.score_json {
        let text = serde_json::to_string_pretty(&s)?;
        hark_data::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}
