//! Criterion benchmarks of hark-dsp's hot paths: log-mel of one 4 s clip (the
//! torchaudio comparison of issue 2), STFT alone, a batch of clips on 1 and 2
//! threads, resampling, and the streaming front end one hop at a time.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hark_dsp::{
    DbConfig, LogMelSpectrogram, LogMelStream, MelSpectrogramConfig, ResamplerCache, StftConfig,
    StftPlan, StreamResampler,
};
use std::hint::black_box;

/// A 4 s test signal: a tone, a sweep and pseudo-random noise.
fn clip(sample_rate: u32) -> Vec<f32> {
    let n = 4 * sample_rate as usize;
    let mut state = 0x2545_f491_u32;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let t = i as f32 / sample_rate as f32;
            0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + 0.3 * (2.0 * std::f32::consts::PI * (100.0 + 1000.0 * t) * t).sin()
                + 0.05 * (state as f32 / u32::MAX as f32 - 0.5)
        })
        .collect()
}

/// The seed 001 feature: n_fft 1024, hop 512, 64 mels, power dB with top_db 80.
fn logmel(sample_rate: u32) -> LogMelSpectrogram {
    let cfg = MelSpectrogramConfig {
        sample_rate,
        n_fft: 1024,
        hop_length: Some(512),
        n_mels: 64,
        ..Default::default()
    };
    LogMelSpectrogram::new(&cfg, &DbConfig::default()).unwrap()
}

fn bench_logmel(c: &mut Criterion) {
    let mut group = c.benchmark_group("logmel_4s");
    for sr in [22050, 44100] {
        let x = clip(sr);
        let plan = logmel(sr);
        let mut scratch = plan.make_scratch();
        let mut out = vec![0.0; plan.output_len(x.len())];
        group.bench_with_input(BenchmarkId::new("process_into", sr), &x, |b, x| {
            b.iter(|| {
                plan.process_into(black_box(x), &mut out, &mut scratch)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("process", sr), &x, |b, x| {
            b.iter(|| plan.process(black_box(x)).unwrap())
        });
    }
    group.finish();
}

fn bench_stft(c: &mut Criterion) {
    let mut group = c.benchmark_group("stft_power_4s");
    let x = clip(22050);
    let plan = StftPlan::new(&StftConfig {
        n_fft: 1024,
        hop_length: Some(512),
        ..Default::default()
    })
    .unwrap();
    let mut scratch = plan.make_scratch();
    let mut out = vec![0.0; plan.n_freqs() * plan.n_frames(x.len())];
    group.bench_function("22050", |b| {
        b.iter(|| {
            plan.power_into(black_box(&x), 2.0, &mut out, &mut scratch)
                .unwrap()
        })
    });
    group.finish();
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("logmel_batch_32x4s_22050");
    let clips: Vec<Vec<f32>> = (0..32).map(|_| clip(22050)).collect();
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let plan = logmel(22050);
    group.throughput(Throughput::Elements(refs.len() as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter(|| pool.install(|| plan.process_batch(black_box(&refs))))
        });
    }
    group.finish();
}

fn bench_resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_4s");
    for (from, to) in [(44100, 22050), (48000, 16000), (44100, 16000)] {
        let x = clip(from);
        let mut cache = ResamplerCache::new();
        cache.resample(&x, from, to).unwrap();
        group.bench_function(format!("{from}->{to}"), |b| {
            b.iter(|| cache.resample(black_box(&x), from, to).unwrap())
        });
    }
    group.finish();
}

/// One hop of seed 000's front end: 512 samples in, one 40-band frame out
/// (`hop_22k`), and the same hop arriving at 48 kHz through the stream
/// resampler (`hop_48k`).
fn bench_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("logmel_stream");
    group.throughput(Throughput::Elements(1));
    let cfg = MelSpectrogramConfig {
        sample_rate: 22050,
        n_fft: 1024,
        hop_length: Some(512),
        n_mels: 40,
        ..Default::default()
    };
    let x22 = clip(22050);
    let mut stream = LogMelStream::new(&cfg, &DbConfig::default()).unwrap();
    let mut hops = x22.chunks_exact(512).cycle();
    group.bench_function("hop_22k", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            stream.push(hops.next().unwrap(), |f| sum += f[0]).unwrap();
            black_box(sum)
        })
    });
    let x48 = clip(48000);
    let mut resampler = StreamResampler::new(48000, 22050).unwrap();
    let mut hops = x48.chunks_exact(1115).cycle();
    group.bench_function("hop_48k", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            resampler
                .push(hops.next().unwrap(), |out| {
                    stream.push(out, |f| sum += f[0]).unwrap();
                })
                .unwrap();
            black_box(sum)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_logmel,
    bench_stft,
    bench_batch,
    bench_resample,
    bench_stream
);
criterion_main!(benches);
