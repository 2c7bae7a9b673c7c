//! The mapping between the engine's [`Op`] and the format's [`OpV2`] (a version-1 file's
//! ops are converted to version 2's first, by `From<OpV1> for OpV2`).

use wengert_ops::{
    BinaryOp, Conv1dArgs, Conv2dArgs, CrossEntropyOptions, Distance, LossOp, MAX_RANK, Op,
    Pool2dArgs, ReduceOp, Reduction, SliceAxis, Targets, UnaryOp,
};

use crate::element::{dims_to_file, shape_from_file};
use crate::format::v2::{DistanceV2, LossOpV2, OpV2, ReduceOpV2, ReductionV2, TargetsV2};
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
        Op::Reduce {
            op: reduce,
            axis: a,
            keep_dim,
        } => OpV2::Reduce {
            op: reduce_to_file(reduce),
            axis: a.map(axis).transpose()?,
            keep_dim,
        },
        Op::SoftmaxAxis { axis: a } => OpV2::SoftmaxAxis { axis: axis(a)? },
        Op::LogSoftmaxAxis { axis: a } => OpV2::LogSoftmaxAxis { axis: axis(a)? },
        Op::Loss(loss) => OpV2::Loss(loss_to_file(loss)),
        Op::BroadcastTo(to) => OpV2::BroadcastTo(dims_to_file(to.dims())),
        Op::Narrow {
            axis: a,
            start,
            length,
        } => OpV2::Narrow {
            axis: axis(a)?,
            start,
            length: length as u64,
        },
        Op::IndexSelect { axis: a } => OpV2::IndexSelect { axis: axis(a)? },
        Op::Gather { axis: a } => OpV2::Gather { axis: axis(a)? },
        Op::BatchedMatMul => OpV2::BatchedMatMul,
        Op::Dropout { p, seed } => OpV2::Dropout { p, seed },
        Op::Slice { axis: a, range } => OpV2::Slice {
            axis: axis(a)?,
            start: range.start,
            end: range.end,
            step: range.step,
        },
        Op::Pad { pads, axes, value } => OpV2::Pad {
            // More pairs than any shape has axes is refused when recorded; keep what is there.
            pads: pads[..usize::from(axes).min(MAX_RANK)].to_vec(),
            value,
        },
        Op::Concat { axis: a } => OpV2::Concat { axis: axis(a)? },
        Op::Stack { axis: a } => OpV2::Stack { axis: axis(a)? },
        Op::Where => OpV2::Where,
        Op::WeightedLoss(loss) => OpV2::WeightedLoss(loss_to_file(loss)),
        Op::IndexAdd { axis: a, len } => OpV2::IndexAdd {
            axis: axis(a)?,
            len: len as u64,
        },
        Op::ScatterAdd { axis: a, len } => OpV2::ScatterAdd {
            axis: axis(a)?,
            len: len as u64,
        },
        Op::Conv2d(args) => OpV2::Conv2d {
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
            dilation: args.dilation.map(|v| v as u64),
            groups: args.groups as u64,
        },
        Op::Conv1d(args) => OpV2::Conv1d {
            stride: args.stride as u64,
            padding: args.padding as u64,
            dilation: args.dilation as u64,
            groups: args.groups as u64,
        },
        Op::MaxPool2d(args) => OpV2::MaxPool2d {
            kernel: args.kernel.map(|v| v as u64),
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
        },
        Op::AvgPool2d(args) => OpV2::AvgPool2d {
            kernel: args.kernel.map(|v| v as u64),
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
            count_include_pad: args.count_include_pad,
        },
        Op::AdaptiveAvgPool2d(size) => OpV2::AdaptiveAvgPool2d {
            size: size.map(|v| v as u64),
        },
        Op::Embedding { padding_idx } => OpV2::Embedding {
            padding_idx: padding_idx.map(|p| p as u64),
        },
        Op::LayerNorm {
            axes,
            eps,
            gamma,
            beta,
        } => OpV2::LayerNorm {
            axes: axis(axes)?,
            eps,
            gamma,
            beta,
        },
        Op::BatchNorm {
            eps,
            training,
            gamma,
            beta,
        } => OpV2::BatchNorm {
            eps,
            training,
            gamma,
            beta,
        },
        Op::Conv2dInputGrad(args) => OpV2::Conv2dInputGrad {
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
            dilation: args.dilation.map(|v| v as u64),
            groups: args.groups as u64,
        },
        Op::Conv2dWeightGrad(args) => OpV2::Conv2dWeightGrad {
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
            dilation: args.dilation.map(|v| v as u64),
            groups: args.groups as u64,
        },
        Op::MaxPool2dGrad(args) => OpV2::MaxPool2dGrad {
            kernel: args.kernel.map(|v| v as u64),
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
        },
        Op::MaxPool2dSelect(args) => OpV2::MaxPool2dSelect {
            kernel: args.kernel.map(|v| v as u64),
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
        },
        Op::AvgPool2dGrad(args) => OpV2::AvgPool2dGrad {
            kernel: args.kernel.map(|v| v as u64),
            stride: args.stride.map(|v| v as u64),
            padding: args.padding.map(|v| v as u64),
            count_include_pad: args.count_include_pad,
        },
        Op::AdaptiveAvgPool2dGrad(size) => OpV2::AdaptiveAvgPool2dGrad {
            size: size.map(|v| v as u64),
        },
        Op::Linear => OpV2::Linear,
    })
}

/// A convolution's parameters from a file, each checked to fit `usize`.
fn conv2d_args_from_file(
    node: u32,
    op: &'static str,
    [stride, padding, dilation]: [[u64; 2]; 3],
    groups: u64,
) -> Result<Conv2dArgs> {
    let pair = |argument, [h, w]: [u64; 2]| {
        Ok::<_, Error>([
            file_size(node, op, argument, h)?,
            file_size(node, op, argument, w)?,
        ])
    };
    Ok(Conv2dArgs {
        stride: pair("stride", stride)?,
        padding: pair("padding", padding)?,
        dilation: pair("dilation", dilation)?,
        groups: file_size(node, op, "groups", groups)?,
    })
}

fn unsupported(node: u32, op: &Op) -> Error {
    Error::UnsupportedOp {
        node,
        op: op.name(),
    }
}

/// The engine's form of a file's op at `node`. A reshape's or broadcast's target shape is
/// checked, and so are an op's parameters that do not depend on its inputs' shapes, as when
/// it is recorded ([`Error::OpParameter`]: a NaN slope, a non-positive softplus beta, a
/// dropout probability outside `[0, 1]`, a slice step below 1, more pad pairs than
/// [`MAX_RANK`]). The rest (an axis, a correction against the lane length) is checked by
/// `Op::output_shape` when the loader infers the node's shape.
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
        OpV2::Reduce { op, axis, keep_dim } => Op::Reduce {
            op: reduce_from_file(op),
            axis: axis.map(|a| a as usize),
            keep_dim,
        },
        OpV2::SoftmaxAxis { axis } => Op::SoftmaxAxis {
            axis: axis as usize,
        },
        OpV2::LogSoftmaxAxis { axis } => Op::LogSoftmaxAxis {
            axis: axis as usize,
        },
        OpV2::Loss(loss) => Op::Loss(loss_from_file(loss)),
        OpV2::BroadcastTo(ref dims) => Op::BroadcastTo(shape_from_file(
            || format!("the broadcast_to of node {node}"),
            dims,
        )?),
        OpV2::Narrow {
            axis,
            start,
            length,
        } => Op::Narrow {
            axis: axis as usize,
            start,
            length: usize::try_from(length).map_err(|_| {
                invalid(
                    node,
                    "narrow",
                    "length",
                    length as f64,
                    "it must fit in memory",
                )
            })?,
        },
        OpV2::IndexSelect { axis } => Op::IndexSelect {
            axis: axis as usize,
        },
        OpV2::Gather { axis } => Op::Gather {
            axis: axis as usize,
        },
        OpV2::BatchedMatMul => Op::BatchedMatMul,
        OpV2::Dropout { p, seed } => Op::Dropout { p, seed },
        OpV2::Slice {
            axis,
            start,
            end,
            step,
        } => Op::Slice {
            axis: axis as usize,
            range: SliceAxis { start, end, step },
        },
        OpV2::Pad { ref pads, value } => {
            if pads.len() > MAX_RANK {
                return Err(invalid(
                    node,
                    "pad",
                    "pads",
                    pads.len() as f64,
                    "there are at most as many (before, after) pairs as axes",
                ));
            }
            let mut all = [[0u32; 2]; MAX_RANK];
            all[..pads.len()].copy_from_slice(pads);
            Op::Pad {
                pads: all,
                axes: pads.len() as u8,
                value,
            }
        }
        OpV2::Concat { axis } => Op::Concat {
            axis: axis as usize,
        },
        OpV2::Stack { axis } => Op::Stack {
            axis: axis as usize,
        },
        OpV2::Where => Op::Where,
        OpV2::IndexAdd { axis, len } => Op::IndexAdd {
            axis: axis as usize,
            len: file_len(node, "index_add", len)?,
        },
        OpV2::ScatterAdd { axis, len } => Op::ScatterAdd {
            axis: axis as usize,
            len: file_len(node, "scatter_add", len)?,
        },
        OpV2::Conv2d {
            stride,
            padding,
            dilation,
            groups,
        } => {
            let pair = |argument, [h, w]: [u64; 2]| {
                Ok::<_, Error>([
                    file_size(node, "conv2d", argument, h)?,
                    file_size(node, "conv2d", argument, w)?,
                ])
            };
            Op::Conv2d(Conv2dArgs {
                stride: pair("stride", stride)?,
                padding: pair("padding", padding)?,
                dilation: pair("dilation", dilation)?,
                groups: file_size(node, "conv2d", "groups", groups)?,
            })
        }
        OpV2::Conv1d {
            stride,
            padding,
            dilation,
            groups,
        } => Op::Conv1d(Conv1dArgs {
            stride: file_size(node, "conv1d", "stride", stride)?,
            padding: file_size(node, "conv1d", "padding", padding)?,
            dilation: file_size(node, "conv1d", "dilation", dilation)?,
            groups: file_size(node, "conv1d", "groups", groups)?,
        }),
        OpV2::MaxPool2d {
            kernel,
            stride,
            padding,
        } => Op::MaxPool2d(Pool2dArgs {
            kernel: file_pair(node, "max_pool2d", "kernel", kernel)?,
            stride: file_pair(node, "max_pool2d", "stride", stride)?,
            padding: file_pair(node, "max_pool2d", "padding", padding)?,
            count_include_pad: true,
        }),
        OpV2::AvgPool2d {
            kernel,
            stride,
            padding,
            count_include_pad,
        } => Op::AvgPool2d(Pool2dArgs {
            kernel: file_pair(node, "avg_pool2d", "kernel", kernel)?,
            stride: file_pair(node, "avg_pool2d", "stride", stride)?,
            padding: file_pair(node, "avg_pool2d", "padding", padding)?,
            count_include_pad,
        }),
        OpV2::AdaptiveAvgPool2d { size } => {
            Op::AdaptiveAvgPool2d(file_pair(node, "adaptive_avg_pool2d", "size", size)?)
        }
        OpV2::Embedding { padding_idx } => Op::Embedding {
            padding_idx: padding_idx
                .map(|p| file_size(node, "embedding", "padding_idx", p))
                .transpose()?,
        },
        OpV2::LayerNorm {
            axes,
            eps,
            gamma,
            beta,
        } => Op::LayerNorm {
            axes: axes as usize,
            eps,
            gamma,
            beta,
        },
        OpV2::BatchNorm {
            eps,
            training,
            gamma,
            beta,
        } => Op::BatchNorm {
            eps,
            training,
            gamma,
            beta,
        },
        OpV2::Conv2dInputGrad {
            stride,
            padding,
            dilation,
            groups,
        } => Op::Conv2dInputGrad(conv2d_args_from_file(
            node,
            "conv2d_input_grad",
            [stride, padding, dilation],
            groups,
        )?),
        OpV2::Conv2dWeightGrad {
            stride,
            padding,
            dilation,
            groups,
        } => Op::Conv2dWeightGrad(conv2d_args_from_file(
            node,
            "conv2d_weight_grad",
            [stride, padding, dilation],
            groups,
        )?),
        OpV2::MaxPool2dGrad {
            kernel,
            stride,
            padding,
        } => Op::MaxPool2dGrad(Pool2dArgs {
            kernel: file_pair(node, "max_pool2d_grad", "kernel", kernel)?,
            stride: file_pair(node, "max_pool2d_grad", "stride", stride)?,
            padding: file_pair(node, "max_pool2d_grad", "padding", padding)?,
            count_include_pad: true,
        }),
        OpV2::MaxPool2dSelect {
            kernel,
            stride,
            padding,
        } => Op::MaxPool2dSelect(Pool2dArgs {
            kernel: file_pair(node, "max_pool2d_select", "kernel", kernel)?,
            stride: file_pair(node, "max_pool2d_select", "stride", stride)?,
            padding: file_pair(node, "max_pool2d_select", "padding", padding)?,
            count_include_pad: true,
        }),
        OpV2::AvgPool2dGrad {
            kernel,
            stride,
            padding,
            count_include_pad,
        } => Op::AvgPool2dGrad(Pool2dArgs {
            kernel: file_pair(node, "avg_pool2d_grad", "kernel", kernel)?,
            stride: file_pair(node, "avg_pool2d_grad", "stride", stride)?,
            padding: file_pair(node, "avg_pool2d_grad", "padding", padding)?,
            count_include_pad,
        }),
        OpV2::AdaptiveAvgPool2dGrad { size } => {
            Op::AdaptiveAvgPool2dGrad(file_pair(node, "adaptive_avg_pool2d_grad", "size", size)?)
        }
        OpV2::Linear => Op::Linear,
        OpV2::WeightedLoss(loss) => {
            let loss = loss_from_file(loss);
            if !loss.takes_weight() {
                return Err(invalid(
                    node,
                    loss.name(),
                    "weight",
                    f64::NAN,
                    "this loss takes no weights",
                ));
            }
            Op::WeightedLoss(loss)
        }
    };
    op.check_parameters()
        .map_err(|source| Error::OpParameter { node, source })?;
    check_loaded_parameters(node, &op)?;
    Ok(op)
}

/// Refuses the parameters of the ops added at tag 50 that the engine refuses whatever the
/// shapes, with the names it gives them (`Op::output_shape` refuses them too, but this names
/// the parameter before the shapes are looked at).
fn check_loaded_parameters(node: u32, op: &Op) -> Result<()> {
    let at_least_0 = |v: f64| v.is_finite() && v >= 0.0;
    let probability = |v: f64| (0.0..=1.0).contains(&v);
    let (name, argument, value, ok, requirement) = match *op {
        Op::Reduce {
            op: ReduceOp::Var(c) | ReduceOp::Std(c),
            ..
        } => (
            op.name(),
            "correction",
            c,
            at_least_0(c),
            "it must be at least 0",
        ),
        Op::Loss(LossOp::Distance {
            distance: Distance::SmoothL1 { beta },
            ..
        }) => (
            op.name(),
            "beta",
            beta,
            beta >= 0.0,
            "it must be at least 0",
        ),
        Op::Loss(LossOp::Distance {
            distance: Distance::Huber { delta },
            ..
        }) => (op.name(), "delta", delta, delta > 0.0, "it must be above 0"),
        Op::Loss(LossOp::CrossEntropy(o)) | Op::WeightedLoss(LossOp::CrossEntropy(o)) => (
            op.name(),
            "label_smoothing",
            o.label_smoothing,
            probability(o.label_smoothing),
            "it must be between 0 and 1",
        ),
        Op::Dropout { p, .. } => (
            op.name(),
            "p",
            p,
            probability(p),
            "it must be a probability, between 0 and 1",
        ),
        Op::Slice { range, .. } => (
            op.name(),
            "step",
            range.step as f64,
            range.step >= 1,
            "it must be at least 1",
        ),
        _ => return Ok(()),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(node, name, argument, value, requirement))
    }
}

/// A length from the file as a `usize`, or the error naming the op it belongs to.
fn file_len(node: u32, op: &'static str, len: u64) -> Result<usize> {
    file_size(node, op, "len", len)
}

/// A (height, width) pair of sizes read from a file, as `usize`s.
fn file_pair(
    node: u32,
    op: &'static str,
    argument: &'static str,
    [h, w]: [u64; 2],
) -> Result<[usize; 2]> {
    Ok([
        file_size(node, op, argument, h)?,
        file_size(node, op, argument, w)?,
    ])
}

/// A size or count parameter read from a file, as a `usize`.
fn file_size(node: u32, op: &'static str, argument: &'static str, value: u64) -> Result<usize> {
    usize::try_from(value)
        .map_err(|_| invalid(node, op, argument, value as f64, "it must fit in memory"))
}

fn invalid(
    node: u32,
    op: &'static str,
    argument: &'static str,
    value: f64,
    requirement: &str,
) -> Error {
    Error::OpParameter {
        node,
        source: wengert_ops::Error::InvalidArgument {
            op,
            argument,
            value,
            requirement: requirement.to_string(),
        },
    }
}

fn reduce_to_file(op: ReduceOp) -> ReduceOpV2 {
    match op {
        ReduceOp::Amax => ReduceOpV2::Amax,
        ReduceOp::Amin => ReduceOpV2::Amin,
        ReduceOp::MaxAt => ReduceOpV2::MaxAt,
        ReduceOp::MinAt => ReduceOpV2::MinAt,
        ReduceOp::ArgMax => ReduceOpV2::ArgMax,
        ReduceOp::ArgMin => ReduceOpV2::ArgMin,
        ReduceOp::LogSumExp => ReduceOpV2::LogSumExp,
        ReduceOp::Prod => ReduceOpV2::Prod,
        ReduceOp::Var(correction) => ReduceOpV2::Var { correction },
        ReduceOp::Std(correction) => ReduceOpV2::Std { correction },
        ReduceOp::Norm => ReduceOpV2::Norm,
    }
}

fn reduce_from_file(op: ReduceOpV2) -> ReduceOp {
    match op {
        ReduceOpV2::Amax => ReduceOp::Amax,
        ReduceOpV2::Amin => ReduceOp::Amin,
        ReduceOpV2::MaxAt => ReduceOp::MaxAt,
        ReduceOpV2::MinAt => ReduceOp::MinAt,
        ReduceOpV2::ArgMax => ReduceOp::ArgMax,
        ReduceOpV2::ArgMin => ReduceOp::ArgMin,
        ReduceOpV2::LogSumExp => ReduceOp::LogSumExp,
        ReduceOpV2::Prod => ReduceOp::Prod,
        ReduceOpV2::Var { correction } => ReduceOp::Var(correction),
        ReduceOpV2::Std { correction } => ReduceOp::Std(correction),
        ReduceOpV2::Norm => ReduceOp::Norm,
    }
}

fn reduction_to_file(r: Reduction) -> ReductionV2 {
    match r {
        Reduction::Mean => ReductionV2::Mean,
        Reduction::Sum => ReductionV2::Sum,
        Reduction::None => ReductionV2::None,
    }
}

fn reduction_from_file(r: ReductionV2) -> Reduction {
    match r {
        ReductionV2::Mean => Reduction::Mean,
        ReductionV2::Sum => Reduction::Sum,
        ReductionV2::None => Reduction::None,
    }
}

fn loss_to_file(loss: LossOp) -> LossOpV2 {
    match loss {
        LossOp::Distance {
            distance,
            reduction,
        } => LossOpV2::Distance {
            distance: match distance {
                Distance::L1 => DistanceV2::L1,
                Distance::SmoothL1 { beta } => DistanceV2::SmoothL1 { beta },
                Distance::Huber { delta } => DistanceV2::Huber { delta },
            },
            reduction: reduction_to_file(reduction),
        },
        LossOp::BceWithLogits { reduction } => LossOpV2::BceWithLogits {
            reduction: reduction_to_file(reduction),
        },
        LossOp::Nll {
            ignore_index,
            reduction,
        } => LossOpV2::Nll {
            ignore_index,
            reduction: reduction_to_file(reduction),
        },
        LossOp::CrossEntropy(CrossEntropyOptions {
            targets,
            ignore_index,
            label_smoothing,
            reduction,
        }) => LossOpV2::CrossEntropy {
            targets: match targets {
                Targets::Classes => TargetsV2::Classes,
                Targets::Probabilities => TargetsV2::Probabilities,
            },
            ignore_index,
            label_smoothing,
            reduction: reduction_to_file(reduction),
        },
    }
}

fn loss_from_file(loss: LossOpV2) -> LossOp {
    match loss {
        LossOpV2::Distance {
            distance,
            reduction,
        } => LossOp::Distance {
            distance: match distance {
                DistanceV2::L1 => Distance::L1,
                DistanceV2::SmoothL1 { beta } => Distance::SmoothL1 { beta },
                DistanceV2::Huber { delta } => Distance::Huber { delta },
            },
            reduction: reduction_from_file(reduction),
        },
        LossOpV2::BceWithLogits { reduction } => LossOp::BceWithLogits {
            reduction: reduction_from_file(reduction),
        },
        LossOpV2::Nll {
            ignore_index,
            reduction,
        } => LossOp::Nll {
            ignore_index,
            reduction: reduction_from_file(reduction),
        },
        LossOpV2::CrossEntropy {
            targets,
            ignore_index,
            label_smoothing,
            reduction,
        } => LossOp::CrossEntropy(CrossEntropyOptions {
            targets: match targets {
                TargetsV2::Classes => Targets::Classes,
                TargetsV2::Probabilities => Targets::Probabilities,
            },
            ignore_index,
            label_smoothing,
            reduction: reduction_from_file(reduction),
        }),
    }
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
        ops.extend(ops_from_tag_50());
        ops.extend(ops_from_tag_62());
        ops
    }

    /// The ops given codes from tag 62: of any number of inputs, `where`, weighted losses.
    fn ops_from_tag_62() -> Vec<Op> {
        let mut ops = vec![
            Op::Concat { axis: 0 },
            Op::Concat { axis: 5 },
            Op::Stack { axis: 0 },
            Op::Stack { axis: 6 },
            Op::Where,
        ];
        for reduction in [Reduction::Mean, Reduction::None] {
            ops.push(Op::WeightedLoss(LossOp::BceWithLogits { reduction }));
            ops.push(Op::WeightedLoss(LossOp::Nll {
                ignore_index: Some(-100),
                reduction,
            }));
            ops.push(Op::WeightedLoss(LossOp::CrossEntropy(
                CrossEntropyOptions {
                    targets: Targets::Probabilities,
                    ignore_index: None,
                    label_smoothing: 0.25,
                    reduction,
                },
            )));
        }
        ops
    }

    #[test]
    fn every_op_from_tag_62_survives_the_round_trip_through_bytes_at_its_tag() {
        for op in ops_from_tag_62() {
            let file = op_to_file(7, &op).unwrap();
            let mut bytes = Vec::new();
            crate::codec::encode_into(&file, &mut bytes);
            let tag = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            let expected = match op {
                Op::Concat { .. } => 62,
                Op::Stack { .. } => 63,
                Op::Where => 64,
                _ => 65,
            };
            assert_eq!(tag, expected, "{op:?}");
            let read: OpV2 = crate::codec::decode(&bytes).unwrap();
            assert_eq!(op_from_file(7, &read).unwrap(), op);
        }
        let smoothing = OpV2::WeightedLoss(LossOpV2::CrossEntropy {
            targets: TargetsV2::Classes,
            ignore_index: None,
            label_smoothing: 2.0,
            reduction: ReductionV2::Sum,
        });
        assert!(matches!(
            op_from_file(3, &smoothing),
            Err(Error::OpParameter { node: 3, .. })
        ));
    }

    /// The ops given codes from tag 50, each with several parameter values.
    fn ops_from_tag_50() -> Vec<Op> {
        let reductions = [
            ReduceOp::Amax,
            ReduceOp::Amin,
            ReduceOp::MaxAt,
            ReduceOp::MinAt,
            ReduceOp::ArgMax,
            ReduceOp::ArgMin,
            ReduceOp::LogSumExp,
            ReduceOp::Prod,
            ReduceOp::Var(0.0),
            ReduceOp::Var(1.0),
            ReduceOp::Std(0.5),
            ReduceOp::Std(f64::MIN_POSITIVE),
            ReduceOp::Norm,
        ];
        let mut ops = Vec::new();
        for op in reductions {
            for (axis, keep_dim) in [
                (None, false),
                (None, true),
                (Some(0), true),
                (Some(5), false),
            ] {
                ops.push(Op::Reduce { op, axis, keep_dim });
            }
        }
        let mut losses = Vec::new();
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            for distance in [
                Distance::L1,
                Distance::SmoothL1 { beta: 0.0 },
                Distance::SmoothL1 { beta: 1.5 },
                Distance::Huber { delta: 0.25 },
            ] {
                losses.push(LossOp::Distance {
                    distance,
                    reduction,
                });
            }
            losses.push(LossOp::BceWithLogits { reduction });
            for ignore_index in [None, Some(-100), Some(i64::MAX), Some(3)] {
                losses.push(LossOp::Nll {
                    ignore_index,
                    reduction,
                });
                for (targets, label_smoothing) in [
                    (Targets::Classes, 0.0),
                    (Targets::Probabilities, 0.1),
                    (Targets::Classes, 1.0),
                ] {
                    losses.push(LossOp::CrossEntropy(CrossEntropyOptions {
                        targets,
                        ignore_index,
                        label_smoothing,
                        reduction,
                    }));
                }
            }
        }
        ops.extend(losses.into_iter().map(Op::Loss));
        let mut pads = [[0u32; 2]; MAX_RANK];
        pads[0] = [1, 2];
        pads[1] = [0, u32::MAX];
        let mut full = [[7u32; 2]; MAX_RANK];
        full[MAX_RANK - 1] = [0, 3];
        ops.extend([
            Op::SoftmaxAxis { axis: 0 },
            Op::SoftmaxAxis { axis: 3 },
            Op::LogSoftmaxAxis { axis: 1 },
            Op::BroadcastTo(Shape::new(&[4, 1, 3]).unwrap()),
            Op::BroadcastTo(Shape::SCALAR),
            Op::Narrow {
                axis: 1,
                start: -2,
                length: 2,
            },
            Op::Narrow {
                axis: 0,
                start: i64::MIN,
                length: 0,
            },
            Op::IndexSelect { axis: 0 },
            Op::IndexSelect { axis: 2 },
            Op::Gather { axis: 1 },
            Op::BatchedMatMul,
            Op::Dropout { p: 0.0, seed: 0 },
            Op::Dropout {
                p: 0.5,
                seed: u64::MAX,
            },
            Op::Dropout { p: 1.0, seed: 42 },
            Op::Slice {
                axis: 0,
                range: SliceAxis::FULL,
            },
            Op::Slice {
                axis: 2,
                range: SliceAxis {
                    start: -5,
                    end: i64::MIN,
                    step: 3,
                },
            },
            Op::Pad {
                pads,
                axes: 2,
                value: -1.5,
            },
            Op::Pad {
                pads: [[0; 2]; MAX_RANK],
                axes: 0,
                value: 0.0,
            },
            Op::Pad {
                pads: full,
                axes: MAX_RANK as u8,
                value: f64::NEG_INFINITY,
            },
            Op::IndexAdd { axis: 0, len: 0 },
            Op::IndexAdd {
                axis: 3,
                len: 1 << 40,
            },
            Op::ScatterAdd { axis: 1, len: 7 },
            Op::Conv2d(Conv2dArgs::default()),
            Op::Conv2d(Conv2dArgs {
                stride: [2, 3],
                padding: [1, 0],
                dilation: [1, 2],
                groups: 4,
            }),
            Op::Conv1d(Conv1dArgs::default()),
            Op::Conv1d(Conv1dArgs {
                stride: 2,
                padding: 3,
                dilation: 4,
                groups: 5,
            }),
            Op::Conv2dInputGrad(Conv2dArgs {
                stride: [2, 1],
                padding: [0, 3],
                dilation: [2, 2],
                groups: 3,
            }),
            Op::Conv2dWeightGrad(Conv2dArgs::default()),
            Op::MaxPool2dGrad(Pool2dArgs::new([3, 1])),
            Op::MaxPool2dSelect(Pool2dArgs {
                kernel: [2, 2],
                stride: [1, 3],
                padding: [1, 0],
                count_include_pad: true,
            }),
            Op::AvgPool2dGrad(Pool2dArgs {
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 1],
                count_include_pad: false,
            }),
            Op::AdaptiveAvgPool2dGrad([2, 3]),
            Op::MaxPool2d(Pool2dArgs::new([2, 3])),
            Op::AvgPool2d(Pool2dArgs {
                kernel: [3, 3],
                stride: [1, 2],
                padding: [1, 0],
                count_include_pad: false,
            }),
            Op::AdaptiveAvgPool2d([1, 1]),
            Op::AdaptiveAvgPool2d([3, 7]),
            Op::Embedding { padding_idx: None },
            Op::Embedding {
                padding_idx: Some(3),
            },
            Op::LayerNorm {
                axes: 1,
                eps: 1e-5,
                gamma: false,
                beta: false,
            },
            Op::LayerNorm {
                axes: 3,
                eps: 0.25,
                gamma: true,
                beta: true,
            },
            Op::LayerNorm {
                axes: 2,
                eps: 0.0,
                gamma: false,
                beta: true,
            },
            Op::BatchNorm {
                eps: 1e-5,
                training: true,
                gamma: true,
                beta: true,
            },
            Op::BatchNorm {
                eps: 0.5,
                training: false,
                gamma: false,
                beta: true,
            },
            Op::BatchNorm {
                eps: 0.0,
                training: false,
                gamma: true,
                beta: false,
            },
            Op::Linear,
        ]);
        ops
    }

    #[test]
    fn every_op_from_tag_50_survives_the_round_trip_through_bytes() {
        for op in ops_from_tag_50() {
            let file = op_to_file(7, &op).unwrap();
            let mut bytes = Vec::new();
            crate::codec::encode_into(&file, &mut bytes);
            let read: OpV2 = crate::codec::decode(&bytes).unwrap();
            assert_eq!(op_from_file(7, &read).unwrap(), op);
        }
    }

    #[test]
    fn a_parameter_of_an_op_from_tag_50_the_engine_refuses_is_refused_on_load() {
        let distance = |distance| {
            OpV2::Loss(LossOpV2::Distance {
                distance,
                reduction: ReductionV2::Mean,
            })
        };
        let cross_entropy = |label_smoothing| {
            OpV2::Loss(LossOpV2::CrossEntropy {
                targets: TargetsV2::Classes,
                ignore_index: None,
                label_smoothing,
                reduction: ReductionV2::Sum,
            })
        };
        let reduce = |op| OpV2::Reduce {
            op,
            axis: None,
            keep_dim: false,
        };
        let slice = |step| OpV2::Slice {
            axis: 0,
            start: 0,
            end: 4,
            step,
        };
        let bad = [
            (
                reduce(ReduceOpV2::Var {
                    correction: f64::NAN,
                }),
                "correction",
            ),
            (reduce(ReduceOpV2::Std { correction: -1.0 }), "correction"),
            (
                reduce(ReduceOpV2::Var {
                    correction: f64::INFINITY,
                }),
                "correction",
            ),
            (distance(DistanceV2::SmoothL1 { beta: -0.5 }), "beta"),
            (distance(DistanceV2::SmoothL1 { beta: f64::NAN }), "beta"),
            (distance(DistanceV2::Huber { delta: 0.0 }), "delta"),
            (distance(DistanceV2::Huber { delta: f64::NAN }), "delta"),
            (cross_entropy(1.5), "label_smoothing"),
            (cross_entropy(f64::NAN), "label_smoothing"),
            (
                OpV2::Dropout {
                    p: f64::NAN,
                    seed: 1,
                },
                "p",
            ),
            (OpV2::Dropout { p: -0.1, seed: 1 }, "p"),
            (OpV2::Dropout { p: 1.5, seed: 1 }, "p"),
            (slice(0), "step"),
            (slice(-1), "step"),
            (
                OpV2::Pad {
                    pads: vec![[0, 0]; MAX_RANK + 1],
                    value: 0.0,
                },
                "pads",
            ),
        ];
        for (op, parameter) in bad {
            match op_from_file(3, &op) {
                Err(Error::OpParameter {
                    node: 3,
                    source: wengert_ops::Error::InvalidArgument { argument, .. },
                }) if argument == parameter => {}
                other => panic!("{op:?}: {other:?}"),
            }
        }
        let too_many_axes = OpV2::BroadcastTo(vec![1; MAX_RANK + 1]);
        assert!(op_from_file(3, &too_many_axes).is_err());
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
        let from_50 = [
            OpV2::Reduce {
                op: ReduceOpV2::Norm,
                axis: None,
                keep_dim: false,
            },
            OpV2::SoftmaxAxis { axis: 0 },
            OpV2::LogSoftmaxAxis { axis: 0 },
            OpV2::Loss(LossOpV2::BceWithLogits {
                reduction: ReductionV2::Mean,
            }),
            OpV2::BroadcastTo(vec![]),
            OpV2::Narrow {
                axis: 0,
                start: 0,
                length: 0,
            },
            OpV2::IndexSelect { axis: 0 },
            OpV2::Gather { axis: 0 },
            OpV2::BatchedMatMul,
            OpV2::Dropout { p: 0.5, seed: 0 },
            OpV2::Slice {
                axis: 0,
                start: 0,
                end: 1,
                step: 1,
            },
            OpV2::Pad {
                pads: vec![],
                value: 0.0,
            },
        ];
        for (op, expected) in from_50.into_iter().zip(50..) {
            assert_eq!(tag(op.clone()), expected, "{op:?}");
        }
        assert_eq!(tag(OpV2::IndexAdd { axis: 0, len: 0 }), 66);
        assert_eq!(tag(OpV2::ScatterAdd { axis: 0, len: 0 }), 67);
        let conv2d = op_to_file(0, &Op::Conv2d(Conv2dArgs::default())).unwrap();
        assert_eq!(tag(conv2d), 68);
        let conv1d = op_to_file(0, &Op::Conv1d(Conv1dArgs::default())).unwrap();
        assert_eq!(tag(conv1d), 69);
        let pool = Pool2dArgs::new([2, 2]);
        assert_eq!(tag(op_to_file(0, &Op::MaxPool2d(pool)).unwrap()), 70);
        assert_eq!(tag(op_to_file(0, &Op::AvgPool2d(pool)).unwrap()), 71);
        let adaptive = op_to_file(0, &Op::AdaptiveAvgPool2d([1, 1])).unwrap();
        assert_eq!(tag(adaptive), 72);
        let embedding = op_to_file(0, &Op::Embedding { padding_idx: None }).unwrap();
        assert_eq!(tag(embedding), 73);
        let layer_norm = Op::LayerNorm {
            axes: 1,
            eps: 1e-5,
            gamma: true,
            beta: true,
        };
        assert_eq!(tag(op_to_file(0, &layer_norm).unwrap()), 74);
        let args = Conv2dArgs::default();
        assert_eq!(tag(op_to_file(0, &Op::Conv2dInputGrad(args)).unwrap()), 75);
        assert_eq!(tag(op_to_file(0, &Op::Conv2dWeightGrad(args)).unwrap()), 76);
        assert_eq!(tag(op_to_file(0, &Op::MaxPool2dGrad(pool)).unwrap()), 77);
        assert_eq!(tag(op_to_file(0, &Op::MaxPool2dSelect(pool)).unwrap()), 78);
        assert_eq!(tag(op_to_file(0, &Op::AvgPool2dGrad(pool)).unwrap()), 79);
        let adaptive_grad = Op::AdaptiveAvgPool2dGrad([2, 1]);
        assert_eq!(tag(op_to_file(0, &adaptive_grad).unwrap()), 80);
        let batch_norm = Op::BatchNorm {
            eps: 1e-5,
            training: true,
            gamma: true,
            beta: true,
        };
        assert_eq!(tag(op_to_file(0, &batch_norm).unwrap()), 81);
        assert_eq!(tag(op_to_file(0, &Op::Linear).unwrap()), 82);
    }

    #[test]
    fn an_optional_axis_and_pad_pairs_have_the_bytes_docs_format_md_gives() {
        let bytes = |op: &OpV2| {
            let mut out = Vec::new();
            crate::codec::encode_into(op, &mut out);
            out
        };
        let reduce = OpV2::Reduce {
            op: ReduceOpV2::Norm,
            axis: Some(1),
            keep_dim: true,
        };
        assert_eq!(bytes(&reduce), [50, 0, 0, 0, 10, 0, 0, 0, 1, 1, 0, 0, 0, 1]);
        let over_all = OpV2::Reduce {
            op: ReduceOpV2::Amax,
            axis: None,
            keep_dim: false,
        };
        assert_eq!(bytes(&over_all), [50, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let pad = OpV2::Pad {
            pads: vec![[1, 2]],
            value: 0.0,
        };
        let mut expected = vec![61, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0];
        expected.extend([0; 8]);
        assert_eq!(bytes(&pad), expected);
    }

    #[test]
    fn the_inner_enums_have_the_tags_docs_format_md_gives() {
        fn tag(value: &impl serde::Serialize) -> u32 {
            let mut bytes = Vec::new();
            crate::codec::encode_into(value, &mut bytes);
            u32::from_le_bytes(bytes[..4].try_into().unwrap())
        }
        assert_eq!(tag(&ReduceOpV2::Amax), 0);
        assert_eq!(tag(&ReduceOpV2::Prod), 7);
        assert_eq!(tag(&ReduceOpV2::Var { correction: 1.0 }), 8);
        assert_eq!(tag(&ReduceOpV2::Norm), 10);
        assert_eq!(tag(&ReductionV2::Mean), 0);
        assert_eq!(tag(&ReductionV2::None), 2);
        assert_eq!(tag(&DistanceV2::Huber { delta: 1.0 }), 2);
        assert_eq!(tag(&TargetsV2::Probabilities), 1);
        let nll = LossOpV2::Nll {
            ignore_index: None,
            reduction: ReductionV2::Sum,
        };
        assert_eq!(tag(&nll), 2);
    }
}
