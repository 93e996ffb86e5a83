//! Complex STFT and phase vocoder against torch 2.11 / torchaudio 2.11.
//!
//! The data were made with (`x` the first 5512 samples of the golden signal):
//! ```python
//! spec = torch.stft(x, 256, 64, window=torch.hann_window(256), center=True,
//!                   pad_mode="reflect", return_complex=True)
//! adv = torch.linspace(0, np.pi * 64, 129)[..., None]
//! for rate in (0.8, 1.3):
//!     out = torchaudio.functional.phase_vocoder(spec, rate, adv)
//! # each saved as float32 [2, n_freq, frames]: real and imaginary parts
//! ```

mod common;

use common::read_npy;
use hark_dsp::{Complex32, Spectrogram, StftConfig, StftPlan, phase_vocoder};

/// Relative to the spectrogram's largest magnitude.
const TOL: f32 = 1e-4;

fn read_complex(name: &str) -> Spectrogram<Complex32> {
    let npy = read_npy(name);
    let (rows, frames) = (npy.shape[1], npy.shape[2]);
    let (re, im) = npy.data.split_at(rows * frames);
    let data = re
        .iter()
        .zip(im)
        .map(|(&r, &i)| Complex32::new(r, i))
        .collect();
    Spectrogram::from_vec(data, rows, frames)
}

fn assert_complex_close(name: &str, got: &Spectrogram<Complex32>, want: &Spectrogram<Complex32>) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    let peak = want.as_slice().iter().map(|c| c.norm()).fold(0.0, f32::max);
    let worst = got
        .as_slice()
        .iter()
        .zip(want.as_slice())
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f32::max);
    assert!(
        worst <= TOL * peak,
        "{name}: max error {worst} vs peak {peak}"
    );
}

#[test]
fn complex_stft_matches_torch_stft() {
    let x = &read_npy("signal_22050hz_1s.npy").data[..5512];
    let plan = StftPlan::new(&StftConfig {
        n_fft: 256,
        hop_length: Some(64),
        ..Default::default()
    })
    .unwrap();
    assert_complex_close(
        "stft",
        &plan.complex(x).unwrap(),
        &read_complex("stretch_input.npy"),
    );
}

#[test]
fn phase_vocoder_matches_torchaudio() {
    let input = read_complex("stretch_input.npy");
    for rate in ["0.8", "1.3"] {
        let got = phase_vocoder(&input, rate.parse().unwrap(), 64).unwrap();
        assert_complex_close(
            rate,
            &got,
            &read_complex(&format!("stretch_rate{rate}.npy")),
        );
    }
}
