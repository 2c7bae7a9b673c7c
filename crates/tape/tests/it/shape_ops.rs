//! The shape and indexing ops' typed errors: positions that name nothing, windows that do not
//! fit, shapes that do not broadcast, axes that do not exist.

use ndarray::array;
use wengert_tape::{Error, Tape};

/// The indexing ops refuse positions that name nothing, and leave the tape as it was.
#[test]
fn bad_positions_are_typed_errors() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]]).unwrap();
    let len = tape.len();
    for bad in [array![0.0, 2.0], array![-1.0, 0.0], array![0.5, 1.0]] {
        let idx = tape.input(bad).unwrap();
        assert!(matches!(
            tape.index_select(x, idx, 0),
            Err(Error::IndexOutOfRange { .. })
        ));
    }
    let index = tape.input(array![[0.0, 3.0]]).unwrap();
    assert!(matches!(
        tape.gather(x, index, 1),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert_eq!(tape.len(), len + 4, "only the inputs were recorded");
    assert!(matches!(
        tape.narrow(x, 1, 1, 2),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        tape.broadcast_to(x, &[3, 2]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tape.squeeze(x, 2),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        tape.flatten(x, 1, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_batched_matmul_is_each_batch_s_matmul_and_rank_1_is_refused() {
    let mut tape = Tape::<f64>::new();
    let a = tape
        .parameter(ndarray::Array3::from_shape_fn((3, 2, 4), |(b, i, j)| {
            (b * 8 + i * 4 + j) as f64 / 7.0 - 1.0
        }))
        .unwrap();
    let w = tape
        .parameter(ndarray::Array2::from_shape_fn((4, 5), |(i, j)| {
            (i * 5 + j) as f64 / 9.0
        }))
        .unwrap();
    let c = tape.matmul(a, w).unwrap();
    let whole = tape.data(c).unwrap().to_vec();
    for b in 0..3 {
        let ab = tape.narrow(a, 0, b as i64, 1).unwrap();
        let ab = tape.squeeze(ab, 0).unwrap();
        let cb = tape.matmul(ab, w).unwrap();
        assert_eq!(tape.data(cb).unwrap(), &whole[b * 10..(b + 1) * 10]);
    }
    let v = tape.parameter(array![1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(matches!(tape.matmul(a, v), Err(Error::WrongRank { .. })));
}

#[test]
fn dropout_draws_the_same_mask_from_the_same_seed_in_f32_and_f64() {
    let mut t64 = Tape::<f64>::new();
    let mut t32 = Tape::<f32>::new();
    let x64 = t64.parameter(ndarray::Array1::<f64>::ones(1000)).unwrap();
    let x32 = t32.parameter(ndarray::Array1::<f32>::ones(1000)).unwrap();
    let (y64, y32) = (
        t64.dropout(x64, 0.25, 42).unwrap(),
        t32.dropout(x32, 0.25, 42).unwrap(),
    );
    let kept: Vec<bool> = t64.data(y64).unwrap().iter().map(|&v| v != 0.0).collect();
    let kept32: Vec<bool> = t32.data(y32).unwrap().iter().map(|&v| v != 0.0).collect();
    assert_eq!(kept, kept32);
    let n = kept.iter().filter(|&&k| k).count();
    assert!((700..800).contains(&n), "{n} of 1000 kept at p = 0.25");
    assert!(
        t64.data(y64)
            .unwrap()
            .iter()
            .all(|&v| v == 0.0 || v == 1.0 / 0.75)
    );
    let again = t64.dropout(x64, 0.25, 42).unwrap();
    assert_eq!(t64.data(again).unwrap(), t64.data(y64).unwrap());
    let other = t64.dropout(x64, 0.25, 43).unwrap();
    assert_ne!(t64.data(other).unwrap(), t64.data(y64).unwrap());
    let all = t64.dropout(x64, 1.0, 1).unwrap();
    let loss = t64.sum(all).unwrap();
    let grads = t64.backward(loss).unwrap();
    assert!(
        grads.data(x64).unwrap().iter().all(|&g| g == 0.0),
        "p = 1: gradient 0, not NaN"
    );
    assert!(matches!(
        t64.dropout(x64, 1.5, 0),
        Err(Error::InvalidArgument { argument: "p", .. })
    ));
}

#[test]
fn slices_follow_python_and_pads_surround() {
    use wengert_tape::SliceAxis;
    let mut tape = Tape::<f64>::new();
    let x = tape
        .parameter(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        .unwrap();
    let reversed_bounds = tape.slice(x, &[SliceAxis::range(5, -9)]).unwrap();
    assert_eq!(
        tape.shape(reversed_bounds).unwrap().dims(),
        &[0, 3],
        "clamped, empty"
    );
    let whole = tape.slice(x, &[SliceAxis::FULL]).unwrap();
    assert_eq!(whole, x);
    let bad_step = SliceAxis {
        start: 0,
        end: 2,
        step: 0,
    };
    assert!(matches!(
        tape.slice(x, &[bad_step]),
        Err(Error::InvalidArgument {
            argument: "step",
            ..
        })
    ));
    assert!(matches!(
        tape.slice(x, &[SliceAxis::FULL; 3]),
        Err(Error::WrongRank { .. })
    ));
    let padded = tape.pad(x, &[(0, 1), (1, 0)], -1.0).unwrap();
    assert_eq!(
        tape.data(padded).unwrap(),
        &[
            -1.0, 1.0, 2.0, 3.0, -1.0, 4.0, 5.0, 6.0, -1.0, -1.0, -1.0, -1.0
        ]
    );
    assert!(matches!(
        tape.pad(x, &[(1, 1)], 0.0),
        Err(Error::InvalidArgument {
            argument: "pads",
            ..
        })
    ));
    assert!(matches!(
        tape.pad(x, &[(1, 1); 7], 0.0),
        Err(Error::InvalidArgument {
            argument: "pads",
            ..
        })
    ));
}

/// `concat` and `stack` take any number of inputs (the same one more than once too), send each
/// its block of the gradient, and refuse what does not fit, leaving the tape as it was.
#[test]
fn concat_and_stack_take_any_number_of_inputs() {
    let mut tape = Tape::<f64>::new();
    let a = tape.parameter(array![[1.0, 2.0]]).unwrap();
    let b = tape.parameter(array![[3.0, 4.0], [5.0, 6.0]]).unwrap();
    let many: Vec<_> = [a, b].into_iter().cycle().take(21).collect();
    let y = tape.concat(&many, 0).unwrap();
    assert_eq!(tape.shape(y).unwrap().dims(), &[31, 2]);
    let weights = tape
        .input(ndarray::Array2::from_elem((31, 2), 1.0))
        .unwrap();
    let scaled = tape.mul(y, weights).unwrap();
    let loss = tape.sum(scaled).unwrap();
    let grads = tape.backward(loss).unwrap();
    // `a` is 11 of the 21 inputs (positions 0, 2, ..., 20: past the shared gradient bit too).
    assert_eq!(grads.data(a).unwrap(), &[11.0, 11.0]);
    assert_eq!(grads.data(b).unwrap(), &[10.0; 4]);

    let s = tape.stack([b, b, b], 1).unwrap();
    assert_eq!(tape.shape(s).unwrap().dims(), &[2, 3, 2]);
    assert_eq!(
        tape.data(s).unwrap(),
        &[3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0, 5.0, 6.0, 5.0, 6.0]
    );

    let len = tape.len();
    let none: [wengert_tape::NodeId; 0] = [];
    assert!(matches!(
        tape.concat(none, 0),
        Err(Error::WrongArity { .. })
    ));
    assert!(matches!(
        tape.stack([a, b], 0),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tape.concat([a, b], 1),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tape.concat([a, b], 2),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert_eq!(tape.len(), len, "nothing recorded");
}

/// `where_cond` broadcasts its three operands, sends `a` the gradient where the mask holds
/// and `b` elsewhere (summed over broadcast axes), and the mask none.
#[test]
fn where_cond_broadcasts_and_splits_the_gradient() {
    let mut tape = Tape::<f64>::new();
    let cond = tape.parameter(array![[1.0], [0.0]]).unwrap();
    let a = tape.parameter(array![10.0, 20.0, 30.0]).unwrap();
    let b = tape.parameter(array![-1.0]).unwrap();
    let y = tape.where_cond(cond, a, b).unwrap();
    assert_eq!(tape.data(y).unwrap(), &[10.0, 20.0, 30.0, -1.0, -1.0, -1.0]);
    let loss = tape.sum(y).unwrap();
    let grads = tape.backward(loss).unwrap();
    assert_eq!(grads.data(a).unwrap(), &[1.0, 1.0, 1.0]);
    assert_eq!(grads.data(b).unwrap(), &[3.0]);
    assert_eq!(grads.data(cond).unwrap(), &[0.0, 0.0]);
    let wide = tape.input(array![1.0, 2.0]).unwrap();
    assert!(matches!(
        tape.where_cond(cond, a, wide),
        Err(Error::ShapeMismatch { .. })
    ));
}
