//! Every op's VJP against central finite differences in f64, on drawn shapes and values, within
//! the default tolerance of 1e-7 + 1e-6·|numeric|: once as recorded, and once with the op
//! applied twice to the same operands (fan-out, so gradients must accumulate).

use proptest::test_runner::TestCaseError;

use wengert_tape::{BinaryOp, UnaryOp};

use crate::cases::Problem;
use crate::strategies as s;

fn check(p: &Problem) -> Result<(), TestCaseError> {
    let single = p.gradcheck();
    let fan_out = p.gradcheck_fan_out();
    for (how, report) in [("once", single), ("used twice", fan_out)] {
        let report =
            report.map_err(|e| TestCaseError::fail(format!("{} {how}: {e}", p.case.name())))?;
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
}

macro_rules! gradcheck_tests {
    ($($name:ident => $strategy:expr,)*) => {
        $(
            #[test]
            fn $name() {
                #[allow(unused_imports)] // not every strategy names a case
                use crate::cases::Case;
                use crate::strategies as s;
                s::run($strategy, check);
            }
        )*
    };
}

for_each_op!(gradcheck_tests);

/// An op through which no gradient flows (`detach`): every input's gradient is exactly zero,
/// whatever finite differences of its value say.
fn check_no_gradient(p: &Problem) -> Result<(), TestCaseError> {
    let (_, grads) = p
        .evaluate::<f64>()
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", p.case.name())))?;
    for g in grads {
        proptest::prop_assert!(g.iter().all(|&v| v == 0.0), "{}: {g:?}", p.case.name());
    }
    Ok(())
}

#[test]
fn every_unary_op() {
    for op in UnaryOp::ALL {
        if op.has_gradient() {
            s::run(s::unary_op(op), check);
        } else {
            s::run(s::unary_op(op), check_no_gradient);
        }
    }
}

#[test]
fn every_binary_op() {
    for op in BinaryOp::ALL {
        if op.has_gradient() {
            s::run(s::binary_op(op), check);
        } else {
            s::run(s::binary_op(op), check_no_gradient);
        }
    }
}
