//! Weights to and from the `safetensors` format, which PyTorch, JAX and candle read: an
//! 8-byte header length, a JSON header (dtype, shape and byte range of each tensor), then the
//! little-endian data.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use wengert_ops::MAX_RANK;

use crate::container::{self, LoadOptions};
use crate::element::Element;
use crate::format::v1::ElementV1;
use crate::{Error, Result, Weights, write_atomic};

/// The header key safetensors reserves for the file's metadata: no tensor may be named so.
const METADATA_KEY: &str = "__metadata__";

/// Writes weights as a safetensors file, atomically, with no metadata.
pub fn export_safetensors<E: Element>(path: impl AsRef<Path>, weights: &Weights<E>) -> Result<()> {
    write_atomic(path.as_ref(), &safetensors_to_bytes(weights)?)
}

/// Writes weights as a safetensors file, atomically, with `metadata` as the header's
/// `__metadata__` (free text pairs, such as `format` and the layout of the weights).
pub fn export_safetensors_with_metadata<E: Element>(
    path: impl AsRef<Path>,
    weights: &Weights<E>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_atomic(
        path.as_ref(),
        &safetensors_to_bytes_with_metadata(weights, metadata)?,
    )
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

/// A safetensors file's bytes, tensors in name order, with no metadata.
pub fn safetensors_to_bytes<E: Element>(weights: &Weights<E>) -> Result<Vec<u8>> {
    safetensors_to_bytes_with_metadata(weights, &BTreeMap::new())
}

/// A safetensors file's bytes, tensors in name order, with `metadata` (if any) as the
/// header's `__metadata__`. A tensor named `__metadata__` is refused
/// ([`Error::ReservedName`]): its header entry would collide with the metadata's.
///
/// ```
/// use std::collections::BTreeMap;
/// use ndarray::array;
/// use wengert_io::{Error, Weights, safetensors_to_bytes_with_metadata};
///
/// let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
/// let mut weights: Weights<f32> = BTreeMap::new();
/// weights.insert("w".into(), array![1.0f32, 2.0].into_dyn());
/// assert!(safetensors_to_bytes_with_metadata(&weights, &metadata).is_ok());
/// weights.insert("__metadata__".into(), array![3.0f32].into_dyn());
/// let refused = safetensors_to_bytes_with_metadata(&weights, &metadata);
/// assert!(matches!(refused, Err(Error::ReservedName { .. })));
/// ```
pub fn safetensors_to_bytes_with_metadata<E: Element>(
    weights: &Weights<E>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    if weights.contains_key(METADATA_KEY) {
        return Err(Error::ReservedName {
            name: METADATA_KEY.to_string(),
        });
    }
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
    let metadata: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    safetensors::serialize(views, metadata).map_err(st_error)
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
