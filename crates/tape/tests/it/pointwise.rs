//! The sweep's paths: pointwise nodes (every operand as many elements as the output) on
//! plain slices, every other node through the op's shaped VJP. Both must give the same
//! gradients, whichever path a node takes and however often its inputs repeat.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Shaped, Tape};

fn grads_of(
    tape: &mut Tape<f64>,
    loss: wengert_tape::NodeId,
    ids: &[wengert_tape::NodeId],
) -> Vec<Vec<f64>> {
    let grads = tape.backward(loss).unwrap();
    ids.iter()
        .map(|&id| grads.data(id).unwrap().to_vec())
        .collect()
}

/// `a ∘ b` for same-shaped operands (pointwise) equals `a ∘ b` with `b` given one more axis
/// of length 3 to broadcast along (shaped path), divided out.
#[test]
fn pointwise_and_broadcast_paths_agree() {
    let a_data = [0.5, -1.25, 2.0];
    let b_data = [1.5, 0.75, -0.5];
    for op in ["add", "sub", "mul", "div"] {
        let record = |tape: &mut Tape<f64>, a, b| match op {
            "add" => tape.add(a, b).unwrap(),
            "sub" => tape.sub(a, b).unwrap(),
            "mul" => tape.mul(a, b).unwrap(),
            _ => tape.div(a, b).unwrap(),
        };
        // Pointwise: a [3] ∘ b [3].
        let mut tape = Tape::<f64>::new();
        let a = tape.parameter(Shaped(&[3], &a_data)).unwrap();
        let b = tape.parameter(Shaped(&[3], &b_data)).unwrap();
        let c = record(&mut tape, a, b);
        let loss = tape.sum(c).unwrap();
        let pointwise = grads_of(&mut tape, loss, &[a, b]);

        // Shaped: a [2, 3] (two equal rows) ∘ b [3], broadcast down the rows; halve a's rows' sum.
        let mut tape = Tape::<f64>::new();
        let rows: Vec<f64> = a_data.iter().chain(&a_data).copied().collect();
        let a2 = tape.parameter(Shaped(&[2, 3], &rows)).unwrap();
        let b2 = tape.parameter(Shaped(&[3], &b_data)).unwrap();
        let c = record(&mut tape, a2, b2);
        let loss = tape.sum(c).unwrap();
        let shaped = grads_of(&mut tape, loss, &[a2, b2]);

        assert_eq!(pointwise[0], shaped[0][..3], "{op}: da");
        let db: Vec<f64> = shaped[1].iter().map(|g| g / 2.0).collect();
        assert_eq!(pointwise[1], db, "{op}: db");
    }
}

/// An input used twice by one pointwise node (`x·x`, `x - x`) gets both shares: the first
/// overwrites the stale buffer, the second adds.
#[test]
fn repeated_input_of_a_pointwise_node_gets_both_shares() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![3.0, -2.0]).unwrap();
    let start = tape.mark();
    for _ in 0..2 {
        // Twice, so that the second sweep finds last sweep's numbers in the buffers.
        tape.rewind(start).unwrap();
        let sq = tape.mul(x, x).unwrap();
        let zero = tape.sub(x, x).unwrap();
        let y = tape.add(sq, zero).unwrap();
        let loss = tape.sum(y).unwrap();
        let g = grads_of(&mut tape, loss, &[x]);
        assert_eq!(g[0], vec![6.0, -4.0]);
    }
}

/// Same element count, different shapes (`[1]` with `[]`, `[2, 3]` reshaped from `[6]`): still
/// element by element, and each gradient keeps its own node's shape.
#[test]
fn equal_counts_of_different_shapes_are_pointwise() {
    let mut tape = Tape::<f64>::new();
    let a = tape.parameter(Shaped(&[1], &[2.0])).unwrap();
    let s = tape.parameter(4.0).unwrap();
    let c = tape.mul(a, s).unwrap();
    let v = tape
        .parameter(Shaped(&[6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        .unwrap();
    let m = tape.reshape(v, &[2, 3]).unwrap();
    let t = tape.tanh(m).unwrap();
    let st = tape.sum(t).unwrap();
    let loss = tape.add(c, st).unwrap();
    let loss = tape.sum(loss).unwrap();
    let grads = tape.backward(loss).unwrap();
    assert_eq!(grads.get(a).unwrap(), ArrayD::from_elem(IxDyn(&[1]), 4.0));
    assert_eq!(grads.get(s).unwrap(), ArrayD::from_elem(IxDyn(&[]), 2.0));
    let gv = grads.get(v).unwrap();
    assert_eq!(gv.shape(), &[6]);
    for (k, &g) in gv.iter().enumerate() {
        let y = ((k + 1) as f64).tanh();
        assert_eq!(g, 1.0 - y * y);
    }
}

/// A bias add's unbroadcast operand takes the add's gradient buffer instead of a copy (when it
/// is reached first and the add's gradient is not kept): the gradients must be those of the
/// copying path, bit for bit, whatever else reaches the operand before or after, sweep after
/// sweep (the buffers change slots each time).
#[test]
fn handing_a_sums_gradient_on_equals_copying_it() {
    let x_data: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
    let run = |keep_sum_grad: bool, z_also_before: bool| {
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(Shaped(&[4, 3], &x_data)).unwrap();
        let b = tape.parameter(array![0.5, -0.25, 1.0]).unwrap();
        let start = tape.mark();
        let mut out = Vec::new();
        for _ in 0..3 {
            tape.rewind(start).unwrap();
            let z = tape.tanh(x).unwrap();
            // `z` feeds the bias add and, depending on the case, a later node too (whose share
            // then reaches z before the add's does: no hand-off).
            let zb = tape.add(z, b).unwrap();
            if keep_sum_grad {
                tape.retain_grad(zb).unwrap();
            }
            let h = tape.mul(zb, zb).unwrap();
            let loss = if z_also_before {
                let extra = tape.mul(h, z).unwrap();
                tape.sum(extra).unwrap()
            } else {
                tape.sum(h).unwrap()
            };
            let grads = tape.backward(loss).unwrap();
            out.push([
                grads.data(x).unwrap().to_vec(),
                grads.data(b).unwrap().to_vec(),
            ]);
        }
        out
    };
    for z_also_before in [false, true] {
        let handed = run(false, z_also_before);
        let copied = run(true, z_also_before);
        assert_eq!(handed, copied, "z_also_before = {z_also_before}");
        assert_eq!(handed[0], handed[2], "sweeps agree");
    }
}

/// A kept gradient is never handed on: it stays readable after the sweep.
#[test]
fn a_kept_sum_gradient_stays_readable() {
    let mut tape = Tape::<f64>::new();
    let x = tape
        .parameter(Shaped(&[2, 2], &[1.0, -2.0, 3.0, 0.5]))
        .unwrap();
    let b = tape.parameter(array![1.0, 2.0]).unwrap();
    let zb = tape.add(x, b).unwrap();
    tape.retain_grad(zb).unwrap();
    let sq = tape.mul(zb, zb).unwrap();
    let loss = tape.sum(sq).unwrap();
    let grads = tape.backward(loss).unwrap();
    assert_eq!(grads.data(zb).unwrap(), &[4.0, 0.0, 8.0, 5.0]);
    assert_eq!(grads.data(x).unwrap(), &[4.0, 0.0, 8.0, 5.0]);
    assert_eq!(grads.data(b).unwrap(), &[12.0, 5.0]);
}
