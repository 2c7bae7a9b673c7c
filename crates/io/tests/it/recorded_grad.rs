//! A tape holding recorded gradient nodes (`Tape::record_grad`) saves and replays like any
//! other: a gradient-penalty loss over an MLP with cross-entropy losses, saved, loaded as
//! another process would and replayed, gives the same loss and the same (second-order)
//! parameter gradients, bit for bit, and needs no input beyond the ones named.

use ndarray::{ArrayD, IxDyn};
use wengert_io::{Element, LoadOptions, ReplayOptions, TapeModel, TapeSaver};
use wengert_ops::{CrossEntropyOptions, Reduction, Targets};
use wengert_tape::{NodeId, Tape};

use crate::common::{scratch, values};

/// The leaves and the loss of the gradient-penalty network.
struct Penalised {
    x: NodeId,
    labels: NodeId,
    params: [NodeId; 3],
    loss: NodeId,
}

/// Labels for 4 rows of 3 classes, the last one the ignored index 2 for the smoothed loss.
fn labels<E: Element>() -> ArrayD<E> {
    ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, 0.0, 2.0, 1.0])
        .expect("sized")
        .mapv(E::from_f64)
}

/// `loss = ce(z) + ce_smoothed(z) + 0.1·Σ‖∂ce/∂w‖²` with `z = relu(x·w1 + b1)·w2`: the penalty is
/// a function of recorded gradients, whose rules hold masks (relu's), a one-hot of the labels
/// (both cross-entropies) and an ignored label.
fn record<E: Element>(tape: &mut Tape<E>, labels: ArrayD<E>) -> Penalised {
    let x = tape.input(values::<E>(&[4, 3], 1)).unwrap();
    let labels = tape.input(labels).unwrap();
    let w1 = tape.parameter(values::<E>(&[3, 5], 2)).unwrap();
    let b1 = tape.parameter(values::<E>(&[5], 3)).unwrap();
    let w2 = tape.parameter(values::<E>(&[5, 3], 4)).unwrap();
    let h = tape.matmul(x, w1).unwrap();
    let h = tape.add(h, b1).unwrap();
    let h = tape.relu(h).unwrap();
    let z = tape.matmul(h, w2).unwrap();
    let ce = tape.cross_entropy(z, labels).unwrap();
    let options = CrossEntropyOptions {
        targets: Targets::Classes,
        ignore_index: Some(2),
        label_smoothing: 0.1,
        reduction: Reduction::Mean,
    };
    let smoothed = tape.cross_entropy_with(z, labels, options).unwrap();
    let data_loss = tape.add(ce, smoothed).unwrap();
    let grads = tape.record_grad(data_loss, &[w1, b1, w2]).unwrap();
    let mut loss = data_loss;
    for g in grads {
        let sq = tape.square(g).unwrap();
        let norm = tape.sum(sq).unwrap();
        let norm = tape.mul_scalar(norm, E::from_f64(0.1)).unwrap();
        loss = tape.add(loss, norm).unwrap();
    }
    Penalised {
        x,
        labels,
        params: [w1, b1, w2],
        loss,
    }
}

fn bits<E: Element>(data: &[E]) -> Vec<u64> {
    data.iter().map(|&v| v.to_f64().to_bits()).collect()
}

/// The loss's bits and each parameter's gradient's bits.
fn outcome<E: Element>(tape: &mut Tape<E>, loss: NodeId, params: &[NodeId]) -> Vec<Vec<u64>> {
    let mut out = vec![bits(tape.data(loss).unwrap())];
    let grads = tape.backward(loss).unwrap();
    for &p in params {
        out.push(bits(grads.data(p).unwrap()));
    }
    out
}

fn saved_and_replayed<E: Element>() {
    let dir = scratch();
    let path = dir.path().join("penalty.tape");
    let expected = {
        let mut tape = Tape::<E>::new();
        let net = record(&mut tape, labels::<E>());
        TapeSaver::new(&tape)
            .input("x", net.x)
            .input("labels", net.labels)
            .parameter("w1", net.params[0])
            .parameter("b1", net.params[1])
            .parameter("w2", net.params[2])
            .output("loss", net.loss)
            .save(&path)
            .unwrap();
        outcome(&mut tape, net.loss, &net.params)
    };
    let model = TapeModel::<E>::load(&path, &LoadOptions::default()).unwrap();
    // The recorded gradients built their constants from the tape's nodes: no unnamed input.
    assert_eq!(model.input_names().collect::<Vec<_>>(), ["x", "labels"]);
    let mut tape = Tape::<E>::new();
    let feeds = [("x", values::<E>(&[4, 3], 1)), ("labels", labels::<E>())];
    let replay = model
        .replay(&mut tape, feeds, &ReplayOptions::default())
        .unwrap();
    let params = ["w1", "b1", "w2"].map(|n| replay.node(n).unwrap());
    let loss = replay.node("loss").unwrap();
    assert_eq!(outcome(&mut tape, loss, &params), expected);
}

#[test]
fn a_gradient_penalty_tape_saves_loads_and_replays_bit_for_bit_f32() {
    saved_and_replayed::<f32>();
}

#[test]
fn a_gradient_penalty_tape_saves_loads_and_replays_bit_for_bit_f64() {
    saved_and_replayed::<f64>();
}

#[test]
fn a_replay_with_other_labels_follows_them_through_the_recorded_gradient() {
    // The one-hot inside the recorded gradient is built from the labels node, so new labels
    // change the penalty as recording afresh with them does.
    let mut tape = Tape::<f64>::new();
    let net = record(&mut tape, labels::<f64>());
    let model = TapeSaver::new(&tape)
        .input("x", net.x)
        .input("labels", net.labels)
        .output("loss", net.loss)
        .model()
        .unwrap();
    let other = ArrayD::from_shape_vec(IxDyn(&[4]), vec![0.0, 2.0, 1.0, 0.0]).unwrap();
    let mut replayed = Tape::<f64>::new();
    let feeds = [("x", values::<f64>(&[4, 3], 1)), ("labels", other.clone())];
    let replay = model
        .replay(&mut replayed, feeds, &ReplayOptions::default())
        .unwrap();
    let got = replayed.item(replay.node("loss").unwrap()).unwrap();
    let mut direct = Tape::<f64>::new();
    let want = record(&mut direct, other);
    assert_eq!(got.to_bits(), direct.item(want.loss).unwrap().to_bits());
    assert_ne!(
        got,
        tape.item(net.loss).unwrap(),
        "the labels changed the loss"
    );
}
