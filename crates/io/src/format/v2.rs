//! Format version 2 of the tape: version 1's tape with a list of metadata (string keys and
//! values: what the model was trained on, its class names). Weights and checkpoints are still
//! at version 1. Field order is encoding order; `docs/FORMAT.md` gives each field's bytes.
//! Changing anything here changes the format: add a `v3` module instead.

use serde::{Deserialize, Serialize};

use super::file_type;
use super::v1::{self, ElementV1, NamedNodeV1, TensorV1};
use crate::codec::bounded_vec;
use crate::container::FileKind;

/// The ops of version 2: version 1's first, with the same tags and meaning, then the ops
/// added since (`wengert_ops::Op`'s of the same name). A new op is appended, never inserted:
/// a variant's tag is its position. A missing clamp bound is stored as an infinity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's ops, documented on `wengert_ops::Op`
pub enum OpV2 {
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
    SumAxis {
        axis: u32,
        keep_dim: bool,
    },
    MeanAxis {
        axis: u32,
        keep_dim: bool,
    },
    Reshape(#[serde(deserialize_with = "bounded_vec")] Vec<u64>),
    Transpose {
        axis0: u32,
        axis1: u32,
    },
    Softmax,
    LogSoftmax,
    Mse,
    CrossEntropy,
    Detach,
    // Version 2's own, from tag 24.
    Sqrt,
    Rsqrt,
    Abs,
    Square,
    Powf(f64),
    Sin,
    Cos,
    Log1p,
    Expm1,
    Softplus {
        beta: f64,
        threshold: f64,
    },
    LeakyRelu(f64),
    Elu(f64),
    Silu,
    Clamp {
        min: f64,
        max: f64,
    },
    Sign,
    Maximum,
    Minimum,
    Pow,
    Erf,
    Gelu,
    GeluTanh,
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    // From tag 50: reductions, softmax on any axis, losses with a reduction, shape and
    // indexing ops, batched matmul and dropout.
    Reduce {
        op: ReduceOpV2,
        /// `None` reduces over all elements.
        axis: Option<u32>,
        keep_dim: bool,
    },
    SoftmaxAxis {
        axis: u32,
    },
    LogSoftmaxAxis {
        axis: u32,
    },
    Loss(LossOpV2),
    BroadcastTo(#[serde(deserialize_with = "bounded_vec")] Vec<u64>),
    Narrow {
        axis: u32,
        start: i64,
        length: u64,
    },
    IndexSelect {
        axis: u32,
    },
    Gather {
        axis: u32,
    },
    BatchedMatMul,
    Dropout {
        p: f64,
        seed: u64,
    },
    Slice {
        axis: u32,
        start: i64,
        end: i64,
        step: i64,
    },
    /// One `[before, after]` pair per axis of the input, in axis order.
    Pad {
        #[serde(deserialize_with = "bounded_vec")]
        pads: Vec<[u32; 2]>,
        value: f64,
    },
    // From tag 62: ops of any number of inputs, `where`, losses with weights.
    /// Any number (at least 1) of inputs joined along `axis`.
    Concat {
        axis: u32,
    },
    /// Any number (at least 1) of inputs stacked along a new axis at `axis`.
    Stack {
        axis: u32,
    },
    /// Three inputs: the condition, the value where it is not 0, the value elsewhere.
    Where,
    /// A loss whose third input holds its weights (`pos_weight` or class weights).
    WeightedLoss(LossOpV2),
    // From tag 66: the adjoints of the indexing ops, which their recorded VJPs record.
    IndexAdd {
        axis: u32,
        len: u64,
    },
    ScatterAdd {
        axis: u32,
        len: u64,
    },
    // From tag 68: the layers' ops (issue 12).
    /// `conv2d`: (height, width) pairs of stride, padding and dilation, and the groups; two
    /// inputs, or three with a bias.
    Conv2d {
        stride: [u64; 2],
        padding: [u64; 2],
        dilation: [u64; 2],
        groups: u64,
    },
    /// `conv1d`: stride, padding, dilation and groups.
    Conv1d {
        stride: u64,
        padding: u64,
        dilation: u64,
        groups: u64,
    },
    /// `max_pool2d`: (height, width) pairs of kernel, stride and padding.
    MaxPool2d {
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
    },
    /// `avg_pool2d`: as `MaxPool2d`, and whether the padding counts in the divisor.
    AvgPool2d {
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
        count_include_pad: bool,
    },
    /// `adaptive_avg_pool2d`: the output's (height, width).
    AdaptiveAvgPool2d {
        size: [u64; 2],
    },
    // From tag 73: the embedding and layer-norm ops (issue 12).
    /// `embedding`: the table row that receives no gradient, if any; two inputs, the table
    /// and the indices.
    Embedding {
        padding_idx: Option<u64>,
    },
    /// `layer_norm`: the trailing axes a row spans, eps, and whether a scale and a shift
    /// follow x among the inputs.
    LayerNorm {
        axes: u32,
        eps: f64,
        gamma: bool,
        beta: bool,
    },
    // From tag 75: the convolution's VJPs as ops, which its recorded VJP records (issue 16).
    /// `conv2d_input_grad`: as `Conv2d` (three inputs: the output's gradient, w, and a node
    /// of x's shape).
    Conv2dInputGrad {
        stride: [u64; 2],
        padding: [u64; 2],
        dilation: [u64; 2],
        groups: u64,
    },
    /// `conv2d_weight_grad`: as `Conv2d` (three inputs: x, the output's gradient, and a node
    /// of w's shape).
    Conv2dWeightGrad {
        stride: [u64; 2],
        padding: [u64; 2],
        dilation: [u64; 2],
        groups: u64,
    },
    /// `max_pool2d_grad`: as `MaxPool2d` (two inputs, x and the pooled gradient).
    MaxPool2dGrad {
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
    },
    /// `max_pool2d_select`: as `MaxPool2d` (two inputs, x and a value of x's shape).
    MaxPool2dSelect {
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
    },
    /// `avg_pool2d_grad`: as `AvgPool2d` (two inputs: the pooled gradient, a node of x's
    /// shape).
    AvgPool2dGrad {
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
        count_include_pad: bool,
    },
    /// `adaptive_avg_pool2d_grad`: the pool's size (two inputs, as `AvgPool2dGrad`).
    AdaptiveAvgPool2dGrad {
        size: [u64; 2],
    },
    // From tag 81: batch norm (issue 12).
    /// `batch_norm`: eps, whether the batch's statistics normalise (training) or the running
    /// estimates (evaluation: the last two inputs), and whether a scale and a shift follow x.
    BatchNorm {
        eps: f64,
        training: bool,
        gamma: bool,
        beta: bool,
    },
    // From tag 82: the fused dense layer (issue 13).
    /// `linear`: `x·W + b` (three inputs: x, W and b).
    Linear,
}

/// What a [`OpV2::Reduce`] reduces each lane to (`wengert_ops::ReduceOp`'s of the same name).
/// Appended only: a variant's tag is its position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's, documented on `wengert_ops::ReduceOp`
pub enum ReduceOpV2 {
    Amax,
    Amin,
    MaxAt,
    MinAt,
    ArgMax,
    ArgMin,
    LogSumExp,
    Prod,
    Var { correction: f64 },
    Std { correction: f64 },
    Norm,
}

/// How a loss's terms are reduced (`wengert_ops::Reduction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's, documented on `wengert_ops::Reduction`
pub enum ReductionV2 {
    Mean,
    Sum,
    None,
}

/// A loss of the difference of prediction and target (`wengert_ops::Distance`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's, documented on `wengert_ops::Distance`
pub enum DistanceV2 {
    L1,
    SmoothL1 { beta: f64 },
    Huber { delta: f64 },
}

/// What a cross-entropy's targets hold (`wengert_ops::Targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's, documented on `wengert_ops::Targets`
pub enum TargetsV2 {
    Classes,
    Probabilities,
}

/// The losses of [`OpV2::Loss`] (`wengert_ops::LossOp`); a cross-entropy's options are
/// spelled out. Appended only: a variant's tag is its position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the engine's, documented on `wengert_ops::LossOp`
pub enum LossOpV2 {
    Distance {
        distance: DistanceV2,
        reduction: ReductionV2,
    },
    BceWithLogits {
        reduction: ReductionV2,
    },
    Nll {
        ignore_index: Option<i64>,
        reduction: ReductionV2,
    },
    CrossEntropy {
        targets: TargetsV2,
        ignore_index: Option<i64>,
        label_smoothing: f64,
        reduction: ReductionV2,
    },
}

impl From<v1::OpV1> for OpV2 {
    /// A version-1 op is the version-2 op of the same name.
    fn from(op: v1::OpV1) -> Self {
        use v1::OpV1 as V1;
        match op {
            V1::MatMul => OpV2::MatMul,
            V1::Add => OpV2::Add,
            V1::Sub => OpV2::Sub,
            V1::Mul => OpV2::Mul,
            V1::Div => OpV2::Div,
            V1::AddScalar(c) => OpV2::AddScalar(c),
            V1::MulScalar(c) => OpV2::MulScalar(c),
            V1::Neg => OpV2::Neg,
            V1::Relu => OpV2::Relu,
            V1::Tanh => OpV2::Tanh,
            V1::Sigmoid => OpV2::Sigmoid,
            V1::Exp => OpV2::Exp,
            V1::Log => OpV2::Log,
            V1::Sum => OpV2::Sum,
            V1::Mean => OpV2::Mean,
            V1::SumAxis { axis, keep_dim } => OpV2::SumAxis { axis, keep_dim },
            V1::MeanAxis { axis, keep_dim } => OpV2::MeanAxis { axis, keep_dim },
            V1::Reshape(dims) => OpV2::Reshape(dims),
            V1::Transpose { axis0, axis1 } => OpV2::Transpose { axis0, axis1 },
            V1::Softmax => OpV2::Softmax,
            V1::LogSoftmax => OpV2::LogSoftmax,
            V1::Mse => OpV2::Mse,
            V1::CrossEntropy => OpV2::CrossEntropy,
            V1::Detach => OpV2::Detach,
        }
    }
}

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
            v1::NodeV1::Op { op, inputs, shape } => NodeV2::Op {
                op: op.into(),
                inputs,
                shape,
            },
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
