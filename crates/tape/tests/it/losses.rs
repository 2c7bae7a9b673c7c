//! The losses with a reduction end to end: the three reductions' shapes, `ignore_index`, the
//! gradients that flow (or do not) to targets, and the typed errors.

use ndarray::array;
use wengert_tape::{CrossEntropyOptions, Error, Graph, Reduction, Tape, Targets};

#[test]
fn each_reduction_gives_its_shape_and_the_mean_is_the_sum_over_the_count() {
    let g = Graph::<f64>::new();
    let x = g.parameter(array![[0.0, 2.0], [3.0, -1.0]]).unwrap();
    let t = g.input(array![[0.5, 0.0], [0.0, 0.0]]).unwrap();
    let none = x.huber_loss(&t, 1.0, Reduction::None).unwrap();
    assert_eq!(none.shape().unwrap().dims(), &[2, 2]);
    // 0.5·0.25, 1·(2 - 0.5), 1·(3 - 0.5), 1·(1 - 0.5)
    assert_eq!(
        none.value().unwrap().as_slice().unwrap(),
        &[0.125, 1.5, 2.5, 0.5]
    );
    let sum = x
        .huber_loss(&t, 1.0, Reduction::Sum)
        .unwrap()
        .item()
        .unwrap();
    let mean = x
        .huber_loss(&t, 1.0, Reduction::Mean)
        .unwrap()
        .item()
        .unwrap();
    assert_eq!((sum, mean), (4.625, 4.625 / 4.0));
    let smooth = x
        .smooth_l1_loss(&t, 0.0, Reduction::Sum)
        .unwrap()
        .item()
        .unwrap();
    assert_eq!(smooth, 0.5 + 2.0 + 3.0 + 1.0, "beta = 0 is L1");
}

#[test]
fn bce_with_logits_is_finite_far_out_and_its_targets_get_a_gradient() {
    let g = Graph::<f32>::new();
    let x = g.parameter(array![1000.0f32, -1000.0, 0.0]).unwrap();
    let t = g.parameter(array![0.0f32, 1.0, 0.5]).unwrap();
    let loss = x
        .binary_cross_entropy_with_logits(&t, Reduction::None)
        .unwrap();
    let v = loss.value().unwrap();
    assert_eq!(&v.as_slice().unwrap()[..2], &[1000.0, 1000.0]);
    assert!((v[[2]] - 2f32.ln()).abs() < 1e-6);
    let grads = loss.sum().unwrap().backward().unwrap();
    // dt = -x
    assert_eq!(grads[&t], [-1000.0, 1000.0, 0.0]);
    assert_eq!(grads[&x][..2], [1.0, -1.0]);
}

#[test]
fn class_losses_skip_the_ignored_index_and_refuse_bad_labels() {
    let mut tape = Tape::<f64>::new();
    let x = tape
        .parameter(array![[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]])
        .unwrap();
    let t = tape.input(array![2.0, -100.0]).unwrap();
    let nll = tape.nll_loss(x, t, Some(-100), Reduction::Mean).unwrap();
    assert_eq!(
        tape.data(nll).unwrap(),
        &[3.0],
        "the mean leaves the ignored row out"
    );
    let grads = tape.backward(nll).unwrap();
    assert_eq!(grads.data(x).unwrap(), &[0.0, 0.0, -1.0, 0.0, 0.0, 0.0]);
    assert!(grads.data(t).is_none(), "no gradient to class indices");
    let bad = tape.input(array![2.0, 3.0]).unwrap();
    assert!(matches!(
        tape.nll_loss(x, bad, None, Reduction::Sum),
        Err(Error::LabelOutOfRange { .. })
    ));
    let half = tape.input(array![0.5, 1.0]).unwrap();
    let options = CrossEntropyOptions::default();
    assert!(matches!(
        tape.cross_entropy_with(x, half, options),
        Err(Error::LabelNotAClass { .. })
    ));
    let options = CrossEntropyOptions {
        label_smoothing: 1.5,
        ..CrossEntropyOptions::default()
    };
    assert!(matches!(
        tape.cross_entropy_with(x, t, options),
        Err(Error::InvalidArgument {
            argument: "label_smoothing",
            ..
        })
    ));
}

#[test]
fn cross_entropy_with_class_indices_matches_the_classic_op() {
    let mut tape = Tape::<f64>::new();
    let z = tape
        .parameter(array![[0.3, -1.0, 2.0], [1.5, 0.0, -0.5]])
        .unwrap();
    let labels = tape.labels(&[2, 0]).unwrap();
    let classic = tape.cross_entropy(z, labels).unwrap();
    let with = tape
        .cross_entropy_with(z, labels, CrossEntropyOptions::default())
        .unwrap();
    let (a, b) = (tape.data(classic).unwrap()[0], tape.data(with).unwrap()[0]);
    assert!((a - b).abs() < 1e-15, "{a} {b}");
    let soft = tape
        .input(array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        .unwrap();
    let options = CrossEntropyOptions {
        targets: Targets::Probabilities,
        ..CrossEntropyOptions::default()
    };
    let from_probabilities = tape.cross_entropy_with(z, soft, options).unwrap();
    let c = tape.data(from_probabilities).unwrap()[0];
    assert!(
        (a - c).abs() < 1e-15,
        "one-hot probabilities give the same loss"
    );
}

#[test]
fn distances_need_one_shape_and_a_valid_parameter() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let t = tape.input(array![1.0, 2.0, 3.0]).unwrap();
    assert!(matches!(
        tape.l1_loss(x, t, Reduction::Mean),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tape.huber_loss(x, x, 0.0, Reduction::Mean),
        Err(Error::InvalidArgument {
            argument: "delta",
            ..
        })
    ));
    assert!(matches!(
        tape.smooth_l1_loss(x, x, -1.0, Reduction::Mean),
        Err(Error::InvalidArgument {
            argument: "beta",
            ..
        })
    ));
    let empty = tape.parameter(ndarray::Array1::<f64>::zeros(0)).unwrap();
    assert!(matches!(
        tape.l1_loss(empty, empty, Reduction::Mean),
        Err(Error::EmptyBatch { .. })
    ));
}
