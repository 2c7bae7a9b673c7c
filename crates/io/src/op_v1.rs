//! The mapping between the engine's [`Op`] and the format's [`OpV1`].

use wengert_ops::Op;

use crate::element::{dims_to_file, shape_from_file};
use crate::format::v1::OpV1;
use crate::{Error, Result};

/// The file's form of `op`, recorded at `node`.
pub(crate) fn op_to_file(node: u32, op: &Op) -> Result<OpV1> {
    let axis = |a: usize| u32::try_from(a).map_err(|_| unsupported(node, op));
    Ok(match *op {
        Op::MatMul => OpV1::MatMul,
        Op::Add => OpV1::Add,
        Op::Sub => OpV1::Sub,
        Op::Mul => OpV1::Mul,
        Op::Div => OpV1::Div,
        Op::AddScalar(c) => OpV1::AddScalar(c),
        Op::MulScalar(c) => OpV1::MulScalar(c),
        Op::Neg => OpV1::Neg,
        Op::Relu => OpV1::Relu,
        Op::Tanh => OpV1::Tanh,
        Op::Sigmoid => OpV1::Sigmoid,
        Op::Exp => OpV1::Exp,
        Op::Log => OpV1::Log,
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
        Op::Detach => OpV1::Detach,
        // An op added to the engine after version 1 was fixed needs a new format version.
        _ => return Err(unsupported(node, op)),
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
        OpV1::Add => Op::Add,
        OpV1::Sub => Op::Sub,
        OpV1::Mul => Op::Mul,
        OpV1::Div => Op::Div,
        OpV1::AddScalar(c) => Op::AddScalar(c),
        OpV1::MulScalar(c) => Op::MulScalar(c),
        OpV1::Neg => Op::Neg,
        OpV1::Relu => Op::Relu,
        OpV1::Tanh => Op::Tanh,
        OpV1::Sigmoid => Op::Sigmoid,
        OpV1::Exp => Op::Exp,
        OpV1::Log => Op::Log,
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
        OpV1::Detach => Op::Detach,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_ops::Shape;

    #[test]
    fn every_op_survives_the_round_trip() {
        let ops = [
            Op::MatMul,
            Op::Add,
            Op::Sub,
            Op::Mul,
            Op::Div,
            Op::AddScalar(-0.25),
            Op::MulScalar(f64::MIN_POSITIVE),
            Op::Neg,
            Op::Relu,
            Op::Tanh,
            Op::Sigmoid,
            Op::Exp,
            Op::Log,
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
            Op::Detach,
        ];
        for op in ops {
            let file = op_to_file(0, &op).unwrap();
            assert_eq!(op_from_file(0, &file).unwrap(), op);
        }
    }
}
