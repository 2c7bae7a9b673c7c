//! The mapping between the engine's [`Op`] and the format's [`OpV1`].

use wengert_ops::{BinaryOp, Op, UnaryOp};

use crate::element::{dims_to_file, shape_from_file};
use crate::format::v1::OpV1;
use crate::{Error, Result};

/// The file's form of `op`, recorded at `node`, or [`Error::UnsupportedOp`] for an op that
/// version 1 has no code for.
///
/// Exhaustive on purpose, with no catch-all: a new op does not compile until it is given a
/// code here or listed as needing a newer format.
pub(crate) fn op_to_file(node: u32, op: &Op) -> Result<OpV1> {
    let axis = |a: usize| u32::try_from(a).map_err(|_| unsupported(node, op));
    Ok(match *op {
        Op::Unary(unary) => match unary {
            UnaryOp::AddScalar(c) => OpV1::AddScalar(c),
            UnaryOp::MulScalar(c) => OpV1::MulScalar(c),
            UnaryOp::Neg => OpV1::Neg,
            UnaryOp::Relu => OpV1::Relu,
            UnaryOp::Tanh => OpV1::Tanh,
            UnaryOp::Sigmoid => OpV1::Sigmoid,
            UnaryOp::Exp => OpV1::Exp,
            UnaryOp::Log => OpV1::Log,
            UnaryOp::Detach => OpV1::Detach,
            // Added after version 1 was fixed: a newer format version has their codes.
            UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Abs
            | UnaryOp::Square
            | UnaryOp::Powf(_)
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Log1p
            | UnaryOp::Expm1
            | UnaryOp::Softplus(..)
            | UnaryOp::LeakyRelu(_)
            | UnaryOp::Elu(_)
            | UnaryOp::Silu
            | UnaryOp::Clamp(..)
            | UnaryOp::Sign => return Err(unsupported(node, op)),
        },
        Op::Binary(binary) => match binary {
            BinaryOp::Add => OpV1::Add,
            BinaryOp::Sub => OpV1::Sub,
            BinaryOp::Mul => OpV1::Mul,
            BinaryOp::Div => OpV1::Div,
            // Added after version 1 was fixed.
            BinaryOp::Maximum | BinaryOp::Minimum | BinaryOp::Pow => {
                return Err(unsupported(node, op));
            }
        },
        Op::MatMul => OpV1::MatMul,
        Op::Sum => OpV1::Sum,
        Op::Mean => OpV1::Mean,
        Op::SumAxis { axis: a, keep_dim } => OpV1::SumAxis {
            axis: axis(a)?,
            keep_dim,
        },
        Op::MeanAxis { axis: a, keep_dim } => OpV1::MeanAxis {
            axis: axis(a)?,
            keep_dim,
        },
        Op::Reshape(to) => OpV1::Reshape(dims_to_file(to.dims())),
        Op::Transpose { axis0, axis1 } => OpV1::Transpose {
            axis0: axis(axis0)?,
            axis1: axis(axis1)?,
        },
        Op::Softmax => OpV1::Softmax,
        Op::LogSoftmax => OpV1::LogSoftmax,
        Op::Mse => OpV1::Mse,
        Op::CrossEntropy => OpV1::CrossEntropy,
        // Added after version 1 was fixed: a newer format version has their codes.
        Op::Reduce { .. }
        | Op::SoftmaxAxis { .. }
        | Op::LogSoftmaxAxis { .. }
        | Op::Loss(_)
        | Op::BroadcastTo(_)
        | Op::Narrow { .. }
        | Op::IndexSelect { .. }
        | Op::Gather { .. }
        | Op::BatchedMatMul
        | Op::Dropout { .. }
        | Op::Slice { .. }
        | Op::Pad { .. } => {
            return Err(unsupported(node, op));
        }
    })
}

fn unsupported(node: u32, op: &Op) -> Error {
    Error::UnsupportedOp {
        node,
        op: op.name(),
    }
}

/// The engine's form of a file's op at `node`; a reshape's target shape is checked.
pub(crate) fn op_from_file(node: u32, op: &OpV1) -> Result<Op> {
    Ok(match *op {
        OpV1::MatMul => Op::MatMul,
        OpV1::Add => Op::Binary(BinaryOp::Add),
        OpV1::Sub => Op::Binary(BinaryOp::Sub),
        OpV1::Mul => Op::Binary(BinaryOp::Mul),
        OpV1::Div => Op::Binary(BinaryOp::Div),
        OpV1::AddScalar(c) => Op::Unary(UnaryOp::AddScalar(c)),
        OpV1::MulScalar(c) => Op::Unary(UnaryOp::MulScalar(c)),
        OpV1::Neg => Op::Unary(UnaryOp::Neg),
        OpV1::Relu => Op::Unary(UnaryOp::Relu),
        OpV1::Tanh => Op::Unary(UnaryOp::Tanh),
        OpV1::Sigmoid => Op::Unary(UnaryOp::Sigmoid),
        OpV1::Exp => Op::Unary(UnaryOp::Exp),
        OpV1::Log => Op::Unary(UnaryOp::Log),
        OpV1::Sum => Op::Sum,
        OpV1::Mean => Op::Mean,
        OpV1::SumAxis { axis, keep_dim } => Op::SumAxis {
            axis: axis as usize,
            keep_dim,
        },
        OpV1::MeanAxis { axis, keep_dim } => Op::MeanAxis {
            axis: axis as usize,
            keep_dim,
        },
        OpV1::Reshape(ref dims) => Op::Reshape(shape_from_file(
            || format!("the reshape of node {node}"),
            dims,
        )?),
        OpV1::Transpose { axis0, axis1 } => Op::Transpose {
            axis0: axis0 as usize,
            axis1: axis1 as usize,
        },
        OpV1::Softmax => Op::Softmax,
        OpV1::LogSoftmax => Op::LogSoftmax,
        OpV1::Mse => Op::Mse,
        OpV1::CrossEntropy => Op::CrossEntropy,
        OpV1::Detach => Op::Unary(UnaryOp::Detach),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_ops::{Distance, LossOp, ReduceOp, Reduction, Shape};

    /// Every op version 1 has a code for, and each elementwise one with its example
    /// parameters: `ALL` grows with the tables, so a new elementwise op is tried here too.
    fn every_op() -> Vec<Op> {
        let mut ops: Vec<Op> = UnaryOp::ALL.into_iter().map(Op::Unary).collect();
        ops.extend(BinaryOp::ALL.into_iter().map(Op::Binary));
        ops.extend([
            Op::MatMul,
            Op::Unary(UnaryOp::AddScalar(-0.25)),
            Op::Unary(UnaryOp::MulScalar(f64::MIN_POSITIVE)),
            Op::Sum,
            Op::Mean,
            Op::SumAxis {
                axis: 1,
                keep_dim: true,
            },
            Op::MeanAxis {
                axis: 0,
                keep_dim: false,
            },
            Op::Reshape(Shape::new(&[3, 2]).unwrap()),
            Op::Transpose { axis0: 0, axis1: 2 },
            Op::Softmax,
            Op::LogSoftmax,
            Op::Mse,
            Op::CrossEntropy,
        ]);
        ops.extend(
            [
                ReduceOp::Amax,
                ReduceOp::Amin,
                ReduceOp::MaxAt,
                ReduceOp::MinAt,
                ReduceOp::ArgMax,
                ReduceOp::ArgMin,
                ReduceOp::LogSumExp,
                ReduceOp::Prod,
                ReduceOp::Var(1.0),
                ReduceOp::Std(0.0),
                ReduceOp::Norm,
            ]
            .map(|op| Op::Reduce {
                op,
                axis: Some(1),
                keep_dim: false,
            }),
        );
        ops.extend([
            Op::SoftmaxAxis { axis: 0 },
            Op::LogSoftmaxAxis { axis: 1 },
            Op::Loss(LossOp::Distance {
                distance: Distance::Huber { delta: 0.5 },
                reduction: Reduction::None,
            }),
            Op::Loss(LossOp::BceWithLogits {
                reduction: Reduction::Sum,
            }),
            Op::Loss(LossOp::Nll {
                ignore_index: Some(-100),
                reduction: Reduction::Mean,
            }),
            Op::Loss(LossOp::CrossEntropy(Default::default())),
            Op::BroadcastTo(Shape::new(&[2, 3]).unwrap()),
            Op::Narrow {
                axis: 1,
                start: -2,
                length: 1,
            },
            Op::IndexSelect { axis: 0 },
            Op::Gather { axis: 1 },
            Op::BatchedMatMul,
            Op::Dropout { p: 0.5, seed: 7 },
            Op::Slice {
                axis: 1,
                range: wengert_ops::SliceAxis::range(-2, 5),
            },
            Op::Pad {
                pads: [[1, 2]; wengert_ops::MAX_RANK],
                axes: 2,
                value: -1.0,
            },
        ]);
        ops
    }

    /// The ops added after version 1 was fixed: saving one is refused by name.
    const NOT_IN_V1: &[&str] = &[
        "sqrt",
        "rsqrt",
        "abs",
        "square",
        "powf",
        "sin",
        "cos",
        "log1p",
        "expm1",
        "softplus",
        "leaky_relu",
        "elu",
        "silu",
        "clamp",
        "sign",
        "maximum",
        "minimum",
        "pow",
        "amax",
        "amin",
        "max_dim",
        "min_dim",
        "argmax",
        "argmin",
        "logsumexp",
        "prod",
        "var",
        "std",
        "norm",
        "softmax_axis",
        "log_softmax_axis",
        "l1_loss",
        "smooth_l1_loss",
        "huber_loss",
        "binary_cross_entropy_with_logits",
        "nll_loss",
        // The loss with options; `Op::CrossEntropy` keeps its version 1 code.
        "cross_entropy",
        "broadcast_to",
        "narrow",
        "index_select",
        "gather",
        "batched_matmul",
        "dropout",
        "slice",
        "pad",
    ];

    #[test]
    fn every_op_survives_the_round_trip_or_is_refused_by_name() {
        for op in every_op() {
            match op_to_file(7, &op) {
                Ok(file) => assert_eq!(op_from_file(7, &file).unwrap(), op),
                Err(Error::UnsupportedOp { node: 7, op: name }) => {
                    assert!(NOT_IN_V1.contains(&name), "{name} has no version 1 code")
                }
                Err(err) => panic!("{}: {err}", op.name()),
            }
        }
    }
}
