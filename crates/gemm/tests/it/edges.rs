//! Mismatched shapes, empty dimensions, and the BLAS conventions for alpha and beta of zero.

use ndarray::{Array2, array};
use wengert_gemm::GemmError;

use crate::common::{each_kernel, gemm};

#[test]
fn a_mismatched_inner_dimension_is_an_error_naming_the_shapes() {
    let a = Array2::<f32>::ones((2, 3));
    let b = Array2::<f32>::ones((4, 5));
    let mut c = Array2::<f32>::from_elem((2, 5), 7.0);
    let err = gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
    assert_eq!(
        err,
        GemmError {
            a: [2, 3],
            b: [4, 5],
            c: [2, 5],
            bias: None,
        }
    );
    assert_eq!(
        err.to_string(),
        "gemm: cannot multiply a [2, 3] by b [4, 5] into c [2, 5]: the inner dimensions differ"
    );
    assert!(c.iter().all(|&x| x == 7.0), "c is left alone");
}

#[test]
fn an_output_of_the_wrong_shape_is_an_error() {
    let a = Array2::<f64>::ones((2, 3));
    let b = Array2::<f64>::ones((3, 4));
    for shape in [(4, 2), (2, 5), (0, 0)] {
        let mut c = Array2::<f64>::zeros(shape);
        let err = gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
        assert_eq!(err.c, [shape.0, shape.1]);
        assert!(
            err.to_string()
                .ends_with("c does not have the product's shape")
        );
    }
}

#[test]
fn beta_zero_overwrites_nan_and_infinity() {
    each_kernel(|| {
        for (m, k, n) in [(2, 2, 2), (50, 40, 70)] {
            let a = Array2::<f32>::ones((m, k));
            let b = Array2::<f32>::ones((k, n));
            let mut c =
                Array2::from_shape_fn(
                    (m, n),
                    |(i, _)| {
                        if i % 2 == 0 { f32::NAN } else { f32::INFINITY }
                    },
                );
            gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
            assert!(c.iter().all(|&x| x == k as f32), "{m}x{k}x{n}");
        }
    });
}

#[test]
fn alpha_zero_scales_c_without_reading_a_or_b() {
    each_kernel(|| {
        let a = Array2::<f64>::from_elem((3, 4), f64::NAN);
        let b = Array2::<f64>::from_elem((4, 2), f64::INFINITY);
        let mut c = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
        gemm(0.0, a.view(), b.view(), 2.0, c.view_mut()).unwrap();
        assert_eq!(c, array![[2.0, 4.0], [6.0, 8.0], [10.0, 12.0]]);
        gemm(0.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
        assert_eq!(c, Array2::zeros((3, 2)));
    });
}

#[test]
fn an_empty_inner_dimension_gives_beta_times_c() {
    each_kernel(|| {
        let a = Array2::<f32>::zeros((2, 0));
        let b = Array2::<f32>::zeros((0, 3));
        let mut c = Array2::<f32>::from_elem((2, 3), 4.0);
        gemm(1.0, a.view(), b.view(), 0.5, c.view_mut()).unwrap();
        assert_eq!(c, Array2::from_elem((2, 3), 2.0));
        c.fill(f32::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
        assert_eq!(c, Array2::zeros((2, 3)));
    });
}

#[test]
fn empty_outputs_are_fine() {
    each_kernel(|| {
        for (m, k, n) in [(0, 3, 4), (3, 4, 0), (0, 0, 0)] {
            let a = Array2::<f64>::ones((m, k));
            let b = Array2::<f64>::ones((k, n));
            let mut c = Array2::<f64>::zeros((m, n));
            gemm(1.0, a.view(), b.view(), 1.0, c.view_mut()).unwrap();
            assert_eq!(c.len(), 0);
        }
    });
}

#[test]
fn the_call_ops_makes_for_the_vjp_works_on_transposed_views() {
    each_kernel(|| {
        // dA += dC·Bᵀ and dB += Aᵀ·dC, as in wengert-ops' matmul VJP.
        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let dc = array![[1.0f32, 2.0], [3.0, 4.0]];
        let mut da = Array2::<f32>::ones((2, 3));
        let mut db = Array2::<f32>::zeros((3, 2));
        gemm(1.0, dc.view(), b.t(), 1.0, da.view_mut()).unwrap();
        gemm(1.0, a.t(), dc.view(), 1.0, db.view_mut()).unwrap();
        assert_eq!(da, array![[2.0, 3.0, 4.0], [4.0, 5.0, 8.0]]);
        assert_eq!(db, array![[13.0, 18.0], [17.0, 24.0], [21.0, 30.0]]);
    });
}

/// A product into a window of a larger array writes the window only, whatever its edge tiles.
#[test]
fn writes_stay_inside_c() {
    each_kernel(|| {
        use ndarray::s;
        for (m, k, n) in [
            (1, 3, 1),
            (5, 7, 9),
            (7, 20, 17),
            (13, 300, 33),
            (40, 64, 130),
        ] {
            let a = Array2::<f64>::from_shape_fn((m, k), |(i, p)| (i + p) as f64);
            let b = Array2::<f64>::from_shape_fn((k, n), |(p, j)| (p * j % 5) as f64);
            for beta in [0.0, 1.0] {
                let mut big = Array2::<f64>::from_elem((m + 3, n + 21), -7.0);
                let window = big.slice_mut(s![1..m + 1, 2..n + 2]);
                gemm(1.0, a.view(), b.view(), beta, window).unwrap();
                let mut big32 = Array2::<f32>::from_elem((m + 3, n + 21), -7.0);
                let window = big32.slice_mut(s![1..m + 1, 2..n + 2]);
                let (a32, b32) = (a.mapv(|x| x as f32), b.mapv(|x| x as f32));
                gemm(1.0, a32.view(), b32.view(), beta as f32, window).unwrap();
                for (((i, j), &x), &y) in big.indexed_iter().zip(&big32) {
                    let inside = (1..m + 1).contains(&i) && (2..n + 2).contains(&j);
                    if !inside {
                        assert_eq!((x, y), (-7.0, -7.0), "{m}x{k}x{n}: [{i}, {j}] was written");
                    }
                }
            }
        }
    });
}
