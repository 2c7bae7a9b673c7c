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

/// The embedding as a model uses it: a padding row picked by some positions gets no gradient
/// (first order and recorded), the others add up over repeats, and a bad index is a typed
/// error naming its position, the tape left usable.
mod embedding {
    use super::*;

    #[test]
    fn a_picked_padding_row_gets_no_gradient_from_backward_nor_the_recorded_vjp() {
        let mut tape = Tape::<f64>::new();
        let table = tape
            .parameter(Rng::new(5).array(&[4, 3], 1.0))
            .expect("a table");
        let idx = tape
            .input(ndarray::array![[1.0, 3.0, 1.0], [0.0, 1.0, 3.0]])
            .expect("indices");
        let y = tape.embedding(table, idx, Some(3)).expect("recorded");
        let sq = tape.square(y).expect("squared");
        let loss = tape.sum(sq).expect("summed");
        let grads = tape.backward(loss).expect("swept");
        let first = grads.data(table).expect("a gradient").to_vec();
        let values = tape.data(table).expect("the table").to_vec();
        // Row 1 is picked three times, row 0 once, row 2 never, row 3 is padding.
        let expected: Vec<f64> = (0..12)
            .map(|i| match i / 3 {
                0 => 2.0 * values[i],
                1 => 6.0 * values[i],
                _ => 0.0,
            })
            .collect();
        assert_eq!(first, expected);
        let recorded = tape.record_grad(loss, &[table]).expect("recorded");
        assert_eq!(tape.data(recorded[0]).expect("its values"), &expected[..]);
    }

    #[test]
    fn a_bad_index_is_a_typed_error_naming_its_position() {
        let mut tape = Tape::<f64>::new();
        let table = tape
            .parameter(ndarray::Array2::<f64>::zeros((3, 2)))
            .unwrap();
        for (bad, at) in [
            (vec![0.0, 3.0], 1),
            (vec![-1.0, 0.0], 0),
            (vec![0.5, 1.0], 0),
        ] {
            let idx = tape.input(Array1::from(bad.clone())).unwrap();
            match tape.embedding(table, idx, None) {
                Err(Error::IndexOutOfRange { op, position, .. }) => {
                    assert_eq!((op, position), ("embedding", at), "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let nan = tape.input(Array1::from(vec![f64::NAN])).unwrap();
        assert!(matches!(
            tape.embedding(table, nan, None),
            Err(Error::IndexOutOfRange { .. })
        ));
        let idx = tape.input(Array1::from(vec![2.0])).unwrap();
        assert!(matches!(
            tape.embedding(table, idx, Some(3)),
            Err(Error::InvalidArgument { .. })
        ));
        let y = tape
            .embedding(table, idx, Some(2))
            .expect("the tape is still usable");
        assert_eq!(tape.shape(y).unwrap().dims(), &[1, 2]);
    }
}

/// Layer norm as a model uses it: its statistics are kept per node, so two layer norms on one
/// tape, recorded again after rewinds, give the same values and gradients every time, equal
/// to the generic `record` path's; its refusals are typed; its recorded VJP agrees.
mod layer_norm {
    use super::*;
    use wengert_tape::NodeId;

    /// Two layer norms in a row (the second over two axes, shift only), the first's scale
    /// and shift trained: the values and gradients of one step, as bits.
    fn step(tape: &mut Tape<f64>, x: NodeId, gamma: NodeId, beta: NodeId) -> Vec<Vec<u64>> {
        let h = tape
            .layer_norm(x, Some(gamma), Some(beta), 1, 1e-5)
            .unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape.layer_norm(h, None, Some(beta), 1, 1e-5).unwrap();
        let z = tape.reshape(y, &[2, 15]).unwrap();
        let z = tape.layer_norm(z, None, None, 2, 0.1).unwrap();
        let sq = tape.square(z).unwrap();
        let w = tape.mul(sq, z).unwrap();
        let loss = tape.sum(w).unwrap();
        let bits = |d: &[f64]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let values = bits(tape.data(z).unwrap());
        let grads = tape.backward(loss).unwrap();
        vec![
            values,
            bits(grads.data(x).unwrap()),
            bits(grads.data(gamma).unwrap()),
            bits(grads.data(beta).unwrap()),
        ]
    }

    #[test]
    fn layer_norms_recorded_again_after_rewinds_keep_their_own_statistics() {
        let mut rng = Rng::new(21);
        let (x, gamma, beta) = (
            rng.array(&[2, 3, 5], 1.0),
            rng.array(&[5], 1.0),
            rng.array(&[5], 1.0),
        );
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(x).unwrap();
        let (gamma, beta) = (
            tape.parameter(gamma).unwrap(),
            tape.parameter(beta).unwrap(),
        );
        let start = tape.mark();
        let first = step(&mut tape, x, gamma, beta);
        for _ in 0..3 {
            tape.rewind(start).unwrap();
            assert_eq!(step(&mut tape, x, gamma, beta), first);
        }
        // The generic path records the same node.
        let op = Op::LayerNorm {
            axes: 1,
            eps: 1e-5,
            gamma: true,
            beta: true,
        };
        let generic = tape.record(op, &[x, gamma, beta]).unwrap();
        let named = tape
            .layer_norm(x, Some(gamma), Some(beta), 1, 1e-5)
            .unwrap();
        assert_eq!(tape.data(generic).unwrap(), tape.data(named).unwrap());
    }

    #[test]
    fn a_bad_layer_norm_is_a_typed_error_and_its_recorded_gradient_matches_backward() {
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(Rng::new(2).array(&[2, 3], 1.0)).unwrap();
        let three = tape.parameter(Array1::from(vec![1.0, 2.0, 3.0])).unwrap();
        let two = tape.parameter(Array1::from(vec![1.0, 2.0])).unwrap();
        for axes in [0, 3] {
            assert!(matches!(
                tape.layer_norm(x, None, None, axes, 1e-5),
                Err(Error::InvalidArgument { .. })
            ));
        }
        for eps in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                tape.layer_norm(x, None, None, 1, eps),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert!(matches!(
            tape.layer_norm(x, Some(two), None, 1, 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            tape.layer_norm(x, Some(three), Some(two), 1, 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        let empty = tape.input(ndarray::Array2::<f64>::zeros((2, 0))).unwrap();
        assert!(matches!(
            tape.layer_norm(empty, None, None, 1, 1e-5),
            Err(Error::EmptyBatch { .. })
        ));
        let y = tape
            .layer_norm(x, Some(three), Some(three), 1, 1e-5)
            .unwrap();
        let sq = tape.square(y).unwrap();
        let loss = tape.sum(sq).unwrap();
        let swept: Vec<Vec<f64>> = {
            let grads = tape.backward(loss).unwrap();
            [x, three]
                .iter()
                .map(|&p| grads.data(p).unwrap().to_vec())
                .collect()
        };
        let recorded = tape.record_grad(loss, &[x, three]).unwrap();
        for (r, s) in recorded.iter().zip(&swept) {
            let r = tape.data(*r).unwrap();
            assert!(
                r.iter().zip(s).all(|(a, b)| (a - b).abs() < 1e-12),
                "{r:?} {s:?}"
            );
        }
    }
}

/// Batch norm as a model uses it: in training by the batch's statistics, kept per node, so
/// two batch norms on one tape recorded again after rewinds give the same values and
/// gradients every time, equal to the generic `record` path's and the handles'; in
/// evaluation by running estimates that take no gradient; its refusals are typed; its
/// recorded VJP agrees with `backward`.
mod batch_norm {
    use super::*;
    use wengert_tape::NodeId;

    /// Training over [N, C, L] with a scale and shift, then evaluation by running estimates:
    /// the values and gradients of one step, as bits.
    fn step(tape: &mut Tape<f64>, x: NodeId, affine: [NodeId; 4]) -> Vec<Vec<u64>> {
        let [gamma, beta, mean, var] = affine;
        let h = tape.batch_norm(x, Some(gamma), Some(beta), 1e-5).unwrap();
        let h = tape.tanh(h).unwrap();
        let y = tape
            .batch_norm_eval(h, None, Some(beta), mean, var, 1e-3)
            .unwrap();
        let z = tape.reshape(y, &[6, 5]).unwrap();
        let z = tape.batch_norm(z, None, None, 0.1).unwrap();
        let sq = tape.square(z).unwrap();
        let w = tape.mul(sq, z).unwrap();
        let loss = tape.sum(w).unwrap();
        let bits = |d: &[f64]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let values = bits(tape.data(z).unwrap());
        let grads = tape.backward(loss).unwrap();
        vec![
            values,
            bits(grads.data(x).unwrap()),
            bits(grads.data(gamma).unwrap()),
            bits(grads.data(beta).unwrap()),
        ]
    }

    #[test]
    fn batch_norms_recorded_again_after_rewinds_keep_their_own_statistics() {
        let mut rng = Rng::new(81);
        let x = rng.array(&[2, 3, 5], 1.0);
        let (gamma, beta, mean) = (
            rng.array(&[3], 1.0),
            rng.array(&[3], 1.0),
            rng.array(&[3], 1.0),
        );
        let var = rng.array(&[3], 1.0).mapv(|v| 0.5 + v.abs());
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(x).unwrap();
        let affine = [
            tape.parameter(gamma).unwrap(),
            tape.parameter(beta).unwrap(),
            tape.input(mean).unwrap(),
            tape.input(var).unwrap(),
        ];
        let start = tape.mark();
        let first = step(&mut tape, x, affine);
        for _ in 0..3 {
            tape.rewind(start).unwrap();
            assert_eq!(step(&mut tape, x, affine), first);
        }
        // The generic path records the same nodes, in both modes.
        let [gamma, beta, mean, var] = affine;
        let op = |training| Op::BatchNorm {
            eps: 1e-5,
            training,
            gamma: true,
            beta: true,
        };
        let generic = tape.record(op(true), &[x, gamma, beta]).unwrap();
        let named = tape.batch_norm(x, Some(gamma), Some(beta), 1e-5).unwrap();
        assert_eq!(tape.data(generic).unwrap(), tape.data(named).unwrap());
        let generic = tape
            .record(op(false), &[x, gamma, beta, mean, var])
            .unwrap();
        let named = tape
            .batch_norm_eval(x, Some(gamma), Some(beta), mean, var, 1e-5)
            .unwrap();
        assert_eq!(tape.data(generic).unwrap(), tape.data(named).unwrap());
    }

    #[test]
    fn the_handles_record_the_tapes_batch_norms() {
        let mut rng = Rng::new(82);
        let (x, gamma) = (rng.array(&[4, 2], 1.0), rng.array(&[2], 1.0));
        let (mean, var) = (Array1::from(vec![0.5, -0.5]), Array1::from(vec![2.0, 0.5]));
        let g = Graph::<f64>::new();
        let (xv, gv) = (
            g.parameter(x.clone()).unwrap(),
            g.parameter(gamma.clone()).unwrap(),
        );
        let (mv, vv) = (
            g.input(mean.clone()).unwrap(),
            g.input(var.clone()).unwrap(),
        );
        let train = xv.batch_norm(Some(&gv), None, 1e-5).unwrap();
        let eval = xv.batch_norm_eval(None, Some(&gv), &mv, &vv, 1e-5).unwrap();
        let mut tape = Tape::<f64>::new();
        let (x, gamma) = (tape.parameter(x).unwrap(), tape.parameter(gamma).unwrap());
        let (mean, var) = (tape.input(mean).unwrap(), tape.input(var).unwrap());
        let t = tape.batch_norm(x, Some(gamma), None, 1e-5).unwrap();
        let e = tape
            .batch_norm_eval(x, None, Some(gamma), mean, var, 1e-5)
            .unwrap();
        assert_eq!(train.value().unwrap(), tape.value_owned(t).unwrap());
        assert_eq!(eval.value().unwrap(), tape.value_owned(e).unwrap());
    }

    #[test]
    fn a_bad_batch_norm_is_a_typed_error_and_its_recorded_gradient_matches_backward() {
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(Rng::new(2).array(&[4, 3], 1.0)).unwrap();
        let three = tape.parameter(Array1::from(vec![1.0, 2.0, 3.0])).unwrap();
        let two = tape.parameter(Array1::from(vec![1.0, 2.0])).unwrap();
        let var = tape.parameter(Array1::from(vec![0.5, 1.0, 2.0])).unwrap();
        let flat = tape.parameter(Array1::from(vec![1.0, 2.0, 3.0])).unwrap();
        assert!(matches!(
            tape.batch_norm(flat, None, None, 1e-5),
            Err(Error::WrongRank { .. })
        ));
        for eps in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                tape.batch_norm(x, None, None, eps),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert!(matches!(
            tape.batch_norm(x, Some(two), None, 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            tape.batch_norm_eval(x, None, None, three, two, 1e-5),
            Err(Error::ShapeMismatch { .. })
        ));
        // One value per channel: no batch statistics (PyTorch refuses it), but evaluation is
        // fine.
        let one = tape.parameter(Rng::new(3).array(&[1, 3], 1.0)).unwrap();
        match tape.batch_norm(one, None, None, 1e-5) {
            Err(Error::InvalidArgument { argument, .. }) => {
                assert_eq!(argument, "values per channel")
            }
            other => panic!("{other:?}"),
        }
        tape.batch_norm_eval(one, None, None, three, var, 1e-5)
            .unwrap();

        // Training, then evaluation with running estimates that are parameters: they take no
        // gradient, recorded or swept.
        let y = tape.batch_norm(x, Some(three), Some(three), 1e-5).unwrap();
        let y = tape.tanh(y).unwrap();
        let y = tape
            .batch_norm_eval(y, Some(var), Some(three), three, var, 0.01)
            .unwrap();
        let sq = tape.square(y).unwrap();
        let loss = tape.sum(sq).unwrap();
        let swept: Vec<Vec<f64>> = {
            let grads = tape.backward(loss).unwrap();
            [x, three, var]
                .iter()
                .map(|&p| grads.data(p).unwrap().to_vec())
                .collect()
        };
        let recorded = tape.record_grad(loss, &[x, three, var]).unwrap();
        for (r, s) in recorded.iter().zip(&swept) {
            let r = tape.data(*r).unwrap();
            assert!(
                r.iter().zip(s).all(|(a, b)| (a - b).abs() < 1e-12),
                "{r:?} {s:?}"
            );
        }
        // `var` as a running estimate alone (not as the scale): no gradient at all.
        let y = tape
            .batch_norm_eval(x, None, None, three, var, 1e-5)
            .unwrap();
        let loss = tape.sum(y).unwrap();
        let grads = tape.backward(loss).unwrap();
        assert!(grads.data(var).is_none_or(|g| g.iter().all(|&v| v == 0.0)));
    }
}
