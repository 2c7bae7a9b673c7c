//! [`TapeModel`]: a saved tape in memory, validated: nodes, names and parameter values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ndarray::ArrayD;
use wengert_ops::{Op, Shape};

use crate::container::{self, FileKind, LoadOptions};
use crate::element::{
    Element, check_element, dims_to_file, shape_from_file, tensor_from_file, tensor_to_file,
};
use crate::format::v1::{NamedNodeV1, TapeFileV1};
use crate::format::v2::{NodeV2, TapeFileV2};
use crate::op_v2::{op_from_file, op_to_file};
use crate::{Error, Result, metadata, write_atomic};

/// What a node of a saved tape is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModelNode<E> {
    /// Fed at replay; `shape` is the recorded one.
    Input { shape: Shape },
    /// A trained value.
    Parameter { value: ArrayD<E> },
    /// A built-in op of earlier nodes.
    Op {
        op: Op,
        inputs: Vec<u32>,
        shape: Shape,
    },
}

impl<E: Element> ModelNode<E> {
    /// The shape recorded for the node.
    pub(crate) fn shape(&self) -> Shape {
        match self {
            ModelNode::Input { shape } | ModelNode::Op { shape, .. } => *shape,
            // A validated parameter's rank and element count fit a Shape.
            ModelNode::Parameter { value } => Shape::new(value.shape()).unwrap_or(Shape::SCALAR),
        }
    }
}

/// A saved tape, loaded and checked: the recorded computation (built-in ops only), which
/// nodes are inputs, parameters and outputs, by name, and the parameters' values.
///
/// Make one from a live tape with [`TapeSaver`](crate::TapeSaver), or load one with
/// [`TapeModel::load`]; run it on new inputs with [`replay`](TapeModel::replay).
#[derive(Debug, Clone, PartialEq)]
pub struct TapeModel<E: Element> {
    pub(crate) nodes: Vec<ModelNode<E>>,
    pub(crate) inputs: Vec<(String, u32)>,
    pub(crate) parameters: Vec<(String, u32)>,
    pub(crate) outputs: Vec<(String, u32)>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl<E: Element> TapeModel<E> {
    /// Loads a tape file, checking everything (see [`from_bytes`](TapeModel::from_bytes)).
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let bytes = container::read_file(path.as_ref(), options)?;
        Self::from_bytes(&bytes, options)
    }

    /// Decodes a whole tape file. The size, the container (magic, kind, version, length,
    /// CRC), the encoding (under a byte limit, with no trailing bytes) and the meaning (ids,
    /// arities, shapes, element counts, names) are all checked; any fault is an [`Error`].
    pub fn from_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Self> {
        container::check_size(bytes.len() as u64, options)?;
        let (version, payload) = container::unwrap(bytes, FileKind::Tape)?;
        match version {
            1 => Self::from_file(TapeFileV1::from_payload(payload)?),
            2 => Self::from_file(TapeFileV2::from_payload(payload)?),
            _ => Err(Error::UnsupportedVersion {
                kind: FileKind::Tape,
                version,
                newest: FileKind::Tape.newest_version(),
            }),
        }
    }

    /// Saves the tape atomically (see [`write_atomic`](crate::write_atomic)).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes())
    }

    /// The whole file, in the newest format version.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_file().to_bytes()
    }

    /// The format's form of the tape, in the newest version.
    pub fn to_file(&self) -> TapeFileV2 {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match node {
                ModelNode::Input { shape } => NodeV2::Input {
                    shape: dims_to_file(shape.dims()),
                },
                ModelNode::Parameter { value } => NodeV2::Parameter {
                    value: tensor_to_file(value),
                },
                ModelNode::Op { op, inputs, shape } => NodeV2::Op {
                    // A model holds only ops that were checked encodable when it was made.
                    op: op_to_file(i as u32, op).expect("checked when the model was made"),
                    inputs: inputs.clone(),
                    shape: dims_to_file(shape.dims()),
                },
            })
            .collect();
        let named = |list: &[(String, u32)]| {
            list.iter()
                .map(|(name, node)| NamedNodeV1 {
                    name: name.clone(),
                    node: *node,
                })
                .collect()
        };
        TapeFileV2 {
            element: E::ELEMENT,
            nodes,
            inputs: named(&self.inputs),
            parameters: named(&self.parameters),
            outputs: named(&self.outputs),
            metadata: metadata::to_file(&self.metadata),
        }
    }

    /// Checks a decoded file's meaning and converts it; a version-1 file is read as a
    /// version-2 one with no metadata.
    pub fn from_file(file: impl Into<TapeFileV2>) -> Result<Self> {
        let file: TapeFileV2 = file.into();
        check_element::<E>(file.element)?;
        let len = file.nodes.len();
        if u32::try_from(len).is_err() {
            return Err(Error::Decode {
                reason: format!("{len} nodes are more than a tape holds"),
            });
        }
        let mut nodes: Vec<ModelNode<E>> = Vec::with_capacity(len);
        for (i, node) in file.nodes.into_iter().enumerate() {
            let id = i as u32;
            let what = || format!("node {i}");
            let node = match node {
                NodeV2::Input { shape } => ModelNode::Input {
                    shape: shape_from_file(what, &shape)?,
                },
                NodeV2::Parameter { value } => ModelNode::Parameter {
                    value: tensor_from_file(what, value)?,
                },
                NodeV2::Op { op, inputs, shape } => {
                    let op = op_from_file(id, &op)?;
                    check_inputs(id, &op, &inputs, len)?;
                    let input_shapes: Vec<Shape> =
                        inputs.iter().map(|&j| nodes[j as usize].shape()).collect();
                    let refs: Vec<&Shape> = input_shapes.iter().collect();
                    let inferred = op
                        .output_shape(&refs)
                        .map_err(|source| Error::ShapeInference { node: id, source })?;
                    let stored = shape_from_file(what, &shape)?;
                    if stored != inferred {
                        return Err(Error::ShapeMismatch {
                            node: id,
                            stored,
                            inferred,
                        });
                    }
                    ModelNode::Op {
                        op,
                        inputs,
                        shape: stored,
                    }
                }
            };
            nodes.push(node);
        }
        let unnamed = |list: Vec<NamedNodeV1>| -> Vec<(String, u32)> {
            list.into_iter().map(|n| (n.name, n.node)).collect()
        };
        let model = TapeModel {
            nodes,
            inputs: unnamed(file.inputs),
            parameters: unnamed(file.parameters),
            outputs: unnamed(file.outputs),
            metadata: metadata::from_file(file.metadata)?,
        };
        model.check_names()?;
        Ok(model)
    }

    /// Names are non-empty and unique, name nodes that exist and have the list's role, and
    /// every input and parameter has exactly one.
    pub(crate) fn check_names(&self) -> Result<()> {
        let len = self.nodes.len();
        let mut seen = BTreeSet::new();
        let mut times_named = vec![0u32; len];
        let lists = [
            (&self.inputs, "input"),
            (&self.parameters, "parameter"),
            (&self.outputs, "output"),
        ];
        for (list, role) in lists {
            for (name, node) in list {
                if name.is_empty() {
                    return Err(Error::EmptyName);
                }
                if !seen.insert(name.as_str()) {
                    return Err(Error::DuplicateName { name: name.clone() });
                }
                let index = *node as usize;
                let Some(target) = self.nodes.get(index) else {
                    return Err(Error::NodeOutOfRange {
                        what: format!("{role} \"{name}\""),
                        id: *node,
                        len,
                    });
                };
                let fits = match role {
                    "input" => matches!(target, ModelNode::Input { .. }),
                    "parameter" => matches!(target, ModelNode::Parameter { .. }),
                    _ => true,
                };
                if !fits {
                    return Err(Error::WrongRole {
                        name: name.clone(),
                        node: *node,
                        expected: role,
                    });
                }
                times_named[index] += 1;
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let role = match node {
                ModelNode::Input { .. } => "input",
                ModelNode::Parameter { .. } => "parameter",
                ModelNode::Op { .. } => continue,
            };
            // An input or parameter may also be an output, hence "at least one, at most two".
            let as_output = self
                .outputs
                .iter()
                .filter(|(_, n)| *n as usize == i)
                .count() as u32;
            if times_named[i] - as_output != 1 {
                return Err(Error::Unnamed {
                    node: i as u32,
                    role,
                });
            }
        }
        Ok(())
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tape has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The bytes the parameters' values take in memory (the model's own copy; a replay
    /// copies those it needs onto its tape, counted by its [`ReplayPlan`](crate::ReplayPlan)).
    pub fn parameter_bytes(&self) -> u128 {
        let elements: u128 = self
            .nodes
            .iter()
            .map(|node| match node {
                ModelNode::Parameter { value } => value.len() as u128,
                _ => 0,
            })
            .sum();
        elements * std::mem::size_of::<E>() as u128
    }

    /// The metadata its writer recorded (empty for a version-1 file), by key.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// One metadata value.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Sets one metadata value, replacing any before it. The key must be 1 to
    /// [`MAX_METADATA_KEY_BYTES`](crate::MAX_METADATA_KEY_BYTES) bytes of printable ASCII, and
    /// the whole within [`MAX_METADATA_ENTRIES`](crate::MAX_METADATA_ENTRIES) entries and
    /// [`MAX_METADATA_BYTES`](crate::MAX_METADATA_BYTES); on an error nothing changes.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<()> {
        let key = key.into();
        metadata::check_key(&key)?;
        let previous = self.metadata.insert(key.clone(), value.into());
        if let Err(e) = metadata::check(&self.metadata) {
            match previous {
                Some(p) => self.metadata.insert(key, p),
                None => self.metadata.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// The inputs' names, in node order.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|(n, _)| n.as_str())
    }

    /// The parameters' names, in node order.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.iter().map(|(n, _)| n.as_str())
    }

    /// The outputs' names, in the order they were given.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|(n, _)| n.as_str())
    }

    /// The shape an input had when it was recorded.
    pub fn input_shape(&self, name: &str) -> Option<Shape> {
        let (_, node) = self.inputs.iter().find(|(n, _)| n == name)?;
        Some(self.nodes[*node as usize].shape())
    }

    /// The shape an output had when it was recorded.
    pub fn output_shape(&self, name: &str) -> Option<Shape> {
        let (_, node) = self.outputs.iter().find(|(n, _)| n == name)?;
        Some(self.nodes[*node as usize].shape())
    }

    /// A parameter's value.
    pub fn parameter(&self, name: &str) -> Option<&ArrayD<E>> {
        let (_, node) = self.parameters.iter().find(|(n, _)| n == name)?;
        match &self.nodes[*node as usize] {
            ModelNode::Parameter { value } => Some(value),
            _ => None,
        }
    }

    /// Replaces a parameter's value (after a training step); the shape must stay the same.
    pub fn set_parameter(&mut self, name: &str, value: ArrayD<E>) -> Result<()> {
        let Some((_, node)) = self.parameters.iter().find(|(n, _)| n == name) else {
            return Err(Error::UnknownName {
                name: name.to_string(),
            });
        };
        let ModelNode::Parameter { value: slot } = &mut self.nodes[*node as usize] else {
            return Err(Error::UnknownName {
                name: name.to_string(),
            });
        };
        if slot.shape() != value.shape() {
            return Err(Error::ParameterShape {
                name: name.to_string(),
                expected: slot.shape().to_vec(),
                found: value.shape().to_vec(),
            });
        }
        *slot = value;
        Ok(())
    }

    /// Every parameter's value by name: the weights, to save alone or export.
    pub fn weights(&self) -> BTreeMap<String, ArrayD<E>> {
        self.parameters
            .iter()
            .filter_map(|(name, node)| match &self.nodes[*node as usize] {
                ModelNode::Parameter { value } => Some((name.clone(), value.clone())),
                _ => None,
            })
            .collect()
    }

    /// Replaces parameters' values by name (from a weights file); every name must be a
    /// parameter of the same shape, and nothing changes unless all are.
    pub fn set_weights(&mut self, weights: &BTreeMap<String, ArrayD<E>>) -> Result<()> {
        for (name, value) in weights {
            let Some(current) = self.parameter(name) else {
                return Err(Error::UnknownName { name: name.clone() });
            };
            if current.shape() != value.shape() {
                return Err(Error::ParameterShape {
                    name: name.clone(),
                    expected: current.shape().to_vec(),
                    found: value.shape().to_vec(),
                });
            }
        }
        for (name, value) in weights {
            self.set_parameter(name, value.clone())?;
        }
        Ok(())
    }
}

/// An op node's inputs: as many as the op takes, each an earlier node.
fn check_inputs(node: u32, op: &Op, inputs: &[u32], len: usize) -> Result<()> {
    if !op.accepts(inputs.len()) {
        return Err(Error::WrongArity {
            node,
            op: op.name(),
            expected: op.arity(),
            found: inputs.len(),
        });
    }
    for (k, &input) in inputs.iter().enumerate() {
        if input == node {
            return Err(Error::SelfReference { node });
        }
        if input as usize >= len {
            return Err(Error::NodeOutOfRange {
                what: format!("input {k} of node {node}"),
                id: input,
                len,
            });
        }
        if input > node {
            return Err(Error::ForwardReference { node, input });
        }
    }
    Ok(())
}
