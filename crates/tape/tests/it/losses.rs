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

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-14 * b.abs().max(1.0)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// PyTorch's `binary_cross_entropy_with_logits(x, t, pos_weight=p)`:
/// `-[p·t·ln σ(x) + (1 - t)·ln(1 - σ(x))]`, with `p` per column, written from the definition.
#[test]
fn bce_with_pos_weight_matches_pytorchs_formula_and_the_weights_get_no_gradient() {
    let (xs, ts, ps) = (
        [[0.5, -1.0], [2.0, 0.0]],
        [[1.0, 0.0], [0.3, 1.0]],
        [2.0, 0.5],
    );
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[0.5, -1.0], [2.0, 0.0]]).unwrap();
    let t = tape.input(array![[1.0, 0.0], [0.3, 1.0]]).unwrap();
    let p = tape.parameter(array![2.0, 0.5]).unwrap();
    let loss = tape
        .binary_cross_entropy_with_logits_weighted(x, t, p, Reduction::Mean)
        .unwrap();
    let mut total = 0.0;
    let mut dx = Vec::new();
    for (row, trow) in xs.iter().zip(&ts) {
        for ((&x, &t), &p) in row.iter().zip(trow).zip(&ps) {
            let s = sigmoid(x);
            total += -(p * t * s.ln() + (1.0 - t) * (1.0 - s).ln());
            // d/dx = σ(x)·(p·t + 1 - t) - p·t, over the mean's 4 terms
            dx.push((s * (p * t + 1.0 - t) - p * t) / 4.0);
        }
    }
    assert!(close(tape.item(loss).unwrap(), total / 4.0));
    let grads = tape.backward(loss).unwrap();
    for (got, want) in grads.data(x).unwrap().iter().zip(&dx) {
        assert!(close(*got, *want), "{got} {want}");
    }
    assert_eq!(
        grads.data(p).unwrap(),
        &[0.0, 0.0],
        "no gradient to pos_weight"
    );
    // A pos_weight that is not a vector of the last axis's length is refused.
    let wrong = tape.input(array![1.0, 2.0, 3.0]).unwrap();
    assert!(matches!(
        tape.binary_cross_entropy_with_logits_weighted(x, t, wrong, Reduction::Sum),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// PyTorch's `nll_loss(x, t, weight=w)`: the mean divides by the sum of the picked weights,
/// `ignore_index` leaves a lane out of both sums.
#[test]
fn nll_with_class_weights_divides_the_mean_by_the_picked_weights() {
    let mut tape = Tape::<f64>::new();
    let x = tape
        .parameter(array![
            [-0.1, -2.0, -3.0],
            [-1.5, -0.5, -2.5],
            [-0.7, -1.2, -0.9]
        ])
        .unwrap();
    let t = tape.labels(&[0, 2, 1]).unwrap();
    let w = tape.input(array![1.0, 2.0, 0.5]).unwrap();
    let mean = tape
        .nll_loss_weighted(x, t, w, None, Reduction::Mean)
        .unwrap();
    // (1·0.1 + 0.5·2.5 + 2·1.2) / (1 + 0.5 + 2)
    assert!(close(tape.item(mean).unwrap(), 3.75 / 3.5));
    let sum = tape
        .nll_loss_weighted(x, t, w, None, Reduction::Sum)
        .unwrap();
    assert!(close(tape.item(sum).unwrap(), 3.75));
    let ignored = tape
        .nll_loss_weighted(x, t, w, Some(2), Reduction::Mean)
        .unwrap();
    // Lane 1 (target 2) left out: (0.1 + 2.4) / (1 + 2)
    assert!(close(tape.item(ignored).unwrap(), 2.5 / 3.0));
    let grads = tape.backward(mean).unwrap();
    let d = grads.data(x).unwrap();
    let want = [
        -1.0 / 3.5,
        0.0,
        0.0,
        0.0,
        0.0,
        -0.5 / 3.5,
        0.0,
        -2.0 / 3.5,
        0.0,
    ];
    for (got, want) in d.iter().zip(want) {
        assert!(close(*got, want), "{d:?}");
    }
    // Weights of the wrong length are refused.
    let wrong = tape.input(array![1.0, 2.0]).unwrap();
    assert!(matches!(
        tape.nll_loss_weighted(x, t, wrong, None, Reduction::Mean),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// PyTorch's `cross_entropy(z, t, weight=w, label_smoothing=ε)`:
/// `[(1 - ε)·Σ_j w[t_j]·(-lp[t_j]) + (ε/C)·Σ_j Σ_c w_c·(-lp_c)] / Σ_j w[t_j]`; with probability
/// targets, `mean_j -Σ_c w_c·t_c·lp_c` (divided by the lane count).
#[test]
fn cross_entropy_with_class_weights_matches_pytorchs_formulas() {
    let zs = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]];
    let (labels, ws) = ([2usize, 0], [3.0, 1.0, 2.0]);
    let log_softmax = |z: &[f64; 3]| {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        z.map(|v| v - lse)
    };
    let lps = zs.map(|z| log_softmax(&z));
    let eps = 0.2;
    let picked: f64 = labels.iter().map(|&k| ws[k]).sum();
    let hard: f64 = labels.iter().zip(&lps).map(|(&k, lp)| -ws[k] * lp[k]).sum();
    let smooth: f64 = lps
        .iter()
        .map(|lp| (0..3).map(|c| -ws[c] * lp[c]).sum::<f64>())
        .sum();
    let want = ((1.0 - eps) * hard + eps / 3.0 * smooth) / picked;

    let mut tape = Tape::<f64>::new();
    let z = tape
        .parameter(array![[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
        .unwrap();
    let t = tape.labels(&labels).unwrap();
    let w = tape.input(array![3.0, 1.0, 2.0]).unwrap();
    let options = CrossEntropyOptions {
        label_smoothing: eps,
        ..CrossEntropyOptions::default()
    };
    let loss = tape.cross_entropy_weighted(z, t, w, options).unwrap();
    assert!(close(tape.item(loss).unwrap(), want));

    let probs = [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]];
    let soft = tape
        .parameter(array![[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
        .unwrap();
    let options = CrossEntropyOptions {
        targets: Targets::Probabilities,
        ..CrossEntropyOptions::default()
    };
    let loss = tape.cross_entropy_weighted(z, soft, w, options).unwrap();
    let want: f64 = probs
        .iter()
        .zip(&lps)
        .map(|(t, lp)| (0..3).map(|c| -ws[c] * t[c] * lp[c]).sum::<f64>())
        .sum::<f64>()
        / 2.0;
    assert!(close(tape.item(loss).unwrap(), want));
    // The probabilities get a gradient, `dt_c = -w_c·lp_c / N`; the weights none.
    let grads = tape.backward(loss).unwrap();
    let dt = grads.data(soft).unwrap();
    for (j, lp) in lps.iter().enumerate() {
        for c in 0..3 {
            assert!(close(dt[j * 3 + c], -ws[c] * lp[c] / 2.0), "{dt:?}");
        }
    }
    // A distance loss takes no weights.
    let op = wengert_tape::Op::WeightedLoss(wengert_tape::LossOp::Distance {
        distance: wengert_tape::Distance::L1,
        reduction: Reduction::Sum,
    });
    assert!(matches!(
        tape.record(op, &[z, z, w]),
        Err(Error::WrongArity { .. })
    ));
}
