//! Replay is bounded before it allocates: hostile tapes whose shapes pass every load-time
//! check but whose replay would need terabytes are refused with typed errors, planned at the
//! batch that actually runs; a deep but legitimate tape gets a batch that fits.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use wengert_io::format::v1::{DataV1, ElementV1, NamedNodeV1, NodeV1, OpV1, TapeFileV1, TensorV1};
use wengert_io::{Error, LoadOptions, NODE_OVERHEAD_BYTES, ReplayOptions, TapeModel};
use wengert_ops::Shape;
use wengert_tape::Tape;

use crate::common::{model_bytes, values};

/// Builds a hostile tape file node by node; the shapes stored are the ones its ops infer
/// at the recorded batch, so that it loads.
pub struct Crafted {
    nodes: Vec<NodeV1>,
    shapes: Vec<Shape>,
    inputs: Vec<NamedNodeV1>,
    parameters: Vec<NamedNodeV1>,
}

impl Crafted {
    pub fn new() -> Self {
        Crafted {
            nodes: Vec::new(),
            shapes: Vec::new(),
            inputs: Vec::new(),
            parameters: Vec::new(),
        }
    }

    fn named(name: &str, node: usize) -> NamedNodeV1 {
        NamedNodeV1 {
            name: name.to_string(),
            node: node as u32,
        }
    }

    pub fn input(&mut self, name: &str, dims: &[usize]) -> u32 {
        self.inputs.push(Self::named(name, self.nodes.len()));
        self.push(
            NodeV1::Input {
                shape: dims.iter().map(|&d| d as u64).collect(),
            },
            Shape::new(dims).unwrap(),
        )
    }

    /// A parameter of ones (or of no elements, for a shape with a zero axis).
    pub fn parameter(&mut self, name: &str, dims: &[usize]) -> u32 {
        let shape = Shape::new(dims).unwrap();
        self.parameters.push(Self::named(name, self.nodes.len()));
        self.push(
            NodeV1::Parameter {
                value: TensorV1 {
                    shape: dims.iter().map(|&d| d as u64).collect(),
                    data: DataV1::F32(vec![1.0; shape.numel()]),
                },
            },
            shape,
        )
    }

    pub fn op(&mut self, op: OpV1, inputs: &[u32]) -> u32 {
        self.try_op(op, inputs).expect("the op accepts its inputs")
    }

    /// The op, if it accepts its inputs' shapes.
    pub fn try_op(&mut self, op: OpV1, inputs: &[u32]) -> Option<u32> {
        let engine = match &op {
            OpV1::MatMul => wengert_ops::Op::MatMul,
            OpV1::Relu => wengert_ops::Op::Unary(wengert_ops::UnaryOp::Relu),
            OpV1::Softmax => wengert_ops::Op::Softmax,
            OpV1::Add => wengert_ops::Op::Binary(wengert_ops::BinaryOp::Add),
            OpV1::Transpose { axis0, axis1 } => wengert_ops::Op::Transpose {
                axis0: *axis0 as usize,
                axis1: *axis1 as usize,
            },
            OpV1::SumAxis { axis, keep_dim } => wengert_ops::Op::SumAxis {
                axis: *axis as usize,
                keep_dim: *keep_dim,
            },
            other => panic!("the crafter has no rule for {other:?}"),
        };
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.shapes[i as usize]).collect();
        let shape = engine.output_shape(&shapes).ok()?;
        Some(self.push(
            NodeV1::Op {
                op,
                inputs: inputs.to_vec(),
                shape: shape.dims().iter().map(|&d| d as u64).collect(),
            },
            shape,
        ))
    }

    /// The number of nodes so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    fn push(&mut self, node: NodeV1, shape: Shape) -> u32 {
        self.nodes.push(node);
        self.shapes.push(shape);
        (self.nodes.len() - 1) as u32
    }

    /// The file's bytes, with these outputs.
    pub fn bytes(self, outputs: &[(&str, u32)]) -> Vec<u8> {
        TapeFileV1 {
            element: ElementV1::F32,
            nodes: self.nodes,
            inputs: self.inputs,
            parameters: self.parameters,
            outputs: outputs
                .iter()
                .map(|&(n, id)| Self::named(n, id as usize))
                .collect(),
        }
        .to_bytes()
    }

    pub fn model(self, outputs: &[(&str, u32)]) -> TapeModel<f32> {
        TapeModel::from_bytes(&self.bytes(outputs), &LoadOptions::default()).unwrap()
    }
}

/// `[n, 0] · [0, n]`: no data in the file, n² outputs.
pub fn empty_inner_product(n: usize) -> TapeModel<f32> {
    let mut c = Crafted::new();
    let a = c.parameter("a", &[n, 0]);
    let b = c.parameter("b", &[0, n]);
    let y = c.op(OpV1::MatMul, &[a, b]);
    c.model(&[("y", y)])
}

/// A column of n ones times its transpose: n floats in the file, n² outputs.
pub fn column_times_transpose(n: usize) -> TapeModel<f32> {
    let mut c = Crafted::new();
    let col = c.parameter("col", &[n, 1]);
    let row = c.op(OpV1::Transpose { axis0: 0, axis1: 1 }, &[col]);
    let y = c.op(OpV1::MatMul, &[col, row]);
    c.model(&[("y", y)])
}

/// `x[batch, features]` through `depth` ReLUs: cheap ops, each a batch-sized value.
pub fn relu_chain(features: usize, depth: usize) -> TapeModel<f32> {
    let mut c = Crafted::new();
    let mut h = c.input("x", &[1, features]);
    for _ in 0..depth {
        h = c.op(OpV1::Relu, &[h]);
    }
    c.model(&[("y", h)])
}

/// `x[batch, 0] · w[0, width]`: the input holds nothing, the output `batch · width`.
pub fn widening(width: usize) -> TapeModel<f32> {
    let mut c = Crafted::new();
    let x = c.input("x", &[1, 0]);
    let w = c.parameter("w", &[0, width]);
    let y = c.op(OpV1::MatMul, &[x, w]);
    c.model(&[("y", y)])
}

fn too_large(err: &Error) -> (u128, u64, Option<usize>) {
    match err {
        Error::ReplayTooLarge {
            needed,
            budget,
            batch,
        } => (*needed, *budget, *batch),
        other => panic!("expected ReplayTooLarge, got {other:?}: {other}"),
    }
}

fn replay_fails(model: &TapeModel<f32>, inputs: Vec<(&str, ArrayD<f32>)>) -> Error {
    let mut tape = Tape::<f32>::new();
    let err = model
        .replay(&mut tape, inputs, &ReplayOptions::default())
        .unwrap_err();
    // Nothing was recorded: the refusal came before the first node.
    assert_eq!(tape.len(), 0, "{err}");
    err
}

#[test]
fn an_empty_inner_dimension_cannot_claim_n_squared_outputs() {
    let n = 1 << 20;
    let model = empty_inner_product(n);
    let err = replay_fails(&model, vec![]);
    let (needed, budget, batch) = too_large(&err);
    let plan = model.plan_replay(&[], None).unwrap();
    // The empty operands count as though their empty axes had length 1.
    assert_eq!(plan.elements(), (n as u128) * (n as u128) + 2 * n as u128);
    assert!(plan.bytes() > plan.elements() * 4 + 3 * u128::from(NODE_OVERHEAD_BYTES));
    assert_eq!(needed, plan.bytes());
    assert_eq!(budget, wengert_io::DEFAULT_MAX_REPLAY_BYTES);
    assert_eq!(batch, None);
    assert!(err.to_string().contains("more than the budget"), "{err}");
}

#[test]
fn a_column_times_its_transpose_is_refused() {
    let err = replay_fails(&column_times_transpose(1 << 16), vec![]);
    let (needed, _, _) = too_large(&err);
    assert!(needed > 1 << 34, "{needed}");
}

#[test]
fn a_long_chain_is_planned_at_the_batch_that_runs() {
    let model = relu_chain(64, 100_000);
    // At the recorded batch of one it is 26 MB of values; on the digits' 1,797 rows, 46 GB.
    let one = model.plan_replay(&[("x", &[1, 64])], None).unwrap();
    let all = model.plan_replay(&[("x", &[1797, 64])], None).unwrap();
    assert_eq!(one.elements(), 100_001 * 64);
    assert_eq!(all.elements(), 100_001 * 64 * 1797);
    assert_eq!(all.nodes(), 100_001);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1797, 64]));
    let err = replay_fails(&model, vec![("x", x)]);
    assert_eq!(too_large(&err).0, all.bytes());
}

#[test]
fn a_deep_legitimate_model_replays_in_batches_that_fit() {
    let model = relu_chain(64, 20_000);
    let budget = ReplayOptions::with_max_bytes(64 << 20);
    let batch = model
        .largest_batch(&[("x", &[64])], None, &budget, 1797, 0)
        .unwrap();
    let cost = |b: usize| model.plan_replay(&[("x", &[b, 64])], None).unwrap().bytes();
    assert!(batch > 1 && batch < 1797, "{batch}");
    assert!(cost(batch) <= 64 << 20 && cost(batch + 1) > 64 << 20);
    let mut tape = Tape::<f32>::new();
    let x = values::<f32>(&[batch, 64], 3);
    let replay = model
        .replay(&mut tape, [("x", x.clone())], &budget)
        .unwrap();
    let y = tape.value_owned(replay.node("y").unwrap()).unwrap();
    assert_eq!(y, x.mapv(|v| v.max(0.0)));
    // One example more than fits is refused, before recording.
    let mut tape = Tape::<f32>::new();
    let more = values::<f32>(&[batch + 1, 64], 3);
    let err = model.replay(&mut tape, [("x", more)], &budget).unwrap_err();
    assert_eq!(too_large(&err).2, None);
    assert_eq!(tape.len(), 0);
}

#[test]
fn a_model_whose_one_example_exceeds_the_budget_is_refused_up_front() {
    let model = relu_chain(64, 100_000);
    let err = model
        .largest_batch(
            &[("x", &[64])],
            None,
            &ReplayOptions::with_max_bytes(1 << 20),
            1024,
            0,
        )
        .unwrap_err();
    let (needed, budget, batch) = too_large(&err);
    assert_eq!(batch, Some(1));
    assert_eq!(budget, 1 << 20);
    assert_eq!(
        needed,
        model.plan_replay(&[("x", &[1, 64])], None).unwrap().bytes()
    );
    assert!(
        err.to_string().starts_with("replaying one example needs"),
        "{err}"
    );
}

#[test]
fn a_batch_of_two_to_the_forty_is_refused() {
    let model = widening(4);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1 << 40, 0]));
    let err = replay_fails(&model, vec![("x", x)]);
    let plan = model.plan_replay(&[("x", &[1 << 40, 0])], None).unwrap();
    assert_eq!(plan.elements(), (1u128 << 40) + 4 + (1u128 << 40) * 4);
    assert_eq!(too_large(&err).0, plan.bytes());
    // Asked for the largest batch that fits, it answers without planning 2^40 batches.
    let batch = model
        .largest_batch(&[("x", &[0])], None, &ReplayOptions::default(), 1 << 40, 0)
        .unwrap();
    assert!(batch > 1 << 20 && batch < 1 << 40, "{batch}");
}

#[test]
fn an_element_count_past_u64_is_a_shape_error() {
    let model = widening(1 << 30);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1 << 40, 0]));
    let err = replay_fails(&model, vec![("x", x)]);
    assert!(
        matches!(
            err,
            Error::ShapeInference {
                node: 2,
                source: wengert_ops::Error::TooManyElements { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("node 2:"), "{err}");
    // Planning says the same without a value.
    let err = model
        .plan_replay(&[("x", &[1 << 40, 0])], None)
        .unwrap_err();
    assert!(
        matches!(err, Error::ShapeInference { node: 2, .. }),
        "{err}"
    );
}

#[test]
fn an_empty_value_with_a_huge_axis_counts_for_its_walk() {
    // softmax over [2^40, 0] stores nothing but would walk 2^40 empty rows.
    let mut c = Crafted::new();
    let x = c.input("x", &[1, 0]);
    let y = c.op(OpV1::Softmax, &[x]);
    let model = c.model(&[("y", y)]);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1 << 40, 0]));
    let started = std::time::Instant::now();
    let err = replay_fails(&model, vec![("x", x)]);
    too_large(&err);
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn element_counts_summed_past_u64_are_counted_exactly() {
    // Four nodes of 2^62 elements each: their sum passes u64::MAX.
    let mut c = Crafted::new();
    let a = c.parameter("a", &[1 << 31, 0]);
    let b = c.parameter("b", &[0, 1 << 31]);
    let mut y = c.op(OpV1::MatMul, &[a, b]);
    for _ in 0..3 {
        y = c.op(OpV1::Relu, &[y]);
    }
    let model = c.model(&[("y", y)]);
    let plan = model.plan_replay(&[], None).unwrap();
    assert_eq!(plan.elements(), (4 << 62) + (2 << 31));
    let err = replay_fails(&model, vec![]);
    assert_eq!(too_large(&err).0, plan.bytes());
    assert!(plan.bytes() > u128::from(u64::MAX));
}

#[test]
fn the_plan_follows_the_batch_not_the_recorded_size() {
    // Recorded at batch 5; the old recorded-size count under-counted a batch of 500 by 100.
    let model =
        TapeModel::<f32>::from_bytes(&model_bytes::<f32>(), &LoadOptions::default()).unwrap();
    let at = |batch: usize| {
        model
            .plan_replay(&[("x", &[batch, 4])], Some(&["probs"]))
            .unwrap()
    };
    let (five, five_hundred) = (at(5), at(500));
    assert_eq!(
        five_hundred.output_shape("probs").unwrap().dims(),
        &[500, 3]
    );
    assert!(five_hundred.elements() > 50 * five.elements());
    // The plan is exactly what the replay records.
    let mut tape = Tape::<f32>::new();
    model
        .replay_outputs(
            &mut tape,
            [("x", values::<f32>(&[500, 4], 1))],
            &["probs"],
            &ReplayOptions::with_max_bytes(five_hundred.bytes() as u64),
        )
        .unwrap();
    assert_eq!(tape.len(), five_hundred.nodes());
    let recorded: u128 = tape
        .ids()
        .map(|id| tape.shape(id).unwrap().numel() as u128)
        .sum();
    assert_eq!(recorded, five_hundred.elements());
    // One byte less and it is refused.
    let mut tape = Tape::<f32>::new();
    let err = model
        .replay_outputs(
            &mut tape,
            [("x", values::<f32>(&[500, 4], 1))],
            &["probs"],
            &ReplayOptions::with_max_bytes(five_hundred.bytes() as u64 - 1),
        )
        .unwrap_err();
    too_large(&err);
}

#[test]
fn a_shape_the_ops_refuse_at_replay_names_the_node() {
    let model =
        TapeModel::<f32>::from_bytes(&model_bytes::<f32>(), &LoadOptions::default()).unwrap();
    let err = model
        .plan_replay(&[("x", &[5, 7])], Some(&["probs"]))
        .unwrap_err();
    assert!(matches!(err, Error::ShapeInference { .. }), "{err}");
    let err = model.plan_replay(&[("nope", &[5, 4])], None).unwrap_err();
    assert!(matches!(err, Error::UnknownName { .. }), "{err}");
    let err = model
        .plan_replay(&[("x", &[5, 4]), ("x", &[5, 4])], None)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateName { .. }), "{err}");
}

/// A random graph over an input `x[1, f]` and parameters whose axes may be 0 or 1 or large
/// (with no data when empty): steps pick an op and earlier nodes, kept when shape inference
/// accepts them.
fn random_graph(features: usize, dims: &[(usize, usize)], steps: &[(u8, usize, usize)]) -> Crafted {
    let mut c = Crafted::new();
    c.input("x", &[1, features]);
    for (k, &(rows, cols)) in dims.iter().enumerate() {
        c.parameter(&format!("p{k}"), &[rows, cols]);
    }
    for &(op, a, b) in steps {
        let (a, b) = ((a % c.len()) as u32, (b % c.len()) as u32);
        let op = match op % 6 {
            0 => OpV1::MatMul,
            1 => OpV1::Relu,
            2 => OpV1::Add,
            3 => OpV1::Transpose { axis0: 0, axis1: 1 },
            4 => OpV1::SumAxis {
                axis: u32::from(op / 6 % 2),
                keep_dim: true,
            },
            _ => OpV1::Softmax,
        };
        let inputs = if matches!(op, OpV1::MatMul | OpV1::Add) {
            vec![a, b]
        } else {
            vec![a]
        };
        let _ = c.try_op(op, &inputs);
    }
    c
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        2usize..5,
        Just(1 << 20),
        Just(1 << 40)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A stand-in for the replay fuzzer: whatever random graph loads replays, at any batch,
    /// within its budget or not at all, and never panics.
    #[test]
    fn random_graphs_replay_within_the_budget_or_not_at_all(
        features in 0usize..4,
        dims in proptest::collection::vec((dim(), dim()), 0..3),
        steps in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..12),
        batch in prop_oneof![0usize..4, Just(1usize << 40)],
        out in any::<usize>(),
    ) {
        // Parameters with a huge non-zero count would be made in memory by the test itself.
        prop_assume!(dims.iter().all(|&(r, cl)| r.checked_mul(cl).is_some_and(|n| n <= 1 << 12)));
        let c = random_graph(features, &dims, &steps);
        let output = (out % c.len()) as u32;
        let model = c.model(&[("y", output)]);
        // Only a batch of no features can be 2^40 examples long without holding them.
        let batch = if features == 0 { batch } else { batch.min(3) };
        let x = ArrayD::<f32>::from_elem(IxDyn(&[batch, features]), 0.5);
        let budget = ReplayOptions::with_max_bytes(1 << 20);
        let mut tape = Tape::<f32>::new();
        match model.replay(&mut tape, [("x", x)], &budget) {
            Ok(_) => {
                let elements: u128 = tape
                    .ids()
                    .map(|id| tape.shape(id).unwrap().numel() as u128)
                    .sum();
                prop_assert!(elements * 4 <= 1 << 20);
            }
            Err(err) => {
                prop_assert!(
                    matches!(
                        err,
                        Error::ReplayTooLarge { .. } | Error::ShapeInference { .. } | Error::Engine { .. }
                    ),
                    "{err}"
                );
            }
        }
    }
}
