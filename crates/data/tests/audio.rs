//! WAV decoding: round trips for every encoding hark writes, the symphonia
//! fallback for what hound refuses, and an error naming the file for every
//! kind of broken file.
//!
//! `tone_stereo_11025.*.wav` were made once with sox 14.4 from a 16-bit
//! stereo file holding 0.25 s of 0.5 * sin(440 Hz) (left) and 0.5 * sin(660 Hz)
//! (right) at 11025 Hz: `sox in.wav -e ms-adpcm ...` and `-e ima-adpcm ...`.

use std::path::{Path, PathBuf};

use hark_data::{Audio, Codec, DataError, Encoding, decode_wav, encode_wav, inspect, read_wav};

fn test_signal(channels: usize, sample_rate: u32, frames: usize) -> Audio {
    let samples = (0..frames * channels)
        .map(|i| {
            let (f, c) = (i / channels, i % channels);
            let t = f as f32 / sample_rate as f32;
            0.6 * (2.0 * std::f32::consts::PI * (220.0 * (c + 1) as f32) * t).sin()
                + 0.2 * ((i * 7919 % 1013) as f32 / 1013.0 - 0.5)
        })
        .collect();
    Audio {
        samples,
        channels,
        sample_rate,
    }
}

fn tone_stereo() -> Audio {
    let sr = 11025;
    let samples = (0..sr as usize / 4)
        .flat_map(|i| {
            let t = i as f32 / sr as f32;
            [440.0, 660.0].map(|f| 0.5 * (2.0 * std::f32::consts::PI * f * t).sin())
        })
        .collect();
    Audio {
        samples,
        channels: 2,
        sample_rate: sr,
    }
}

fn snr_db(reference: &[f32], got: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn every_pcm_encoding_round_trips_within_its_quantisation_step() {
    for (encoding, bits) in [
        (Encoding::U8, 8),
        (Encoding::I16, 16),
        (Encoding::I24, 24),
        (Encoding::I32, 32),
        (Encoding::F32, 0),
    ] {
        for (channels, rate) in [(1, 8000), (2, 44100), (3, 22050), (6, 48000), (8, 96000)] {
            let audio = test_signal(channels, rate, 1000);
            let back = decode_wav(encode_wav(&audio, encoding), Path::new("mem.wav")).unwrap();
            assert_eq!(
                (back.channels, back.sample_rate, back.frames()),
                (channels, rate, 1000)
            );
            let step = if bits == 0 {
                0.0
            } else {
                1.0 / (1u64 << (bits - 1)) as f32
            };
            for (a, b) in audio.samples.iter().zip(&back.samples) {
                assert!(
                    (a - b).abs() <= step / 2.0 + 1e-7,
                    "{encoding:?} x{channels}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn eight_and_twenty_four_bit_files_of_one_signal_decode_alike() {
    let audio = test_signal(1, 16000, 4000);
    let decode = |e| decode_wav(encode_wav(&audio, e), Path::new("mem.wav")).unwrap();
    let (u8s, i24s) = (decode(Encoding::U8), decode(Encoding::I24));
    for (a, b) in u8s.samples.iter().zip(&i24s.samples) {
        assert!((a - b).abs() <= 1.0 / 256.0 + 1e-6);
    }
}

#[test]
fn many_channels_and_wide_samples_are_written_extensible_and_read() {
    let audio = test_signal(4, 32000, 500);
    let bytes = encode_wav(&audio, Encoding::I24);
    let path = std::env::temp_dir().join(format!("hark-ext-{}.wav", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let info = inspect(&path).unwrap();
    assert!(info.extensible, "{info:?}");
    assert_eq!(
        (info.codec, info.channels, info.bits_per_sample, info.frames),
        (Codec::Pcm, 4, 24, 500)
    );
    assert_eq!(read_wav(&path).unwrap().frames(), 500);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn ima_adpcm_of_our_encoder_decodes_through_symphonia() {
    for channels in [1, 2] {
        let audio = test_signal(channels, 22050, 3000);
        let bytes = encode_wav(&audio, Encoding::ImaAdpcm);
        let back = decode_wav(bytes, Path::new("ima.wav")).unwrap();
        assert_eq!((back.channels, back.frames()), (channels, 3000));
        let snr = snr_db(&audio.samples, &back.samples);
        assert!(snr > 20.0, "x{channels}: SNR {snr} dB");
    }
}

#[test]
fn ms_and_ima_adpcm_from_sox_decode() {
    let tone = tone_stereo();
    for (name, codec) in [
        ("tone_stereo_11025.ms_adpcm.wav", Codec::MsAdpcm),
        ("tone_stereo_11025.sox_ima_adpcm.wav", Codec::ImaAdpcm),
    ] {
        let path = fixture(name);
        let info = inspect(&path).unwrap();
        assert_eq!(
            (info.codec, info.channels, info.sample_rate),
            (codec, 2, 11025),
            "{name}"
        );
        let audio = read_wav(&path).unwrap();
        assert_eq!(audio.frames(), tone.frames(), "{name}");
        let snr = snr_db(&tone.samples, &audio.samples);
        assert!(snr > 15.0, "{name}: SNR {snr} dB");
    }
}

/// A 32-bit PCM file whose fmt chunk is 18 bytes (cbSize 0), which hound refuses.
fn pcm32_with_18_byte_fmt(samples: &[i32]) -> Vec<u8> {
    let mut fmt = Vec::new();
    for (v, n) in [
        (1u32, 2),
        (1, 2),
        (8000, 4),
        (32000, 4),
        (4, 2),
        (32, 2),
        (0, 2),
    ] {
        fmt.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    let len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out
}

#[test]
fn pcm32_with_an_18_byte_fmt_chunk_falls_back_to_symphonia() {
    let samples = [0, i32::MAX / 2, i32::MIN / 4, 1 << 20];
    let bytes = pcm32_with_18_byte_fmt(&samples);
    assert!(
        hound::WavReader::new(std::io::Cursor::new(&bytes)).is_err(),
        "hound refuses it"
    );
    let audio = decode_wav(bytes, Path::new("pcm32.wav")).unwrap();
    let want: Vec<f32> = samples.iter().map(|&s| s as f32 / 2f32.powi(31)).collect();
    for (a, b) in audio.samples.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

fn decode_err(bytes: Vec<u8>, name: &str) -> String {
    let err = decode_wav(bytes, Path::new(name)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(name), "message names the file: {msg}");
    msg
}

#[test]
fn broken_files_are_errors_naming_the_file_and_the_fault() {
    let good = encode_wav(&test_signal(1, 8000, 100), Encoding::I16);
    assert!(
        decode_err(b"ID3\x03 not a wav at all".to_vec(), "a.wav")
            .contains("no RIFF/WAVE signature")
    );
    assert!(decode_err(good[..20].to_vec(), "b.wav").contains("truncated header"));
    assert!(decode_err(good[..good.len() - 10].to_vec(), "c.wav").contains("truncated data chunk"));
    let mut empty = good[..44].to_vec();
    empty[40..44].copy_from_slice(&0u32.to_le_bytes());
    assert!(decode_err(empty, "d.wav").contains("no audio frames"));
    let mut mp3 = good.clone();
    mp3[20..22].copy_from_slice(&0x55u16.to_le_bytes());
    assert!(decode_err(mp3, "e.wav").contains("unsupported codec format tag 0x0055"));
}

#[test]
fn nan_and_infinite_float_samples_are_counted_and_rejected() {
    let mut audio = test_signal(2, 8000, 50);
    audio.samples[3] = f32::NAN;
    audio.samples[40] = f32::INFINITY;
    let err = decode_wav(encode_wav(&audio, Encoding::F32), Path::new("nan.wav")).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NonFinite {
                count: 2,
                total: 100,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = read_wav(Path::new("/no/such/dir/x.wav"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/no/such/dir/x.wav: "), "{err}");
}
