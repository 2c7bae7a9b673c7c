//! The sweep's paths: pointwise nodes (every operand as many elements as the output) on
//! plain slices, every other node through the op's shaped VJP. Both must give the same
//! gradients, whichever path a node takes and however often its inputs repeat.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Float, NodeId, Shaped, Tape};

fn grads_of(tape: &mut Tape<f64>, loss: NodeId, ids: &[NodeId]) -> Vec<Vec<f64>> {
    let grads = tape.backward(loss).unwrap();
    ids.iter()
        .map(|&id| grads.data(id).unwrap().to_vec())
        .collect()
}

/// `a ∘ b` for same-shaped operands (pointwise) equals `a ∘ b` with `a` given one more axis
/// of length 2 to broadcast `b` along (shaped path), divided out; in both precisions.
#[test]
fn pointwise_and_broadcast_paths_agree() {
    paths_agree::<f64>();
    paths_agree::<f32>();
}

fn paths_agree<E: Float>() {
    let a_data: Vec<E> = [0.5, -1.25, 2.0].map(E::from_f64).to_vec();
    let b_data: Vec<E> = [1.5, 0.75, -0.5].map(E::from_f64).to_vec();
    for op in ["add", "sub", "mul", "div"] {
        let record = |tape: &mut Tape<E>, a, b| match op {
            "add" => tape.add(a, b).unwrap(),
            "sub" => tape.sub(a, b).unwrap(),
            "mul" => tape.mul(a, b).unwrap(),
            _ => tape.div(a, b).unwrap(),
        };
        // Pointwise: a [3] ∘ b [3].
        let mut tape = Tape::<E>::new();
        let a = tape.parameter(Shaped(&[3], &a_data)).unwrap();
        let b = tape.parameter(Shaped(&[3], &b_data)).unwrap();
        let c = record(&mut tape, a, b);
        let loss = tape.sum(c).unwrap();
        let grads = tape.backward(loss).unwrap();
        let pointwise = [a, b].map(|id| grads.data(id).unwrap().to_vec());

        // Shaped: a [2, 3] (two equal rows) ∘ b [3], broadcast down the rows; halve b's sums.
        let mut tape = Tape::<E>::new();
        let rows: Vec<E> = a_data.iter().chain(&a_data).copied().collect();
        let a2 = tape.parameter(Shaped(&[2, 3], &rows)).unwrap();
        let b2 = tape.parameter(Shaped(&[3], &b_data)).unwrap();
        let c = record(&mut tape, a2, b2);
        let loss = tape.sum(c).unwrap();
        let grads = tape.backward(loss).unwrap();
        let shaped = [a2, b2].map(|id| grads.data(id).unwrap().to_vec());

        assert_eq!(pointwise[0], shaped[0][..3], "{op} ({}): da", E::NAME);
        let db: Vec<E> = shaped[1].iter().map(|&g| g / E::from_f64(2.0)).collect();
        assert_eq!(pointwise[1], db, "{op} ({}): db", E::NAME);
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

/// `y = x + b` (x [2, 3], b [3]) whose gradient goes straight to a parameter: the hand-off
/// puts the sum's buffer into `x`'s slot. Whatever the caller then does with `x`'s gradient
/// (take it, step with it, sweep again without recording), the numbers stay right.
#[test]
fn a_handed_on_gradient_behaves_like_any_other() {
    let x0 = [1.0, -2.0, 3.0, 0.5, 0.0, -1.5];
    let record = |tape: &mut Tape<f64>| {
        let x = tape.parameter(Shaped(&[2, 3], &x0)).unwrap();
        let b = tape.parameter(array![1.0, 2.0, -1.0]).unwrap();
        let y = tape.add(x, b).unwrap();
        (x, b, y)
    };
    // d(Σ y²)/dx = 2y, d/db = the columns' sums of 2y.
    let two_y = |x: &[f64]| -> Vec<f64> {
        x.iter()
            .zip([1.0, 2.0, -1.0].iter().cycle())
            .map(|(x, b)| 2.0 * (x + b))
            .collect()
    };

    // Twice without recording again, then taken out, then swept again.
    let mut tape = Tape::<f64>::new();
    let (x, _, y) = record(&mut tape);
    let sq = tape.mul(y, y).unwrap();
    let loss = tape.sum(sq).unwrap();
    for _ in 0..2 {
        let grads = tape.backward(loss).unwrap();
        assert_eq!(grads.data(x).unwrap(), &two_y(&x0)[..]);
    }
    let taken = tape.take_grad(x).unwrap();
    assert_eq!(taken.as_slice().unwrap(), &two_y(&x0)[..]);
    let grads = tape.backward(loss).unwrap();
    assert_eq!(grads.data(x).unwrap(), &two_y(&x0)[..]);

    // A seeded sweep from the sum itself: x gets the seed, b its columns' sums.
    let seed = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
    let grads = tape.backward_with_seed(y, seed.view()).unwrap();
    assert_eq!(grads.data(x).unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

    // Gradient steps on the tape's own parameters, two of them.
    let mut tape = Tape::<f64>::new();
    let (x, b, _) = record(&mut tape);
    let start = tape.mark();
    let mut expected = x0.to_vec();
    for _ in 0..2 {
        tape.rewind(start).unwrap();
        let y = tape.add(x, b).unwrap();
        let sq = tape.mul(y, y).unwrap();
        let loss = tape.sum(sq).unwrap();
        tape.backward(loss).unwrap();
        let step: Vec<f64> = two_y(&expected);
        tape.update_parameters(|_, id, value, grad| {
            if id == x {
                for (v, g) in value.iter_mut().zip(grad) {
                    *v -= 0.125 * g;
                }
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        for (e, g) in expected.iter_mut().zip(step) {
            *e -= 0.125 * g;
        }
        assert_eq!(tape.data(x).unwrap(), &expected[..]);
    }
}
