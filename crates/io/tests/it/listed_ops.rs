//! The ops of more than two inputs, or of any number (tags 62 to 65: `concat`, `stack`,
//! `where`, losses with weights), saved to a file, loaded from it as another process would
//! and replayed at another batch size: the same outputs and gradients, bit for bit, as
//! recording afresh. A file giving one of them inputs it cannot take is a typed error naming
//! the node.

use ndarray::ArrayD;
use wengert_io::{Element, LoadOptions, ReplayOptions, TapeModel, TapeSaver};
use wengert_ops::{CrossEntropyOptions, Reduction, Targets};
use wengert_tape::{NodeId, Tape};

use crate::common::{scratch, values};

/// The graph of one case: `h = x · w`, then the op on `h` and the other nodes.
struct Built {
    inputs: Vec<(&'static str, NodeId)>,
    params: Vec<(&'static str, NodeId)>,
    y: NodeId,
}

/// Records a case's graph for a batch of this many rows.
type Build<E> = fn(&mut Tape<E>, usize) -> Built;

/// The value fed as input `name` for a batch of `n` rows (the same when recording and
/// replaying).
fn fed<E: Element>(name: &str, n: usize) -> ArrayD<E> {
    let f = |shape: &[usize], seed| values::<E>(shape, seed);
    match name {
        "x" => f(&[n, 3], n as u64),
        "t" => f(&[n, 3], 11).mapv(|v| E::from_f64(v.to_f64() * 0.5 + 0.5)),
        "classes" => ArrayD::from_shape_fn(vec![n], |i| E::from_f64((i[0] % 3) as f64)),
        "weight" => ArrayD::from_shape_vec(vec![3], vec![0.5, 2.0, 1.25])
            .unwrap()
            .mapv(E::from_f64),
        other => panic!("no input {other}"),
    }
}

/// `x` (fed), `w` (trained) and `h = x · w`.
fn start<E: Element>(tape: &mut Tape<E>, n: usize) -> (NodeId, NodeId, NodeId) {
    let x = tape.input(fed::<E>("x", n)).unwrap();
    let w = tape.parameter(values::<E>(&[3], 2)).unwrap();
    let h = tape.mul(x, w).unwrap();
    (x, w, h)
}

fn concat_along_features<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let y = tape.concat([h, x, h], 1).unwrap();
    Built {
        inputs: vec![("x", x)],
        params: vec![("w", w)],
        y,
    }
}

fn concat_along_the_batch<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let p = tape.parameter(values::<E>(&[2, 3], 5)).unwrap();
    let y = tape.concat([p, h], 0).unwrap();
    Built {
        inputs: vec![("x", x)],
        params: vec![("w", w), ("p", p)],
        y,
    }
}

fn stack_of_three<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let y = tape.stack([h, x, h], 2).unwrap();
    Built {
        inputs: vec![("x", x)],
        params: vec![("w", w)],
        y,
    }
}

fn where_broadcast<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let t = tape.input(fed::<E>("t", n)).unwrap();
    let p = tape.parameter(values::<E>(&[3], 6)).unwrap();
    let cond = tape.gt(x, t).unwrap();
    let y = tape.where_cond(cond, h, p).unwrap();
    Built {
        inputs: vec![("x", x), ("t", t)],
        params: vec![("w", w), ("p", p)],
        y,
    }
}

fn bce_with_pos_weight<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let t = tape.input(fed::<E>("t", n)).unwrap();
    let pw = tape.input(fed::<E>("weight", n)).unwrap();
    let y = tape
        .binary_cross_entropy_with_logits_weighted(h, t, pw, Reduction::Mean)
        .unwrap();
    Built {
        inputs: vec![("x", x), ("t", t), ("weight", pw)],
        params: vec![("w", w)],
        y,
    }
}

fn nll_with_class_weights<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let lp = tape.log_softmax(h).unwrap();
    let c = tape.input(fed::<E>("classes", n)).unwrap();
    let cw = tape.input(fed::<E>("weight", n)).unwrap();
    let y = tape
        .nll_loss_weighted(lp, c, cw, Some(2), Reduction::Mean)
        .unwrap();
    Built {
        inputs: vec![("x", x), ("classes", c), ("weight", cw)],
        params: vec![("w", w)],
        y,
    }
}

fn cross_entropy_with_class_weights<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let c = tape.input(fed::<E>("classes", n)).unwrap();
    let cw = tape.input(fed::<E>("weight", n)).unwrap();
    let options = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..CrossEntropyOptions::default()
    };
    let y = tape.cross_entropy_weighted(h, c, cw, options).unwrap();
    Built {
        inputs: vec![("x", x), ("classes", c), ("weight", cw)],
        params: vec![("w", w)],
        y,
    }
}

fn soft_cross_entropy_with_class_weights<E: Element>(tape: &mut Tape<E>, n: usize) -> Built {
    let (x, w, h) = start(tape, n);
    let t = tape.input(fed::<E>("t", n)).unwrap();
    let cw = tape.input(fed::<E>("weight", n)).unwrap();
    let options = CrossEntropyOptions {
        targets: Targets::Probabilities,
        reduction: Reduction::None,
        ..CrossEntropyOptions::default()
    };
    let y = tape.cross_entropy_weighted(h, t, cw, options).unwrap();
    Built {
        inputs: vec![("x", x), ("t", t), ("weight", cw)],
        params: vec![("w", w)],
        y,
    }
}

fn every_case<E: Element>() -> Vec<(&'static str, Build<E>)> {
    vec![
        ("concat along features", concat_along_features::<E>),
        ("concat along the batch", concat_along_the_batch::<E>),
        ("stack of three", stack_of_three::<E>),
        ("where, broadcasting", where_broadcast::<E>),
        ("bce with pos_weight", bce_with_pos_weight::<E>),
        ("nll with class weights", nll_with_class_weights::<E>),
        (
            "ce with class weights",
            cross_entropy_with_class_weights::<E>,
        ),
        (
            "soft ce with class weights",
            soft_cross_entropy_with_class_weights::<E>,
        ),
    ]
}

fn bits<E: Element>(data: &[E]) -> Vec<u64> {
    data.iter().map(|&x| x.to_f64().to_bits()).collect()
}

/// The bits of `y` and of every trained value's gradient of `Σ y`.
fn outcome<E: Element>(tape: &mut Tape<E>, params: &[NodeId], y: NodeId) -> Vec<Vec<u64>> {
    let mut out = vec![bits(tape.data(y).unwrap())];
    let loss = tape.sum(y).unwrap();
    let grads = tape.backward(loss).unwrap();
    for &p in params {
        out.push(bits(grads.data(p).unwrap()));
    }
    out
}

fn saved_and_replayed<E: Element>(name: &str, build: Build<E>) {
    let dir = scratch();
    let path = dir.path().join("model.tape");
    {
        let mut tape = Tape::<E>::new();
        let built = build(&mut tape, 3);
        let mut saver = TapeSaver::new(&tape).output("y", built.y);
        for (n, id) in &built.inputs {
            saver = saver.input(*n, *id);
        }
        for (n, id) in &built.params {
            saver = saver.parameter(*n, *id);
        }
        saver.save(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let model = TapeModel::<E>::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(model.to_bytes(), std::fs::read(&path).unwrap(), "{name}");

    let batch = 5;
    let mut fresh_tape = Tape::<E>::new();
    let fresh = build(&mut fresh_tape, batch);
    let params: Vec<NodeId> = fresh.params.iter().map(|(_, id)| *id).collect();
    let expected = outcome(&mut fresh_tape, &params, fresh.y);

    let feeds: Vec<(&str, ArrayD<E>)> = fresh
        .inputs
        .iter()
        .map(|(n, _)| (*n, fed::<E>(n, batch)))
        .collect();
    let mut tape = Tape::<E>::new();
    let replay = model
        .replay(&mut tape, feeds, &ReplayOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let params: Vec<NodeId> = fresh
        .params
        .iter()
        .map(|(n, _)| replay.node(n).unwrap())
        .collect();
    let y = replay.node("y").unwrap();
    assert_eq!(outcome(&mut tape, &params, y), expected, "{name}");
}

#[test]
fn every_op_of_many_inputs_saved_loads_and_replays_to_the_same_values_f32() {
    for (name, build) in every_case::<f32>() {
        saved_and_replayed::<f32>(name, build);
    }
}

#[test]
fn every_op_of_many_inputs_saved_loads_and_replays_to_the_same_values_f64() {
    for (name, build) in every_case::<f64>() {
        saved_and_replayed::<f64>(name, build);
    }
}

#[test]
fn a_file_giving_an_op_inputs_it_cannot_take_is_a_typed_error_naming_the_node() {
    use wengert_io::Error;
    use wengert_io::format::v2::{DistanceV2, LossOpV2, NodeV2, OpV2, ReductionV2};
    let mut tape = Tape::<f64>::new();
    let x = tape.input(values::<f64>(&[2, 3], 1)).unwrap();
    let y = tape.concat([x, x, x], 0).unwrap();
    let good = TapeSaver::new(&tape).input("x", x).output("y", y);
    let good = good.model().unwrap().to_file();
    let load = |op: OpV2, inputs: Vec<u32>| {
        let mut file = good.clone();
        let NodeV2::Op {
            op: slot,
            inputs: listed,
            ..
        } = &mut file.nodes[1]
        else {
            panic!("node 1 is the op");
        };
        *slot = op;
        *listed = inputs;
        TapeModel::<f64>::from_bytes(&file.to_bytes(), &LoadOptions::default())
    };
    // The saved file itself loads, with its three inputs.
    assert!(load(OpV2::Concat { axis: 0 }, vec![0, 0, 0]).is_ok());
    // No inputs at all, and `where` with two.
    for (op, inputs) in [
        (OpV2::Concat { axis: 0 }, vec![]),
        (OpV2::Stack { axis: 0 }, vec![]),
        (OpV2::Where, vec![0, 0]),
    ] {
        match load(op.clone(), inputs) {
            Err(Error::WrongArity { node: 1, .. }) => {}
            other => panic!("{op:?}: {other:?}"),
        }
    }
    // A weighted distance loss does not exist.
    let l1 = OpV2::WeightedLoss(LossOpV2::Distance {
        distance: DistanceV2::L1,
        reduction: ReductionV2::Mean,
    });
    match load(l1, vec![0, 0, 0]) {
        Err(Error::OpParameter { node: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Against the input's shape `[2, 3]`: an axis past the rank, a `pos_weight` that is not a
    // vector of the last axis's length.
    let bce = OpV2::WeightedLoss(LossOpV2::BceWithLogits {
        reduction: ReductionV2::Sum,
    });
    for (op, inputs) in [
        (OpV2::Concat { axis: 2 }, vec![0, 0]),
        (OpV2::Stack { axis: 3 }, vec![0]),
        (bce, vec![0, 0, 0]),
    ] {
        match load(op.clone(), inputs) {
            Err(Error::ShapeInference { node: 1, .. }) => {}
            other => panic!("{op:?}: {other:?}"),
        }
    }
}
