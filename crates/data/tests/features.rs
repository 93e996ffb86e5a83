//! The feature pipeline and its cache: equal to hark-dsp applied by hand,
//! channel handling, chunk spans, and cache hits, misses, invalidation and
//! corruption recovery.

use std::path::{Path, PathBuf};

use hark_data::{
    Audio, CacheLookup, Dataset, Encoding, Example, FeatureCache, FeatureConfig, FeatureExtractor,
    NoProgress, Span, Stage, extract_all, write_wav,
};
use hark_dsp::{LogMelSpectrogram, ResamplerCache, mix_down_interleaved, resample};
use tempfile::TempDir;

fn tone(channels: usize, sample_rate: u32, seconds: f64) -> Audio {
    let frames = (seconds * sample_rate as f64) as usize;
    let samples = (0..frames * channels)
        .map(|i| {
            let (f, c) = (i / channels, i % channels);
            0.4 * (2.0 * std::f32::consts::PI * (300.0 + 200.0 * c as f32) * f as f32
                / sample_rate as f32)
                .sin()
        })
        .collect();
    Audio {
        samples,
        channels,
        sample_rate,
    }
}

fn example(path: PathBuf) -> Example {
    Example::new(path, 0, "g".into())
}

fn write(dir: &Path, name: &str, audio: &Audio) -> PathBuf {
    let path = dir.join(name);
    write_wav(&path, audio, Encoding::F32).unwrap();
    path
}

#[test]
fn mono_features_equal_hark_dsp_applied_by_hand() {
    let dir = TempDir::new().unwrap();
    let audio = tone(2, 44100, 3.0);
    let path = write(dir.path(), "a.wav", &audio);
    let cfg = FeatureConfig::default();
    let got = FeatureExtractor::new(&cfg)
        .unwrap()
        .extract(&example(path), &mut ResamplerCache::new())
        .unwrap();
    assert_eq!(got.shape(), [1, 64, 173]);
    let mono = mix_down_interleaved(&audio.samples, 2).unwrap();
    let mut x = resample(&mono, 44100, 22050).unwrap();
    x.resize(88200, 0.0);
    let want = LogMelSpectrogram::new(&cfg.mel, &cfg.db)
        .unwrap()
        .process(&x)
        .unwrap();
    assert_eq!(got.data, want.as_slice());
}

#[test]
fn two_channels_duplicate_mono_and_keep_stereo() {
    let dir = TempDir::new().unwrap();
    let cfg = FeatureConfig {
        channels: 2,
        duration: Some(1.0),
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let mono = extractor
        .extract(
            &example(write(dir.path(), "m.wav", &tone(1, 22050, 1.0))),
            &mut ResamplerCache::new(),
        )
        .unwrap();
    let plane = mono.n_mels * mono.frames;
    assert_eq!(mono.data[..plane], mono.data[plane..]);
    let stereo = extractor
        .extract(
            &example(write(dir.path(), "s.wav", &tone(2, 22050, 1.0))),
            &mut ResamplerCache::new(),
        )
        .unwrap();
    assert_ne!(stereo.data[..plane], stereo.data[plane..]);
}

#[test]
fn a_span_extracts_that_part_of_the_file_zero_padding_past_its_end() {
    let dir = TempDir::new().unwrap();
    let audio = tone(1, 22050, 3.0);
    let path = write(dir.path(), "long.wav", &audio);
    let cut = Audio {
        samples: audio.samples[22050..].to_vec(),
        ..audio.clone()
    };
    let cut_path = write(dir.path(), "cut.wav", &cut);
    let cfg = FeatureConfig {
        duration: None,
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let mut chunk = example(path);
    chunk.span = Some(Span {
        start: 1.0,
        end: 4.0,
    });
    let got = extractor
        .extract(&chunk, &mut ResamplerCache::new())
        .unwrap();
    let mut padded = cut.clone();
    padded.samples.resize(3 * 22050, 0.0);
    let want = extractor
        .extract(
            &example(write(dir.path(), "padded.wav", &padded)),
            &mut ResamplerCache::new(),
        )
        .unwrap();
    assert_eq!(got, want);
    let unpadded = extractor
        .extract(&example(cut_path), &mut ResamplerCache::new())
        .unwrap();
    assert!(unpadded.frames < got.frames);
    for (start, end) in [(2.0, 2.0), (3.5, 4.0), (-1.0, 1.0)] {
        let mut bad = chunk.clone();
        bad.span = Some(Span { start, end });
        let err = extractor
            .extract(&bad, &mut ResamplerCache::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("long.wav") && err.contains("is empty or starts past"),
            "{err}"
        );
    }
}

fn dataset(paths: Vec<PathBuf>) -> Dataset {
    Dataset {
        kind: "test".into(),
        classes: vec!["a".into()],
        examples: paths.into_iter().map(example).collect(),
        folds: None,
        skipped: vec![],
    }
}

#[test]
fn the_cache_hits_misses_on_any_change_and_recovers_from_corruption() {
    let dir = TempDir::new().unwrap();
    let cache_dir = dir.path().join("cache");
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| {
            write(
                dir.path(),
                &format!("{i}.wav"),
                &tone(1, 16000, 0.5 + i as f64 * 0.1),
            )
        })
        .collect();
    let ds = dataset(paths.clone());
    let cfg = FeatureConfig {
        duration: Some(0.5),
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let cache = FeatureCache::new(&cache_dir, &cfg);
    let run = || {
        extract_all(
            &ds,
            &extractor,
            Stage::LogMel,
            Some(&cache),
            false,
            &NoProgress,
        )
        .unwrap()
    };
    let cold = run();
    assert_eq!((cold.cache_hits, cold.computed), (0, 4));
    let warm = run();
    assert_eq!((warm.cache_hits, warm.computed), (4, 0));
    assert_eq!(warm.features, cold.features);

    // Truncated and bit-flipped entries are detected and recomputed.
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for (i, entry) in entries.iter().enumerate().take(2) {
        let mut bytes = std::fs::read(entry).unwrap();
        if i == 0 {
            bytes.truncate(bytes.len() - 7);
        } else {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
        }
        std::fs::write(entry, bytes).unwrap();
    }
    let again = run();
    assert_eq!((again.cache_hits, again.computed, again.corrupt), (2, 2, 2));

    // Any feature parameter misses.
    let other = FeatureConfig {
        mel: hark_dsp::MelSpectrogramConfig {
            n_mels: 40,
            ..cfg.mel.clone()
        },
        ..cfg.clone()
    };
    assert_eq!(
        FeatureCache::new(&cache_dir, &other)
            .lookup(&ds.examples[0], Stage::LogMel)
            .unwrap(),
        Err(CacheLookup::Miss)
    );
    // A rewritten file misses.
    write(dir.path(), "1.wav", &tone(1, 16000, 0.9));
    assert_eq!(
        cache.lookup(&ds.examples[1], Stage::LogMel).unwrap(),
        Err(CacheLookup::Miss)
    );
    let again = run();
    assert_eq!((again.cache_hits, again.computed, again.corrupt), (3, 1, 0));
    let fresh = extract_all(&ds, &extractor, Stage::LogMel, None, false, &NoProgress).unwrap();
    assert_eq!(again.features, fresh.features, "never garbage");
}

#[test]
fn a_bad_file_is_skipped_or_fails_the_run_under_strict() {
    let dir = TempDir::new().unwrap();
    let good = write(dir.path(), "good.wav", &tone(1, 8000, 0.3));
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, b"RIFF....WAVEjunk").unwrap();
    let ds = dataset(vec![good, bad.clone()]);
    let extractor = FeatureExtractor::new(&FeatureConfig::default()).unwrap();
    let out = extract_all(&ds, &extractor, Stage::LogMel, None, false, &NoProgress).unwrap();
    assert!(out.features[0].is_some() && out.features[1].is_none());
    assert_eq!(out.failed.len(), 1);
    assert!(
        out.failed[0].reason.contains("bad.wav"),
        "{}",
        out.failed[0].reason
    );
    let err = extract_all(&ds, &extractor, Stage::LogMel, None, true, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.wav"), "{err}");
}

#[test]
fn the_waveform_stage_caches_separately_and_its_log_mel_equals_the_full_pipeline() {
    let dir = TempDir::new().unwrap();
    let ds = dataset(vec![write(dir.path(), "w.wav", &tone(2, 44100, 1.2))]);
    let cfg = FeatureConfig {
        channels: 2,
        duration: Some(1.0),
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let cache = FeatureCache::new(&dir.path().join("c"), &cfg);
    let wave = extract_all(
        &ds,
        &extractor,
        Stage::Waveform,
        Some(&cache),
        false,
        &NoProgress,
    )
    .unwrap();
    let w = wave.features[0].as_ref().unwrap();
    assert_eq!((w.channels, w.n_mels, w.frames), (2, 1, 22050));
    assert_eq!(
        cache.lookup(&ds.examples[0], Stage::LogMel).unwrap(),
        Err(CacheLookup::Miss)
    );
    // The waveform entry is there, under its own stage.
    assert_eq!(
        cache
            .lookup(&ds.examples[0], Stage::Waveform)
            .unwrap()
            .as_ref(),
        Ok(w)
    );
    let full = extractor
        .extract(&ds.examples[0], &mut ResamplerCache::new())
        .unwrap();
    assert_eq!(extractor.transform(w).unwrap(), full);
}

#[test]
fn invalid_feature_configs_are_errors() {
    let err = FeatureExtractor::new(&FeatureConfig {
        channels: 0,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert_eq!(err, "invalid channels: must be > 0, got 0");
    assert!(
        FeatureExtractor::new(&FeatureConfig {
            duration: Some(-1.0),
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn the_resampled_stage_is_the_whole_clip_and_placing_it_gives_the_waveform_stage() {
    let dir = TempDir::new().unwrap();
    let ds = dataset(vec![
        write(dir.path(), "short.wav", &tone(2, 44100, 0.6)),
        write(dir.path(), "long.wav", &tone(2, 44100, 1.7)),
    ]);
    let cfg = FeatureConfig {
        channels: 2,
        duration: Some(1.0),
        placement: hark_dsp::Placement::Random,
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let cache = FeatureCache::new(&dir.path().join("c"), &cfg);
    let stage = |stage| {
        extract_all(&ds, &extractor, stage, Some(&cache), false, &NoProgress)
            .unwrap()
            .features
    };
    let whole = stage(Stage::Resampled);
    let fixed = stage(Stage::Waveform);
    for (i, seconds) in [0.6, 1.7].into_iter().enumerate() {
        let w = whole[i].as_ref().unwrap();
        assert_eq!(
            (w.channels, w.frames),
            (2, (seconds * 22050.0f64).round() as usize)
        );
        let placed = extractor.place(w, &ds.examples[i].path, 0);
        assert_eq!(Some(&placed), fixed[i].as_ref(), "clip {i}");
        // Further crops (augment.test_crops) are other seeded placements.
        let crop = |k| extractor.place(w, &ds.examples[i].path, k);
        let [c0, c1, c2] = [0, 1, 2].map(crop);
        assert!(c0 != c1 && c1 != c2 && c0 != c2, "clip {i}");
        assert_eq!(c2, crop(2));
        // Cached under its own stage.
        assert_eq!(
            cache.lookup(&ds.examples[i], Stage::Resampled).unwrap(),
            Ok(w.clone())
        );
    }
}
