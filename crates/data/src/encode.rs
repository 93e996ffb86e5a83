//! WAV writing in every encoding hark reads: unsigned 8-bit, 16, 24 and
//! 32-bit PCM and 32-bit float (through hound, EXTENSIBLE where hound uses
//! it), and 4-bit IMA ADPCM (an encoder of our own).

use std::io::Cursor;
use std::path::Path;

use crate::Audio;
use crate::error::{Result, io_error};

/// A sample encoding for [`encode_wav`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Unsigned 8-bit PCM.
    U8,
    /// Signed 16-bit PCM.
    I16,
    /// Signed 24-bit PCM.
    I24,
    /// Signed 32-bit PCM.
    I32,
    /// 32-bit IEEE float.
    F32,
    /// 4-bit IMA ADPCM in blocks of 256 bytes per channel (505 frames).
    ImaAdpcm,
}

/// Encodes `audio` as a WAV file in memory. Samples are clamped to [-1, 1]
/// and rounded to the nearest integer step.
pub fn encode_wav(audio: &Audio, encoding: Encoding) -> Vec<u8> {
    let int_spec = |bits| hound::WavSpec {
        channels: audio.channels as u16,
        sample_rate: audio.sample_rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    match encoding {
        Encoding::U8 => write_ints(audio, int_spec(8)),
        Encoding::I16 => write_ints(audio, int_spec(16)),
        Encoding::I24 => write_ints(audio, int_spec(24)),
        Encoding::I32 => write_ints(audio, int_spec(32)),
        Encoding::F32 => {
            let spec = hound::WavSpec {
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
                ..int_spec(32)
            };
            write_with(spec, |w| {
                audio.samples.iter().try_for_each(|&s| w.write_sample(s))
            })
        }
        Encoding::ImaAdpcm => ima_adpcm(audio),
    }
}

/// Encodes `audio` and writes it to `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write_wav(path: &Path, audio: &Audio, encoding: Encoding) -> Result<()> {
    std::fs::write(path, encode_wav(audio, encoding)).map_err(io_error(path))
}

/// The integer nearest `x * 2^(bits - 1)`, clamped to the signed range.
fn quantize(x: f32, bits: u16) -> i32 {
    let full = (1i64 << (bits - 1)) as f64;
    (x as f64 * full).round().clamp(-full, full - 1.0) as i32
}

fn write_ints(audio: &Audio, spec: hound::WavSpec) -> Vec<u8> {
    let bits = spec.bits_per_sample;
    write_with(spec, |w| {
        audio.samples.iter().try_for_each(|&s| match bits {
            8 => w.write_sample(quantize(s, 8) as i8),
            16 => w.write_sample(quantize(s, 16) as i16),
            _ => w.write_sample(quantize(s, bits)),
        })
    })
}

fn write_with(
    spec: hound::WavSpec,
    body: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>) -> hound::Result<()>,
) -> Vec<u8> {
    let mut cursor = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).expect("writing to memory");
    body(&mut writer).expect("writing to memory");
    writer.finalize().expect("writing to memory");
    cursor.into_inner()
}

/// Assembles a RIFF/WAVE file from a fmt chunk body, an optional fact
/// chunk frame count and the data chunk body.
pub(crate) fn riff_bytes(fmt: &[u8], fact: Option<u32>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + fmt.len() + data.len());
    let chunk = |out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]| {
        out.extend_from_slice(id);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
    };
    out.extend_from_slice(b"RIFF\0\0\0\0WAVE");
    chunk(&mut out, b"fmt ", fmt);
    if let Some(frames) = fact {
        chunk(&mut out, b"fact", &frames.to_le_bytes());
    }
    chunk(&mut out, b"data", data);
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    out
}

const IMA_INDEX: [i32; 16] = [-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8];
const IMA_STEP: [i32; 89] = [
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66,
    73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449,
    494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272,
    2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493,
    10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767,
];
/// Bytes per channel in one IMA ADPCM block.
const IMA_BLOCK_PER_CHANNEL: usize = 256;

/// The IMA ADPCM encoder state of one channel.
#[derive(Clone, Copy)]
struct ImaState {
    predictor: i32,
    index: i32,
}

impl ImaState {
    /// Encodes one 16-bit sample to a nibble, stepping the state exactly as a
    /// decoder will.
    fn encode(&mut self, sample: i32) -> u8 {
        let step = IMA_STEP[self.index as usize];
        let mut diff = sample - self.predictor;
        let mut nibble = 0u8;
        if diff < 0 {
            nibble = 8;
            diff = -diff;
        }
        let mut delta = step >> 3;
        let mut s = step;
        for bit in [4u8, 2, 1] {
            if diff >= s {
                nibble |= bit;
                diff -= s;
                delta += s;
            }
            s >>= 1;
        }
        self.predictor += if nibble & 8 != 0 { -delta } else { delta };
        self.predictor = self.predictor.clamp(-32768, 32767);
        self.index = (self.index + IMA_INDEX[nibble as usize]).clamp(0, 88);
        nibble
    }
}

/// Encodes interleaved audio as IMA ADPCM (format tag 0x11), zero-padding
/// the last block; the fact chunk holds the true frame count.
fn ima_adpcm(audio: &Audio) -> Vec<u8> {
    let ch = audio.channels;
    let block_align = IMA_BLOCK_PER_CHANNEL * ch;
    // Each channel: a 4-byte header holding one sample, then two samples a byte.
    let per_block = (IMA_BLOCK_PER_CHANNEL - 4) * 2 + 1;
    let frames = audio.frames();
    let pcm: Vec<i32> = audio.samples.iter().map(|&s| quantize(s, 16)).collect();
    let sample = |frame: usize, c: usize| {
        if frame < frames {
            pcm[frame * ch + c]
        } else {
            0
        }
    };
    let mut states = vec![
        ImaState {
            predictor: 0,
            index: 0
        };
        ch
    ];
    let mut data = Vec::with_capacity(frames.div_ceil(per_block) * block_align);
    for start in (0..frames).step_by(per_block) {
        for (c, state) in states.iter_mut().enumerate() {
            state.predictor = sample(start, c);
            data.extend_from_slice(&(state.predictor as i16).to_le_bytes());
            data.extend_from_slice(&[state.index as u8, 0]);
        }
        // Then groups of 8 samples per channel, 4 bytes each, low nibble first.
        for group in (start + 1..start + per_block).step_by(8) {
            for (c, state) in states.iter_mut().enumerate() {
                for pair in 0..4 {
                    let lo = state.encode(sample(group + 2 * pair, c));
                    let hi = state.encode(sample(group + 2 * pair + 1, c));
                    data.push(lo | hi << 4);
                }
            }
        }
    }
    let byte_rate = (audio.sample_rate as u64 * block_align as u64 / per_block as u64) as u32;
    let mut fmt = Vec::with_capacity(20);
    fmt.extend_from_slice(&0x11u16.to_le_bytes());
    fmt.extend_from_slice(&(ch as u16).to_le_bytes());
    fmt.extend_from_slice(&audio.sample_rate.to_le_bytes());
    fmt.extend_from_slice(&byte_rate.to_le_bytes());
    fmt.extend_from_slice(&(block_align as u16).to_le_bytes());
    fmt.extend_from_slice(&4u16.to_le_bytes());
    fmt.extend_from_slice(&2u16.to_le_bytes());
    fmt.extend_from_slice(&(per_block as u16).to_le_bytes());
    riff_bytes(&fmt, Some(frames as u32), &data)
}
