//! A RIFF/WAVE header scanner: codec, layout and data extent of a file
//! without decoding it, and the classification of broken files.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{DataError, Result, io_error};

/// How a WAV file's samples are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// Integer PCM (format tag 1, or EXTENSIBLE with the PCM subformat).
    Pcm,
    /// IEEE float (format tag 3, or EXTENSIBLE with the float subformat).
    Float,
    /// Microsoft ADPCM (format tag 2).
    MsAdpcm,
    /// IMA / DVI ADPCM (format tag 0x11).
    ImaAdpcm,
    /// FLAC (a `.flac` file, not a WAV).
    Flac,
    /// MPEG audio layer 1 to 3.
    Mp3,
    /// Ogg Vorbis.
    Vorbis,
    /// AAC (in MP4/M4A or ADTS).
    Aac,
    /// Anything else, by format tag.
    Other(u16),
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pcm => f.write_str("pcm"),
            Self::Float => f.write_str("float"),
            Self::MsAdpcm => f.write_str("ms_adpcm"),
            Self::ImaAdpcm => f.write_str("ima_adpcm"),
            Self::Flac => f.write_str("flac"),
            Self::Mp3 => f.write_str("mp3"),
            Self::Vorbis => f.write_str("vorbis"),
            Self::Aac => f.write_str("aac"),
            Self::Other(tag) => write!(f, "format tag 0x{tag:04x}"),
        }
    }
}

/// What a WAV header says about its audio.
#[derive(Debug, Clone, PartialEq)]
pub struct WavInfo {
    /// Sample encoding.
    pub codec: Codec,
    /// Whether the fmt chunk is WAVE_FORMAT_EXTENSIBLE.
    pub extensible: bool,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Bits per sample as stored (4 for ADPCM).
    pub bits_per_sample: u16,
    /// Bytes per block of all channels.
    pub block_align: u16,
    /// Length of the fmt chunk body (16, 18, 20 or 40 in the wild).
    pub fmt_len: u32,
    /// Frames of audio, from the data length (PCM, float) or the fact
    /// chunk or block count (ADPCM).
    pub frames: u64,
    /// Byte offset of the data chunk body.
    pub data_offset: u64,
    /// Bytes the data chunk header declares.
    pub data_len: u64,
}

impl WavInfo {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / self.sample_rate as f64
    }
}

/// The most channels a WAV file may have: more is a broken or hostile
/// header (a frame of 65,535 channels is 128 KiB).
pub const MAX_CHANNELS: u16 = 64;

/// The sample rates hark reads, in Hz: below 1 kHz a clip resampled to a
/// model's rate grows by more than 44 times; above 1.536 MHz is beyond any
/// audio (bat recorders use up to 500 kHz).
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 1_000..=1_536_000;

const KSDATAFORMAT_SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

/// Reads and checks the header of the WAV file at `path`.
///
/// # Errors
/// The file cannot be read, is not RIFF/WAVE, has a cut-short or malformed
/// header, a data chunk shorter than declared, or no frames.
pub fn inspect(path: &Path) -> Result<WavInfo> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    scan(&mut file, path)
}

/// Scans a RIFF/WAVE stream's chunks up to the data chunk header.
pub(crate) fn scan<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<WavInfo> {
    let not_wav = |reason: &str| DataError::NotWav {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let total = reader.seek(SeekFrom::End(0)).map_err(io_error(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
    let mut riff = [0u8; 12];
    if read_full(reader, &mut riff, path)? < 12 {
        return Err(not_wav("file is shorter than a RIFF header"));
    }
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(not_wav("no RIFF/WAVE signature"));
    }
    let mut pos = 12u64;
    let mut fmt: Option<Vec<u8>> = None;
    let mut fact_frames = None;
    loop {
        let mut header = [0u8; 8];
        let got = read_full(reader, &mut header, path)?;
        if got < 8 {
            return Err(not_wav(match fmt {
                None => "truncated header: no fmt chunk",
                Some(_) => "truncated header: no data chunk",
            }));
        }
        let id = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
        pos += 8;
        match &id {
            b"fmt " => {
                if fmt.is_some() {
                    return Err(not_wav("two fmt chunks"));
                }
                if !(16..=1024).contains(&len) {
                    return Err(not_wav(&format!("fmt chunk of {len} bytes")));
                }
                let mut body = vec![0u8; len as usize];
                if read_full(reader, &mut body, path)? < body.len() {
                    return Err(not_wav("truncated header: fmt chunk cut short"));
                }
                fmt = Some(body);
            }
            b"fact" if len >= 4 => {
                let mut body = [0u8; 4];
                if read_full(reader, &mut body, path)? < 4 {
                    return Err(not_wav("truncated header: fact chunk cut short"));
                }
                fact_frames = Some(u32::from_le_bytes(body) as u64);
                reader
                    .seek(SeekFrom::Start(pos + len))
                    .map_err(io_error(path))?;
            }
            b"data" => {
                let Some(fmt) = fmt else {
                    return Err(not_wav("data chunk before fmt chunk"));
                };
                let available = total - pos;
                if len > available {
                    return Err(DataError::TruncatedData {
                        path: path.to_path_buf(),
                        declared: len,
                        available,
                    });
                }
                let info = parse_fmt(&fmt, fact_frames, pos, len).map_err(|r| not_wav(&r))?;
                if info.frames == 0 {
                    return Err(DataError::NoFrames {
                        path: path.to_path_buf(),
                    });
                }
                return Ok(info);
            }
            _ => {
                reader
                    .seek(SeekFrom::Start(pos + len))
                    .map_err(io_error(path))?;
            }
        }
        // Chunks are padded to even lengths.
        pos += len + (len & 1);
        reader.seek(SeekFrom::Start(pos)).map_err(io_error(path))?;
    }
}

pub(crate) fn parse_fmt(
    fmt: &[u8],
    fact_frames: Option<u64>,
    data_offset: u64,
    data_len: u64,
) -> std::result::Result<WavInfo, String> {
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([fmt[i], fmt[i + 1], fmt[i + 2], fmt[i + 3]]);
    let tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32_at(4);
    let block_align = u16_at(12);
    let bits_per_sample = u16_at(14);
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(format!(
            "fmt chunk declares {channels} channels (hark reads 1 to {MAX_CHANNELS})"
        ));
    }
    if !SAMPLE_RATES.contains(&sample_rate) {
        return Err(format!(
            "fmt chunk declares a sample rate of {sample_rate} Hz (hark reads {} to {} Hz)",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        ));
    }
    if block_align == 0 {
        return Err("fmt chunk declares a block align of 0".into());
    }
    let extensible = tag == 0xfffe;
    let codec = if extensible {
        if fmt.len() < 40 {
            return Err(format!(
                "EXTENSIBLE fmt chunk of {} bytes, 40 needed",
                fmt.len()
            ));
        }
        let sub = &fmt[24..40];
        match (
            u16::from_le_bytes([sub[0], sub[1]]),
            sub[2..] == KSDATAFORMAT_SUBTYPE_TAIL,
        ) {
            (1, true) => Codec::Pcm,
            (3, true) => Codec::Float,
            (other, _) => Codec::Other(other),
        }
    } else {
        match tag {
            1 => Codec::Pcm,
            2 => Codec::MsAdpcm,
            3 => Codec::Float,
            0x11 => Codec::ImaAdpcm,
            other => Codec::Other(other),
        }
    };
    let frames = match codec {
        Codec::MsAdpcm | Codec::ImaAdpcm => {
            let per_block = adpcm_frames_per_block(codec, fmt, block_align, channels)?;
            // A fact chunk says how many frames the blocks hold (the last
            // may be padded or cut short), but never more than they can.
            let align = block_align as u64;
            match fact_frames {
                Some(f) => f.min(data_len.div_ceil(align) * per_block),
                None => data_len / align * per_block,
            }
        }
        Codec::Pcm | Codec::Float => {
            check_sample_layout(codec, bits_per_sample, block_align, channels)?;
            data_len / block_align as u64
        }
        _ => data_len / block_align as u64,
    };
    Ok(WavInfo {
        codec,
        extensible,
        sample_rate,
        channels,
        bits_per_sample,
        block_align,
        fmt_len: fmt.len() as u32,
        frames,
        data_offset,
        data_len,
    })
}

/// Frames per ADPCM block: from the fmt extension when present, else from
/// the block layout.
///
/// # Errors
/// A block too small to hold each channel's header.
fn adpcm_frames_per_block(
    codec: Codec,
    fmt: &[u8],
    block_align: u16,
    channels: u16,
) -> std::result::Result<u64, String> {
    // IMA: a 4-byte header per channel, then 4 bits per sample, plus the
    // header's sample. MS: a 7-byte header per channel holding two samples.
    let (header, extra) = match codec {
        Codec::ImaAdpcm => (4, 1),
        _ => (7, 2),
    };
    let (align, ch) = (block_align as u64, channels as u64);
    let Some(body) = align.checked_sub(header * ch) else {
        return Err(format!(
            "block align {align} cannot hold the {header}-byte headers of {ch} channels"
        ));
    };
    let most = body * 2 / ch + extra;
    if fmt.len() >= 20 {
        let declared = u16::from_le_bytes([fmt[18], fmt[19]]) as u64;
        if !(1..=most).contains(&declared) {
            return Err(format!(
                "fmt chunk declares {declared} frames per block, but a block of {align} \
                 bytes for {ch} channels holds 1 to {most}"
            ));
        }
        return Ok(declared);
    }
    Ok(most)
}

/// Checks that PCM or float samples have a width hark decodes and that a
/// block is one frame of them.
fn check_sample_layout(
    codec: Codec,
    bits: u16,
    block_align: u16,
    channels: u16,
) -> std::result::Result<(), String> {
    let widths: &[u16] = match codec {
        Codec::Float => &[32, 64],
        _ => &[8, 16, 24, 32],
    };
    if !widths.contains(&bits) {
        return Err(format!(
            "{codec} samples of {bits} bits (hark reads {widths:?} bits)"
        ));
    }
    let frame = channels as u32 * (bits / 8) as u32;
    if block_align as u32 != frame {
        return Err(format!(
            "block align {block_align} for {channels} channels of {bits} bits (a frame is \
             {frame} bytes)"
        ));
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path)(e)),
        }
    }
    Ok(filled)
}
