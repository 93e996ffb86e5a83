//! Behaviour of every architecture: parameter counts, output shapes,
//! specs, summaries, streaming, and that each one can overfit a tiny batch.

use candle_core::{DType, Device, Tensor, Var};
use hark_models::{
    AudioCnnConfig, ConvBlock, CrnnConfig, Error, FrameStream, InputShape, Model, ModelSpec,
    Output, SmallCnnConfig, SnapRnnConfig, TimePool, VggConfig, VggMConfig, WindowStream,
    class_probabilities, cross_entropy, softmax,
};

fn shape(channels: usize, height: usize, frames: usize) -> InputShape {
    InputShape {
        channels,
        height,
        frames,
    }
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    // A cheap deterministic pseudo-normal sequence (sum of uniforms).
    let n: usize = dims.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let v: Vec<f32> = (0..n)
        .map(|_| (0..4).map(|_| next()).sum::<f32>() - 2.0)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn no_dropout_specs() -> Vec<(ModelSpec, InputShape)> {
    vec![
        (
            ModelSpec::AudioCnn(AudioCnnConfig::default()),
            shape(2, 64, 40),
        ),
        (
            ModelSpec::Crnn(CrnnConfig {
                conv_dropout: 0.0,
                head_dropout: 0.0,
                ..Default::default()
            }),
            shape(1, 96, 100),
        ),
        (
            ModelSpec::SmallCnn(SmallCnnConfig {
                dropout: 0.0,
                ..Default::default()
            }),
            shape(1, 32, 40),
        ),
        (
            ModelSpec::VggUltraMini(VggConfig {
                dropout: 0.0,
                ..Default::default()
            }),
            shape(1, 32, 32),
        ),
        (
            ModelSpec::VggMini(VggConfig {
                dropout: 0.0,
                ..Default::default()
            }),
            shape(1, 32, 32),
        ),
        (
            ModelSpec::VggMini(VggConfig {
                dropout: 0.0,
                head_norm: true,
            }),
            shape(1, 32, 32),
        ),
        (
            ModelSpec::VggPool(VggConfig {
                dropout: 0.0,
                ..Default::default()
            }),
            shape(1, 32, 32),
        ),
        (
            ModelSpec::VggM(VggMConfig {
                width: 0.125,
                dropout: 0.0,
            }),
            shape(1, 97, 65),
        ),
        (
            ModelSpec::SnapRnn(SnapRnnConfig::default()),
            shape(1, 40, 50),
        ),
    ]
}

#[test]
fn parameter_counts_equal_the_reference_models() {
    let quarter = VggMConfig {
        width: 0.25,
        ..Default::default()
    };
    // The reference models' counts, then the documented ones of the rest.
    for (spec, input, classes, params) in [
        (
            ModelSpec::AudioCnn(Default::default()),
            shape(2, 64, 344),
            10,
            25_602,
        ),
        // Twice as wide, counted by hand: convs 2*16*25 + 16, 16*32*9 + 32,
        // 32*64*9 + 64 and 64*128*9 + 128, their norms 2 per channel, lin
        // 128*10 + 10.
        (
            ModelSpec::AudioCnn(AudioCnnConfig {
                width: 2,
                ..Default::default()
            }),
            shape(2, 64, 344),
            10,
            816 + 4_640 + 18_496 + 73_856 + 2 * (16 + 32 + 64 + 128) + 1_290,
        ),
        (
            ModelSpec::Crnn(Default::default()),
            shape(1, 128, 173),
            10,
            139_786,
        ),
        (
            ModelSpec::SnapRnn(Default::default()),
            shape(1, 40, 50),
            2,
            4_597,
        ),
        (
            ModelSpec::SmallCnn(Default::default()),
            shape(1, 64, 87),
            10,
            23_946,
        ),
        (
            ModelSpec::VggUltraMini(Default::default()),
            shape(1, 64, 128),
            10,
            526_298,
        ),
        (
            ModelSpec::VggMini(Default::default()),
            shape(1, 64, 128),
            10,
            1_073_514,
        ),
        // The head's BatchNorm1d adds a weight and a bias per hidden unit.
        (
            ModelSpec::VggMini(VggConfig {
                head_norm: true,
                ..Default::default()
            }),
            shape(1, 64, 128),
            10,
            1_073_514 + 2 * 128,
        ),
        (
            ModelSpec::VggPool(Default::default()),
            shape(1, 64, 128),
            10,
            295_482,
        ),
        (
            ModelSpec::VggM(Default::default()),
            shape(1, 512, 300),
            1251,
            17_909_219,
        ),
        (ModelSpec::VggM(quarter), shape(1, 128, 128), 10, 521_546),
        // A stack from the config, counted by hand: conv1 1*16*25 + 16 and
        // bn1 32; 64 rows -> (64 - 5) / 2 + 1 = 30 -> pool 15; conv2
        // 16*32*9 + 32 and bn2 64; 15 -> 13 -> pool 6; LSTM on 32 * 6 = 192
        // features: 4*32*(192 + 32) + 2*4*32; bn_out 64; lin 32*10 + 10.
        (
            ModelSpec::Crnn(small_stack()),
            shape(1, 64, 100),
            10,
            416 + 32 + 4_640 + 64 + 28_928 + 64 + 330,
        ),
    ] {
        let m = Model::new(&spec, classes, input, 0).unwrap();
        assert_eq!(m.num_trainable(), params, "{spec:?}");
    }
    assert!(
        Model::new(
            &ModelSpec::VggM(Default::default()),
            10,
            shape(1, 96, 300),
            0
        )
        .is_err()
    );
    assert!(
        Model::new(
            &ModelSpec::VggM(Default::default()),
            10,
            shape(1, 97, 65),
            0
        )
        .is_ok()
    );
}

#[test]
fn outputs_are_batch_by_classes_for_several_input_sizes() {
    for (spec, input) in no_dropout_specs() {
        let m = Model::new(&spec, 7, input, 1).unwrap();
        for batch in [1, 3] {
            let x = randn(&[batch, input.channels, input.height, input.frames], 2);
            let y = m.forward_masked(&x, None, false).unwrap();
            assert_eq!(y.dims(), [batch, 7], "{spec:?}");
        }
    }
    // Models without a dense head take other clip lengths.
    for (spec, input, frames) in [
        (
            ModelSpec::AudioCnn(Default::default()),
            shape(2, 64, 344),
            [1usize, 17, 500],
        ),
        (
            ModelSpec::Crnn(Default::default()),
            shape(1, 128, 173),
            [80, 173, 431],
        ),
        (
            ModelSpec::SmallCnn(Default::default()),
            shape(1, 64, 87),
            [4, 87, 300],
        ),
        (
            ModelSpec::VggPool(Default::default()),
            shape(1, 64, 128),
            [16, 100, 301],
        ),
    ] {
        let m = Model::new(&spec, 10, input, 1).unwrap();
        for t in frames {
            let x = randn(&[2, input.channels, input.height, t], 3);
            assert_eq!(
                m.forward_masked(&x, None, false).unwrap().dims(),
                [2, 10],
                "{spec:?} at {t} frames"
            );
        }
    }
}

#[test]
fn bad_inputs_are_errors_that_say_what_was_expected() {
    let m = Model::new(
        &ModelSpec::Crnn(Default::default()),
        10,
        shape(1, 128, 173),
        0,
    )
    .unwrap();
    let err = m
        .forward_masked(&randn(&[2, 1, 128, 60], 0), None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 80 frames"), "{err}");
    let err = m
        .forward_masked(&randn(&[2, 2, 128, 173], 0), None, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expects [B, 1, 128, T], got [2, 2, 128, 173]"),
        "{err}"
    );
    let err = m
        .forward_masked(&randn(&[2, 1, 128, 173], 0), Some(&[173, 174]), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lengths in 1..=173"), "{err}");
    let err = Model::new(
        &ModelSpec::Crnn(Default::default()),
        10,
        shape(1, 64, 173),
        0,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Input { .. }), "{err}");
    let m = Model::new(
        &ModelSpec::VggMini(Default::default()),
        10,
        shape(1, 32, 32),
        0,
    )
    .unwrap();
    let err = m
        .forward_masked(&randn(&[1, 1, 32, 40], 0), None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly 32 frames"), "{err}");
    let err = Model::new(
        &ModelSpec::AudioCnn(AudioCnnConfig {
            dropout: 1.5,
            ..Default::default()
        }),
        10,
        shape(2, 64, 40),
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("dropout"), "{err}");
    for width in [0, 65] {
        let spec = ModelSpec::AudioCnn(AudioCnnConfig {
            width,
            ..Default::default()
        });
        let err = Model::new(&spec, 10, shape(2, 64, 40), 0).unwrap_err();
        assert!(err.to_string().contains("width"), "{err}");
    }
    assert!(Model::new(&ModelSpec::default(), 1, shape(2, 64, 40), 0).is_err());
}

#[test]
fn specs_read_from_toml_style_json_with_defaults_and_reject_unknown_fields() {
    let spec: ModelSpec = serde_json::from_str(r#"{"kind": "crnn", "hidden": 32}"#).unwrap();
    assert_eq!(
        spec,
        ModelSpec::Crnn(CrnnConfig {
            hidden: 32,
            ..Default::default()
        })
    );
    let spec: ModelSpec = serde_json::from_str(r#"{"kind": "vgg_m", "width": 0.25}"#).unwrap();
    assert!(matches!(
        spec,
        ModelSpec::VggM(VggMConfig { width: 0.25, .. })
    ));
    let err = serde_json::from_str::<ModelSpec>(r#"{"kind": "crnn", "hiden": 32}"#).unwrap_err();
    assert!(err.to_string().contains("hiden"), "{err}");
    let err = serde_json::from_str::<ModelSpec>(r#"{"kind": "resnet"}"#).unwrap_err();
    assert!(err.to_string().contains("resnet"), "{err}");
    for (spec, _) in no_dropout_specs() {
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], spec.kind(), "kind() is the config's name");
        let back: ModelSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}

#[test]
fn summary_lists_layers_shapes_and_the_parameter_total() {
    let m = Model::new(
        &ModelSpec::Crnn(Default::default()),
        10,
        shape(1, 128, 173),
        0,
    )
    .unwrap();
    let s = m.summary().unwrap();
    assert_eq!(s.trainable_params, 139_786);
    assert_eq!(s.layers.iter().map(|l| l.params).sum::<usize>(), 139_786);
    let conv1 = &s.layers[0];
    assert_eq!(
        (
            conv1.name.as_str(),
            conv1.output_shape.as_slice(),
            conv1.params
        ),
        ("conv1", &[1, 32, 126, 171][..], 320)
    );
    assert_eq!(
        conv1.description,
        "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))"
    );
    let lstm = s.layers.iter().find(|l| l.name == "lstm").unwrap();
    assert_eq!(lstm.output_shape, [1, 2, 64]);
    assert_eq!(
        lstm.description,
        "LSTM(128, 64, num_layers=2, batch_first=True)"
    );
    let text = s.to_string();
    assert!(text.starts_with("Crnn("), "{text}");
    assert!(text.ends_with("Trainable parameters: 139786"), "{text}");
    // Every model summarises.
    for (spec, input) in no_dropout_specs() {
        let m = Model::new(&spec, 5, input, 0).unwrap();
        let s = m.summary().unwrap();
        assert_eq!(s.layers.last().unwrap().output_shape, [1, 5], "{spec:?}");
        assert_eq!(
            s.layers.iter().map(|l| l.params).sum::<usize>(),
            m.num_trainable(),
            "{spec:?}"
        );
    }
}

#[test]
fn same_seed_same_weights_and_outputs() {
    let spec = ModelSpec::Crnn(Default::default());
    let x = randn(&[2, 1, 128, 120], 5);
    let run = |seed| {
        let m = Model::new(&spec, 10, shape(1, 128, 120), seed).unwrap();
        m.forward_masked(&x, None, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(run(4), run(4));
    assert_ne!(run(4), run(5));
}

#[test]
fn streaming_the_snap_detector_frame_by_frame_equals_the_batch_forward() {
    for (time_pool, output) in [
        (TimePool::Linear, Output::Softmax),
        (TimePool::Max, Output::Softmax),
        (TimePool::Max, Output::Sigmoid),
    ] {
        let input = shape(1, 40, 50);
        let config = SnapRnnConfig {
            time_pool,
            ..Default::default()
        };
        let spec = ModelSpec::SnapRnn(config);
        let model = Model::with_output(&spec, 2, output, input, 9).unwrap();
        let x = randn(&[1, 50, 40], 11);
        let logits = model.forward_masked(&x, None, false).unwrap();
        assert_eq!(
            logits.dims(),
            [1, if output == Output::Sigmoid { 1 } else { 2 }]
        );
        let batch = class_probabilities(&logits).unwrap();
        let batch: Vec<f32> = batch.squeeze(0).unwrap().to_vec1().unwrap();
        let frames: Vec<Vec<f32>> = x.squeeze(0).unwrap().to_vec2().unwrap();
        let mut stream = model.recurrent_stream().unwrap().expect("SnapRnn streams");
        assert_eq!(stream.frame_len(), 40);
        let mut last = Vec::new();
        for f in &frames {
            last = stream
                .push(f)
                .unwrap()
                .expect("an output every frame")
                .to_vec();
        }
        for (a, b) in last.iter().zip(&batch) {
            assert!((a - b).abs() < 1e-5, "{time_pool:?}: {last:?} vs {batch:?}");
        }
        // After a reset the same frames give the same answer again.
        stream.reset();
        for f in &frames {
            last = stream.push(f).unwrap().unwrap().to_vec();
        }
        assert!((last[1] - batch[1]).abs() < 1e-5);
        assert!(stream.push(&[0.0; 3]).is_err());
    }
    // Models without state have no recurrent stream.
    let cnn = Model::new(
        &ModelSpec::SmallCnn(Default::default()),
        3,
        shape(1, 40, 50),
        0,
    )
    .unwrap();
    assert!(cnn.recurrent_stream().unwrap().is_none());
}

#[test]
fn a_window_stream_evaluates_the_last_frames_every_hop() {
    // SmallCnn goes through its forward pass (on 2 channels), SnapRnn
    // through its own window evaluator: both must equal the forward pass.
    for (spec, channels) in [
        (ModelSpec::SmallCnn(Default::default()), 2),
        (ModelSpec::SnapRnn(Default::default()), 1),
        (
            ModelSpec::SnapRnn(SnapRnnConfig {
                time_pool: TimePool::Max,
                ..Default::default()
            }),
            1,
        ),
    ] {
        let model = Model::new(&spec, 3, shape(channels, 40, 20), 1).unwrap();
        let frames: Vec<Vec<f32>> = randn(&[70, 40], 5).to_vec2().unwrap();
        // Each window is scaled by `prepare` before the model sees it.
        let prepare = Box::new(|w: &mut [f32]| w.iter_mut().for_each(|v| *v *= 0.5));
        let mut stream = WindowStream::new(&model, 7, prepare).unwrap();
        let mut outputs = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if let Some(p) = stream.push(f).unwrap() {
                outputs.push((i, p.to_vec()));
            }
        }
        // Full at frame 19, then every 7 frames.
        let at: Vec<usize> = outputs.iter().map(|o| o.0).collect();
        assert_eq!(at, [19, 26, 33, 40, 47, 54, 61, 68]);
        for (end, probs) in outputs {
            let mut window = vec![0.0f32; 40 * 20];
            for t in 0..20 {
                for m in 0..40 {
                    window[m * 20 + t] = frames[end + 1 - 20 + t][m] * 0.5;
                }
            }
            let x = Tensor::from_vec(window, (1, 1, 40, 20), &Device::Cpu)
                .unwrap()
                .repeat((1, channels, 1, 1))
                .unwrap();
            let want: Vec<f32> = softmax(&model.forward_masked(&x, None, false).unwrap())
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in probs.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{spec:?}, window ending at {end}: {probs:?} vs {want:?}"
                );
            }
        }
        assert!(WindowStream::new(&model, 0, Box::new(|_| {})).is_err());
    }
}

#[test]
fn a_reshaping_window_stream_gives_the_model_what_prepare_makes() {
    // Stream frames of 80 values; the model sees the mean of each pair of rows.
    let model = Model::new(
        &ModelSpec::SmallCnn(Default::default()),
        3,
        shape(1, 40, 20),
        1,
    )
    .unwrap();
    let wide: Vec<Vec<f32>> = randn(&[30, 80], 6).to_vec2().unwrap();
    let halve = |raw: &mut [f32], out: &mut [f32]| {
        for m in 0..40 {
            for t in 0..20 {
                out[m * 20 + t] = 0.5 * (raw[2 * m * 20 + t] + raw[(2 * m + 1) * 20 + t]);
            }
        }
    };
    let mut reshaping = WindowStream::reshaping(&model, 5, 80, Box::new(halve)).unwrap();
    let mut plain = WindowStream::new(&model, 5, Box::new(|_| {})).unwrap();
    assert_eq!(reshaping.frame_len(), 80);
    let mut compared = 0;
    for f in &wide {
        let narrow: Vec<f32> = f.chunks(2).map(|p| 0.5 * (p[0] + p[1])).collect();
        let got = reshaping.push(f).unwrap().map(<[f32]>::to_vec);
        let want = plain.push(&narrow).unwrap().map(<[f32]>::to_vec);
        assert_eq!(got.is_some(), want.is_some());
        if let (Some(a), Some(b)) = (got, want) {
            compared += 1;
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
            }
        }
    }
    assert_eq!(compared, 3);
    assert!(reshaping.push(&[0.0; 40]).is_err());
    assert!(WindowStream::reshaping(&model, 1, 0, Box::new(|_, _| {})).is_err());
}

/// Adam (Kingma & Ba), written out: the optimizer of the overfit test.
struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    lr: f64,
}

impl Adam {
    fn new(vars: Vec<Var>, lr: f64) -> Self {
        let zeros = |v: &Var| v.zeros_like().unwrap();
        Self {
            m: vars.iter().map(zeros).collect(),
            v: vars.iter().map(zeros).collect(),
            vars,
            t: 0,
            lr,
        }
    }

    fn step(&mut self, loss: &Tensor) {
        let grads = loss.backward().unwrap();
        self.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            self.m[i] = ((&self.m[i] * b1).unwrap() + (g * (1.0 - b1)).unwrap()).unwrap();
            self.v[i] =
                ((&self.v[i] * b2).unwrap() + (g.sqr().unwrap() * (1.0 - b2)).unwrap()).unwrap();
            let mhat = (&self.m[i] / c1).unwrap();
            let vhat = (&self.v[i] / c2).unwrap();
            let update = (mhat / (vhat.sqrt().unwrap() + eps).unwrap()).unwrap();
            var.set(&(var.as_tensor() - (update * self.lr).unwrap()).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn every_model_overfits_a_tiny_batch() {
    let labels = [0usize, 1, 2, 3, 1, 0];
    for (spec, input) in no_dropout_specs() {
        let classes = 4;
        let m = Model::new(&spec, classes, input, 3).unwrap();
        let x = randn(
            &[labels.len(), input.channels, input.height, input.frames],
            7,
        );
        let vars = m.params().trainable().into_iter().map(|(_, v)| v).collect();
        let mut adam = Adam::new(vars, 3e-3);
        let mut first = None;
        let mut last = f32::MAX;
        for _ in 0..300 {
            let loss = cross_entropy(&m.forward_masked(&x, None, true).unwrap(), &labels).unwrap();
            last = loss.to_scalar::<f32>().unwrap();
            first.get_or_insert(last);
            if last < 0.05 * first.unwrap() {
                break;
            }
            adam.step(&loss);
        }
        let first = first.unwrap();
        assert!(last < 0.05 * first, "{spec:?}: loss {first} -> {last}");
    }
}

#[test]
fn checkpoints_round_trip_and_reject_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let input = shape(1, 128, 173);
    let a = Model::new(&ModelSpec::Crnn(Default::default()), 10, input, 1).unwrap();
    // A training forward moves the running statistics; they are saved too.
    a.forward_masked(&randn(&[2, 1, 128, 173], 1), None, true)
        .unwrap();
    a.save(&path).unwrap();
    let b = Model::new(&ModelSpec::Crnn(Default::default()), 10, input, 2).unwrap();
    b.load(&path).unwrap();
    let x = randn(&[2, 1, 128, 173], 4);
    let ya: Vec<f32> = a
        .forward_masked(&x, None, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let yb: Vec<f32> = b
        .forward_masked(&x, None, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(ya, yb);
    let other = Model::new(
        &ModelSpec::AudioCnn(Default::default()),
        10,
        shape(1, 128, 173),
        0,
    )
    .unwrap();
    let err = other.load(&path).unwrap_err().to_string();
    assert!(
        err.contains("m.safetensors") && err.contains("`conv1.weight`"),
        "{err}"
    );
    let _ = DType::F32;
}

fn small_stack() -> CrnnConfig {
    let block = |channels, kernel, stride, pool| ConvBlock {
        channels,
        kernel,
        stride,
        pool,
    };
    CrnnConfig {
        conv: vec![block(16, 5, 2, 2), block(32, 3, 1, 2)],
        hidden: 32,
        lstm_layers: 1,
        ..Default::default()
    }
}

#[test]
fn a_crnn_stack_from_the_config_names_the_smallest_input_it_takes() {
    // 64 rows survive; the smallest is worked back from one step:
    // ((1 * 2 - 1) + 3) * 2 = 8 before pool 1, then (8 - 1) * 2 + 5 = 19.
    let spec = ModelSpec::Crnn(small_stack());
    let m = Model::new(&spec, 3, shape(1, 64, 19), 0).unwrap();
    let x = Tensor::zeros((2, 1, 64, 19), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.forward_masked(&x, None, false).unwrap().dims(), [2, 3]);
    let err = Model::new(&spec, 3, shape(1, 18, 19), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 19 mel bands"), "{err}");
    let zero = CrnnConfig {
        conv: vec![ConvBlock {
            channels: 8,
            kernel: 3,
            stride: 0,
            pool: 1,
        }],
        ..Default::default()
    };
    let err = Model::new(&ModelSpec::Crnn(zero), 3, shape(1, 64, 64), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv"), "{err}");
    // The default stack is left out of a saved spec, so configs and
    // model.json files written before it existed read back the same.
    let text = serde_json::to_string(&ModelSpec::Crnn(Default::default())).unwrap();
    assert!(!text.contains("conv\""), "{text}");
}
