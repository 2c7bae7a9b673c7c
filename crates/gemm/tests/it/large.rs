//! Shapes that cross every blocking boundary (k in equal blocks of at most 512 for f32 and 256
//! for f64; MC = 144 and NC = 1024 for f32, MC = 72 and NC = 1024 for f64), large enough to run
//! in parallel.

use ndarray::Array2;
use wengert_gemm::GemmScalar;

use crate::common::{Layout, Stored, assert_close, each_kernel, gemm, noise, wide};

fn check<E: GemmScalar + From<f32> + Into<f64>>(
    (m, k, n): (usize, usize, usize),
    layouts: [Layout; 3],
    unit_roundoff: f64,
) {
    let a = Stored::<E>::new(m, k, layouts[0], noise(11));
    let b = Stored::<E>::new(k, n, layouts[1], noise(12));
    let mut c = Stored::<E>::new(m, n, layouts[2], noise(13));
    let c0: Array2<f64> = c.view().mapv(wide);
    gemm(E::from(1.5), a.view(), b.view(), E::from(0.5), c.view_mut()).expect("shapes fit");
    assert_close(1.5, a.view(), b.view(), 0.5, &c0, c.view(), unit_roundoff);
}

#[test]
fn f32_across_every_block_boundary() {
    each_kernel(|| {
        use Layout::*;
        // Three blocks of k, two of rows, three of columns (the last partial).
        check::<f32>(
            (245, 1100, 2070),
            [RowMajor, RowMajor, RowMajor],
            f32::EPSILON as f64 / 2.0,
        );
        // The VJP's layouts: a transposed a, a transposed b, and a column-major c.
        check::<f32>(
            (130, 600, 530),
            [Transposed, RowMajor, RowMajor],
            f32::EPSILON as f64 / 2.0,
        );
        check::<f32>(
            (130, 600, 530),
            [RowMajor, Transposed, Transposed],
            f32::EPSILON as f64 / 2.0,
        );
        check::<f32>(
            (7, 520, 700),
            [Step2, Reversed, Step2],
            f32::EPSILON as f64 / 2.0,
        );
    });
}

#[test]
fn f64_across_every_block_boundary() {
    each_kernel(|| {
        use Layout::*;
        check::<f64>(
            (125, 520, 1050),
            [RowMajor, RowMajor, RowMajor],
            f64::EPSILON / 2.0,
        );
        check::<f64>(
            (200, 270, 90),
            [Transposed, Transposed, Reversed],
            f64::EPSILON / 2.0,
        );
        check::<f64>(
            (70, 300, 50),
            [RowsReversed, Step2, RowsReversed],
            f64::EPSILON / 2.0,
        );
    });
}
