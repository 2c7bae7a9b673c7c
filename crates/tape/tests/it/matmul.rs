//! `Op::MatMul` through the tape against a naive product, forward and both VJPs, on shapes
//! 1..=96 that cross the parallel split's row blocks and matrixmultiply's tiles.

use ndarray::{Array2, ArrayD, Ix2};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use wengert_tape::Tape;

use crate::util::{Rng, naive_matmul};

/// Random shapes per run: each case is three naive products of up to 96³ multiply-adds (about
/// 15 ms unoptimised), so 64 cases take about a second.
const CASES: u32 = 64;

fn two(a: ArrayD<f64>) -> Array2<f64> {
    a.into_dimensionality::<Ix2>().expect("a matrix")
}

/// Checks `C = A·B`, `dA = dC·Bᵀ` and `dB = Aᵀ·dC` exactly (small integers make every sum exact).
fn check(m: usize, k: usize, n: usize, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let a = two(rng.integers(&[m, k]));
    let b = two(rng.integers(&[k, n]));
    let dc = two(rng.integers(&[m, n]));
    let mut tape = Tape::<f64>::new();
    let ia = tape.parameter(&a).unwrap();
    let ib = tape.parameter(&b).unwrap();
    let c = tape.matmul(ia, ib).unwrap();
    prop_assert_eq!(
        tape.value_owned(c).unwrap(),
        naive_matmul(a.view(), b.view()).into_dyn()
    );
    let grads = tape.backward_with_seed(c, dc.view().into_dyn()).unwrap();
    let da = naive_matmul(dc.view(), b.t());
    let db = naive_matmul(a.t(), dc.view());
    prop_assert_eq!(grads.get(ia).unwrap().to_owned(), da.into_dyn());
    prop_assert_eq!(grads.get(ib).unwrap().to_owned(), db.into_dyn());
    Ok(())
}

#[test]
fn matmul_on_the_tape_matches_a_naive_product() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(CASES));
    let shapes = (1..=96usize, 1..=96usize, 1..=96usize, any::<u64>());
    runner
        .run(&shapes, |(m, k, n, seed)| check(m, k, n, seed))
        .unwrap();
}

#[test]
fn matmul_on_the_tape_at_the_block_boundaries() {
    // The parallel split starts at 2¹⁸ multiply-adds and cuts rows into blocks of 16 or more
    // (multiples of 8); matrixmultiply's f64 tiles are 8×4 (or 4×8) with k panels of 256.
    for (m, k, n) in [
        (96, 96, 96),
        (65, 64, 64),
        (64, 65, 63),
        (17, 96, 95),
        (96, 1, 96),
    ] {
        check(m, k, n, (m * 10_000 + k * 100 + n) as u64).unwrap();
    }
}
