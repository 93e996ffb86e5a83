//! The microphone input of `hark listen --mic`, through cpal, when built
//! with the `mic` feature (on Linux it needs `apt-get install
//! libasound2-dev`). The audio callback mixes each buffer to mono and hands
//! it over a bounded channel; if the listener falls behind, buffers are
//! dropped and counted rather than delaying the callback.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;

#[cfg(not(feature = "mic"))]
const NO_MIC: &str = "this hark was built without microphone input: rebuild with `cargo build --release -p hark-cli --features mic` (on Linux, after `apt-get install libasound2-dev`)";

/// An open input device.
#[cfg(feature = "mic")]
pub struct Mic {
    _stream: cpal::Stream,
    rx: std::sync::mpsc::Receiver<Vec<f32>>,
    rate: u32,
    stop: Arc<AtomicBool>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// An open input device (none in a build without the `mic` feature).
#[cfg(not(feature = "mic"))]
pub enum Mic {}

#[cfg(not(feature = "mic"))]
impl Mic {
    /// Fails: no microphone support in this build.
    pub fn open(_device: &str, _stop: Arc<AtomicBool>) -> Result<Self> {
        anyhow::bail!(NO_MIC)
    }

    pub fn rate(&self) -> u32 {
        match *self {}
    }

    pub fn read(&mut self, _chunk: &mut Vec<f32>) -> Result<usize> {
        match *self {}
    }
}

/// Fails: no microphone support in this build.
#[cfg(not(feature = "mic"))]
pub fn list_devices(_out: &mut impl Write) -> Result<()> {
    anyhow::bail!(NO_MIC)
}

/// Prints the input devices, the default first.
#[cfg(feature = "mic")]
pub fn list_devices(out: &mut impl Write) -> Result<()> {
    use cpal::traits::{DeviceTrait, HostTrait};
    let host = cpal::default_host();
    let default = host.default_input_device().and_then(|d| d.name().ok());
    for device in host.input_devices()? {
        let name = device.name()?;
        let config = device.default_input_config();
        let mark = if Some(&name) == default.as_ref() {
            " (default)"
        } else {
            ""
        };
        match config {
            Ok(c) => writeln!(
                out,
                "{name}{mark}\t{} Hz, {} channels, {:?}",
                c.sample_rate().0,
                c.channels(),
                c.sample_format()
            )?,
            Err(e) => writeln!(out, "{name}{mark}\t{e}")?,
        }
    }
    Ok(())
}

#[cfg(feature = "mic")]
impl Mic {
    /// Opens `device` (by name; the default input for an empty name) at
    /// its default configuration and starts it.
    pub fn open(device: &str, stop: Arc<AtomicBool>) -> Result<Self> {
        use anyhow::Context;
        use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
        let host = cpal::default_host();
        let dev = if device.is_empty() {
            host.default_input_device()
                .context("no default input device (see --list-devices)")?
        } else {
            host.input_devices()?
                .find(|d| d.name().is_ok_and(|n| n == device))
                .with_context(|| format!("no input device named {device:?} (see --list-devices)"))?
        };
        let config = dev.default_input_config()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let channels = config.channels() as usize;
        let on_error = |e: cpal::StreamError| tracing::error!("microphone: {e}");
        let stream_config = config.config();
        macro_rules! build {
            ($t:ty) => {{
                let (tx, dropped) = (tx.clone(), dropped.clone());
                dev.build_input_stream(
                    &stream_config,
                    move |data: &[$t], _: &cpal::InputCallbackInfo| {
                        use cpal::Sample;
                        let mono = data
                            .chunks(channels)
                            .map(|f| {
                                f.iter().map(|s| s.to_sample::<f32>()).sum::<f32>()
                                    / channels as f32
                            })
                            .collect();
                        if tx.try_send(mono).is_err() {
                            dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    },
                    on_error,
                    None,
                )?
            }};
        }
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => build!(f32),
            cpal::SampleFormat::I16 => build!(i16),
            cpal::SampleFormat::I32 => build!(i32),
            cpal::SampleFormat::U16 => build!(u16),
            cpal::SampleFormat::U8 => build!(u8),
            other => {
                anyhow::bail!("the device delivers {other:?} samples, which hark does not read")
            }
        };
        stream.play()?;
        Ok(Self {
            _stream: stream,
            rx,
            rate: config.sample_rate().0,
            stop,
            dropped,
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The next buffer; 0 once Ctrl-C was pressed.
    pub fn read(&mut self, chunk: &mut Vec<f32>) -> Result<usize> {
        use std::sync::atomic::Ordering;
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!("{dropped} microphone buffers dropped: the listener fell behind");
        }
        while !self.stop.load(Ordering::SeqCst) {
            match self.rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(data) => {
                    *chunk = data;
                    return Ok(chunk.len());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => anyhow::bail!("microphone: {e}"),
            }
        }
        Ok(0)
    }
}
