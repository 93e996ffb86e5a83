//! Batching: coverage and seeded order, reproducible augmentation, padding
//! of variable-length clips, normalisation.

use hark_data::{
    AugmentConfig, Batch, CropAugment, FeatureConfig, FeatureExtractor, Features, Loader,
    LoaderConfig, NoiseAugment, Normalization, StretchAugment, band_stats, dataset_stats,
};
use hark_dsp::{MaskFill, MaskParam, SpecAugmentConfig};

fn logmels(n: usize, frames: impl Fn(usize) -> usize) -> Vec<Features> {
    (0..n)
        .map(|i| {
            let t = frames(i);
            Features {
                data: (0..2 * 8 * t)
                    .map(|j| (i * 100 + j) as f32 * 0.01)
                    .collect(),
                channels: 2,
                n_mels: 8,
                frames: t,
            }
        })
        .collect()
}

fn extractor() -> FeatureExtractor {
    FeatureExtractor::new(&FeatureConfig {
        duration: Some(0.5),
        ..Default::default()
    })
    .unwrap()
}

fn loader(
    clips: Vec<Features>,
    augment: AugmentConfig,
    norm: Normalization,
    config: LoaderConfig,
) -> Loader {
    let labels = (0..clips.len()).map(|i| i % 3).collect();
    Loader::new(clips, labels, extractor(), augment, norm, config).unwrap()
}

fn collect(loader: &Loader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).map(Result::unwrap).collect()
}

#[test]
fn an_epoch_covers_every_example_once_in_a_seeded_order() {
    let l = loader(
        logmels(10, |_| 5),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig {
            batch_size: 4,
            seed: 9,
            ..Default::default()
        },
    );
    assert_eq!(l.batches_per_epoch(), 3);
    let e1 = collect(&l, 1);
    assert_eq!(e1.iter().map(|b| b.shape[0]).collect::<Vec<_>>(), [4, 4, 2]);
    let mut seen: Vec<usize> = e1.iter().flat_map(|b| b.indices.clone()).collect();
    let order = seen.clone();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(
        e1[0].labels,
        e1[0].indices.iter().map(|i| i % 3).collect::<Vec<_>>()
    );
    assert_eq!(e1, collect(&l, 1), "same seed and epoch, same batches");
    let e2: Vec<usize> = collect(&l, 2)
        .iter()
        .flat_map(|b| b.indices.clone())
        .collect();
    assert_ne!(order, e2, "a new epoch reshuffles");
    let dropped = loader(
        logmels(10, |_| 5),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig {
            batch_size: 4,
            drop_last: true,
            ..Default::default()
        },
    );
    assert_eq!(collect(&dropped, 0).len(), 2);
}

#[test]
fn variable_length_clips_are_padded_with_their_lengths_reported() {
    let l = loader(
        logmels(3, |i| 3 + i),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig {
            batch_size: 3,
            shuffle: false,
            pad_value: -80.0,
            ..Default::default()
        },
    );
    let b = &collect(&l, 0)[0];
    assert_eq!((b.shape, b.lengths.clone()), ([3, 2, 8, 5], vec![3, 4, 5]));
    // Example 0, channel 1, band 7: 3 real frames then 2 padded.
    let row = &b.data[(2 * 8 - 1) * 5..2 * 8 * 5];
    assert_eq!(&row[3..], [-80.0, -80.0]);
    assert_eq!(row[0], (15 * 3) as f32 * 0.01);
}

#[test]
fn augmentation_reproduces_per_epoch_and_example() {
    let wave: Vec<Features> = (0..4)
        .map(|i| {
            let mono: Vec<f32> = (0..11025)
                .map(|j| ((j + i * 7) as f32 * 0.05).sin() * 0.3)
                .collect();
            Features {
                data: [mono.clone(), mono].concat(),
                channels: 2,
                n_mels: 1,
                frames: 11025,
            }
        })
        .collect();
    let augment = AugmentConfig {
        time_shift: Some(0.4),
        noise: Some(NoiseAugment {
            prob: 0.5,
            std: Some(0.005),
            snr_db: None,
        }),
        crop: Some(CropAugment {
            prob: 0.4,
            max_fraction: 0.25,
        }),
        stretch: None,
        spec_augment: Some(SpecAugmentConfig {
            freq_masks: 2,
            time_masks: 2,
            freq_mask_param: MaskParam::Fraction(0.1),
            time_mask_param: MaskParam::Fraction(0.1),
            fill: MaskFill::Mean,
        }),
        spec_noise: None,
        random_placement: false,
        test_crops: None,
    };
    let l = loader(
        wave.clone(),
        augment.clone(),
        Normalization::None,
        LoaderConfig {
            batch_size: 2,
            seed: 3,
            ..Default::default()
        },
    );
    let a = collect(&l, 5);
    assert_eq!(a[0].shape[1..], [2, 64, 22], "waveforms become log-mels");
    assert!(a == collect(&l, 5), "same epoch, same augmentation");
    assert!(a != collect(&l, 6), "another epoch, other augmentation");
    // Both channels of one example get the same shift and masks.
    let plane = 64 * 22;
    let rows = &a[0].data[..2 * plane];
    assert!(
        rows[..plane] == rows[plane..],
        "identical channels stay identical"
    );

    let stretch = AugmentConfig {
        stretch: Some(StretchAugment {
            prob: 1.0,
            max_delta: 0.3,
        }),
        ..Default::default()
    };
    let l = loader(
        wave,
        stretch,
        Normalization::None,
        LoaderConfig {
            batch_size: 4,
            shuffle: false,
            ..Default::default()
        },
    );
    let b = &collect(&l, 0)[0];
    assert!(
        b.lengths.iter().any(|&t| t != 22),
        "stretching changes the frame count: {:?}",
        b.lengths
    );
}

#[test]
fn normalisation_per_batch_per_example_and_from_dataset_statistics() {
    let clips = logmels(4, |i| 4 + i);
    let mean_std = |b: &Batch, e: Option<usize>| {
        let [_, c, m, t] = b.shape;
        let vals: Vec<f64> = (0..b.shape[0])
            .filter(|&x| e.is_none_or(|e| e == x))
            .flat_map(|x| {
                (0..c * m)
                    .flat_map(move |r| (0..b.lengths[x]).map(move |f| (x * c * m + r) * t + f))
            })
            .map(|i| b.data[i] as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
        (mean, var.sqrt())
    };
    let cfg = LoaderConfig {
        batch_size: 4,
        shuffle: false,
        ..Default::default()
    };
    let b = &collect(
        &loader(
            clips.clone(),
            AugmentConfig::default(),
            Normalization::PerBatch,
            cfg.clone(),
        ),
        0,
    )[0];
    let (m, s) = mean_std(b, None);
    assert!(m.abs() < 1e-4 && (s - 1.0).abs() < 1e-4, "{m} {s}");
    let b = &collect(
        &loader(
            clips.clone(),
            AugmentConfig::default(),
            Normalization::PerExample,
            cfg.clone(),
        ),
        0,
    )[0];
    for e in 0..4 {
        let (m, s) = mean_std(b, Some(e));
        assert!(
            m.abs() < 1e-4 && (s - 1.0).abs() < 1e-3,
            "example {e}: {m} {s}"
        );
    }
    // Per example and band: every row of every example.
    let b = &collect(
        &loader(
            clips.clone(),
            AugmentConfig::default(),
            Normalization::PerExamplePerBand,
            cfg.clone(),
        ),
        0,
    )[0];
    let [_, c, m, t] = b.shape;
    for row in 0..4 * c * m {
        let vals = &b.data[row * t..][..b.lengths[row / (c * m)]];
        let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / vals.len() as f64;
        let var =
            vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
        assert!(
            mean.abs() < 1e-4 && (var.sqrt() - 1.0).abs() < 1e-3,
            "row {row}: {mean} {var}"
        );
    }
    let (mean, std) = dataset_stats(&clips);
    let b = &collect(
        &loader(
            clips.clone(),
            AugmentConfig::default(),
            Normalization::Dataset { mean, std },
            cfg.clone(),
        ),
        0,
    )[0];
    let (m, _) = mean_std(b, None);
    assert!(m.abs() < 1e-3, "{m}");
    // Per mel band: each band of the batch has mean 0 and deviation 1
    // (population statistics over the same clips).
    let (mean, std) = band_stats(&clips);
    assert_eq!(mean.len(), clips[0].n_mels);
    let b = &collect(
        &loader(
            clips,
            AugmentConfig::default(),
            Normalization::PerBand { mean, std },
            cfg,
        ),
        0,
    )[0];
    let [n, c, m, t] = b.shape;
    for band in 0..m {
        // Real frames only: shorter clips are padded.
        let lengths = &b.lengths;
        let values: Vec<f64> = (0..n * c)
            .flat_map(|row| (0..lengths[row / c]).map(move |f| (row * m + band) * t + f))
            .map(|i| b.data[i] as f64)
            .collect();
        let mu = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        assert!(
            mu.abs() < 1e-3 && (sd - 1.0).abs() < 1e-3 || sd < 1e-3,
            "band {band}: {mu} {sd}"
        );
    }
}

#[test]
fn bad_loader_inputs_are_errors() {
    let err = Loader::new(
        vec![],
        vec![],
        extractor(),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "loader: no clips to load");
    let err = Loader::new(
        logmels(2, |_| 3),
        vec![0],
        extractor(),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "loader: 2 clips but 1 labels");
    let bad = AugmentConfig {
        noise: Some(NoiseAugment {
            prob: 2.0,
            std: Some(0.1),
            snr_db: None,
        }),
        ..Default::default()
    };
    let err = Loader::new(
        logmels(2, |_| 3),
        vec![0, 1],
        extractor(),
        bad,
        Normalization::None,
        LoaderConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`augment.noise.prob` must be in [0, 1], got 2"
    );
    let shift = AugmentConfig {
        time_shift: Some(0.2),
        ..Default::default()
    };
    let err = Loader::new(
        logmels(2, |_| 3),
        vec![0, 1],
        extractor(),
        shift,
        Normalization::None,
        LoaderConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "loader: waveform augmentation needs waveform clips (Stage::Waveform), got 2x8 log-mels"
    );
    let wave = vec![Features {
        data: vec![0.1; 8000],
        channels: 1,
        n_mels: 1,
        frames: 8000,
    }];
    let err = Loader::new(
        wave,
        vec![0],
        extractor(),
        AugmentConfig::default(),
        Normalization::None,
        LoaderConfig::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("loader: clips are waveforms"),
        "{err}"
    );
}

#[test]
fn random_placement_is_drawn_anew_every_epoch_and_reproduces() {
    // Short two-channel clips (0.1 s of a 1 kHz burst) placed in 0.5 s.
    let burst: Vec<f32> = (0..2205)
        .map(|t| (t as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 22050.0).sin())
        .collect();
    let clips: Vec<Features> = (0..4)
        .map(|_| Features {
            data: [burst.clone(), burst.clone()].concat(),
            channels: 2,
            n_mels: 1,
            frames: burst.len(),
        })
        .collect();
    let augment = AugmentConfig {
        random_placement: true,
        ..Default::default()
    };
    let config = LoaderConfig {
        batch_size: 4,
        shuffle: false,
        seed: 7,
        ..Default::default()
    };
    let l = loader(clips.clone(), augment, Normalization::None, config);
    let ex = extractor();
    // The loudest frame of example 0's first channel, per epoch.
    let peak = |b: &Batch| {
        let [_, _, m, t] = b.shape;
        (0..t)
            .max_by(|&x, &y| {
                let e = |f: usize| (0..m).map(|r| b.data[r * t + f]).sum::<f32>();
                e(x).total_cmp(&e(y))
            })
            .unwrap()
    };
    let mut peaks = Vec::new();
    for epoch in 0..6 {
        let batch = &collect(&l, epoch)[0];
        assert_eq!(batch.shape, [4, 2, 64, ex.n_frames(11025)]);
        // Each example is its clip placed by a generator of (seed, epoch,
        // example), the same offset on both channels.
        for (i, clip) in clips.iter().enumerate() {
            let mut rng = hark_data::example_rng(7, epoch, i as u64);
            let placed = ex.place_with(clip, hark_dsp::Placement::Random, &mut rng);
            assert_eq!(placed.frames, 11025);
            let want = ex.transform(&placed).unwrap();
            let size = want.data.len();
            assert_eq!(batch.data[i * size..(i + 1) * size], want.data[..]);
            let (left, right) = want.data.split_at(size / 2);
            assert_eq!(left, right);
        }
        assert_eq!(collect(&l, epoch)[0], *batch, "epoch {epoch} reproduces");
        peaks.push(peak(batch));
    }
    peaks.dedup();
    assert!(
        peaks.len() >= 4,
        "the offset moves between epochs: {peaks:?}"
    );
}
