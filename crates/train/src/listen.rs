//! Listening: mono audio in chunks of any size through a run's features and
//! model, as it arrives, into class probabilities and timed events.
//!
//! The chain is [`StreamResampler`] to the model's rate, [`LogMelStream`]
//! (mel bands, or every STFT bin for `features.kind = "spectrogram"`), then
//! the model's stream (MFCCs take their DCT there, after the dB clamp):
//! - a recurrent stream ([`Model::recurrent_stream`]) when the model has one
//!   and every frame is final as it comes out: the dB clamp counts from
//!   `ref` (`features.db.clamp = "reference"`) or there is none, and the
//!   normalisation is none or dataset statistics;
//! - otherwise a [`WindowStream`] over the model's input length, each window
//!   clamped against its own peak and normalised as training normalised a
//!   clip, so the model sees what it was trained on.
//!
//! # Times
//! Every output covers a span of the stream: the frames of its window (for a
//! recurrent stream, the frames its time weighting covers), from the first
//! frame's first sample to the last frame's last, in seconds of input. An
//! event's onset is the end of the first window whose probability reached
//! the on threshold (the sound lies in that window, and not wholly in the
//! one before it); its offset is the start of the last window above the off
//! threshold, or the onset if that comes first (a click shorter than a
//! window).
//!
//! A stream shorter than one window is evaluated once, padded with silence
//! at [`Listener::finish`].

use hark_data::{FeatureExtractor, Normalization};
use hark_dsp::{DbClamp, DbConfig, LogMelStream, Mfcc, StreamResampler};
use hark_models::{FrameStream, Model, WindowStream};

use crate::error::{check_range, features_error};
use crate::{Error, Predictor, Result};

/// Which model stream to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Recurrent when the model and the features allow it, else windows.
    #[default]
    Auto,
    /// A sliding window over the model's input length.
    Window,
    /// The model's recurrent stream; an error when it has none, or when
    /// the features need the whole window.
    Recurrent,
}

/// How probabilities become events.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenOptions {
    /// An event starts when its class's probability reaches this. Default:
    /// the run's decision threshold (a sigmoid output's, chosen on the
    /// validation set), else 0.5.
    pub threshold: Option<f32>,
    /// An event ends when the probability falls below this (hysteresis).
    /// Default: the on threshold.
    pub off_threshold: Option<f32>,
    /// Events whose probability stayed above the threshold for less than
    /// this many seconds are dropped. Default: half the model's window. A
    /// sound inside the window keeps a good detector firing for about a
    /// window's length; a blip of noise does not.
    pub min_duration: Option<f64>,
    /// Seconds after an event during which no new one of its class starts
    /// (refractory time). Default: 0.
    pub hold: f64,
    /// Frames between window evaluations. Default: 1.
    pub hop_frames: usize,
    /// The classes that make events, by name. Default: every class but the
    /// first, which is the background (seed 000's label 0).
    pub classes: Option<Vec<String>>,
    /// Which model stream.
    pub mode: StreamMode,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            threshold: None,
            off_threshold: None,
            min_duration: None,
            hold: 0.0,
            hop_frames: 1,
            classes: None,
            mode: StreamMode::Auto,
        }
    }
}

/// A detected event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The class index.
    pub class: usize,
    /// Onset, in seconds of input.
    pub onset: f64,
    /// Offset, in seconds of input (at least the onset).
    pub offset: f64,
    /// The highest probability of the class during the event.
    pub peak: f32,
}

/// What a listener reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<'a> {
    /// One model output.
    Probabilities {
        /// Start of the span it covers, in seconds (at least 0).
        start: f64,
        /// End of the span, in seconds.
        end: f64,
        /// Per class.
        probabilities: &'a [f32],
    },
    /// A finished event.
    Event(Event),
}

/// One class's event in progress.
#[derive(Debug, Clone, Copy)]
struct Run {
    first_end: f64,
    last_start: f64,
    last_end: f64,
    peak: f32,
}

/// Thresholds, hysteresis, minimum duration and hold over a stream of outputs.
#[derive(Debug)]
struct Detector {
    classes: Vec<usize>,
    on: f32,
    off: f32,
    min_duration: f64,
    hold: f64,
    /// Seconds between outputs, counted into a run's length.
    step: f64,
    runs: Vec<Option<Run>>,
    /// Per event class, the last output end of its previous event.
    last_end: Vec<f64>,
}

impl Detector {
    fn update(&mut self, start: f64, end: f64, probs: &[f32], emit: &mut impl FnMut(Event)) {
        for i in 0..self.classes.len() {
            let p = probs[self.classes[i]];
            match &mut self.runs[i] {
                Some(run) if p >= self.off => {
                    run.last_start = start;
                    run.last_end = end;
                    run.peak = run.peak.max(p);
                }
                Some(_) => self.close(i, emit),
                None if p >= self.on && end >= self.last_end[i] + self.hold => {
                    self.runs[i] = Some(Run {
                        first_end: end,
                        last_start: start,
                        last_end: end,
                        peak: p,
                    });
                }
                None => {}
            }
        }
    }

    fn close(&mut self, i: usize, emit: &mut impl FnMut(Event)) {
        let Some(run) = self.runs[i].take() else {
            return;
        };
        self.last_end[i] = run.last_end;
        if run.last_end - run.first_end + self.step >= self.min_duration {
            emit(Event {
                class: self.classes[i],
                onset: run.first_end,
                offset: run.last_start.max(run.first_end),
                peak: run.peak,
            });
        }
    }

    fn flush(&mut self, emit: &mut impl FnMut(Event)) {
        (0..self.classes.len()).for_each(|i| self.close(i, emit));
    }
}

/// Processing times per hop, in a histogram of 2 % wide bins, so a stream
/// of any length keeps a fixed amount of memory.
#[derive(Debug, Clone)]
pub struct HopTimes {
    bins: Vec<u64>,
    count: u64,
}

/// Smallest time the histogram resolves, in seconds.
const HOP_TIME_MIN: f64 = 1e-7;
const HOP_TIME_BINS: usize = 1000;

impl Default for HopTimes {
    fn default() -> Self {
        Self {
            bins: vec![0; HOP_TIME_BINS],
            count: 0,
        }
    }
}

impl HopTimes {
    fn add(&mut self, seconds: f64, hops: u64) {
        let bin = ((seconds / HOP_TIME_MIN).max(1.0).ln() / 1.02f64.ln()) as usize;
        self.bins[bin.min(HOP_TIME_BINS - 1)] += hops;
        self.count += hops;
    }

    /// Hops recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q`-quantile (0 to 1) in seconds, within 2 %; 0 without hops.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.bins.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return HOP_TIME_MIN * 1.02f64.powf(i as f64 + 0.5);
            }
        }
        HOP_TIME_MIN * 1.02f64.powi(HOP_TIME_BINS as i32)
    }
}

/// A run's model listening to one stream; see the [module docs](self).
#[derive(Debug)]
pub struct Listener<'p> {
    predictor: &'p Predictor,
    resampler: StreamResampler,
    logmel: LogMelStream,
    /// The DCT that makes MFCCs of the stream's log-mel frames.
    cepstrum: Option<Mfcc>,
    stream: Box<dyn FrameStream + 'p>,
    recurrent: bool,
    normalization: Normalization,
    detector: Detector,
    /// Frames in a model output's span, and between window evaluations.
    window: usize,
    hop_frames: usize,
    /// Frames pushed, and since the last output.
    frames: u64,
    since_output: usize,
    /// A log-mel frame of silence, for padding a short stream's window.
    silence: f32,
    /// Values per stream frame (before any DCT).
    frame_len: usize,
    /// A recurrent model's input frame.
    frame: Vec<f32>,
    /// The frames of one chunk, kept between chunks so that a push does
    /// not allocate.
    pending: Vec<f32>,
    samples_in: u64,
    input_rate: u32,
    times: HopTimes,
    error: Option<Error>,
}

impl<'p> Listener<'p> {
    /// A listener for mono input at `input_rate` Hz.
    ///
    /// # Errors
    /// An unknown event class, a threshold outside `[0, 1]`, a zero hop, a
    /// recurrent mode the model or features do not allow, or a rate the
    /// resampler cannot take.
    pub fn new(predictor: &'p Predictor, input_rate: u32, options: &ListenOptions) -> Result<Self> {
        let config = predictor.config();
        let features = &config.features;
        let model: &'p Model = predictor.model();
        let on = (options.threshold).or(predictor.threshold()).unwrap_or(0.5);
        let off = options.off_threshold.unwrap_or(on);
        let unit = "must be within [0, 1]";
        check_range("--threshold", on as f64, 0.0, 1.0, unit)?;
        check_range(
            "--off-threshold",
            off as f64,
            0.0,
            on as f64,
            "must be within [0, threshold]",
        )?;
        let seconds = "must be >= 0 seconds";
        let min_duration = options.min_duration.unwrap_or(0.0);
        check_range("--min-duration", min_duration, 0.0, f64::MAX, seconds)?;
        check_range("--hold", options.hold, 0.0, f64::MAX, seconds)?;
        if options.hop_frames == 0 {
            return Err(Error::Config {
                field: "--hop-frames",
                rule: "must be at least 1",
                got: "0".into(),
            });
        }
        let classes = event_classes(predictor.classes(), options.classes.as_deref())?;
        let logmel = LogMelStream::with_bands(&features.mel, &features.db, features.kind.bands())
            .map_err(features_error)?;
        let extractor = FeatureExtractor::new(features).map_err(features_error)?;
        let cepstrum = extractor.cepstrum().cloned();
        let frame_len = logmel.n_mels();
        let rows = cepstrum.as_ref().map_or(frame_len, Mfcc::n_mfcc);
        let normalization = crate::loaders::normalization(config)?.clone();
        let frame_local = logmel.frames_are_final() && normalization.is_pointwise();
        let recurrent = match options.mode {
            StreamMode::Window => None,
            StreamMode::Auto if !frame_local => None,
            StreamMode::Auto => model.recurrent_stream()?,
            StreamMode::Recurrent => {
                let refuse = |got: String| Error::Config {
                    field: "--stream",
                    rule: "recurrent needs a model with a recurrent stream and frame-by-frame features (features.db.clamp = \"reference\" or no top_db; train.normalization none or dataset)",
                    got,
                };
                if !frame_local {
                    return Err(refuse("features that need a whole window".into()));
                }
                let Some(stream) = model.recurrent_stream()? else {
                    return Err(refuse(model.net().name().into()));
                };
                Some(stream)
            }
        };
        let db = features.db;
        let (window_norm, window_dct) = (normalization.clone(), cepstrum.clone());
        let window = model.input_shape().frames;
        let is_recurrent = recurrent.is_some();
        let stream: Box<dyn FrameStream + 'p> = match recurrent {
            Some(stream) => stream,
            None => Box::new(WindowStream::reshaping(
                model,
                options.hop_frames,
                frame_len,
                Box::new(move |raw: &mut [f32], input: &mut [f32]| {
                    db.clamp_to_peak(raw);
                    match &window_dct {
                        Some(dct) => dct.dct_into(raw, window, input),
                        None => input.copy_from_slice(raw),
                    }
                    window_norm.apply_one(input, rows);
                }),
            )?),
        };
        let hop = logmel.hop_length() as f64 / features.mel.sample_rate as f64;
        let hop_frames = if is_recurrent { 1 } else { options.hop_frames };
        Ok(Self {
            predictor,
            resampler: StreamResampler::new(input_rate, features.mel.sample_rate)
                .map_err(features_error)?,
            frame: vec![0.0; rows],
            frame_len,
            pending: Vec::new(),
            logmel,
            cepstrum,
            stream,
            recurrent: is_recurrent,
            normalization,
            detector: Detector {
                runs: vec![None; classes.len()],
                last_end: vec![f64::NEG_INFINITY; classes.len()],
                classes,
                on,
                off,
                min_duration: options
                    .min_duration
                    .unwrap_or(0.5 * (window.max(1) - 1) as f64 * hop),
                hold: options.hold,
                step: hop * hop_frames as f64,
            },
            window,
            hop_frames,
            frames: 0,
            since_output: 0,
            silence: silence_db(&db, features.mel.power),
            samples_in: 0,
            input_rate,
            times: HopTimes::default(),
            error: None,
        })
    }

    /// Whether the model streams frame by frame (else through windows).
    pub fn is_recurrent(&self) -> bool {
        self.recurrent
    }

    /// The event classes' indices.
    pub fn event_classes(&self) -> &[usize] {
        &self.detector.classes
    }

    /// Seconds of input processed.
    pub fn seconds(&self) -> f64 {
        self.samples_in as f64 / self.input_rate as f64
    }

    /// Processing time per hop (log-mel frame and model step).
    pub fn hop_times(&self) -> &HopTimes {
        &self.times
    }

    /// Feeds mono samples at the input rate; `on_output` sees each model
    /// output (as [`Output::Probabilities`]) and each finished event.
    ///
    /// # Errors
    /// Non-finite samples (the chunk is not taken), or a failed forward pass.
    pub fn push(&mut self, samples: &[f32], mut on_output: impl FnMut(Output)) -> Result<()> {
        let t0 = std::time::Instant::now();
        let before = self.frames;
        let Self {
            resampler,
            logmel,
            error,
            ..
        } = self;
        // The resampler checks the chunk before taking any of it.
        let mut frames = std::mem::take(&mut self.pending);
        frames.clear();
        resampler.push(samples, |out| {
            if error.is_none() {
                if let Err(e) = logmel.push(out, |f| frames.extend_from_slice(f)) {
                    *error = Some(e.into());
                }
            }
        })?;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.samples_in += samples.len() as u64;
        self.take_frames(&frames, &mut on_output)?;
        self.pending = frames;
        let hops = self.frames - before;
        (self.times).add(t0.elapsed().as_secs_f64() / hops.max(1) as f64, hops);
        Ok(())
    }

    /// Ends the stream: the last frames, a padded window for a stream
    /// shorter than one (or frames since the last evaluation), and any
    /// event still open.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn finish(&mut self, mut on_output: impl FnMut(Output)) -> Result<()> {
        let mut resampled = Vec::new();
        self.resampler
            .finish(|out| resampled.extend_from_slice(out))?;
        let mut frames = Vec::new();
        self.logmel
            .push(&resampled, |f| frames.extend_from_slice(f))?;
        self.logmel.finish(|f| frames.extend_from_slice(f))?;
        self.take_frames(&frames, &mut on_output)?;
        if !self.recurrent && self.frames > 0 {
            let pad = vec![self.silence; self.frame_len];
            while self.frames < self.window as u64 || self.since_output > 0 {
                self.step(&pad, &mut on_output)?;
            }
        }
        self.detector.flush(&mut |e| on_output(Output::Event(e)));
        Ok(())
    }

    fn take_frames(&mut self, frames: &[f32], on_output: &mut impl FnMut(Output)) -> Result<()> {
        for frame in frames.chunks_exact(self.frame_len) {
            self.step(frame, on_output)?;
        }
        Ok(())
    }

    /// One stream frame into the model; its output, if any, into the detector.
    fn step(&mut self, frame: &[f32], on_output: &mut impl FnMut(Output)) -> Result<()> {
        let (start, end) = self.span(self.frames);
        self.frames += 1;
        self.since_output += 1;
        // A window stream finishes its frames itself, a whole window at a time.
        let input = if self.recurrent {
            match &self.cepstrum {
                Some(dct) => dct.dct_into(frame, 1, &mut self.frame),
                None => self.frame.copy_from_slice(frame),
            }
            let rows = self.frame.len();
            self.normalization.apply_one(&mut self.frame, rows);
            &self.frame
        } else {
            frame
        };
        let Some(probs) = self.stream.push(input)? else {
            return Ok(());
        };
        self.since_output = 0;
        on_output(Output::Probabilities {
            start,
            end,
            probabilities: probs,
        });
        self.detector
            .update(start, end, probs, &mut |e| on_output(Output::Event(e)));
        Ok(())
    }

    /// The span in seconds of input of the output at frame `k`.
    fn span(&self, k: u64) -> (f64, f64) {
        let mel = &self.predictor.config().features.mel;
        let (hop, n_fft) = (self.logmel.hop_length() as f64, mel.n_fft as f64);
        let offset = if mel.center { n_fft / 2.0 } else { 0.0 };
        let first = k.saturating_sub(self.window as u64 - 1) as f64;
        let rate = mel.sample_rate as f64;
        let start = ((first * hop - offset) / rate).max(0.0);
        let end = (k as f64 * hop - offset + n_fft) / rate;
        (start, end)
    }

    /// Frames between window evaluations.
    pub fn hop_frames(&self) -> usize {
        self.hop_frames
    }
}

/// The log-mel value of silence: the dB floor `amin`, raised to `-top_db`
/// by a clamp against `ref`.
fn silence_db(db: &DbConfig, power: f32) -> f32 {
    let multiplier = 20.0 / power;
    let floor = multiplier * (db.amin.log10() - db.ref_value.max(db.amin).log10());
    match (db.clamp, db.top_db) {
        (DbClamp::Reference, Some(top)) => floor.max(-top),
        _ => floor,
    }
}

/// The indices of the event classes `names` (default: all but the first).
fn event_classes(all: &[String], names: Option<&[String]>) -> Result<Vec<usize>> {
    let Some(names) = names else {
        return Ok((1..all.len()).collect());
    };
    names
        .iter()
        .map(|n| {
            all.iter()
                .position(|c| c == n)
                .ok_or_else(|| Error::Config {
                    field: "--class",
                    rule: "must be one of the run's classes",
                    got: format!("{n} (the classes are {})", all.join(", ")),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(min_duration: f64, hold: f64, off: f32) -> Detector {
        Detector {
            classes: vec![1],
            on: 0.5,
            off,
            min_duration,
            hold,
            step: 0.1,
            runs: vec![None],
            last_end: vec![f64::NEG_INFINITY],
        }
    }

    /// Events from outputs every 0.1 s with 1 s windows and the given
    /// class-1 probabilities.
    fn events(d: &mut Detector, probs: &[f32]) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            let end = 1.0 + i as f64 * 0.1;
            d.update(end - 1.0, end, &[1.0 - p, p], &mut |e| out.push(e));
        }
        d.flush(&mut |e| out.push(e));
        out
    }

    #[test]
    fn an_event_runs_from_the_first_window_end_to_the_last_window_start() {
        let got = events(
            &mut detector(0.0, 0.0, 0.5),
            &[0.1, 0.7, 0.9, 0.6, 0.2, 0.1],
        );
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert!(
            (e.onset - 1.1).abs() < 1e-9 && (e.offset - 1.1).abs() < 1e-9,
            "{e:?}"
        );
        assert_eq!(e.peak, 0.9);
        // A long run: the offset is the last firing window's start.
        let long = [vec![0.9; 20], vec![0.0]].concat();
        let got = events(&mut detector(0.0, 0.0, 0.5), &long);
        assert!((got[0].onset - 1.0).abs() < 1e-9 && (got[0].offset - 1.9).abs() < 1e-9);
    }

    #[test]
    fn hysteresis_min_duration_and_hold_shape_the_events() {
        let probs = [0.6, 0.4, 0.6, 0.1, 0.1, 0.7, 0.1, 0.8, 0.8, 0.8, 0.1];
        // No hysteresis: three dips make four events.
        assert_eq!(events(&mut detector(0.0, 0.0, 0.5), &probs).len(), 4);
        // Off at 0.3: the dip to 0.4 does not end the first.
        assert_eq!(events(&mut detector(0.0, 0.0, 0.3), &probs).len(), 3);
        // At least 0.25 s above the threshold: only the last (0.3 s).
        let got = events(&mut detector(0.25, 0.0, 0.5), &probs);
        assert_eq!(got.len(), 1);
        assert!((got[0].onset - 1.7).abs() < 1e-9);
        // A 0.5 s hold after each event swallows onsets within it.
        let got = events(&mut detector(0.0, 0.5, 0.5), &probs);
        let onsets: Vec<f64> = got
            .iter()
            .map(|e| (e.onset * 10.0).round() / 10.0)
            .collect();
        assert_eq!(onsets, [1.0, 1.5]);
    }

    #[test]
    fn an_open_event_is_flushed_at_the_end() {
        let got = events(&mut detector(0.0, 0.0, 0.5), &[0.1, 0.9, 0.9]);
        assert_eq!(got.len(), 1);
        assert!((got[0].offset - 1.1).abs() < 1e-9);
    }

    #[test]
    fn hop_time_quantiles_are_within_two_percent() {
        let mut t = HopTimes::default();
        for i in 1..=1000 {
            t.add(i as f64 * 1e-6, 1);
        }
        assert_eq!(t.count(), 1000);
        for (q, want) in [(0.5, 500e-6), (0.99, 990e-6)] {
            let got = t.quantile(q);
            assert!((got / want - 1.0).abs() < 0.03, "{q}: {got}");
        }
        assert_eq!(HopTimes::default().quantile(0.5), 0.0);
    }

    #[test]
    fn event_classes_default_to_all_but_the_background_and_names_are_checked() {
        let all: Vec<String> = ["bg", "snap", "clap"].map(String::from).to_vec();
        assert_eq!(event_classes(&all, None).unwrap(), [1, 2]);
        assert_eq!(event_classes(&all, Some(&["clap".into()])).unwrap(), [2]);
        let err = event_classes(&all, Some(&["knock".into()])).unwrap_err();
        assert!(err.to_string().contains("bg, snap, clap"), "{err}");
    }

    #[test]
    fn silence_is_the_db_floor_or_the_reference_clamp() {
        let db = DbConfig::default();
        assert_eq!(silence_db(&db, 2.0), -100.0);
        let db = DbConfig {
            clamp: DbClamp::Reference,
            ..db
        };
        assert_eq!(silence_db(&db, 2.0), -80.0);
    }
}
