//! Decoded audio. WAV: hound for PCM and float, symphonia for what hound
//! refuses (IMA and MS ADPCM, 32-bit PCM with an 18-byte fmt chunk).
//! Compressed audio through symphonia: FLAC, MP3, Ogg Vorbis, and AAC in
//! MP4/M4A (or ADTS).
//!
//! Lengths: FLAC is lossless and exact. Lossy encoders add priming samples
//! at the start and padding at the end. symphonia trims both where the file
//! declares them (an MP3's LAME/Xing header, Ogg Vorbis' granule
//! positions), and hark cuts the decoded audio to the length the container
//! states. symphonia 0.6 does not apply an MP4 edit list, so AAC in M4A keeps
//! its encoder's priming (1,024 samples from FFmpeg: 46 ms at 22.05 kHz) at
//! the start.

use std::io::Cursor;
use std::path::Path;

use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoderOptions};
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::default::formats::WavReader;

use crate::error::{DataError, Result, io_error};
use crate::riff::{Codec, MAX_CHANNELS, SAMPLE_RATES, WavInfo, scan};

/// Decoded audio: interleaved f32 samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Interleaved samples, `frames * channels` of them.
    pub samples: Vec<f32>,
    /// Channels per frame.
    pub channels: usize,
    /// Frames per second.
    pub sample_rate: u32,
}

impl Audio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }

    /// One `Vec` per channel.
    pub fn planar(&self) -> Vec<Vec<f32>> {
        hark_dsp::deinterleave(&self.samples, self.channels)
            .expect("length is a multiple of channels")
    }

    /// The mean of the channels.
    pub fn mono(&self) -> Vec<f32> {
        hark_dsp::mix_down_interleaved(&self.samples, self.channels)
            .expect("length is a multiple of channels")
    }
}

/// Reads a WAV file of any PCM width (8-bit unsigned, 16, 24, 32-bit), 32-bit
/// float, IMA or MS ADPCM, plain or WAVE_FORMAT_EXTENSIBLE, any channel count
/// and rate. Integer samples are scaled by `1 / 2^(bits - 1)`.
///
/// # Errors
/// Names the file and what is wrong: not RIFF/WAVE, a cut-short header or
/// data chunk, an unsupported codec, no frames, or NaN/infinite samples.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    decode_wav(bytes, path)
}

/// File extensions of the audio hark reads.
pub const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "flac", "mp3", "ogg", "oga", "m4a", "mp4"];

/// Reads an audio file: a WAV as [`read_wav`] does, anything else
/// (FLAC, MP3, Ogg Vorbis, AAC in MP4/M4A) through symphonia.
///
/// # Errors
/// As [`read_wav`] for a WAV; for other files, one that cannot be read,
/// whose format or codec is not supported, that fails to decode, or that
/// holds no frames, naming the file.
pub fn read_audio(path: &Path) -> Result<Audio> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    decode_audio(bytes, path)
}

/// Decodes the bytes of an audio file of any format [`read_audio`] reads;
/// `path` names them in errors and hints at the format by its extension.
///
/// # Errors
/// As [`read_audio`].
pub fn decode_audio(bytes: Vec<u8>, path: &Path) -> Result<Audio> {
    if bytes.starts_with(b"RIFF") {
        return decode_wav(bytes, path);
    }
    Ok(decode_compressed(bytes, path)?.0)
}

/// A decoding failure of the file at `path`.
fn decode_error(path: &Path) -> impl Fn(String) -> DataError + '_ {
    move |reason| DataError::Decode {
        path: path.to_path_buf(),
        reason,
    }
}

/// A compressed file's format reader, its audio track and the track's
/// codec parameters.
/// An open compressed file: its reader, the audio track's id, codec
/// parameters and stated length in frames.
type Compressed = (
    Box<dyn FormatReader>,
    u32,
    AudioCodecParameters,
    Option<u64>,
);

/// A compressed file's format reader, its audio track and what the track
/// states.
fn open_compressed(bytes: Vec<u8>, path: &Path) -> Result<Compressed> {
    let decode_err = decode_error(path);
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let reader = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            symphonia::core::errors::Error::Unsupported(_) => DataError::UnsupportedCodec {
                path: path.to_path_buf(),
                codec: format!("(not WAV, FLAC, MP3, Ogg Vorbis or AAC: {e})"),
            },
            _ => decode_err(format!("a broken or cut-short container: {e}")),
        })?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| decode_err("no audio track".into()))?;
    let track_id = track.id;
    let params = (track.codec_params.as_ref().and_then(|p| p.audio()))
        .ok_or_else(|| decode_err("no audio codec parameters".into()))?
        .clone();
    let frames = track.num_frames;
    Ok((reader, track_id, params, frames))
}

/// The codec of compressed audio, by symphonia's codec id.
fn compressed_codec(params: &AudioCodecParameters) -> Codec {
    use symphonia::core::codecs::audio::well_known as known;
    match params.codec {
        known::CODEC_ID_FLAC => Codec::Flac,
        known::CODEC_ID_MP3 | known::CODEC_ID_MP2 | known::CODEC_ID_MP1 => Codec::Mp3,
        known::CODEC_ID_VORBIS => Codec::Vorbis,
        known::CODEC_ID_AAC => Codec::Aac,
        _ => Codec::Other(0),
    }
}

/// Describes an audio file: a WAV from its header ([`crate::inspect`]),
/// other formats by decoding them (their headers need not state a length).
///
/// # Errors
/// As [`read_audio`].
pub fn inspect_audio(path: &Path) -> Result<WavInfo> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    if bytes.starts_with(b"RIFF") {
        return scan(&mut Cursor::new(&bytes), path);
    }
    let data_len = bytes.len() as u64;
    let (audio, params) = decode_compressed(bytes, path)?;
    Ok(WavInfo {
        codec: compressed_codec(&params),
        extensible: false,
        sample_rate: audio.sample_rate,
        channels: audio.channels as u16,
        bits_per_sample: params.bits_per_sample.unwrap_or(0) as u16,
        block_align: 0,
        fmt_len: 0,
        frames: audio.frames() as u64,
        data_offset: 0,
        data_len,
    })
}

/// Samples any compressed file may decode to (256 MiB of f32: 25 minutes
/// of 44.1 kHz stereo).
const MAX_DECODED_FLOOR: usize = 1 << 26;

/// Samples a compressed file may decode to per byte of it beyond the floor.
/// Real codecs stay far below: 16-bit FLAC about 1, MP3 at 8 kbit/s 16,
/// AAC at 24 kbit/s 32; a FLAC of constant frames reaches thousands, which
/// is how a small file would ask for gigabytes.
const MAX_EXPANSION: usize = 64;

/// Refuses a decoded stream's rate or channel count outside what hark
/// reads from WAV headers.
fn check_layout((rate, channels): (u32, usize), path: &Path) -> Result<()> {
    if !SAMPLE_RATES.contains(&rate) || !(1..=MAX_CHANNELS as usize).contains(&channels) {
        return Err(decode_error(path)(format!(
            "{rate} Hz, {channels} channel(s) (hark reads {} to {} Hz, 1 to {MAX_CHANNELS} channels)",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )));
    }
    Ok(())
}

/// Decodes compressed audio with symphonia's probe; also returns the
/// track's codec parameters. Memory is bounded by the file's size.
fn decode_compressed(bytes: Vec<u8>, path: &Path) -> Result<(Audio, AudioCodecParameters)> {
    let decode_err = decode_error(path);
    let compressed = bytes.len();
    let limit = MAX_DECODED_FLOOR.max(compressed.saturating_mul(MAX_EXPANSION));
    let (mut reader, track_id, params, stated) = open_compressed(bytes, path)?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| DataError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: format!("{:?} ({e})", params.codec),
        })?;
    let (mut samples, mut chunk) = (Vec::new(), Vec::new());
    let mut layout: Option<(u32, usize)> = None;
    while let Some(packet) = reader
        .next_packet()
        .map_err(|e| decode_err(e.to_string()))?
    {
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder
            .decode(&packet)
            .map_err(|e| decode_err(e.to_string()))?;
        let spec = (buf.spec().rate(), buf.spec().channels().count());
        match layout {
            None => {
                check_layout(spec, path)?;
                layout = Some(spec);
            }
            Some(l) if l != spec => {
                return Err(decode_err(format!(
                    "the stream changes from {} Hz, {} channels to {} Hz, {} channels",
                    l.0, l.1, spec.0, spec.1
                )));
            }
            Some(_) => {}
        }
        buf.copy_to_vec_interleaved(&mut chunk);
        if samples.len() + chunk.len() > limit {
            return Err(decode_err(format!(
                "decodes to more than {limit} samples from {compressed} bytes \
                 (hark reads at most {MAX_DECODED_FLOOR} samples or \
                 {MAX_EXPANSION} per compressed byte)"
            )));
        }
        samples.extend_from_slice(&chunk);
    }
    let Some((sample_rate, channels)) = layout else {
        return Err(DataError::NoFrames {
            path: path.to_path_buf(),
        });
    };
    // A last frame's padding past the length the container states.
    if let Some(n) = stated {
        samples.truncate((n as usize).saturating_mul(channels));
    }
    let audio = Audio {
        samples,
        channels,
        sample_rate,
    };
    Ok((finish(audio, path)?, params))
}

/// Decodes WAV bytes; `path` names them in errors.
///
/// # Errors
/// As [`read_wav`].
pub fn decode_wav(bytes: Vec<u8>, path: &Path) -> Result<Audio> {
    let info = scan(&mut Cursor::new(&bytes), path)?;
    let audio = match hound::WavReader::new(Cursor::new(&bytes)) {
        Ok(reader) => decode_hound(reader, path)?,
        Err(_) if matches!(info.codec, Codec::Other(_)) => {
            return Err(DataError::UnsupportedCodec {
                path: path.to_path_buf(),
                codec: info.codec.to_string(),
            });
        }
        Err(_) => decode_symphonia(bytes, &info, path)?,
    };
    finish(audio, path)
}

/// Refuses decoded audio without frames or with non-finite samples.
fn finish(audio: Audio, path: &Path) -> Result<Audio> {
    if audio.samples.is_empty() {
        return Err(DataError::NoFrames {
            path: path.to_path_buf(),
        });
    }
    let count = audio.samples.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(DataError::NonFinite {
            path: path.to_path_buf(),
            count,
            total: audio.samples.len(),
        });
    }
    Ok(audio)
}

fn decode_hound(reader: hound::WavReader<Cursor<&Vec<u8>>>, path: &Path) -> Result<Audio> {
    let spec = reader.spec();
    let decode_err = |e: hound::Error| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    }
    .map_err(decode_err)?;
    Ok(Audio {
        samples,
        channels: spec.channels as usize,
        sample_rate: spec.sample_rate,
    })
}

fn decode_symphonia(bytes: Vec<u8>, info: &WavInfo, path: &Path) -> Result<Audio> {
    let err = |e: symphonia::core::errors::Error| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut reader = WavReader::try_new(mss, FormatOptions::default()).map_err(err)?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| DataError::Decode {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| DataError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: info.codec.to_string(),
        })?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|_| DataError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: info.codec.to_string(),
        })?;
    let mut samples = Vec::with_capacity(info.frames as usize * info.channels as usize);
    let mut chunk: Vec<f32> = Vec::new();
    while let Some(packet) = reader.next_packet().map_err(err)? {
        if packet.track_id != track_id {
            continue;
        }
        decoder
            .decode(&packet)
            .map_err(err)?
            .copy_to_vec_interleaved(&mut chunk);
        samples.extend_from_slice(&chunk);
    }
    // ADPCM pads its last block; the fact chunk (or block count) has the true length.
    samples.truncate(info.frames as usize * info.channels as usize);
    Ok(Audio {
        samples,
        channels: info.channels as usize,
        sample_rate: info.sample_rate,
    })
}
