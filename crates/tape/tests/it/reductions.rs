//! The reductions end to end: the positions (no gradient, f32 and f64 alike), the index-returning
//! forms through handles, and the typed errors for bad axes, empty lanes and corrections.

use ndarray::array;
use wengert_tape::{Error, Graph, Tape};

#[test]
fn argmax_and_argmin_give_first_positions_and_no_gradient() {
    fn run<E: wengert_tape::Float>() {
        let mut t = Tape::<E>::new();
        let x = t
            .parameter(array![[1.0, 3.0, 3.0], [4.0, 0.0, 0.0]].mapv(E::from_f64))
            .unwrap();
        let along = t.argmax(x, Some(1), false).unwrap();
        assert_eq!(t.data(along).unwrap(), &[E::from_f64(1.0), E::zero()]);
        let low = t.argmin(x, Some(1), true).unwrap();
        assert_eq!(t.shape(low).unwrap().dims(), &[2, 1]);
        assert_eq!(t.data(low).unwrap(), &[E::zero(), E::one()]);
        let flat = t.argmax(x, None, false).unwrap();
        assert_eq!(t.data(flat).unwrap(), &[E::from_f64(3.0)]);
        assert!(!t.requires_grad(flat).unwrap());
        let columns = t.argmin(x, Some(0), false).unwrap();
        assert_eq!(t.data(columns).unwrap(), &[E::zero(), E::one(), E::one()]);
    }
    run::<f32>();
    run::<f64>();
}

#[test]
fn max_dim_through_handles_returns_values_and_indices() {
    let g = Graph::<f64>::new();
    let x = g
        .parameter(array![[2.0, f64::NAN, 1.0], [0.5, 0.5, -1.0]])
        .unwrap();
    let (values, indices) = x.min_dim(1, false).unwrap();
    assert!(
        values.value().unwrap()[[0]].is_nan(),
        "NaN is the extreme both ways"
    );
    assert_eq!(indices.value().unwrap().as_slice().unwrap()[1], 2.0);
    let (values, indices) = x.max_dim(1, true).unwrap();
    assert_eq!(values.shape().unwrap().dims(), &[2, 1]);
    assert_eq!(indices.value().unwrap().as_slice().unwrap(), &[1.0, 0.0]);
    // The tie at 0.5 sends the whole gradient to the first, unlike `amax`.
    let grads = values.sum().unwrap().backward().unwrap();
    assert_eq!(grads[&x][3..], [1.0, 0.0, 0.0]);
}

#[test]
fn amax_shares_a_tie_and_reductions_keep_every_axis_over_all_elements() {
    let g = Graph::<f64>::new();
    let x = g.parameter(array![[1.0, 2.0], [2.0, 0.0]]).unwrap();
    let m = x.amax(None, true).unwrap();
    assert_eq!(m.shape().unwrap().dims(), &[1, 1]);
    let grads = m.sum().unwrap().backward().unwrap();
    assert_eq!(grads[&x], [0.0, 0.5, 0.5, 0.0]);
}

#[test]
fn moments_and_norm_match_their_formulas() {
    let g = Graph::<f64>::new();
    let x = g.parameter(array![1.0, 2.0, 3.0, 6.0]).unwrap();
    // mean 3, squared deviations 4 + 1 + 0 + 9 = 14
    assert_eq!(x.var(None, 1.0, false).unwrap().item().unwrap(), 14.0 / 3.0);
    assert_eq!(x.var(None, 0.0, false).unwrap().item().unwrap(), 3.5);
    assert_eq!(
        x.std(None, 0.0, false).unwrap().item().unwrap(),
        3.5f64.sqrt()
    );
    assert_eq!(x.norm(None, false).unwrap().item().unwrap(), 50f64.sqrt());
    assert_eq!(x.prod(None, false).unwrap().item().unwrap(), 36.0);
    let big = g.input(array![1000.0, 1000.0]).unwrap();
    let lse = big.logsumexp(Some(0), false).unwrap().item().unwrap();
    assert!((lse - (1000.0 + 2f64.ln())).abs() < 1e-12, "{lse}");
}

#[test]
fn bad_axes_empty_lanes_and_corrections_are_typed_errors() {
    let mut t = Tape::<f64>::new();
    let x = t.parameter(array![[1.0, 2.0], [3.0, 4.0]]).unwrap();
    assert!(matches!(
        t.amax(x, Some(2), false),
        Err(Error::AxisOutOfRange { axis: 2, .. })
    ));
    assert!(matches!(
        t.var(x, Some(1), 2.0, false),
        Err(Error::InvalidArgument {
            op: "var",
            argument: "correction",
            ..
        })
    ));
    assert!(matches!(
        t.std(x, None, f64::NAN, false),
        Err(Error::InvalidArgument { op: "std", .. })
    ));
    let empty = t.parameter(ndarray::Array2::<f64>::zeros((2, 0))).unwrap();
    assert!(matches!(
        t.max_dim(empty, 1, false),
        Err(Error::EmptyBatch { .. })
    ));
    // A product or a norm of nothing is defined: 1 and 0.
    let p = t.prod(empty, Some(1), false).unwrap();
    assert_eq!(t.data(p).unwrap(), &[1.0, 1.0]);
    let n = t.norm(empty, Some(1), false).unwrap();
    assert_eq!(t.data(n).unwrap(), &[0.0, 0.0]);
}

/// Every node re-recorded from its `Op` through `Tape::record`, the path a saved model's replay
/// takes: the same values and gradients, bit for bit.
#[test]
fn reductions_replay_from_their_recorded_ops() {
    use wengert_tape::NodeKind;
    let mut t = Tape::<f32>::new();
    let x = t
        .parameter(array![[0.5f32, -1.5, 2.0], [1.0, 3.0, -0.25]])
        .unwrap();
    let parts = [
        t.amax(x, Some(0), true).unwrap(),
        t.max_dim(x, 1, true).unwrap().0,
        t.logsumexp(x, Some(1), true).unwrap(),
        t.prod(x, Some(1), true).unwrap(),
        t.var(x, Some(1), 1.0, true).unwrap(),
        t.std(x, Some(1), 0.0, true).unwrap(),
        t.norm(x, None, true).unwrap(),
        t.amin(x, None, true).unwrap(),
    ];
    let mut loss = t.sum(parts[0]).unwrap();
    for &p in &parts[1..] {
        let s = t.sum(p).unwrap();
        loss = t.add(loss, s).unwrap();
    }
    let mut fresh = Tape::<f32>::new();
    let mut ids = Vec::new();
    for id in t.ids() {
        let new = match t.kind(id).unwrap() {
            NodeKind::Parameter => fresh.parameter(t.value_owned(id).unwrap()).unwrap(),
            NodeKind::Op(op) => {
                let inputs: Vec<_> = t
                    .inputs(id)
                    .unwrap()
                    .iter()
                    .map(|i| ids[i.index()])
                    .collect();
                fresh.record(op, &inputs).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(fresh.data(new).unwrap(), t.data(id).unwrap());
        ids.push(new);
    }
    let (old, new) = (
        t.backward(loss).unwrap(),
        fresh.backward(ids[loss.index()]).unwrap(),
    );
    assert_eq!(old.data(x).unwrap(), new.data(ids[x.index()]).unwrap());
}

#[test]
fn softmax_along_the_last_axis_is_bit_identical_to_softmax_and_a_missing_axis_is_an_error() {
    let mut t = Tape::<f32>::new();
    let x = t
        .parameter(array![[0.5f32, -1.5, 2.0], [1.0, 3.0, -0.25]])
        .unwrap();
    for (named, along) in [
        (t.softmax(x).unwrap(), t.softmax_axis(x, 1).unwrap()),
        (t.log_softmax(x).unwrap(), t.log_softmax_axis(x, 1).unwrap()),
    ] {
        assert_eq!(t.data(named).unwrap(), t.data(along).unwrap());
    }
    let columns = t.softmax_axis(x, 0).unwrap();
    let sums = t.sum_axis(columns, 0).unwrap();
    for s in t.data(sums).unwrap() {
        assert!((s - 1.0).abs() < 1e-6);
    }
    assert!(matches!(
        t.log_softmax_axis(x, 2),
        Err(Error::AxisOutOfRange { axis: 2, .. })
    ));
    let scalar = t.parameter(ndarray::arr0(1.0f32)).unwrap();
    assert!(matches!(
        t.softmax_axis(scalar, 0),
        Err(Error::AxisOutOfRange { .. })
    ));
}
