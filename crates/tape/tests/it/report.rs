//! Every op gradchecked once on fixed, representative inputs, printed as a table:
//! `cargo test -p wengert-tape --test it report:: -- --nocapture`. And each op's largest
//! error over many drawn problems (the gradient-check harness's strategies, once and with
//! fan-out), one row per op: `cargo test -p wengert-tape --test it largest_fd_error --
//! --ignored --nocapture` (`WENGERT_FD_DRAWS` draws per op, 64 by default; `WENGERT_FD_OPS`, a
//! comma-separated list of ops, checks those alone).

use ndarray::ArrayD;
use wengert_tape::gradcheck::GradcheckMethod;
use wengert_tape::{GradcheckOptions, GradcheckReport, Result, gradcheck};

use wengert_tape::{
    BinaryOp, CrossEntropyOptions, Distance, LossOp, ReduceOp, Reduction, Targets, UnaryOp,
};

use crate::cases::{Case, Problem, Values, binary_entry, unary_entry};
use crate::network::{Loss, Mlp};
use crate::util::Rng;

/// The fixed problems: each op on a small shape, binary ops on a broadcasting pair, and one
/// product large enough for the dot-product test.
fn problems() -> Vec<Problem> {
    let mut rng = Rng::new(2024);
    let mut general = |dims: &[usize]| rng.array(dims, 2.0);
    let (x34, y34, x4) = (general(&[3, 4]), general(&[3, 4]), general(&[4]));
    let (x31, x14, scalar) = (general(&[3, 1]), general(&[1, 4]), general(&[]));
    let (x234, x35, x45) = (general(&[2, 3, 4]), general(&[3, 5]), general(&[4, 5]));
    let (big_a, big_b) = (general(&[40, 50]), general(&[50, 30]));
    let mut rng = Rng::new(7);
    let labels = (0..4).map(|_| rng.below(5)).collect();
    let one = |case, x: &ArrayD<f64>| Problem::new(case, vec![x.clone()]);
    let two =
        |case, a: &ArrayD<f64>, b: &ArrayD<f64>| Problem::new(case, vec![a.clone(), b.clone()]);
    // Each elementwise op on its entry's values: unary ones on [3, 4], binary ones on the
    // broadcasting pairs in turn.
    let sample = |v: Values, x: &ArrayD<f64>| match v {
        Values::General => x.clone(),
        Values::AwayFromZero(lo, _) => x.mapv(|v| v.signum() * (lo.max(0.1) + v.abs())),
        Values::Positive => x.mapv(|v| 0.1 + v.abs()),
        Values::Grid(offset) => x.mapv(|v| (v * 8.0).round() / 8.0 + offset),
    };
    let mut problems: Vec<Problem> = UnaryOp::ALL
        .into_iter()
        .filter(|op| op.has_gradient())
        .map(|op| one(Case::Unary(op), &sample(unary_entry::<f64>(op).0, &x34)))
        .collect();
    let pairs = [(&x34, &x4), (&x31, &x14), (&x34, &scalar), (&x34, &y34)];
    let with_gradient = BinaryOp::ALL.into_iter().filter(|op| op.has_gradient());
    for (i, op) in with_gradient.enumerate() {
        let (a, b) = pairs[i % pairs.len()];
        let [va, vb] = binary_entry::<f64>(op).0;
        problems.push(two(Case::Binary(op), &sample(va, a), &sample(vb, b)));
    }
    problems.extend([
        two(Case::MatMul, &x34, &x45),
        two(Case::MatMul, &big_a, &big_b),
        one(Case::Sum, &x234),
        one(Case::Mean, &x234),
        one(
            Case::SumAxis {
                axis: 1,
                keep_dim: false,
            },
            &x234,
        ),
        one(
            Case::SumAxis {
                axis: 2,
                keep_dim: true,
            },
            &x234,
        ),
        one(
            Case::MeanAxis {
                axis: 0,
                keep_dim: false,
            },
            &x234,
        ),
        one(
            Case::MeanAxis {
                axis: 1,
                keep_dim: true,
            },
            &x234,
        ),
        one(Case::Reshape(vec![4, 6]), &x234),
        one(Case::Transpose, &x34),
        one(Case::TransposeAxes(0, 2), &x234),
        one(Case::Softmax, &x35),
        one(Case::LogSoftmax, &x35),
        two(Case::Mse, &x34, &y34),
        one(Case::CrossEntropy(labels), &x45),
        two(Case::Custom, &x34, &y34),
    ]);
    // Each reduction along an axis and over all elements; the extremes on distinct values.
    let distinct = x234.mapv(|v| v * 7.0 + 0.001 * v.powi(2));
    let away = x234.mapv(|v| v.signum() * (0.5 + v.abs() / 2.0));
    for op in [
        ReduceOp::Amax,
        ReduceOp::Amin,
        ReduceOp::MaxAt,
        ReduceOp::MinAt,
        ReduceOp::LogSumExp,
        ReduceOp::Prod,
        ReduceOp::Var(1.0),
        ReduceOp::Std(1.0),
        ReduceOp::Norm,
    ] {
        let x = match op {
            ReduceOp::Amax | ReduceOp::Amin | ReduceOp::MaxAt | ReduceOp::MinAt => &distinct,
            ReduceOp::Prod | ReduceOp::Norm => &away,
            _ => &x234,
        };
        for (axis, keep_dim) in [(Some(1), false), (None, true)] {
            problems.push(one(Case::Reduce { op, axis, keep_dim }, x));
        }
    }
    // Each loss with each reduction: the distances on values a sixteenth off the eighths
    // (away from their kinks), the class losses against labels with one ignored.
    let grid = |x: &ArrayD<f64>, offset: f64| x.mapv(|v| (v * 8.0).round() / 8.0 + offset);
    let unit = y34.mapv(|v| v.abs() / 2.0);
    let classes = ArrayD::from_shape_vec(
        ndarray::IxDyn(&[2, 4]),
        vec![0., 2., -100., 1., 2., 0., 1., 1.],
    )
    .expect("sized");
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for distance in [
            Distance::L1,
            Distance::SmoothL1 { beta: 1.0 },
            Distance::Huber { delta: 0.5 },
        ] {
            let loss = LossOp::Distance {
                distance,
                reduction,
            };
            problems.push(two(Case::Loss(loss), &grid(&x34, 0.0), &grid(&y34, 0.0625)));
        }
        problems.push(two(
            Case::Loss(LossOp::BceWithLogits { reduction }),
            &x34,
            &unit,
        ));
        let options = CrossEntropyOptions {
            targets: Targets::Probabilities,
            ignore_index: None,
            label_smoothing: 0.1,
            reduction,
        };
        problems.push(two(Case::Loss(LossOp::CrossEntropy(options)), &x34, &unit));
        let class_losses = [
            LossOp::Nll {
                ignore_index: Some(-100),
                reduction,
            },
            LossOp::CrossEntropy(CrossEntropyOptions {
                targets: Targets::Classes,
                ignore_index: Some(-100),
                label_smoothing: 0.1,
                reduction,
            }),
        ];
        for loss in class_losses {
            problems.push(one(Case::ClassLoss(loss, classes.clone()), &x234));
        }
    }
    let index = ArrayD::from_shape_vec(
        ndarray::IxDyn(&[2, 2, 4]),
        (0..16).map(|i| (i % 3) as f64).collect(),
    )
    .expect("sized");
    problems.extend([
        one(Case::Squeeze(0), &x14),
        one(Case::Unsqueeze(1), &x34),
        one(Case::Flatten(0, 1), &x234),
        one(Case::BroadcastTo(vec![2, 3, 4]), &x4),
        one(Case::BroadcastTo(vec![3, 4]), &x31),
        one(
            Case::Narrow {
                axis: 2,
                start: -3,
                length: 2,
            },
            &x234,
        ),
        one(
            Case::IndexSelect {
                axis: 1,
                indices: vec![2, 0, 2, 1],
            },
            &x234,
        ),
        one(Case::Gather { axis: 1, index }, &x234),
        two(Case::BatchedMatMul, &x234, &x45),
        two(Case::BatchedMatMul, &x34, &general_234_5()),
        one(Case::Dropout { p: 0.3, seed: 11 }, &x234),
        one(
            Case::Slice(vec![
                wengert_tape::SliceAxis::range(-1, 2),
                wengert_tape::SliceAxis {
                    start: 0,
                    end: i64::MAX,
                    step: 2,
                },
            ]),
            &x234,
        ),
        one(Case::Pad(vec![(1, 0), (0, 2), (1, 1)], 0.5), &x234),
        one(
            Case::IndexAdd {
                axis: 1,
                len: 2,
                indices: vec![1, 0, 1],
            },
            &x234,
        ),
        one(
            Case::ScatterAdd {
                axis: 2,
                len: 3,
                index: ArrayD::from_shape_vec(
                    ndarray::IxDyn(&[2, 3, 4]),
                    (0..24).map(|i| (i * 5 % 3) as f64).collect(),
                )
                .expect("sized"),
            },
            &x234,
        ),
    ]);
    for axis in [0, 1, 2] {
        problems.push(one(Case::SoftmaxAxis(axis), &x234));
        problems.push(one(Case::LogSoftmaxAxis(axis), &x234));
    }
    // The ops of many inputs: three operands joined or stacked, a broadcast choice, and the
    // losses with weights.
    let three = vec![x34.clone(), y34.clone(), x34.mapv(|v| v / 2.0 - 0.25)];
    problems.push(Problem::new(Case::Concat(1), three.clone()));
    problems.push(Problem::new(
        Case::Concat(0),
        vec![x34.clone(), x14.clone()],
    ));
    problems.push(Problem::new(Case::Stack(2), three));
    let mask = x31.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    problems.push(Problem::new(
        Case::Where(mask),
        vec![x34.clone(), x4.clone()],
    ));
    let weight = |n: usize| ArrayD::from_shape_fn(ndarray::IxDyn(&[n]), |i| 0.5 + i[0] as f64);
    problems.push(Problem::new(
        Case::WeightedLoss {
            loss: LossOp::BceWithLogits {
                reduction: Reduction::Mean,
            },
            targets: None,
            weight: weight(4),
        },
        vec![x34.clone(), unit.clone()],
    ));
    problems.push(Problem::new(
        Case::WeightedLoss {
            loss: LossOp::Nll {
                ignore_index: Some(-100),
                reduction: Reduction::Mean,
            },
            targets: Some(classes.clone()),
            weight: weight(3),
        },
        vec![x234.clone()],
    ));
    problems.push(Problem::new(
        Case::WeightedLoss {
            loss: LossOp::CrossEntropy(CrossEntropyOptions {
                targets: Targets::Classes,
                ignore_index: Some(-100),
                label_smoothing: 0.1,
                reduction: Reduction::Mean,
            }),
            targets: Some(classes),
            weight: weight(3),
        },
        vec![x234.clone()],
    ));
    // The convolutions: padding, a stride and a dilation, two groups, with a bias and without.
    let mut rng = Rng::new(12);
    let mut conv = |dims: &[usize]| rng.array(dims, 1.0);
    let (image, kernel, bias) = (conv(&[2, 4, 5, 6]), conv(&[3 * 2, 2, 3, 2]), conv(&[6]));
    problems.push(Problem::new(
        Case::Conv2d(wengert_tape::Conv2dArgs {
            stride: [1, 2],
            padding: [1, 0],
            dilation: [2, 1],
            groups: 2,
        }),
        vec![image, kernel, bias],
    ));
    let (signal, taps) = (conv(&[2, 3, 7]), conv(&[4, 3, 3]));
    problems.push(Problem::new(
        Case::Conv1d(wengert_tape::Conv1dArgs {
            stride: 2,
            padding: 1,
            ..Default::default()
        }),
        vec![signal, taps],
    ));
    // The pools, on distinct values (a max pool's tie is a kink).
    let distinct = ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 2, 5, 4]), |i| {
        ((i[0] * 40 + i[1] * 20 + i[2] * 4 + i[3]) * 37 % 80) as f64 / 32.0 - 1.25
    });
    let window = wengert_tape::Pool2dArgs {
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 1],
        count_include_pad: false,
    };
    problems.push(one(Case::MaxPool2d(window), &distinct));
    problems.push(one(Case::AvgPool2d(window), &distinct));
    problems.push(one(
        Case::AvgPool2d(wengert_tape::Pool2dArgs::new([2, 2])),
        &distinct,
    ));
    problems.push(one(Case::AdaptiveAvgPool2d([3, 3]), &distinct));
    problems.push(one(Case::AdaptiveAvgPool2d([1, 1]), &distinct));
    // The embedding: repeated rows, with a padding row no index picks (a picked one's
    // gradient is 0 by definition, not the finite differences').
    let table = Rng::new(73).array(&[5, 3], 1.0);
    let indices =
        ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3]), vec![4.0, 0.0, 4.0, 2.0, 1.0, 2.0])
            .expect("sized");
    for padding_idx in [None, Some(3)] {
        let case = Case::Embedding {
            padding_idx,
            indices: indices.clone(),
        };
        problems.push(Problem::new(case, vec![table.clone()]));
    }
    // Layer norm over one and two trailing axes, with and without its scale and shift.
    let mut rng = Rng::new(74);
    let x = rng.array(&[3, 4, 5], 1.0);
    let (gamma, beta) = (rng.array(&[4, 5], 1.0), rng.array(&[4, 5], 1.0));
    let norm = |axes, gamma, beta| Case::LayerNorm {
        axes,
        eps: 1e-5,
        gamma,
        beta,
    };
    problems.push(Problem::new(norm(1, false, false), vec![x.clone()]));
    problems.push(Problem::new(
        norm(2, true, true),
        vec![x.clone(), gamma, beta.clone()],
    ));
    problems.push(Problem::new(norm(2, false, true), vec![x, beta]));
    // Batch norm of a [N, C, L] batch and a [N, C] one in training, with and without its
    // scale and shift, and in evaluation by running estimates.
    let mut rng = Rng::new(81);
    let (x, flat) = (rng.array(&[4, 3, 5], 1.0), rng.array(&[6, 3], 1.0));
    let (gamma, beta) = (rng.array(&[3], 1.0), rng.array(&[3], 1.0));
    let running = Some((
        rng.array(&[3], 1.0),
        rng.array(&[3], 1.0).mapv(|v| 0.5 + v.abs()),
    ));
    let norm = |gamma, beta, running| Case::BatchNorm {
        eps: 1e-5,
        gamma,
        beta,
        running,
    };
    problems.push(Problem::new(
        norm(true, true, None),
        vec![x.clone(), gamma.clone(), beta.clone()],
    ));
    problems.push(Problem::new(norm(false, false, None), vec![flat]));
    problems.push(Problem::new(
        norm(true, true, running),
        vec![x, gamma, beta],
    ));
    problems
}

macro_rules! strategy_list {
    ($($name:ident => $strategy:expr,)*) => {
        /// Every op's strategy from the gradient-check harness, by name: the elementwise ops
        /// with a gradient, then the others in `for_each_op!`'s order.
        fn every_strategy() -> Vec<(String, proptest::strategy::BoxedStrategy<Problem>)> {
            #[allow(unused_imports)] // not every strategy names a case
            use crate::cases::Case;
            use crate::strategies as s;
            let mut list: Vec<(String, proptest::strategy::BoxedStrategy<Problem>)> = Vec::new();
            for op in UnaryOp::ALL.into_iter().filter(|op| op.has_gradient()) {
                list.push((Case::Unary(op).name(), s::unary_op(op)));
            }
            for op in BinaryOp::ALL.into_iter().filter(|op| op.has_gradient()) {
                list.push((op.name().to_string(), s::binary_op(op)));
            }
            $( list.push((stringify!($name).to_string(), $strategy)); )*
            list
        }
    };
}

for_each_op!(strategy_list);

/// Each op's largest f64 gradient-check error over `WENGERT_FD_DRAWS` drawn problems (64 by
/// default), each checked once and with fan-out, as a table `op | draws | max abs | max rel`.
/// Slow (every strategy, many draws): run on demand for a release's notes.
#[test]
#[ignore = "prints a table for release notes; run with --ignored --nocapture"]
fn largest_fd_error_per_op() {
    use proptest::strategy::{Strategy, ValueTree};
    let draws: usize = std::env::var("WENGERT_FD_DRAWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    // `WENGERT_FD_OPS=batch_norm,layer_norm`: those ops alone.
    let only = std::env::var("WENGERT_FD_OPS").ok();
    let list: Vec<_> = every_strategy()
        .into_iter()
        .filter(|(name, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == name))
        })
        .collect();
    let width = list.iter().map(|(n, _)| n.len()).max().unwrap_or(2);
    println!();
    println!(
        "{:<width$} | {:>5} | {:>13} | {:>13}",
        "op", "draws", "max abs error", "max rel error"
    );
    println!("{:-<width$}-+-{:-<5}-+-{:-<13}-+-{:-<13}", "", "", "", "");
    let mut failed = Vec::new();
    for (name, strategy) in list {
        let (mut abs, mut rel) = (0.0f64, 0.0f64);
        for _ in 0..draws {
            let p = strategy
                .new_tree(&mut runner)
                .expect("strategies always draw")
                .current();
            for report in [p.gradcheck(), p.gradcheck_fan_out()] {
                let report = report.unwrap_or_else(|e| panic!("{name}: {e}"));
                abs = abs.max(report.max_abs_error);
                rel = rel.max(report.max_rel_error);
                if !report.passed() {
                    failed.push(name.clone());
                }
            }
        }
        println!("{name:<width$} | {draws:>5} | {abs:>13.2e} | {rel:>13.2e}");
    }
    println!();
    println!("tolerance: |analytic - numeric| <= 1e-7 + 1e-6·|numeric|, step 1e-6, f64");
    assert!(failed.is_empty(), "failed: {failed:?}");
}

/// A `[2, 4, 5]` operand for the batched product with a broadcast `[3, 4]`.
fn general_234_5() -> ArrayD<f64> {
    Rng::new(99).array(&[2, 4, 5], 2.0)
}

fn shapes(inputs: &[ArrayD<f64>]) -> String {
    inputs
        .iter()
        .map(|x| format!("{:?}", x.shape()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn report_every_op_gradchecked() -> Result<()> {
    let mut rows: Vec<(String, GradcheckReport)> = Vec::new();
    for p in problems() {
        rows.push((
            format!("{} on {}", p.case.name(), shapes(&p.inputs)),
            p.gradcheck()?,
        ));
    }
    let mlp = Mlp::new(7, 6, [3, 5, 4, 3]);
    for (loss, name) in [(Loss::CrossEntropy, "cross-entropy"), (Loss::Mse, "mse")] {
        let report = gradcheck(
            |t, p| Ok(mlp.record(t, p, loss)?[0]),
            &mlp.params,
            &GradcheckOptions::default(),
        )?;
        rows.push((format!("3-layer MLP, {name} (59 parameters)"), report));
    }

    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(2);
    println!();
    println!(
        "{:<width$} | {:<13} | {:>13} | {:>13}",
        "op", "method", "max abs error", "max rel error"
    );
    println!("{:-<width$}-+-{:-<13}-+-{:-<13}-+-{:-<13}", "", "", "", "");
    for (name, report) in &rows {
        let method = match report.method {
            GradcheckMethod::FullJacobian => "full Jacobian",
            GradcheckMethod::DotProduct => "dot product",
        };
        println!(
            "{name:<width$} | {method:<13} | {:>13.2e} | {:>13.2e}",
            report.max_abs_error, report.max_rel_error
        );
    }
    println!();
    println!("tolerance: |analytic - numeric| <= 1e-7 + 1e-6·|numeric|, step 1e-6, f64");

    let failed: Vec<&str> = rows
        .iter()
        .filter(|(_, r)| !r.passed())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "failed: {failed:?}");
    let methods: Vec<GradcheckMethod> = rows.iter().map(|(_, r)| r.method).collect();
    assert!(methods.contains(&GradcheckMethod::DotProduct));
    Ok(())
}
