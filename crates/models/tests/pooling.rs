//! Pooling against PyTorch 2.11 (`pooling.safetensors` from the project's
//! golden set: inputs whose sizes are not multiples of the kernel, and ties)
//! and against finite differences.
//!
//! Each case is `y = F.max_pool2d(x, k, k)` (or `avg_pool2d`) with the loss
//! `(y * w).sum()`; the file holds `x`, `w`, `y` and `x.grad`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use hark_models::{avg_pool2d, max_pool2d};

fn golden() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pooling.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Output and input gradient of `(pool(x) * w).sum()`.
fn run(
    pool: fn(&Tensor, usize, usize) -> hark_models::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    k: usize,
) -> (Tensor, Tensor) {
    let x = Var::from_tensor(x).unwrap();
    let y = pool(x.as_tensor(), k, k).unwrap();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap().clone();
    (y, dx)
}

#[test]
fn outputs_and_gradients_equal_pytorchs_ties_and_uncovered_edges_included() {
    let g = golden();
    for case in [
        "x1.max_k3",
        "x1.max_k2",
        "x1.avg_k3",
        "x2.max_k2",
        "x2.avg_k2",
        "x3.max_k3",
        "x3.max_k2",
    ] {
        let (input, op) = case.split_once('.').unwrap();
        let k: usize = op[op.len() - 1..].parse().unwrap();
        let pool = if op.starts_with("max") {
            max_pool2d
        } else {
            avg_pool2d
        };
        let (y, dx) = run(
            pool,
            &g[&format!("{input}.input")],
            &g[&format!("{case}.w")],
            k,
        );
        let (want_y, want_dx) = (
            values(&g[&format!("{case}.output")]),
            values(&g[&format!("{case}.grad_input")]),
        );
        assert_eq!(y.dims(), g[&format!("{case}.output")].dims(), "{case}");
        // Max pooling copies and routes values: exact. Averages differ by rounding.
        let tol = if op.starts_with("max") { 0.0 } else { 1e-6 };
        for (a, b) in values(&y).iter().zip(&want_y) {
            assert!((a - b).abs() <= tol, "{case} output: {a} vs {b}");
        }
        for (a, b) in values(&dx).iter().zip(&want_dx) {
            assert!((a - b).abs() <= tol, "{case} grad: {a} vs {b}");
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    // Distinct values so the max of every window is unique and stable under the nudge.
    let n = 2 * 2 * 7 * 9;
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 * 0.1).collect();
    let x = Tensor::from_vec(data.clone(), (2, 2, 7, 9), &Device::Cpu).unwrap();
    for (pool, name) in [
        (
            max_pool2d as fn(&Tensor, usize, usize) -> hark_models::Result<Tensor>,
            "max",
        ),
        (avg_pool2d, "avg"),
    ] {
        for k in [2, 3] {
            let y_dims = pool(&x, k, k).unwrap().dims().to_vec();
            let w_len: usize = y_dims.iter().product();
            let w = Tensor::from_vec(
                (0..w_len).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>(),
                y_dims,
                &Device::Cpu,
            )
            .unwrap();
            let (_, dx) = run(pool, &x, &w, k);
            let dx = values(&dx);
            let loss = |d: &[f32]| {
                let t = Tensor::from_vec(d.to_vec(), (2, 2, 7, 9), &Device::Cpu).unwrap();
                (pool(&t, k, k).unwrap() * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let eps = 0.01;
            for i in (0..n).step_by(7) {
                let (mut up, mut down) = (data.clone(), data.clone());
                up[i] += eps;
                down[i] -= eps;
                let numeric = (loss(&up) - loss(&down)) / (2.0 * eps as f64);
                assert!(
                    (numeric - dx[i] as f64).abs() < 1e-2,
                    "{name} k{k} element {i}: {numeric} vs {}",
                    dx[i]
                );
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let small = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(
        max_pool2d(&small, 3, 3)
            .unwrap_err()
            .to_string()
            .contains("larger than the 2x2 input")
    );
    let flat = Tensor::zeros((4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(
        avg_pool2d(&flat, 2, 2)
            .unwrap_err()
            .to_string()
            .contains("[N, C, H, W]")
    );
}

/// A NaN is the maximum of its window, and the first maximum in row-major
/// order takes the window's gradient, whichever column it is in. Pooling
/// without a gradient (no maxima recorded) gives the same output.
#[test]
fn nan_is_the_maximum_and_the_first_one_takes_the_gradient() {
    let nan = f32::NAN;
    #[rustfmt::skip]
    let x = vec![
        1.0, 9.0, 2.0,   0.0, 0.0, 0.0,
        nan, 3.0, nan,   4.0, 4.0, 1.0,
        5.0, nan, 8.0,   4.0, 2.0, 4.0,
    ];
    let x = Tensor::from_vec(x, (1, 1, 3, 6), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(vec![1.0f32, 10.0], (1, 1, 1, 2), &Device::Cpu).unwrap();
    let (y, dx) = run(max_pool2d, &x, &w, 3);
    let y = values(&y);
    assert!(y[0].is_nan());
    assert_eq!(y[1], 4.0);
    let mut want = vec![0.0f32; 18];
    want[6] = 1.0; // the first NaN: row 1, column 0
    want[9] = 10.0; // the first 4: row 1, column 3, before row 1, column 4
    assert_eq!(values(&dx), want);
    let eval = values(&max_pool2d(&x, 3, 3).unwrap());
    assert!(eval[0].is_nan() && eval[1] == 4.0);
}
