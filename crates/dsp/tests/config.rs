//! The configuration structs as a user's experiment file sees them (serde):
//! torchaudio names, lowercase enum values, defaults for missing fields and
//! an error naming any unknown field.

use hark_dsp::{
    DbConfig, MaskFill, MaskParam, MelNorm, MelScale, MelSpectrogramConfig, PadMode,
    SpecAugmentConfig, WindowKind,
};

#[test]
fn mel_config_reads_torchaudio_names_and_fills_defaults() {
    let cfg: MelSpectrogramConfig = serde_json::from_str(
        r#"{"sample_rate": 44100, "n_fft": 1024, "hop_length": 512, "n_mels": 64,
            "mel_scale": "slaney", "norm": "slaney", "pad_mode": "constant", "window": "hamming"}"#,
    )
    .unwrap();
    assert_eq!(
        cfg,
        MelSpectrogramConfig {
            sample_rate: 44100,
            n_fft: 1024,
            hop_length: Some(512),
            n_mels: 64,
            mel_scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            pad_mode: PadMode::Constant,
            window: WindowKind::Hamming,
            ..Default::default()
        }
    );
}

#[test]
fn configs_round_trip() {
    let mel = MelSpectrogramConfig {
        f_max: Some(8000.0),
        center: false,
        ..Default::default()
    };
    let back: MelSpectrogramConfig =
        serde_json::from_str(&serde_json::to_string(&mel).unwrap()).unwrap();
    assert_eq!(back, mel);
    let db = DbConfig {
        top_db: None,
        ref_value: 2.0,
        ..Default::default()
    };
    let json = serde_json::to_string(&db).unwrap();
    assert!(json.contains("\"ref\":2.0"), "{json}");
    assert_eq!(serde_json::from_str::<DbConfig>(&json).unwrap(), db);
    let aug = SpecAugmentConfig {
        freq_mask_param: MaskParam::Bins(27.0),
        fill: MaskFill::Value(0.0),
        ..Default::default()
    };
    let json = serde_json::to_string(&aug).unwrap();
    assert_eq!(
        serde_json::from_str::<SpecAugmentConfig>(&json).unwrap(),
        aug
    );
}

#[test]
fn unknown_fields_and_values_are_errors_that_name_them() {
    let err = serde_json::from_str::<MelSpectrogramConfig>(r#"{"nfft": 1024}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `nfft`"), "{err}");
    let err = serde_json::from_str::<MelSpectrogramConfig>(r#"{"mel_scale": "mel"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `mel`"), "{err}");
}
