//! What the tape stores for each node, apart from its value.

use wengert_ops::{Op, Shape};

use crate::NodeId;
use crate::id::Epoch;

/// What produced a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeKind {
    /// A value fed in from outside, with no gradient wanted (data, labels, constants).
    Input,
    /// A value fed in from outside whose gradient `backward` returns (a weight, a bias).
    Parameter,
    /// A built-in op applied to earlier nodes.
    Op(Op),
    /// A registered [`CustomOp`](wengert_ops::CustomOp) applied to earlier nodes.
    Custom(CustomOpId),
}

/// The handle of a custom op registered on a tape with
/// [`Tape::register_custom`](crate::Tape::register_custom).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomOpId(pub(crate) u32);

/// A node's record: everything but its value and gradient, which live in buffers of their own
/// so that clearing the tape can keep them for reuse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// A built-in op's inputs, held inline so that recording one touches no other list (for a
    /// one-input op the second repeats the first).
    pub inputs: [NodeId; 2],
    /// How many inputs the node has.
    pub inputs_len: u32,
    /// How long the tape's `custom_inputs` was when the node was recorded: where a custom op's
    /// input ids start (any number of them), and what `rewind` checks a mark against.
    pub custom_start: u32,
    pub shape: Shape,
    /// Whether any gradient can flow into this node from a loss.
    pub requires_grad: bool,
    /// For a built-in op, which inputs the sweep passes a gradient to (bit `k` for input `k`):
    /// those that need one and that the op is differentiable in. Worked out once, when
    /// recording, rather than at every sweep.
    pub grad_inputs: u8,
    /// Whether `backward` keeps this node's gradient (parameters, and nodes asked for).
    pub retain_grad: bool,
    /// A built-in op whose inputs all have the output's element count and which maps elements
    /// one to one ([`Op::is_pointwise`]): the sweep pulls back through it on plain slices,
    /// without looking at shapes.
    pub pointwise: bool,
    /// The tape's epoch when the node was recorded: an id names this node only if it carries
    /// the same one.
    pub epoch: Epoch,
}
