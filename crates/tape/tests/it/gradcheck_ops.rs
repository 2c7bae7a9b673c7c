//! Every op's VJP against central finite differences in f64, on drawn shapes and values, within
//! the default tolerance of 1e-7 + 1e-6·|numeric|.

use proptest::test_runner::TestCaseError;

use crate::cases::Problem;

fn check(p: &Problem) -> Result<(), TestCaseError> {
    let report = p
        .gradcheck()
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", p.case.name())))?;
    proptest::prop_assert!(
        report.passed(),
        "{} on {:?}: {report:?}",
        p.case.name(),
        p.inputs
            .iter()
            .map(|x| x.shape().to_vec())
            .collect::<Vec<_>>()
    );
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
