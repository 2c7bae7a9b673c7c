//! Exact results where the arithmetic is exact or saturates: ReLU's gradient at zero, tanh far
//! out, cross-entropy on huge logits, NaN propagation.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Float, NodeId, Result, Tape};

/// ReLU's gradient is 0 at 0 from either side and for -0.0, as in PyTorch.
fn relu_gradient_at_zero<E: Float>() -> Result<()> {
    let mut tape = Tape::<E>::new();
    let x = tape.parameter(
        vec![-1.0, -0.0, 0.0, 1.0]
            .into_iter()
            .map(E::from_f64)
            .collect::<Vec<_>>(),
    )?;
    let y = tape.relu(x)?;
    let loss = tape.sum(y)?;
    let grads = tape.backward(loss)?;
    let want: Vec<E> = [0.0, 0.0, 0.0, 1.0].map(E::from_f64).to_vec();
    assert_eq!(grads.data(x).unwrap(), &want[..], "{}", E::NAME);
    Ok(())
}

#[test]
fn relu_gradient_is_exactly_zero_at_zero() -> Result<()> {
    relu_gradient_at_zero::<f32>()?;
    relu_gradient_at_zero::<f64>()
}

/// tanh(±300) is exactly ±1 and its gradient exactly 0: the VJP is taken from the output, so
/// nothing overflows on the way.
fn tanh_saturates<E: Float>() -> Result<()> {
    let mut tape = Tape::<E>::new();
    let x = tape.parameter(vec![E::from_f64(300.0), E::from_f64(-300.0)])?;
    let y = tape.tanh(x)?;
    assert_eq!(tape.data(y)?, &[E::one(), -E::one()], "{}", E::NAME);
    let loss = tape.sum(y)?;
    let grads = tape.backward(loss)?;
    let g = grads.data(x).unwrap();
    assert_eq!(g, &[E::zero(), E::zero()], "{}", E::NAME);
    assert!(g.iter().all(|v| !v.is_nan()));
    Ok(())
}

#[test]
fn tanh_saturates_to_one_with_zero_gradient() -> Result<()> {
    tanh_saturates::<f32>()?;
    tanh_saturates::<f64>()
}

#[test]
fn cross_entropy_of_huge_logits_is_finite_in_f32() -> Result<()> {
    let mut tape = Tape::<f32>::new();
    let z = tape.parameter(array![
        [1e4f32, -1e4, 0.0],
        [-1e4, 1e4, 1e4],
        [-1e4, -1e4, -1e4],
        [1e4, -1e4, 1e4]
    ])?;
    // Row 0's label has logit -1e4 against a maximum of 1e4: a loss of 2e4 for that row.
    let labels = tape.labels(&[1, 2, 0, 0])?;
    let loss = tape.cross_entropy(z, labels)?;
    let value = tape.item(loss)?;
    let want = (2e4 + 2f64.ln() + 3f64.ln() + 2f64.ln()) / 4.0;
    assert!(value.is_finite());
    assert!(
        (f64::from(value) - want).abs() <= 1e-6 * want,
        "{value} vs {want}"
    );
    let grads = tape.backward(loss)?;
    let g = grads.get(z).unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    for row in g.rows() {
        let s: f32 = row.sum();
        assert!(s.abs() <= 1e-6, "row {row} sums to {s}");
    }
    // softmax − onehot, over a batch of 4: row 0 puts all its mass on class 0.
    assert_eq!(g[[0, 0]], 0.25);
    assert_eq!(g[[0, 1]], -0.25);
    Ok(())
}

/// Records `f` on inputs holding one NaN and returns the output's elements.
fn with_nan<E: Float>(
    f: impl FnOnce(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>,
) -> Result<Vec<E>> {
    let mut tape = Tape::<E>::new();
    let x = tape.parameter(vec![E::from_f64(0.5), E::nan(), E::from_f64(-1.5)])?;
    let ok = tape.parameter(vec![
        E::from_f64(0.25),
        E::from_f64(2.0),
        E::from_f64(-0.75),
    ])?;
    let y = f(&mut tape, x, ok)?;
    Ok(tape.data(y)?.to_vec())
}

type Elementwise<E> = fn(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>;

fn nan_propagates<E: Float>() -> Result<()> {
    let elementwise: [(&str, Elementwise<E>); 13] = [
        ("add lhs", |t, x, o| t.add(x, o)),
        ("add rhs", |t, x, o| t.add(o, x)),
        ("sub", |t, x, o| t.sub(o, x)),
        ("mul", |t, x, o| t.mul(x, o)),
        ("div", |t, x, o| t.div(o, x)),
        ("add_scalar", |t, x, _| t.add_scalar(x, E::one())),
        ("mul_scalar", |t, x, _| t.mul_scalar(x, E::from_f64(3.0))),
        ("neg", |t, x, _| t.neg(x)),
        ("relu", |t, x, _| t.relu(x)),
        ("tanh", |t, x, _| t.tanh(x)),
        ("sigmoid", |t, x, _| t.sigmoid(x)),
        ("exp", |t, x, _| t.exp(x)),
        ("log", |t, x, _| {
            let a = t.mul(x, x)?;
            t.log(a)
        }),
    ];
    for (name, f) in elementwise {
        let y = with_nan::<E>(f)?;
        assert!(y[1].is_nan(), "{} {name}: {y:?}", E::NAME);
        assert!(
            !y[0].is_nan() && !y[2].is_nan(),
            "{} {name}: {y:?}",
            E::NAME
        );
    }
    // Reductions and row-wise ops: the NaN reaches everything it is combined with.
    let reducing: [(&str, Elementwise<E>); 7] = [
        ("sum", |t, x, _| t.sum(x)),
        ("mean", |t, x, _| t.mean(x)),
        ("sum_axis", |t, x, _| t.sum_axis(x, 0)),
        ("softmax", |t, x, _| t.softmax(x)),
        ("log_softmax", |t, x, _| t.log_softmax(x)),
        ("mse", |t, x, o| t.mse(x, o)),
        ("cross_entropy", |t, x, _| {
            let z = t.reshape(x, &[1, 3])?;
            let labels = t.labels(&[0])?;
            t.cross_entropy(z, labels)
        }),
    ];
    for (name, f) in reducing {
        let y = with_nan::<E>(f)?;
        assert!(y.iter().all(|v| v.is_nan()), "{} {name}: {y:?}", E::NAME);
    }
    // matmul: the NaN spoils exactly the output row it is in.
    let mut tape = Tape::<E>::new();
    let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![E::one(), E::nan(), E::one(), E::one()])
        .unwrap();
    let a = tape.parameter(a)?;
    let b = tape.parameter(ArrayD::from_elem(IxDyn(&[2, 3]), E::one()))?;
    let c = tape.matmul(a, b)?;
    let c = tape.data(c)?;
    assert!(
        c[..3].iter().all(|v| v.is_nan()),
        "{} matmul: {c:?}",
        E::NAME
    );
    assert!(
        c[3..].iter().all(|v| !v.is_nan()),
        "{} matmul: {c:?}",
        E::NAME
    );
    Ok(())
}

#[test]
fn nan_in_gives_nan_out() -> Result<()> {
    nan_propagates::<f32>()?;
    nan_propagates::<f64>()
}

#[test]
fn detach_gives_the_value_and_no_gradient() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![1.5, -2.0])?;
    let stopped = tape.detach(x)?;
    assert_eq!(tape.data(stopped)?, tape.data(x)?);
    assert!(!tape.requires_grad(stopped)?);
    // loss = Σ x·stop(x): the gradient sees only the live factor, so it is x, not 2x.
    let y = tape.mul(x, stopped)?;
    let loss = tape.sum(y)?;
    let grads = tape.backward(loss)?;
    assert_eq!(grads.data(x).unwrap(), &[1.5, -2.0]);
    Ok(())
}

#[test]
fn log_softmax_of_huge_logits_keeps_full_precision_in_f32() -> Result<()> {
    let mut tape = Tape::<f32>::new();
    let z = tape.parameter(array![[1e4f32, 1e4, -1e4], [-1e4, 0.0, 1e4]])?;
    let y = tape.log_softmax(z)?;
    let ln2 = 2f32.ln();
    // Each entry to within an ulp of the exact log-probability.
    let want = [-ln2, -ln2, -2e4 - ln2, -2e4, -1e4, 0.0];
    for (&got, &want) in tape.data(y)?.iter().zip(&want) {
        let ulp = f32::EPSILON * want.abs().max(f32::MIN_POSITIVE);
        assert!((got - want).abs() <= ulp, "{got} vs {want}");
    }
    Ok(())
}
