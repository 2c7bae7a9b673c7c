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
    /// The first two inputs, held inline so that recording a built-in op of one or two inputs
    /// touches no other list (for a one-input op the second repeats the first).
    pub inputs: [NodeId; 2],
    /// How many inputs the node has.
    pub inputs_len: u32,
    /// How long the tape's `listed_inputs` was when the node was recorded: where the node's
    /// inputs start if it keeps them there (a custom op, or a built-in op of more than two
    /// inputs), and what `rewind` checks a mark against.
    pub list_start: u32,
    pub shape: Shape,
    /// Whether any gradient can flow into this node from a loss.
    pub requires_grad: bool,
    /// For a built-in op, which inputs the sweep passes a gradient to (bit `k` for input `k`,
    /// see [`grad_bit`]): those that need one and that the op is differentiable in. Worked out
    /// once, when recording, rather than at every sweep.
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

impl Node {
    /// Whether the node keeps its inputs in the tape's `listed_inputs` rather than inline: a
    /// custom op's (any number), a built-in op's beyond two.
    #[inline]
    pub fn lists_inputs(&self) -> bool {
        self.inputs_len > 2 || matches!(self.kind, NodeKind::Custom(_))
    }
}

/// The bit of a node's `grad_inputs` that stands for input `k`. Inputs from
/// [`SHARED_GRAD_BIT`] on share the last bit, set if any of them takes a gradient; the sweep
/// then asks each of them (its `requires_grad` and the op's `differentiable_in`), which is
/// what recording decided, since neither changes once a node has used the input.
#[inline]
pub(crate) fn grad_bit(k: usize) -> u8 {
    1 << k.min(SHARED_GRAD_BIT)
}

/// The first input position whose gradient bit is shared with the positions after it.
pub(crate) const SHARED_GRAD_BIT: usize = 7;
