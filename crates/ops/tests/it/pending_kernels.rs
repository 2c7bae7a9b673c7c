//! The kernels of issue 11 that are not yet ops, through the public API as the wiring will
//! call them: identities that tie kernels together (cross-entropy is nll of log-softmax, a
//! maximum is the element its argmax gathers, log-softmax is x minus logsumexp), and `f32`
//! against `f64` on the same inputs.

use wengert_ops::kernels::class_loss::{
    CrossEntropyOptions, cross_entropy, cross_entropy_vjp, nll_loss, nll_loss_vjp,
};
use wengert_ops::kernels::extrema::{Extreme, arg_extremum, extremum, extremum_shape};
use wengert_ops::kernels::indexing::gather;
use wengert_ops::kernels::logsumexp::logsumexp;
use wengert_ops::kernels::moments::{norm, std, var};
use wengert_ops::kernels::pointwise_loss::bce_with_logits;
use wengert_ops::kernels::reduction::Reduction;
use wengert_ops::kernels::softmax_axis::{log_softmax_along, log_softmax_along_vjp};
use wengert_ops::kernels::{batched_matmul, lanes};
use wengert_ops::{Float, Shape, TensorRef};

fn shape(d: &[usize]) -> Shape {
    Shape::new(d).unwrap()
}

/// Deterministic values in (-2, 2).
fn data(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let v = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(31);
            ((v >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

#[test]
fn cross_entropy_is_nll_of_log_softmax_values_and_gradients() {
    // [N, C, d] with classes on axis 1, class weights, every reduction.
    let s = shape(&[3, 4, 2]);
    let z = data(s.numel(), 1);
    let t = [0.0, 3.0, 2.0, 2.0, 1.0, 0.0];
    let w = [0.5, 1.0, 2.0, 1.5];
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let n = if reduction == Reduction::None { 6 } else { 1 };
        let o = CrossEntropyOptions {
            reduction,
            ..Default::default()
        };
        let zt = TensorRef::new(&s, &z).unwrap();
        let mut ce = vec![0.0; n];
        cross_entropy(zt, &t, Some(&w), &o, &mut ce).unwrap();
        let mut lp = vec![0.0; z.len()];
        log_softmax_along(zt, 1, &mut lp);
        let mut nll = vec![0.0; n];
        let lpt = TensorRef::new(&s, &lp).unwrap();
        nll_loss(lpt, &t, Some(&w), None, reduction, &mut nll).unwrap();
        for (a, b) in ce.iter().zip(&nll) {
            assert!((a - b).abs() < 1e-14, "{reduction:?}: {a} {b}");
        }
        // The chain rule through the two kernels gives cross-entropy's own gradient.
        let g = data(n, 2);
        let mut direct = vec![0.0; z.len()];
        cross_entropy_vjp::<f64, false>(zt, &t, Some(&w), &o, &g, 0, &mut direct);
        let mut dlp = vec![0.0; z.len()];
        nll_loss_vjp::<f64, false>(&s, &t, Some(&w), None, reduction, &g, &mut dlp);
        let mut chained = vec![0.0; z.len()];
        log_softmax_along_vjp::<f64, false>(lpt, 1, &dlp, &mut chained);
        for (a, b) in direct.iter().zip(&chained) {
            assert!((a - b).abs() < 1e-14, "{reduction:?}: {a} {b}");
        }
    }
}

#[test]
fn a_maximum_is_the_element_its_argmax_gathers() {
    let s = shape(&[3, 5, 2]);
    let x = data(s.numel(), 3);
    for axis in 0..3 {
        let kept = extremum_shape("max", &s, Some(axis), true).unwrap();
        let xt = TensorRef::new(&s, &x).unwrap();
        let (mut m, mut i, mut picked) = (
            vec![0.0; kept.numel()],
            vec![0.0; kept.numel()],
            vec![0.0; kept.numel()],
        );
        extremum(xt, Some(axis), Extreme::Max, &mut m);
        arg_extremum(xt, Some(axis), Extreme::Max, &mut i);
        gather(xt, axis, TensorRef::new(&kept, &i).unwrap(), &mut picked).unwrap();
        assert_eq!(m, picked, "axis {axis}");
    }
}

#[test]
fn log_softmax_is_x_minus_logsumexp() {
    let s = shape(&[2, 3, 4]);
    let x = data(s.numel(), 4);
    let xt = TensorRef::new(&s, &x).unwrap();
    for axis in 0..3 {
        let mut lp = vec![0.0; x.len()];
        log_softmax_along(xt, axis, &mut lp);
        let l = lanes::Lanes::of(&s, Some(axis));
        let mut lse = vec![0.0; l.count()];
        logsumexp(xt, Some(axis), &mut lse);
        for (j, &lse) in lse.iter().enumerate() {
            for k in l.offsets(j) {
                assert!((lp[k] - (x[k] - lse)).abs() < 1e-14);
            }
        }
    }
}

/// Runs `f` in both element types on the same inputs and checks that `f32` is within `tol`
/// (relative to `max(1, |value|)`) of `f64`.
fn agree(name: &str, tol: f64, f64_out: Vec<f64>, f32_out: Vec<f32>) {
    assert_eq!(f64_out.len(), f32_out.len(), "{name}");
    for (a, b) in f64_out.iter().zip(&f32_out) {
        let err = (a - f64::from(*b)).abs() / a.abs().max(1.0);
        assert!(err < tol, "{name}: f64 {a}, f32 {b}");
    }
}

fn both<E: Float>(x: &[f64]) -> Vec<E> {
    x.iter().map(|&v| E::from_f64(v)).collect()
}

/// One reduction in one element type.
fn reduce<E: Float>(s: &Shape, x: &[f64], kernel: &str) -> Vec<E> {
    let x = both::<E>(x);
    let xt = TensorRef::new(s, &x).unwrap();
    let n = lanes::Lanes::of(s, Some(1)).count();
    let mut out = vec![E::zero(); n];
    match kernel {
        "amax" => extremum(xt, Some(1), Extreme::Max, &mut out),
        "logsumexp" => logsumexp(xt, Some(1), &mut out),
        "var" => var(xt, Some(1), 1.0, &mut out),
        "std" => std(xt, Some(1), 0.0, &mut out),
        _ => norm(xt, Some(1), &mut out),
    }
    out
}

#[test]
fn f32_agrees_with_f64() {
    let s = shape(&[3, 7, 2]);
    let x = data(s.numel(), 5);
    for kernel in ["amax", "logsumexp", "var", "std", "norm"] {
        agree(
            kernel,
            1e-6,
            reduce::<f64>(&s, &x, kernel),
            reduce::<f32>(&s, &x, kernel),
        );
    }
    let t: Vec<f64> = data(s.numel(), 6).iter().map(|v| (v + 2.0) / 4.0).collect();
    let bce = |reduction| {
        let (mut a, mut b) = (vec![0.0f64; 1], vec![0.0f32; 1]);
        let (x64, x32) = (both::<f64>(&x), both::<f32>(&x));
        let (t64, t32) = (both::<f64>(&t), both::<f32>(&t));
        let w = [2.0, 0.5];
        let w32 = [2.0f32, 0.5];
        bce_with_logits(
            TensorRef::new(&s, &x64).unwrap(),
            &t64,
            Some(&w),
            reduction,
            &mut a,
        );
        bce_with_logits(
            TensorRef::new(&s, &x32).unwrap(),
            &t32,
            Some(&w32),
            reduction,
            &mut b,
        );
        agree("bce_with_logits", 1e-6, a, b);
    };
    bce(Reduction::Mean);
    bce(Reduction::Sum);
    let (sa, sb) = (shape(&[2, 1, 3, 4]), shape(&[3, 4, 5]));
    let out = batched_matmul::batched_matmul_shape(&sa, &sb).unwrap();
    let (a, b) = (data(sa.numel(), 7), data(sb.numel(), 8));
    let mut c64 = vec![0.0f64; out.numel()];
    let mut c32 = vec![0.0f32; out.numel()];
    let (a32, b32) = (both::<f32>(&a), both::<f32>(&b));
    batched_matmul::batched_matmul(
        TensorRef::new(&sa, &a).unwrap(),
        TensorRef::new(&sb, &b).unwrap(),
        &mut c64,
    );
    batched_matmul::batched_matmul(
        TensorRef::new(&sa, &a32).unwrap(),
        TensorRef::new(&sb, &b32).unwrap(),
        &mut c32,
    );
    agree("batched matmul", 1e-5, c64, c32);
}
