//! The urban-synth demo corpus: UrbanSound8K layout, determinism, the mix of
//! rates, channels and encodings, and that it is learnable but not trivially
//! separable.

use std::collections::{BTreeMap, BTreeSet};

use hark_data::{
    Codec, FeatureConfig, FeatureExtractor, LoadOptions, NoProgress, Stage, SynthConfig,
    URBANSOUND8K_CLASSES, extract_all, generate_urban_synth, inspect, load_urbansound8k,
};
use tempfile::TempDir;

fn corpus(clips: usize, seed: u64) -> TempDir {
    let dir = TempDir::new().unwrap();
    generate_urban_synth(
        dir.path(),
        &SynthConfig {
            clips,
            max_seconds: 1.0,
            seed,
            ..Default::default()
        },
    )
    .unwrap();
    dir
}

#[test]
fn it_writes_urbansound8k_layout_with_recordings_kept_in_one_fold() {
    let dir = corpus(150, 1);
    let ds = load_urbansound8k(
        dir.path(),
        &LoadOptions {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ds.examples.len(), 150);
    assert_eq!(ds.classes, URBANSOUND8K_CLASSES);
    assert!(
        ds.class_counts().iter().all(|&c| c >= 8),
        "{:?}",
        ds.class_counts()
    );
    let folds: BTreeSet<u32> = ds.examples.iter().filter_map(|e| e.fold).collect();
    assert_eq!(folds, (1..=10).collect());
    let mut fold_of: BTreeMap<&str, u32> = BTreeMap::new();
    for e in &ds.examples {
        assert_eq!(
            *fold_of.entry(&e.group).or_insert(e.fold.unwrap()),
            e.fold.unwrap(),
            "fsID {} spans folds",
            e.group
        );
    }
    assert!(fold_of.len() < 150, "recordings have several slices");
    let infos: Vec<_> = ds
        .examples
        .iter()
        .map(|e| inspect(&e.path).unwrap())
        .collect();
    let rates: BTreeSet<u32> = infos.iter().map(|i| i.sample_rate).collect();
    let codecs: BTreeSet<(Codec, u16)> =
        infos.iter().map(|i| (i.codec, i.bits_per_sample)).collect();
    assert!(rates.len() >= 5, "{rates:?}");
    assert!(infos.iter().any(|i| i.channels == 2) && infos.iter().any(|i| i.channels == 1));
    assert!(
        codecs.contains(&(Codec::ImaAdpcm, 4)) && codecs.contains(&(Codec::Pcm, 16)),
        "{codecs:?}"
    );
    assert!(codecs.len() >= 4, "{codecs:?}");
}

#[test]
fn the_same_seed_writes_the_same_corpus() {
    let (a, b, c) = (corpus(30, 7), corpus(30, 7), corpus(30, 8));
    let read = |d: &TempDir, p: &str| std::fs::read(d.path().join(p)).unwrap();
    let csv = "metadata/UrbanSound8K.csv";
    assert_eq!(read(&a, csv), read(&b, csv));
    assert_ne!(read(&a, csv), read(&c, csv));
    let ds = load_urbansound8k(a.path(), &LoadOptions::default()).unwrap();
    for e in ds.examples.iter().take(10) {
        let rel = e.path.strip_prefix(a.path()).unwrap();
        assert_eq!(
            std::fs::read(&e.path).unwrap(),
            read(&b, rel.to_str().unwrap()),
            "{}",
            rel.display()
        );
    }
}

#[test]
fn nearest_centroid_on_the_mean_log_mel_shape_is_above_chance_but_well_below_perfect() {
    let dir = corpus(400, 3);
    let ds = load_urbansound8k(dir.path(), &LoadOptions::default()).unwrap();
    let cfg = FeatureConfig {
        duration: None,
        mel: hark_dsp::MelSpectrogramConfig {
            sample_rate: 16000,
            ..FeatureConfig::default().mel
        },
        ..Default::default()
    };
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let feats = extract_all(&ds, &extractor, Stage::LogMel, None, true, &NoProgress).unwrap();
    let means: Vec<Vec<f64>> = feats
        .features
        .iter()
        .map(|f| {
            let f = f.as_ref().unwrap();
            let profile: Vec<f64> = f
                .data
                .chunks_exact(f.frames)
                .map(|row| row.iter().map(|&v| v as f64).sum::<f64>() / f.frames as f64)
                .collect();
            // The spectral shape: each clip's level (a random gain) removed.
            let level = profile.iter().sum::<f64>() / profile.len() as f64;
            profile.iter().map(|v| v - level).collect()
        })
        .collect();
    let (mut correct, mut total) = (0, 0);
    for test_fold in 1..=10 {
        let mut centroids = vec![vec![0.0; 64]; 10];
        let mut counts = [0usize; 10];
        for (e, m) in ds
            .examples
            .iter()
            .zip(&means)
            .filter(|(e, _)| e.fold != Some(test_fold))
        {
            counts[e.label] += 1;
            centroids[e.label]
                .iter_mut()
                .zip(m)
                .for_each(|(c, v)| *c += v);
        }
        for (c, n) in centroids.iter_mut().zip(counts) {
            c.iter_mut().for_each(|v| *v /= n.max(1) as f64);
        }
        for (e, m) in ds
            .examples
            .iter()
            .zip(&means)
            .filter(|(e, _)| e.fold == Some(test_fold))
        {
            let dist = |c: &Vec<f64>| c.iter().zip(m).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
            let guess = (0..10)
                .min_by(|&a, &b| dist(&centroids[a]).total_cmp(&dist(&centroids[b])))
                .unwrap();
            correct += usize::from(guess == e.label);
            total += 1;
        }
    }
    let acc = correct as f64 / total as f64;
    assert!(acc > 0.2 && acc < 0.85, "nearest-centroid accuracy {acc}");
}

#[test]
fn short_slices_work_and_a_length_too_short_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        clips: 20,
        folds: 2,
        max_seconds: 0.3,
        seed: 2,
    };
    generate_urban_synth(dir.path(), &config).unwrap();
    let ds = load_urbansound8k(dir.path(), &LoadOptions::default()).unwrap();
    for e in &ds.examples {
        let seconds = inspect(&e.path).unwrap().duration_secs();
        assert!((0.149..=0.301).contains(&seconds), "{seconds}");
    }
    let err = generate_urban_synth(
        dir.path(),
        &SynthConfig {
            max_seconds: 0.0,
            ..config
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_seconds"), "{err}");
}
