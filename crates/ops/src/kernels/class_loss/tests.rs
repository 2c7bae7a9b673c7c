//! The classification losses against PyTorch's definitions written out in f64, and their
//! gradients against finite differences.

use super::*;
use crate::kernels::check::{FD_TOL, fd_error, values};
use proptest::prelude::*;

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

/// One problem: input shape, targets (class indices or probabilities), optional weights.
struct Problem {
    shape: Shape,
    target_shape: Shape,
    target: Vec<f64>,
    weight: Option<Vec<f64>>,
}

impl Problem {
    /// Class-index targets for an input of `dims` (classes on axis 1, or 0 for a vector),
    /// with lane 1 set to `ignore` when given.
    fn classes(dims: &[usize], seed: u64, weighted: bool, ignore: Option<i64>) -> Problem {
        let shape = Shape::new(dims).unwrap();
        let axis = class_axis(dims.len());
        let c = dims[axis];
        let target_shape = shape.without_axis(axis).unwrap();
        let mut target: Vec<f64> = values(target_shape.numel(), seed)
            .iter()
            .map(|v| ((v + 2.0) / 4.0 * c as f64).floor().min(c as f64 - 1.0))
            .collect();
        if let (Some(i), true) = (ignore, target.len() > 1) {
            target[1] = i as f64;
        }
        let weight = weighted.then(|| values(c, seed + 1).iter().map(|v| v + 2.5).collect());
        Problem {
            shape,
            target_shape,
            target,
            weight,
        }
    }

    /// Probability targets (each lane sums to 1).
    fn probabilities(dims: &[usize], seed: u64, weighted: bool) -> Problem {
        let mut p = Problem::classes(dims, seed, weighted, None);
        let lanes = Lanes::of(&p.shape, Some(class_axis(dims.len())));
        let raw: Vec<f64> = values(p.shape.numel(), seed + 2)
            .iter()
            .map(|v| v.exp())
            .collect();
        let mut t = vec![0.0; raw.len()];
        for j in 0..lanes.count() {
            let s: f64 = lanes.offsets(j).map(|k| raw[k]).sum();
            for k in lanes.offsets(j) {
                t[k] = raw[k] / s;
            }
        }
        p.target = t;
        p.target_shape = p.shape;
        p
    }

    fn w(&self) -> Option<&[f64]> {
        self.weight.as_deref()
    }
}

/// PyTorch's cross-entropy (or, with `nll`, its nll_loss on the input as log-probabilities),
/// written from the definitions.
fn naive(p: &Problem, x: &[f64], t: &[f64], o: &CrossEntropyOptions, nll: bool) -> Vec<f64> {
    let lanes = Lanes::of(&p.shape, Some(class_axis(p.shape.rank())));
    let c = lanes.len;
    let w = |k: usize| p.weight.as_ref().map_or(1.0, |w| w[k]);
    let eps = o.label_smoothing;
    let (mut terms, mut divisor) = (Vec::new(), 0.0);
    for j in 0..lanes.count() {
        let ks: Vec<usize> = lanes.offsets(j).collect();
        let lse = ks.iter().map(|&k| x[k].exp()).sum::<f64>().ln();
        let lp: Vec<f64> = ks
            .iter()
            .map(|&k| if nll { x[k] } else { x[k] - lse })
            .collect();
        let term = match o.targets {
            Targets::Classes => {
                if o.ignore_index.is_some_and(|i| i as f64 == t[j]) {
                    0.0
                } else {
                    let k = t[j] as usize;
                    divisor += w(k);
                    let smooth: f64 = (0..c).map(|c| -w(c) * lp[c]).sum();
                    (1.0 - eps) * (-w(k) * lp[k]) + eps / c as f64 * smooth
                }
            }
            Targets::Probabilities => {
                divisor += 1.0;
                (0..c)
                    .map(|cc| -w(cc) * ((1.0 - eps) * t[ks[cc]] + eps / c as f64) * lp[cc])
                    .sum()
            }
        };
        terms.push(term);
    }
    match o.reduction {
        Reduction::None => terms,
        Reduction::Sum => vec![terms.iter().sum()],
        Reduction::Mean => vec![terms.iter().sum::<f64>() / divisor],
    }
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
}

/// Cross-entropy: forward against [`naive`], and finite differences through the logits (and
/// the probability targets).
fn check_ce(p: &Problem, o: &CrossEntropyOptions, seed: u64) -> f64 {
    let out_n = cross_entropy_shape(&p.shape, &p.target_shape, None, o)
        .unwrap()
        .numel();
    let x = values(p.shape.numel(), seed);
    let run = |x: &[f64], t: &[f64]| {
        let mut y = vec![0.0; out_n];
        cross_entropy(TensorRef::trusted(&p.shape, x), t, p.w(), o, &mut y).unwrap();
        y
    };
    let got = run(&x, &p.target);
    let want = naive(p, &x, &p.target, o, false);
    assert!(close(&got, &want), "{o:?}: {got:?} {want:?}");
    let g = values(out_n, seed + 5);
    let mut worst = 0.0f64;
    let differentiable = if o.targets == Targets::Probabilities {
        2
    } else {
        1
    };
    for index in 0..differentiable {
        let f = |v: &[f64]| {
            if index == 0 {
                run(v, &p.target)
            } else {
                run(&x, v)
            }
        };
        let vjp = |v: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            let (x, t) = if index == 0 {
                (v, &p.target[..])
            } else {
                (&x[..], v)
            };
            let z = TensorRef::trusted(&p.shape, x);
            if acc {
                cross_entropy_vjp::<f64, true>(z, t, p.w(), o, g, index, gi)
            } else {
                cross_entropy_vjp::<f64, false>(z, t, p.w(), o, g, index, gi)
            }
        };
        let at = if index == 0 { &x } else { &p.target };
        worst = worst.max(fd_error(&f, &vjp, at, &g));
    }
    worst
}

fn check_nll(p: &Problem, ignore: Option<i64>, reduction: Reduction, seed: u64) -> f64 {
    let out_n = nll_loss_shape(&p.shape, &p.target_shape, None, reduction)
        .unwrap()
        .numel();
    let x = values(p.shape.numel(), seed);
    let run = |x: &[f64]| {
        let mut y = vec![0.0; out_n];
        let xt = TensorRef::trusted(&p.shape, x);
        nll_loss(xt, &p.target, p.w(), ignore, reduction, &mut y).unwrap();
        y
    };
    let o = CrossEntropyOptions {
        ignore_index: ignore,
        reduction,
        ..Default::default()
    };
    assert!(close(&run(&x), &naive(p, &x, &p.target, &o, true)));
    let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
        let t = &p.target;
        if acc {
            nll_loss_vjp::<f64, true>(&p.shape, t, p.w(), ignore, reduction, g, gi)
        } else {
            nll_loss_vjp::<f64, false>(&p.shape, t, p.w(), ignore, reduction, g, gi)
        }
    };
    fd_error(&run, &vjp, &x, &values(out_n, seed + 7))
}

const SHAPES: [&[usize]; 5] = [&[4, 3], &[5], &[2, 3, 2], &[1, 1], &[3, 4, 1]];

#[test]
fn nll_loss_matches_pytorch_definition_and_finite_differences() {
    let mut worst = 0.0f64;
    for (i, dims) in SHAPES.into_iter().enumerate() {
        for weighted in [false, true] {
            for ignore in [None, Some(-100)] {
                let p = Problem::classes(dims, i as u64, weighted, ignore);
                for reduction in REDUCTIONS {
                    let err = check_nll(&p, ignore, reduction, 40 + i as u64);
                    assert!(err < FD_TOL, "{dims:?} {weighted} {ignore:?}: {err}");
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("fd worst nll_loss: {worst:e}");
}

#[test]
fn cross_entropy_variants_match_pytorch_definitions_and_finite_differences() {
    let mut worst = 0.0f64;
    for (i, dims) in SHAPES.into_iter().enumerate() {
        for weighted in [false, true] {
            for eps in [0.0, 0.1, 1.0] {
                for reduction in REDUCTIONS {
                    let seed = 60 + i as u64;
                    let o = CrossEntropyOptions {
                        targets: Targets::Classes,
                        ignore_index: Some(-100),
                        label_smoothing: eps,
                        reduction,
                    };
                    let p = Problem::classes(dims, seed, weighted, Some(-100));
                    let err = check_ce(&p, &o, seed);
                    assert!(err < FD_TOL, "{dims:?} {o:?}: {err}");
                    worst = worst.max(err);
                    let o = CrossEntropyOptions {
                        targets: Targets::Probabilities,
                        ignore_index: None,
                        ..o
                    };
                    let err = check_ce(&Problem::probabilities(dims, seed, weighted), &o, seed);
                    assert!(err < FD_TOL, "{dims:?} {o:?}: {err}");
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("fd worst cross_entropy (weights, smoothing, soft targets): {worst:e}");
}

#[test]
fn weighted_mean_divides_by_the_weight_of_the_targets() {
    // Uniform logits over 2 classes: every log-probability is -ln 2. Targets 0 and 1 with
    // weights 1 and 3: (1 + 3)·ln 2 / (1 + 3).
    let s = Shape::new(&[2, 2]).unwrap();
    let mut y = [0.0];
    let o = CrossEntropyOptions::default();
    let z = [0.0, 0.0, 0.0, 0.0];
    cross_entropy(
        TensorRef::trusted(&s, &z),
        &[0.0, 1.0],
        Some(&[1.0, 3.0]),
        &o,
        &mut y,
    )
    .unwrap();
    assert!((y[0] - 2f64.ln()).abs() < 1e-15);
    // Logits [0, ln 3]: lp = [-ln 4, ln 3 - ln 4]. Target 0 only, weight 1 (the other is
    // ignored): ln 4.
    let z = [0.0, 3f64.ln(), 5.0, 7.0];
    let o = CrossEntropyOptions {
        ignore_index: Some(-100),
        ..o
    };
    cross_entropy(
        TensorRef::trusted(&s, &z),
        &[0.0, -100.0],
        Some(&[1.0, 3.0]),
        &o,
        &mut y,
    )
    .unwrap();
    assert!((y[0] - 4f64.ln()).abs() < 1e-15, "{}", y[0]);
}

#[test]
fn huge_logits_stay_finite() {
    let s = Shape::new(&[1, 3]).unwrap();
    let z = [1e4f32, -1e4, 0.0];
    let mut y = [0.0f32];
    let o = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    cross_entropy(TensorRef::trusted(&s, &z), &[1.0], None, &o, &mut y).unwrap();
    assert!(y[0].is_finite() && y[0] > 1e4, "{}", y[0]);
}

#[test]
fn bad_labels_shapes_and_arguments_are_errors() {
    let s = Shape::new(&[2, 3]).unwrap();
    let z = [0.0f64; 6];
    let mut y = [7.0];
    for (label, out_of_range) in [(3.0, true), (-1.0, false), (0.5, false), (f64::NAN, false)] {
        let t = [0.0, label];
        let o = CrossEntropyOptions::default();
        let err = cross_entropy(TensorRef::trusted(&s, &z), &t, None, &o, &mut y).unwrap_err();
        assert_eq!(
            matches!(err, Error::LabelOutOfRange { row: 1, .. }),
            out_of_range,
            "{label}"
        );
        let err = nll_loss(
            TensorRef::trusted(&s, &z),
            &t,
            None,
            None,
            Reduction::Sum,
            &mut y,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::LabelOutOfRange { op: "nll_loss", .. }
                    | Error::LabelNotAClass { op: "nll_loss", .. }
            ),
            "{label}"
        );
        assert_eq!(y, [7.0], "a failed forward leaves its output untouched");
    }
    let o = CrossEntropyOptions::default();
    let bad_target = Shape::vector(3);
    assert!(matches!(
        cross_entropy_shape(&s, &bad_target, None, &o),
        Err(Error::ShapeMismatch { .. })
    ));
    let soft = CrossEntropyOptions {
        targets: Targets::Probabilities,
        ..o
    };
    assert!(cross_entropy_shape(&s, &s, None, &soft).is_ok());
    assert!(matches!(
        cross_entropy_shape(&s, &Shape::vector(2), None, &soft),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        nll_loss_shape(
            &s,
            &Shape::vector(2),
            Some(&Shape::vector(2)),
            Reduction::Mean
        ),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        nll_loss_shape(&Shape::SCALAR, &Shape::SCALAR, None, Reduction::Mean),
        Err(Error::WrongRank { .. })
    ));
    assert!(matches!(
        nll_loss_shape(
            &Shape::new(&[2, 0]).unwrap(),
            &Shape::vector(2),
            None,
            Reduction::Sum
        ),
        Err(Error::EmptyBatch { .. })
    ));
    assert!(matches!(
        nll_loss_shape(
            &Shape::new(&[0, 3]).unwrap(),
            &Shape::vector(0),
            None,
            Reduction::Mean
        ),
        Err(Error::EmptyBatch { .. })
    ));
    for eps in [-0.1, 1.5, f64::NAN] {
        let o = CrossEntropyOptions {
            label_smoothing: eps,
            ..o
        };
        assert!(matches!(
            cross_entropy_shape(&s, &Shape::vector(2), None, &o),
            Err(Error::InvalidArgument {
                argument: "label_smoothing",
                ..
            })
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_problems(
        n in 1usize..4,
        c in 1usize..5,
        seed in 0u64..1000,
        weighted in any::<bool>(),
        soft in any::<bool>(),
        eps in 0.0f64..1.0,
        pick in 0usize..3,
    ) {
        let o = CrossEntropyOptions {
            targets: if soft { Targets::Probabilities } else { Targets::Classes },
            ignore_index: None,
            label_smoothing: eps,
            reduction: REDUCTIONS[pick],
        };
        let p = if soft {
            Problem::probabilities(&[n, c], seed, weighted)
        } else {
            Problem::classes(&[n, c], seed, weighted, None)
        };
        prop_assert!(check_ce(&p, &o, seed) < FD_TOL);
    }
}
