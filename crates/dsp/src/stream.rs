//! A streaming log-mel: PCM in chunks of any size, log-mel frames out as soon
//! as each is complete, equal to the offline [`LogMelSpectrogram`] of the
//! whole signal.
//!
//! # Conventions
//! - Without `center`, frame `t` covers samples `t * hop .. t * hop + n_fft`
//!   and comes out once its last sample has arrived.
//! - With `center`, frame `t` is centred on sample `t * hop`, so it needs a
//!   look-ahead of `n_fft / 2` samples past its centre
//!   ([`LogMelStream::lookahead`]). Reflect padding at the start needs
//!   `n_fft / 2 + 1` samples, so the first frame waits for them; the end
//!   padding is added by [`LogMelStream::finish`], which emits the last
//!   frames. A whole signal shorter than that is framed at `finish` exactly
//!   as offline (reflecting back and forth).
//! - dB: each frame is converted alone. With [`DbClamp::Reference`] it is
//!   clamped too, and equals the offline frame; with [`DbClamp::Peak`] the
//!   peak is not known yet, so frames come out unclamped and
//!   [`DbConfig::clamp_to_peak`] clamps a window of them before a model
//!   sees it.
//!
//! Each frame takes one FFT of `n_fft` points; after the first chunks,
//! [`LogMelStream::push`] allocates nothing.

use crate::error::check_signal;
use crate::mel::{BLOCK, MelFilterbank};
use crate::stft::{PadMode, Power, StftPlan, StftScratch};
use crate::{
    Bands, DbClamp, DbConfig, LogMelSpectrogram, MelSpectrogram, MelSpectrogramConfig, Result,
};

/// A streaming log-mel; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct LogMelStream {
    /// The configured plan: frames a whole signal too short to stream.
    offline: MelSpectrogram,
    /// The same STFT without `center`: frames the padded signal.
    frames: StftPlan,
    filterbank: MelFilterbank,
    power: Power,
    db: DbConfig,
    multiplier: f32,
    center: bool,
    pad_mode: PadMode,
    /// The (padded) signal from the oldest sample still needed.
    samples: Vec<f32>,
    /// Where in `samples` the next frame starts.
    next: usize,
    /// Whether the start padding is in `samples`.
    started: bool,
    emitted: u64,
    scratch: StftScratch,
    block: Vec<f32>,
    frame: Vec<f32>,
}

impl LogMelStream {
    /// Plans the stream for the log-mel `mel` and `db` describe.
    ///
    /// # Errors
    /// Any invalid mel or dB parameter, naming the field.
    pub fn new(mel: &MelSpectrogramConfig, db: &DbConfig) -> Result<Self> {
        Self::with_bands(mel, db, Bands::Mel)
    }

    /// As [`Self::new`], streaming the rows `bands` says (with
    /// [`Bands::Linear`], the dB linear-frequency spectrogram).
    ///
    /// # Errors
    /// As [`LogMelSpectrogram::with_bands`].
    pub fn with_bands(mel: &MelSpectrogramConfig, db: &DbConfig, bands: Bands) -> Result<Self> {
        // Validates both configurations as the offline plan does.
        let offline = LogMelSpectrogram::with_bands(mel, db, bands)?;
        let frames = StftPlan::new(&crate::StftConfig {
            center: false,
            ..mel.stft()
        })?;
        let scratch = frames.make_scratch();
        let block = vec![0.0; frames.n_freqs() * BLOCK];
        let mut stream = Self {
            filterbank: offline.mel().filterbank().clone(),
            offline: offline.mel().clone(),
            frames,
            power: Power::new(mel.power)?,
            db: *db,
            multiplier: 20.0 / mel.power,
            center: mel.center,
            pad_mode: mel.pad_mode,
            samples: Vec::new(),
            next: 0,
            started: false,
            emitted: 0,
            scratch,
            block,
            frame: vec![0.0; offline.n_mels()],
        };
        stream.reset();
        Ok(stream)
    }

    /// Mel bands per frame.
    pub fn n_mels(&self) -> usize {
        self.frame.len()
    }

    /// Samples between frames.
    pub fn hop_length(&self) -> usize {
        self.frames.hop_length()
    }

    /// How many samples past frame `t`'s reference point (its centre with
    /// `center`, its start without) must arrive before it comes out:
    /// `n_fft / 2` with `center`, `n_fft` without.
    pub fn lookahead(&self) -> usize {
        if self.center {
            self.frames.n_fft() - self.pad()
        } else {
            self.frames.n_fft()
        }
    }

    /// Frames emitted since the stream began (or was reset).
    pub fn frames_emitted(&self) -> u64 {
        self.emitted
    }

    fn pad(&self) -> usize {
        if self.center {
            self.frames.n_fft() / 2
        } else {
            0
        }
    }

    /// Forgets every sample: the next one starts a new signal.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.next = 0;
        self.emitted = 0;
        // Zero padding needs nothing from the signal, so it goes in at once.
        self.started = !self.center || self.pad_mode == PadMode::Constant;
        if self.center && self.pad_mode == PadMode::Constant {
            self.samples.resize(self.pad(), 0.0);
        }
    }

    /// Appends `chunk` and hands every frame it completes to `on_frame`
    /// (`n_mels` dB values), in order.
    ///
    /// # Errors
    /// [`crate::DspError::NonFinite`] for a chunk holding NaN or infinity;
    /// nothing of it is taken.
    pub fn push(&mut self, chunk: &[f32], mut on_frame: impl FnMut(&[f32])) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        check_signal(chunk)?;
        self.samples.extend_from_slice(chunk);
        if !self.started {
            let pad = self.pad();
            if self.samples.len() <= pad {
                return Ok(());
            }
            // Reflect: padded[-pad + i] = signal[pad - i].
            let head: Vec<f32> = (0..pad).map(|i| self.samples[pad - i]).collect();
            self.samples.splice(0..0, head);
            self.started = true;
        }
        self.drain(&mut on_frame);
        Ok(())
    }

    /// Ends the signal: adds the end padding (with `center`), hands the
    /// remaining frames to `on_frame`, and resets the stream.
    ///
    /// # Errors
    /// Only for a whole signal shorter than the start padding, as the
    /// offline plan's errors.
    pub fn finish(&mut self, mut on_frame: impl FnMut(&[f32])) -> Result<()> {
        if !self.started {
            if !self.samples.is_empty() {
                let spec = self.offline.process(&self.samples)?;
                for t in 0..spec.frames() {
                    for (m, v) in self.frame.iter_mut().enumerate() {
                        *v = *spec.get(m, t);
                    }
                    self.db.convert_frame(&mut self.frame, self.multiplier);
                    on_frame(&self.frame);
                }
            }
        } else if self.center {
            let (pad, len) = (self.pad(), self.samples.len());
            match self.pad_mode {
                PadMode::Constant => self.samples.resize(len + pad, 0.0),
                // Reflect: padded[len + j] = signal[len - 2 - j]; `drain`
                // keeps the last n_fft samples, more than pad + 1.
                PadMode::Reflect => {
                    for j in 0..pad {
                        self.samples.push(self.samples[len - 2 - j]);
                    }
                }
            }
            self.drain(&mut on_frame);
        }
        self.reset();
        Ok(())
    }

    /// Emits every complete frame, then drops the samples no frame needs
    /// (keeping the last `n_fft` for the end padding).
    fn drain(&mut self, on_frame: &mut impl FnMut(&[f32])) {
        let (n_fft, hop) = (self.frames.n_fft(), self.frames.hop_length());
        while self.next + n_fft <= self.samples.len() {
            let frame = &self.samples[self.next..self.next + n_fft];
            self.frames.power_pair_into(
                frame,
                0,
                self.power,
                &mut self.scratch,
                &mut self.block,
                (BLOCK, 0),
            );
            self.filterbank
                .apply_block(&self.block, 1, &mut self.frame, 0);
            self.db.convert_frame(&mut self.frame, self.multiplier);
            on_frame(&self.frame);
            self.emitted += 1;
            self.next += hop;
        }
        let keep_from = self.next.min(self.samples.len().saturating_sub(n_fft));
        if keep_from >= n_fft {
            self.samples.drain(..keep_from);
            self.next -= keep_from;
        }
    }

    /// Whether frames come out clamped already ([`DbClamp::Reference`] or
    /// no `top_db`), so that each frame is final when it is emitted.
    pub fn frames_are_final(&self) -> bool {
        self.db.top_db.is_none() || self.db.clamp == DbClamp::Reference
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn noise_and_tone(len: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        (0..len)
            .map(|i| {
                let n = (rng.next_u32() as f32 / u32::MAX as f32) - 0.5;
                0.3 * n + (i as f32 * 0.05).sin() * if i % 3000 < 800 { 1.0 } else { 0.01 }
            })
            .collect()
    }

    fn config(center: bool, pad_mode: PadMode, n_fft: usize) -> MelSpectrogramConfig {
        MelSpectrogramConfig {
            sample_rate: 22050,
            n_fft,
            hop_length: Some(n_fft / 4 + 1),
            n_mels: 40,
            center,
            pad_mode,
            ..Default::default()
        }
    }

    /// Frames of `signal` streamed in chunks of the sizes `sizes` yields,
    /// frame-major.
    fn streamed(
        mel: &MelSpectrogramConfig,
        db: &DbConfig,
        signal: &[f32],
        mut sizes: impl FnMut() -> usize,
    ) -> Vec<Vec<f32>> {
        streamed_bands(mel, db, Bands::Mel, signal, &mut sizes)
    }

    fn streamed_bands(
        mel: &MelSpectrogramConfig,
        db: &DbConfig,
        bands: Bands,
        signal: &[f32],
        sizes: &mut impl FnMut() -> usize,
    ) -> Vec<Vec<f32>> {
        let mut stream = LogMelStream::with_bands(mel, db, bands).unwrap();
        let mut out = Vec::new();
        let mut rest = signal;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(sizes().clamp(1, rest.len()));
            stream.push(chunk, |f| out.push(f.to_vec())).unwrap();
            rest = tail;
        }
        stream.finish(|f| out.push(f.to_vec())).unwrap();
        out
    }

    fn assert_equal_offline(
        mel: &MelSpectrogramConfig,
        db: &DbConfig,
        signal: &[f32],
        got: &[Vec<f32>],
    ) {
        assert_equal_offline_bands(mel, db, Bands::Mel, signal, got);
    }

    fn assert_equal_offline_bands(
        mel: &MelSpectrogramConfig,
        db: &DbConfig,
        bands: Bands,
        signal: &[f32],
        got: &[Vec<f32>],
    ) {
        // A single bin has no neighbours to average its rounding out: its
        // faint values differ in the fourth decimal place of a dB.
        let tolerance = match bands {
            Bands::Mel => 1e-4,
            Bands::Linear => 2e-3,
        };
        let offline = LogMelSpectrogram::with_bands(mel, db, bands)
            .unwrap()
            .process(signal)
            .unwrap();
        assert_eq!(got.len(), offline.frames(), "{mel:?}");
        for (t, frame) in got.iter().enumerate() {
            for (m, v) in frame.iter().enumerate() {
                let want = offline.get(m, t);
                assert!(
                    (v - want).abs() < tolerance,
                    "frame {t} band {m}: {v} vs {want} ({mel:?})"
                );
            }
        }
    }

    #[test]
    fn frames_equal_the_offline_log_mel_for_every_chunking() {
        let signal = noise_and_tone(20_011);
        let db = DbConfig {
            clamp: DbClamp::Reference,
            top_db: Some(60.0),
            ..Default::default()
        };
        for (center, pad) in [
            (false, PadMode::Reflect),
            (true, PadMode::Reflect),
            (true, PadMode::Constant),
        ] {
            for n_fft in [1024, 511] {
                let mel = config(center, pad, n_fft);
                for size in [1, 7, 512, 4096] {
                    let got = streamed(&mel, &db, &signal, || size);
                    assert_equal_offline(&mel, &db, &signal, &got);
                }
                let mut rng = ChaCha8Rng::seed_from_u64(n_fft as u64);
                let got = streamed(&mel, &db, &signal, || rng.random_range(1..3000));
                assert_equal_offline(&mel, &db, &signal, &got);
            }
        }
    }

    #[test]
    fn a_linear_spectrogram_streams_as_offline_and_is_the_stft_power_in_db() {
        let signal = noise_and_tone(12_007);
        let db = DbConfig {
            clamp: DbClamp::Reference,
            ..Default::default()
        };
        let mel = config(true, PadMode::Reflect, 512);
        for size in [1, 300, 5000] {
            let got = streamed_bands(&mel, &db, Bands::Linear, &signal, &mut || size);
            assert_eq!(got[0].len(), 257);
            assert_equal_offline_bands(&mel, &db, Bands::Linear, &signal, &got);
        }
        let linear = LogMelSpectrogram::with_bands(&mel, &db, Bands::Linear)
            .unwrap()
            .process(&signal)
            .unwrap();
        let mut want = StftPlan::new(&mel.stft())
            .unwrap()
            .power(&signal, 2.0)
            .unwrap();
        crate::power_to_db(want.as_mut_slice(), &db).unwrap();
        assert_eq!(linear.shape(), want.shape());
        for (a, b) in linear.as_slice().iter().zip(want.as_slice()) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn a_peak_clamp_over_the_streamed_frames_equals_the_offline_clamp() {
        let signal = noise_and_tone(9000);
        let mel = config(true, PadMode::Reflect, 1024);
        let db = DbConfig::default();
        let mut got = streamed(&mel, &db, &signal, || 333);
        let mut flat: Vec<f32> = got.concat();
        db.clamp_to_peak(&mut flat);
        for (frame, values) in got.iter_mut().zip(flat.chunks(40)) {
            frame.copy_from_slice(values);
        }
        assert_equal_offline(&mel, &db, &signal, &got);
        assert!(!LogMelStream::new(&mel, &db).unwrap().frames_are_final());
    }

    #[test]
    fn signals_shorter_than_the_padding_are_framed_at_finish() {
        let mel = config(true, PadMode::Reflect, 1024);
        let db = DbConfig::default();
        for len in [1, 5, 300, 512, 513] {
            let signal = noise_and_tone(len);
            let got = streamed(&mel, &db, &signal, || 100);
            let mut flat: Vec<f32> = got.concat();
            db.clamp_to_peak(&mut flat);
            let offline = LogMelSpectrogram::new(&mel, &db)
                .unwrap()
                .process(&signal)
                .unwrap();
            assert_eq!(got.len(), offline.frames(), "{len}");
            for (t, frame) in flat.chunks(40).enumerate() {
                for (m, v) in frame.iter().enumerate() {
                    assert!((v - offline.get(m, t)).abs() < 1e-4, "{len}: {t} {m}");
                }
            }
        }
    }

    #[test]
    fn frames_come_out_as_soon_as_they_are_complete() {
        let mel = config(true, PadMode::Reflect, 1024);
        let mut stream = LogMelStream::new(&mel, &DbConfig::default()).unwrap();
        let (hop, ahead) = (stream.hop_length(), stream.lookahead());
        assert_eq!(ahead, 512);
        let mut count = 0;
        let signal = noise_and_tone(5000);
        for (i, s) in signal.iter().enumerate() {
            stream.push(&[*s], |_| count += 1).unwrap();
            // Frame t is out once sample t * hop + lookahead - 1 is in; the
            // first also waits for sample n_fft / 2, which reflects to -n_fft / 2.
            let n = i + 1;
            let want = if n <= 512 { 0 } else { (n - ahead) / hop + 1 };
            assert_eq!(count, want, "after {} samples", i + 1);
        }
    }

    #[test]
    fn a_non_finite_chunk_is_refused_whole_and_the_stream_goes_on() {
        let mel = config(false, PadMode::Reflect, 512);
        let db = DbConfig {
            clamp: DbClamp::Reference,
            ..Default::default()
        };
        let signal = noise_and_tone(6000);
        let mut stream = LogMelStream::new(&mel, &db).unwrap();
        let mut got = Vec::new();
        stream
            .push(&signal[..3000], |f| got.push(f.to_vec()))
            .unwrap();
        let err = stream.push(&[0.0, f32::NAN, 1.0], |_| {}).unwrap_err();
        assert_eq!(err, crate::DspError::NonFinite { count: 1, len: 3 });
        stream
            .push(&signal[3000..], |f| got.push(f.to_vec()))
            .unwrap();
        stream.finish(|f| got.push(f.to_vec())).unwrap();
        assert_equal_offline(&mel, &db, &signal, &got);
    }
}
