//! Criterion benchmarks of one training step (forward, backward and an SGD
//! update; batch 16) and of inference (batch 16 and batch 1) for AudioCnn on
//! `[16, 2, 64, 344]` and Crnn on `[16, 1, 128, 173]`, on 1 and 2 threads:
//! the PyTorch comparison of issue 4 (`pytorch_cpu_bench.json`). The snap
//! detector's step (SnapRnn, batch 8, 40 mels, T = 50 and 173, 1 thread)
//! is issue 13's: PyTorch 2.11 trains it at 1,378 and 491 samples/s.

use std::hint::black_box;

// The allocator the hark binary uses: glibc's returns the large activation
// buffers to the OS after every step, and the page faults of refilling them
// cost a third of a CRNN step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hark_models::{FrameStream, InputShape, Model, ModelSpec, cross_entropy};

/// The two reference models with their benchmark inputs.
fn cases() -> [(&'static str, ModelSpec, InputShape); 2] {
    [
        (
            "audio_cnn",
            ModelSpec::AudioCnn(Default::default()),
            InputShape {
                channels: 2,
                height: 64,
                frames: 344,
            },
        ),
        (
            "crnn",
            ModelSpec::Crnn(Default::default()),
            InputShape {
                channels: 1,
                height: 128,
                frames: 173,
            },
        ),
    ]
}

fn input(shape: InputShape, batch: usize) -> Tensor {
    let n = batch * shape.channels * shape.height * shape.frames;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.618).fract() * 2.0 - 1.0)
        .collect();
    Tensor::from_vec(
        v,
        (batch, shape.channels, shape.height, shape.frames),
        &Device::Cpu,
    )
    .unwrap()
}

/// Forward in train mode, cross-entropy, backward and `w -= 1e-3 * g`.
fn train_step(model: &Model, x: &Tensor, labels: &[usize]) {
    let loss = cross_entropy(&model.forward_masked(x, None, true).unwrap(), labels).unwrap();
    let grads = loss.backward().unwrap();
    for (_, var) in model.params().trainable() {
        if let Some(g) = grads.get(var.as_tensor()) {
            var.set(&(var.as_tensor() - (g * 1e-3).unwrap()).unwrap())
                .unwrap();
        }
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn bench_train(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step_b16");
    group.sample_size(10).throughput(Throughput::Elements(16));
    for (name, spec, shape) in cases() {
        let model = Model::new(&spec, 10, shape, 0).unwrap();
        let x = input(shape, 16);
        let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();
        for threads in [1, 2] {
            let pool = pool(threads);
            group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                pool.install(|| b.iter(|| train_step(&model, black_box(&x), &labels)))
            });
        }
    }
    group.finish();
}

fn bench_infer(c: &mut Criterion) {
    for batch in [16, 1] {
        let mut group = c.benchmark_group(format!("infer_b{batch}"));
        group
            .sample_size(10)
            .throughput(Throughput::Elements(batch as u64));
        for (name, spec, shape) in cases() {
            let model = Model::new(&spec, 10, shape, 0).unwrap();
            let x = input(shape, batch);
            for threads in [1, 2] {
                let pool = pool(threads);
                group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                    pool.install(|| {
                        b.iter(|| model.forward_masked(black_box(&x), None, false).unwrap())
                    })
                });
            }
        }
        group.finish();
    }
}

fn bench_snap(c: &mut Criterion) {
    let mut group = c.benchmark_group("snap_rnn_train_b8");
    group.sample_size(20).throughput(Throughput::Elements(8));
    let pool = pool(1);
    for frames in [50, 173] {
        let shape = InputShape {
            channels: 1,
            height: 40,
            frames,
        };
        let model = Model::new(&ModelSpec::SnapRnn(Default::default()), 2, shape, 0).unwrap();
        let x = input(shape, 8);
        let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
        group.bench_function(BenchmarkId::new("1t", frames), |b| {
            pool.install(|| b.iter(|| train_step(&model, black_box(&x), &labels)))
        });
    }
    group.finish();
}

/// One streamed frame through SnapRnn (40 mels, 50-frame window, `max`
/// time pooling as in configs/snap-rnn.toml): a step of its recurrent
/// stream, and a whole window evaluated from a zero state (what `hark
/// listen` runs per hop with a per-window normalisation).
fn bench_snap_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("snap_rnn_stream");
    let shape = InputShape {
        channels: 1,
        height: 40,
        frames: 50,
    };
    let spec = ModelSpec::SnapRnn(hark_models::SnapRnnConfig {
        time_pool: hark_models::TimePool::Max,
        ..Default::default()
    });
    let model = Model::new(&spec, 2, shape, 0).unwrap();
    let frames: Vec<f32> = input(shape, 1).flatten_all().unwrap().to_vec1().unwrap();
    let mut stream = model.recurrent_stream().unwrap().unwrap();
    let mut rows = frames.chunks_exact(40).cycle();
    group.bench_function("recurrent_step", |b| {
        b.iter(|| {
            stream
                .push(black_box(rows.next().unwrap()))
                .unwrap()
                .map(|p| p[1])
        })
    });
    let mut windows = hark_models::WindowStream::new(&model, 1, Box::new(|_| {})).unwrap();
    let mut rows = frames.chunks_exact(40).cycle();
    for _ in 0..50 {
        windows.push(rows.next().unwrap()).unwrap();
    }
    group.bench_function("window_per_frame", |b| {
        b.iter(|| {
            windows
                .push(black_box(rows.next().unwrap()))
                .unwrap()
                .map(|p| p[1])
        })
    });
    group.finish();
}

/// VggMini's training step at batch 32 on 64 x 301 inputs, 1 thread: issue
/// 14's comparison (PyTorch 2.11: 59 samples/s).
fn bench_vgg_mini(c: &mut Criterion) {
    let mut group = c.benchmark_group("vgg_mini_train_b32");
    group.sample_size(10).throughput(Throughput::Elements(32));
    let shape = InputShape {
        channels: 1,
        height: 64,
        frames: 301,
    };
    let model = Model::new(&ModelSpec::VggMini(Default::default()), 10, shape, 0).unwrap();
    let x = input(shape, 32);
    let labels: Vec<usize> = (0..32).map(|i| i % 10).collect();
    let pool = pool(1);
    group.bench_function("1t", |b| {
        pool.install(|| b.iter(|| train_step(&model, black_box(&x), &labels)))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_train,
    bench_infer,
    bench_snap,
    bench_snap_stream,
    bench_vgg_mini
);
criterion_main!(benches);
