//! What wengert's tests and benchmarks share, written once: [`SplitMix64`], a seeded
//! generator for fixed "random" inputs; [`naive_matmul`], the textbook product the fast ones
//! are checked against; [`alloc`], the counting global allocator of every allocation test; and
//! [`architecture_figure`], which reads back a figure `docs/ARCHITECTURE.md` quotes, so that a
//! test beside the constant fails when the two drift apart.
//!
//! A workspace crate that is never published: the packages take it as a dev-dependency
//! without a version, which `cargo publish` leaves out.

pub mod alloc;
mod figures;
mod splitmix;

use ndarray::{Array2, ArrayView2};

pub use figures::{architecture_figure, quoted_figures};
pub use splitmix::SplitMix64;

/// `a·b` by the textbook triple loop (`i`, `p`, `j`), summing each element in order of `p`:
/// the reference every fast product is compared with (exactly, on small integers).
///
/// ```
/// use ndarray::array;
/// let c = wengert_testkit::naive_matmul(array![[1.0, 2.0]].view(), array![[3.0], [4.0]].view());
/// assert_eq!(c, array![[11.0]]);
/// ```
pub fn naive_matmul(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "naive_matmul: inner dimensions differ"
    );
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let mut c = Array2::zeros((m, n));
    for i in 0..m {
        for p in 0..k {
            let aip = a[[i, p]];
            for j in 0..n {
                c[[i, j]] += aip * b[[p, j]];
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_splitmix64s() {
        // The first outputs for seed 0, as in the reference implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(7);
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&r.unit_f64()));
            assert!(r.below(10) < 10);
        }
    }

    #[test]
    fn the_product_is_the_textbooks() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
        let b = Array2::from_shape_fn((4, 2), |(i, j)| i as f64 - j as f64);
        let c = naive_matmul(a.view(), b.view());
        for i in 0..3 {
            for j in 0..2 {
                let dot: f64 = (0..4).map(|p| a[[i, p]] * b[[p, j]]).sum();
                assert_eq!(c[[i, j]], dot);
            }
        }
        // Transposed views are read through their strides.
        assert_eq!(naive_matmul(b.t(), a.t()), c.t());
    }
}
