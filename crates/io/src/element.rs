//! [`Element`]: how `f32` and `f64` arrays go to and from the on-disk types, with every
//! conversion from the file checked.

use ndarray::{ArrayD, IxDyn};
use wengert_ops::{Float, MAX_RANK, Shape};

use crate::format::v1::{DataV1, ElementV1, TensorV1};
use crate::{Error, Result};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// An element type that can be saved: `f32` or `f64` (the engine's [`Float`]s).
pub trait Element: Float + sealed::Sealed {
    /// The type's tag in a file.
    const ELEMENT: ElementV1;

    /// Wraps elements for a file.
    fn wrap(data: Vec<Self>) -> DataV1;

    /// Takes elements from a file, or gives them back if they are of the other type.
    fn unwrap(data: DataV1) -> std::result::Result<Vec<Self>, DataV1>;

    /// The little-endian bytes of `data`, back to back (safetensors' layout).
    fn to_le_bytes(data: &[Self]) -> Vec<u8>;

    /// Elements from little-endian bytes of this type's width (a partial chunk is ignored).
    fn from_le_bytes(bytes: &[u8]) -> Vec<Self>;
}

impl Element for f32 {
    const ELEMENT: ElementV1 = ElementV1::F32;
    fn wrap(data: Vec<f32>) -> DataV1 {
        DataV1::F32(data)
    }
    fn unwrap(data: DataV1) -> std::result::Result<Vec<f32>, DataV1> {
        match data {
            DataV1::F32(v) => Ok(v),
            other => Err(other),
        }
    }
    fn to_le_bytes(data: &[f32]) -> Vec<u8> {
        // Fixed-size chunks of a buffer of the final size: the loop compiles to a copy.
        let mut out = vec![0u8; std::mem::size_of_val(data)];
        for (chunk, x) in out.chunks_exact_mut(4).zip(data) {
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        out
    }
    fn from_le_bytes(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunks")))
            .collect()
    }
}

impl Element for f64 {
    const ELEMENT: ElementV1 = ElementV1::F64;
    fn wrap(data: Vec<f64>) -> DataV1 {
        DataV1::F64(data)
    }
    fn unwrap(data: DataV1) -> std::result::Result<Vec<f64>, DataV1> {
        match data {
            DataV1::F64(v) => Ok(v),
            other => Err(other),
        }
    }
    fn to_le_bytes(data: &[f64]) -> Vec<u8> {
        // Fixed-size chunks of a buffer of the final size: the loop compiles to a copy.
        let mut out = vec![0u8; std::mem::size_of_val(data)];
        for (chunk, x) in out.chunks_exact_mut(8).zip(data) {
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        out
    }
    fn from_le_bytes(bytes: &[u8]) -> Vec<f64> {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunks")))
            .collect()
    }
}

/// Checks that a file holds elements of type `E`.
pub(crate) fn check_element<E: Element>(found: ElementV1) -> Result<()> {
    if found != E::ELEMENT {
        return Err(Error::ElementTypeMismatch {
            expected: E::NAME,
            found: found.name(),
        });
    }
    Ok(())
}

/// Dimensions as a file stores them.
pub(crate) fn dims_to_file(dims: &[usize]) -> Vec<u64> {
    dims.iter().map(|&d| d as u64).collect()
}

/// Dimensions from a file: at most [`MAX_RANK`] axes, each fitting `usize`, with an element
/// count that does not overflow.
pub(crate) fn dims_from_file(what: impl Fn() -> String, dims: &[u64]) -> Result<Vec<usize>> {
    if dims.len() > MAX_RANK {
        return Err(Error::RankTooHigh {
            what: what(),
            rank: dims.len(),
            max: MAX_RANK,
        });
    }
    let overflow = || Error::ElementCountOverflow {
        what: what(),
        dims: dims.to_vec(),
    };
    let mut out = Vec::with_capacity(dims.len());
    let mut count = 1usize;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| overflow())?;
        count = count.checked_mul(d).ok_or_else(overflow)?;
        out.push(d);
    }
    Ok(out)
}

/// A shape from a file, checked as [`dims_from_file`] does.
pub(crate) fn shape_from_file(what: impl Fn() -> String, dims: &[u64]) -> Result<Shape> {
    let checked = dims_from_file(&what, dims)?;
    // The rank and the element count were checked above; this cannot fail.
    Shape::new(&checked).map_err(|_| Error::ElementCountOverflow {
        what: what(),
        dims: dims.to_vec(),
    })
}

/// An array for a file, in row-major order whatever its layout in memory.
pub(crate) fn tensor_to_file<E: Element>(array: &ArrayD<E>) -> TensorV1 {
    let data = match array.as_slice() {
        Some(slice) => slice.to_vec(),
        None => array.iter().copied().collect(),
    };
    TensorV1 {
        shape: dims_to_file(array.shape()),
        data: E::wrap(data),
    }
}

/// An array from a file, checking its rank, element count, element type and data length.
pub(crate) fn tensor_from_file<E: Element>(
    what: impl Fn() -> String,
    tensor: TensorV1,
) -> Result<ArrayD<E>> {
    let dims = dims_from_file(&what, &tensor.shape)?;
    let expected: usize = dims.iter().product();
    let found_element = tensor.data.element();
    let data = E::unwrap(tensor.data).map_err(|_| Error::ElementTypeMismatch {
        expected: E::NAME,
        found: found_element.name(),
    })?;
    if data.len() != expected {
        return Err(Error::DataLength {
            what: what(),
            expected,
            found: data.len(),
        });
    }
    ArrayD::from_shape_vec(IxDyn(&dims), data).map_err(|e| Error::Decode {
        reason: format!("{}: {e}", what()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what() -> String {
        "tensor".to_string()
    }

    #[test]
    fn an_overflowing_shape_is_refused_before_any_allocation() {
        let err = dims_from_file(what, &[1 << 40, 1 << 40]).unwrap_err();
        assert!(matches!(err, Error::ElementCountOverflow { .. }), "{err}");
        let err = dims_from_file(what, &[1; 7]).unwrap_err();
        assert!(matches!(err, Error::RankTooHigh { rank: 7, .. }), "{err}");
    }

    #[test]
    fn tensors_round_trip_and_mismatches_are_refused() {
        let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
        let t = tensor_to_file(&a);
        assert_eq!(tensor_from_file::<f32>(what, t.clone()).unwrap(), a);
        assert!(matches!(
            tensor_from_file::<f64>(what, t.clone()),
            Err(Error::ElementTypeMismatch { .. })
        ));
        let short = TensorV1 {
            shape: vec![2, 3],
            ..t
        };
        assert!(matches!(
            tensor_from_file::<f32>(what, short),
            Err(Error::DataLength {
                expected: 6,
                found: 4,
                ..
            })
        ));
    }

    #[test]
    fn a_transposed_array_is_saved_in_row_major_order() {
        let a = ndarray::array![[1.0f64, 2.0], [3.0, 4.0]].into_dyn();
        let t = tensor_to_file(&a.reversed_axes());
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(t.data, DataV1::F64(vec![1.0, 3.0, 2.0, 4.0]));
    }
}
