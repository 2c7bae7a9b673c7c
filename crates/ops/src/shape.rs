//! [`Shape`]: the dimensions of an array, held inline so that recording an op never allocates.

use std::fmt;

use crate::Error;

/// The largest number of axes an array may have.
pub const MAX_RANK: usize = 6;

/// The dimensions of a row-major array, at most [`MAX_RANK`] axes, stored inline.
///
/// A rank-0 shape is a scalar with one element.
///
/// ```
/// use wengert_ops::Shape;
/// let s = Shape::new(&[2, 3]).unwrap();
/// assert_eq!(s.dims(), &[2, 3]);
/// assert_eq!(s.numel(), 6);
/// assert_eq!(s.to_string(), "[2, 3]");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
    /// The product of `dims[..rank]`, kept because every op and sweep step asks for it.
    numel: usize,
}

impl Shape {
    /// The shape of a scalar: no axes, one element.
    pub const SCALAR: Shape = Shape {
        dims: [0; MAX_RANK],
        rank: 0,
        numel: 1,
    };

    /// A shape from its dimensions; an error if there are more than [`MAX_RANK`] of them or if
    /// the element count overflows `usize`.
    pub fn new(dims: &[usize]) -> Result<Shape, Error> {
        if dims.len() > MAX_RANK {
            return Err(Error::RankTooHigh {
                rank: dims.len(),
                max: MAX_RANK,
            });
        }
        let mut shape = Shape::SCALAR;
        shape.dims[..dims.len()].copy_from_slice(dims);
        shape.rank = dims.len();
        shape.with_checked_numel()
    }

    /// A one-axis shape of length `n`.
    pub fn vector(n: usize) -> Shape {
        let mut shape = Shape::SCALAR;
        shape.dims[0] = n;
        shape.rank = 1;
        shape.numel = n;
        shape
    }

    /// A two-axis shape `[rows, cols]`; an error if `rows · cols` overflows.
    pub fn matrix(rows: usize, cols: usize) -> Result<Shape, Error> {
        Shape::new(&[rows, cols])
    }

    /// The dimensions, outermost first.
    #[inline]
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// The number of axes.
    #[inline]
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of elements. Every constructor has checked that this does not overflow.
    #[inline]
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The number of elements, or `None` if it overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// The length of `axis`, or `None` if the shape has no such axis.
    #[inline]
    pub fn dim(&self, axis: usize) -> Option<usize> {
        self.dims().get(axis).copied()
    }

    /// The last axis's length (1 for a scalar).
    #[inline]
    pub fn last_dim(&self) -> usize {
        self.dims().last().copied().unwrap_or(1)
    }

    /// Compares dimensions one by one; cheaper than a `memcmp` call for these short arrays.
    #[inline]
    pub fn same_as(&self, other: &Shape) -> bool {
        if self.rank != other.rank || self.numel != other.numel {
            return false;
        }
        let mut i = 0;
        while i < self.rank {
            if self.dims[i] != other.dims[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The shape with `axis` removed, or an error if its element count overflows (an empty
    /// shape's other axes can be huge).
    pub(crate) fn without_axis(&self, axis: usize) -> Result<Shape, Error> {
        let mut out = Shape::SCALAR;
        let mut r = 0;
        for (i, &d) in self.dims().iter().enumerate() {
            if i != axis {
                out.dims[r] = d;
                r += 1;
            }
        }
        out.rank = r;
        out.with_checked_numel()
    }

    /// The shape with `axis` set to length `len`, or an error if its element count overflows
    /// (setting an empty axis to 1 can).
    pub(crate) fn with_dim(&self, axis: usize, len: usize) -> Result<Shape, Error> {
        let mut out = *self;
        out.dims[axis] = len;
        out.with_checked_numel()
    }

    /// The shape with its element count recomputed, or an error if it overflows.
    fn with_checked_numel(mut self) -> Result<Shape, Error> {
        match self.checked_numel() {
            Some(n) => {
                self.numel = n;
                Ok(self)
            }
            None => {
                // The count is meaningless here; the shape is only shown in the error.
                self.numel = 0;
                Err(Error::TooManyElements { shape: self })
            }
        }
    }

    /// The shape with axes `a` and `b` exchanged.
    pub(crate) fn swapped(&self, a: usize, b: usize) -> Shape {
        let mut out = *self;
        out.dims.swap(a, b);
        out
    }

    /// Row-major strides in elements.
    pub(crate) fn strides(&self) -> [usize; MAX_RANK] {
        let mut strides = [0; MAX_RANK];
        let mut acc: usize = 1;
        for axis in (0..self.rank()).rev() {
            strides[axis] = acc;
            // Saturating: only an empty shape can overflow here, and it is never indexed.
            acc = acc.saturating_mul(self.dims[axis]);
        }
        strides
    }
}

impl Default for Shape {
    fn default() -> Self {
        Shape::SCALAR
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl TryFrom<&[usize]> for Shape {
    type Error = Error;
    fn try_from(dims: &[usize]) -> Result<Shape, Error> {
        Shape::new(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_has_one_element() {
        assert_eq!(Shape::SCALAR.numel(), 1);
        assert_eq!(Shape::SCALAR.to_string(), "[]");
    }

    #[test]
    fn too_many_axes_is_an_error() {
        assert!(matches!(
            Shape::new(&[1; 7]),
            Err(Error::RankTooHigh { rank: 7, max: 6 })
        ));
    }

    #[test]
    fn overflowing_element_count_is_an_error() {
        assert!(matches!(
            Shape::new(&[usize::MAX, 2]),
            Err(Error::TooManyElements { .. })
        ));
    }

    #[test]
    fn strides_are_row_major() {
        let s = Shape::new(&[2, 3, 4]).unwrap();
        assert_eq!(&s.strides()[..3], &[12, 4, 1]);
    }

    #[test]
    fn same_as_compares_rank_and_dims() {
        let a = Shape::new(&[2, 3]).unwrap();
        assert!(a.same_as(&Shape::new(&[2, 3]).unwrap()));
        assert!(!a.same_as(&Shape::new(&[2, 3, 1]).unwrap()));
        assert!(!a.same_as(&Shape::new(&[3, 2]).unwrap()));
    }
}
