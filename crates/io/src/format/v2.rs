//! Format version 2 of the tape: version 1's tape with a list of metadata (string keys and
//! values: what the model was trained on, its class names). Weights and checkpoints are still
//! at version 1. Field order is encoding order; `docs/FORMAT.md` gives each field's bytes.
//! Changing anything here changes the format: add a `v3` module instead.

use serde::{Deserialize, Serialize};

use super::file_type;
use super::v1::{self, ElementV1, NamedNodeV1, TensorV1};
use crate::codec::bounded_vec;
use crate::container::FileKind;

/// The ops of version 2: version 1's, unchanged. An op added later makes this an enum of its
/// own (and `NodeV2` then differs from `NodeV1` in its `Op` variant only).
pub type OpV2 = v1::OpV1;

/// One node of a tape, in recording order: its position is its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeV2 {
    /// A value fed in at replay, with the shape it had when recorded.
    Input {
        /// The recorded shape.
        #[serde(deserialize_with = "bounded_vec")]
        shape: Vec<u64>,
    },
    /// A trained value.
    Parameter {
        /// Its value.
        value: TensorV1,
    },
    /// A built-in op applied to earlier nodes.
    Op {
        /// The op.
        op: OpV2,
        /// The ids of its inputs, each smaller than this node's.
        #[serde(deserialize_with = "bounded_vec")]
        inputs: Vec<u32>,
        /// The shape it had when recorded (checked against shape inference on load).
        #[serde(deserialize_with = "bounded_vec")]
        shape: Vec<u64>,
    },
}

/// One metadata entry: a key and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataV2 {
    /// The key: 1 to [`MAX_METADATA_KEY_BYTES`](crate::MAX_METADATA_KEY_BYTES) bytes of
    /// printable ASCII, unique, the list in strictly increasing order.
    pub key: String,
    /// The value: any UTF-8 text.
    pub value: String,
}

/// A saved tape, version 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapeFileV2 {
    /// The element type of every array.
    pub element: ElementV1,
    /// The nodes in recording order.
    #[serde(deserialize_with = "bounded_vec")]
    pub nodes: Vec<NodeV2>,
    /// One name for every `Input` node.
    #[serde(deserialize_with = "bounded_vec")]
    pub inputs: Vec<NamedNodeV1>,
    /// One name for every `Parameter` node.
    #[serde(deserialize_with = "bounded_vec")]
    pub parameters: Vec<NamedNodeV1>,
    /// Names of the nodes a user reads (predictions, the loss).
    #[serde(deserialize_with = "bounded_vec")]
    pub outputs: Vec<NamedNodeV1>,
    /// What the writer chose to record about the model, in increasing key order.
    #[serde(deserialize_with = "bounded_vec")]
    pub metadata: Vec<MetadataV2>,
}

impl From<v1::NodeV1> for NodeV2 {
    fn from(node: v1::NodeV1) -> Self {
        match node {
            v1::NodeV1::Input { shape } => NodeV2::Input { shape },
            v1::NodeV1::Parameter { value } => NodeV2::Parameter { value },
            v1::NodeV1::Op { op, inputs, shape } => NodeV2::Op { op, inputs, shape },
        }
    }
}

impl From<v1::TapeFileV1> for TapeFileV2 {
    /// A version-1 tape read as version 2: the same nodes and names, no metadata.
    fn from(file: v1::TapeFileV1) -> Self {
        TapeFileV2 {
            element: file.element,
            nodes: file.nodes.into_iter().map(NodeV2::from).collect(),
            inputs: file.inputs,
            parameters: file.parameters,
            outputs: file.outputs,
            metadata: Vec::new(),
        }
    }
}

file_type!(TapeFileV2, FileKind::Tape, 2);
