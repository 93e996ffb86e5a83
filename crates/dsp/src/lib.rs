//! Audio signal processing for hark: windows, STFT, mel filterbanks, dB,
//! MFCC, resampling, waveform utilities and augmentation, on plain `&[f32]`
//! slices, numerically equal to torchaudio and librosa.
//!
//! Costly setup (window, FFT plan, filterbank) is built once in a plan object
//! that every clip reuses; plans are `Send + Sync`, and each thread keeps its
//! own scratch buffers.
//!
//! ```
//! use hark_dsp::{DbConfig, LogMelSpectrogram, MelSpectrogramConfig};
//!
//! let signal: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.1).sin()).collect();
//! let config = MelSpectrogramConfig { sample_rate: 22050, n_fft: 1024, hop_length: Some(512), n_mels: 64, ..Default::default() };
//! let logmel = LogMelSpectrogram::new(&config, &DbConfig::default())?;
//! let spec = logmel.process(&signal)?;
//! assert_eq!(spec.shape(), (64, 44));
//! # Ok::<(), hark_dsp::DspError>(())
//! ```
//!
//! Defaults are torchaudio's (`MelSpectrogram`: HTK scale, no filter norm,
//! reflect padding); librosa's are Slaney scale, Slaney norm and constant
//! padding. See each module for the conventions it follows.
#![warn(missing_docs)]

mod augment;
mod db;
mod error;
mod mel;
mod melspec;
mod mfcc;
mod resample;
mod spectrogram;
mod stft;
mod stream;
mod stretch;
mod wave;
mod window;

pub use augment::{
    MaskFill, MaskParam, SpecAugmentConfig, add_noise, add_noise_snr, random_crop, spec_augment,
    standard_normal, time_shift,
};
pub use db::{DbClamp, DbConfig, amplitude_to_db, db_to_amplitude, db_to_power, power_to_db};
pub use error::{DspError, Result};
pub use mel::{MelConfig, MelFilterbank, MelNorm, MelScale, hz_to_mel, mel_to_hz};
pub use melspec::{Bands, LogMelSpectrogram, MelScratch, MelSpectrogram, MelSpectrogramConfig};
pub use mfcc::{Mfcc, MfccScratch};
pub use resample::{ResamplerCache, StreamResampler, resample};
pub use rustfft::num_complex::Complex32;
pub use spectrogram::Spectrogram;
pub use stft::{PadMode, StftConfig, StftPlan, StftScratch};
pub use stream::LogMelStream;
pub use stretch::phase_vocoder;
pub use wave::{
    Placement, Tail, chunk_ranges, chunks, deinterleave, fix_length, fix_length_into, mix_down,
    mix_down_interleaved, to_channels,
};
pub use window::{WindowKind, padded_window, window};
