//! Every elementwise op, in particular those added after format version 1, saved to a file,
//! loaded from it as another process would, and replayed on new values: the same outputs and
//! gradients, bit for bit, as recording the op afresh.

use ndarray::ArrayD;
use wengert_io::{Element, LoadOptions, ReplayOptions, TapeModel, TapeSaver};
use wengert_ops::{BinaryOp, Op, UnaryOp};
use wengert_tape::{NodeId, Tape};

use crate::common::{scratch, values};

/// Values in [0.25, 1.75): inside every op's domain (`sqrt`, `log`, `pow`), away from kinks.
fn positive<E: Element>(shape: &[usize], seed: u64) -> ArrayD<E> {
    values::<E>(shape, seed).mapv(|v| E::from_f64(v.to_f64() * 0.75 + 1.0))
}

fn bits<E: Element>(data: &[E]) -> Vec<u64> {
    data.iter().map(|&x| x.to_f64().to_bits()).collect()
}

/// The graph saved: `y = op(x · w)` for a one-input op, `y = op(x · w, b)` for a two-input
/// one, with `x` fed and `w`, `b` trained (so that gradients flow), returning `y`.
fn graph<E: Element>(
    tape: &mut Tape<E>,
    op: Op,
    x: NodeId,
    w: NodeId,
    b: Option<NodeId>,
) -> NodeId {
    let h = tape.mul(x, w).unwrap();
    match b {
        Some(b) => tape.record(op, &[h, b]).unwrap(),
        None => tape.record(op, &[h]).unwrap(),
    }
}

/// `y = op(...)` recorded afresh on `x`; the bits of its value and of the parameters'
/// gradients.
fn run<E: Element>(op: Op, x: ArrayD<E>, w: ArrayD<E>, b: Option<ArrayD<E>>) -> Vec<Vec<u64>> {
    let mut tape = Tape::<E>::new();
    let x = tape.input(x).unwrap();
    let w = tape.parameter(w).unwrap();
    let b = b.map(|b| tape.parameter(b).unwrap());
    let y = graph(&mut tape, op, x, w, b);
    outcome(&mut tape, op, y, [Some(w), b].into_iter().flatten())
}

fn outcome<E: Element>(
    tape: &mut Tape<E>,
    op: Op,
    y: NodeId,
    parameters: impl Iterator<Item = NodeId>,
) -> Vec<Vec<u64>> {
    let mut out = vec![bits(tape.data(y).unwrap())];
    if op.differentiable_in(0) {
        let loss = tape.sum(y).unwrap();
        let grads = tape.backward(loss).unwrap();
        for id in parameters {
            out.push(bits(grads.get(id).unwrap().as_slice().unwrap()));
        }
    }
    out
}

fn saved_and_replayed<E: Element>(op: Op) {
    // Recorded at one batch, with a broadcast second operand; replayed at another.
    let w = positive::<E>(&[3], 2);
    let b = (op.arity() == 2).then(|| positive::<E>(&[3], 4));
    let dir = scratch();
    let path = dir.path().join("model.tape");
    {
        let mut tape = Tape::<E>::new();
        let x = tape.input(positive::<E>(&[2, 3], 1)).unwrap();
        let w_id = tape.parameter(w.clone()).unwrap();
        let b_id = b.clone().map(|b| tape.parameter(b).unwrap());
        let y = graph(&mut tape, op, x, w_id, b_id);
        let mut saver = TapeSaver::new(&tape)
            .input("x", x)
            .parameter("w", w_id)
            .output("y", y);
        if let Some(b_id) = b_id {
            saver = saver.parameter("b", b_id);
        }
        saver.save(&path).unwrap();
    }
    // Only the file crosses over, as to another process.
    let model = TapeModel::<E>::load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(
        model.to_bytes(),
        std::fs::read(&path).unwrap(),
        "{}",
        op.name()
    );
    let fed = positive::<E>(&[4, 3], 3);
    let mut fresh = Tape::<E>::new();
    let replay = model
        .replay(&mut fresh, [("x", fed.clone())], &ReplayOptions::default())
        .unwrap();
    let parameters = [Some("w"), b.as_ref().map(|_| "b")];
    let parameters = parameters
        .into_iter()
        .flatten()
        .map(|n| replay.node(n).unwrap());
    let y = replay.node("y").unwrap();
    let replayed = outcome(&mut fresh, op, y, parameters);
    assert_eq!(replayed, run(op, fed, w, b), "{}", op.name());
}

/// The example of each elementwise op, plus clamps with one bound and `powf` at 0.
fn every_elementwise_op() -> Vec<Op> {
    let mut ops: Vec<Op> = UnaryOp::ALL.into_iter().map(Op::Unary).collect();
    ops.extend(BinaryOp::ALL.into_iter().map(Op::Binary));
    ops.extend([
        Op::Unary(UnaryOp::Clamp(f64::NEG_INFINITY, 1.25)),
        Op::Unary(UnaryOp::Clamp(0.5, f64::INFINITY)),
        Op::Unary(UnaryOp::Powf(0.0)),
    ]);
    ops
}

#[test]
fn every_elementwise_op_saved_loads_and_replays_to_the_same_values_f32() {
    for op in every_elementwise_op() {
        saved_and_replayed::<f32>(op);
    }
}

#[test]
fn every_elementwise_op_saved_loads_and_replays_to_the_same_values_f64() {
    for op in every_elementwise_op() {
        saved_and_replayed::<f64>(op);
    }
}

#[test]
fn a_file_whose_op_has_a_parameter_the_engine_refuses_is_a_typed_error() {
    use wengert_io::Error;
    use wengert_io::format::v2::{NodeV2, OpV2};
    let mut tape = Tape::<f64>::new();
    let x = tape.input(positive::<f64>(&[2, 3], 1)).unwrap();
    let y = tape.leaky_relu(x, 0.1).unwrap();
    let good = TapeSaver::new(&tape).input("x", x).output("y", y);
    let good = good.model().unwrap().to_file();
    let cases = [
        (OpV2::LeakyRelu(f64::NAN), "slope"),
        (
            OpV2::Softplus {
                beta: -1.0,
                threshold: 20.0,
            },
            "beta",
        ),
        (
            OpV2::Clamp {
                min: f64::NAN,
                max: 1.0,
            },
            "min",
        ),
    ];
    for (op, parameter) in cases {
        let mut file = good.clone();
        let NodeV2::Op { op: slot, .. } = &mut file.nodes[1] else {
            panic!("node 1 is the op");
        };
        *slot = op;
        let err =
            TapeModel::<f64>::from_bytes(&file.to_bytes(), &LoadOptions::default()).unwrap_err();
        match &err {
            Error::OpParameter {
                node: 1,
                source: wengert_ops::Error::BadParameter { parameter: p, .. },
            } if *p == parameter => {}
            other => panic!("{parameter}: {other:?}"),
        }
        assert!(err.to_string().starts_with("node 1: "), "{err}");
    }
}
