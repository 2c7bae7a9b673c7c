//! Test helpers shared by the kernels' unit tests: central finite differences in f64, the
//! overwrite-versus-accumulate check, and small deterministic inputs.

/// A forward function from an input to an output, both flat f64 arrays.
pub(crate) type Forward<'a> = &'a dyn Fn(&[f64]) -> Vec<f64>;

/// A VJP: `(x, g, gi, accumulate)` adds (or with `accumulate` false, writes) `Jᵀg` into `gi`.
pub(crate) type Vjp<'a> = &'a dyn Fn(&[f64], &[f64], &mut [f64], bool);

/// Checks `vjp` against central finite differences of `f` at `x` for the cotangent `g`, and
/// that the accumulating form adds exactly what the overwriting form writes over a NaN-poisoned
/// buffer. Returns the largest absolute difference from the finite differences, scaled by
/// `max(1, |value|)`.
pub(crate) fn fd_error(f: Forward<'_>, vjp: Vjp<'_>, x: &[f64], g: &[f64]) -> f64 {
    let mut analytic = vec![f64::NAN; x.len()];
    vjp(x, g, &mut analytic, false);
    let mut added = vec![0.5; x.len()];
    vjp(x, g, &mut added, true);
    for (k, (&a, &b)) in analytic.iter().zip(&added).enumerate() {
        let same = a == b - 0.5 || (a - (b - 0.5)).abs() <= 1e-12 * a.abs().max(1.0);
        assert!(same, "overwrite {a} and accumulate {b} - 0.5 differ at {k}");
    }
    let dot = |y: &[f64]| -> f64 { y.iter().zip(g).map(|(a, b)| a * b).sum() };
    let mut worst = 0.0f64;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let h = 1e-6 * x[i].abs().max(1.0);
        xp[i] = x[i] + h;
        let up = dot(&f(&xp));
        xp[i] = x[i] - h;
        let down = dot(&f(&xp));
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * h);
        let err = (numeric - analytic[i]).abs() / numeric.abs().max(1.0);
        assert!(
            err.is_finite() || numeric == analytic[i],
            "at {i}: numeric {numeric}, analytic {}",
            analytic[i]
        );
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    worst
}

/// `n` values in roughly [-2, 2], different for each `seed`, from a SplitMix64 stream.
pub(crate) fn values(n: usize, seed: u64) -> Vec<f64> {
    use wengert_testkit::SplitMix64;
    let mut rng = SplitMix64::new(seed.wrapping_mul(SplitMix64::GAMMA).wrapping_add(1));
    (0..n).map(|_| rng.unit_f64() * 4.0 - 2.0).collect()
}

/// The row-major multi-index of flat position `i` in `dims`.
pub(crate) fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        idx[a] = i % dims[a];
        i /= dims[a];
    }
    idx
}

/// The flat position of multi-index `idx` in `dims`.
pub(crate) fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// The finite-difference tolerance every kernel's gradient is held to in f64.
pub(crate) const FD_TOL: f64 = 1e-6;

/// The elements of each lane of a reduction of `x` (shape `dims`) along `axis` (all for
/// `None`), in output order, found by walking every element's multi-index.
pub(crate) fn naive_lanes(x: &[f64], dims: &[usize], axis: Option<usize>) -> Vec<Vec<f64>> {
    let Some(a) = axis else {
        return vec![x.to_vec()];
    };
    let out_dims: Vec<usize> = dims
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != a)
        .map(|(_, &d)| d)
        .collect();
    let mut lanes = vec![Vec::new(); out_dims.iter().product()];
    for (i, &v) in x.iter().enumerate() {
        let mut idx = unravel(i, dims);
        idx.remove(a);
        lanes[ravel(&idx, &out_dims)].push(v);
    }
    lanes
}

/// A reduction kernel's forward: `(x, axis, out)`.
pub(crate) type ReduceForward<'a> =
    &'a dyn Fn(crate::TensorRef<'_, f64>, Option<usize>, &mut [f64]);

/// A reduction kernel's VJP: `(x, axis, y, g, gi, accumulate)`.
pub(crate) type ReduceVjp<'a> =
    &'a dyn Fn(crate::TensorRef<'_, f64>, Option<usize>, &[f64], &[f64], &mut [f64], bool);

/// Checks a reduction's forward against `reference` applied to each naive lane (to 1e-12
/// relative) and its VJP against finite differences; returns the finite-difference error.
pub(crate) fn check_reduction(
    dims: &[usize],
    axis: Option<usize>,
    x: &[f64],
    forward: ReduceForward<'_>,
    vjp: ReduceVjp<'_>,
    reference: &dyn Fn(&[f64]) -> f64,
) -> f64 {
    let s = crate::Shape::new(dims).unwrap();
    let lanes = naive_lanes(x, dims, axis);
    let n = lanes.len();
    let run = |x: &[f64]| {
        let mut y = vec![0.0; n];
        forward(crate::TensorRef::trusted(&s, x), axis, &mut y);
        y
    };
    let y = run(x);
    for (j, lane) in lanes.iter().enumerate() {
        let want = reference(lane);
        let ok = want == y[j]
            || (want.is_nan() && y[j].is_nan())
            || (want - y[j]).abs() <= 1e-12 * want.abs().max(1.0);
        assert!(ok, "{dims:?} {axis:?} lane {j}: got {}, want {want}", y[j]);
    }
    let g = values(n, 17);
    let pull = |x: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
        let y = run(x);
        vjp(crate::TensorRef::trusted(&s, x), axis, &y, g, gi, acc)
    };
    fd_error(&run, &pull, x, &g)
}
