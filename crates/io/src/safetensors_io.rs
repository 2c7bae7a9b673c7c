//! Weights to and from the `safetensors` format, which PyTorch, JAX and candle read: an
//! 8-byte header length, a JSON header (dtype, shape and byte range of each tensor), then the
//! little-endian data.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use wengert_ops::MAX_RANK;

use crate::container::{self, LoadOptions};
use crate::element::Element;
use crate::format::v1::ElementV1;
use crate::{Error, Result, Weights, write_atomic};

/// Writes weights as a safetensors file, atomically.
pub fn export_safetensors<E: Element>(path: impl AsRef<Path>, weights: &Weights<E>) -> Result<()> {
    write_atomic(path.as_ref(), &safetensors_to_bytes(weights)?)
}

/// Reads weights from a safetensors file, checking its size first (see
/// [`safetensors_from_bytes`]).
pub fn import_safetensors<E: Element>(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<Weights<E>> {
    let bytes = container::read_file(path.as_ref(), options)?;
    safetensors_from_bytes(&bytes, options)
}

/// A safetensors file's bytes, tensors in name order.
pub fn safetensors_to_bytes<E: Element>(weights: &Weights<E>) -> Result<Vec<u8>> {
    let dtype = dtype_of(E::ELEMENT);
    let buffers: Vec<(&str, Vec<usize>, Vec<u8>)> = weights
        .iter()
        .map(|(name, array)| {
            let data = match array.as_slice() {
                Some(slice) => E::to_le_bytes(slice),
                None => E::to_le_bytes(&array.iter().copied().collect::<Vec<E>>()),
            };
            (name.as_str(), array.shape().to_vec(), data)
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(dtype, shape.clone(), data)
                .map(|view| (*name, view))
                .map_err(st_error)
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(st_error)
}

/// Decodes a safetensors file. The crate checks the header (its size, offsets and element
/// counts, with checked arithmetic); this checks the size limit, the ranks and the dtypes.
/// `F32` tensors are read as `f64` exactly; `F64` ones are not narrowed to `f32`.
pub fn safetensors_from_bytes<E: Element>(
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Weights<E>> {
    container::check_size(bytes.len() as u64, options)?;
    let file = SafeTensors::deserialize(bytes).map_err(st_error)?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        if shape.len() > MAX_RANK {
            return Err(Error::RankTooHigh {
                what: format!("tensor \"{name}\""),
                rank: shape.len(),
                max: MAX_RANK,
            });
        }
        let data: Vec<E> = match (view.dtype(), E::ELEMENT) {
            (Dtype::F32, ElementV1::F32) | (Dtype::F64, ElementV1::F64) => {
                E::from_le_bytes(view.data())
            }
            (Dtype::F32, ElementV1::F64) => <f32 as Element>::from_le_bytes(view.data())
                .into_iter()
                .map(|x| E::from_f64(f64::from(x)))
                .collect(),
            (dtype, _) => {
                return Err(Error::UnsupportedDtype {
                    name,
                    dtype: format!("{dtype:?}"),
                    expected: E::NAME,
                });
            }
        };
        let array = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::DataLength {
            what: format!("tensor \"{name}\": {e}"),
            expected: shape.iter().product(),
            found: view.data().len(),
        })?;
        out.insert(name, array);
    }
    Ok(out)
}

fn dtype_of(element: ElementV1) -> Dtype {
    match element {
        ElementV1::F32 => Dtype::F32,
        ElementV1::F64 => Dtype::F64,
    }
}

fn st_error(err: safetensors::SafeTensorError) -> Error {
    Error::Safetensors {
        reason: err.to_string(),
    }
}
