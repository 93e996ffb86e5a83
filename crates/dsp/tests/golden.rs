//! hark-dsp against torchaudio 2.11 and librosa 0.11 outputs.
//!
//! The arrays in `tests/data` are copied from the project's golden set; its
//! `manifest.json` (copied too) gives the exact torchaudio and librosa calls. The
//! signal is 1 s at 22.05 kHz of a 440 Hz sine, a 100 Hz - 8 kHz chirp and noise;
//! every set uses n_fft 1024, hop 512, 64 mels, power 2, top_db 80.
//! `htk_norm-none_reflect.mfcc20.npy` was made from the torchaudio dB array with
//! `scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:20]`.

mod common;

use common::read_npy;
use hark_dsp::{
    DbConfig, LogMelSpectrogram, MelFilterbank, MelNorm, MelScale, MelSpectrogram,
    MelSpectrogramConfig, Mfcc, PadMode,
};

/// Filterbank weights: absolute.
const FBANK_TOL: f32 = 1e-6;
/// Power spectrogram: relative, where the reference exceeds 1e-3 of its maximum.
const POWER_REL_TOL: f32 = 1e-4;
/// dB outputs: absolute, in dB.
const DB_TOL: f32 = 0.01;

const SETS: [(&str, MelScale, MelNorm); 4] = [
    ("htk_norm-none", MelScale::Htk, MelNorm::None),
    ("htk_norm-slaney", MelScale::Htk, MelNorm::Slaney),
    ("slaney_norm-none", MelScale::Slaney, MelNorm::None),
    ("slaney_norm-slaney", MelScale::Slaney, MelNorm::Slaney),
];

fn config(mel_scale: MelScale, norm: MelNorm, pad_mode: PadMode) -> MelSpectrogramConfig {
    MelSpectrogramConfig {
        sample_rate: 22050,
        n_fft: 1024,
        hop_length: Some(512),
        n_mels: 64,
        mel_scale,
        norm,
        pad_mode,
        ..Default::default()
    }
}

fn signal() -> Vec<f32> {
    read_npy("signal_22050hz_1s.npy").data
}

fn assert_power_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let peak = want.iter().cloned().fold(0.0, f32::max);
    let mut worst = 0.0f32;
    for (&g, &w) in got.iter().zip(want) {
        if w > 1e-3 * peak {
            worst = worst.max((g - w).abs() / w);
        }
    }
    assert!(worst <= POWER_REL_TOL, "{name}: max relative error {worst}");
}

fn assert_abs_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max);
    assert!(worst <= tol, "{name}: max absolute error {worst} > {tol}");
}

#[test]
fn filterbanks_match_torchaudio() {
    for (name, scale, norm) in SETS {
        let cfg = config(scale, norm, PadMode::Reflect);
        let fb = MelFilterbank::new(&cfg.mel()).unwrap();
        let want = read_npy(&format!("fbank_{name}.torchaudio.npy"));
        assert_eq!(want.shape, [64, 513]);
        assert_abs_close(name, &fb.to_dense(), &want.data, FBANK_TOL);
    }
}

#[test]
fn power_spectrograms_match_torchaudio() {
    let x = signal();
    for (name, scale, norm) in SETS {
        let mel = MelSpectrogram::new(&config(scale, norm, PadMode::Reflect)).unwrap();
        let got = mel.process(&x).unwrap();
        let want = read_npy(&format!("{name}_reflect.torchaudio.power.npy"));
        assert_eq!(got.shape(), (want.shape[0], want.shape[1]));
        assert_power_close(name, got.as_slice(), &want.data);
    }
}

#[test]
fn log_mels_match_torchaudio_and_librosa_in_db() {
    let x = signal();
    for (name, scale, norm) in SETS {
        let logmel =
            LogMelSpectrogram::new(&config(scale, norm, PadMode::Reflect), &DbConfig::default())
                .unwrap();
        let got = logmel.process(&x).unwrap();
        for source in ["torchaudio", "librosa"] {
            let want = read_npy(&format!("{name}_reflect.{source}.db.npy"));
            assert_abs_close(
                &format!("{name} {source}"),
                got.as_slice(),
                &want.data,
                DB_TOL,
            );
        }
    }
}

#[test]
fn librosa_defaults_with_constant_padding_match() {
    let x = signal();
    let cfg = config(MelScale::Slaney, MelNorm::Slaney, PadMode::Constant);
    let power = MelSpectrogram::new(&cfg).unwrap().process(&x).unwrap();
    assert_power_close(
        "librosa_defaults",
        power.as_slice(),
        &read_npy("librosa_defaults.librosa.power.npy").data,
    );
    let db = LogMelSpectrogram::new(&cfg, &DbConfig::default())
        .unwrap()
        .process(&x)
        .unwrap();
    assert_abs_close(
        "librosa_defaults db",
        db.as_slice(),
        &read_npy("librosa_defaults.librosa.db.npy").data,
        DB_TOL,
    );
}

#[test]
fn mfcc_is_the_orthonormal_dct_of_the_log_mel() {
    let cfg = config(MelScale::Htk, MelNorm::None, PadMode::Reflect);
    let mfcc = Mfcc::new(&cfg, &DbConfig::default(), 20).unwrap();
    let got = mfcc.process(&signal()).unwrap();
    let want = read_npy("htk_norm-none_reflect.mfcc20.npy");
    assert_eq!(got.shape(), (20, 44));
    // A coefficient sums 64 dB values, so its tolerance is the dB one times sqrt(64).
    assert_abs_close("mfcc", got.as_slice(), &want.data, DB_TOL * 8.0);
}
