//! Matrix products, on [`wengert_gemm`]: a BLIS-style GEMM with AVX2+FMA micro-kernels, packing
//! into per-thread buffers that are reused (no allocation in steady state), split across rayon's
//! threads along the longer side of the output.
//!
//! Determinism: every output element is computed by exactly one task, the inner dimension is cut
//! into blocks that depend on its length alone and is never split across tasks. Results are
//! therefore bit-identical for any thread count.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::{Error, Float, Result, Shape, TensorRef};

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

/// `[m, k]·[k, n] + [n] → [m, n]` (`linear`), or an error naming the shapes that do not fit.
pub fn linear_shape(x: &Shape, w: &Shape, b: &Shape) -> Result<Shape> {
    let wrong = |shape: &Shape, expected| Error::WrongRank {
        op: "linear",
        expected,
        shape: *shape,
    };
    if x.rank() != 2 {
        return Err(wrong(x, "2"));
    }
    if w.rank() != 2 {
        return Err(wrong(w, "2"));
    }
    if x.dims()[1] != w.dims()[0] {
        return Err(Error::ShapeMismatch {
            op: "linear",
            lhs: *x,
            rhs: *w,
        });
    }
    let out = Shape::matrix(x.dims()[0], w.dims()[1])?;
    if b.rank() != 1 || b.dims()[0] != w.dims()[1] {
        // The bias must have one element per output column.
        return Err(Error::ShapeMismatch {
            op: "linear",
            lhs: out,
            rhs: *b,
        });
    }
    Ok(out)
}

/// `out = x·w + b`, `b` added to every row as each part of the product finishes.
pub fn linear<E: Float>(
    x: TensorRef<'_, E>,
    w: TensorRef<'_, E>,
    b: TensorRef<'_, E>,
    out: &mut [E],
) {
    let (x, w) = (as_matrix(x), as_matrix(w));
    let c = as_matrix_mut(x.nrows(), w.ncols(), out);
    if let Err(err) = wengert_gemm::gemm_bias(E::one(), x, w, E::zero(), b.data(), c) {
        panic!("{err}");
    }
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
    let beta = if accumulate { E::one() } else { E::zero() };
    let (factor, other) = if index == 0 { (a, b) } else { (b, a) };
    factor_grad(other, factor.shape(), g, index, E::one(), beta, gi);
}

/// `gi ← alpha·dC·Bᵀ + beta·gi` (for `index` 0, `other` is `B` and `factor` the shape of `A`)
/// or `gi ← alpha·Aᵀ·dC + beta·gi` (for `index` 1, `other` is `A` and `factor` the shape of
/// `B`), in the product's own pass. Reads only the other factor, so that the factor whose
/// gradient this is can be the buffer written: with `alpha = -lr` and `beta = 1` it is plain
/// SGD's step, folded into the product that computes the gradient.
pub fn factor_grad<E: Float>(
    other: TensorRef<'_, E>,
    factor: &Shape,
    g: &[E],
    index: usize,
    alpha: E,
    beta: E,
    gi: &mut [E],
) {
    let other = as_matrix(other);
    let (rows, cols) = (factor.dims()[0], factor.dims()[1]);
    let gi = as_matrix_mut(rows, cols, gi);
    if index == 0 {
        // A is [m, k], B is [k, n]: dC is [m, n].
        let g = ArrayView2::from_shape((rows, other.ncols()), g).expect("dC is [m, n]");
        gemm(alpha, g, other.t(), beta, gi);
    } else {
        // A is [m, k], B is [k, n].
        let g = ArrayView2::from_shape((other.nrows(), cols), g).expect("dC is [m, n]");
        gemm(alpha, other.t(), g, beta, gi);
    }
}

/// `c = alpha·a·b + beta·c` for any strides (transposed and strided views included), in
/// parallel, allocating nothing in steady state, on [`wengert_gemm`]'s kernels.
///
/// As in BLAS, `beta = 0` overwrites `c` (a NaN in it does not leak into the result).
///
/// # Panics
///
/// If the shapes do not fit (`a` is `[m, k]`, `b` is `[k, n]`, `c` is `[m, n]`): the engine checks
/// shapes before it calls this. Use [`try_gemm`] for shapes that have not been checked.
///
/// ```
/// use ndarray::array;
/// use wengert_ops::gemm;
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
    if let Err(err) = try_gemm(alpha, a, b, beta, c) {
        panic!("{err}");
    }
}

/// [`gemm`] on the calling thread alone (`wengert_gemm::gemm_serial`): for kernels whose tasks
/// are already one product each. Shapes checked by the caller, as for [`gemm`].
pub(crate) fn gemm_serial<E: Float>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) {
    let (a_dims, b_dims) = (a.dim(), b.dim());
    if wengert_gemm::gemm_serial(alpha, a, b, beta, c).is_err() {
        panic!("gemm: shapes {a_dims:?} and {b_dims:?} do not fit together");
    }
}

/// [`gemm`] that returns a [`ShapeMismatch`](Error::ShapeMismatch) naming the operands' shapes
/// instead of panicking when they do not fit; `c` is left untouched then.
///
/// ```
/// use ndarray::Array2;
/// use wengert_ops::try_gemm;
/// let (a, b) = (Array2::<f32>::zeros((2, 3)), Array2::<f32>::zeros((4, 5)));
/// let mut c = Array2::<f32>::zeros((2, 5));
/// let err = try_gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
/// assert_eq!(err.to_string(), "gemm: shapes [2, 3] and [4, 5] do not fit together");
/// ```
pub fn try_gemm<E: Float>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) -> Result<()> {
    let (a_dims, b_dims, c_dims) = (a.dim(), b.dim(), c.dim());
    wengert_gemm::gemm(alpha, a, b, beta, c).map_err(|_| {
        let shape = |(r, k): (usize, usize)| Shape::matrix(r, k).unwrap_or(Shape::SCALAR);
        if a_dims.1 == b_dims.0 {
            // The operands fit; the output does not.
            Error::ShapeMismatch {
                op: "gemm",
                lhs: shape((a_dims.0, b_dims.1)),
                rhs: shape(c_dims),
            }
        } else {
            Error::ShapeMismatch {
                op: "gemm",
                lhs: shape(a_dims),
                rhs: shape(b_dims),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn parallel_blocks_match_a_naive_product() {
        let (m, k, n) = (203, 67, 130);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        let mut c = Array2::zeros((m, n));
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
        // Small integers: every product and partial sum is exact.
        assert_eq!(c, wengert_testkit::naive_matmul(a.view(), b.view()));
    }

    #[test]
    fn a_factors_scaled_gradient_lands_on_its_buffer_exactly() {
        // Small integers and power-of-two scales: every step is exact, so the two folds can be
        // compared with the naive `keep·dest + step·gradient` bit for bit.
        let (m, k, n) = (9, 5, 7);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        let g = Array2::from_shape_fn((m, n), |(i, j)| ((i + j * 3) % 7) as f64 - 3.0);
        let (keep, step) = (0.5, -0.25);
        let (sa, sb) = (Shape::matrix(m, k).unwrap(), Shape::matrix(k, n).unwrap());
        let da = wengert_testkit::naive_matmul(g.view(), b.t());
        let db = wengert_testkit::naive_matmul(a.t(), g.view());
        let g = g.as_slice().unwrap();
        let (mut fa, mut fb) = (a.clone(), b.clone());
        let (ta, tb) = (
            TensorRef::new(&sa, a.as_slice().unwrap()).unwrap(),
            TensorRef::new(&sb, b.as_slice().unwrap()).unwrap(),
        );
        factor_grad(tb, &sa, g, 0, step, keep, fa.as_slice_mut().unwrap());
        factor_grad(ta, &sb, g, 1, step, keep, fb.as_slice_mut().unwrap());
        assert_eq!(fa, &a * keep + &da * step);
        assert_eq!(fb, &b * keep + &db * step);
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
