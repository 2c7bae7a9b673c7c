//! [`Error`]: everything that can go wrong when recording or differentiating, as data.

use std::fmt;

use crate::Shape;

/// An error from recording an op, running it, or differentiating through it.
///
/// Every variant carries what a person needs to find the fault: the op's name and the shapes
/// involved. No user input makes the engine panic; it returns one of these instead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two operands' shapes do not fit the op (no broadcast, or inner dimensions differ).
    ShapeMismatch {
        /// The op that was recorded.
        op: &'static str,
        /// The first operand's shape.
        lhs: Shape,
        /// The second operand's shape.
        rhs: Shape,
    },
    /// An operand has the wrong number of axes for the op.
    WrongRank {
        /// The op that was recorded.
        op: &'static str,
        /// What the op accepts, in words (for example `"2"` or `"at least 1"`).
        expected: &'static str,
        /// The operand's shape.
        shape: Shape,
    },
    /// An axis argument names an axis the operand does not have.
    AxisOutOfRange {
        /// The op that was recorded.
        op: &'static str,
        /// The axis asked for.
        axis: usize,
        /// The operand's shape.
        shape: Shape,
    },
    /// A reshape to a shape with a different element count.
    ReshapeMismatch {
        /// The operand's shape.
        from: Shape,
        /// The shape asked for.
        to: Shape,
    },
    /// A shape with more than [`MAX_RANK`](crate::MAX_RANK) axes.
    RankTooHigh {
        /// The rank asked for.
        rank: usize,
        /// The largest rank supported.
        max: usize,
    },
    /// A shape whose element count overflows `usize`.
    TooManyElements {
        /// The shape asked for (its dimensions as given).
        shape: Shape,
    },
    /// An array's data does not hold as many elements as its shape says.
    DataLength {
        /// The shape.
        shape: Shape,
        /// The number of elements supplied.
        len: usize,
    },
    /// A class label is not smaller than the number of classes.
    LabelOutOfRange {
        /// The op that was recorded.
        op: &'static str,
        /// The row (example) whose label is wrong.
        row: usize,
        /// The label given.
        label: f64,
        /// The number of classes (the logits' last dimension).
        classes: usize,
    },
    /// A class label is negative, fractional or not finite.
    LabelNotAClass {
        /// The op that was recorded.
        op: &'static str,
        /// The row (example) whose label is wrong.
        row: usize,
        /// The value given.
        label: f64,
    },
    /// A loss or reduction over a batch with no examples (or no classes).
    EmptyBatch {
        /// The op that was recorded.
        op: &'static str,
        /// The operand's shape.
        shape: Shape,
    },
    /// `backward` was called on a node with more than one element.
    LossNotScalar {
        /// The node's shape.
        shape: Shape,
    },
    /// An op was given the wrong number of inputs.
    WrongArity {
        /// The op that was recorded.
        op: String,
        /// How many inputs it takes.
        expected: usize,
        /// How many it was given.
        got: usize,
    },
    /// A node id past the end of the tape (from another tape, or from before a `clear` or a
    /// `rewind` that shortened it).
    UnknownNode {
        /// The id given.
        id: u32,
        /// How many nodes the tape holds.
        len: usize,
    },
    /// A node id that this tape did not issue for the node it holds now at that position: it
    /// comes from another tape, or from before a `clear` or a `rewind` that removed its node.
    StaleNode {
        /// The id given.
        id: u32,
    },
    /// A custom-op id that was not registered on this tape.
    UnknownCustomOp {
        /// The id given.
        id: u32,
    },
    /// The tape already holds `u32::MAX` nodes.
    TapeFull,
    /// A cotangent (seed gradient) whose shape is not the output's.
    SeedShape {
        /// The output's shape.
        output: Shape,
        /// The seed's shape.
        seed: Shape,
    },
    /// A [`Mark`](../wengert_tape/struct.Mark.html) that does not fit the tape: taken on another
    /// tape, or before a `clear` or an earlier rewind shortened it.
    StaleMark {
        /// How many nodes the tape held when the mark was taken.
        mark: usize,
        /// How many it holds now.
        len: usize,
    },
    /// A value was written to a node that an op computed (only inputs and parameters can be set).
    NotALeaf {
        /// The node's id.
        id: u32,
    },
    /// A new value for a leaf does not have the leaf's shape.
    LeafShape {
        /// The leaf's shape.
        leaf: Shape,
        /// The new value's shape.
        value: Shape,
    },
    /// An op's parameter is outside its domain (a NaN slope, a non-positive softplus beta).
    BadParameter {
        /// The op.
        op: &'static str,
        /// The parameter's name.
        parameter: &'static str,
        /// The value given.
        value: f64,
        /// What the parameter must be, in words.
        expected: &'static str,
    },
    /// An op was given none of the parameters it needs one of (a clamp with no bound).
    MissingParameter {
        /// The op.
        op: &'static str,
        /// What it needs, in words.
        expected: &'static str,
    },
    /// A custom op reported a failure.
    Custom {
        /// The custom op's name.
        op: String,
        /// Its message.
        message: String,
    },
    /// A non-array argument of an op is outside the values it accepts (a probability above 1,
    /// a step of 0, a correction at least the number of elements reduced).
    InvalidArgument {
        /// The op that was recorded.
        op: &'static str,
        /// The argument's name.
        argument: &'static str,
        /// The value given.
        value: f64,
        /// What the argument must be, in words.
        requirement: String,
    },
    /// An index (stored as a float) that is not a whole number naming a position along an axis.
    IndexOutOfRange {
        /// The op that was recorded.
        op: &'static str,
        /// Where the index sits in the index array (row-major).
        position: usize,
        /// The index given.
        index: f64,
        /// The length of the axis indexed.
        len: usize,
    },
    /// `backward` from a node no gradient can reach: it was recorded under `no_grad`, or it
    /// depends on no parameter and no input asked for its gradient (PyTorch refuses the same).
    NoGradient {
        /// The node's id.
        id: u32,
    },
    /// An input was asked for its gradient after ops had used it: those ops were recorded as
    /// needing none, so ask first.
    LeafAlreadyUsed {
        /// The input's id.
        id: u32,
    },
    /// A graph's tape is borrowed elsewhere: a [`Grads`](../wengert_tape/struct.Grads.html) or a
    /// `tape_mut` guard is still alive while something tried to record or sweep.
    TapeBorrowed,
    /// A recorded gradient (`record_grad`) met an op whose VJP cannot be recorded as tape ops,
    /// so its gradient could not be differentiated again: a custom op without a recorded VJP.
    NotTwiceDifferentiable {
        /// The op's name.
        op: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs } => {
                write!(f, "{op}: shapes {lhs} and {rhs} do not fit together")
            }
            Error::WrongRank {
                op,
                expected,
                shape,
            } => {
                write!(
                    f,
                    "{op}: expected an array with {expected} axes, got shape {shape}"
                )
            }
            Error::AxisOutOfRange { op, axis, shape } => {
                write!(f, "{op}: axis {axis} is out of range for shape {shape}")
            }
            Error::ReshapeMismatch { from, to } => write!(
                f,
                "reshape: cannot reshape {from} ({} elements) to {to} ({} elements)",
                from.numel(),
                to.numel()
            ),
            Error::RankTooHigh { rank, max } => {
                write!(
                    f,
                    "an array of {rank} axes is not supported (at most {max})"
                )
            }
            Error::TooManyElements { shape } => {
                write!(f, "shape {shape} has more elements than memory can address")
            }
            Error::DataLength { shape, len } => write!(
                f,
                "shape {shape} needs {} elements but {len} were given",
                shape
                    .checked_numel()
                    .map_or_else(|| "too many".to_string(), |n| n.to_string())
            ),
            Error::LabelOutOfRange {
                op,
                row,
                label,
                classes,
            } => write!(
                f,
                "{op}: label {label} of row {row} is out of range for {classes} classes"
            ),
            Error::LabelNotAClass { op, row, label } => write!(
                f,
                "{op}: label {label} of row {row} is not a class index (a whole number from 0)"
            ),
            Error::EmptyBatch { op, shape } => {
                write!(f, "{op}: shape {shape} has no elements to reduce over")
            }
            Error::LossNotScalar { shape } => write!(
                f,
                "backward: the loss must hold exactly one element, but its shape is {shape}"
            ),
            Error::WrongArity { op, expected, got } => {
                write!(f, "{op}: takes {expected} inputs, got {got}")
            }
            Error::UnknownNode { id, len } => write!(
                f,
                "node {id} is not on this tape, which holds {len} nodes (was it recorded on \
                 another tape, or before a clear?)"
            ),
            Error::StaleNode { id } => write!(
                f,
                "node %{id} is not a node of this tape as it is now: the id was issued by another \
                 tape, or before a clear or a rewind that removed its node"
            ),
            Error::UnknownCustomOp { id } => {
                write!(f, "custom op {id} was not registered on this tape")
            }
            Error::TapeFull => write!(f, "the tape is full: it holds u32::MAX nodes"),
            Error::SeedShape { output, seed } => write!(
                f,
                "backward: the seed gradient has shape {seed} but the output has shape {output}"
            ),
            Error::StaleMark { mark, len } => write!(
                f,
                "rewind: the mark was taken at {mark} nodes but the tape holds {len} (taken on \
                 another tape, or before a clear?)"
            ),
            Error::NotALeaf { id } => write!(
                f,
                "node %{id} was computed by an op; only inputs and parameters can be given new values"
            ),
            Error::LeafShape { leaf, value } => write!(
                f,
                "set_value: the node has shape {leaf} but the new value has shape {value}"
            ),
            Error::BadParameter {
                op,
                parameter,
                value,
                expected,
            } => write!(f, "{op}: {parameter} must be {expected}, got {value}"),
            Error::MissingParameter { op, expected } => write!(f, "{op}: needs {expected}"),
            Error::Custom { op, message } => write!(f, "{op}: {message}"),
            Error::InvalidArgument {
                op,
                argument,
                value,
                requirement,
            } => write!(f, "{op}: {argument} = {value} is invalid: {requirement}"),
            Error::IndexOutOfRange {
                op,
                position,
                index,
                len,
            } => write!(
                f,
                "{op}: index {index} at position {position} is not a whole number in 0..{len}"
            ),
            Error::NoGradient { id } => write!(
                f,
                "%{id} does not need a gradient (recorded under no_grad, or from inputs only): nothing to differentiate"
            ),
            Error::LeafAlreadyUsed { id } => write!(
                f,
                "input %{id} was asked for its gradient after ops used it; ask before recording them"
            ),
            Error::TapeBorrowed => write!(
                f,
                "the graph's tape is in use (drop the gradients or the tape_mut guard first)"
            ),
            Error::NotTwiceDifferentiable { op } => write!(
                f,
                "{op}: its VJP cannot be recorded as tape ops, so its gradient cannot be differentiated again (use backward for first-order gradients)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The result type of every fallible operation in wengert.
pub type Result<T, E = Error> = std::result::Result<T, E>;
