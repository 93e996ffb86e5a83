//! Every reference model against PyTorch 2.11: load its state_dict, then
//! match the eval-mode logits, the train-mode loss and logits, every
//! parameter's gradient and the BatchNorm running statistics after one
//! training forward.
//!
//! The fixtures in `tests/data` are copied from the project's golden set
//! (`golden/models`, made by `make_model_fixtures.py` with torch 2.11.0,
//! seed 0, one thread; `manifest.json` there describes each file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hark_models::{
    AudioCnnConfig, CrnnConfig, InputShape, Model, ModelSpec, SnapRnnConfig, build, cross_entropy,
    read_tensors,
};

/// Eval-mode logits: the bar.
const OUTPUT_TOL: f32 = 1e-4;
/// Train-mode loss.
const LOSS_TOL: f32 = 1e-5;
/// Gradients, relative to each parameter's largest reference gradient.
const GRAD_REL_TOL: f32 = 1e-3;
/// Gradients that are mathematically zero (conv bias before train-mode BN).
const ZERO_GRAD_ABS_TOL: f32 = 1e-3;
/// Running statistics after one training forward.
const STATS_TOL: f32 = 1e-5;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn npy(name: &str) -> Tensor {
    Tensor::read_npy(data(name)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn labels(name: &str) -> Vec<usize> {
    npy(name)
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

fn train_loss(name: &str) -> f32 {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["loss"].as_f64().unwrap() as f32
}

struct Case {
    name: &'static str,
    spec: ModelSpec,
    input: InputShape,
    n_classes: usize,
    lengths: Option<Vec<usize>>,
    zero_grads: &'static [&'static str],
}

fn model(case: &Case) -> Model {
    let m = Model::new(&case.spec, case.n_classes, case.input, 0).unwrap();
    m.load(&data(&format!("{}.state_dict.safetensors", case.name)))
        .unwrap();
    m
}

fn check(case: Case) {
    let n = case.name;
    let x = npy(&format!("{n}.input.npy"));
    let lengths = case.lengths.as_deref();

    // The PyTorch state_dict straight through candle-nn's VarBuilder, as a
    // candle user loads it.
    let bytes = std::fs::read(data(&format!("{n}.state_dict.safetensors"))).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).unwrap();
    let net = build(&case.spec, case.n_classes, case.input, vb).unwrap();
    let eval = net.forward_masked(&x, lengths, false).unwrap();
    let d = max_abs_diff(&eval, &npy(&format!("{n}.eval_output.npy")));
    assert!(
        d < OUTPUT_TOL,
        "{n}: eval output through a VarBuilder off by {d}"
    );

    let eval = model(&case).forward_masked(&x, lengths, false).unwrap();
    let d = max_abs_diff(&eval, &npy(&format!("{n}.eval_output.npy")));
    assert!(d < OUTPUT_TOL, "{n}: eval output off by {d}");

    let m = model(&case);
    let logits = m.forward_masked(&x, lengths, true).unwrap();
    let d = max_abs_diff(&logits, &npy(&format!("{n}.train_output.npy")));
    assert!(d < OUTPUT_TOL, "{n}: train output off by {d}");
    let loss = cross_entropy(&logits, &labels(&format!("{n}.labels.npy"))).unwrap();
    let got: f32 = loss.to_scalar().unwrap();
    let want = train_loss(&format!("{n}.train_loss.json"));
    assert!((got - want).abs() < LOSS_TOL, "{n}: loss {got} vs {want}");

    let grads = loss.backward().unwrap();
    let reference = read_tensors(&data(&format!("{n}.grads.safetensors"))).unwrap();
    let trainable = m.params().trainable();
    assert_eq!(trainable.len(), reference.len(), "{n}: parameter count");
    for (name, var) in trainable {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{n}: no gradient for {name}"));
        let r = &reference[&name];
        let d = max_abs_diff(g, r);
        if case.zero_grads.contains(&name.as_str()) {
            assert!(
                d < ZERO_GRAD_ABS_TOL,
                "{n}: {name} (zero gradient) off by {d}"
            );
        } else {
            let scale = values(r).iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert!(
                d <= GRAD_REL_TOL * scale,
                "{n}: {name} gradient off by {d} (max {scale})"
            );
        }
    }

    let stats_path = data(&format!("{n}.running_stats_after.safetensors"));
    if stats_path.exists() {
        let after: HashMap<String, Tensor> = read_tensors(&stats_path).unwrap();
        let state: HashMap<String, Tensor> = m.params().state_dict().into_iter().collect();
        for (name, want) in &after {
            let got = &state[name];
            if name.ends_with("num_batches_tracked") {
                assert_eq!(
                    got.to_scalar::<i64>().unwrap(),
                    want.to_scalar::<i64>().unwrap(),
                    "{n}: {name}"
                );
            } else {
                let d = max_abs_diff(got, want);
                assert!(d < STATS_TOL, "{n}: {name} off by {d}");
            }
        }
    }
}

#[test]
fn audio_cnn_matches_pytorch() {
    check(Case {
        name: "audio_cnn",
        spec: ModelSpec::AudioCnn(AudioCnnConfig::default()),
        input: InputShape {
            channels: 2,
            height: 64,
            frames: 87,
        },
        n_classes: 10,
        lengths: None,
        zero_grads: &[],
    });
}

fn crnn_spec() -> ModelSpec {
    ModelSpec::Crnn(CrnnConfig {
        conv_dropout: 0.0,
        head_dropout: 0.0,
        ..Default::default()
    })
}

fn crnn_lengths() -> Vec<usize> {
    npy("crnn.lengths.npy")
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

#[test]
fn crnn_matches_pytorch_with_per_example_lengths() {
    check(Case {
        name: "crnn",
        spec: crnn_spec(),
        input: InputShape {
            channels: 1,
            height: 128,
            frames: 173,
        },
        n_classes: 10,
        lengths: Some(crnn_lengths()),
        zero_grads: &["conv1.bias", "conv2.bias", "conv3.bias"],
    });
}

#[test]
fn elman_rnn_matches_pytorch() {
    check(Case {
        name: "elman_rnn",
        spec: ModelSpec::SnapRnn(SnapRnnConfig::default()),
        input: InputShape {
            channels: 1,
            height: 40,
            frames: 50,
        },
        n_classes: 2,
        lengths: None,
        zero_grads: &[],
    });
}

#[test]
fn crnn_logits_do_not_change_with_padding() {
    let input = InputShape {
        channels: 1,
        height: 128,
        frames: 173,
    };
    let m = Model::new(&crnn_spec(), 10, input, 0).unwrap();
    m.load(&data("crnn.state_dict.safetensors")).unwrap();
    let x = npy("crnn.input.npy");
    let lengths = crnn_lengths();
    let single = npy("crnn.eval_output_single.npy");
    let batched = m.forward_masked(&x, Some(&lengths), false).unwrap();
    assert!(max_abs_diff(&batched, &single) < OUTPUT_TOL);
    for (i, &len) in lengths.iter().enumerate() {
        let xi = x.narrow(0, i, 1).unwrap().narrow(3, 0, len).unwrap();
        let alone = m.forward_masked(&xi, Some(&[len]), false).unwrap();
        let d = max_abs_diff(&alone, &single.narrow(0, i, 1).unwrap());
        assert!(d < OUTPUT_TOL, "example {i} alone off by {d}");
        // More padding than the batch had changes nothing either.
        let padded = Tensor::cat(
            &[
                &xi,
                &Tensor::zeros((1, 1, 128, 200), candle_core::DType::F32, xi.device()).unwrap(),
            ],
            3,
        )
        .unwrap();
        let p = m.forward_masked(&padded, Some(&[len]), false).unwrap();
        assert!(
            max_abs_diff(&p, &alone) < 1e-6,
            "example {i} with extra padding"
        );
    }
}
