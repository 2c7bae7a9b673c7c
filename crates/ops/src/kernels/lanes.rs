//! [`Lanes`]: an array seen as the one-dimensional lanes a reduction or a softmax runs along,
//! and the output shape of a reduction over all elements or one axis.
//!
//! A reduction along axis `a` of a row-major array of shape `[..outer, len, ..inner]` reduces
//! `outer · inner` lanes of `len` elements each; lane `j` starts at
//! `(j / inner) · len · inner + j % inner` and steps by `inner`. Its result is element `j` of
//! the output, whether or not the axis is kept (a kept axis of length 1 does not move
//! anything). A reduction over all elements is the single lane of `numel` elements, step 1.

use crate::{Error, Result, Shape};

/// The lanes of an array along one axis (or along all of its elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// The product of the lengths before the axis.
    pub outer: usize,
    /// The axis's length: the elements in each lane.
    pub len: usize,
    /// The product of the lengths after the axis: the step between a lane's elements.
    pub inner: usize,
}

impl Lanes {
    /// The lanes of `shape` along `axis`, or its single lane of all elements for `None`.
    ///
    /// The axis must exist (the shape functions check it first); a missing one is treated as
    /// the reduction over all elements rather than panicking.
    ///
    /// ```
    /// use wengert_ops::{kernels::lanes::Lanes, Shape};
    /// let s = Shape::new(&[2, 3, 4]).unwrap();
    /// assert_eq!(Lanes::of(&s, Some(1)), Lanes { outer: 2, len: 3, inner: 4 });
    /// assert_eq!(Lanes::of(&s, None), Lanes { outer: 1, len: 24, inner: 1 });
    /// ```
    pub fn of(shape: &Shape, axis: Option<usize>) -> Lanes {
        let dims = shape.dims();
        match axis {
            Some(a) if a < dims.len() => Lanes {
                outer: dims[..a].iter().product(),
                len: dims[a],
                inner: dims[a + 1..].iter().product(),
            },
            _ => Lanes {
                outer: 1,
                len: shape.numel(),
                inner: 1,
            },
        }
    }

    /// The number of lanes (the reduction's output element count).
    #[inline]
    pub fn count(&self) -> usize {
        self.outer * self.inner
    }

    /// The offset of lane `j`'s first element.
    #[inline]
    pub fn start(&self, j: usize) -> usize {
        if self.inner == 1 {
            j * self.len
        } else {
            (j / self.inner) * self.len * self.inner + j % self.inner
        }
    }

    /// The offsets of lane `j`'s elements, in order.
    #[inline]
    pub fn offsets(&self, j: usize) -> impl Iterator<Item = usize> + use<> {
        let (start, step) = (self.start(j), self.inner);
        (0..self.len).map(move |k| start + k * step)
    }
}

/// The output shape of a reduction of `x` along `axis` (all elements for `None`), with the
/// reduced axis kept at length 1 or removed; over all elements, `keep_dim` keeps every axis at
/// length 1 (PyTorch's `dim=None, keepdim=True`).
///
/// `empty_ok` says whether the reduction is defined on an empty lane (a sum or a product is;
/// a maximum is not: [`EmptyBatch`](Error::EmptyBatch) then, as PyTorch refuses it too).
///
/// ```
/// use wengert_ops::{kernels::lanes::reduced_shape, Shape};
/// let s = Shape::new(&[2, 3]).unwrap();
/// assert_eq!(reduced_shape("max", &s, Some(1), false, false).unwrap().dims(), &[2]);
/// assert_eq!(reduced_shape("max", &s, None, true, false).unwrap().dims(), &[1, 1]);
/// assert!(reduced_shape("max", &s, Some(2), false, false).is_err());
/// ```
pub fn reduced_shape(
    op: &'static str,
    x: &Shape,
    axis: Option<usize>,
    keep_dim: bool,
    empty_ok: bool,
) -> Result<Shape> {
    let len = match axis {
        Some(a) => x.dim(a).ok_or(Error::AxisOutOfRange {
            op,
            axis: a,
            shape: *x,
        })?,
        None => x.numel(),
    };
    if len == 0 && !empty_ok {
        return Err(Error::EmptyBatch { op, shape: *x });
    }
    match (axis, keep_dim) {
        (Some(a), true) => x.with_dim(a, 1),
        (Some(a), false) => x.without_axis(a),
        (None, true) => Shape::new(&[1; crate::MAX_RANK][..x.rank()]),
        (None, false) => Ok(Shape::SCALAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_visit_every_element_once() {
        for (dims, axis) in [
            (&[2usize, 3, 4][..], Some(0)),
            (&[2, 3, 4], Some(1)),
            (&[2, 3, 4], Some(2)),
            (&[2, 3, 4], None),
            (&[5], Some(0)),
            (&[], None),
            (&[2, 0, 3], Some(2)),
        ] {
            let s = Shape::new(dims).unwrap();
            let lanes = Lanes::of(&s, axis);
            let mut seen = vec![0; s.numel()];
            for j in 0..lanes.count() {
                for o in lanes.offsets(j) {
                    seen[o] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{dims:?} {axis:?}");
        }
    }

    #[test]
    fn reduced_shapes_and_their_errors() {
        let s = Shape::new(&[2, 0, 3]).unwrap();
        assert_eq!(
            reduced_shape("max", &s, Some(2), true, false)
                .unwrap()
                .dims(),
            &[2, 0, 1]
        );
        assert_eq!(
            reduced_shape("max", &s, Some(1), false, false),
            Err(Error::EmptyBatch {
                op: "max",
                shape: s
            })
        );
        assert_eq!(
            reduced_shape("prod", &s, Some(1), false, true)
                .unwrap()
                .dims(),
            &[2, 3]
        );
        assert!(matches!(
            reduced_shape("max", &s, Some(3), false, true),
            Err(Error::AxisOutOfRange { axis: 3, .. })
        ));
        assert_eq!(
            reduced_shape("max", &Shape::SCALAR, None, true, false).unwrap(),
            Shape::SCALAR
        );
    }
}
