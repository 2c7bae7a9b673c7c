//! The ops given file codes from tag 50 (reductions, softmax on any axis, losses with a
//! reduction, shape and indexing ops, batched matmul, dropout, slice, pad, and from tag 66
//! the indexing ops' adjoints, index_add and scatter_add) saved to a file,
//! loaded from it as another process would and replayed, at another batch size where the op
//! allows it: the same outputs and gradients, bit for bit, as recording the op afresh. A file
//! whose op has a parameter the engine refuses is a typed error naming the node.

use ndarray::ArrayD;
use wengert_io::{Element, LoadOptions, ReplayOptions, TapeModel, TapeSaver};
use wengert_ops::{
    CrossEntropyOptions, Distance, LossOp, MAX_RANK, Op, ReduceOp, Reduction, Shape, SliceAxis,
    Targets,
};
use wengert_tape::{NodeId, Tape};

use crate::common::{scratch, values};

/// The op's second operand, if it has one.
#[derive(Clone, Copy)]
enum Second {
    /// Fed at replay as input `t`: its value for a batch of this many rows.
    Fed(fn(usize) -> ArrayD<f64>),
    /// Trained, as parameter `b`, of this shape.
    Trained(&'static [usize]),
}

/// One op tried: `y = op(x · w[, second])`, `x` fed as `[batch, 3]`, `w` a trained `[3]`.
struct Case {
    op: Op,
    second: Option<Second>,
    /// Whether the op's parameters fix the batch (a broadcast's target shape): then the
    /// replay keeps the recorded batch, with new values.
    fixed_batch: bool,
}

fn case(op: Op, second: Option<Second>) -> Case {
    Case {
        op,
        second,
        fixed_batch: false,
    }
}

/// Values in [0.25, 1.75): away from zero (a product, a log) and with no ties.
fn positive<E: Element>(shape: &[usize], seed: u64) -> ArrayD<E> {
    values::<E>(shape, seed).mapv(|v| E::from_f64(v.to_f64() * 0.75 + 1.0))
}

fn cast<E: Element>(a: &ArrayD<f64>) -> ArrayD<E> {
    a.mapv(E::from_f64)
}

fn bits<E: Element>(data: &[E]) -> Vec<u64> {
    data.iter().map(|&x| x.to_f64().to_bits()).collect()
}

fn targets(n: usize) -> ArrayD<f64> {
    positive::<f64>(&[n, 3], 11)
}

fn probabilities(n: usize) -> ArrayD<f64> {
    values::<f64>(&[n, 3], 12).mapv(|v| v * 0.5 + 0.5)
}

fn classes(n: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(vec![n], |i| ((i[0] * 7 + 1) % 3) as f64)
}

/// Classes with the ignored index 2 among them.
fn classes_some_ignored(n: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(vec![n], |i| (i[0] % 3) as f64)
}

fn rows(_: usize) -> ArrayD<f64> {
    ArrayD::from_shape_vec(vec![4], vec![2.0, 0.0, 2.0, 1.0]).unwrap()
}

/// Three positions (one per column of `x · w`) in `0..4`, one repeated.
fn column_positions(_: usize) -> ArrayD<f64> {
    ArrayD::from_shape_vec(vec![3], vec![3.0, 0.0, 3.0]).unwrap()
}

/// A position in `0..4` for every element of `x · w`.
fn scatter_index(n: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(vec![n, 3], |i| ((i[0] * 3 + i[1] * 2) % 4) as f64)
}

fn gather_index(n: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(vec![n, 2], |i| ((i[0] + 2 * i[1]) % 3) as f64)
}

fn every_case() -> Vec<Case> {
    let mut cases = Vec::new();
    let reductions = [
        ReduceOp::Amax,
        ReduceOp::Amin,
        ReduceOp::MaxAt,
        ReduceOp::MinAt,
        ReduceOp::ArgMax,
        ReduceOp::ArgMin,
        ReduceOp::LogSumExp,
        ReduceOp::Prod,
        ReduceOp::Var(1.0),
        ReduceOp::Var(0.0),
        ReduceOp::Std(1.0),
        ReduceOp::Std(0.5),
        ReduceOp::Norm,
    ];
    for op in reductions {
        for (axis, keep_dim) in [(None, false), (Some(1), true), (Some(0), false)] {
            cases.push(case(Op::Reduce { op, axis, keep_dim }, None));
        }
    }
    for axis in [0, 1] {
        cases.push(case(Op::SoftmaxAxis { axis }, None));
        cases.push(case(Op::LogSoftmaxAxis { axis }, None));
    }
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for distance in [
            Distance::L1,
            Distance::SmoothL1 { beta: 0.5 },
            Distance::Huber { delta: 0.75 },
        ] {
            let loss = LossOp::Distance {
                distance,
                reduction,
            };
            cases.push(case(Op::Loss(loss), Some(Second::Fed(targets))));
        }
        let bce = LossOp::BceWithLogits { reduction };
        cases.push(case(Op::Loss(bce), Some(Second::Fed(probabilities))));
        for ignore_index in [None, Some(2)] {
            let nll = LossOp::Nll {
                ignore_index,
                reduction,
            };
            cases.push(case(Op::Loss(nll), Some(Second::Fed(classes_some_ignored))));
            let options = CrossEntropyOptions {
                targets: Targets::Classes,
                ignore_index,
                label_smoothing: 0.1,
                reduction,
            };
            let ce = Op::Loss(LossOp::CrossEntropy(options));
            cases.push(case(ce, Some(Second::Fed(classes_some_ignored))));
        }
        let options = CrossEntropyOptions {
            targets: Targets::Probabilities,
            ignore_index: None,
            label_smoothing: 0.25,
            reduction,
        };
        let ce = Op::Loss(LossOp::CrossEntropy(options));
        cases.push(case(ce, Some(Second::Fed(probabilities))));
        let options = CrossEntropyOptions {
            reduction,
            ..CrossEntropyOptions::default()
        };
        let ce = Op::Loss(LossOp::CrossEntropy(options));
        cases.push(case(ce, Some(Second::Fed(classes))));
    }
    cases.push(Case {
        op: Op::BroadcastTo(Shape::new(&[2, 3, 3]).unwrap()),
        second: None,
        fixed_batch: true,
    });
    cases.extend([
        case(
            Op::Narrow {
                axis: 1,
                start: -2,
                length: 2,
            },
            None,
        ),
        case(
            Op::Narrow {
                axis: 0,
                start: 1,
                length: 1,
            },
            None,
        ),
        case(Op::IndexSelect { axis: 1 }, Some(Second::Fed(rows))),
        case(Op::Gather { axis: 1 }, Some(Second::Fed(gather_index))),
        case(
            Op::IndexAdd { axis: 1, len: 4 },
            Some(Second::Fed(column_positions)),
        ),
        case(
            Op::ScatterAdd { axis: 1, len: 4 },
            Some(Second::Fed(scatter_index)),
        ),
        case(Op::BatchedMatMul, Some(Second::Trained(&[2, 3, 2]))),
        case(Op::Dropout { p: 0.0, seed: 1 }, None),
        case(Op::Dropout { p: 0.5, seed: 7 }, None),
        case(Op::Dropout { p: 1.0, seed: 7 }, None),
        case(
            Op::Slice {
                axis: 1,
                range: SliceAxis {
                    start: 0,
                    end: i64::MAX,
                    step: 2,
                },
            },
            None,
        ),
        case(
            Op::Slice {
                axis: 0,
                range: SliceAxis {
                    start: -3,
                    end: -1,
                    step: 1,
                },
            },
            None,
        ),
    ]);
    let mut pads = [[0u32; 2]; MAX_RANK];
    pads[0] = [1, 0];
    pads[1] = [2, 1];
    cases.push(case(
        Op::Pad {
            pads,
            axes: 2,
            value: -0.5,
        },
        None,
    ));
    cases
}

/// The nodes of the graph saved.
struct Graph {
    x: NodeId,
    w: NodeId,
    second: Option<NodeId>,
    y: NodeId,
}

fn record<E: Element>(tape: &mut Tape<E>, case: &Case, batch: usize) -> Graph {
    let x = tape
        .input(positive::<E>(&[batch, 3], batch as u64))
        .unwrap();
    let w = tape.parameter(positive::<E>(&[3], 2)).unwrap();
    let second = case.second.map(|second| match second {
        Second::Fed(value) => tape.input(cast(&value(batch))).unwrap(),
        Second::Trained(shape) => tape.parameter(positive::<E>(shape, 4)).unwrap(),
    });
    let h = tape.mul(x, w).unwrap();
    let inputs: Vec<NodeId> = [Some(h), second].into_iter().flatten().collect();
    let y = tape
        .record(case.op, &inputs)
        .unwrap_or_else(|e| panic!("{:?}: {e}", case.op));
    Graph { x, w, second, y }
}

/// The bits of `y` and, when a gradient flows, of the trained values' gradients of `Σ y`.
fn outcome<E: Element>(tape: &mut Tape<E>, case: &Case, graph: &Graph) -> Vec<Vec<u64>> {
    let mut out = vec![bits(tape.data(graph.y).unwrap())];
    if case.op.differentiable_in(0) {
        let loss = tape.sum(graph.y).unwrap();
        let grads = tape.backward(loss).unwrap();
        out.push(bits(grads.get(graph.w).unwrap().as_slice().unwrap()));
        if let (Some(Second::Trained(_)), Some(b)) = (case.second, graph.second) {
            out.push(bits(grads.get(b).unwrap().as_slice().unwrap()));
        }
    }
    out
}

fn saved_and_replayed<E: Element>(case: &Case) {
    let name = format!("{:?}", case.op);
    let dir = scratch();
    let path = dir.path().join("model.tape");
    {
        let mut tape = Tape::<E>::new();
        let graph = record(&mut tape, case, 3);
        let mut saver = TapeSaver::new(&tape)
            .input("x", graph.x)
            .parameter("w", graph.w)
            .output("y", graph.y);
        saver = match (case.second, graph.second) {
            (Some(Second::Fed(_)), Some(t)) => saver.input("t", t),
            (Some(Second::Trained(_)), Some(b)) => saver.parameter("b", b),
            _ => saver,
        };
        saver.save(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Only the file crosses over, as to another process.
    let model = TapeModel::<E>::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(model.to_bytes(), std::fs::read(&path).unwrap(), "{name}");

    let batch = if case.fixed_batch { 3 } else { 5 };
    let mut fresh_tape = Tape::<E>::new();
    let fresh = record(&mut fresh_tape, case, batch);
    let expected = outcome(&mut fresh_tape, case, &fresh);

    let mut feeds = vec![("x", positive::<E>(&[batch, 3], batch as u64))];
    if let Some(Second::Fed(value)) = case.second {
        feeds.push(("t", cast(&value(batch))));
    }
    let mut tape = Tape::<E>::new();
    let replay = model
        .replay(&mut tape, feeds, &ReplayOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let graph = Graph {
        x: replay.node("x").unwrap(),
        w: replay.node("w").unwrap(),
        second: replay.get("b").or_else(|| replay.get("t")),
        y: replay.node("y").unwrap(),
    };
    assert_eq!(outcome(&mut tape, case, &graph), expected, "{name}");
}

#[test]
fn every_op_from_tag_50_saved_loads_and_replays_to_the_same_values_f32() {
    for case in every_case() {
        saved_and_replayed::<f32>(&case);
    }
}

#[test]
fn every_op_from_tag_50_saved_loads_and_replays_to_the_same_values_f64() {
    for case in every_case() {
        saved_and_replayed::<f64>(&case);
    }
}

#[test]
fn a_file_whose_op_from_tag_50_has_a_bad_parameter_is_a_typed_error_naming_the_node() {
    use wengert_io::Error;
    use wengert_io::format::v2::{LossOpV2, NodeV2, OpV2, ReduceOpV2, ReductionV2, TargetsV2};
    let mut tape = Tape::<f64>::new();
    let x = tape.input(positive::<f64>(&[2, 3], 1)).unwrap();
    let y = tape.record(Op::Dropout { p: 0.5, seed: 3 }, &[x]).unwrap();
    let good = TapeSaver::new(&tape).input("x", x).output("y", y);
    let good = good.model().unwrap().to_file();
    let load = |op: OpV2| {
        let mut file = good.clone();
        let NodeV2::Op { op: slot, .. } = &mut file.nodes[1] else {
            panic!("node 1 is the op");
        };
        *slot = op;
        TapeModel::<f64>::from_bytes(&file.to_bytes(), &LoadOptions::default())
    };
    let reduce = |op, axis| OpV2::Reduce {
        op,
        axis,
        keep_dim: false,
    };
    // Refused whatever the shapes: named by the parameter.
    let parameters = [
        (
            OpV2::Dropout {
                p: f64::NAN,
                seed: 3,
            },
            "p",
        ),
        (OpV2::Dropout { p: -0.5, seed: 3 }, "p"),
        (
            reduce(
                ReduceOpV2::Var {
                    correction: f64::NAN,
                },
                Some(1),
            ),
            "correction",
        ),
        (
            OpV2::Slice {
                axis: 1,
                start: 0,
                end: 3,
                step: 0,
            },
            "step",
        ),
        (
            OpV2::Pad {
                pads: vec![[1, 1]; MAX_RANK + 1],
                value: 0.0,
            },
            "pads",
        ),
    ];
    for (op, parameter) in parameters {
        let err = load(op.clone()).unwrap_err();
        match &err {
            Error::OpParameter {
                node: 1,
                source: wengert_ops::Error::InvalidArgument { argument, .. },
            } if *argument == parameter => {}
            other => panic!("{op:?}: {other:?}"),
        }
        assert!(err.to_string().starts_with("node 1: "), "{err}");
    }
    // Refused against the input's shape `[2, 3]`, when the loader infers the node's.
    let against_the_shape = [
        reduce(ReduceOpV2::Amax, Some(2)),
        reduce(ReduceOpV2::Std { correction: 3.0 }, Some(1)),
        OpV2::SoftmaxAxis { axis: 5 },
        OpV2::Narrow {
            axis: 1,
            start: 2,
            length: 2,
        },
        OpV2::Slice {
            axis: 2,
            start: 0,
            end: 1,
            step: 1,
        },
        OpV2::Pad {
            pads: vec![[1, 1]],
            value: 0.0,
        },
        OpV2::BroadcastTo(vec![4, 3]),
        OpV2::Loss(LossOpV2::CrossEntropy {
            targets: TargetsV2::Classes,
            ignore_index: None,
            label_smoothing: 0.0,
            reduction: ReductionV2::Mean,
        }),
    ];
    for op in against_the_shape {
        match load(op.clone()) {
            Err(Error::ShapeInference { node: 1, .. } | Error::WrongArity { node: 1, .. }) => {}
            other => panic!("{op:?}: {other:?}"),
        }
    }
}

/// The layers' ops from tag 68 (`conv2d`, `conv1d`, the three poolings, `embedding`,
/// `layer_norm`, `batch_norm`, `linear`): a small network fed an image (a signal, token indices) batch, saved, loaded and replayed at another batch size, gives the same outputs
/// and gradients, bit for bit, as recording it afresh; replayed twice on one tape (rewound),
/// the second run reuses the first's buffers and agrees too.
mod layers {
    use super::*;
    use wengert_ops::{Conv1dArgs, Conv2dArgs, Pool2dArgs};

    /// The network of one case for a batch of `n`: its fed input, trained values and output.
    type Build<E> = fn(&mut Tape<E>, usize) -> (NodeId, Vec<NodeId>, NodeId);

    /// The value fed as `x` for a batch of `n`.
    type Feed<E> = fn(usize) -> ArrayD<E>;

    fn image<E: Element>(n: usize) -> ArrayD<E> {
        values::<E>(&[n, 2, 5, 6], n as u64)
    }

    fn signal<E: Element>(n: usize) -> ArrayD<E> {
        values::<E>(&[n, 4, 9], n as u64 + 1)
    }

    /// conv2d with a bias, padding and a stride, then one without a bias in two groups.
    fn two_convolutions<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(image::<E>(n)).unwrap();
        let w1 = tape.parameter(values::<E>(&[4, 2, 3, 3], 3)).unwrap();
        let b1 = tape.parameter(values::<E>(&[4], 4)).unwrap();
        let w2 = tape.parameter(values::<E>(&[6, 2, 2, 1], 5)).unwrap();
        let first = Conv2dArgs {
            stride: [1, 2],
            padding: [1, 1],
            ..Conv2dArgs::default()
        };
        let h = tape.conv2d(x, w1, Some(b1), first).unwrap();
        let h = tape.tanh(h).unwrap();
        let second = Conv2dArgs {
            dilation: [2, 1],
            groups: 2,
            ..Conv2dArgs::default()
        };
        let y = tape.conv2d(h, w2, None, second).unwrap();
        (x, vec![w1, b1, w2], y)
    }

    fn a_1d_convolution<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(signal::<E>(n)).unwrap();
        let w = tape.parameter(values::<E>(&[3, 2, 3], 6)).unwrap();
        let b = tape.parameter(values::<E>(&[3], 7)).unwrap();
        let args = Conv1dArgs {
            stride: 2,
            padding: 2,
            dilation: 2,
            groups: 1,
        };
        let h = tape.narrow(x, 1, 1, 2).unwrap();
        let y = tape.conv1d(h, w, Some(b), args).unwrap();
        (x, vec![w, b], y)
    }

    /// A convolution, then each pooling (tags 70 to 72) on its output.
    fn pools<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(image::<E>(n)).unwrap();
        let w = tape.parameter(values::<E>(&[3, 2, 2, 2], 8)).unwrap();
        let h = tape.conv2d(x, w, None, Conv2dArgs::default()).unwrap();
        let max = tape.max_pool2d(h, Pool2dArgs::new([2, 2])).unwrap();
        let window = Pool2dArgs {
            kernel: [3, 3],
            stride: [1, 2],
            padding: [1, 1],
            count_include_pad: false,
        };
        let avg = tape.avg_pool2d(h, window).unwrap();
        let global = tape.adaptive_avg_pool2d(avg, [1, 1]).unwrap();
        let a = tape.sum(max).unwrap();
        let y = tape.add(global, a).unwrap();
        (x, vec![w], y)
    }

    /// Token indices `[n, 4]` into a table of 5 rows, repeats and the padding row 2 among them.
    fn tokens<E: Element>(n: usize) -> ArrayD<E> {
        let data = (0..n * 4).map(|i| E::from_usize((i * 3 + n) % 5)).collect();
        ArrayD::from_shape_vec(ndarray::IxDyn(&[n, 4]), data).unwrap()
    }

    /// An embedding (tag 73) with a padding row, then a product with a weight.
    fn an_embedding<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(tokens::<E>(n)).unwrap();
        let table = tape.parameter(values::<E>(&[5, 3], 9)).unwrap();
        let w = tape.parameter(values::<E>(&[3, 2], 10)).unwrap();
        let h = tape.embedding(table, x, Some(2)).unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape.matmul(h, w).unwrap();
        (x, vec![table, w], y)
    }

    /// An embedding, then layer norm (tag 74) with its scale and shift, and one over both
    /// trailing axes without them: a sequence model's first layers.
    fn a_layer_norm<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(tokens::<E>(n)).unwrap();
        let table = tape.parameter(values::<E>(&[5, 3], 11)).unwrap();
        let gamma = tape.parameter(positive::<E>(&[3], 12)).unwrap();
        let beta = tape.parameter(values::<E>(&[3], 13)).unwrap();
        let h = tape.embedding(table, x, None).unwrap();
        let h = tape
            .layer_norm(h, Some(gamma), Some(beta), 1, 1e-5)
            .unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape.layer_norm(h, None, None, 2, 0.01).unwrap();
        let y = tape.mul(y, h).unwrap();
        (x, vec![table, gamma, beta], y)
    }

    /// A convolution, batch norm in training (tag 81) with its scale and shift, then one in
    /// evaluation by running estimates saved as parameters (their values travel with the
    /// file; they take no gradient): a CNN's block, trained then evaluated.
    fn a_batch_norm<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(image::<E>(n)).unwrap();
        let w = tape.parameter(values::<E>(&[3, 2, 2, 2], 14)).unwrap();
        let gamma = tape.parameter(positive::<E>(&[3], 15)).unwrap();
        let beta = tape.parameter(values::<E>(&[3], 16)).unwrap();
        let mean = tape.parameter(values::<E>(&[3], 17)).unwrap();
        let var = tape.parameter(positive::<E>(&[3], 18)).unwrap();
        let h = tape.conv2d(x, w, None, Conv2dArgs::default()).unwrap();
        let h = tape.batch_norm(h, Some(gamma), Some(beta), 1e-5).unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape
            .batch_norm_eval(h, None, None, mean, var, 1e-3)
            .unwrap();
        (x, vec![w, gamma, beta, mean, var], y)
    }

    /// Two dense layers (tag 82, `linear`): the batch of the signal flattened, a hidden layer of
    /// 5 and an output of 3 (narrow: its product runs transposed, the bias by rows).
    fn dense_layers<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(signal::<E>(n)).unwrap();
        let w1 = tape.parameter(values::<E>(&[36, 5], 19)).unwrap();
        let b1 = tape.parameter(values::<E>(&[5], 20)).unwrap();
        let w2 = tape.parameter(values::<E>(&[5, 3], 21)).unwrap();
        let b2 = tape.parameter(values::<E>(&[3], 22)).unwrap();
        let h = tape.reshape(x, &[n, 36]).unwrap();
        let h = tape.linear(h, w1, b1).unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape.linear(h, w2, b2).unwrap();
        (x, vec![w1, b1, w2, b2], y)
    }

    /// The recorded gradient of a two-convolution network for its first weight (the ops of
    /// tags 75 and 76, the input gradient's shape following the batch on replay), whose own
    /// gradient is then a second derivative.
    fn a_recorded_gradient<E: Element>(
        tape: &mut Tape<E>,
        n: usize,
    ) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(image::<E>(n)).unwrap();
        let w1 = tape.parameter(values::<E>(&[3, 2, 2, 2], 9)).unwrap();
        let b1 = tape.parameter(values::<E>(&[3], 10)).unwrap();
        let w2 = tape.parameter(values::<E>(&[2, 3, 2, 2], 11)).unwrap();
        let args = Conv2dArgs {
            stride: [2, 1],
            padding: [1, 0],
            ..Conv2dArgs::default()
        };
        let h = tape.conv2d(x, w1, Some(b1), args).unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape.conv2d(h, w2, None, Conv2dArgs::default()).unwrap();
        let y = tape.tanh(y).unwrap();
        let loss = tape.sum(y).unwrap();
        let grads = tape.record_grad(loss, &[w1, b1]).unwrap();
        let g = tape.square(grads[0]).unwrap();
        let g = tape.sum(g).unwrap();
        let y = tape.add(g, grads[1]).unwrap();
        (x, vec![w1, b1, w2], y)
    }

    /// The recorded gradient through each pooling (the ops of tags 77, 79 and 80, the average
    /// pools' input shapes following the batch on replay).
    fn a_recorded_gradient_through_pools<E: Element>(
        tape: &mut Tape<E>,
        n: usize,
    ) -> (NodeId, Vec<NodeId>, NodeId) {
        let x = tape.input(image::<E>(n)).unwrap();
        let w = tape.parameter(values::<E>(&[3, 2, 2, 2], 12)).unwrap();
        let h = tape.conv2d(x, w, None, Conv2dArgs::default()).unwrap();
        let h = tape.tanh(h).unwrap();
        let max = tape.max_pool2d(h, Pool2dArgs::new([2, 2])).unwrap();
        let window = Pool2dArgs {
            kernel: [3, 3],
            stride: [1, 2],
            padding: [1, 1],
            count_include_pad: false,
        };
        let avg = tape.avg_pool2d(h, window).unwrap();
        let avg = tape.square(avg).unwrap();
        let global = tape.adaptive_avg_pool2d(avg, [2, 1]).unwrap();
        let a = tape.sum(max).unwrap();
        let b = tape.sum(global).unwrap();
        let loss = tape.add(a, b).unwrap();
        let grad = tape.record_grad(loss, &[w]).unwrap()[0];
        let y = tape.square(grad).unwrap();
        (x, vec![w], y)
    }

    fn outcome<E: Element>(tape: &mut Tape<E>, params: &[NodeId], y: NodeId) -> Vec<Vec<u64>> {
        let mut out = vec![bits(tape.data(y).unwrap())];
        let loss = tape.sum(y).unwrap();
        let grads = tape.backward(loss).unwrap();
        for &p in params {
            // A running estimate has none.
            out.push(grads.data(p).map(bits).unwrap_or_default());
        }
        out
    }

    fn saved_and_replayed<E: Element>(name: &str, build: Build<E>, feed: Feed<E>) {
        let dir = scratch();
        let path = dir.path().join("model.tape");
        {
            let mut tape = Tape::<E>::new();
            let (x, params, y) = build(&mut tape, 2);
            let mut saver = TapeSaver::new(&tape).input("x", x).output("y", y);
            let names = ["p0", "p1", "p2", "p3", "p4"];
            for (name, &p) in names.iter().zip(&params) {
                saver = saver.parameter(*name, p);
            }
            saver.save(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let model = TapeModel::<E>::load(&path, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.to_bytes(), std::fs::read(&path).unwrap(), "{name}");

        let batch = 3;
        let mut fresh_tape = Tape::<E>::new();
        let (_, params, y) = build(&mut fresh_tape, batch);
        let expected = outcome(&mut fresh_tape, &params, y);

        let mut tape = Tape::<E>::new();
        let start = tape.mark();
        for run in 0..2 {
            tape.rewind(start).unwrap();
            let feeds = vec![("x", feed(batch))];
            let replay = model
                .replay(&mut tape, feeds, &ReplayOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let params: Vec<NodeId> = ["p0", "p1", "p2", "p3", "p4"]
                .iter()
                .take(params.len())
                .map(|n| replay.node(n).unwrap())
                .collect();
            let y = replay.node("y").unwrap();
            assert_eq!(
                outcome(&mut tape, &params, y),
                expected,
                "{name}, run {run}"
            );
        }
    }

    fn every_case<E: Element>() -> [(&'static str, Build<E>, Feed<E>); 9] {
        [
            ("linear", dense_layers::<E>, signal::<E>),
            ("batch_norm", a_batch_norm::<E>, image::<E>),
            ("layer_norm", a_layer_norm::<E>, tokens::<E>),
            ("embedding", an_embedding::<E>, tokens::<E>),
            (
                "recorded gradient through pools",
                a_recorded_gradient_through_pools::<E>,
                image::<E>,
            ),
            ("recorded gradient", a_recorded_gradient::<E>, image::<E>),
            ("pools", pools::<E>, image::<E>),
            ("two conv2d", two_convolutions::<E>, image::<E>),
            ("conv1d", a_1d_convolution::<E>, signal::<E>),
        ]
    }

    #[test]
    fn convolutions_saved_load_and_replay_to_the_same_values_f32() {
        for (name, build, feed) in every_case::<f32>() {
            saved_and_replayed::<f32>(name, build, feed);
        }
    }

    #[test]
    fn convolutions_saved_load_and_replay_to_the_same_values_f64() {
        for (name, build, feed) in every_case::<f64>() {
            saved_and_replayed::<f64>(name, build, feed);
        }
    }

    #[test]
    fn a_file_with_a_convolution_the_engine_refuses_is_a_typed_error_naming_the_node() {
        use wengert_io::Error;
        use wengert_io::format::v2::{NodeV2, OpV2};
        let mut tape = Tape::<f64>::new();
        let (x, _, y) = two_convolutions(&mut tape, 2);
        let good = TapeSaver::new(&tape).input("x", x).output("y", y);
        let good = good.model().unwrap().to_file();
        let node = 4; // the first convolution: x, w1, b1, w2, then it
        let load = |op: OpV2, inputs: Option<Vec<u32>>| {
            let mut file = good.clone();
            let NodeV2::Op {
                op: slot,
                inputs: listed,
                ..
            } = &mut file.nodes[node]
            else {
                panic!("node {node} is the convolution");
            };
            *slot = op;
            if let Some(inputs) = inputs {
                *listed = inputs;
            }
            TapeModel::<f64>::from_bytes(&file.to_bytes(), &LoadOptions::default())
        };
        let conv = |stride: u64, groups: u64| OpV2::Conv2d {
            stride: [stride, 2],
            padding: [1, 1],
            dilation: [1, 1],
            groups,
        };
        if let Err(e) = load(conv(1, 1), None) {
            panic!("{e}");
        }
        for op in [conv(0, 1), conv(1, 0), conv(1, 3)] {
            match load(op.clone(), None) {
                Err(Error::ShapeInference { node: 4, .. }) => {}
                other => panic!("{op:?}: {other:?}"),
            }
        }
        for inputs in [vec![0], vec![0, 1, 2, 2]] {
            match load(conv(1, 1), Some(inputs.clone())) {
                Err(Error::WrongArity { node: 4, .. }) => {}
                other => panic!("{inputs:?}: {other:?}"),
            }
        }
    }
}
