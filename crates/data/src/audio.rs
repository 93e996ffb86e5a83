//! Decoded audio and WAV decoding: hound for PCM and float, symphonia for
//! what hound refuses (IMA and MS ADPCM, 32-bit PCM with an 18-byte fmt chunk).

use std::io::Cursor;
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::default::formats::WavReader;

use crate::error::{DataError, Result, io_error};
use crate::riff::{Codec, WavInfo, scan};

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
