//! Bad input gets a typed error that names the op and the shapes, never a panic, and leaves the
//! tape as it was.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Error, NodeId, Result, Shape, Tape};

fn zeros(tape: &mut Tape<f64>, dims: &[usize]) -> NodeId {
    tape.parameter(ArrayD::<f64>::zeros(IxDyn(dims))).unwrap()
}

type Binary = fn(&mut Tape<f64>, NodeId, NodeId) -> Result<NodeId>;

#[test]
fn every_binary_op_reports_a_shape_mismatch_by_name_and_shapes() {
    let cases: [(&str, Binary, &[usize], &[usize]); 7] = [
        ("add", |t, a, b| t.add(a, b), &[2, 3], &[4]),
        ("sub", |t, a, b| t.sub(a, b), &[2, 3], &[3, 2]),
        ("mul", |t, a, b| t.mul(a, b), &[5, 1, 3], &[2, 2]),
        ("div", |t, a, b| t.div(a, b), &[3], &[2, 4]),
        ("matmul", |t, a, b| t.matmul(a, b), &[2, 3], &[4, 5]),
        ("mse", |t, a, b| t.mse(a, b), &[2, 3], &[3, 2]),
        (
            "cross_entropy",
            |t, a, b| t.cross_entropy(a, b),
            &[4, 3],
            &[5],
        ),
    ];
    for (name, record, lhs, rhs) in cases {
        let mut tape = Tape::<f64>::new();
        let a = zeros(&mut tape, lhs);
        let b = zeros(&mut tape, rhs);
        let err = record(&mut tape, a, b).unwrap_err();
        let want = Error::ShapeMismatch {
            op: name,
            lhs: Shape::new(lhs).unwrap(),
            rhs: Shape::new(rhs).unwrap(),
        };
        assert_eq!(err, want);
        let message = err.to_string();
        let (l, r) = (format!("{lhs:?}"), format!("{rhs:?}"));
        assert!(
            message.contains(name) && message.contains(&l) && message.contains(&r),
            "{message}"
        );
        // Nothing was recorded, and the tape still works.
        assert_eq!(tape.len(), 2);
        let s = tape.sum(a).unwrap();
        assert_eq!(s.index(), 2);
    }
}

#[test]
fn an_out_of_range_label_is_an_error() -> Result<()> {
    let mut tape = Tape::<f32>::new();
    let z = tape.parameter(array![[0.0f32, 1.0, 2.0], [1.0, 0.0, -1.0]])?;
    let labels = tape.labels(&[2, 3])?;
    let err = tape.cross_entropy(z, labels).unwrap_err();
    assert_eq!(
        err,
        Error::LabelOutOfRange {
            op: "cross_entropy",
            row: 1,
            label: 3.0,
            classes: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "cross_entropy: label 3 of row 1 is out of range for 3 classes"
    );
    assert_eq!(tape.len(), 2);
    Ok(())
}

#[test]
fn a_label_that_is_no_class_index_is_an_error() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let z = tape.parameter(array![[0.0, 1.0]])?;
    for label in [-1.0, 0.5, f64::NAN] {
        let labels = tape.input(vec![label])?;
        let err = tape.cross_entropy(z, labels).unwrap_err();
        assert!(
            matches!(err, Error::LabelNotAClass { row: 0, .. }),
            "{label}: {err:?}"
        );
    }
    Ok(())
}

#[test]
fn backward_of_a_non_scalar_is_an_error() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    let y = tape.tanh(x)?;
    let err = tape.backward(y).unwrap_err();
    assert_eq!(
        err,
        Error::LossNotScalar {
            shape: Shape::new(&[2, 2])?
        }
    );
    assert!(err.to_string().contains("[2, 2]"), "{err}");
    // A one-element loss of any rank is fine.
    let s = tape.sum_axis_keepdim(x, 0)?;
    let s = tape.sum_axis_keepdim(s, 1)?;
    assert_eq!(tape.shape(s)?.dims(), &[1, 1]);
    let grads = tape.backward(s)?;
    assert_eq!(grads.data(x).unwrap(), &[1.0; 4]);
    Ok(())
}

#[test]
fn a_node_from_another_tape_is_an_error() -> Result<()> {
    let mut big = Tape::<f64>::new();
    let mut last = big.input(1.0)?;
    for _ in 0..9 {
        last = big.add_scalar(last, 1.0)?;
    }
    let mut small = Tape::<f64>::new();
    let x = small.parameter(vec![1.0, 2.0])?;
    let want = Error::UnknownNode { id: 9, len: 1 };
    assert_eq!(small.tanh(last).unwrap_err(), want);
    assert_eq!(small.add(x, last).unwrap_err(), want);
    assert_eq!(small.backward(last).unwrap_err(), want);
    assert_eq!(small.value(last).unwrap_err(), want);
    assert_eq!(small.retain_grad(last).unwrap_err(), want);
    assert!(small.grad(last).is_none());
    assert!(small.take_grad(last).is_none());
    assert_eq!(small.len(), 1);
    // Ids from before a clear are unknown too.
    small.clear();
    assert_eq!(
        small.sum(x).unwrap_err(),
        Error::UnknownNode { id: 0, len: 0 }
    );
    Ok(())
}

#[test]
fn other_misuse_is_an_error() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ArrayD::<f64>::zeros(IxDyn(&[2, 3])))?;
    let v = tape.parameter(vec![1.0, 2.0])?;
    assert!(matches!(
        tape.sum_axis(x, 2),
        Err(Error::AxisOutOfRange { axis: 2, .. })
    ));
    assert!(matches!(
        tape.transpose_axes(x, 0, 5),
        Err(Error::AxisOutOfRange { axis: 5, .. })
    ));
    assert!(matches!(tape.transpose(v), Err(Error::WrongRank { .. })));
    assert!(matches!(
        tape.reshape(x, &[4, 2]),
        Err(Error::ReshapeMismatch { .. })
    ));
    assert!(matches!(
        tape.matmul(x, v),
        Err(Error::WrongRank { op: "matmul", .. })
    ));
    assert!(matches!(
        tape.backward_with_seed(x, array![1.0, 2.0].into_dyn().view()),
        Err(Error::SeedShape { .. })
    ));
    assert_eq!(tape.len(), 2);
    Ok(())
}

type Unary = fn(&mut Tape<f64>, NodeId) -> Result<NodeId>;

#[test]
fn empty_arrays_give_a_value_or_an_error_never_a_panic() {
    let unary: [(&str, Unary); 16] = [
        ("neg", |t, x| t.neg(x)),
        ("relu", |t, x| t.relu(x)),
        ("tanh", |t, x| t.tanh(x)),
        ("exp", |t, x| t.exp(x)),
        ("log", |t, x| t.log(x)),
        ("sum", |t, x| t.sum(x)),
        ("mean", |t, x| t.mean(x)),
        ("sum_axis", |t, x| t.sum_axis(x, 1)),
        ("mean_axis", |t, x| t.mean_axis(x, 1)),
        ("transpose", |t, x| t.transpose(x)),
        ("reshape", |t, x| t.reshape(x, &[0])),
        ("softmax", |t, x| t.softmax(x)),
        ("log_softmax", |t, x| t.log_softmax(x)),
        ("matmul", |t, x| {
            let w = t.parameter(ArrayD::<f64>::zeros(IxDyn(&[0, 2])))?;
            let xt = t.transpose(x)?;
            t.matmul(xt, x).and_then(|_| t.matmul(x, w))
        }),
        ("mse", |t, x| t.mse(x, x)),
        ("cross_entropy", |t, x| {
            let labels = t.labels(&[])?;
            t.cross_entropy(x, labels)
        }),
    ];
    for dims in [[0usize, 3], [3, 0], [0, 0]] {
        for (name, record) in unary {
            let mut tape = Tape::<f64>::new();
            let x = zeros(&mut tape, &dims);
            match record(&mut tape, x) {
                // Whatever it returns, the sweep through it must not panic either.
                Ok(y) => {
                    let seed = ArrayD::<f64>::ones(IxDyn(tape.shape(y).unwrap().dims()));
                    let grads = tape.backward_with_seed(y, seed.view()).unwrap();
                    assert_eq!(grads.get(x).unwrap().shape(), &dims, "{name} on {dims:?}");
                }
                Err(err) => assert!(
                    matches!(
                        err,
                        Error::EmptyBatch { .. }
                            | Error::ShapeMismatch { .. }
                            | Error::ReshapeMismatch { .. }
                    ),
                    "{name} on {dims:?}: {err:?}"
                ),
            }
        }
    }
}
