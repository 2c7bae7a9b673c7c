//! Weights alone: a named map of arrays, in wengert's container.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;

use crate::container::{self, FileKind, LoadOptions};
use crate::element::{Element, check_element, tensor_from_file, tensor_to_file};
use crate::format::v1::{NamedTensorV1, WeightsFileV1};
use crate::{Error, Result, write_atomic};

/// Named arrays: a model's weights, an optimiser's moments.
pub type Weights<E> = BTreeMap<String, ArrayD<E>>;

/// Saves weights atomically.
///
/// ```
/// use std::collections::BTreeMap;
/// use ndarray::array;
/// use wengert_io::{LoadOptions, Weights, weights_from_bytes, weights_to_bytes};
///
/// let mut weights: Weights<f32> = BTreeMap::new();
/// weights.insert("w".to_string(), array![[1.0f32, 2.0]].into_dyn());
/// let bytes = weights_to_bytes(&weights);
/// assert_eq!(weights_from_bytes::<f32>(&bytes, &LoadOptions::default()).unwrap(), weights);
/// ```
pub fn save_weights<E: Element>(path: impl AsRef<Path>, weights: &Weights<E>) -> Result<()> {
    write_atomic(path.as_ref(), &weights_to_bytes(weights))
}

/// Loads weights, checking the file as [`weights_from_bytes`] does.
pub fn load_weights<E: Element>(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<Weights<E>> {
    let bytes = container::read_file(path.as_ref(), options)?;
    weights_from_bytes(&bytes, options)
}

/// A weights file's bytes.
pub fn weights_to_bytes<E: Element>(weights: &Weights<E>) -> Vec<u8> {
    WeightsFileV1 {
        element: E::ELEMENT,
        tensors: named_to_file(weights),
    }
    .to_bytes()
}

/// Decodes a weights file: its size, container, encoding, element type, shapes, data
/// lengths and names are all checked.
pub fn weights_from_bytes<E: Element>(bytes: &[u8], options: &LoadOptions) -> Result<Weights<E>> {
    container::check_size(bytes.len() as u64, options)?;
    let (version, payload) = container::unwrap(bytes, FileKind::Weights)?;
    match version {
        1 => {
            let file = WeightsFileV1::from_payload(payload)?;
            check_element::<E>(file.element)?;
            named_from_file(file.tensors)
        }
        _ => Err(Error::UnsupportedVersion {
            kind: FileKind::Weights,
            version,
            newest: FileKind::Weights.newest_version(),
        }),
    }
}

pub(crate) fn named_to_file<E: Element>(weights: &Weights<E>) -> Vec<NamedTensorV1> {
    weights
        .iter()
        .map(|(name, array)| NamedTensorV1 {
            name: name.clone(),
            tensor: tensor_to_file(array),
        })
        .collect()
}

pub(crate) fn named_from_file<E: Element>(tensors: Vec<NamedTensorV1>) -> Result<Weights<E>> {
    let mut out = BTreeMap::new();
    for NamedTensorV1 { name, tensor } in tensors {
        check_name(&name, out.keys().next_back())?;
        let array = tensor_from_file(|| format!("tensor \"{name}\""), tensor)?;
        out.insert(name, array);
    }
    Ok(out)
}

/// A map's names are non-empty and strictly increasing (so unique, and in the one order a
/// map is saved in): `name` must come after `last`.
pub(crate) fn check_name(name: &str, last: Option<&String>) -> Result<()> {
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    match last.map(|last| name.cmp(last.as_str())) {
        Some(std::cmp::Ordering::Equal) => Err(Error::DuplicateName {
            name: name.to_string(),
        }),
        Some(std::cmp::Ordering::Less) => Err(Error::NamesOutOfOrder {
            name: name.to_string(),
        }),
        _ => Ok(()),
    }
}
