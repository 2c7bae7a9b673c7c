//! [`TensorRef`]: a borrowed row-major array, the currency between the tape and the kernels.

use ndarray::{ArrayViewD, IxDyn};

use crate::{Error, Float, Shape};

/// A borrowed array in standard (row-major, contiguous) layout: a shape and its elements.
///
/// The kernels work on these rather than on `ndarray` views: building a view costs more than a
/// whole elementwise op on a small array.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a, E> {
    shape: &'a Shape,
    data: &'a [E],
}

impl<'a, E: Float> TensorRef<'a, E> {
    /// Pairs a shape with its data; an error if the lengths disagree.
    pub fn new(shape: &'a Shape, data: &'a [E]) -> Result<Self, Error> {
        if shape.numel() != data.len() {
            return Err(Error::DataLength {
                shape: *shape,
                len: data.len(),
            });
        }
        Ok(TensorRef { shape, data })
    }

    /// Pairs a shape with data the caller has already checked to have the right length (the
    /// tape does, for every value it holds). The lengths are compared in debug builds only; a
    /// wrong length makes a kernel panic on an index, never read out of bounds.
    #[inline]
    pub fn trusted(shape: &'a Shape, data: &'a [E]) -> Self {
        debug_assert_eq!(shape.numel(), data.len());
        TensorRef { shape, data }
    }

    /// The shape.
    #[inline]
    pub fn shape(&self) -> &'a Shape {
        self.shape
    }

    /// The elements in row-major order.
    #[inline]
    pub fn data(&self) -> &'a [E] {
        self.data
    }

    /// The same array as an `ndarray` view.
    pub fn view(&self) -> ArrayViewD<'a, E> {
        ArrayViewD::from_shape(IxDyn(self.shape.dims()), self.data)
            .expect("a TensorRef's length matches its shape")
    }
}
