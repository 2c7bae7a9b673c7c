//! Products of at most 64 rows whose `b` has contiguous columns: the kernel reads `b` in place
//! (packing only a partial last panel). Against the reference over a sweep of shapes, layouts,
//! alpha and beta; and bit for bit against the packed path, which the same product takes when it
//! has more rows or a `b` of another layout.

use ndarray::{Array2, ArrayView2, s};
use wengert_gemm::GemmScalar;

use crate::common::{Layout, Stored, assert_close, bits, each_kernel, gemm, noise, wide};

/// `b` (`k × n`) with contiguous columns in three ways: row-major, rows reversed (a negative
/// row stride), and a block of columns of a wider matrix (a row stride larger than `n`).
fn b_layouts<E: GemmScalar + From<f32>>(k: usize, n: usize, seed: u64) -> Vec<Array2<E>> {
    let v = noise(seed);
    let plain = Array2::from_shape_fn((k, n), |(p, j)| E::from(v(p, j)));
    let reversed = Array2::from_shape_fn((k, n), |(p, j)| E::from(v(k - 1 - p, j)));
    let wide = Array2::from_shape_fn((k, n + 7), |(p, j)| {
        if (3..3 + n).contains(&j) {
            E::from(v(p, j - 3))
        } else {
            E::from(f32::NAN)
        }
    });
    vec![plain, reversed, wide]
}

fn b_view<E>(stored: &Array2<E>, which: usize) -> ArrayView2<'_, E> {
    match which {
        0 => stored.view(),
        1 => stored.slice(s![..;-1, ..]),
        _ => stored.slice(s![.., 3..stored.ncols() - 4]),
    }
}

fn sweep<E: GemmScalar + From<f32> + Into<f64>>(unit_roundoff: f64) {
    // Rows: less than a tile, a tile, partial tiles, the 64 rows of the threshold. Columns:
    // partial, whole and whole-plus-partial panels of 8 and 16. Depths: one step, a short block,
    // two and three blocks of k for f64 (which blocks k at 256), one and two for f32 (at 512),
    // and three for f32.
    let shapes = [
        (1, 1, 1),
        (5, 10, 16),
        (6, 64, 17),
        (7, 300, 33),
        (32, 64, 128),
        (32, 128, 10),
        (64, 600, 24),
        (40, 257, 8),
        (13, 1100, 20),
    ];
    let scalars = [(1.0, 0.0), (0.5, -1.0), (-2.0, 1.0)];
    for (m, k, n) in shapes {
        let bs = b_layouts::<E>(k, n, 5);
        for (which, stored) in bs.iter().enumerate() {
            let b = b_view(stored, which);
            assert!(n == 1 || b.strides()[1] == 1, "{:?}", b.strides());
            for la in [Layout::RowMajor, Layout::Transposed, Layout::Step2] {
                for lc in [Layout::RowMajor, Layout::Reversed] {
                    for (alpha, beta) in scalars {
                        let a = Stored::<E>::new(m, k, la, noise(6));
                        let mut c = Stored::<E>::new(m, n, lc, noise(7));
                        let c0: Array2<f64> = c.view().mapv(wide);
                        gemm(E::from(alpha), a.view(), b, E::from(beta), c.view_mut())
                            .expect("the shapes fit");
                        assert_close(
                            alpha.into(),
                            a.view(),
                            b,
                            beta.into(),
                            &c0,
                            c.view(),
                            unit_roundoff,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn f32_products_reading_b_in_place_match_the_reference() {
    each_kernel(|| {
        sweep::<f32>(f32::EPSILON as f64 / 2.0);
    });
}

#[test]
fn f64_products_reading_b_in_place_match_the_reference() {
    each_kernel(|| {
        sweep::<f64>(f64::EPSILON / 2.0);
    });
}

/// The bits of every element, for comparing results exactly (`==` takes -0.0 for 0.0).
fn same_bits_as_packed<E: GemmScalar + From<f32>>() {
    let (k, n) = (300, 37);
    let (alpha, beta) = (E::from(0.75), E::from(-0.5));
    let a = Array2::from_shape_fn((100, k), |(i, p)| E::from(noise(11)(i, p)));
    let b = Array2::from_shape_fn((k, n), |(p, j)| E::from(noise(12)(p, j)));
    // The same values stored transposed: columns not contiguous, so packed.
    let b_t = Array2::from_shape_fn((n, k), |(j, p)| b[[p, j]]);
    let c0 = Array2::from_shape_fn((100, n), |(i, j)| E::from(noise(13)(i, j)));
    // 100 rows: packed. Then the first 40 rows alone, `b` in place (and packed again, by layout).
    let mut big = c0.clone();
    gemm(alpha, a.view(), b.view(), beta, big.view_mut()).expect("the shapes fit");
    let rows = s![..40, ..];
    let mut in_place = c0.slice(rows).to_owned();
    gemm(alpha, a.slice(rows), b.view(), beta, in_place.view_mut()).expect("the shapes fit");
    let mut packed = c0.slice(rows).to_owned();
    gemm(alpha, a.slice(rows), b_t.t(), beta, packed.view_mut()).expect("the shapes fit");
    assert_eq!(bits(in_place.view()), bits(big.slice(rows)));
    assert_eq!(bits(in_place.view()), bits(packed.view()));
}

#[test]
fn reading_b_in_place_gives_the_bits_of_the_packed_path() {
    each_kernel(|| {
        same_bits_as_packed::<f32>();
        same_bits_as_packed::<f64>();
    });
}

/// A `b` whose rows all alias one row (row stride 0, as a broadcast view has): read in place for
/// few rows of `a`, packed for many, and in both cases the bits of the same product with `b`
/// copied out into a matrix of its own.
fn broadcast_rows_of_b<E: GemmScalar + From<f32> + Into<f64>>(unit_roundoff: f64) {
    let (k, n) = (300, 37);
    let row = ndarray::Array1::from_shape_fn(n, |j| E::from(noise(21)(0, j)));
    let b = row
        .broadcast((k, n))
        .expect("one row broadcasts down k rows");
    assert_eq!(b.strides(), &[0, 1]);
    let owned = b.to_owned();
    for m in [5, 64, 100] {
        let a = Array2::from_shape_fn((m, k), |(i, p)| E::from(noise(22)(i, p)));
        let c0 = Array2::from_shape_fn((m, n), |(i, j)| E::from(noise(23)(i, j)));
        let (alpha, beta) = (E::from(0.5), E::from(-1.0));
        let mut c = c0.clone();
        gemm(alpha, a.view(), b, beta, c.view_mut()).expect("the shapes fit");
        let mut expected = c0.clone();
        gemm(alpha, a.view(), owned.view(), beta, expected.view_mut()).expect("the shapes fit");
        assert_eq!(bits(c.view()), bits(expected.view()), "m = {m}");
        let c0_wide: Array2<f64> = c0.mapv(wide);
        assert_close(0.5, a.view(), b, -1.0, &c0_wide, c.view(), unit_roundoff);
    }
}

#[test]
fn a_b_of_aliased_rows_is_read_as_its_values() {
    each_kernel(|| {
        broadcast_rows_of_b::<f32>(f32::EPSILON as f64 / 2.0);
        broadcast_rows_of_b::<f64>(f64::EPSILON / 2.0);
    });
}
