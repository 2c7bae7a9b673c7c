//! `gemm_bias`: the bits of `gemm` followed by adding the bias to every row, on every layout,
//! shape and thread count, and a bias of the wrong length refused.

use ndarray::{Array2, ArrayViewMut2};
use proptest::prelude::*;
use wengert_gemm::{GemmScalar, gemm, gemm_bias};

use crate::common::{Layout, Stored, bits, layout, noise};

/// `c` computed twice: by `gemm_bias` and by `gemm` then a pass adding the bias, on a pool
/// of `threads`; `c` starts as `start` (column-major when `c_transposed`).
fn both<E: GemmScalar + From<f32>>(
    threads: usize,
    (m, k, n): (usize, usize, usize),
    layouts: [Layout; 2],
    (alpha, beta): (f32, f32),
    c_transposed: bool,
) -> (Array2<E>, Array2<E>) {
    let a = Stored::<E>::new(m, k, layouts[0], noise(31));
    let b = Stored::<E>::new(k, n, layouts[1], noise(32));
    let bias: Vec<E> = (0..n).map(|j| E::from(noise(33)(0, j) * 10.0)).collect();
    let start = |(i, j)| E::from(noise(34)(i, j));
    let (mut fused, mut plain) = if c_transposed {
        let t = Array2::from_shape_fn((n, m), |(j, i)| start((i, j)));
        (t.clone().reversed_axes(), t.reversed_axes())
    } else {
        (
            Array2::from_shape_fn((m, n), start),
            Array2::from_shape_fn((m, n), start),
        )
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    let (alpha, beta) = (E::from(alpha), E::from(beta));
    pool.install(|| {
        gemm_bias(alpha, a.view(), b.view(), beta, &bias, fused.view_mut())
            .expect("the shapes fit");
        gemm(alpha, a.view(), b.view(), beta, plain.view_mut()).expect("the shapes fit");
    });
    add_rows(plain.view_mut(), &bias);
    (fused, plain)
}

fn add_rows<E: GemmScalar>(mut c: ArrayViewMut2<'_, E>, bias: &[E]) {
    for mut row in c.rows_mut() {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x = *x + b;
        }
    }
}

fn assert_same<E: GemmScalar + From<f32> + std::fmt::Debug>(
    shape: (usize, usize, usize),
    layouts: [Layout; 2],
    scales: (f32, f32),
    c_transposed: bool,
) {
    for threads in [1, 2, 4] {
        let (fused, plain) = both::<E>(threads, shape, layouts, scales, c_transposed);
        assert_eq!(
            bits(fused.view()),
            bits(plain.view()),
            "{shape:?} {layouts:?} {scales:?} c transposed: {c_transposed}, {threads} threads"
        );
    }
}

#[test]
fn the_bias_gives_the_bits_of_a_pass_after_the_product() {
    use Layout::*;
    for shape in [
        // W2's layers at batch 128 and 1024 (the output layer narrow: computed transposed).
        (128, 784, 512),
        (1024, 512, 10),
        (32, 512, 10),
        // Few rows (`b` read in place), blocks of k, partial tiles, an empty k.
        (40, 600, 37),
        (7, 5, 3),
        (300, 0, 20),
        (1, 1, 1),
    ] {
        for layouts in [[RowMajor, RowMajor], [Transposed, Step2]] {
            for c_transposed in [false, true] {
                for scales in [(1.0, 0.0), (0.75, -0.5), (0.0, 2.0)] {
                    assert_same::<f32>(shape, layouts, scales, c_transposed);
                    assert_same::<f64>(shape, layouts, scales, c_transposed);
                }
            }
        }
    }
}

#[test]
fn a_bias_of_the_wrong_length_is_refused_and_nothing_written() {
    let a = Array2::<f32>::ones((4, 3));
    let b = Array2::<f32>::ones((3, 5));
    let mut c = Array2::<f32>::from_elem((4, 5), 7.0);
    let err = gemm_bias(1.0, a.view(), b.view(), 0.0, &[1.0; 4], c.view_mut()).unwrap_err();
    assert_eq!(err.bias, Some(4));
    assert!(err.to_string().contains("with a bias [4]"), "{err}");
    assert!(err.to_string().contains("not one per column"), "{err}");
    assert!(c.iter().all(|&x| x == 7.0));
    // A shape error is still named as such when the bias is also wrong.
    let err = gemm_bias(1.0, a.view(), a.view(), 0.0, &[1.0; 4], c.view_mut()).unwrap_err();
    assert!(
        err.to_string().ends_with("the inner dimensions differ"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_shape_and_layout_gives_the_bits_of_a_pass_after_the_product(
        m in 1usize..80,
        k in 0usize..300,
        n in 1usize..70,
        la in layout(),
        lb in layout(),
        c_transposed in any::<bool>(),
    ) {
        let (fused, plain) = both::<f32>(2, (m, k, n), [la, lb], (1.0, 0.0), c_transposed);
        prop_assert_eq!(bits(fused.view()), bits(plain.view()));
    }
}
