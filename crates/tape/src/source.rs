//! [`IntoValue`]: what a tape accepts as a leaf's value, moved where a move will do.

use ndarray::{Array, ArrayBase, Data, Dimension};
use wengert_ops::{Error, Float, Result, Shape};

/// Something that can become a node's value: an owned array (moved in, no copy when it is in
/// standard layout), a borrowed array or view (copied into the tape's reused buffer), a `Vec`
/// (a vector), or a single number (a scalar).
///
/// ```
/// use ndarray::array;
/// use wengert_tape::Tape;
///
/// let mut tape = Tape::<f32>::new();
/// let w = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let copied = tape.parameter(&w).unwrap(); // copies; `w` stays with the caller
/// let moved = tape.parameter(w).unwrap(); // moves the buffer in
/// let scalar = tape.input(0.5f32).unwrap();
/// assert_eq!(tape.shape(copied).unwrap(), tape.shape(moved).unwrap());
/// assert_eq!(tape.shape(scalar).unwrap().rank(), 0);
/// ```
pub trait IntoValue<E: Float> {
    /// Writes the value into `buf` (reusing its allocation where it copies) and returns its shape.
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape>;
}

fn copy_into<E: Float, S: Data<Elem = E>, D: Dimension>(
    a: &ArrayBase<S, D>,
    buf: &mut Vec<E>,
) -> Result<Shape> {
    let shape = Shape::new(a.shape())?;
    buf.clear();
    match a.as_slice() {
        Some(slice) => buf.extend_from_slice(slice),
        None => buf.extend(a.iter().copied()),
    }
    Ok(shape)
}

impl<E: Float, D: Dimension> IntoValue<E> for Array<E, D> {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        let shape = Shape::new(self.shape())?;
        if !self.is_standard_layout() {
            return copy_into(&self, buf);
        }
        let n = shape.numel();
        let (vec, offset) = self.into_raw_vec_and_offset();
        if vec.len() == n && offset.unwrap_or(0) == 0 {
            *buf = vec;
        } else {
            // A sliced array keeps its whole original buffer; take only its own elements.
            let start = offset.unwrap_or(0);
            buf.clear();
            buf.extend_from_slice(&vec[start..start + n]);
        }
        Ok(shape)
    }
}

impl<E: Float, S: Data<Elem = E>, D: Dimension> IntoValue<E> for &ArrayBase<S, D> {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        copy_into(self, buf)
    }
}

impl<'a, E: Float, D: Dimension> IntoValue<E> for ndarray::ArrayView<'a, E, D> {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        copy_into(&self, buf)
    }
}

impl<E: Float> IntoValue<E> for Vec<E> {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        let shape = Shape::vector(self.len());
        *buf = self;
        Ok(shape)
    }
}

impl<E: Float> IntoValue<E> for &[E] {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        buf.clear();
        buf.extend_from_slice(self);
        Ok(Shape::vector(self.len()))
    }
}

macro_rules! scalar_value {
    ($($t:ty),*) => {$(
        impl IntoValue<$t> for $t {
            fn write_into(self, buf: &mut Vec<$t>) -> Result<Shape> {
                buf.clear();
                buf.push(self);
                Ok(Shape::SCALAR)
            }
        }
    )*};
}
scalar_value!(f32, f64);

/// A shape and row-major data given separately; an error if their lengths disagree.
///
/// ```
/// use wengert_tape::{Tape, Shaped};
/// let mut tape = Tape::<f64>::new();
/// let x = tape.input(Shaped(&[2, 2], &[1.0, 2.0, 3.0, 4.0])).unwrap();
/// assert_eq!(tape.shape(x).unwrap().dims(), &[2, 2]);
/// assert!(tape.input(Shaped(&[3], &[1.0])).is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Shaped<'a, E>(pub &'a [usize], pub &'a [E]);

impl<E: Float> IntoValue<E> for Shaped<'_, E> {
    fn write_into(self, buf: &mut Vec<E>) -> Result<Shape> {
        let shape = Shape::new(self.0)?;
        if shape.numel() != self.1.len() {
            return Err(Error::DataLength {
                shape,
                len: self.1.len(),
            });
        }
        buf.clear();
        buf.extend_from_slice(self.1);
        Ok(shape)
    }
}
