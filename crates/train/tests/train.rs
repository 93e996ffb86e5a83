//! Optimizers, schedules and metrics against reference numbers:
//! scikit-learn's classification report and PyTorch's learning-rate
//! sequences (`tests/data/references.json`, made by
//! `tests/data/make_references.py`), and optimizer updates written out by
//! hand.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use hark_train::{
    Anneal, ClassificationReport, ConfusionMatrix, LrSchedule, OptimizerConfig, ScheduleConfig,
};
use serde_json::Value;

/// Learning rates and report values against the references.
const TOL: f64 = 1e-12;
/// Optimizer updates (f32 arithmetic) against the f64 hand computation.
const OPT_TOL: f64 = 1e-6;

fn references() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/references.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

/// The labels of `make_references.py`.
fn labels() -> (Vec<usize>, Vec<usize>) {
    let truth: Vec<usize> = (0..200).map(|i| (i * 7 + (i * i) % 13) % 10).collect();
    let pred = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| if i % 3 != 0 { t } else { (i * i + 3) % 10 })
        .map(|p| if p == 9 { 8 } else { p })
        .collect();
    (truth, pred)
}

#[test]
fn classification_report_equals_scikit_learns_numbers_and_text() {
    let refs = references();
    let (truth, pred) = labels();
    let names: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
    let m = ConfusionMatrix::from_labels(10, &truth, &pred).unwrap();
    let r = ClassificationReport::new(&m, &names).unwrap();
    let want = &refs["report"];
    for c in r.classes.iter().chain([&r.macro_avg, &r.weighted_avg]) {
        let w = &want[&c.name];
        close(c.precision, w["precision"].as_f64().unwrap(), TOL, &c.name);
        close(c.recall, w["recall"].as_f64().unwrap(), TOL, &c.name);
        close(c.f1, w["f1-score"].as_f64().unwrap(), TOL, &c.name);
        assert_eq!(
            c.support as f64,
            w["support"].as_f64().unwrap(),
            "{}",
            c.name
        );
    }
    close(
        r.accuracy,
        want["accuracy"].as_f64().unwrap(),
        TOL,
        "accuracy",
    );
    assert_eq!(r.to_string(), refs["report_text"].as_str().unwrap());
}

#[test]
fn report_of_a_hand_computed_case() {
    // truth 0 0 1 1 1 2, predicted 0 1 1 1 0 1: class 2 is never predicted.
    let m = ConfusionMatrix::from_labels(3, &[0, 0, 1, 1, 1, 2], &[0, 1, 1, 1, 0, 1]).unwrap();
    assert_eq!(m.counts(), [vec![1, 1, 0], vec![1, 2, 0], vec![0, 1, 0]]);
    let names = ["a", "b", "c"].map(String::from);
    let r = ClassificationReport::new(&m, &names).unwrap();
    let b = &r.classes[1];
    close(b.precision, 2.0 / 4.0, TOL, "precision b");
    close(b.recall, 2.0 / 3.0, TOL, "recall b");
    close(
        b.f1,
        2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0),
        TOL,
        "f1 b",
    );
    assert_eq!((r.classes[2].precision, r.classes[2].f1), (0.0, 0.0));
    close(r.accuracy, 0.5, TOL, "accuracy");
    close(
        r.macro_avg.recall,
        (0.5 + 2.0 / 3.0) / 3.0,
        TOL,
        "macro recall",
    );
    close(
        r.weighted_avg.precision,
        (0.5 * 2.0 + 0.5 * 3.0) / 6.0,
        TOL,
        "weighted precision",
    );
    let mut sum = m.clone();
    sum.merge(&m).unwrap();
    assert_eq!(sum.total(), 12);
    assert!(ConfusionMatrix::from_labels(3, &[0, 3], &[0, 1]).is_err());
    assert!(ConfusionMatrix::from_labels(3, &[0], &[0, 1]).is_err());
    assert!(ClassificationReport::new(&m, &names[..2]).is_err());
}

fn one_cycle(
    anneal: Anneal,
    max_lr: f64,
    pct_start: f64,
    div: f64,
    final_div: f64,
    base_m: f64,
    max_m: f64,
) -> ScheduleConfig {
    ScheduleConfig::OneCycle {
        max_lr: Some(max_lr),
        pct_start,
        div_factor: div,
        final_div_factor: final_div,
        anneal,
        cycle_momentum: true,
        base_momentum: base_m,
        max_momentum: max_m,
    }
}

#[test]
fn schedules_follow_pytorchs_sequences() {
    let refs = references();
    for (key, config) in [
        (
            "one_cycle_linear",
            one_cycle(Anneal::Linear, 1e-3, 0.3, 25.0, 1e4, 0.85, 0.95),
        ),
        (
            "one_cycle_cos",
            one_cycle(Anneal::Cos, 2e-3, 0.25, 10.0, 100.0, 0.8, 0.9),
        ),
    ] {
        let r = &refs[key];
        let (epochs, spe) = (
            r["epochs"].as_u64().unwrap() as usize,
            r["steps_per_epoch"].as_u64().unwrap() as usize,
        );
        let s = LrSchedule::new(&config, 0.5, epochs, spe).unwrap();
        for (step, (lr, m)) in floats(&r["lr"])
            .into_iter()
            .zip(floats(&r["momentum"]))
            .enumerate()
        {
            close(s.lr(step), lr, TOL, &format!("{key} lr at {step}"));
            close(
                s.momentum(step).unwrap(),
                m,
                TOL,
                &format!("{key} momentum at {step}"),
            );
        }
    }
    // StepLR(step_size 10, gamma 0.5) and CosineAnnealingLR(T_max = epochs), per epoch.
    let spe = 3;
    let step = LrSchedule::new(
        &ScheduleConfig::Step {
            step_size: 10,
            gamma: 0.5,
        },
        5e-4,
        35,
        spe,
    )
    .unwrap();
    for (epoch, lr) in floats(&refs["step_lr"]).into_iter().enumerate() {
        for b in 0..spe {
            close(
                step.lr(epoch * spe + b),
                lr,
                TOL,
                &format!("step lr at epoch {epoch}"),
            );
        }
    }
    let cos = LrSchedule::new(&ScheduleConfig::Cosine { eta_min: 1e-3 }, 0.1, 20, spe).unwrap();
    for (epoch, lr) in floats(&refs["cosine"]).into_iter().enumerate() {
        close(
            cos.lr(epoch * spe),
            lr,
            1e-9,
            &format!("cosine at epoch {epoch}"),
        );
    }
    assert_eq!(cos.momentum(0), None);
    let constant = LrSchedule::new(&ScheduleConfig::Constant, 0.01, 2, 2).unwrap();
    assert_eq!((constant.lr(0), constant.lr(99)), (0.01, 0.01));
}

#[test]
fn bad_schedules_and_optimizers_name_the_field() {
    let err = LrSchedule::new(
        &one_cycle(Anneal::Cos, 1e-3, 0.01, 25.0, 1e4, 0.85, 0.95),
        1e-3,
        2,
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("schedule.pct_start"), "{err}");
    assert!(LrSchedule::new(&ScheduleConfig::Constant, 1e-3, 0, 10).is_err());
    let err = LrSchedule::new(
        &ScheduleConfig::Step {
            step_size: 0,
            gamma: 0.5,
        },
        1e-3,
        5,
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("schedule.step_size"), "{err}");
    let sgd = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: true,
    };
    let err = sgd.build(Vec::new()).unwrap_err();
    assert!(err.to_string().contains("optimizer.nesterov"), "{err}");
    let err =
        serde_json::from_str::<OptimizerConfig>(r#"{"kind": "adam", "lr": 0.1, "beta": 0.9}"#)
            .unwrap_err();
    assert!(err.to_string().contains("beta"), "{err}");
    let adam: OptimizerConfig = serde_json::from_str(
        r#"{"kind": "adam", "lr": 5e-4, "weight_decay": 0.02, "amsgrad": true}"#,
    )
    .unwrap();
    assert!(matches!(
        adam,
        OptimizerConfig::Adam {
            amsgrad: true,
            betas: (0.9, 0.999),
            ..
        }
    ));
}

/// A two-element parameter, its loss `sum(c * p)` (gradient `c`) and the
/// values an optimizer produces over `steps` steps.
fn run(config: &OptimizerConfig, c: [f32; 2], steps: usize, lr: f64) -> Vec<[f64; 2]> {
    let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
    let mut opt = config.build(vec![("w".into(), var.clone())]).unwrap();
    let c = Tensor::from_slice(&c, 2, &Device::Cpu).unwrap();
    (0..steps)
        .map(|_| {
            let grads = (var.as_tensor() * &c)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step(&grads, lr).unwrap();
            let v = var.as_tensor().to_vec1::<f32>().unwrap();
            [v[0] as f64, v[1] as f64]
        })
        .collect()
}

/// Adam by its defining equations, in f64.
fn adam_by_hand(
    c: [f64; 2],
    steps: usize,
    lr: f64,
    wd: f64,
    amsgrad: bool,
    decoupled: bool,
) -> Vec<[f64; 2]> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let (mut p, mut m, mut v, mut vmax) = ([1.0, -2.0], [0.0; 2], [0.0; 2], [0.0f64; 2]);
    let mut out = Vec::new();
    for t in 1..=steps as i32 {
        for i in 0..2 {
            let mut g = c[i];
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            } else {
                g += wd * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            vmax[i] = vmax[i].max(v[i]);
            let second = if amsgrad { vmax[i] } else { v[i] };
            let mhat = m[i] / (1.0 - b1.powi(t));
            let vhat = second / (1.0 - b2.powi(t));
            p[i] -= lr * mhat / (vhat.sqrt() + eps * 1.0);
        }
        out.push(p);
    }
    out
}

#[test]
fn adam_adamw_and_amsgrad_follow_their_equations() {
    // A gradient whose sign flips makes AMSGrad's maximum matter.
    for (wd, amsgrad, decoupled) in [
        (0.0, false, false),
        (0.1, false, false),
        (0.1, true, false),
        (0.05, false, true),
    ] {
        let config = if decoupled {
            OptimizerConfig::AdamW {
                lr: 0.01,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: wd,
                amsgrad,
            }
        } else {
            OptimizerConfig::Adam {
                lr: 0.01,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: wd,
                amsgrad,
            }
        };
        let got = run(&config, [0.5, -3.0], 5, 0.01);
        let want = adam_by_hand([0.5, -3.0], 5, 0.01, wd, amsgrad, decoupled);
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            for i in 0..2 {
                close(
                    g[i],
                    w[i],
                    OPT_TOL,
                    &format!("wd {wd} amsgrad {amsgrad} decoupled {decoupled}, step {s}"),
                );
            }
        }
    }
}

#[test]
fn sgd_momentum_and_nesterov_follow_their_equations() {
    for (momentum, dampening, wd, nesterov) in [
        (0.0, 0.0, 0.0, false),
        (0.9, 0.0, 0.01, false),
        (0.9, 0.1, 0.0, false),
        (0.8, 0.0, 0.0, true),
    ] {
        let config = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum,
            dampening,
            weight_decay: wd,
            nesterov,
        };
        let got = run(&config, [0.5, -3.0], 4, 0.1);
        let (mut p, mut buf): ([f64; 2], Option<[f64; 2]>) = ([1.0, -2.0], None);
        for (s, g_step) in got.iter().enumerate() {
            let g = [0.5 + wd * p[0], -3.0 + wd * p[1]];
            let b = match buf {
                None => g,
                Some(b) => [
                    momentum * b[0] + (1.0 - dampening) * g[0],
                    momentum * b[1] + (1.0 - dampening) * g[1],
                ],
            };
            let d = if momentum == 0.0 {
                g
            } else if nesterov {
                [g[0] + momentum * b[0], g[1] + momentum * b[1]]
            } else {
                b
            };
            buf = Some(b);
            p = [p[0] - 0.1 * d[0], p[1] - 0.1 * d[1]];
            for i in 0..2 {
                close(
                    g_step[i],
                    p[i],
                    OPT_TOL,
                    &format!("momentum {momentum} nesterov {nesterov} step {s}"),
                );
            }
        }
    }
}

#[test]
fn optimizer_state_round_trips_so_a_resumed_run_continues_identically() {
    let config = OptimizerConfig::Adam {
        lr: 0.01,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.0,
        amsgrad: true,
    };
    let straight = run(&config, [0.5, -3.0], 6, 0.01);
    // Three steps, save the state, restore into a fresh optimizer, three more.
    let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
    let c = Tensor::from_slice(&[0.5f32, -3.0], 2, &Device::Cpu).unwrap();
    let step = |opt: &mut Box<dyn hark_train::StatefulOptimizer>| {
        let grads = (var.as_tensor() * &c)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&grads, 0.01).unwrap();
    };
    let mut first = config.build(vec![("w".into(), var.clone())]).unwrap();
    (0..3).for_each(|_| step(&mut first));
    let state: HashMap<String, Tensor> = first.state().into_iter().collect();
    assert!(state.contains_key("w.max_exp_avg_sq") && state.contains_key("w.step"));
    let mut second = config.build(vec![("w".into(), var.clone())]).unwrap();
    second.load_state(&state).unwrap();
    (0..3).for_each(|_| step(&mut second));
    let v = var.as_tensor().to_vec1::<f32>().unwrap();
    assert_eq!([v[0] as f64, v[1] as f64], straight[5]);
    let mut broken = state.clone();
    broken.remove("w.exp_avg");
    let err = config
        .build(vec![("w".into(), var)])
        .unwrap()
        .load_state(&broken)
        .unwrap_err();
    assert!(err.to_string().contains("missing `w.exp_avg`"), "{err}");
}

#[test]
fn adam_and_sgd_as_candle_nn_optimizers_step_as_the_trainer_does() {
    use candle_nn::Optimizer;
    use hark_train::{Adam, AdamConfig, Sgd, SgdConfig};

    let c = Tensor::from_slice(&[0.5f32, -3.0], 2, &Device::Cpu).unwrap();
    // Three candle-nn steps at the optimizer's own learning rate.
    fn candle_steps<O: Optimizer>(config: O::Config, c: &Tensor) -> Vec<f32> {
        let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut opt = O::new(vec![var.clone()], config).unwrap();
        for _ in 0..3 {
            let loss = (var.as_tensor() * c).unwrap().sum_all().unwrap();
            opt.backward_step(&loss).unwrap();
        }
        var.as_tensor().to_vec1().unwrap()
    }
    let last = |steps: Vec<[f64; 2]>| steps[2].map(|v| v as f32).to_vec();

    let adamw = AdamConfig {
        lr: 0.05,
        ..AdamConfig::adamw()
    };
    let trainer_config = OptimizerConfig::AdamW {
        lr: 0.05,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.01,
        amsgrad: false,
    };
    assert_eq!(
        candle_steps::<Adam>(adamw, &c),
        last(run(&trainer_config, [0.5, -3.0], 3, 0.05))
    );

    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    };
    let trainer_config = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: true,
    };
    assert_eq!(
        candle_steps::<Sgd>(sgd, &c),
        last(run(&trainer_config, [0.5, -3.0], 3, 0.1))
    );

    let mut opt = Adam::new(vec![], AdamConfig::default()).unwrap();
    assert_eq!(opt.learning_rate(), 1e-3);
    opt.set_learning_rate(0.5);
    assert_eq!(opt.learning_rate(), 0.5);
}
