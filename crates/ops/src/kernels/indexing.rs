//! `index_select` and `gather` along an axis, with integer indices stored as floats
//! (`torch.index_select`, `torch.gather`). Their VJPs scatter-add the gradient back in the
//! output's row-major order, so repeated indices add up the same way on every run.
//!
//! An index must be a whole number in `0..len` of the axis it indexes (PyTorch accepts no
//! negative index here either): anything else is an
//! [`IndexOutOfRange`](Error::IndexOutOfRange) error from the forward, which then leaves its
//! output untouched.

use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const INDEX_SELECT: &str = "index_select";
const GATHER: &str = "gather";

/// The axis position `v` names, or the error saying it names none.
#[inline]
pub(super) fn position<E: Float>(op: &'static str, at: usize, v: E, len: usize) -> Result<usize> {
    let f = v.to_f64();
    if f >= 0.0 && f.fract() == 0.0 && f < len as f64 {
        Ok(f as usize)
    } else {
        Err(Error::IndexOutOfRange {
            op,
            position: at,
            index: f,
            len,
        })
    }
}

/// Checks every index against an axis of length `len`.
pub(super) fn check_all<E: Float>(op: &'static str, indices: &[E], len: usize) -> Result<()> {
    for (at, &v) in indices.iter().enumerate() {
        position(op, at, v, len)?;
    }
    Ok(())
}

/// The output shape of `index_select`: `x` with `axis`'s length replaced by the number of
/// indices, which form a vector (or a scalar, one index).
pub fn index_select_shape(x: &Shape, axis: usize, indices: &Shape) -> Result<Shape> {
    if axis >= x.rank() {
        return Err(Error::AxisOutOfRange {
            op: INDEX_SELECT,
            axis,
            shape: *x,
        });
    }
    if indices.rank() > 1 {
        return Err(Error::WrongRank {
            op: INDEX_SELECT,
            expected: "0 or 1 (the indices)",
            shape: *indices,
        });
    }
    x.with_dim(axis, indices.numel())
}

/// (outer, len, inner) around `axis`.
#[inline]
pub(super) fn split(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    )
}

/// `out[.., p, ..] = x[.., indices[p], ..]` along `axis`; an index outside the axis is an
/// error.
pub fn index_select<E: Float>(
    x: TensorRef<'_, E>,
    axis: usize,
    indices: &[E],
    out: &mut [E],
) -> Result<()> {
    let (outer, len, inner) = split(x.shape(), axis);
    check_all(INDEX_SELECT, indices, len)?;
    let data = x.data();
    let k = indices.len();
    for o in 0..outer {
        for (p, &v) in indices.iter().enumerate() {
            let src = (o * len + v.to_f64() as usize) * inner;
            let dst = (o * k + p) * inner;
            out[dst..dst + inner].copy_from_slice(&data[src..src + inner]);
        }
    }
    Ok(())
}

/// `y = index_select(x, axis, idx)`: `dx[.., idx[p], ..] += dy[.., p, ..]`, scattered in
/// order.
/// Adds into `gi` when `ACC`, overwrites it otherwise. Indices are as [`index_select`]
/// checked them; a bad one sends nothing.
pub fn index_select_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    axis: usize,
    indices: &[E],
    g: &[E],
    gi: &mut [E],
) {
    if !ACC {
        gi.fill(E::zero());
    }
    let (outer, len, inner) = split(x, axis);
    let k = indices.len();
    for o in 0..outer {
        for (p, &v) in indices.iter().enumerate() {
            let Ok(i) = position(INDEX_SELECT, p, v, len) else {
                continue;
            };
            let (dst, src) = ((o * len + i) * inner, (o * k + p) * inner);
            for (d, &s) in gi[dst..dst + inner].iter_mut().zip(&g[src..src + inner]) {
                *d += s;
            }
        }
    }
}

/// The output shape of `gather` (the index's): the index has `x`'s rank, and on every axis but
/// `axis` a length no larger than `x`'s (PyTorch's rule).
pub fn gather_shape(x: &Shape, axis: usize, index: &Shape) -> Result<Shape> {
    if axis >= x.rank() {
        return Err(Error::AxisOutOfRange {
            op: GATHER,
            axis,
            shape: *x,
        });
    }
    let fits = index.rank() == x.rank()
        && index
            .dims()
            .iter()
            .zip(x.dims())
            .enumerate()
            .all(|(a, (&i, &d))| a == axis || i <= d);
    if !fits {
        return Err(Error::ShapeMismatch {
            op: GATHER,
            lhs: *x,
            rhs: *index,
        });
    }
    Ok(*index)
}

/// `x`'s strides with `axis`'s set to 0 (the index supplies that coordinate), and `axis`'s.
pub(super) fn gather_strides(x: &Shape, axis: usize) -> ([usize; MAX_RANK], usize) {
    let mut strides = x.strides();
    let along = strides[axis];
    strides[axis] = 0;
    (strides, along)
}

/// `out[i] = x[i with its coordinate on `axis` replaced by index[i]]`; an index outside the
/// axis is an error.
pub fn gather<E: Float>(
    x: TensorRef<'_, E>,
    axis: usize,
    index: TensorRef<'_, E>,
    out: &mut [E],
) -> Result<()> {
    let len = x.shape().dims()[axis];
    check_all(GATHER, index.data(), len)?;
    let (strides, along) = gather_strides(x.shape(), axis);
    let (data, idx) = (x.data(), index.data());
    walk2(index.shape().dims(), &strides, &[0; MAX_RANK], |i, s, _| {
        out[i] = data[s + idx[i].to_f64() as usize * along]
    });
    Ok(())
}

/// `y = gather(x, axis, index)`: `dx[.., index[i], ..] += dy[i]`, scattered in row-major order of
/// `index`. Adds into `gi` when `ACC`, overwrites it otherwise. Indices are as [`gather`]
/// checked them; a bad one sends nothing.
pub fn gather_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    axis: usize,
    index: TensorRef<'_, E>,
    g: &[E],
    gi: &mut [E],
) {
    if !ACC {
        gi.fill(E::zero());
    }
    let len = x.dims()[axis];
    let (strides, along) = gather_strides(x, axis);
    let idx = index.data();
    walk2(index.shape().dims(), &strides, &[0; MAX_RANK], |i, s, _| {
        if let Ok(k) = position(GATHER, i, idx[i], len) {
            gi[s + k * along] += g[i];
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    fn check_select(dims: &[usize], axis: usize, indices: &[f64], seed: u64) -> f64 {
        let s = shape(dims);
        let out = index_select_shape(&s, axis, &Shape::vector(indices.len())).unwrap();
        let x = values(s.numel(), seed);
        let f = |x: &[f64]| {
            let mut y = vec![0.0; out.numel()];
            index_select(TensorRef::trusted(&s, x), axis, indices, &mut y).unwrap();
            y
        };
        let want: Vec<f64> = (0..out.numel())
            .map(|i| {
                let mut idx = unravel(i, out.dims());
                idx[axis] = indices[idx[axis]] as usize;
                x[ravel(&idx, dims)]
            })
            .collect();
        assert_eq!(f(&x), want);
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                index_select_vjp::<f64, true>(&s, axis, indices, g, gi)
            } else {
                index_select_vjp::<f64, false>(&s, axis, indices, g, gi)
            }
        };
        fd_error(&f, &vjp, &x, &values(out.numel(), seed + 1))
    }

    fn check_gather(dims: &[usize], axis: usize, index_dims: &[usize], seed: u64) -> f64 {
        let (s, is) = (shape(dims), shape(index_dims));
        assert_eq!(gather_shape(&s, axis, &is).unwrap(), is);
        let len = dims[axis];
        let index: Vec<f64> = values(is.numel(), seed + 2)
            .iter()
            .map(|v| ((v + 2.0) / 4.0 * len as f64).floor().min(len as f64 - 1.0))
            .collect();
        let x = values(s.numel(), seed);
        let f = |x: &[f64]| {
            let mut y = vec![0.0; is.numel()];
            let it = TensorRef::trusted(&is, &index);
            gather(TensorRef::trusted(&s, x), axis, it, &mut y).unwrap();
            y
        };
        let want: Vec<f64> = (0..is.numel())
            .map(|i| {
                let mut idx = unravel(i, index_dims);
                idx[axis] = index[i] as usize;
                x[ravel(&idx, dims)]
            })
            .collect();
        assert_eq!(f(&x), want);
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            let it = TensorRef::trusted(&is, &index);
            if acc {
                gather_vjp::<f64, true>(&s, axis, it, g, gi)
            } else {
                gather_vjp::<f64, false>(&s, axis, it, g, gi)
            }
        };
        fd_error(&f, &vjp, &x, &values(is.numel(), seed + 1))
    }

    #[test]
    fn index_select_matches_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[(&[usize], usize, &[f64])] = &[
            (&[4, 3], 0, &[3.0, 0.0, 3.0, 1.0]),
            (&[4, 3], 1, &[2.0, 2.0]),
            (&[2, 3, 2], 1, &[1.0]),
            (&[2, 3, 2], 2, &[]),
            (&[5], 0, &[4.0, 4.0, 4.0]),
            (&[0, 3], 1, &[0.0, 2.0]),
        ];
        for &(dims, axis, indices) in cases {
            let err = check_select(dims, axis, indices, 1);
            assert!(err < FD_TOL, "{dims:?} {axis} {indices:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst index_select: {worst:e}");
    }

    #[test]
    fn gather_matches_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[(&[usize], usize, &[usize])] = &[
            (&[4, 3], 0, &[6, 3]),
            (&[4, 3], 1, &[4, 5]),
            (&[4, 3], 1, &[2, 1]),
            (&[2, 3, 2], 1, &[2, 4, 1]),
            (&[5], 0, &[0]),
            (&[3], 0, &[7]),
        ];
        for &(dims, axis, index_dims) in cases {
            let err = check_gather(dims, axis, index_dims, 2);
            assert!(err < FD_TOL, "{dims:?} {axis} {index_dims:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst gather: {worst:e}");
    }

    #[test]
    fn repeated_indices_add_their_gradients() {
        let s = shape(&[3]);
        let mut gi = [f64::NAN; 3];
        index_select_vjp::<f64, false>(&s, 0, &[2.0, 0.0, 2.0], &[1.0, 2.0, 4.0], &mut gi);
        assert_eq!(gi, [2.0, 0.0, 5.0]);
        let is = shape(&[3]);
        let idx = [1.0, 1.0, 0.0];
        gather_vjp::<f64, true>(
            &s,
            0,
            TensorRef::trusted(&is, &idx),
            &[1.0, 2.0, 4.0],
            &mut gi,
        );
        assert_eq!(gi, [6.0, 3.0, 5.0]);
    }

    #[test]
    fn bad_indices_and_shapes_are_errors() {
        let s = shape(&[2, 3]);
        let x = [0.0f64; 6];
        let mut out = [9.0; 2];
        for bad in [3.0, -1.0, 0.5, f64::NAN, f64::INFINITY] {
            let err = index_select(TensorRef::trusted(&s, &x), 1, &[0.0, bad], &mut out[..]);
            let want = Error::IndexOutOfRange {
                op: INDEX_SELECT,
                position: 1,
                index: bad,
                len: 3,
            };
            assert!(
                matches!(
                    &err,
                    Err(Error::IndexOutOfRange {
                        position: 1,
                        len: 3,
                        ..
                    })
                ) && (bad.is_nan() || err == Err(want)),
                "{bad}"
            );
            let is = shape(&[1, 2]);
            let idx = [0.0, bad];
            let err = gather(
                TensorRef::trusted(&s, &x),
                1,
                TensorRef::trusted(&is, &idx),
                &mut out,
            );
            assert!(
                matches!(err, Err(Error::IndexOutOfRange { op: GATHER, .. })),
                "{bad}"
            );
        }
        assert_eq!(
            out, [9.0; 2],
            "a failed forward leaves its output untouched"
        );
        let err = index_select(TensorRef::trusted(&s, &x), 1, &[7.0], &mut out[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "index_select: index 7 at position 0 is not a whole number in 0..3"
        );
        assert!(matches!(
            index_select_shape(&s, 2, &Shape::vector(1)),
            Err(Error::AxisOutOfRange { .. })
        ));
        assert!(matches!(
            index_select_shape(&s, 0, &s),
            Err(Error::WrongRank { .. })
        ));
        assert!(matches!(
            gather_shape(&s, 0, &shape(&[2, 4])),
            Err(Error::ShapeMismatch { op: GATHER, .. })
        ));
        assert!(matches!(
            gather_shape(&s, 0, &shape(&[2])),
            Err(Error::ShapeMismatch { op: GATHER, .. })
        ));
        assert!(gather_shape(&s, 0, &shape(&[5, 3])).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_problems(
            dims in proptest::collection::vec(1usize..4, 1..4),
            axis_pick in 0usize..3,
            picks in proptest::collection::vec(0usize..8, 0..5),
            grow in 0usize..3,
            seed in 0u64..1000,
        ) {
            let axis = axis_pick % dims.len();
            let indices: Vec<f64> = picks.iter().map(|&p| (p % dims[axis]) as f64).collect();
            prop_assert!(check_select(&dims, axis, &indices, seed) < FD_TOL);
            let mut index_dims = dims.clone();
            index_dims[axis] += grow;
            prop_assert!(check_gather(&dims, axis, &index_dims, seed) < FD_TOL);
        }
    }
}
