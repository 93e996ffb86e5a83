//! Compressed audio against its WAV source (fixtures and the command that
//! made them in `tests/data/compressed/make.py`): FLAC bit-exact, the lossy
//! codecs within a stated SNR once aligned, lengths as each codec's delay
//! handling leaves them.

use std::path::{Path, PathBuf};

use hark_data::{Codec, inspect_audio, read_audio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compressed")
        .join(name)
}

/// The lag (decoded minus source, in samples) that best aligns `got` with
/// `want`, and the SNR in dB over the overlap at that lag.
fn aligned_snr(want: &[f32], got: &[f32]) -> (i64, f64) {
    let score = |lag: i64| -> f64 {
        (0..want.len() as i64)
            .filter_map(|i| Some((want[i as usize], *got.get(usize::try_from(i + lag).ok()?)?)))
            .map(|(a, b)| (a * b) as f64)
            .sum()
    };
    let lag = (-3000..3000)
        .max_by(|&a, &b| score(a).total_cmp(&score(b)))
        .unwrap();
    let (mut signal, mut noise) = (0.0, 0.0);
    // The first and last 2,048 samples hold the codecs' ramps.
    for i in 2048..want.len() as i64 - 2048 {
        if let Some(&b) = usize::try_from(i + lag).ok().and_then(|j| got.get(j)) {
            let a = want[i as usize] as f64;
            signal += a * a;
            noise += (a - b as f64).powi(2);
        }
    }
    (lag, 10.0 * (signal / noise.max(1e-30)).log10())
}

#[test]
fn flac_decodes_bit_exactly_to_its_wav_source() {
    let wav = read_audio(&fixture("tone.wav")).unwrap();
    let flac = read_audio(&fixture("tone.flac")).unwrap();
    assert_eq!((flac.sample_rate, flac.channels), (22050, 1));
    assert_eq!(flac.samples, wav.samples);
    let info = inspect_audio(&fixture("tone.flac")).unwrap();
    assert_eq!(
        (info.codec, info.frames, info.bits_per_sample),
        (Codec::Flac, 22050, 16)
    );
}

#[test]
fn lossy_codecs_decode_close_to_the_source() {
    let wav = read_audio(&fixture("tone.wav")).unwrap().samples;
    for (name, codec, min_snr, len, lag_want) in [
        ("tone.mp3", Codec::Mp3, 45.0, 22050, 0),
        ("tone.ogg", Codec::Vorbis, 30.0, 22050, 0),
        ("tone.m4a", Codec::Aac, 45.0, 22050 + 1024, 1024),
    ] {
        let audio = read_audio(&fixture(name)).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (22050, 1), "{name}");
        let (lag, snr) = aligned_snr(&wav, &audio.samples);
        // Measured: MP3 51.2 dB, Vorbis 35.8 dB, AAC 52.6 dB.
        assert!(snr > min_snr, "{name}: SNR {snr:.1} dB");
        // MP3 and Vorbis trim their delay; AAC in MP4 keeps its priming.
        assert_eq!((audio.samples.len(), lag), (len, lag_want), "{name}");
        let info = inspect_audio(&fixture(name)).unwrap();
        assert_eq!(
            (info.codec, info.frames as usize),
            (codec, audio.samples.len()),
            "{name}"
        );
    }
}

#[test]
fn broken_compressed_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Noise with an audio extension; a FLAC cut after its header.
    let noise = dir.path().join("noise.mp3");
    std::fs::write(
        &noise,
        (0..4000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let flac = std::fs::read(fixture("tone.flac")).unwrap();
    let cut = dir.path().join("cut.flac");
    std::fs::write(&cut, &flac[..60]).unwrap();
    for path in [&noise, &cut] {
        let err = read_audio(path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    // Decoding the same bytes again gives the same samples.
    assert_eq!(
        read_audio(&fixture("tone.ogg")).unwrap(),
        read_audio(&fixture("tone.ogg")).unwrap()
    );
}
