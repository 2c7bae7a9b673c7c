//! The mapping between the engine's [`Op`] and the format's [`OpV2`] (a version-1 file's
//! ops are converted to version 2's first, by `From<OpV1> for OpV2`).

use wengert_ops::{BinaryOp, Op, UnaryOp};

use crate::element::{dims_to_file, shape_from_file};
use crate::format::v2::OpV2;
use crate::{Error, Result};

/// The file's form of `op`, recorded at `node`, or [`Error::UnsupportedOp`] for one the format
/// cannot hold (an axis past `u32::MAX`).
///
/// Exhaustive on purpose, with no catch-all: a new op does not compile until it is given a
/// code here (appended to [`OpV2`]) and mapped back in [`op_from_file`].
pub(crate) fn op_to_file(node: u32, op: &Op) -> Result<OpV2> {
    let axis = |a: usize| u32::try_from(a).map_err(|_| unsupported(node, op));
    Ok(match *op {
        Op::Unary(unary) => match unary {
            UnaryOp::AddScalar(c) => OpV2::AddScalar(c),
            UnaryOp::MulScalar(c) => OpV2::MulScalar(c),
            UnaryOp::Neg => OpV2::Neg,
            UnaryOp::Relu => OpV2::Relu,
            UnaryOp::Tanh => OpV2::Tanh,
            UnaryOp::Sigmoid => OpV2::Sigmoid,
            UnaryOp::Exp => OpV2::Exp,
            UnaryOp::Log => OpV2::Log,
            UnaryOp::Detach => OpV2::Detach,
            UnaryOp::Sqrt => OpV2::Sqrt,
            UnaryOp::Rsqrt => OpV2::Rsqrt,
            UnaryOp::Abs => OpV2::Abs,
            UnaryOp::Square => OpV2::Square,
            UnaryOp::Powf(p) => OpV2::Powf(p),
            UnaryOp::Sin => OpV2::Sin,
            UnaryOp::Cos => OpV2::Cos,
            UnaryOp::Log1p => OpV2::Log1p,
            UnaryOp::Expm1 => OpV2::Expm1,
            UnaryOp::Softplus(beta, threshold) => OpV2::Softplus { beta, threshold },
            UnaryOp::LeakyRelu(slope) => OpV2::LeakyRelu(slope),
            UnaryOp::Elu(alpha) => OpV2::Elu(alpha),
            UnaryOp::Silu => OpV2::Silu,
            UnaryOp::Clamp(min, max) => OpV2::Clamp { min, max },
            UnaryOp::Sign => OpV2::Sign,
            UnaryOp::Erf => OpV2::Erf,
            UnaryOp::Gelu => OpV2::Gelu,
            UnaryOp::GeluTanh => OpV2::GeluTanh,
        },
        Op::Binary(binary) => match binary {
            BinaryOp::Add => OpV2::Add,
            BinaryOp::Sub => OpV2::Sub,
            BinaryOp::Mul => OpV2::Mul,
            BinaryOp::Div => OpV2::Div,
            BinaryOp::Maximum => OpV2::Maximum,
            BinaryOp::Minimum => OpV2::Minimum,
            BinaryOp::Pow => OpV2::Pow,
            BinaryOp::Eq => OpV2::Eq,
            BinaryOp::Lt => OpV2::Lt,
            BinaryOp::Le => OpV2::Le,
            BinaryOp::Gt => OpV2::Gt,
            BinaryOp::Ge => OpV2::Ge,
        },
        Op::MatMul => OpV2::MatMul,
        Op::Sum => OpV2::Sum,
        Op::Mean => OpV2::Mean,
        Op::SumAxis { axis: a, keep_dim } => OpV2::SumAxis {
            axis: axis(a)?,
            keep_dim,
        },
        Op::MeanAxis { axis: a, keep_dim } => OpV2::MeanAxis {
            axis: axis(a)?,
            keep_dim,
        },
        Op::Reshape(to) => OpV2::Reshape(dims_to_file(to.dims())),
        Op::Transpose { axis0, axis1 } => OpV2::Transpose {
            axis0: axis(axis0)?,
            axis1: axis(axis1)?,
        },
        Op::Softmax => OpV2::Softmax,
        Op::LogSoftmax => OpV2::LogSoftmax,
        Op::Mse => OpV2::Mse,
        Op::CrossEntropy => OpV2::CrossEntropy,
        // Not yet given codes: saving a tape that holds one is refused by name.
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
        | Op::Pad { .. } => return Err(unsupported(node, op)),
    })
}

fn unsupported(node: u32, op: &Op) -> Error {
    Error::UnsupportedOp {
        node,
        op: op.name(),
    }
}

/// The engine's form of a file's op at `node`. A reshape's target shape is checked, and so
/// are an op's parameters, as when it is recorded ([`Error::OpParameter`]: a NaN slope, a
/// non-positive softplus beta).
pub(crate) fn op_from_file(node: u32, op: &OpV2) -> Result<Op> {
    let op = match *op {
        OpV2::MatMul => Op::MatMul,
        OpV2::Add => Op::Binary(BinaryOp::Add),
        OpV2::Sub => Op::Binary(BinaryOp::Sub),
        OpV2::Mul => Op::Binary(BinaryOp::Mul),
        OpV2::Div => Op::Binary(BinaryOp::Div),
        OpV2::AddScalar(c) => Op::Unary(UnaryOp::AddScalar(c)),
        OpV2::MulScalar(c) => Op::Unary(UnaryOp::MulScalar(c)),
        OpV2::Neg => Op::Unary(UnaryOp::Neg),
        OpV2::Relu => Op::Unary(UnaryOp::Relu),
        OpV2::Tanh => Op::Unary(UnaryOp::Tanh),
        OpV2::Sigmoid => Op::Unary(UnaryOp::Sigmoid),
        OpV2::Exp => Op::Unary(UnaryOp::Exp),
        OpV2::Log => Op::Unary(UnaryOp::Log),
        OpV2::Sum => Op::Sum,
        OpV2::Mean => Op::Mean,
        OpV2::SumAxis { axis, keep_dim } => Op::SumAxis {
            axis: axis as usize,
            keep_dim,
        },
        OpV2::MeanAxis { axis, keep_dim } => Op::MeanAxis {
            axis: axis as usize,
            keep_dim,
        },
        OpV2::Reshape(ref dims) => Op::Reshape(shape_from_file(
            || format!("the reshape of node {node}"),
            dims,
        )?),
        OpV2::Transpose { axis0, axis1 } => Op::Transpose {
            axis0: axis0 as usize,
            axis1: axis1 as usize,
        },
        OpV2::Softmax => Op::Softmax,
        OpV2::LogSoftmax => Op::LogSoftmax,
        OpV2::Mse => Op::Mse,
        OpV2::CrossEntropy => Op::CrossEntropy,
        OpV2::Detach => Op::Unary(UnaryOp::Detach),
        OpV2::Sqrt => Op::Unary(UnaryOp::Sqrt),
        OpV2::Rsqrt => Op::Unary(UnaryOp::Rsqrt),
        OpV2::Abs => Op::Unary(UnaryOp::Abs),
        OpV2::Square => Op::Unary(UnaryOp::Square),
        OpV2::Powf(p) => Op::Unary(UnaryOp::Powf(p)),
        OpV2::Sin => Op::Unary(UnaryOp::Sin),
        OpV2::Cos => Op::Unary(UnaryOp::Cos),
        OpV2::Log1p => Op::Unary(UnaryOp::Log1p),
        OpV2::Expm1 => Op::Unary(UnaryOp::Expm1),
        OpV2::Softplus { beta, threshold } => Op::Unary(UnaryOp::Softplus(beta, threshold)),
        OpV2::LeakyRelu(slope) => Op::Unary(UnaryOp::LeakyRelu(slope)),
        OpV2::Elu(alpha) => Op::Unary(UnaryOp::Elu(alpha)),
        OpV2::Silu => Op::Unary(UnaryOp::Silu),
        OpV2::Clamp { min, max } => Op::Unary(UnaryOp::Clamp(min, max)),
        OpV2::Sign => Op::Unary(UnaryOp::Sign),
        OpV2::Maximum => Op::Binary(BinaryOp::Maximum),
        OpV2::Minimum => Op::Binary(BinaryOp::Minimum),
        OpV2::Pow => Op::Binary(BinaryOp::Pow),
        OpV2::Erf => Op::Unary(UnaryOp::Erf),
        OpV2::Gelu => Op::Unary(UnaryOp::Gelu),
        OpV2::GeluTanh => Op::Unary(UnaryOp::GeluTanh),
        OpV2::Eq => Op::Binary(BinaryOp::Eq),
        OpV2::Lt => Op::Binary(BinaryOp::Lt),
        OpV2::Le => Op::Binary(BinaryOp::Le),
        OpV2::Gt => Op::Binary(BinaryOp::Gt),
        OpV2::Ge => Op::Binary(BinaryOp::Ge),
    };
    op.check_parameters()
        .map_err(|source| Error::OpParameter { node, source })?;
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_ops::Shape;

    /// Every op, and each elementwise one with its example parameters: `ALL` grows with the
    /// tables, so a new elementwise op is tried here too.
    fn every_op() -> Vec<Op> {
        let mut ops: Vec<Op> = UnaryOp::ALL.into_iter().map(Op::Unary).collect();
        ops.extend(BinaryOp::ALL.into_iter().map(Op::Binary));
        ops.extend([
            Op::MatMul,
            Op::Unary(UnaryOp::AddScalar(-0.25)),
            Op::Unary(UnaryOp::MulScalar(f64::MIN_POSITIVE)),
            Op::Unary(UnaryOp::Clamp(f64::NEG_INFINITY, 3.0)),
            Op::Unary(UnaryOp::Clamp(-3.0, f64::INFINITY)),
            Op::Unary(UnaryOp::Powf(0.0)),
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
        ops
    }

    #[test]
    fn every_op_survives_the_round_trip_with_its_parameters() {
        for op in every_op() {
            let file = op_to_file(7, &op).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
            assert_eq!(op_from_file(7, &file).unwrap(), op);
        }
    }

    #[test]
    fn a_parameter_the_engine_refuses_is_refused_on_load_with_the_node() {
        let bad = [
            OpV2::LeakyRelu(f64::NAN),
            OpV2::Elu(f64::INFINITY),
            OpV2::Powf(f64::NAN),
            OpV2::Softplus {
                beta: 0.0,
                threshold: 20.0,
            },
            OpV2::Softplus {
                beta: 1.0,
                threshold: f64::NAN,
            },
            OpV2::Clamp {
                min: f64::NAN,
                max: 1.0,
            },
            OpV2::Clamp {
                min: 0.0,
                max: f64::NAN,
            },
        ];
        for op in bad {
            match op_from_file(3, &op) {
                Err(Error::OpParameter {
                    node: 3,
                    source: wengert_ops::Error::BadParameter { .. },
                }) => {}
                other => panic!("{op:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_ops_added_in_version_2_have_the_tags_docs_format_md_gives() {
        let tag = |op: OpV2| {
            let mut bytes = Vec::new();
            crate::codec::encode_into(&op, &mut bytes);
            u32::from_le_bytes(bytes[..4].try_into().unwrap())
        };
        assert_eq!(tag(OpV2::Detach), 23, "version 1's last");
        assert_eq!(tag(OpV2::Sqrt), 24);
        assert_eq!(
            tag(OpV2::Softplus {
                beta: 1.0,
                threshold: 20.0
            }),
            33
        );
        assert_eq!(tag(OpV2::Clamp { min: 0.0, max: 1.0 }), 37);
        assert_eq!(tag(OpV2::Pow), 41);
        assert_eq!(tag(OpV2::GeluTanh), 44);
        assert_eq!(tag(OpV2::Ge), 49);
    }
}
