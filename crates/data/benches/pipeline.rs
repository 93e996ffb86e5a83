//! The whole feature pipeline (decode -> resample -> log-mel) over the demo
//! corpus, cold (computing every clip) and warm (reading the cache).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hark_data::{
    FeatureCache, FeatureConfig, FeatureExtractor, LoadOptions, NoProgress, Stage, SynthConfig,
    extract_all, generate_urban_synth, load_urbansound8k,
};

const CLIPS: usize = 200;

fn bench_pipeline(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    generate_urban_synth(
        dir.path(),
        &SynthConfig {
            clips: CLIPS,
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let ds = load_urbansound8k(dir.path(), &LoadOptions::default()).unwrap();
    let cfg = FeatureConfig::default();
    let extractor = FeatureExtractor::new(&cfg).unwrap();
    let cache = FeatureCache::new(&dir.path().join("cache"), &cfg);
    extract_all(
        &ds,
        &extractor,
        Stage::LogMel,
        Some(&cache),
        true,
        &NoProgress,
    )
    .unwrap();

    let mut group = c.benchmark_group("pipeline_urban_synth_4s");
    group.throughput(Throughput::Elements(CLIPS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("cold", |b| {
        b.iter(|| extract_all(&ds, &extractor, Stage::LogMel, None, true, &NoProgress).unwrap())
    });
    group.bench_function("warm_cache", |b| {
        b.iter(|| {
            extract_all(
                &ds,
                &extractor,
                Stage::LogMel,
                Some(&cache),
                true,
                &NoProgress,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
