//! The layers' ops on the tape beyond their gradient checks: what a training loop does with
//! them (rewind and record again, the generic `record` path, handles), and their refusals.

use ndarray::{Array1, Array3, Array4, ArrayD};
use wengert_tape::{Conv1dArgs, Conv2dArgs, Error, Graph, Op, Tape};

use crate::util::Rng;

fn conv_inputs(rng: &mut Rng) -> (Array4<f64>, Array4<f64>, Array1<f64>) {
    let x = rng.array(&[2, 3, 5, 4], 1.0);
    let w = rng.array(&[4, 3, 3, 3], 1.0);
    let b = rng.array(&[4], 1.0);
    let four = |a: ArrayD<f64>| a.into_dimensionality().expect("rank 4");
    (four(x), four(w), b.into_dimensionality().expect("rank 1"))
}

const PADDED: Conv2dArgs = Conv2dArgs {
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
};

#[test]
fn a_convolution_recorded_again_after_a_rewind_gives_the_same_values_and_gradients() {
    let (x, w, b) = conv_inputs(&mut Rng::new(3));
    let mut tape = Tape::<f64>::new();
    let (w, b) = (tape.parameter(w).unwrap(), tape.parameter(b).unwrap());
    let start = tape.mark();
    let mut runs = Vec::new();
    for _ in 0..3 {
        tape.rewind(start).unwrap();
        let xi = tape.input(x.clone()).unwrap();
        let y = tape.conv2d(xi, w, Some(b), PADDED).unwrap();
        let y = tape.tanh(y).unwrap();
        let loss = tape.sum(y).unwrap();
        let value = tape.item(loss).unwrap();
        let grads = tape.backward(loss).unwrap();
        runs.push((
            value,
            grads.data(w).unwrap().to_vec(),
            grads.data(b).unwrap().to_vec(),
        ));
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
}

#[test]
fn the_generic_record_takes_a_convolution_with_or_without_its_bias() {
    let (x, w, b) = conv_inputs(&mut Rng::new(4));
    let mut tape = Tape::<f64>::new();
    let (x, w, b) = (
        tape.input(x).unwrap(),
        tape.parameter(w).unwrap(),
        tape.parameter(b).unwrap(),
    );
    let named = tape.conv2d(x, w, Some(b), PADDED).unwrap();
    let generic = tape.record(Op::Conv2d(PADDED), &[x, w, b]).unwrap();
    assert_eq!(tape.data(named).unwrap(), tape.data(generic).unwrap());
    let unbiased = tape.record(Op::Conv2d(PADDED), &[x, w]).unwrap();
    assert_eq!(tape.shape(unbiased).unwrap().dims(), &[2, 4, 5, 4]);
    let err = tape.record(Op::Conv2d(PADDED), &[x]).unwrap_err();
    assert!(matches!(err, Error::WrongArity { .. }), "{err}");
    let err = tape.record(Op::Conv2d(PADDED), &[x, w, b, b]).unwrap_err();
    assert!(matches!(err, Error::WrongArity { .. }), "{err}");
}

#[test]
fn a_convolution_refuses_bad_arguments_and_shapes_by_name() {
    let (x, w, _) = conv_inputs(&mut Rng::new(5));
    let mut tape = Tape::<f64>::new();
    let (x, w) = (tape.input(x).unwrap(), tape.parameter(w).unwrap());
    let zero_stride = Conv2dArgs {
        stride: [0, 1],
        ..Conv2dArgs::default()
    };
    let err = tape.conv2d(x, w, None, zero_stride).unwrap_err();
    assert!(err.to_string().contains("conv2d"), "{err}");
    let b = tape.parameter(ndarray::array![1.0, 2.0]).unwrap();
    let err = tape.conv2d(x, w, Some(b), PADDED).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = tape.conv1d(x, w, None, Conv1dArgs::default()).unwrap_err();
    assert!(matches!(err, Error::WrongRank { .. }), "{err}");
    assert_eq!(tape.len(), 3, "nothing is left on the tape by a refused op");
}

#[test]
fn a_convolution_through_handles_matches_the_tape() {
    let mut rng = Rng::new(6);
    let x: Array3<f64> = rng
        .array(&[2, 2, 6], 1.0)
        .into_dimensionality()
        .expect("rank 3");
    let w: Array3<f64> = rng
        .array(&[3, 2, 2], 1.0)
        .into_dimensionality()
        .expect("rank 3");
    let args = Conv1dArgs {
        dilation: 2,
        ..Conv1dArgs::default()
    };
    let g = Graph::<f64>::new();
    let (xv, wv) = (g.input(x.clone()).unwrap(), g.parameter(w.clone()).unwrap());
    let via_handles = xv.conv1d(&wv, None, args).unwrap().value().unwrap();
    let mut tape = Tape::<f64>::new();
    let (x, w) = (tape.input(x).unwrap(), tape.parameter(w).unwrap());
    let y = tape.conv1d(x, w, None, args).unwrap();
    assert_eq!(via_handles, tape.value_owned(y).unwrap());
}

/// The weight's recorded gradient of a convolution network is the first-order one, and its
/// Hessian-vector product is `backward`'s gradient of `⟨∇L, v⟩` (the sweep recorded twice).
#[test]
fn a_convolution_differentiated_twice_gives_the_hessian_vector_product() {
    let (x, w, b) = conv_inputs(&mut Rng::new(7));
    let mut tape = Tape::<f64>::new();
    let (x, w, b) = (
        tape.input(x).unwrap(),
        tape.parameter(w).unwrap(),
        tape.parameter(b).unwrap(),
    );
    let y = tape.conv2d(x, w, Some(b), PADDED).unwrap();
    let y = tape.tanh(y).unwrap();
    let loss = tape.sum(y).unwrap();
    let first = tape.backward(loss).unwrap();
    let (dw, db) = (
        first.data(w).unwrap().to_vec(),
        first.data(b).unwrap().to_vec(),
    );
    let recorded = tape.record_grad(loss, &[w, b]).unwrap();
    // Equal up to the order of the sums.
    for (node, want) in [(recorded[0], dw), (recorded[1], db)] {
        for (a, b) in tape.data(node).unwrap().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} against {b}");
        }
    }
    let v = tape
        .input(tape.value_owned(w).unwrap().mapv(|e| e.sin()))
        .unwrap();
    let hv = tape.hvp(loss, &[w], &[v]).unwrap()[0];
    assert!(tape.data(hv).unwrap().iter().all(|e| e.is_finite()));
    assert!(tape.data(hv).unwrap().iter().any(|e| *e != 0.0));
}
