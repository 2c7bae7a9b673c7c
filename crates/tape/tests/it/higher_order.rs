//! Higher-order gradients against closed forms: tanh'' , the Hessian of a quadratic form and of
//! softmax cross-entropy, a JVP against the Jacobian, and a gradient penalty whose gradient is
//! checked against finite differences and which trains.

use ndarray::{Array2, ArrayD, IxDyn, array};
use wengert_tape::{GradcheckOptions, NodeId, Result, Tape, gradcheck};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn the_second_derivative_of_tanh_is_minus_two_tanh_times_its_derivative() -> Result<()> {
    let xs = [-2.0, -0.7, 0.0, 0.3, 1.9];
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ndarray::arr1(&xs))?;
    let y = tape.tanh(x)?;
    let loss = tape.sum(y)?;
    let d1 = tape.record_grad(loss, &[x])?[0];
    let d1_sum = tape.sum(d1)?;
    let d2 = tape.record_grad(d1_sum, &[x])?[0];
    for (&x, &d2) in xs.iter().zip(tape.data(d2)?) {
        let t = x.tanh();
        let expected = -2.0 * t * (1.0 - t * t);
        assert!(close(d2, expected, 1e-14), "{x}: {d2} vs {expected}");
    }
    Ok(())
}

#[test]
fn the_hessian_of_a_quadratic_form_is_a_plus_a_transposed() -> Result<()> {
    let a = array![[1.0, 2.0, -1.0], [0.5, -3.0, 4.0], [2.5, 0.0, 1.5]];
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[0.3], [-1.2], [2.0]])?;
    let an = tape.input(a.clone())?;
    let ax = tape.matmul(an, x)?;
    let xt = tape.transpose(x)?;
    let q = tape.matmul(xt, ax)?;
    let loss = tape.sum(q)?;
    let h = tape.hessian(loss, x)?;
    let expected = &a + &a.t();
    assert!(
        h.iter().zip(&expected).all(|(&h, &e)| close(h, e, 1e-14)),
        "{h} vs {expected}"
    );
    Ok(())
}

#[test]
fn the_hessian_of_softmax_cross_entropy_is_diag_p_minus_p_p_transposed_over_the_batch() -> Result<()>
{
    let z = array![[0.5, -1.0, 2.0, 0.1], [1.5, 0.2, -0.3, -2.0]];
    let (batch, classes) = z.dim();
    let mut tape = Tape::<f64>::new();
    let zn = tape.parameter(z.clone())?;
    let labels = tape.labels(&[2, 0])?;
    let loss = tape.cross_entropy(zn, labels)?;
    let h = tape.hessian(loss, zn)?;
    let mut expected = Array2::<f64>::zeros((batch * classes, batch * classes));
    for b in 0..batch {
        let row = z.row(b);
        let m = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        for i in 0..classes {
            for j in 0..classes {
                let diag = if i == j { p[i] } else { 0.0 };
                expected[[b * classes + i, b * classes + j]] = (diag - p[i] * p[j]) / batch as f64;
            }
        }
    }
    assert!(
        h.iter()
            .zip(&expected)
            .all(|(&h, &e)| (h - e).abs() < 1e-15),
        "{h} vs {expected}"
    );
    Ok(())
}

#[test]
fn hvp_and_jvp_match_the_hessian_and_the_jacobian() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![[0.4, -0.3], [0.2, 0.9], [-0.5, 0.1]])?;
    let x = tape.input(array![[1.0, 2.0, -1.0], [0.5, -0.5, 1.5]])?;
    let xw = tape.matmul(x, w)?;
    let y = tape.tanh(xw)?;
    let sq = tape.square(y)?;
    let loss = tape.sum(sq)?;
    let v = array![[1.0, 0.5], [-2.0, 0.0], [0.25, 3.0]];
    let vn = tape.input(v.clone())?;
    let hv = tape.hvp(loss, &[w], &[vn])?[0];
    let h = tape.hessian(loss, w)?;
    let expected = h.dot(&v.clone().into_shape_with_order(6).unwrap());
    for (&a, &e) in tape.data(hv)?.iter().zip(&expected) {
        assert!(close(a, e, 1e-13), "{a} vs {e}");
    }
    let jv = tape.jvp(y, &[w], &[vn])?;
    let j = tape.jacobian(y, w)?;
    let expected = j.dot(&v.into_shape_with_order(6).unwrap());
    for (&a, &e) in tape.data(jv)?.iter().zip(&expected) {
        assert!(close(a, e, 1e-13), "{a} vs {e}");
    }
    Ok(())
}

/// `mse(tanh(x·w), y) + λ·|∇ₓ mse|²`: the penalty of WGAN-GP and of input-gradient
/// regularisation.
fn penalised(tape: &mut Tape<f64>, w: NodeId) -> Result<(NodeId, NodeId)> {
    let x = tape.input(array![[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]])?;
    tape.retain_grad(x)?;
    let y = tape.input(array![[1.0], [-0.5], [0.25]])?;
    let xw = tape.matmul(x, w)?;
    let h = tape.tanh(xw)?;
    let data = tape.mse(h, y)?;
    let gx = tape.record_grad(data, &[x])?[0];
    let sq = tape.square(gx)?;
    let norm = tape.sum(sq)?;
    let penalty = tape.mul_scalar(norm, 0.5)?;
    Ok((tape.add(data, penalty)?, penalty))
}

#[test]
fn a_gradient_penalty_has_the_gradient_finite_differences_give_and_trains() -> Result<()> {
    let w0 = ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![0.8, -0.6]).unwrap();
    let report = gradcheck(
        |tape, params| Ok(penalised(tape, params[0])?.0),
        std::slice::from_ref(&w0),
        &GradcheckOptions::default(),
    )?;
    assert!(report.passed(), "{report:?}");

    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(w0)?;
    let mark = tape.mark();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..50 {
        let (loss, _) = penalised(&mut tape, w)?;
        last = tape.item(loss)?;
        first.get_or_insert(last);
        tape.backward(loss)?;
        let g = tape.grad(w).unwrap().to_owned();
        let next = &tape.value(w)?.to_owned() - &(g * 0.5);
        tape.set_value(w, next.view())?;
        tape.rewind(mark)?;
    }
    let first = first.unwrap();
    assert!(last < 0.5 * first, "{first} -> {last}");
    Ok(())
}

/// `y = x³` with its VJP both as numbers and recorded with built-in ops.
struct Cube;

impl wengert_tape::CustomOp<f64> for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn arity(&self) -> usize {
        1
    }
    fn output_shape(&self, inputs: &[&wengert_tape::Shape]) -> Result<wengert_tape::Shape> {
        Ok(*inputs[0])
    }
    fn forward(
        &self,
        inputs: &[ndarray::ArrayViewD<'_, f64>],
        mut out: ndarray::ArrayViewMutD<'_, f64>,
    ) -> Result<()> {
        out.zip_mut_with(&inputs[0], |y, &x| *y = x * x * x);
        Ok(())
    }
    fn vjp(
        &self,
        inputs: &[ndarray::ArrayViewD<'_, f64>],
        _output: ndarray::ArrayViewD<'_, f64>,
        grad_output: ndarray::ArrayViewD<'_, f64>,
        _input_index: usize,
        mut grad_input: ndarray::ArrayViewMutD<'_, f64>,
    ) {
        ndarray::Zip::from(&mut grad_input)
            .and(&inputs[0])
            .and(&grad_output)
            .for_each(|gx, &x, &gy| *gx += gy * 3.0 * x * x);
    }
    fn record_vjp(
        &self,
        recorder: &mut dyn wengert_tape::VjpRecorder<f64>,
        inputs: &[wengert_tape::RecordedNode],
        _output: wengert_tape::RecordedNode,
        grad_output: wengert_tape::RecordedNode,
        _input_index: usize,
    ) -> Result<wengert_tape::RecordedNode> {
        use wengert_tape::{BinaryOp, Op, UnaryOp};
        let x = inputs[0];
        let sq = recorder.record(Op::Binary(BinaryOp::Mul), &[x, x])?;
        let three_sq = recorder.record(Op::Unary(UnaryOp::MulScalar(3.0)), &[sq])?;
        recorder.record(Op::Binary(BinaryOp::Mul), &[grad_output, three_sq])
    }
}

#[test]
fn a_custom_op_with_a_recorded_vjp_is_differentiated_twice() -> Result<()> {
    // d²/dx² Σ x³ = 6x, and through a fan-out (the op used twice) 12x.
    let mut tape = Tape::<f64>::new();
    let cube = tape.register_custom(Box::new(Cube));
    let x = tape.parameter(array![0.5, -2.0, 3.0])?;
    let y1 = tape.custom(cube, &[x])?;
    let y2 = tape.custom(cube, &[x])?;
    let y = tape.add(y1, y2)?;
    let loss = tape.sum(y)?;
    let h = tape.hessian(loss, x)?;
    assert_eq!(h, Array2::from_diag(&array![6.0, -24.0, 36.0]));
    // And the second derivative through it against finite differences of the first.
    let x0 = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.5, -2.0, 3.0]).unwrap();
    let report = gradcheck(
        |tape, params| {
            let cube = tape.register_custom(Box::new(Cube));
            let y = tape.custom(cube, &[params[0]])?;
            let t = tape.tanh(y)?;
            let loss = tape.sum(t)?;
            let g = tape.record_grad(loss, &[params[0]])?[0];
            let sq = tape.square(g)?;
            tape.sum(sq)
        },
        std::slice::from_ref(&x0),
        &GradcheckOptions::default(),
    )?;
    assert!(report.passed(), "{report:?}");
    Ok(())
}

#[test]
fn record_grad_refuses_what_has_no_gradient_and_misfit_seeds() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let data = tape.input(array![1.0, 2.0])?;
    let w = tape.parameter(array![0.5, -0.5])?;
    let y = tape.mul(data, w)?;
    let loss = tape.sum(y)?;
    // The data was not asked for its gradient, so none flows to it (as PyTorch refuses).
    let err = tape.record_grad(loss, &[data]).unwrap_err();
    assert!(
        matches!(err, wengert_tape::Error::NoGradient { .. }),
        "{err}"
    );
    // A loss from data alone has nothing to differentiate.
    let from_data = tape.sum(data)?;
    let err = tape.record_grad(from_data, &[w]).unwrap_err();
    assert!(
        matches!(err, wengert_tape::Error::NoGradient { .. }),
        "{err}"
    );
    // A cotangent must have the output's shape.
    let seed = tape.input(array![1.0, 2.0, 3.0])?;
    let err = tape.record_vjp(y, seed, &[w]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record_vjp: shapes [2] and [3] do not fit together"
    );
    // A parameter the loss does not use gets zeros, as `backward` gives it.
    let unused = tape.parameter(array![[1.0]])?;
    let g = tape.record_grad(loss, &[w, unused])?;
    assert_eq!(tape.data(g[0])?, &[1.0, 2.0]);
    assert_eq!(tape.data(g[1])?, &[0.0]);
    Ok(())
}
