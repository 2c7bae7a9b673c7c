//! `backward_with`: each parameter's gradient told once, as soon as it is final, with the bits
//! of a plain `backward`.

use ndarray::array;
use wengert_tape::{NodeId, Tape};

use crate::network::{Loss, Mlp};

/// `(position, id, gradient)` in the order `backward_with` told them.
fn told(tape: &mut Tape<f64>, loss: NodeId) -> Vec<(usize, NodeId, Vec<f64>)> {
    let mut told = Vec::new();
    tape.backward_with(loss, |k, id, g| told.push((k, id, g.to_vec())))
        .unwrap();
    told
}

#[test]
fn every_parameter_is_told_once_with_the_bits_of_backward() {
    for loss_kind in [Loss::Mse, Loss::CrossEntropy] {
        let mlp = Mlp::new(7, 5, [4, 6, 5, 3]);
        let (mut tape, params, loss) = mlp.tape(loss_kind).unwrap();
        let told = told(&mut tape, loss);
        // The last layer's parameters are final first: the sweep finishes them first.
        let order: Vec<usize> = told.iter().map(|t| t.0).collect();
        assert_eq!(order, [5, 4, 3, 2, 1, 0], "{loss_kind:?}");
        let grads = tape.backward(loss).unwrap();
        for (k, id, g) in &told {
            assert_eq!(*id, params[*k]);
            let plain = grads.data(*id).unwrap();
            assert_eq!(
                g.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn a_parameter_used_late_is_told_first() {
    // w1 feeds the first layer, w2 only the last op: w2 is final after that op, before the
    // sweep passes through the first layer's tanh.
    let mut tape = Tape::<f64>::new();
    let w1 = tape.parameter(array![[0.5, -1.0], [2.0, 0.25]]).unwrap();
    let w2 = tape.parameter(array![[1.5], [-0.5]]).unwrap();
    let x = tape.input(array![[1.0, 2.0]]).unwrap();
    let h = tape.matmul(x, w1).unwrap();
    let h = tape.tanh(h).unwrap();
    let y = tape.matmul(h, w2).unwrap();
    let loss = tape.sum(y).unwrap();
    let mut seen = Vec::new();
    tape.backward_with(loss, |k, _, g| seen.push((k, g.to_vec())))
        .unwrap();
    assert_eq!(seen[0].0, 1);
    assert_eq!(seen[1].0, 0);
    assert_eq!(seen.len(), 2);
}

#[test]
fn parameters_off_the_path_are_told_zeros() {
    let mut tape = Tape::<f64>::new();
    let unused = tape.parameter(array![1.0, 2.0]).unwrap();
    let w = tape.parameter(array![3.0]).unwrap();
    let loss = tape.sum(w).unwrap();
    let later = tape.parameter(array![4.0]).unwrap();
    let told = told(&mut tape, loss);
    assert_eq!(told.len(), 3);
    let of = |id: NodeId| told.iter().find(|t| t.1 == id).unwrap().2.clone();
    assert_eq!(of(unused), [0.0, 0.0]);
    assert_eq!(of(w), [1.0]);
    assert_eq!(of(later), [0.0]);
    // And the plain sweep agrees.
    let grads = tape.backward(loss).unwrap();
    assert_eq!(grads.data(unused).unwrap(), [0.0, 0.0]);
}
