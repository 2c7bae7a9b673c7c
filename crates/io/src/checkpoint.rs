//! [`Checkpoint`]: the generic container a trainer saves its state in: named arrays, scalar
//! metadata and opaque sections (whatever the trainer encodes itself).

use std::collections::BTreeMap;
use std::path::Path;

use crate::container::{self, FileKind, LoadOptions};
use crate::element::{Element, check_element};
use crate::format::v1::{CheckpointFileV1, NamedScalarV1, ScalarV1, SectionV1};
use crate::weights::{check_name, named_from_file, named_to_file};
use crate::{Error, Result, Weights, write_atomic};

/// A scalar in a checkpoint's metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A count: the epoch, the step, a position in the data order, an RNG word.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A real number: a learning rate, a loss.
    F64(f64),
    /// Text: a run's name, a configuration.
    Text(String),
}

/// Everything that decides the rest of a run, as named arrays (weights, optimiser moments),
/// scalars (epoch, step, RNG state) and opaque sections.
///
/// ```
/// use ndarray::array;
/// use wengert_io::{Checkpoint, LoadOptions, Scalar};
///
/// let mut ckpt = Checkpoint::<f64>::default();
/// ckpt.arrays.insert("w".into(), array![1.0, 2.0].into_dyn());
/// ckpt.scalars.insert("step".into(), Scalar::U64(100));
/// ckpt.sections.insert("rng".into(), vec![1, 2, 3]);
/// let bytes = ckpt.to_bytes();
/// assert_eq!(Checkpoint::<f64>::from_bytes(&bytes, &LoadOptions::default()).unwrap(), ckpt);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<E: Element> {
    /// Named arrays.
    pub arrays: Weights<E>,
    /// Named scalars.
    pub scalars: BTreeMap<String, Scalar>,
    /// Named opaque byte strings.
    pub sections: BTreeMap<String, Vec<u8>>,
}

impl<E: Element> Default for Checkpoint<E> {
    fn default() -> Self {
        Checkpoint {
            arrays: BTreeMap::new(),
            scalars: BTreeMap::new(),
            sections: BTreeMap::new(),
        }
    }
}

impl<E: Element> Checkpoint<E> {
    /// Saves the checkpoint atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes())
    }

    /// Loads a checkpoint, checking it as [`from_bytes`](Checkpoint::from_bytes) does.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let bytes = container::read_file(path.as_ref(), options)?;
        Self::from_bytes(&bytes, options)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_scalars(&self.scalars)
    }

    /// The whole file, with `scalars` in place of the checkpoint's own (the arrays are not
    /// copied to change a scalar).
    pub(crate) fn to_bytes_with_scalars(&self, scalars: &BTreeMap<String, Scalar>) -> Vec<u8> {
        CheckpointFileV1 {
            element: E::ELEMENT,
            arrays: named_to_file(&self.arrays),
            scalars: scalars
                .iter()
                .map(|(name, value)| NamedScalarV1 {
                    name: name.clone(),
                    value: match value {
                        Scalar::U64(v) => ScalarV1::U64(*v),
                        Scalar::I64(v) => ScalarV1::I64(*v),
                        Scalar::F64(v) => ScalarV1::F64(*v),
                        Scalar::Text(v) => ScalarV1::Text(v.clone()),
                    },
                })
                .collect(),
            sections: self
                .sections
                .iter()
                .map(|(name, bytes)| SectionV1 {
                    name: name.clone(),
                    bytes: bytes.clone(),
                })
                .collect(),
        }
        .to_bytes()
    }

    /// Decodes a checkpoint file, checking its size, container, encoding, arrays and names.
    pub fn from_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Self> {
        container::check_size(bytes.len() as u64, options)?;
        let (version, payload) = container::unwrap(bytes, FileKind::Checkpoint)?;
        if version != 1 {
            return Err(Error::UnsupportedVersion {
                kind: FileKind::Checkpoint,
                version,
                newest: FileKind::Checkpoint.newest_version(),
            });
        }
        let file = CheckpointFileV1::from_payload(payload)?;
        check_element::<E>(file.element)?;
        let arrays = named_from_file(file.arrays)?;
        let mut scalars = BTreeMap::new();
        for NamedScalarV1 { name, value } in file.scalars {
            check_name(&name, scalars.keys().next_back())?;
            let value = match value {
                ScalarV1::U64(v) => Scalar::U64(v),
                ScalarV1::I64(v) => Scalar::I64(v),
                ScalarV1::F64(v) => Scalar::F64(v),
                ScalarV1::Text(v) => Scalar::Text(v),
            };
            scalars.insert(name, value);
        }
        let mut sections = BTreeMap::new();
        for SectionV1 { name, bytes } in file.sections {
            check_name(&name, sections.keys().next_back())?;
            sections.insert(name, bytes);
        }
        Ok(Checkpoint {
            arrays,
            scalars,
            sections,
        })
    }

    /// A scalar that must be present and a `u64` (a step count), or an error naming it.
    pub fn u64(&self, name: &str) -> Result<u64> {
        match self.scalars.get(name) {
            Some(Scalar::U64(v)) => Ok(*v),
            _ => Err(Error::UnknownName {
                name: name.to_string(),
            }),
        }
    }
}
