//! gradgradcheck: every op's *recorded* gradient ([`Tape::record_grad`]) differentiated again,
//! against central finite differences of the first derivative, in f64 on drawn shapes and
//! values, once as recorded and once with the op applied twice to the same operands (fan-out).
//!
//! The checked function is `s(p) = Σᵢ ⟨∇ₚᵢ L, vᵢ⟩` with `L = Σ c·op(p)²` (the square keeps the
//! second derivative of a linear op's loss non-zero, so its recorded VJP is exercised too): `s`
//! is a first derivative, and the harness compares its gradient, swept back through the
//! recorded nodes, with finite differences of `s` itself.
//!
//! `cargo test -p wengert-tape --test it gradgrad -- --nocapture` prints the largest error per op.

use std::cell::Cell;

use ndarray::{ArrayD, IxDyn};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use wengert_tape::{
    BinaryOp, Distance, GradcheckOptions, GradcheckReport, NodeId, ReduceOp, Result, Tape, UnaryOp,
    gradcheck,
};

use crate::cases::{Case, Problem, cotangent};
use crate::strategies as s;

/// Fewer draws than the first-order checks: each records three sweeps per evaluation.
const CASES: u32 = 24;

/// A fixed direction for operand `k`, different from the loss's weights and from the other
/// operands' (equal directions would make `mse`'s `s` identically zero: its gradients in the
/// prediction and the target are opposite).
fn direction(shape: &[usize], k: usize) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 5 + k * 4) % 9) as f64 / 4.0 - 0.875)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("sized to the shape")
}

/// `Σᵢ ⟨∇ₚᵢ Σ c·out², vᵢ⟩` for the op recorded `times` times and summed.
fn first_derivative(
    p: &Problem,
    tape: &mut Tape<f64>,
    params: &[NodeId],
    times: usize,
) -> Result<NodeId> {
    let mut custom = None;
    let mut out = p.case.record(tape, params, &mut custom)?;
    for _ in 1..times {
        let again = p.case.record(tape, params, &mut custom)?;
        out = tape.add(out, again)?;
    }
    let c = tape.input(cotangent::<f64>(&tape.shape(out)?))?;
    let sq = tape.square(out)?;
    let weighted = tape.mul(sq, c)?;
    let loss = tape.sum(weighted)?;
    let grads = tape.record_grad(loss, params)?;
    let mut total = None;
    for (k, (&g, x)) in grads.iter().zip(&p.inputs).enumerate() {
        let v = tape.input(direction(x.shape(), k))?;
        let gv = tape.mul(g, v)?;
        let s = tape.sum(gv)?;
        total = Some(match total {
            Some(t) => tape.add(t, s)?,
            None => s,
        });
    }
    // Plus 0·Σ p: an op whose gradient is a constant (a slice that takes nothing) still gives
    // an `s` that needs a gradient, zero, as finite differences of a constant say.
    let total = total.expect("every op has an operand");
    let anchor = tape.sum(params[0])?;
    let anchor = tape.mul_scalar(anchor, 0.0)?;
    tape.add(total, anchor)
}

/// The largest difference, relative to `1 + |backward's|`, between the recorded gradient of
/// `Σ c·out²` and `backward`'s: gradgradcheck differentiates whatever the recorded rule
/// computes, so this pins that it computes the first-order gradient (infinite if one of the
/// two is NaN and the other is not).
fn recorded_against_backward(p: &Problem, times: usize) -> Result<f64> {
    let mut tape = Tape::<f64>::new();
    let params = p
        .inputs
        .iter()
        .map(|x| tape.parameter(x.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut custom = None;
    let mut out = p.case.record(&mut tape, &params, &mut custom)?;
    for _ in 1..times {
        let again = p.case.record(&mut tape, &params, &mut custom)?;
        out = tape.add(out, again)?;
    }
    let c = tape.input(cotangent::<f64>(&tape.shape(out)?))?;
    let sq = tape.square(out)?;
    let weighted = tape.mul(sq, c)?;
    let loss = tape.sum(weighted)?;
    let recorded = tape
        .record_grad(loss, &params)?
        .iter()
        .map(|&g| tape.data(g).map(<[f64]>::to_vec))
        .collect::<Result<Vec<_>>>()?;
    let grads = tape.backward(loss)?;
    let mut worst = 0.0f64;
    for (&x, mine) in params.iter().zip(&recorded) {
        let first = grads.data(x).expect("parameters always get a gradient");
        for (&r, &b) in mine.iter().zip(first) {
            let diff = if r.is_nan() || b.is_nan() {
                if r.is_nan() == b.is_nan() {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else if r == b {
                0.0
            } else {
                (r - b).abs() / (1.0 + b.abs())
            };
            worst = worst.max(diff);
        }
    }
    Ok(worst)
}

fn gradgradcheck(p: &Problem, times: usize) -> Result<GradcheckReport> {
    gradcheck(
        |tape, params| first_derivative(p, tape, params, times),
        &p.inputs,
        &options(),
    )
}

/// PyTorch's `gradgradcheck` tolerances, tightened: a first derivative differenced numerically
/// carries the rounding of every term of the loss it is taken from (the square weighs large
/// values), so the first-order checks' 1e-7 + 1e-6·|numeric| is below its noise.
fn options() -> GradcheckOptions {
    GradcheckOptions {
        abs_tol: 1e-5,
        rel_tol: 1e-4,
        ..GradcheckOptions::default()
    }
}

/// Runs the check on `CASES` draws, after checking that the recorded gradient is
/// `backward`'s, and returns the largest absolute error seen.
fn run(strategy: proptest::strategy::BoxedStrategy<Problem>) -> (String, f64) {
    let worst = Cell::new(0.0f64);
    let name = Cell::new(String::new());
    let checked = Cell::new(0usize);
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let outcome = runner.run(&strategy, |p| {
        name.set(p.case.name());
        let p = conditioned(p);
        for (how, times) in [("once", 1), ("used twice", 2)] {
            let fail = |e: wengert_tape::Error| {
                TestCaseError::fail(format!("{} {how}: {e}", p.case.name()))
            };
            let apart = recorded_against_backward(&p, times).map_err(fail)?;
            proptest::prop_assert!(
                apart <= 1e-12,
                "{} {how}: the recorded gradient is {apart:e} from backward's",
                p.case.name()
            );
            let report = gradgradcheck(&p, times).map_err(fail)?;
            worst.set(worst.get().max(report.max_abs_error));
            checked.set(checked.get() + report.checked);
            proptest::prop_assert!(
                report.passed(),
                "{} {how} on {:?}: {report:?}",
                p.case.name(),
                p.inputs
                    .iter()
                    .map(|x| x.shape().to_vec())
                    .collect::<Vec<_>>()
            );
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let name = name.take();
    eprintln!(
        "gradgradcheck {name:<24} max |error| {:.2e} over {} comparisons",
        worst.get(),
        checked.get()
    );
    (name, worst.get())
}

/// The draw, moved where finite differences of a first derivative can judge it. For `a^b`:
/// `b = 0` exactly is moved off (the rule gives `a` a zero gradient there, PyTorch's
/// convention, a constant whose own derivative in `b` is 0, not `1/a`; off that point the rule
/// is smooth), and `a` is kept at least 0.5, so that `a^b` stays below 4 for `b >= -2` (at
/// `0.1^-2` the squared loss is so large that its rounding swamps the differences).
fn conditioned(p: Problem) -> Problem {
    if p.case != Case::Binary(BinaryOp::Pow) {
        return p;
    }
    let a = p.inputs[0].mapv(|a| a.max(0.5));
    let b = p.inputs[1].mapv(|b| if b == 0.0 { 0.25 } else { b });
    Problem::new(p.case, vec![a, b])
}

macro_rules! gradgrad_tests {
    ($($name:ident => $strategy:expr,)*) => {
        $(
            #[test]
            fn $name() {
                run($strategy);
            }
        )*
    };
}

gradgrad_tests! {
    matmul => s::matmul(),
    linear => s::linear(),
    sum => s::unary(Case::Sum, s::general()),
    mean => s::unary(Case::Mean, s::general()),
    sum_axis => s::along_axis(false),
    mean_axis => s::along_axis(true),
    reshape => s::reshape(),
    transpose => s::transpose(true),
    transpose_axes => s::transpose(false),
    softmax => s::softmax(Case::Softmax),
    log_softmax => s::softmax(Case::LogSoftmax),
    mse => s::same_shape(Case::Mse, 0..=3),
    cross_entropy => s::cross_entropy(),
    concat => s::concat(),
    stack => s::stack(),
    where_cond => s::where_cond(),
    amax => s::reduction(ReduceOp::Amax, 3),
    amin => s::reduction(ReduceOp::Amin, 3),
    max_dim => s::reduction(ReduceOp::MaxAt, 3),
    min_dim => s::reduction(ReduceOp::MinAt, 3),
    logsumexp => s::reduction(ReduceOp::LogSumExp, 3),
    prod => s::reduction(ReduceOp::Prod, 2),
    var => s::reduction(ReduceOp::Var(1.0), 3),
    var_biased => s::reduction(ReduceOp::Var(0.0), 3),
    std => s::reduction(ReduceOp::Std(1.0), 3),
    std_biased => s::reduction(ReduceOp::Std(0.0), 3),
    norm => s::reduction(ReduceOp::Norm, 3),
    softmax_axis => s::softmax_along(false),
    log_softmax_axis => s::softmax_along(true),
    l1_loss => s::distance_loss(Distance::L1),
    smooth_l1_loss => s::distance_loss(Distance::SmoothL1 { beta: 1.0 }),
    huber_loss => s::distance_loss(Distance::Huber { delta: 0.5 }),
    binary_cross_entropy_with_logits => s::bce_with_logits(),
    nll_loss => s::class_loss(false),
    cross_entropy_with_classes => s::class_loss(true),
    cross_entropy_with_probabilities => s::soft_cross_entropy(),
    squeeze_unsqueeze_flatten => s::reshaping(),
    broadcast_to => s::broadcast_to(),
    narrow => s::narrow(),
    index_select => s::index_select(),
    gather => s::gather(),
    batched_matmul => s::batched_matmul(),
    dropout => s::dropout(),
    slice => s::slice(),
    pad => s::pad(),
    index_add => s::index_add(),
    scatter_add => s::scatter_add(),
    embedding => s::embedding(true),
    layer_norm => s::layer_norm(),
    batch_norm => s::batch_norm(),
    binary_cross_entropy_with_logits_weighted => s::weighted_bce(),
    nll_loss_weighted => s::weighted_class_loss(false),
    cross_entropy_weighted => s::weighted_class_loss(true),
    cross_entropy_weighted_probabilities => s::weighted_soft_cross_entropy(),
    conv2d => s::conv(false),
    conv1d => s::conv(true),
    conv2d_input_grad => s::conv_grad(false),
    conv2d_weight_grad => s::conv_grad(true),
    max_pool2d => s::pool(s::PoolKind::Max),
    avg_pool2d => s::pool(s::PoolKind::Avg),
    adaptive_avg_pool2d => s::pool(s::PoolKind::Adaptive),
    max_pool2d_grad => s::pool_grad(s::PoolKind::Max, false),
    max_pool2d_select => s::pool_grad(s::PoolKind::Max, true),
    avg_pool2d_grad => s::pool_grad(s::PoolKind::Avg, false),
    adaptive_avg_pool2d_grad => s::pool_grad(s::PoolKind::Adaptive, false),
}

#[test]
fn argmax_and_argmin_have_no_gradient_to_differentiate_twice() {
    // Their outputs need no gradient: `record_grad` refuses them as a loss, naming the node.
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(direction(&[2, 3], 0)).expect("a parameter");
    for at in [tape.argmax(x, Some(1), false), tape.argmin(x, None, true)] {
        let at = at.expect("recorded");
        let err = tape.record_grad(at, &[x]).unwrap_err();
        assert!(matches!(err, wengert_tape::Error::NoGradient { id } if id as usize == at.index()));
    }
}

#[test]
fn every_unary_op() {
    for op in UnaryOp::ALL {
        // No gradient flows through these (sign, detach): nothing to differentiate twice.
        if op.has_gradient() {
            run(s::unary_op(op));
        }
    }
}

#[test]
fn every_binary_op() {
    for op in BinaryOp::ALL {
        // No gradient flows through the comparison masks: nothing to differentiate twice.
        if op.has_gradient() {
            run(s::binary_op(op));
        }
    }
}

#[test]
fn a_custom_op_is_refused_by_name_when_differentiated_twice() {
    let p = Problem::new(
        Case::Custom,
        vec![direction(&[3], 0), direction(&[3], 1).mapv(|v| v + 2.0)],
    );
    let err = gradgradcheck(&p, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mul_square: its VJP cannot be recorded as tape ops, so its gradient cannot be differentiated again (use backward for first-order gradients)"
    );
}

/// A kink op at points where it is off (`x = -1`) under `Σ ln f(x)`: there `f = 0`, so the
/// gradient reaching `f` is infinite on the branch its rule does not take. Recorded as a 0/1
/// blend, the select gave `0·∞ = NaN` in the gradient and in the second derivative; as
/// `where_cond` it gives `backward`'s 0, and `-1/x²` where `f(x) = x`.
#[test]
fn an_infinite_branch_not_taken_stays_out_of_recorded_derivatives() -> Result<()> {
    type Kink = fn(&mut Tape<f64>, NodeId) -> Result<NodeId>;
    let kinks: [(&str, Kink); 3] = [
        ("relu", |t, x| t.relu(x)),
        ("clamp", |t, x| t.clamp(x, Some(0.0), None)),
        ("maximum", |t, x| {
            let zero = t.input(ndarray::array![0.0, 0.0, 0.0])?;
            t.maximum(x, zero)
        }),
    ];
    for (name, kink) in kinks {
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(ndarray::array![-1.0, 2.0, 0.5])?;
        let y = kink(&mut tape, x)?;
        let logs = tape.log(y)?;
        let loss = tape.sum(logs)?;
        let dx = tape.record_grad(loss, &[x])?[0];
        let first = tape.data(dx)?.to_vec();
        let dx_sum = tape.sum(dx)?;
        let ddx = tape.record_grad(dx_sum, &[x])?[0];
        let second = tape.data(ddx)?.to_vec();
        let backward = tape.backward(loss)?.data(x).expect("a parameter").to_vec();
        assert_eq!(first, [0.0, 0.5, 2.0], "{name}: first derivative");
        assert_eq!(
            first, backward,
            "{name}: the recorded gradient is backward's"
        );
        assert_eq!(second, [0.0, -0.25, -4.0], "{name}: second derivative");
    }
    Ok(())
}

/// `elu` and `softplus` past `exp`'s overflow (`x = 800`): the branch not taken is `∞·g` (or
/// `∞/∞`), which a blend turned into a NaN gradient; the recorded gradient is now `g`, as
/// `backward`'s.
#[test]
fn elu_and_softplus_past_exp_overflow_have_a_finite_recorded_gradient() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ndarray::array![800.0, -1.0])?;
    let e = tape.elu(x, 1.0)?;
    let s = tape.softplus(x)?;
    let both = tape.add(e, s)?;
    let loss = tape.sum(both)?;
    let dx = tape.record_grad(loss, &[x])?[0];
    let recorded = tape.data(dx)?.to_vec();
    let backward = tape.backward(loss)?.data(x).expect("a parameter").to_vec();
    assert_eq!(recorded, backward);
    assert_eq!(recorded[0], 2.0);
    Ok(())
}
