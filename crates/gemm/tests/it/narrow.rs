//! Narrow products (fewer columns than a tile, many rows: a layer of 10 outputs and its weight's
//! gradient), which the crate computes transposed: exact on small integers in every layout, and
//! bit-identical to the same columns of a wider product, which it computes the usual way round.

use ndarray::{Array2, s};
use wengert_gemm::GemmScalar;

use crate::common::{LAYOUTS, Layout, Stored, each_kernel, gemm, noise};

/// Small integers: every product and sum is exact, in any order.
fn int(seed: usize) -> impl Fn(usize, usize) -> f32 {
    move |i, j| ((i * 7 + j * 3 + seed) % 11) as f32 - 5.0
}

fn exact<E: GemmScalar + From<f32>>((m, k, n): (usize, usize, usize), layouts: [Layout; 3]) {
    let a = Stored::<E>::new(m, k, layouts[0], int(1));
    let b = Stored::<E>::new(k, n, layouts[1], int(2));
    let mut c = Stored::<E>::new(m, n, layouts[2], int(3));
    gemm(
        E::from(2.0),
        a.view(),
        b.view(),
        E::from(-1.0),
        c.view_mut(),
    )
    .expect("shapes fit");
    let want = Array2::from_shape_fn((m, n), |(i, j)| {
        let dot: f32 = (0..k).map(|p| int(1)(i, p) * int(2)(p, j)).sum();
        E::from(2.0 * dot - int(3)(i, j))
    });
    assert_eq!(c.view(), want, "{m}x{k}x{n} {layouts:?}");
}

#[test]
fn narrow_and_short_products_are_exact_in_every_layout() {
    each_kernel(|| {
        // Narrow (n < 16 ≤ m / 2) for f32, for f64 (n < 8), and their transposes (short and wide).
        let shapes = [
            (32, 7, 1),
            (37, 5, 15),
            (130, 300, 10),
            (16, 3, 7),
            (1, 7, 32),
            (10, 300, 130),
        ];
        for shape in shapes {
            for la in LAYOUTS {
                for lb in LAYOUTS {
                    for lc in [Layout::RowMajor, Layout::Transposed, Layout::Step2] {
                        exact::<f32>(shape, [la, lb, lc]);
                        exact::<f64>(shape, [la, lb, lc]);
                    }
                }
            }
        }
    });
}

/// `c = a·b` for `b` of `n` columns: the first `n` columns of `wide`'s product.
fn first_columns<E: GemmScalar + From<f32>>(
    (m, k, n): (usize, usize, usize),
    wide: usize,
    layouts: [Layout; 2],
) -> (Array2<E>, Array2<E>) {
    let a = Stored::<E>::new(m, k, layouts[0], noise(5));
    let b = Stored::<E>::new(k, wide, layouts[1], noise(6));
    let c0 = |cols| Array2::from_shape_fn((m, cols), |(i, j)| E::from(noise(7)(i, j)));
    let (mut narrow, mut full) = (c0(n), c0(wide));
    let b_narrow = b.view().slice_move(s![.., ..n]);
    gemm(
        E::from(0.75),
        a.view(),
        b_narrow,
        E::from(-0.5),
        narrow.view_mut(),
    )
    .unwrap();
    gemm(
        E::from(0.75),
        a.view(),
        b.view(),
        E::from(-0.5),
        full.view_mut(),
    )
    .unwrap();
    (narrow, full.slice_move(s![.., ..n]))
}

#[test]
fn a_narrow_product_is_bit_identical_to_the_same_columns_of_a_wide_one() {
    each_kernel(|| {
        use Layout::{RowMajor, Transposed};
        // W2's output layer forward (h·W) and its weight's gradient (hᵀ·d), and a k of several
        // blocks.
        for (shape, layouts) in [
            ((128, 512, 10), [RowMajor, RowMajor]),
            ((512, 128, 10), [Transposed, RowMajor]),
            ((200, 700, 3), [RowMajor, Transposed]),
        ] {
            let (narrow, wide) = first_columns::<f32>(shape, 64, layouts);
            let differ = narrow
                .iter()
                .zip(&wide)
                .filter(|(x, y)| x.to_bits() != y.to_bits());
            assert_eq!(differ.count(), 0, "{shape:?} {layouts:?}");
            let (narrow, wide) = first_columns::<f64>(shape, 64, layouts);
            let differ = narrow
                .iter()
                .zip(&wide)
                .filter(|(x, y)| x.to_bits() != y.to_bits());
            assert_eq!(differ.count(), 0, "{shape:?} {layouts:?} f64");
        }
    });
}
