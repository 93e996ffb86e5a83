//! PCM audio from a byte stream (a pipe, standard input, a file read front
//! to back): raw little-endian samples of a stated format, or a WAV stream
//! recognised by its RIFF header, decoded chunk by chunk into mono.
//!
//! # Conventions
//! - A WAV data chunk whose size is 0 or `0xFFFFFFFF` runs until the end of
//!   the stream, as `arecord` and `sox` write to pipes. A stream that ends
//!   before the size its header declares ends there; [`PcmStream::short_by`]
//!   says by how many bytes.
//! - A partial frame at the end of the stream is dropped;
//!   [`PcmStream::partial_tail`] gives its bytes.
//! - Channels are mixed to mono by their mean, as the feature pipeline does.
//! - Integer samples are scaled by `2^-(bits - 1)` (8-bit is unsigned), as
//!   the file decoder does.
//! - Memory is one read buffer, whatever the header declares.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result, io_error};
use crate::riff::{Codec, MAX_CHANNELS, SAMPLE_RATES, parse_fmt};

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleFormat {
    /// Unsigned 8-bit.
    U8,
    /// Signed 16-bit little-endian.
    S16le,
    /// Signed 24-bit little-endian, packed in 3 bytes.
    S24le,
    /// Signed 32-bit little-endian.
    S32le,
    /// IEEE float, 32-bit little-endian.
    F32le,
    /// IEEE float, 64-bit little-endian.
    F64le,
}

impl SampleFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::S16le => 2,
            Self::S24le => 3,
            Self::S32le | Self::F32le => 4,
            Self::F64le => 8,
        }
    }

    /// The sample at the start of `b` as f32.
    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Self::U8 => (b[0] as f32 - 128.0) / 128.0,
            Self::S16le => i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0,
            Self::S24le => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
            Self::S32le => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Self::F32le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Self::F64le => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

impl std::str::FromStr for SampleFormat {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "u8" => Self::U8,
            "s16le" => Self::S16le,
            "s24le" => Self::S24le,
            "s32le" => Self::S32le,
            "f32le" => Self::F32le,
            "f64le" => Self::F64le,
            _ => {
                return Err(DataError::InvalidOption {
                    field: "format",
                    rule: "must be u8, s16le, s24le, s32le, f32le or f64le",
                    got: s.into(),
                });
            }
        })
    }
}

/// The layout of a PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Sample encoding.
    pub sample: SampleFormat,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl PcmFormat {
    /// Bytes per frame of all channels.
    pub fn frame_bytes(&self) -> usize {
        self.sample.bytes() * self.channels as usize
    }
}

/// Frames decoded per read.
const READ_FRAMES: usize = 4096;

/// Mono f32 audio decoded from a byte stream; see the [module docs](self).
#[derive(Debug)]
pub struct PcmStream<R> {
    reader: R,
    name: PathBuf,
    format: PcmFormat,
    /// Data bytes left by the header, `None` until the end of the stream.
    remaining: Option<u64>,
    /// Bytes read but not yet decoded (at most one partial frame between reads).
    buf: Vec<u8>,
    filled: usize,
    short_by: u64,
    partial_tail: usize,
    frames: u64,
}

impl<R: Read> PcmStream<R> {
    /// Opens `reader`, named `name` in errors: a WAV stream if it starts
    /// with a RIFF header, else raw PCM of format `raw`. A WAV header that
    /// disagrees with `raw`'s rate or channels is an error.
    ///
    /// # Errors
    /// A stream that cannot be read; a malformed WAV header, or one whose
    /// codec is not PCM or float; raw input without a format; a rate or
    /// channel count out of range.
    pub fn open(mut reader: R, name: &Path, raw: Option<PcmFormat>) -> Result<Self> {
        let mut magic = [0u8; 4];
        let got = read_full(&mut reader, &mut magic, name)?;
        let (format, remaining, carry) = if got == 4 && &magic == b"RIFF" {
            let (format, remaining) = read_wav_header(&mut reader, name)?;
            if let Some(raw) = raw {
                if (raw.rate, raw.channels) != (format.rate, format.channels) {
                    return Err(DataError::NotWav {
                        path: name.to_path_buf(),
                        reason: format!(
                            "the header says {} Hz, {} channels; --rate and --channels say {} Hz, {} channels",
                            format.rate, format.channels, raw.rate, raw.channels
                        ),
                    });
                }
            }
            (format, remaining, 0)
        } else {
            let Some(format) = raw else {
                return Err(DataError::NotWav {
                    path: name.to_path_buf(),
                    reason: "no RIFF header; give --format, --rate and --channels for raw PCM"
                        .into(),
                });
            };
            (format, None, got)
        };
        check_format(&format, name)?;
        let mut buf = vec![0u8; READ_FRAMES * format.frame_bytes()];
        buf[..carry].copy_from_slice(&magic[..carry]);
        Ok(Self {
            reader,
            name: name.to_path_buf(),
            format,
            remaining,
            buf,
            filled: carry,
            short_by: 0,
            partial_tail: 0,
            frames: 0,
        })
    }

    /// The stream's layout.
    pub fn format(&self) -> PcmFormat {
        self.format
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes of a partial frame dropped at the end of the stream.
    pub fn partial_tail(&self) -> usize {
        self.partial_tail
    }

    /// Bytes the WAV header declared that the stream did not hold.
    pub fn short_by(&self) -> u64 {
        self.short_by
    }

    /// What went wrong at the end of the stream, for a warning: a partial
    /// frame, or fewer bytes than the header declares.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.partial_tail > 0 {
            w.push(format!(
                "{}: the audio ended inside a frame: {} bytes dropped",
                self.name.display(),
                self.partial_tail
            ));
        }
        if self.short_by > 0 {
            w.push(format!(
                "{}: the audio ended {} bytes before the size its WAV header declares",
                self.name.display(),
                self.short_by
            ));
        }
        w
    }

    /// Decodes the next frames into `out` as mono (replacing its contents).
    /// Returns the number of frames, 0 at the end of the stream.
    ///
    /// # Errors
    /// A read error.
    pub fn read_mono(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        out.clear();
        let frame = self.format.frame_bytes();
        loop {
            let cap = match self.remaining {
                Some(left) => (self.filled as u64 + left).min(self.buf.len() as u64) as usize,
                None => self.buf.len(),
            };
            let got = if self.filled < cap {
                read_some(
                    &mut self.reader,
                    &mut self.buf[self.filled..cap],
                    &self.name,
                )?
            } else {
                0
            };
            if got == 0 {
                // The end of the stream, or of the data the header declared.
                self.short_by = self.remaining.take().unwrap_or(0);
                self.partial_tail = self.filled;
                self.filled = 0;
                return Ok(0);
            }
            if let Some(left) = &mut self.remaining {
                *left -= got as u64;
            }
            self.filled += got;
            // Whatever arrived goes out at once: a pipe's latency is the writer's.
            if self.filled >= frame {
                self.decode_into(self.filled / frame * frame, out);
                return Ok(out.len());
            }
        }
    }

    /// Decodes the first `bytes` (whole frames) of the buffer and keeps the rest.
    fn decode_into(&mut self, bytes: usize, out: &mut Vec<f32>) {
        let (sample, channels) = (self.format.sample, self.format.channels as usize);
        let scale = 1.0 / channels as f32;
        out.extend(
            self.buf[..bytes]
                .chunks_exact(sample.bytes() * channels)
                .map(|f| {
                    let sum: f32 = f
                        .chunks_exact(sample.bytes())
                        .map(|s| sample.decode(s))
                        .sum();
                    sum * scale
                }),
        );
        self.buf.copy_within(bytes..self.filled, 0);
        self.filled -= bytes;
        self.frames += (bytes / (sample.bytes() * channels)) as u64;
    }
}

/// An audio file read front to back in mono chunks: streamed when its
/// codec allows (PCM and float WAV), else decoded whole (ADPCM).
#[derive(Debug)]
pub enum AudioFile {
    /// A PCM or float WAV, a read buffer at a time.
    Stream(PcmStream<std::io::BufReader<std::fs::File>>),
    /// A file decoded in full.
    Decoded {
        /// Mono samples.
        samples: Vec<f32>,
        /// Their rate.
        rate: u32,
        /// The next sample to hand out.
        pos: usize,
    },
}

/// Samples per chunk handed out by a decoded [`AudioFile`].
const DECODED_CHUNK: usize = 4096;

impl AudioFile {
    /// Opens the WAV file at `path`.
    ///
    /// # Errors
    /// As [`PcmStream::open`] and, for a codec a stream does not decode,
    /// [`crate::read_wav`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        match PcmStream::open(std::io::BufReader::new(file), path, None) {
            Ok(stream) => Ok(Self::Stream(stream)),
            // ADPCM, or not a WAV at all (FLAC, MP3, Ogg Vorbis, AAC).
            Err(DataError::UnsupportedCodec { .. } | DataError::NotWav { .. }) => {
                let audio = crate::read_audio(path)?;
                Ok(Self::Decoded {
                    samples: audio.mono(),
                    rate: audio.sample_rate,
                    pos: 0,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The sample rate.
    pub fn rate(&self) -> u32 {
        match self {
            Self::Stream(s) => s.format().rate,
            Self::Decoded { rate, .. } => *rate,
        }
    }

    /// The next mono samples into `out` (replacing its contents); 0 at the end.
    ///
    /// # Errors
    /// A read error.
    pub fn read_mono(&mut self, out: &mut Vec<f32>) -> Result<usize> {
        match self {
            Self::Stream(s) => s.read_mono(out),
            Self::Decoded { samples, pos, .. } => {
                let end = (*pos + DECODED_CHUNK).min(samples.len());
                out.clear();
                out.extend_from_slice(&samples[*pos..end]);
                *pos = end;
                Ok(out.len())
            }
        }
    }

    /// What went wrong at the end of a streamed file (see
    /// [`PcmStream::warnings`]).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Self::Stream(s) => s.warnings(),
            Self::Decoded { .. } => Vec::new(),
        }
    }
}

fn check_format(format: &PcmFormat, name: &Path) -> Result<()> {
    let bad = |reason: String| {
        Err(DataError::NotWav {
            path: name.to_path_buf(),
            reason,
        })
    };
    if !SAMPLE_RATES.contains(&format.rate) {
        return bad(format!(
            "a rate of {} Hz ({} to {} accepted)",
            format.rate,
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        ));
    }
    if !(1..=MAX_CHANNELS).contains(&format.channels) {
        return bad(format!(
            "{} channels (1 to {MAX_CHANNELS} accepted)",
            format.channels
        ));
    }
    Ok(())
}

/// Reads a WAV header after its `RIFF` tag, up to the data chunk's body:
/// the format and the data bytes (`None`: until the end of the stream).
fn read_wav_header<R: Read>(reader: &mut R, name: &Path) -> Result<(PcmFormat, Option<u64>)> {
    let not_wav = |reason: String| DataError::NotWav {
        path: name.to_path_buf(),
        reason,
    };
    let mut head = [0u8; 8];
    if read_full(reader, &mut head, name)? < 8 || &head[4..8] != b"WAVE" {
        return Err(not_wav("no RIFF/WAVE signature".into()));
    }
    let mut fmt = None;
    loop {
        let mut chunk = [0u8; 8];
        if read_full(reader, &mut chunk, name)? < 8 {
            return Err(not_wav("the stream ended inside the header".into()));
        }
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[..4] {
            b"fmt " => {
                if fmt.is_some() {
                    return Err(not_wav("two fmt chunks".into()));
                }
                if !(16..=1024).contains(&len) {
                    return Err(not_wav(format!("fmt chunk of {len} bytes")));
                }
                let mut body = vec![0u8; len as usize];
                if read_full(reader, &mut body, name)? < body.len() {
                    return Err(not_wav("the stream ended inside the fmt chunk".into()));
                }
                if len % 2 == 1 {
                    skip(reader, 1, name)?;
                }
                fmt = Some(body);
            }
            b"data" => {
                let Some(body) = fmt else {
                    return Err(not_wav("data chunk before fmt chunk".into()));
                };
                let info = parse_fmt(&body, None, 0, 0).map_err(not_wav)?;
                let sample = match (info.codec, info.bits_per_sample) {
                    (Codec::Pcm, 8) => SampleFormat::U8,
                    (Codec::Pcm, 16) => SampleFormat::S16le,
                    (Codec::Pcm, 24) => SampleFormat::S24le,
                    (Codec::Pcm, 32) => SampleFormat::S32le,
                    (Codec::Float, 32) => SampleFormat::F32le,
                    (Codec::Float, 64) => SampleFormat::F64le,
                    (codec, bits) => {
                        return Err(DataError::UnsupportedCodec {
                            path: name.to_path_buf(),
                            codec: format!("{codec} with {bits} bits in a stream"),
                        });
                    }
                };
                let format = PcmFormat {
                    sample,
                    rate: info.sample_rate,
                    channels: info.channels,
                };
                if info.block_align as usize != format.frame_bytes() {
                    return Err(not_wav(format!(
                        "block align {} for {} channels of {} bytes",
                        info.block_align,
                        info.channels,
                        sample.bytes()
                    )));
                }
                let remaining = (len != 0 && len != u32::MAX).then_some(len as u64);
                return Ok((format, remaining));
            }
            _ => skip(reader, len as u64 + (len & 1) as u64, name)?,
        }
    }
}

/// Reads and drops `n` bytes, without a buffer sized by `n`.
fn skip<R: Read>(reader: &mut R, n: u64, name: &Path) -> Result<()> {
    let copied =
        std::io::copy(&mut reader.take(n), &mut std::io::sink()).map_err(io_error(name))?;
    if copied < n {
        return Err(DataError::NotWav {
            path: name.to_path_buf(),
            reason: "the stream ended inside the header".into(),
        });
    }
    Ok(())
}

/// One read, retried when interrupted; 0 at the end of the stream.
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8], name: &Path) -> Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other.map_err(io_error(name)),
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8], name: &Path) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(reader, &mut buf[filled..], name)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::{Audio, Encoding, encode_wav};

    /// A reader that hands out at most `n` bytes per read, like a pipe.
    struct Trickle<R>(R, usize);

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    fn stereo(frames: usize) -> Audio {
        Audio {
            samples: (0..frames * 2)
                .map(|i| ((i as f32 * 0.37).sin() * 0.8 * 32767.0).round() / 32768.0)
                .collect(),
            channels: 2,
            sample_rate: 16000,
        }
    }

    fn read_all<R: Read>(mut stream: PcmStream<R>) -> (Vec<f32>, PcmStream<R>) {
        let (mut all, mut chunk) = (Vec::new(), Vec::new());
        while stream.read_mono(&mut chunk).unwrap() > 0 {
            all.extend_from_slice(&chunk);
        }
        (all, stream)
    }

    #[test]
    fn a_wav_stream_decodes_as_the_file_decoder_for_any_read_size() {
        let audio = stereo(5000);
        for encoding in [Encoding::I16, Encoding::I24, Encoding::F32, Encoding::U8] {
            let bytes = encode_wav(&audio, encoding);
            let want = crate::decode_wav(bytes.clone(), Path::new("x.wav"))
                .unwrap()
                .mono();
            for step in [1, 3, 4096, 1 << 20] {
                let stream =
                    PcmStream::open(Trickle(Cursor::new(&bytes), step), Path::new("-"), None)
                        .unwrap();
                assert_eq!(stream.format().rate, 16000);
                let (got, stream) = read_all(stream);
                assert_eq!(got.len(), want.len(), "{encoding:?} by {step}");
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-6, "{encoding:?}: {a} vs {b}");
                }
                assert_eq!((stream.partial_tail(), stream.short_by()), (0, 0));
            }
        }
    }

    #[test]
    fn a_pipe_header_with_size_zero_or_all_ones_runs_to_the_end() {
        let audio = stereo(3000);
        let mut bytes = encode_wav(&audio, Encoding::I16);
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        for size in [0u32, u32::MAX] {
            bytes[data + 4..data + 8].copy_from_slice(&size.to_le_bytes());
            // Trailing bytes that are not a whole frame are dropped and counted.
            let mut piped = bytes.clone();
            piped.extend_from_slice(&[1, 2, 3]);
            let (got, stream) =
                read_all(PcmStream::open(Cursor::new(piped), Path::new("-"), None).unwrap());
            assert_eq!(got.len(), 3000);
            assert_eq!(stream.partial_tail(), 3);
        }
    }

    #[test]
    fn a_header_that_claims_more_than_the_stream_holds_ends_with_the_stream() {
        let audio = stereo(1000);
        let bytes = encode_wav(&audio, Encoding::I16);
        let cut = &bytes[..bytes.len() - 400];
        let (got, stream) = read_all(PcmStream::open(cut, Path::new("-"), None).unwrap());
        assert_eq!(got.len(), 900);
        assert_eq!(stream.short_by(), 400);
        // A header claiming less than the stream holds: the rest is not audio.
        let mut more = bytes.clone();
        more.extend_from_slice(&[0u8; 4000]);
        let (got, _) = read_all(PcmStream::open(&more[..], Path::new("-"), None).unwrap());
        assert_eq!(got.len(), 1000);
    }

    #[test]
    fn raw_pcm_needs_a_format_and_mixes_to_mono() {
        let raw: Vec<u8> = [0.5f32, -0.25, 1.0, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let format = PcmFormat {
            sample: SampleFormat::F32le,
            rate: 8000,
            channels: 2,
        };
        let (got, _) = read_all(PcmStream::open(&raw[..], Path::new("-"), Some(format)).unwrap());
        assert_eq!(got, [0.125, 0.5]);
        let s24: Vec<u8> = vec![0x00, 0x00, 0x80, 0xff, 0xff, 0x7f];
        let format = PcmFormat {
            sample: SampleFormat::S24le,
            rate: 8000,
            channels: 1,
        };
        let (got, _) = read_all(PcmStream::open(&s24[..], Path::new("-"), Some(format)).unwrap());
        assert_eq!(got, [-1.0, 8_388_607.0 / 8_388_608.0]);
        let err = PcmStream::open(&raw[..], Path::new("-"), None).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
    }

    #[test]
    fn bad_headers_and_flags_are_errors_that_say_what() {
        let audio = stereo(100);
        let bytes = encode_wav(&audio, Encoding::I16);
        let flags = PcmFormat {
            sample: SampleFormat::S16le,
            rate: 44100,
            channels: 2,
        };
        let err = PcmStream::open(&bytes[..], Path::new("-"), Some(flags)).unwrap_err();
        assert!(err.to_string().contains("16000 Hz"), "{err}");
        for cut in [6, 20, 30] {
            let err = PcmStream::open(&bytes[..cut], Path::new("-"), None).unwrap_err();
            assert!(
                err.to_string().contains("not a readable WAV"),
                "{cut}: {err}"
            );
        }
        let mut huge_rate = bytes.clone();
        huge_rate[24..28].copy_from_slice(&4_000_000_000u32.to_le_bytes());
        let err = PcmStream::open(&huge_rate[..], Path::new("-"), None).unwrap_err();
        assert!(err.to_string().contains("4000000000 Hz"), "{err}");
        // IMA ADPCM whose block cannot hold its headers (issue 16's
        // wrapping subtraction), then a sound one, which a stream does not decode.
        let mut adpcm = bytes.clone();
        adpcm[20..22].copy_from_slice(&0x11u16.to_le_bytes());
        let err = PcmStream::open(&adpcm[..], Path::new("-"), None).unwrap_err();
        assert!(
            err.to_string().contains("block align 4 cannot hold"),
            "{err}"
        );
        adpcm[32..34].copy_from_slice(&512u16.to_le_bytes());
        let err = PcmStream::open(&adpcm[..], Path::new("-"), None).unwrap_err();
        assert!(err.to_string().contains("unsupported codec"), "{err}");
        assert!("s8".parse::<SampleFormat>().is_err());
    }
}
