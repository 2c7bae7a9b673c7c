//! The f32 path against the f64 path: the same (f32-exact) inputs through every op in both
//! element types, values and gradients compared within a tolerance fit for f32.

use proptest::test_runner::TestCaseError;

use wengert_tape::{BinaryOp, UnaryOp};

use crate::cases::Problem;
use crate::strategies as s;

/// `|f32 - f64| <= TOL · (1 + |f64|)`: about 400 f32 ulps, room for the rounding of sums over
/// a few hundred elements, and orders of magnitude below what a wrong rule produces.
const TOL: f64 = 5e-5;

fn compare(what: &str, p: &Problem, single: &[f64], double: &[f64]) -> Result<(), TestCaseError> {
    proptest::prop_assert_eq!(single.len(), double.len());
    for (i, (&s, &d)) in single.iter().zip(double).enumerate() {
        proptest::prop_assert!(
            (s - d).abs() <= TOL * (1.0 + d.abs()),
            "{} {what}[{i}]: f32 gives {s}, f64 gives {d}",
            p.case.name()
        );
    }
    Ok(())
}

fn check(p: &Problem) -> Result<(), TestCaseError> {
    let fail = |e: wengert_tape::Error| TestCaseError::fail(format!("{}: {e}", p.case.name()));
    let (value32, grads32) = p.evaluate::<f32>().map_err(fail)?;
    let (value64, grads64) = p.evaluate::<f64>().map_err(fail)?;
    compare("value", p, &value32, &value64)?;
    for (k, (g32, g64)) in grads32.iter().zip(&grads64).enumerate() {
        compare(&format!("gradient of input {k}"), p, g32, g64)?;
    }
    Ok(())
}

macro_rules! precision_tests {
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

for_each_op!(precision_tests);

#[test]
fn every_unary_op() {
    for op in UnaryOp::ALL {
        s::run(s::unary_op(op), check);
    }
}

#[test]
fn every_binary_op() {
    for op in BinaryOp::ALL {
        s::run(s::binary_op(op), check);
    }
}
