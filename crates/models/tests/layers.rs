//! The custom layers against slow, obvious versions: direct convolution and
//! its gradients by definition over a grid of kernels, strides and paddings;
//! batch norm in eval mode against finite differences; rectangular pooling.

use candle_core::{DType, Device, Tensor, Var};
use hark_models::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvBn, Init, ParamStore,
    batch_norm2d, conv2d, conv2d_init, forward_conv_bn, max_pool2d, max_pool2d_hw,
};

/// Conv outputs and gradients against the f64 reference.
const TOL: f64 = 1e-4;

fn seq(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.7311 + seed).sin() * 1.7).fract())
        .collect()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn conv_forward_and_gradients_equal_the_direct_definition() {
    // The layer as a graph op, its kernels chosen by size; every kernel
    // path forced on its own is checked in `ops::conv`'s unit tests. Channel
    // counts that fill the 4-channel direct tiles and the 3 x 3 dot tiles
    // in part, and one layer wide enough for the GEMM paths.
    for (c, o) in [(3usize, 4usize), (2, 5), (2, 10), (8, 20), (3, 36)] {
        conv_case(c, o);
    }
}

fn conv_case(c: usize, o: usize) {
    let (b, h, w) = (2usize, 7usize, 19usize);
    for (k, s, p) in [
        ((3, 3), 1, 0),
        ((3, 3), 2, 1),
        ((5, 5), 2, 2),
        ((7, 7), 2, 1),
        ((2, 3), 3, 1),
        ((3, 1), 1, 2),
    ] {
        for act in [Activation::Identity, Activation::Relu] {
            let store = ParamStore::new(1);
            let cfg = Conv2dConfig {
                stride: (s, s),
                padding: (p, p),
            };
            let conv = conv2d_init(
                c,
                o,
                k,
                cfg,
                Init::Uniform { bound: 0.5 },
                Init::Uniform { bound: 0.5 },
                store.var_builder(),
            )
            .unwrap();
            let x = Var::from_vec(seq(b * c * h * w, 0.3), (b, c, h, w), &Device::Cpu).unwrap();
            let y = conv.forward_act(x.as_tensor(), true, act).unwrap();
            let (_, _, oh, ow) = y.dims4().unwrap();
            assert_eq!(
                (oh, ow),
                ((h + 2 * p - k.0) / s + 1, (w + 2 * p - k.1) / s + 1)
            );
            let gw = Tensor::from_vec(seq(b * o * oh * ow, 1.1), y.shape(), &Device::Cpu).unwrap();
            let grads = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
            let params = store.trainable();
            let (wt, bias) = (vals(params[0].1.as_tensor()), vals(params[1].1.as_tensor()));
            let (xs, g) = (vals(x.as_tensor()), vals(&gw));
            // Reference, in f64.
            let xat = |n: usize, ci: usize, iy: isize, ix: isize| -> f64 {
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                    0.0
                } else {
                    xs[((n * c + ci) * h + iy as usize) * w + ix as usize] as f64
                }
            };
            let mut yref = vec![0.0f64; b * o * oh * ow];
            let mut dw = vec![0.0f64; wt.len()];
            let mut db = vec![0.0f64; o];
            let mut dx = vec![0.0f64; xs.len()];
            for n in 0..b {
                for oc in 0..o {
                    for i in 0..oh {
                        for j in 0..ow {
                            let mut acc = bias[oc] as f64;
                            for ci in 0..c {
                                for u in 0..k.0 {
                                    for v in 0..k.1 {
                                        let (iy, ix) = (
                                            (i * s + u) as isize - p as isize,
                                            (j * s + v) as isize - p as isize,
                                        );
                                        acc += wt[((oc * c + ci) * k.0 + u) * k.1 + v] as f64
                                            * xat(n, ci, iy, ix);
                                    }
                                }
                            }
                            let yi = ((n * o + oc) * oh + i) * ow + j;
                            let (out, slope) = match act {
                                Activation::Relu if acc <= 0.0 => (0.0, 0.0),
                                _ => (acc, 1.0),
                            };
                            yref[yi] = out;
                            let gpre = g[yi] as f64 * slope;
                            db[oc] += gpre;
                            for ci in 0..c {
                                for u in 0..k.0 {
                                    for v in 0..k.1 {
                                        let (iy, ix) = (
                                            (i * s + u) as isize - p as isize,
                                            (j * s + v) as isize - p as isize,
                                        );
                                        let wi = ((oc * c + ci) * k.0 + u) * k.1 + v;
                                        dw[wi] += gpre * xat(n, ci, iy, ix);
                                        if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < h
                                            && (ix as usize) < w
                                        {
                                            dx[((n * c + ci) * h + iy as usize) * w
                                                + ix as usize] += gpre * wt[wi] as f64;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let close = |got: Vec<f32>, want: &[f64], what: &str| {
                for (a, e) in got.iter().zip(want) {
                    assert!(
                        (*a as f64 - e).abs() < TOL,
                        "{what} c{c} o{o} k{k:?} s{s} p{p} {act:?}: {a} vs {e}"
                    );
                }
            };
            close(vals(&y), &yref, "output");
            close(
                vals(grads.get(params[0].1.as_tensor()).unwrap()),
                &dw,
                "weight grad",
            );
            close(
                vals(grads.get(params[1].1.as_tensor()).unwrap()),
                &db,
                "bias grad",
            );
            close(vals(grads.get(x.as_tensor()).unwrap()), &dx, "input grad");
            // An input that needs no gradient (the first layer's) takes
            // another weight-gradient path for small layers.
            let y = conv
                .forward_act(&x.as_tensor().detach(), true, act)
                .unwrap();
            let grads = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
            let (gw_only, gb_only) = (
                grads.get(params[0].1.as_tensor()).unwrap(),
                grads.get(params[1].1.as_tensor()).unwrap(),
            );
            close(vals(gw_only), &dw, "weight grad without input grad");
            close(vals(gb_only), &db, "bias grad without input grad");
        }
    }
}

/// Central differences of `f` at every element of `x`.
fn finite_diff(x: &[f32], f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let h = 1e-2f32;
    (0..x.len())
        .map(|i| {
            let mut p = x.to_vec();
            p[i] += h;
            let up = f(&p);
            p[i] -= 2.0 * h;
            (up - f(&p)) / (2.0 * h as f64)
        })
        .collect()
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_both_modes() {
    let dims = (3usize, 2usize, 2usize, 3usize);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let x0 = seq(n, 0.9);
    let gw = Tensor::from_vec(seq(n, 2.0), dims, &Device::Cpu).unwrap();
    for train in [true, false] {
        for act in [Activation::Identity, Activation::Elu] {
            let store = ParamStore::new(0);
            let bn = batch_norm2d(2, BatchNormConfig::default(), store.var_builder()).unwrap();
            let loss = |x: &[f32]| -> f64 {
                let x = Tensor::from_vec(x.to_vec(), dims, &Device::Cpu).unwrap();
                let y = bn.forward_act(&x, train, act).unwrap();
                (y * &gw)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_dtype(candle_core::DType::F64)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            let fd = finite_diff(&x0, loss);
            let x = Var::from_vec(x0.clone(), dims, &Device::Cpu).unwrap();
            let y = bn.forward_act(x.as_tensor(), train, act).unwrap();
            let grads = (y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
            for (a, e) in vals(grads.get(x.as_tensor()).unwrap()).iter().zip(&fd) {
                assert!(
                    (*a as f64 - e).abs() < 2e-2,
                    "train={train} {act:?}: {a} vs {e}"
                );
            }
        }
    }
}

/// One pass over shifted values must keep the variance of data far from
/// zero: mean 1000, spread about 1, with the first example shifted away
/// from the rest.
#[test]
fn batch_statistics_are_exact_for_data_far_from_zero() {
    let dims = (4usize, 3usize, 5usize, 7usize);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let x: Vec<f32> = seq(n, 0.4)
        .iter()
        .enumerate()
        .map(|(i, v)| 1000.0 + v + if i < n / dims.0 { 3.0 } else { 0.0 })
        .collect();
    let store = ParamStore::new(0);
    let bn = batch_norm2d(dims.1, BatchNormConfig::default(), store.var_builder()).unwrap();
    let t = Tensor::from_vec(x.clone(), dims, &Device::Cpu).unwrap();
    let y = vals(&bn.forward_act(&t, true, Activation::Identity).unwrap());
    let state: std::collections::HashMap<String, Tensor> = store.state_dict().into_iter().collect();
    let (rm, rv) = (vals(&state["running_mean"]), vals(&state["running_var"]));
    let per = dims.2 * dims.3;
    for c in 0..dims.1 {
        let v: Vec<f64> = (0..dims.0)
            .flat_map(|b| x[(b * dims.1 + c) * per..][..per].iter().map(|&v| v as f64))
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        let unbiased = var * v.len() as f64 / (v.len() - 1) as f64;
        assert!((rm[c] as f64 - 0.1 * mean).abs() < 1e-3, "mean {c}");
        assert!(
            (rv[c] as f64 - (0.9 + 0.1 * unbiased)).abs() < 1e-4,
            "var {c}"
        );
        for b in 0..dims.0 {
            for i in 0..per {
                let at = (b * dims.1 + c) * per + i;
                let want = (x[at] as f64 - mean) / (var + 1e-5).sqrt();
                assert!(
                    (y[at] as f64 - want).abs() < 2e-3,
                    "y {at}: {} vs {want}",
                    y[at]
                );
            }
        }
    }
}

/// Every tensor of a store's state_dict, as f32 values.
fn state(store: &ParamStore) -> Vec<Vec<f32>> {
    let state = store.state_dict();
    let f32s = state
        .iter()
        .map(|(_, t)| t.to_dtype(candle_core::DType::F32));
    f32s.map(|t| vals(&t.unwrap())).collect()
}

/// A fused op's tensors equal the separate layers' (up to float rounding).
fn assert_same(fused: &[Vec<f32>], layers: &[Vec<f32>], case: &str) {
    assert_eq!(fused.len(), layers.len());
    for (i, (a, b)) in fused.iter().zip(layers).enumerate() {
        assert_eq!(a.len(), b.len(), "{case} tensor {i}");
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() < 1e-5, "{case} tensor {i}: {p} vs {q}");
        }
    }
}

/// The fused batch norm, activation and max pooling against the three
/// layers one by one: outputs, every gradient and the running statistics,
/// in both modes, on a size the window does not divide.
#[test]
fn fused_batch_norm_and_pooling_equal_the_layers() {
    let dims = (3usize, 2usize, 7usize, 8usize);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let x0 = seq(n, 0.2);
    let gw = Tensor::from_vec(
        seq(dims.0 * dims.1 * 2 * 2, 1.3),
        (dims.0, dims.1, 2, 2),
        &Device::Cpu,
    )
    .unwrap();
    for train in [true, false] {
        for act in [Activation::Identity, Activation::Relu, Activation::Elu] {
            let run = |fused: bool| {
                let store = ParamStore::new(0);
                let bn = batch_norm2d(2, BatchNormConfig::default(), store.var_builder()).unwrap();
                // Non-trivial affine parameters and running statistics.
                for (name, var) in store.trainable() {
                    let v = seq(2, if name.ends_with("weight") { 3.0 } else { 4.0 });
                    var.set(&Tensor::from_vec(v, 2, &Device::Cpu).unwrap())
                        .unwrap();
                }
                let x = Var::from_vec(x0.clone(), dims, &Device::Cpu).unwrap();
                let y = if fused {
                    bn.forward_act_max_pool(x.as_tensor(), train, act, 3)
                        .unwrap()
                } else {
                    let y = bn.forward_act(x.as_tensor(), train, act).unwrap();
                    max_pool2d(&y, 3, 3).unwrap()
                };
                let grads = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![vals(&y), vals(grads.get(x.as_tensor()).unwrap())];
                for (_, var) in store.trainable() {
                    out.push(vals(grads.get(var.as_tensor()).unwrap()));
                }
                out.extend(state(&store));
                out
            };
            assert_same(&run(true), &run(false), &format!("{train} {act:?}"));
        }
    }
}

/// Two conv/batch-norm blocks: `[3, 2, 9, 11]` to `[3, 5, 5, 6]` (strided),
/// then to `[3, 4, 3, 4]`.
fn chain_layers(store: &ParamStore) -> [(Conv2d, BatchNorm); 2] {
    let root = store.var_builder();
    let init = Init::Uniform { bound: 0.5 };
    let strided = Conv2dConfig {
        stride: (2, 2),
        padding: (1, 1),
    };
    let block = |i: usize, c: usize, o: usize, cfg: Conv2dConfig| {
        let conv = conv2d_init(c, o, (3, 3), cfg, init, init, root.pp(format!("conv{i}")));
        let bn = batch_norm2d(o, BatchNormConfig::default(), root.pp(format!("bn{i}")));
        (conv.unwrap(), bn.unwrap())
    };
    [
        block(1, 2, 5, strided),
        block(2, 5, 4, Conv2dConfig::default()),
    ]
}

/// The blocks of [`chain_layers`]: ReLU after the first convolution, ELU
/// after the second batch norm.
fn chain(layers: &[(Conv2d, BatchNorm); 2]) -> [ConvBn<'_>; 2] {
    let [(conv1, bn1), (conv2, bn2)] = layers;
    [
        ConvBn {
            conv: conv1,
            conv_act: Activation::Relu,
            bn: bn1,
            act: Activation::Identity,
        },
        ConvBn {
            conv: conv2,
            conv_act: Activation::Identity,
            bn: bn2,
            act: Activation::Elu,
        },
    ]
}

/// A fused chain of convolutions and batch norms against the layers one by
/// one: outputs, every gradient and the running statistics, in both modes,
/// for an input with and without a gradient.
#[test]
fn fused_convolutions_and_batch_norms_equal_the_layers() {
    let dims = (3usize, 2usize, 9usize, 11usize);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let x0 = seq(n, 0.6);
    let gw = Tensor::from_vec(seq(3 * 4 * 3 * 4, 2.2), (3, 4, 3, 4), &Device::Cpu).unwrap();
    for train in [true, false] {
        for input_grad in [true, false] {
            let run = |fused: bool| {
                let store = ParamStore::new(3);
                let layers = chain_layers(&store);
                let blocks = chain(&layers);
                let x = Var::from_vec(x0.clone(), dims, &Device::Cpu).unwrap();
                let input = if input_grad {
                    x.as_tensor().clone()
                } else {
                    x.as_tensor().detach()
                };
                let y = if fused {
                    // First a pass over NaNs by layers of the same shapes:
                    // the chain reuses the memory of earlier activations and
                    // gradients, and none of it may leak into the results.
                    let other = chain_layers(&ParamStore::new(4));
                    let nan = Var::from_vec(vec![f32::NAN; n], dims, &Device::Cpu).unwrap();
                    let y = forward_conv_bn(&chain(&other), nan.as_tensor(), train).unwrap();
                    drop(y.sum_all().unwrap().backward().unwrap());
                    forward_conv_bn(&blocks, &input, train).unwrap()
                } else {
                    blocks.iter().fold(input, |x, b| {
                        let y = b.conv.forward_act(&x, train, b.conv_act).unwrap();
                        b.bn.forward_act(&y, train, b.act).unwrap()
                    })
                };
                let grads = (&y * &gw).unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![vals(&y)];
                if input_grad {
                    out.push(vals(grads.get(x.as_tensor()).unwrap()));
                }
                for (_, var) in store.trainable() {
                    out.push(vals(grads.get(var.as_tensor()).unwrap()));
                }
                out.extend(state(&store));
                out
            };
            assert_same(&run(true), &run(false), &format!("{train} {input_grad}"));
        }
    }
}

#[test]
fn a_fused_chain_needs_a_block_and_an_input_the_kernels_fit() {
    let store = ParamStore::new(0);
    let conv = conv2d(
        1,
        2,
        (5, 5),
        Conv2dConfig::default(),
        store.var_builder().pp("conv"),
    )
    .unwrap();
    let bn = batch_norm2d(2, BatchNormConfig::default(), store.var_builder().pp("bn")).unwrap();
    let x = Tensor::zeros((2, 1, 4, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(forward_conv_bn(&[], &x, true).is_err());
    let block = ConvBn {
        conv: &conv,
        conv_act: Activation::Relu,
        bn: &bn,
        act: Activation::Identity,
    };
    let err = forward_conv_bn(&[block], &x, true).unwrap_err().to_string();
    assert!(err.contains("larger than the padded input"), "{err}");
}

#[test]
fn rectangular_max_pooling_routes_each_gradient_to_its_window_maximum() {
    let (h, w) = (11usize, 9usize);
    let xs = seq(h * w, 0.2);
    let x = Var::from_vec(xs.clone(), (1, 1, h, w), &Device::Cpu).unwrap();
    let y = max_pool2d_hw(x.as_tensor(), (5, 3), (3, 2)).unwrap();
    assert_eq!(y.dims(), [1, 1, 3, 4]);
    let g = y.sum_all().unwrap().backward().unwrap();
    let dx = vals(g.get(x.as_tensor()).unwrap());
    let mut want = vec![0.0f32; h * w];
    for (i, v) in vals(&y).iter().enumerate() {
        let (oy, ox) = (i / 4, i % 4);
        let idx = (oy * 3..oy * 3 + 5)
            .flat_map(|r| (ox * 2..ox * 2 + 3).map(move |c| r * w + c))
            .find(|&j| xs[j] == *v)
            .unwrap();
        want[idx] += 1.0;
    }
    assert_eq!(dx, want);
}
