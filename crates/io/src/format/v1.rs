//! Format version 1. Field order is encoding order; `docs/FORMAT.md` gives each field's bytes.
//! Changing anything here changes the format: add a `v2` module instead.

use serde::{Deserialize, Serialize};

use super::file_type;
use crate::codec::bounded_vec;
use crate::container::FileKind;

/// The element type of every array in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElementV1 {
    /// IEEE-754 single precision.
    F32,
    /// IEEE-754 double precision.
    F64,
}

impl ElementV1 {
    /// The type's name, as in `wengert_ops::Float::NAME`.
    pub fn name(self) -> &'static str {
        match self {
            ElementV1::F32 => "f32",
            ElementV1::F64 => "f64",
        }
    }
}

/// An array's elements in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataV1 {
    /// Single-precision elements.
    F32(#[serde(with = "crate::le_bytes::floats")] Vec<f32>),
    /// Double-precision elements.
    F64(#[serde(with = "crate::le_bytes::floats")] Vec<f64>),
}

impl DataV1 {
    /// The element type held.
    pub fn element(&self) -> ElementV1 {
        match self {
            DataV1::F32(_) => ElementV1::F32,
            DataV1::F64(_) => ElementV1::F64,
        }
    }

    /// The number of elements held.
    pub fn len(&self) -> usize {
        match self {
            DataV1::F32(v) => v.len(),
            DataV1::F64(v) => v.len(),
        }
    }

    /// Whether no element is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array: its dimensions (outermost first) and its elements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorV1 {
    /// The dimensions; empty for a scalar.
    #[serde(deserialize_with = "bounded_vec")]
    pub shape: Vec<u64>,
    /// The elements, `shape`'s product of them.
    pub data: DataV1,
}

/// An array with a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensorV1 {
    /// The name, unique in its file.
    pub name: String,
    /// The array.
    pub tensor: TensorV1,
}

/// A built-in op with its attributes (`wengert_ops::Op`, as it was when version 1 was fixed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's ops, documented on `wengert_ops::Op`
pub enum OpV1 {
    MatMul,
    Add,
    Sub,
    Mul,
    Div,
    AddScalar(f64),
    MulScalar(f64),
    Neg,
    Relu,
    Tanh,
    Sigmoid,
    Exp,
    Log,
    Sum,
    Mean,
    SumAxis { axis: u32, keep_dim: bool },
    MeanAxis { axis: u32, keep_dim: bool },
    Reshape(#[serde(deserialize_with = "bounded_vec")] Vec<u64>),
    Transpose { axis0: u32, axis1: u32 },
    Softmax,
    LogSoftmax,
    Mse,
    CrossEntropy,
    Detach,
}

/// One node of a tape, in recording order: its position is its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeV1 {
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
        op: OpV1,
        /// The ids of its inputs, each smaller than this node's.
        #[serde(deserialize_with = "bounded_vec")]
        inputs: Vec<u32>,
        /// The shape it had when recorded (checked against shape inference on load).
        #[serde(deserialize_with = "bounded_vec")]
        shape: Vec<u64>,
    },
}

/// A name given to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedNodeV1 {
    /// The name, unique in its file.
    pub name: String,
    /// The node's id.
    pub node: u32,
}

/// A saved tape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapeFileV1 {
    /// The element type of every array.
    pub element: ElementV1,
    /// The nodes in recording order.
    #[serde(deserialize_with = "bounded_vec")]
    pub nodes: Vec<NodeV1>,
    /// One name for every `Input` node.
    #[serde(deserialize_with = "bounded_vec")]
    pub inputs: Vec<NamedNodeV1>,
    /// One name for every `Parameter` node.
    #[serde(deserialize_with = "bounded_vec")]
    pub parameters: Vec<NamedNodeV1>,
    /// Names of the nodes a user reads (predictions, the loss).
    #[serde(deserialize_with = "bounded_vec")]
    pub outputs: Vec<NamedNodeV1>,
}

/// A saved named map of arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsFileV1 {
    /// The element type of every array.
    pub element: ElementV1,
    /// The arrays, in increasing name order.
    #[serde(deserialize_with = "bounded_vec")]
    pub tensors: Vec<NamedTensorV1>,
}

/// A scalar in a checkpoint's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant holds the type it is named after
pub enum ScalarV1 {
    U64(u64),
    I64(i64),
    F64(f64),
    Text(String),
}

/// A scalar with a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedScalarV1 {
    /// The name, unique among the scalars.
    pub name: String,
    /// The value.
    pub value: ScalarV1,
}

/// Bytes whose meaning belongs to whoever wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionV1 {
    /// The name, unique among the sections.
    pub name: String,
    /// The bytes.
    #[serde(with = "crate::le_bytes::bytes")]
    pub bytes: Vec<u8>,
}

/// A saved checkpoint: arrays, scalar metadata and opaque sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointFileV1 {
    /// The element type of every array.
    pub element: ElementV1,
    /// The arrays, in increasing name order.
    #[serde(deserialize_with = "bounded_vec")]
    pub arrays: Vec<NamedTensorV1>,
    /// The scalars, in increasing name order.
    #[serde(deserialize_with = "bounded_vec")]
    pub scalars: Vec<NamedScalarV1>,
    /// The sections, in increasing name order.
    #[serde(deserialize_with = "bounded_vec")]
    pub sections: Vec<SectionV1>,
}

file_type!(TapeFileV1, FileKind::Tape, 1);
file_type!(WeightsFileV1, FileKind::Weights, 1);
file_type!(CheckpointFileV1, FileKind::Checkpoint, 1);
