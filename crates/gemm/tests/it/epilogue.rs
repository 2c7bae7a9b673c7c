//! `gemm_epilogue`: bit-identical to `gemm` followed by a separate bias (+ ReLU) pass, on every
//! path (tiles in place or through a buffer, `b` in place, narrow products computed
//! transposed, the work split by rows or by columns, `k = 0`, `alpha = 0`), on any number of
//! threads; and a bias of the wrong length refused.

use ndarray::Array2;
use wengert_gemm::{Epilogue, EpilogueError, GemmError, GemmScalar, gemm, gemm_epilogue};

use crate::common::{Layout, Stored, noise};

/// `f(alpha·a·b + beta·c)` by `gemm` and a separate pass, and by `gemm_epilogue` on a pool of
/// each size: the debug forms of every element (so that NaN equals NaN and -0 differs from 0).
fn fused_and_separate<E: GemmScalar + From<f32>>(
    (m, k, n): (usize, usize, usize),
    layouts: [Layout; 3],
    (alpha, beta): (f32, f32),
    relu: bool,
) {
    let a = Stored::<E>::new(m, k, layouts[0], noise(31));
    let b = Stored::<E>::new(k, n, layouts[1], noise(32));
    let bias: Vec<E> = (0..n).map(|j| E::from(noise(33)(0, j))).collect();
    let c0 = || Stored::<E>::new(m, n, layouts[2], noise(34));
    let (alpha, beta) = (E::from(alpha), E::from(beta));

    let mut want = c0();
    gemm(alpha, a.view(), b.view(), beta, want.view_mut()).unwrap();
    let mut want = want.view().to_owned();
    for mut row in want.rows_mut() {
        for (x, &b) in row.iter_mut().zip(&bias) {
            let z = *x + b;
            *x = if relu && z <= E::from(0.0) {
                E::from(0.0)
            } else {
                z
            };
        }
    }
    let debug = |x: &Array2<E>| x.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
    let epilogue = if relu {
        Epilogue::BiasRelu(&bias[..])
    } else {
        Epilogue::Bias(&bias[..])
    };
    for threads in [1, 2, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut got = c0();
        pool.install(|| gemm_epilogue(alpha, a.view(), b.view(), beta, got.view_mut(), epilogue))
            .unwrap();
        assert_eq!(
            debug(&got.view().to_owned()),
            debug(&want),
            "{m}x{k}x{n} {layouts:?} relu {relu} on {threads} threads"
        );
    }
}

#[test]
fn the_fused_epilogue_equals_a_separate_pass_on_every_path() {
    use Layout::{RowMajor as R, Step2 as S, Transposed as T};
    let cases = [
        // W2's first layer (split by columns, k in blocks), and its transposed operands.
        ((128, 784, 512), [R, R, R]),
        ((128, 512, 512), [R, T, R]),
        // Tall: split by rows.
        ((700, 64, 40), [T, R, R]),
        // At most 64 rows, `b` row-major: `b` read in place.
        ((40, 200, 400), [R, R, R]),
        // Narrow: computed transposed, the bias along rows then.
        ((128, 512, 10), [R, R, R]),
        ((1024, 512, 10), [R, R, R]),
        // A column-major or stepped `c`: transposed, or through a buffer.
        ((23, 37, 29), [R, R, T]),
        ((23, 37, 29), [T, S, S]),
        // Below the fork threshold, edge tiles in both directions.
        ((7, 5, 9), [R, R, R]),
    ];
    for (shape, layouts) in cases {
        for relu in [false, true] {
            fused_and_separate::<f32>(shape, layouts, (1.0, 0.0), relu);
            fused_and_separate::<f64>(shape, layouts, (0.5, -1.0), relu);
        }
    }
}

#[test]
fn the_epilogue_applies_without_a_product_too() {
    // k = 0 and alpha = 0: c = beta·c, then the bias and the ReLU.
    for (shape, alpha) in [((5, 0, 7), 1.0), ((5, 3, 7), 0.0)] {
        for relu in [false, true] {
            fused_and_separate::<f32>(shape, [Layout::RowMajor; 3], (alpha, 0.5), relu);
        }
    }
}

#[test]
fn nan_passes_through_the_relu() {
    let a = ndarray::array![[f32::NAN, 1.0], [-1.0, -1.0]];
    let b = ndarray::array![[1.0, 1.0], [1.0, 1.0]];
    let mut c = Array2::zeros((2, 2));
    gemm_epilogue(
        1.0,
        a.view(),
        b.view(),
        0.0,
        c.view_mut(),
        Epilogue::BiasRelu(&[0.0, 0.0]),
    )
    .unwrap();
    assert!(c[[0, 0]].is_nan() && c[[0, 1]].is_nan());
    assert_eq!(c.row(1).to_vec(), [0.0, 0.0]);
}

#[test]
fn a_bias_of_the_wrong_length_is_refused_and_c_left_alone() {
    let a = Array2::<f32>::ones((2, 3));
    let b = Array2::<f32>::ones((3, 4));
    let mut c = Array2::<f32>::from_elem((2, 4), 7.0);
    let err = gemm_epilogue(
        1.0,
        a.view(),
        b.view(),
        0.0,
        c.view_mut(),
        Epilogue::Bias(&[1.0; 3]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        EpilogueError::BiasLength {
            bias: 3,
            columns: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "gemm: a bias of 3 values cannot be added to the 4 columns of c"
    );
    assert!(c.iter().all(|&x| x == 7.0));
    let wrong = Array2::<f32>::ones((4, 4));
    let err = gemm_epilogue(
        1.0,
        a.view(),
        wrong.view(),
        0.0,
        c.view_mut(),
        Epilogue::Bias(&[]),
    )
    .unwrap_err();
    let shapes = GemmError {
        a: [2, 3],
        b: [4, 4],
        c: [2, 4],
    };
    assert_eq!(err, EpilogueError::Shapes(shapes));
    assert_eq!(err.to_string(), shapes.to_string());
}
