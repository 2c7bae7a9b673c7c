//! Every VJP rule in overwrite mode (the first share a gradient buffer receives in a sweep)
//! writes every element: a buffer poisoned with NaN must come out bit for bit as the same rule
//! adding into zeros.

use wengert_ops::{
    BinaryOp, CrossEntropyOptions, Distance, LossOp, Op, ReduceOp, Reduction, Shape, Targets,
    TensorRef, UnaryOp,
};

fn s(d: &[usize]) -> Shape {
    Shape::new(d).unwrap()
}

#[test]
fn every_overwrite_writes_every_element() {
    let mut cases: Vec<(Op, Vec<Shape>)> = vec![
        (Op::MatMul, vec![s(&[3, 4]), s(&[4, 5])]),
        (Op::MatMul, vec![s(&[3, 0]), s(&[0, 5])]),
        (Op::MatMul, vec![s(&[3, 4]), s(&[4, 0])]),
        (Op::Binary(BinaryOp::Mul), vec![s(&[1]), s(&[])]),
        (Op::Binary(BinaryOp::Div), vec![s(&[]), s(&[1])]),
        (Op::Unary(UnaryOp::Tanh), vec![s(&[])]),
        (Op::Binary(BinaryOp::Mul), vec![s(&[0, 3]), s(&[3])]),
        (Op::Binary(BinaryOp::Mul), vec![s(&[0, 3]), s(&[1])]),
        (Op::Binary(BinaryOp::Mul), vec![s(&[1, 3]), s(&[0, 3])]),
        (Op::Sum, vec![s(&[2, 3])]),
        (Op::Mean, vec![s(&[2, 3])]),
        (
            Op::SumAxis {
                axis: 0,
                keep_dim: false,
            },
            vec![s(&[2, 3])],
        ),
        (
            Op::SumAxis {
                axis: 1,
                keep_dim: true,
            },
            vec![s(&[2, 3])],
        ),
        (
            Op::MeanAxis {
                axis: 1,
                keep_dim: false,
            },
            vec![s(&[2, 3])],
        ),
        (
            Op::SumAxis {
                axis: 0,
                keep_dim: false,
            },
            vec![s(&[0, 3])],
        ),
        (Op::Reshape(s(&[3, 2])), vec![s(&[2, 3])]),
        (Op::Transpose { axis0: 0, axis1: 1 }, vec![s(&[2, 3])]),
        (Op::Softmax, vec![s(&[2, 3])]),
        (Op::LogSoftmax, vec![s(&[2, 3])]),
        (Op::Mse, vec![s(&[2, 3]), s(&[2, 3])]),
        (Op::CrossEntropy, vec![s(&[2, 3]), s(&[2])]),
    ];
    // Every reduction with a gradient, along an axis and over all elements.
    for op in [
        ReduceOp::Amax,
        ReduceOp::Amin,
        ReduceOp::MaxAt,
        ReduceOp::MinAt,
        ReduceOp::LogSumExp,
        ReduceOp::Prod,
        ReduceOp::Var(1.0),
        ReduceOp::Std(0.0),
        ReduceOp::Norm,
    ] {
        for (axis, keep_dim) in [(Some(1), false), (Some(0), true), (None, false)] {
            cases.push((Op::Reduce { op, axis, keep_dim }, vec![s(&[2, 3])]));
        }
    }
    for axis in [0, 1] {
        cases.push((Op::SoftmaxAxis { axis }, vec![s(&[2, 3])]));
        cases.push((Op::LogSoftmaxAxis { axis }, vec![s(&[2, 3])]));
    }
    // Every loss, both inputs (a class-index target's pull-back is zeros).
    for reduction in [Reduction::Mean, Reduction::None] {
        let soft = CrossEntropyOptions {
            targets: Targets::Probabilities,
            label_smoothing: 0.1,
            reduction,
            ..CrossEntropyOptions::default()
        };
        let hard = CrossEntropyOptions {
            reduction,
            ..CrossEntropyOptions::default()
        };
        for (loss, target) in [
            (
                LossOp::Distance {
                    distance: Distance::Huber { delta: 0.5 },
                    reduction,
                },
                s(&[2, 3]),
            ),
            (LossOp::BceWithLogits { reduction }, s(&[2, 3])),
            (LossOp::CrossEntropy(soft), s(&[2, 3])),
            (LossOp::CrossEntropy(hard), s(&[2])),
            (
                LossOp::Nll {
                    ignore_index: None,
                    reduction,
                },
                s(&[2]),
            ),
        ] {
            cases.push((Op::Loss(loss), vec![s(&[2, 3]), target]));
        }
    }
    cases.extend([
        (Op::BroadcastTo(s(&[2, 2, 3])), vec![s(&[2, 1])]),
        (
            Op::Narrow {
                axis: 1,
                start: -2,
                length: 2,
            },
            vec![s(&[2, 3])],
        ),
        (Op::IndexSelect { axis: 1 }, vec![s(&[2, 3]), s(&[4])]),
        (Op::Gather { axis: 0 }, vec![s(&[2, 3]), s(&[3, 2])]),
        (Op::IndexAdd { axis: 1, len: 4 }, vec![s(&[2, 3]), s(&[3])]),
        (
            Op::ScatterAdd { axis: 0, len: 3 },
            vec![s(&[2, 3]), s(&[2, 3])],
        ),
        (Op::BatchedMatMul, vec![s(&[2, 2, 3]), s(&[3, 4])]),
        (Op::BatchedMatMul, vec![s(&[1, 2, 3]), s(&[2, 3, 2])]),
        (Op::Dropout { p: 0.5, seed: 3 }, vec![s(&[2, 3])]),
        (
            Op::Slice {
                axis: 1,
                range: wengert_ops::SliceAxis {
                    start: -1,
                    end: -4,
                    step: 1,
                },
            },
            vec![s(&[2, 3])],
        ),
        (
            Op::Slice {
                axis: 1,
                range: wengert_ops::SliceAxis {
                    start: 0,
                    end: 3,
                    step: 2,
                },
            },
            vec![s(&[2, 3])],
        ),
        (
            Op::Pad {
                pads: [[1, 0]; wengert_ops::MAX_RANK],
                axes: 2,
                value: 9.0,
            },
            vec![s(&[2, 3])],
        ),
    ]);
    // The ops of more than two inputs, or of any number.
    let classes = CrossEntropyOptions {
        targets: Targets::Classes,
        ignore_index: None,
        label_smoothing: 0.1,
        reduction: Reduction::Mean,
    };
    cases.extend([
        (
            Op::Concat { axis: 1 },
            vec![s(&[2, 3]), s(&[2, 0]), s(&[2, 1])],
        ),
        (Op::Concat { axis: 0 }, vec![s(&[1, 3]); 9]),
        (Op::Stack { axis: 1 }, vec![s(&[2, 3]); 3]),
        (Op::Stack { axis: 0 }, vec![s(&[]); 2]),
        (Op::Where, vec![s(&[2, 3]), s(&[2, 3]), s(&[2, 3])]),
        (Op::Where, vec![s(&[2, 1]), s(&[3]), s(&[])]),
        (
            Op::WeightedLoss(LossOp::BceWithLogits {
                reduction: Reduction::Sum,
            }),
            vec![s(&[2, 3]), s(&[2, 3]), s(&[3])],
        ),
        (
            Op::WeightedLoss(LossOp::Nll {
                ignore_index: None,
                reduction: Reduction::Mean,
            }),
            vec![s(&[2, 3]), s(&[2]), s(&[3])],
        ),
        (
            Op::WeightedLoss(LossOp::CrossEntropy(classes)),
            vec![s(&[2, 3]), s(&[2]), s(&[3])],
        ),
    ]);
    // Every elementwise op: same shapes (the pointwise rules) and each broadcast layout.
    for op in UnaryOp::ALL {
        cases.push((Op::Unary(op), vec![s(&[2, 3])]));
    }
    for op in BinaryOp::ALL {
        for (a, b) in [
            (&[2, 3][..], &[2, 3][..]),
            (&[2, 3], &[3]),
            (&[3], &[2, 3]),
            (&[2, 1], &[1, 3]),
            (&[2, 3], &[]),
            (&[], &[2, 3]),
        ] {
            cases.push((Op::Binary(op), vec![s(a), s(b)]));
        }
    }
    for (op, shapes) in cases {
        let data: Vec<Vec<f64>> = shapes
            .iter()
            .enumerate()
            .map(|(k, sh)| {
                (0..sh.numel())
                    .map(|i| {
                        let labels = matches!(
                            op,
                            Op::CrossEntropy
                                | Op::Loss(LossOp::Nll { .. })
                                | Op::Loss(LossOp::CrossEntropy(CrossEntropyOptions {
                                    targets: Targets::Classes,
                                    ..
                                }))
                                | Op::WeightedLoss(LossOp::Nll { .. })
                                | Op::WeightedLoss(LossOp::CrossEntropy(CrossEntropyOptions {
                                    targets: Targets::Classes,
                                    ..
                                }))
                        );
                        let positions = matches!(
                            op,
                            Op::IndexSelect { .. }
                                | Op::Gather { .. }
                                | Op::IndexAdd { .. }
                                | Op::ScatterAdd { .. }
                        );
                        let mask = op == Op::Where && k == 0;
                        if ((labels || positions) && k == 1) || mask {
                            (i % 2) as f64
                        } else if labels && k == 1 {
                            (i % 3) as f64
                        } else {
                            0.3 + (i as f64 * 0.7 + k as f64).sin().abs()
                        }
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<TensorRef<'_, f64>> = shapes
            .iter()
            .zip(&data)
            .map(|(sh, d)| TensorRef::new(sh, d).unwrap())
            .collect();
        let shp: Vec<&Shape> = shapes.iter().collect();
        let out_shape = op.output_shape(&shp).unwrap();
        let mut out = vec![0.0; out_shape.numel()];
        op.forward(&refs, &mut out).unwrap();
        let output = TensorRef::new(&out_shape, &out).unwrap();
        let g: Vec<f64> = (0..out.len()).map(|i| 1.0 + i as f64 * 0.25).collect();
        for k in 0..shapes.len() {
            let n = shapes[k].numel();
            let mut added = vec![0.0; n];
            op.vjp(&refs, output, &g, k, &mut added);
            let mut over = vec![f64::NAN; n];
            op.vjp_overwrite(&refs, output, &g, k, &mut over);
            assert_eq!(
                over.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                added.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{op:?} {shapes:?} input {k}"
            );
        }
    }
}
