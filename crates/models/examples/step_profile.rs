//! Times training steps of a reference model, for profiling:
//! `cargo run --release -p hark-models --example step_profile -- crnn 10`;
//! `snap_rnn 50 173` times the snap detector (batch 8, 2 classes) on 173
//! frames; `vgg_mini` is VggMini at batch 32 on 64 x 301 inputs.

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor};
use hark_models::{InputShape, Model, ModelSpec, cross_entropy};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "audio_cnn".into());
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let frames: Option<usize> = args.next().and_then(|s| s.parse().ok());
    let (batch, classes) = match which.as_str() {
        "snap_rnn" => (8, 2),
        "vgg_mini" => (32, 10),
        _ => (16, 10),
    };
    let (spec, mut shape) = match which.as_str() {
        "snap_rnn" => (
            ModelSpec::SnapRnn(Default::default()),
            InputShape {
                channels: 1,
                height: 40,
                frames: 50,
            },
        ),
        "vgg_mini" => (
            ModelSpec::VggMini(Default::default()),
            InputShape {
                channels: 1,
                height: 64,
                frames: 301,
            },
        ),
        "crnn" => (
            ModelSpec::Crnn(Default::default()),
            InputShape {
                channels: 1,
                height: 128,
                frames: 173,
            },
        ),
        _ => (
            ModelSpec::AudioCnn(Default::default()),
            InputShape {
                channels: 2,
                height: 64,
                frames: 344,
            },
        ),
    };
    if let Some(frames) = frames {
        shape.frames = frames;
    }
    let model = Model::new(&spec, classes, shape, 0).unwrap();
    let n = batch * shape.channels * shape.height * shape.frames;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.618).fract() * 2.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(
        v,
        (batch, shape.channels, shape.height, shape.frames),
        &Device::Cpu,
    )
    .unwrap();
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let mut times = Vec::new();
    for _ in 0..steps {
        let t0 = Instant::now();
        let logits = model.forward_masked(&x, None, true).unwrap();
        let loss = cross_entropy(&logits, &labels).unwrap();
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        for (_, var) in model.params().trainable() {
            if let Some(g) = grads.get(var.as_tensor()) {
                var.set(&(var.as_tensor() - (g * 1e-3).unwrap()).unwrap())
                    .unwrap();
            }
        }
        times.push((
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t0.elapsed().as_secs_f64(),
        ));
    }
    let median = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = times.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    println!(
        "{which} {shape:?} batch {batch}: {:.0} samples/s",
        batch as f64 / median(|t| t.2) * 1e3
    );
    println!(
        "median of {steps}: forward {:.2} ms, backward {:.2} ms, step {:.2} ms",
        median(|t| t.0),
        median(|t| t.1),
        median(|t| t.2)
    );
}
