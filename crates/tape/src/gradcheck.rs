//! Gradient checking against central finite differences in `f64`, as PyTorch's `gradcheck`
//! and JAX's `check_grads` do.
//!
//! Small problems are checked entry by entry over the whole Jacobian: each column by central
//! differences, each row by one reverse sweep seeded with a unit vector. Large ones get the
//! dot-product (adjoint) test: for random `u` and `v`, `u · (J v)` by differences against
//! `(Jᵀ u) · v` by one sweep.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use wengert_ops::{CustomOp, Result};

use crate::{NodeId, Tape};

/// How [`gradcheck()`] perturbs and what it tolerates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// The finite-difference step `h`: each derivative is `(f(x + h) - f(x - h)) / 2h`.
    pub step: f64,
    /// The absolute part of the tolerance: an entry passes if
    /// `|analytic - numeric| <= abs_tol + rel_tol · |numeric|`.
    pub abs_tol: f64,
    /// The relative part of the tolerance.
    pub rel_tol: f64,
    /// The largest Jacobian (inputs × outputs elements) checked entry by entry; larger problems
    /// get the dot-product test.
    pub max_jacobian_entries: usize,
    /// How many random directions the dot-product test tries.
    pub directions: usize,
    /// The seed of the dot-product test's random vectors.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: 1e-6,
            abs_tol: 1e-7,
            rel_tol: 1e-6,
            max_jacobian_entries: 1 << 16,
            directions: 3,
            seed: 0x5EED,
        }
    }
}

/// Which comparison a [`GradcheckReport`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradcheckMethod {
    /// Every entry of the Jacobian compared.
    FullJacobian,
    /// `u · (J v)` against `(Jᵀ u) · v` for random `u`, `v`.
    DotProduct,
}

/// The worst disagreement a check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mismatch {
    /// Which input (in the order given to [`gradcheck()`]); 0 for the dot-product test.
    pub input: usize,
    /// Which element of that input (row-major); 0 for the dot-product test.
    pub element: usize,
    /// Which element of the output (row-major); the direction's number for the dot-product test.
    pub output: usize,
    /// The derivative the tape computed.
    pub analytic: f64,
    /// The derivative finite differences estimate.
    pub numeric: f64,
}

/// What a [`gradcheck()`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// How the gradients were compared.
    pub method: GradcheckMethod,
    /// The largest `|analytic - numeric|`.
    pub max_abs_error: f64,
    /// The largest `|analytic - numeric| / |numeric|` over entries whose numeric value exceeds
    /// the absolute tolerance (smaller ones are judged by the absolute error alone).
    pub max_rel_error: f64,
    /// How many comparisons were made.
    pub checked: usize,
    /// How many were outside the tolerance.
    pub failures: usize,
    /// The failed comparison furthest beyond its tolerance; if all passed, the comparison with
    /// the largest error (`max_abs_error`).
    pub worst: Option<Mismatch>,
}

impl GradcheckReport {
    /// Whether every comparison was within the tolerance.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// `f` records a computation on the tape from the given parameter nodes (one per input, in
/// order) and returns its output node, of any shape. It is called many times, on a cleared tape
/// each time, so it must record the same computation every time.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::{gradcheck, GradcheckOptions};
///
/// let x = array![[0.3, -1.2], [2.0, 0.5]].into_dyn();
/// let report = gradcheck(|t, p| { let y = t.tanh(p[0])?; t.mul(y, p[0]) }, &[x],
///                        &GradcheckOptions::default()).unwrap();
/// assert!(report.passed(), "{report:?}");
/// assert!(report.max_abs_error < 1e-9);
/// ```
pub fn gradcheck<F>(
    f: F,
    inputs: &[ArrayD<f64>],
    options: &GradcheckOptions,
) -> Result<GradcheckReport>
where
    F: FnMut(&mut Tape<f64>, &[NodeId]) -> Result<NodeId>,
{
    check_on(Tape::new(), f, inputs, options)
}

/// Checks a [`CustomOp`]'s vector-Jacobian rule against central finite differences at
/// `inputs` (one array per input of the op): the op is registered once, on the check's own
/// tape, and applied to the inputs at every evaluation.
///
/// ```
/// use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, array};
/// use wengert_tape::{CustomOp, GradcheckOptions, Result, Shape, gradcheck_custom};
///
/// /// `y = x³`, with `dx = 3x²·g`.
/// struct Cube;
/// impl CustomOp<f64> for Cube {
///     fn name(&self) -> &str { "cube" }
///     fn arity(&self) -> usize { 1 }
///     fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> { Ok(*inputs[0]) }
///     fn forward(&self, x: &[ArrayViewD<'_, f64>], mut out: ArrayViewMutD<'_, f64>) -> Result<()> {
///         out.zip_mut_with(&x[0], |o, &x| *o = x * x * x);
///         Ok(())
///     }
///     fn vjp(&self, x: &[ArrayViewD<'_, f64>], _out: ArrayViewD<'_, f64>,
///            g: ArrayViewD<'_, f64>, _input: usize, mut gi: ArrayViewMutD<'_, f64>) {
///         gi.zip_mut_with(&(&g * &x[0].mapv(|x| 3.0 * x * x)), |d, &s| *d += s);
///     }
/// }
///
/// let x: ArrayD<f64> = array![0.5, -1.25].into_dyn();
/// let report = gradcheck_custom(Box::new(Cube), &[x], &GradcheckOptions::default())?;
/// assert!(report.passed(), "{report:?}");
/// # Ok::<(), wengert_tape::Error>(())
/// ```
pub fn gradcheck_custom(
    op: Box<dyn CustomOp<f64>>,
    inputs: &[ArrayD<f64>],
    options: &GradcheckOptions,
) -> Result<GradcheckReport> {
    let mut tape = Tape::new();
    let id = tape.register_custom(op);
    check_on(tape, |t, params| t.custom(id, params), inputs, options)
}

/// [`gradcheck()`] on a given tape (which may hold registered custom ops).
fn check_on<F>(
    mut tape: Tape<f64>,
    mut f: F,
    inputs: &[ArrayD<f64>],
    options: &GradcheckOptions,
) -> Result<GradcheckReport>
where
    F: FnMut(&mut Tape<f64>, &[NodeId]) -> Result<NodeId>,
{
    let (params, out) = record(&mut tape, &mut f, inputs)?;
    let n_out = tape.shape(out)?.numel();
    let n_in: usize = inputs.iter().map(ArrayD::len).sum();
    let mut tally = Tally::new(*options);
    if n_in.saturating_mul(n_out) <= options.max_jacobian_entries {
        // Rows of the Jacobian by reverse sweeps, one per output element.
        let mut analytic = vec![vec![0.0; n_in]; n_out];
        let mut seed = ArrayD::<f64>::zeros(IxDyn(tape.shape(out)?.dims()));
        for (k, row) in analytic.iter_mut().enumerate() {
            seed.fill(0.0);
            seed.as_slice_mut().expect("standard layout")[k] = 1.0;
            let grads = tape.backward_with_seed(out, seed.view())?;
            let mut j = 0;
            for &p in &params {
                for &g in grads.data(p).expect("parameters always get a gradient") {
                    row[j] = g;
                    j += 1;
                }
            }
        }
        // Columns by central differences, one per input element.
        let mut j = 0;
        for (input, x) in inputs.iter().enumerate() {
            for element in 0..x.len() {
                let column =
                    central_difference(&mut tape, &mut f, inputs, options.step, |which, d| {
                        if which == input {
                            d[element] = 1.0;
                        }
                    })?;
                for (output, &numeric) in column.iter().enumerate() {
                    tally.compare(Mismatch {
                        input,
                        element,
                        output,
                        analytic: analytic[output][j],
                        numeric,
                    });
                }
                j += 1;
            }
        }
        Ok(tally.report(GradcheckMethod::FullJacobian))
    } else {
        let mut rng = SplitMix64(options.seed);
        for direction in 0..options.directions {
            let u: Vec<f64> = (0..n_out).map(|_| rng.uniform()).collect();
            let v: Vec<Vec<f64>> = inputs
                .iter()
                .map(|x| (0..x.len()).map(|_| rng.uniform()).collect())
                .collect();
            let (params, out) = record(&mut tape, &mut f, inputs)?;
            let seed = ArrayViewD::from_shape(IxDyn(tape.shape(out)?.dims()), &u)
                .expect("sized to the output");
            let grads = tape.backward_with_seed(out, seed)?;
            let analytic: f64 = params
                .iter()
                .zip(&v)
                .map(|(&p, vp)| dot(grads.data(p).expect("parameters always get a gradient"), vp))
                .sum();
            let jv = central_difference(&mut tape, &mut f, inputs, options.step, |which, d| {
                d.copy_from_slice(&v[which]);
            })?;
            let numeric = dot(&jv, &u);
            tally.compare(Mismatch {
                input: 0,
                element: 0,
                output: direction,
                analytic,
                numeric,
            });
        }
        Ok(tally.report(GradcheckMethod::DotProduct))
    }
}

/// Records `f` on a cleared tape with `inputs` as parameters.
fn record<F>(
    tape: &mut Tape<f64>,
    f: &mut F,
    inputs: &[ArrayD<f64>],
) -> Result<(Vec<NodeId>, NodeId)>
where
    F: FnMut(&mut Tape<f64>, &[NodeId]) -> Result<NodeId>,
{
    tape.clear();
    let params = inputs
        .iter()
        .map(|x| tape.parameter(x))
        .collect::<Result<Vec<_>>>()?;
    let out = f(tape, &params)?;
    Ok((params, out))
}

/// `(f(x + h·d) - f(x - h·d)) / 2h` for the direction `d` that `direction` writes, input by
/// input (it receives the input's number and a zeroed buffer of its size).
fn central_difference<F>(
    tape: &mut Tape<f64>,
    f: &mut F,
    inputs: &[ArrayD<f64>],
    h: f64,
    mut direction: impl FnMut(usize, &mut [f64]),
) -> Result<Vec<f64>>
where
    F: FnMut(&mut Tape<f64>, &[NodeId]) -> Result<NodeId>,
{
    let mut plus = Vec::with_capacity(inputs.len());
    let mut minus = Vec::with_capacity(inputs.len());
    for (which, x) in inputs.iter().enumerate() {
        let mut d = vec![0.0; x.len()];
        direction(which, &mut d);
        let x = x.as_standard_layout();
        let base = x.as_slice().expect("standard layout");
        let shift = |sign: f64| -> ArrayD<f64> {
            let data = base
                .iter()
                .zip(&d)
                .map(|(&a, &b)| a + sign * h * b)
                .collect();
            ArrayD::from_shape_vec(x.raw_dim(), data).expect("same shape")
        };
        plus.push(shift(1.0));
        minus.push(shift(-1.0));
    }
    let (_, out) = record(tape, f, &plus)?;
    let f_plus = tape.data(out)?.to_vec();
    let (_, out) = record(tape, f, &minus)?;
    let f_minus = tape.data(out)?;
    Ok(f_plus
        .iter()
        .zip(f_minus)
        .map(|(&a, &b)| (a - b) / (2.0 * h))
        .collect())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Running totals of the comparisons.
struct Tally {
    options: GradcheckOptions,
    report: GradcheckReport,
    /// The failed comparison furthest beyond its tolerance, with its excess.
    worst_failure: Option<(f64, Mismatch)>,
    /// The comparison with the largest error, with that error.
    largest: Option<(f64, Mismatch)>,
}

impl Tally {
    fn new(options: GradcheckOptions) -> Tally {
        Tally {
            options,
            report: GradcheckReport {
                method: GradcheckMethod::FullJacobian,
                max_abs_error: 0.0,
                max_rel_error: 0.0,
                checked: 0,
                failures: 0,
                worst: None,
            },
            worst_failure: None,
            largest: None,
        }
    }

    fn compare(&mut self, m: Mismatch) {
        let err = (m.analytic - m.numeric).abs();
        let allowed = self.options.abs_tol + self.options.rel_tol * m.numeric.abs();
        let r = &mut self.report;
        r.checked += 1;
        // A NaN on either side is a failure, never silently "within tolerance".
        let failed = err.is_nan() || err > allowed;
        if failed {
            r.failures += 1;
        }
        r.max_abs_error = r
            .max_abs_error
            .max(if err.is_nan() { f64::INFINITY } else { err });
        if m.numeric.abs() > self.options.abs_tol {
            r.max_rel_error = r.max_rel_error.max(err / m.numeric.abs());
        }
        let err = if err.is_nan() { f64::INFINITY } else { err };
        if failed && self.worst_failure.is_none_or(|(e, _)| err - allowed > e) {
            self.worst_failure = Some((err - allowed, m));
        }
        if self.largest.is_none_or(|(e, _)| err > e) {
            self.largest = Some((err, m));
        }
    }

    fn report(mut self, method: GradcheckMethod) -> GradcheckReport {
        self.report.method = method;
        self.report.worst = self.worst_failure.or(self.largest).map(|(_, m)| m);
        self.report
    }
}

/// A small, fast, seeded generator (SplitMix64) for the dot-product test's directions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_wrong_gradient_fails() {
        // Detach hides x from the tape's view of the second factor, so the analytic gradient of
        // x·x comes out as x instead of 2x: the check must notice.
        let x = array![0.5, -1.5].into_dyn();
        let report = gradcheck(
            |t, p| {
                let stopped = t.detach(p[0])?;
                t.mul(p[0], stopped)
            },
            &[x],
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert!(!report.passed());
        assert_eq!(report.failures, 2);
        assert!((report.max_abs_error - 1.5).abs() < 1e-6);
        // The worst is the element whose error is largest: x = -1.5, analytic -1.5, numeric -3.
        let worst = report.worst.unwrap();
        assert_eq!(worst.element, 1);
        assert!((worst.numeric + 3.0).abs() < 1e-6);
    }

    #[test]
    fn worst_is_the_largest_error_when_every_comparison_passes() {
        // Errors of a passing check are rounding noise; the reported worst must be the entry
        // with the largest of them (the old tally kept the least negative "excess", which
        // favours small-magnitude entries with a tight tolerance instead).
        let x = array![0.1, -3.0, 7.5, 0.02].into_dyn();
        let report = gradcheck(|t, p| t.exp(p[0]), &[x], &GradcheckOptions::default()).unwrap();
        assert!(report.passed(), "{report:?}");
        let worst = report.worst.unwrap();
        assert_eq!(
            (worst.analytic - worst.numeric).abs(),
            report.max_abs_error,
            "{report:?}"
        );
    }

    #[test]
    fn a_custom_ops_rule_is_checked_on_the_checks_own_tape() {
        use ndarray::{ArrayViewD, ArrayViewMutD};
        use wengert_ops::Shape;

        /// `y = x²`, with a VJP that multiplies by `slope·x` (right for a slope of 2).
        struct Square {
            slope: f64,
        }
        impl CustomOp<f64> for Square {
            fn name(&self) -> &str {
                "square"
            }
            fn arity(&self) -> usize {
                1
            }
            fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
                Ok(*inputs[0])
            }
            fn forward(
                &self,
                x: &[ArrayViewD<'_, f64>],
                mut out: ArrayViewMutD<'_, f64>,
            ) -> Result<()> {
                out.zip_mut_with(&x[0], |o, &x| *o = x * x);
                Ok(())
            }
            fn vjp(
                &self,
                x: &[ArrayViewD<'_, f64>],
                _out: ArrayViewD<'_, f64>,
                g: ArrayViewD<'_, f64>,
                _input: usize,
                mut gi: ArrayViewMutD<'_, f64>,
            ) {
                gi.zip_mut_with(&(&g * &x[0] * self.slope), |d, &s| *d += s);
            }
        }
        let x = array![0.5, -1.5, 2.0].into_dyn();
        let options = GradcheckOptions::default();
        let right = gradcheck_custom(
            Box::new(Square { slope: 2.0 }),
            std::slice::from_ref(&x),
            &options,
        );
        assert!(right.unwrap().passed());
        let wrong = gradcheck_custom(Box::new(Square { slope: 3.0 }), &[x], &options).unwrap();
        assert_eq!(wrong.failures, 3, "{wrong:?}");
        // The worst is the largest input's entry: analytic 6, numeric 4.
        let worst = wrong.worst.unwrap();
        assert_eq!(worst.element, 2);
        assert!((worst.analytic - 6.0).abs() < 1e-9 && (worst.numeric - 4.0).abs() < 1e-6);
    }

    #[test]
    fn the_dot_product_test_runs_on_large_inputs() {
        let x = ArrayD::from_shape_fn(IxDyn(&[40, 40]), |ix| (ix[0] as f64 - ix[1] as f64) / 40.0);
        let options = GradcheckOptions {
            max_jacobian_entries: 100,
            ..GradcheckOptions::default()
        };
        let report = gradcheck(|t, p| t.sigmoid(p[0]), &[x], &options).unwrap();
        assert_eq!(report.method, GradcheckMethod::DotProduct);
        assert_eq!(report.checked, 3);
        assert!(report.passed(), "{report:?}");
    }
}
