//! Matrix products: a rayon-parallel GEMM over blocks of output rows, on matrixmultiply's
//! micro-kernels (through `ndarray::linalg::general_mat_mul`).
//!
//! Determinism: every output element is computed by exactly one task, with the whole inner
//! dimension summed inside that task, and the row blocks depend on the shape alone (never on
//! the number of threads). Results are therefore bit-identical for any thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::{Error, Float, Result, Shape, TensorRef};

/// Below this many multiply-adds a product runs on the calling thread: forking would cost more.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// The smallest block of output rows handed to one task.
const MIN_ROWS_PER_TASK: usize = 16;

/// `[m, k]·[k, n] → [m, n]`, or an error naming both shapes.
pub fn output_shape(a: &Shape, b: &Shape) -> Result<Shape> {
    for s in [a, b] {
        if s.rank() != 2 {
            return Err(Error::WrongRank {
                op: "matmul",
                expected: "2",
                shape: *s,
            });
        }
    }
    if a.dims()[1] != b.dims()[0] {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: *a,
            rhs: *b,
        });
    }
    Shape::matrix(a.dims()[0], b.dims()[1])
}

fn as_matrix<'a, E: Float>(t: TensorRef<'a, E>) -> ArrayView2<'a, E> {
    let d = t.shape().dims();
    ArrayView2::from_shape((d[0], d[1]), t.data()).expect("a matmul operand is a matrix")
}

fn as_matrix_mut<E: Float>(rows: usize, cols: usize, data: &mut [E]) -> ArrayViewMut2<'_, E> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("the buffer holds rows·cols elements")
}

/// `out = a·b`.
pub fn forward<E: Float>(a: TensorRef<'_, E>, b: TensorRef<'_, E>, out: &mut [E]) {
    let (a, b) = (as_matrix(a), as_matrix(b));
    let c = as_matrix_mut(a.nrows(), b.ncols(), out);
    gemm(E::one(), a, b, E::zero(), c);
}

/// Adds `dC·Bᵀ` (for `index` 0) or `Aᵀ·dC` (for `index` 1) to `gi`, or with `accumulate`
/// false writes it over whatever `gi` held. Both use transposed views: nothing is copied.
pub fn vjp<E: Float>(
    a: TensorRef<'_, E>,
    b: TensorRef<'_, E>,
    g: &[E],
    index: usize,
    gi: &mut [E],
    accumulate: bool,
) {
    let (a, b) = (as_matrix(a), as_matrix(b));
    let g = ArrayView2::from_shape((a.nrows(), b.ncols()), g).expect("dC has the output's shape");
    let beta = if accumulate { E::one() } else { E::zero() };
    if index == 0 {
        gemm(
            E::one(),
            g,
            b.t(),
            beta,
            as_matrix_mut(a.nrows(), a.ncols(), gi),
        );
    } else {
        gemm(
            E::one(),
            a.t(),
            g,
            beta,
            as_matrix_mut(b.nrows(), b.ncols(), gi),
        );
    }
}

/// `c = alpha·a·b + beta·c` for any strides, in parallel over blocks of `c`'s rows.
///
/// ```
/// use ndarray::array;
/// use wengert_ops::kernels::matmul::gemm;
/// let a = array![[1.0, 2.0], [3.0, 4.0]];
/// let b = array![[5.0], [6.0]];
/// let mut c = array![[0.0], [0.0]];
/// gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
/// assert_eq!(c, array![[17.0], [39.0]]);
/// ```
pub fn gemm<E: Float>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) {
    let flops = a
        .nrows()
        .saturating_mul(a.ncols())
        .saturating_mul(b.ncols());
    let rows_per_task = if flops < PARALLEL_MIN_FLOPS {
        usize::MAX
    } else {
        // At most four blocks, a whole number of 8-row panels each: enough to keep two to four
        // cores busy without repacking `b` more often than that.
        (a.nrows().div_ceil(4).div_ceil(8) * 8).max(MIN_ROWS_PER_TASK)
    };
    gemm_rows(alpha, a, b, beta, c, rows_per_task);
}

fn gemm_rows<E: Float>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    mut c: ArrayViewMut2<'_, E>,
    rows_per_task: usize,
) {
    let rows = a.nrows();
    if rows <= rows_per_task {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    // Split on a block boundary so the blocks are the same however the recursion runs.
    let mid = rows.div_ceil(rows_per_task) / 2 * rows_per_task;
    let (a_top, a_bottom) = a.split_at(Axis(0), mid);
    let (c_top, c_bottom) = c.split_at(Axis(0), mid);
    rayon::join(
        || gemm_rows(alpha, a_top, b, beta, c_top, rows_per_task),
        || gemm_rows(alpha, a_bottom, b, beta, c_bottom, rows_per_task),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                let mut s = 0.0;
                for p in 0..a.ncols() {
                    s += a[[i, p]] * b[[p, j]];
                }
                c[[i, j]] = s;
            }
        }
        c
    }

    #[test]
    fn parallel_blocks_match_a_naive_product() {
        let (m, k, n) = (203, 67, 130);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        let mut c = Array2::zeros((m, n));
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
        // Small integers: every product and partial sum is exact.
        assert_eq!(c, naive(&a, &b));
    }

    #[test]
    fn wrong_inner_dimension_is_an_error() {
        let a = Shape::new(&[2, 3]).unwrap();
        let b = Shape::new(&[2, 3]).unwrap();
        let err = output_shape(&a, &b).unwrap_err();
        assert_eq!(
            err,
            Error::ShapeMismatch {
                op: "matmul",
                lhs: a,
                rhs: b
            }
        );
    }
}
