//! Parameters that live on the tape across steps: `mark`, `rewind`, `set_value` and
//! `update_parameters`.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Error, Tape};

/// One SGD step on `loss = mean((x·w - y)²)`, recorded after rewinding to the parameters.
fn sgd_steps_on_tape(steps: usize) -> ArrayD<f64> {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![[0.5], [-0.5]]).unwrap();
    let x = tape.input(array![[1.0, 2.0], [3.0, -1.0]]).unwrap();
    let y = tape.input(array![[1.0], [0.0]]).unwrap();
    let start = tape.mark();
    for _ in 0..steps {
        tape.rewind(start).unwrap();
        let p = tape.matmul(x, w).unwrap();
        let loss = tape.mse(p, y).unwrap();
        tape.backward(loss).unwrap();
        tape.update_parameters(|_, _, value, grad| {
            for (v, g) in value.iter_mut().zip(grad) {
                *v -= 0.05 * g;
            }
            Ok::<(), ()>(())
        })
        .unwrap();
    }
    tape.value_owned(w).unwrap()
}

/// The same steps with the parameter kept outside and copied in every step.
fn sgd_steps_copying(steps: usize) -> ArrayD<f64> {
    let mut w = array![[0.5], [-0.5]].into_dyn();
    let mut tape = Tape::<f64>::new();
    for _ in 0..steps {
        tape.clear();
        let wp = tape.parameter(&w).unwrap();
        let x = tape.input(array![[1.0, 2.0], [3.0, -1.0]]).unwrap();
        let y = tape.input(array![[1.0], [0.0]]).unwrap();
        let p = tape.matmul(x, wp).unwrap();
        let loss = tape.mse(p, y).unwrap();
        let grads = tape.backward(loss).unwrap();
        w.scaled_add(-0.05, &grads.get(wp).unwrap());
    }
    w
}

#[test]
fn parameters_updated_on_the_tape_match_parameters_copied_in() {
    let on_tape = sgd_steps_on_tape(25);
    let copied = sgd_steps_copying(25);
    assert_eq!(
        on_tape, copied,
        "same arithmetic in the same order: same bits"
    );
}

#[test]
fn rewind_keeps_the_nodes_before_the_mark() {
    let mut tape = Tape::<f32>::new();
    let a = tape.parameter(array![1.0f32, 2.0]).unwrap();
    let mark = tape.mark();
    let b = tape.relu(a).unwrap();
    tape.rewind(mark).unwrap();
    assert_eq!(tape.len(), 1);
    assert_eq!(tape.value(a).unwrap(), array![1.0f32, 2.0].into_dyn());
    assert!(matches!(tape.value(b), Err(Error::UnknownNode { .. })));
    assert_eq!(tape.parameters().collect::<Vec<_>>(), vec![a]);
}

#[test]
fn a_stale_mark_is_an_error() {
    let mut tape = Tape::<f32>::new();
    tape.parameter(1.0f32).unwrap();
    tape.parameter(2.0f32).unwrap();
    let mark = tape.mark();
    tape.clear();
    assert!(matches!(
        tape.rewind(mark),
        Err(Error::StaleMark { mark: 2, len: 0 })
    ));
    // Same length, but a parameter where the mark saw an input.
    let mut other = Tape::<f32>::new();
    other.parameter(1.0f32).unwrap();
    let mark = other.mark();
    let mut third = Tape::<f32>::new();
    third.input(1.0f32).unwrap();
    assert!(matches!(third.rewind(mark), Err(Error::StaleMark { .. })));
}

#[test]
fn set_value_writes_leaves_only_and_checks_the_shape() {
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![1.0, 2.0]).unwrap();
    let y = tape.neg(x).unwrap();
    tape.set_value(x, array![3.0, 4.0].into_dyn().view())
        .unwrap();
    assert_eq!(tape.value(x).unwrap(), array![3.0, 4.0].into_dyn());
    let err = tape
        .set_value(y, array![0.0, 0.0].into_dyn().view())
        .unwrap_err();
    assert_eq!(
        err,
        Error::NotALeaf {
            id: y.index() as u32
        }
    );
    let wrong = ArrayD::<f64>::zeros(IxDyn(&[3]));
    let err = tape.set_value(x, wrong.view()).unwrap_err();
    assert!(matches!(err, Error::LeafShape { .. }));
    assert!(err.to_string().contains("[2]") && err.to_string().contains("[3]"));
}

#[test]
fn update_parameters_sees_only_swept_gradients() {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![2.0]).unwrap();
    let mut calls = 0;
    tape.update_parameters(|_, _, _, _| {
        calls += 1;
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(calls, 0, "no sweep yet, no gradients");
    let loss = tape.sum(w).unwrap();
    tape.backward(loss).unwrap();
    tape.update_parameters(|index, id, value, grad| {
        assert_eq!((index, id), (0, w));
        assert_eq!(grad, [1.0]);
        value[0] = 7.0;
        calls += 1;
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(tape.value(w).unwrap()[[0]], 7.0);
}

/// Records `loss = Σ relu(x·w) + Σ (x·w)·x·w`-like shapes with fan-out, so that a gradient's
/// first contribution comes from a matmul in one graph and from an elementwise op in another.
fn graph(
    tape: &mut Tape<f64>,
    w: wengert_tape::NodeId,
    x: wengert_tape::NodeId,
    variant: bool,
) -> wengert_tape::NodeId {
    let xw = tape.matmul(x, w).unwrap();
    let (a, b) = if variant {
        let r = tape.relu(xw).unwrap();
        let t = tape.tanh(xw).unwrap();
        (r, t)
    } else {
        let t = tape.tanh(xw).unwrap();
        let r = tape.mul(xw, xw).unwrap();
        (t, r)
    };
    let s = tape.add(a, b).unwrap();
    tape.sum(s).unwrap()
}

#[test]
fn stale_gradient_buffers_never_leak_into_a_new_recording() {
    let w0 = array![[0.3, -0.7, 1.1], [0.5, 0.2, -0.4]];
    let x0 = array![[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0]];
    for variant in [false, true] {
        // A reused tape: first the other graph (leaving its gradients in the slots), then this one.
        let mut reused = Tape::<f64>::new();
        let w = reused.parameter(&w0).unwrap();
        let x = reused.parameter(&x0).unwrap();
        let mark = reused.mark();
        let loss = graph(&mut reused, w, x, !variant);
        reused.backward(loss).unwrap();
        reused.rewind(mark).unwrap();
        let loss = graph(&mut reused, w, x, variant);
        reused.backward(loss).unwrap();

        let mut fresh = Tape::<f64>::new();
        let fw = fresh.parameter(&w0).unwrap();
        let fx = fresh.parameter(&x0).unwrap();
        let floss = graph(&mut fresh, fw, fx, variant);
        fresh.backward(floss).unwrap();

        assert_eq!(
            reused.grad(w).unwrap(),
            fresh.grad(fw).unwrap(),
            "variant {variant}"
        );
        assert_eq!(
            reused.grad(x).unwrap(),
            fresh.grad(fx).unwrap(),
            "variant {variant}"
        );
    }
}
