//! `index_add` and `scatter_add`: the adjoints of `index_select` and `gather`, as ops of their
//! own, so that those ops' VJPs can be recorded on the tape (and differentiated again: the VJP
//! of each of these is the op it is the adjoint of).
//!
//! Both add a source into zeros of a given length along an axis, at positions held as floats
//! (whole numbers in `0..len`, as `index_select` and `gather` take them); repeated positions
//! add up in the source's row-major order, the same on every run. A bad position is an
//! [`IndexOutOfRange`](Error::IndexOutOfRange) error from the forward, which then leaves its
//! output untouched.

use super::indexing::{check_all, gather_strides, position, split};
use super::unary::store;
use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const INDEX_ADD: &str = "index_add";
const SCATTER_ADD: &str = "scatter_add";

/// The axis checked against `src`, then `src` with `axis`'s length set to `len`.
fn with_len(op: &'static str, src: &Shape, axis: usize, len: usize) -> Result<Shape> {
    if axis >= src.rank() {
        return Err(Error::AxisOutOfRange {
            op,
            axis,
            shape: *src,
        });
    }
    src.with_dim(axis, len)
}

/// The output shape of `index_add`: `src` with `axis`'s length set to `len`; the indices are a
/// vector (or a scalar) with one position per slice of `src` along `axis`.
pub fn index_add_shape(src: &Shape, axis: usize, indices: &Shape, len: usize) -> Result<Shape> {
    let out = with_len(INDEX_ADD, src, axis, len)?;
    if indices.rank() > 1 {
        return Err(Error::WrongRank {
            op: INDEX_ADD,
            expected: "0 or 1 (the indices)",
            shape: *indices,
        });
    }
    if indices.numel() != src.dims()[axis] {
        return Err(Error::ShapeMismatch {
            op: INDEX_ADD,
            lhs: *src,
            rhs: *indices,
        });
    }
    Ok(out)
}

/// `out = 0; out[.., indices[p], ..] += src[.., p, ..]` along `axis` (`out`'s shape is
/// `out_shape`); an index outside the axis is an error.
pub fn index_add<E: Float>(
    src: &[E],
    axis: usize,
    indices: &[E],
    out_shape: &Shape,
    out: &mut [E],
) -> Result<()> {
    check_all(INDEX_ADD, indices, out_shape.dims()[axis])?;
    out.fill(E::zero());
    let (outer, len, inner) = split(out_shape, axis);
    let k = indices.len();
    for o in 0..outer {
        for (p, &v) in indices.iter().enumerate() {
            let (dst, from) = ((o * len + v.to_f64() as usize) * inner, (o * k + p) * inner);
            for (d, &s) in out[dst..dst + inner]
                .iter_mut()
                .zip(&src[from..from + inner])
            {
                *d += s;
            }
        }
    }
    Ok(())
}

/// `y = index_add(src, indices)`: `dsrc[.., p, ..] = dy[.., indices[p], ..]` (an
/// `index_select` of the gradient). Adds into `gi` when `ACC`, overwrites it otherwise.
/// Indices are as [`index_add`] checked them; a bad one sends nothing.
pub fn index_add_vjp<E: Float, const ACC: bool>(
    out_shape: &Shape,
    axis: usize,
    indices: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let (outer, len, inner) = split(out_shape, axis);
    let k = indices.len();
    for o in 0..outer {
        for (p, &v) in indices.iter().enumerate() {
            let dst = (o * k + p) * inner;
            let Ok(i) = position(INDEX_ADD, p, v, len) else {
                for d in &mut gi[dst..dst + inner] {
                    store::<E, ACC>(d, E::zero());
                }
                continue;
            };
            let from = (o * len + i) * inner;
            for (d, &s) in gi[dst..dst + inner].iter_mut().zip(&g[from..from + inner]) {
                store::<E, ACC>(d, s);
            }
        }
    }
}

/// The output shape of `scatter_add`: `src` with `axis`'s length set to `len`; the index has
/// `src`'s shape.
pub fn scatter_add_shape(src: &Shape, axis: usize, index: &Shape, len: usize) -> Result<Shape> {
    let out = with_len(SCATTER_ADD, src, axis, len)?;
    if !index.same_as(src) {
        return Err(Error::ShapeMismatch {
            op: SCATTER_ADD,
            lhs: *src,
            rhs: *index,
        });
    }
    Ok(out)
}

/// `out = 0; out[i with its coordinate on `axis` replaced by index[i]] += src[i]`, in
/// row-major order of `src`; an index outside the axis is an error.
pub fn scatter_add<E: Float>(
    src: &[E],
    axis: usize,
    index: TensorRef<'_, E>,
    out_shape: &Shape,
    out: &mut [E],
) -> Result<()> {
    let along_len = out_shape.dims()[axis];
    check_all(SCATTER_ADD, index.data(), along_len)?;
    out.fill(E::zero());
    let (strides, along) = gather_strides(out_shape, axis);
    let idx = index.data();
    walk2(index.shape().dims(), &strides, &[0; MAX_RANK], |i, s, _| {
        out[s + idx[i].to_f64() as usize * along] += src[i];
    });
    Ok(())
}

/// `y = scatter_add(src, index)`: `dsrc[i] = dy[i at index[i]]` (a `gather` of the gradient).
/// Adds into `gi` when `ACC`, overwrites it otherwise. Indices are as [`scatter_add`] checked
/// them; a bad one sends nothing.
pub fn scatter_add_vjp<E: Float, const ACC: bool>(
    out_shape: &Shape,
    axis: usize,
    index: TensorRef<'_, E>,
    g: &[E],
    gi: &mut [E],
) {
    let len = out_shape.dims()[axis];
    let (strides, along) = gather_strides(out_shape, axis);
    let idx = index.data();
    walk2(index.shape().dims(), &strides, &[0; MAX_RANK], |i, s, _| {
        let v = match position(SCATTER_ADD, i, idx[i], len) {
            Ok(k) => g[s + k * along],
            Err(_) => E::zero(),
        };
        store::<E, ACC>(&mut gi[i], v);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use crate::kernels::indexing::{gather, index_select};

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    #[test]
    fn index_add_is_the_adjoint_of_index_select_and_matches_finite_differences() {
        // ⟨index_select(x), g⟩ = ⟨x, index_add(g)⟩ for every x and g.
        let (xs, axis, idx) = (shape(&[2, 4, 3]), 1, [3.0, 0.0, 3.0, 1.0, 2.0]);
        let gs = index_add_shape(&shape(&[2, 5, 3]), axis, &Shape::vector(5), 4).unwrap();
        assert_eq!(gs, xs);
        let (x, g) = (values(xs.numel(), 1), values(30, 2));
        let mut sel = vec![0.0; 30];
        index_select(TensorRef::trusted(&xs, &x), axis, &idx, &mut sel).unwrap();
        let mut added = vec![f64::NAN; xs.numel()];
        index_add(&g, axis, &idx, &xs, &mut added).unwrap();
        let lhs: f64 = sel.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&added).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} {rhs}");
        let f = |src: &[f64]| {
            let mut y = vec![0.0; xs.numel()];
            index_add(src, axis, &idx, &xs, &mut y).unwrap();
            y
        };
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                index_add_vjp::<f64, true>(&xs, axis, &idx, g, gi)
            } else {
                index_add_vjp::<f64, false>(&xs, axis, &idx, g, gi)
            }
        };
        let err = fd_error(&f, &vjp, &values(30, 3), &values(xs.numel(), 4));
        assert!(err < FD_TOL, "{err}");
    }

    #[test]
    fn scatter_add_is_the_adjoint_of_gather_and_matches_finite_differences() {
        let (xs, is, axis) = (shape(&[4, 3]), shape(&[5, 3]), 0);
        let idx: Vec<f64> = (0..15).map(|i| ((i * 7) % 4) as f64).collect();
        let it = TensorRef::trusted(&is, &idx);
        assert_eq!(scatter_add_shape(&is, axis, &is, 4).unwrap(), xs);
        let (x, g) = (values(12, 1), values(15, 2));
        let mut gathered = vec![0.0; 15];
        gather(TensorRef::trusted(&xs, &x), axis, it, &mut gathered).unwrap();
        let mut scattered = vec![f64::NAN; 12];
        scatter_add(&g, axis, it, &xs, &mut scattered).unwrap();
        let lhs: f64 = gathered.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&scattered).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} {rhs}");
        let f = |src: &[f64]| {
            let mut y = vec![0.0; 12];
            scatter_add(src, axis, it, &xs, &mut y).unwrap();
            y
        };
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                scatter_add_vjp::<f64, true>(&xs, axis, it, g, gi)
            } else {
                scatter_add_vjp::<f64, false>(&xs, axis, it, g, gi)
            }
        };
        let err = fd_error(&f, &vjp, &values(15, 3), &values(12, 4));
        assert!(err < FD_TOL, "{err}");
    }

    #[test]
    fn bad_positions_and_shapes_are_errors_and_leave_the_output_untouched() {
        let s = shape(&[2, 3]);
        let mut out = [9.0f64; 6];
        for bad in [3.0, -1.0, 0.5, f64::NAN] {
            let err = index_add(&[1.0, 2.0], 1, &[0.0, bad], &s, &mut out);
            assert!(
                matches!(err, Err(Error::IndexOutOfRange { op: INDEX_ADD, .. })),
                "{bad}"
            );
            let idx = [0.0, bad, 1.0, 2.0, 0.0, 1.0];
            let err = scatter_add(&[1.0; 6], 1, TensorRef::trusted(&s, &idx), &s, &mut out);
            assert!(
                matches!(
                    err,
                    Err(Error::IndexOutOfRange {
                        op: SCATTER_ADD,
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(out, [9.0; 6]);
        assert!(matches!(
            index_add_shape(&s, 2, &Shape::vector(3), 4),
            Err(Error::AxisOutOfRange { .. })
        ));
        assert!(matches!(
            index_add_shape(&s, 1, &Shape::vector(2), 4),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            index_add_shape(&s, 1, &s, 4),
            Err(Error::WrongRank { .. })
        ));
        assert!(matches!(
            scatter_add_shape(&s, 0, &shape(&[2, 2]), 4),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_eq!(scatter_add_shape(&s, 1, &s, 5).unwrap(), shape(&[2, 5]));
    }
}
