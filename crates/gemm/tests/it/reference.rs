//! Random shapes up to 96 in every layout of every operand, f32 and f64, against the reference.

use ndarray::Array2;
use proptest::prelude::*;
use wengert_gemm::GemmScalar;

use crate::common::{Layout, Stored, assert_close, each_kernel, gemm, layout, noise, wide};

#[derive(Debug, Clone)]
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    layouts: [Layout; 3],
    alpha: f32,
    beta: f32,
    seed: u64,
}

fn problem() -> impl Strategy<Value = Problem> {
    let scalar = prop::sample::select(vec![0.0f32, 1.0, -1.0, 0.5, 2.5]);
    (
        1..=96usize,
        1..=96usize,
        1..=96usize,
        [layout(), layout(), layout()],
        scalar.clone(),
        scalar,
        any::<u64>(),
    )
        .prop_map(|(m, k, n, layouts, alpha, beta, seed)| Problem {
            m,
            k,
            n,
            layouts,
            alpha,
            beta,
            seed,
        })
}

/// The problem on every kernel this CPU has.
fn check<E: GemmScalar + From<f32> + Into<f64>>(p: &Problem, unit_roundoff: f64) {
    each_kernel(|| check_on_kernel::<E>(p, unit_roundoff));
}

fn check_on_kernel<E: GemmScalar + From<f32> + Into<f64>>(p: &Problem, unit_roundoff: f64) {
    let a = Stored::<E>::new(p.m, p.k, p.layouts[0], noise(p.seed));
    let b = Stored::<E>::new(p.k, p.n, p.layouts[1], noise(p.seed + 1));
    let mut c = Stored::<E>::new(p.m, p.n, p.layouts[2], noise(p.seed + 2));
    let c0: Array2<f64> = c.view().mapv(wide);
    let (alpha, beta) = (E::from(p.alpha), E::from(p.beta));
    gemm(alpha, a.view(), b.view(), beta, c.view_mut()).expect("the shapes fit");
    assert_close(
        p.alpha.into(),
        a.view(),
        b.view(),
        p.beta.into(),
        &c0,
        c.view(),
        unit_roundoff,
    );
}

proptest! {
    // 128 cases of at most 96³ multiply-adds each (and a naive reference as large): about a
    // second in a debug build.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn f32_products_match_the_reference(p in problem()) {
        check::<f32>(&p, f32::EPSILON as f64 / 2.0);
    }

    #[test]
    fn f64_products_match_the_reference(p in problem()) {
        check::<f64>(&p, f64::EPSILON / 2.0);
    }
}

/// Every combination of layouts, on one shape that has edge tiles in both directions.
#[test]
fn every_layout_combination_matches_the_reference() {
    for la in crate::common::LAYOUTS {
        for lb in crate::common::LAYOUTS {
            for lc in crate::common::LAYOUTS {
                let p = Problem {
                    m: 23,
                    k: 37,
                    n: 29,
                    layouts: [la, lb, lc],
                    alpha: 0.5,
                    beta: -1.0,
                    seed: 7,
                };
                check::<f32>(&p, f32::EPSILON as f64 / 2.0);
                check::<f64>(&p, f64::EPSILON / 2.0);
            }
        }
    }
}
