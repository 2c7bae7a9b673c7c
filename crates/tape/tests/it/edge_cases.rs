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

/// `f` recorded on the parameter `xs`, its values and `xs`' gradient of `Σ f(x)`.
fn values_and_gradient<E: Float>(
    xs: &[f64],
    f: impl FnOnce(&mut Tape<E>, NodeId) -> Result<NodeId>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut tape = Tape::<E>::new();
    let x = tape.parameter(xs.iter().map(|&v| E::from_f64(v)).collect::<Vec<_>>())?;
    let y = f(&mut tape, x)?;
    let values = tape.data(y)?.iter().map(|&v| v.to_f64()).collect();
    let loss = tape.sum(y)?;
    let grads = tape.backward(loss)?;
    let g = grads.data(x).unwrap().iter().map(|&v| v.to_f64()).collect();
    Ok((values, g))
}

/// The edge rules of `docs/OPS.md`, each as PyTorch behaves, in both precisions.
fn pytorch_edge_rules<E: Float>() -> Result<()> {
    let name = E::NAME;
    // abs'(0) = 0, from either side of zero.
    let (_, g) = values_and_gradient::<E>(&[-2.0, -0.0, 0.0, 3.0], |t, x| t.abs(x))?;
    assert_eq!(g, [-1.0, 0.0, 0.0, 1.0], "{name} abs");
    // sqrt'(0) = inf.
    let (y, g) = values_and_gradient::<E>(&[0.0, 4.0], |t, x| t.sqrt(x))?;
    assert_eq!(
        (y, g),
        (vec![0.0, 2.0], vec![f64::INFINITY, 0.25]),
        "{name} sqrt"
    );
    // leaky_relu'(0) is the slope.
    let (y, g) =
        values_and_gradient::<E>(&[-2.0, 0.0, 2.0], |t, x| t.leaky_relu(x, E::from_f64(0.25)))?;
    assert_eq!(
        (y, g),
        (vec![-0.5, 0.0, 2.0], vec![0.25, 0.25, 1.0]),
        "{name} leaky_relu"
    );
    // softplus above its threshold is x itself with gradient 1; below, ln(1 + eˣ).
    let (y, g) = values_and_gradient::<E>(&[30.0, 0.0], |t, x| t.softplus(x))?;
    assert_eq!(y[0], 30.0, "{name} softplus");
    assert_eq!(g[0], 1.0, "{name} softplus");
    assert!(
        (y[1] - 2f64.ln()).abs() < 1e-6 && (g[1] - 0.5).abs() < 1e-6,
        "{name} {y:?} {g:?}"
    );
    // With beta 2 and threshold 1, βx = 1 is not above the threshold: the log form.
    let (y, _) = values_and_gradient::<E>(&[0.5], |t, x| {
        t.softplus_with(x, E::from_f64(2.0), E::one())
    })?;
    assert!(
        (y[0] - (1.0 + 1f64.exp()).ln() / 2.0).abs() < 1e-6,
        "{name} {y:?}"
    );
    // clamp passes the gradient inside its bounds, bounds included (as PyTorch's
    // `clamp_backward`: `self >= min && self <= max`), and none outside.
    let (y, g) = values_and_gradient::<E>(&[-2.0, -1.0, 0.5, 1.0, 3.0], |t, x| {
        t.clamp(x, Some(-E::one()), Some(E::one()))
    })?;
    assert_eq!(y, [-1.0, -1.0, 0.5, 1.0, 1.0], "{name} clamp");
    assert_eq!(g, [0.0, 1.0, 1.0, 1.0, 0.0], "{name} clamp");
    // One bound only; and min > max gives max everywhere.
    let (y, _) = values_and_gradient::<E>(&[-2.0, 5.0], |t, x| t.clamp(x, None, Some(E::one())))?;
    assert_eq!(y, [-2.0, 1.0], "{name} clamp max only");
    let (y, _) = values_and_gradient::<E>(&[-2.0, 5.0], |t, x| {
        t.clamp(x, Some(E::from_f64(3.0)), Some(E::one()))
    })?;
    assert_eq!(y, [1.0, 1.0], "{name} clamp min > max");
    // powf with exponent 0: 1 everywhere, gradient 0 (not 0 · 0⁻¹ = NaN at 0).
    let (y, g) = values_and_gradient::<E>(&[0.0, 2.0], |t, x| t.powf(x, E::zero()))?;
    assert_eq!((y, g), (vec![1.0, 1.0], vec![0.0, 0.0]), "{name} powf 0");
    // sign: no gradient flows, and its output needs none.
    let mut tape = Tape::<E>::new();
    let x = tape.parameter(vec![
        E::from_f64(-3.0),
        E::zero(),
        E::from_f64(2.0),
        E::nan(),
    ])?;
    let s = tape.sign(x)?;
    let got = tape.data(s)?;
    assert_eq!(&got[..3], &[-E::one(), E::zero(), E::one()], "{name} sign");
    assert!(got[3].is_nan(), "{name} sign of NaN");
    assert!(!tape.requires_grad(s)?);
    Ok(())
}

#[test]
fn edge_rules_follow_pytorch() -> Result<()> {
    pytorch_edge_rules::<f32>()?;
    pytorch_edge_rules::<f64>()
}

/// `maximum` and `minimum` on a tie give each input half the gradient; `pow`'s gradients are 0
/// where PyTorch's are (`b = 0` for `a`, `a = 0` with `b >= 0` for `b`), not NaN.
fn binary_edge_rules<E: Float>() -> Result<()> {
    let name = E::NAME;
    let of = |v: &[f64]| v.iter().map(|&x| E::from_f64(x)).collect::<Vec<_>>();
    type Binary<E> = fn(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>;
    /// An op, then the gradients `a` and `b` get.
    type Case<E> = (&'static str, Binary<E>, [f64; 3], [f64; 3]);
    let cases: [Case<E>; 2] = [
        (
            "maximum",
            |t, a, b| t.maximum(a, b),
            [1.0, 0.5, 0.0],
            [0.0, 0.5, 1.0],
        ),
        (
            "minimum",
            |t, a, b| t.minimum(a, b),
            [0.0, 0.5, 1.0],
            [1.0, 0.5, 0.0],
        ),
    ];
    for (op, f, want_a, want_b) in cases {
        let mut tape = Tape::<E>::new();
        let a = tape.parameter(of(&[3.0, 2.0, -1.0]))?;
        let b = tape.parameter(of(&[1.0, 2.0, 4.0]))?;
        let c = f(&mut tape, a, b)?;
        let loss = tape.sum(c)?;
        let grads = tape.backward(loss)?;
        let ga: Vec<f64> = grads.data(a).unwrap().iter().map(|&v| v.to_f64()).collect();
        let gb: Vec<f64> = grads.data(b).unwrap().iter().map(|&v| v.to_f64()).collect();
        assert_eq!((ga, gb), (want_a.to_vec(), want_b.to_vec()), "{name} {op}");
    }
    let mut tape = Tape::<E>::new();
    let a = tape.parameter(of(&[0.0, 0.0, 2.0]))?;
    let b = tape.parameter(of(&[2.0, 0.0, 0.0]))?;
    let c = tape.pow(a, b)?;
    assert_eq!(tape.data(c)?, &of(&[0.0, 1.0, 1.0])[..], "{name} pow");
    let loss = tape.sum(c)?;
    let grads = tape.backward(loss)?;
    // da = b·a^(b-1): 2·0 = 0, then 0 where b = 0; db = c·ln a: 0 where a = 0, then 1·ln 2.
    assert_eq!(
        grads.data(a).unwrap(),
        &of(&[0.0, 0.0, 0.0])[..],
        "{name} pow da"
    );
    let db = grads.data(b).unwrap();
    assert_eq!(&db[..2], &of(&[0.0, 0.0])[..], "{name} pow db");
    assert!((db[2].to_f64() - 2f64.ln()).abs() < 1e-6, "{name} pow db");
    Ok(())
}

#[test]
fn binary_edge_rules_follow_pytorch() -> Result<()> {
    binary_edge_rules::<f32>()?;
    binary_edge_rules::<f64>()
}

#[test]
fn bad_parameters_are_errors_that_record_nothing() -> Result<()> {
    use wengert_tape::Error;
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(vec![1.0, -1.0])?;
    let nan = f64::NAN;
    let bad = [
        ("slope", tape.leaky_relu(x, nan).unwrap_err()),
        ("alpha", tape.elu(x, f64::INFINITY).unwrap_err()),
        ("beta", tape.softplus_with(x, 0.0, 20.0).unwrap_err()),
        ("threshold", tape.softplus_with(x, 1.0, nan).unwrap_err()),
        ("p", tape.powf(x, nan).unwrap_err()),
        ("min", tape.clamp(x, Some(nan), None).unwrap_err()),
        ("max", tape.clamp(x, None, Some(nan)).unwrap_err()),
    ];
    for (parameter, err) in bad {
        assert!(
            matches!(err, Error::BadParameter { parameter: p, .. } if p == parameter),
            "{parameter}: {err}"
        );
    }
    assert_eq!(
        tape.clamp(x, None, None).unwrap_err().to_string(),
        "clamp: needs at least one of min and max"
    );
    assert_eq!(
        tape.softplus_with(x, -1.0, 20.0).unwrap_err().to_string(),
        "softplus: beta must be finite and positive, got -1"
    );
    assert_eq!(tape.len(), 1, "nothing was recorded");
    Ok(())
}

/// gelu, exact and tanh-approximated, as PyTorch's: `gelu(0) = 0` with gradient 1/2; far above
/// 0, `x` with gradient 1; far below, 0 with gradient 0 (PyTorch's `x · (1 + erf(x/√2)) / 2`
/// rounds `1 + erf` to 0); a NaN stays NaN. Reference values: `Φ(1)`, and the tanh form at 1
/// evaluated in f64 by Python's `math`.
fn gelu_edge_rules<E: Float>() -> Result<()> {
    let name = E::NAME;
    let tolerance = if E::NAME == "f32" { 1e-6 } else { 1e-15 };
    type Record<E> = fn(&mut Tape<E>, NodeId) -> Result<NodeId>;
    let forms: [(&str, Record<E>, f64); 2] = [
        ("gelu", |t, x| t.gelu(x), 0.841_344_746_068_542_9),
        ("gelu_tanh", |t, x| t.gelu_tanh(x), 0.841_191_990_608_276_8),
    ];
    for (form, record, at_one) in forms {
        let (y, g) = values_and_gradient::<E>(&[0.0, 10.0, -40.0, 1.0], record)?;
        assert_eq!(&y[..3], [0.0, 10.0, 0.0], "{name} {form}");
        assert_eq!(&g[..3], [0.5, 1.0, 0.0], "{name} {form}");
        assert!(
            (y[3] - at_one).abs() < tolerance,
            "{name} {form}(1) = {}",
            y[3]
        );
        let mut tape = Tape::<E>::new();
        let x = tape.parameter(vec![E::nan()])?;
        let y = record(&mut tape, x)?;
        assert!(tape.data(y)?[0].is_nan(), "{name} {form} of NaN");
    }
    // erf itself: odd, exactly ±1 far out, with derivative 2/√π at 0.
    let (y, g) = values_and_gradient::<E>(&[0.0, 6.0, -6.0], |t, x| t.erf(x))?;
    assert_eq!(y, [0.0, 1.0, -1.0], "{name} erf");
    let two_over_sqrt_pi = E::from_f64(std::f64::consts::FRAC_2_SQRT_PI).to_f64();
    assert_eq!(g[0], two_over_sqrt_pi, "{name} erf'(0)");
    Ok(())
}

#[test]
fn gelu_edge_rules_follow_pytorch() -> Result<()> {
    gelu_edge_rules::<f32>()?;
    gelu_edge_rules::<f64>()
}

/// Comparisons give 1.0 or 0.0 (PyTorch's boolean result as a float): a NaN on either side is
/// unequal and unordered (every comparison 0), `-0.0 == 0.0`, infinities compare as numbers,
/// operands broadcast; the mask needs no gradient, and a product with it passes the gradient
/// where it is 1 (here `x · [x > 0]`, ReLU's gradient).
fn comparison_edge_rules<E: Float>() -> Result<()> {
    let name = E::NAME;
    let f = |v: f64| E::from_f64(v);
    let mut tape = Tape::<E>::new();
    let a = tape.parameter(vec![f(1.0), f(-0.0), E::nan(), f(f64::INFINITY), f(2.0)])?;
    let b = tape.parameter(vec![f(1.0), f(0.0), E::nan(), f(1e30), f(f64::NAN)])?;
    type Compare<E> = fn(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>;
    let cases: [(&str, Compare<E>, [f64; 5]); 5] = [
        ("eq", |t, a, b| t.eq(a, b), [1.0, 1.0, 0.0, 0.0, 0.0]),
        ("lt", |t, a, b| t.lt(a, b), [0.0, 0.0, 0.0, 0.0, 0.0]),
        ("le", |t, a, b| t.le(a, b), [1.0, 1.0, 0.0, 0.0, 0.0]),
        ("gt", |t, a, b| t.gt(a, b), [0.0, 0.0, 0.0, 1.0, 0.0]),
        ("ge", |t, a, b| t.ge(a, b), [1.0, 1.0, 0.0, 1.0, 0.0]),
    ];
    for (op, compare, want) in cases {
        let mask = compare(&mut tape, a, b)?;
        let got: Vec<f64> = tape.data(mask)?.iter().map(|&v| v.to_f64()).collect();
        assert_eq!(got, want, "{name} {op}");
        assert!(!tape.requires_grad(mask)?, "{name} {op}");
    }
    // Broadcasting: [2, 1] against [3].
    let col = tape.input(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![f(0.0), f(2.0)]).unwrap())?;
    let row = tape.input(vec![f(-1.0), f(0.0), f(3.0)])?;
    let lt = tape.lt(col, row)?;
    assert_eq!(tape.shape(lt)?.dims(), &[2, 3], "{name}");
    let got: Vec<f64> = tape.data(lt)?.iter().map(|&v| v.to_f64()).collect();
    assert_eq!(got, [0.0, 0.0, 1.0, 0.0, 0.0, 1.0], "{name} lt broadcast");
    // A mask gates a gradient: x · [x > 0] has ReLU's gradient, 0 at 0.
    let (_, g) = values_and_gradient::<E>(&[-2.0, 0.0, 3.0], |t, x| {
        let zero = t.input(vec![E::zero()])?;
        let positive = t.gt(x, zero)?;
        t.mul(x, positive)
    })?;
    assert_eq!(g, [0.0, 0.0, 1.0], "{name} x · [x > 0]");
    Ok(())
}

#[test]
fn comparisons_are_masks_without_a_gradient() -> Result<()> {
    comparison_edge_rules::<f32>()?;
    comparison_edge_rules::<f64>()
}
