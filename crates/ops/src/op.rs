//! [`Op`]: the closed set of built-in operations, with their shape, forward and VJP rules.
//!
//! The elementwise ops' rules are rows of the tables in [`crate::elementwise`]; every other
//! op's rule is one arm of a `match` here, with the arithmetic in [`crate::kernels`]. The VJP
//! arms carry the formula they implement as a one-line comment.

use crate::kernels::conv::{self, Conv1dArgs, Conv2dArgs};
use crate::kernels::embedding;
use crate::kernels::norm::{self, BatchNormArgs, NormGrads};
use crate::kernels::pool::{self, Pool2dArgs};
use crate::kernels::slice::SliceAxis;
use crate::kernels::{
    batched_matmul, binary, broadcast_to, concat, dropout, indexing, layout, loss, matmul, pad,
    reduce, scatter, select, slice, softmax, softmax_axis, unary,
};
use crate::operands::ShapesOf;
use crate::{
    BinaryOp, Error, Float, FoldedUpdate, LossOp, Operands, ReduceOp, Result, Shape, Shapes,
    TensorRef, UnaryOp,
};

/// A built-in operation. The tape stores these as data, so a recorded computation can be
/// inspected, saved and replayed.
///
/// The elementwise ops are grouped: [`UnaryOp`] and [`BinaryOp`] each hold a table of rules,
/// one row per op. Binary elementwise ops broadcast as NumPy does. Reductions and losses return
/// a scalar (rank-0) array unless an axis is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// A one-input elementwise op (`relu`, `tanh`, `x + c`, ...): the output has the input's
    /// shape.
    Unary(UnaryOp),
    /// A two-input elementwise op (`a + b`, `a · b`, ...), broadcasting.
    Binary(BinaryOp),
    /// Matrix product of `[m, k]` and `[k, n]`, giving `[m, n]`.
    MatMul,
    /// Sum of all elements, a scalar.
    Sum,
    /// Mean of all elements, a scalar.
    Mean,
    /// Sum along one axis.
    SumAxis {
        /// The axis summed over.
        axis: usize,
        /// Keep the axis with length 1 instead of removing it.
        keep_dim: bool,
    },
    /// Mean along one axis.
    MeanAxis {
        /// The axis averaged over.
        axis: usize,
        /// Keep the axis with length 1 instead of removing it.
        keep_dim: bool,
    },
    /// The same elements in another shape with the same element count.
    Reshape(Shape),
    /// Exchanges two axes (for a matrix, `axis0 = 0, axis1 = 1` is the transpose).
    Transpose {
        /// One axis.
        axis0: usize,
        /// The other axis.
        axis1: usize,
    },
    /// Softmax along the last axis.
    Softmax,
    /// Log-softmax along the last axis.
    LogSoftmax,
    /// Mean squared error of a prediction and a target of the same shape, a scalar.
    Mse,
    /// Softmax cross-entropy of logits `[batch, classes]` and labels `[batch]` (class indices
    /// stored as floats), averaged over the batch, a scalar. Gradients flow to the logits only.
    CrossEntropy,
    /// A reduction ([`ReduceOp`]: extremes, positions, logsumexp, product, moments, norm) over
    /// all elements (`axis: None`) or along one axis.
    Reduce {
        /// What each lane is reduced to.
        op: ReduceOp,
        /// The axis reduced along, or `None` for all elements.
        axis: Option<usize>,
        /// Keep the reduced axis (over all elements, every axis) with length 1.
        keep_dim: bool,
    },
    /// Softmax along any axis (the last one runs [`Softmax`](Op::Softmax)'s kernel).
    SoftmaxAxis {
        /// The axis each softmax runs along.
        axis: usize,
    },
    /// Log-softmax along any axis (the last one runs [`LogSoftmax`](Op::LogSoftmax)'s kernel).
    LogSoftmaxAxis {
        /// The axis each log-softmax runs along.
        axis: usize,
    },
    /// A loss of a prediction (input 0) and a target (input 1), with its reduction
    /// ([`LossOp`]: `l1_loss`, `smooth_l1_loss`, `huber_loss`, `binary_cross_entropy_with_logits`,
    /// `nll_loss`, cross-entropy with options).
    Loss(LossOp),
    /// The input repeated along its length-1 axes and new leading axes to this shape, as
    /// NumPy broadcasts.
    BroadcastTo(Shape),
    /// `length` elements along `axis` from `start` (negative counts from the end).
    Narrow {
        /// The axis narrowed.
        axis: usize,
        /// The first element kept; negative counts from the end.
        start: i64,
        /// How many elements are kept.
        length: usize,
    },
    /// The slices of input 0 along `axis` at the positions input 1 holds (a vector or a
    /// scalar of whole numbers, as floats); no gradient to the positions.
    IndexSelect {
        /// The axis selected along.
        axis: usize,
    },
    /// `y[i] = x[i with its axis coordinate replaced by index[i]]`, input 1 the index array
    /// (of `x`'s rank, whole numbers as floats); no gradient to the index.
    Gather {
        /// The axis gathered along.
        axis: usize,
    },
    /// Matrix products of `[..., m, k]` and `[..., k, n]` (both of rank 2 or more, one of
    /// more), the batch axes broadcast as NumPy: `torch.matmul` on batches.
    BatchedMatMul,
    /// Inverted dropout: each element kept (and scaled by `1 / (1 - p)`) or zeroed by a mask
    /// drawn from `seed` and the element's position alone, so that a replay draws it again.
    Dropout {
        /// The probability of zeroing an element, in `[0, 1]`.
        p: f64,
        /// The mask's seed; layers and steps need different ones.
        seed: u64,
    },
    /// `x[start:end:step]` along one axis, by Python's rules (negative bounds count from the
    /// end, bounds out of range are clamped); a slice of several axes is a chain of these.
    Slice {
        /// The axis sliced.
        axis: usize,
        /// The range taken along it.
        range: SliceAxis,
    },
    /// `x` surrounded by `value`: `pads[a] = [before, after]` elements on axis `a`, for the
    /// first `axes` axes (which must be all of the input's).
    Pad {
        /// The counts before and after each axis, in axis order.
        pads: [[u32; 2]; crate::MAX_RANK],
        /// How many entries of `pads` are given.
        axes: u8,
        /// The value padded with.
        value: f64,
    },
    /// Any number (at least 1) of arrays joined along an existing axis: of one rank, the same
    /// lengths on every other axis (`torch.cat`).
    Concat {
        /// The axis joined along.
        axis: usize,
    },
    /// Any number (at least 1) of arrays of one shape stacked along a new axis (`torch.stack`).
    Stack {
        /// Where the new axis goes, `0..=rank`.
        axis: usize,
    },
    /// `where(cond, a, b)`: `a` where `cond` (input 0) is not 0, else `b`, the three
    /// broadcast together; no gradient to the condition (`torch.where`).
    Where,
    /// A loss (`binary_cross_entropy_with_logits`, `nll_loss`, cross-entropy) with weights as a
    /// third input: `pos_weight` or class weights, `[C]`; no gradient to the weights.
    WeightedLoss(LossOp),
    /// Zeros of length `len` along `axis` with the slices of input 0 added at the positions
    /// input 1 holds (a vector or a scalar of whole numbers, as floats, one per slice):
    /// `index_select`'s adjoint, `torch.zeros(..).index_add_(axis, idx, src)`. No gradient to
    /// the positions.
    IndexAdd {
        /// The axis added along.
        axis: usize,
        /// The output's length along it.
        len: usize,
    },
    /// Zeros of length `len` along `axis` with `src[i]` added at `i` with its axis coordinate
    /// replaced by `index[i]` (input 1, of `src`'s shape): `gather`'s adjoint,
    /// `torch.zeros(..).scatter_add_(axis, index, src)`. No gradient to the index.
    ScatterAdd {
        /// The axis scattered along.
        axis: usize,
        /// The output's length along it.
        len: usize,
    },
    /// 2-D convolution (`F.conv2d`): x `[N, C, H, W]` (input 0) ⋆ w `[O, C/groups, kh, kw]`
    /// (input 1), plus an optional bias `[O]` (input 2). Needs a
    /// [scratch buffer](Op::needs_scratch) for its patch matrices.
    Conv2d(Conv2dArgs),
    /// 1-D convolution (`F.conv1d`): x `[N, C, L]` ⋆ w `[O, C/groups, k]`, plus an optional
    /// bias `[O]`, as [`Conv2d`](Op::Conv2d) on a height of 1.
    Conv1d(Conv1dArgs),
    /// 2-D max pooling (`F.max_pool2d`) of x `[N, C, H, W]` or `[C, H, W]`: each window's
    /// largest element (padding reads as -∞; the first of equal maxima, a NaN wins).
    MaxPool2d(Pool2dArgs),
    /// 2-D average pooling (`F.avg_pool2d`): each window's mean, divided by the whole window
    /// with `count_include_pad`, else by the input elements it covers.
    AvgPool2d(Pool2dArgs),
    /// Adaptive 2-D average pooling (`F.adaptive_avg_pool2d`) to `[out_h, out_w]`; `[1, 1]`
    /// is global average pooling.
    AdaptiveAvgPool2d([usize; 2]),
    // The embedding and layer-norm ops (issue 12).
    /// Rows of a table `[num, dim]` (input 0) picked by indices (input 1, whole numbers as
    /// floats, no gradient), shape `[...indices, dim]` (`F.embedding`); the row `padding_idx`
    /// names, if any, gets no gradient.
    Embedding {
        /// The table row that receives no gradient (PyTorch's `padding_idx`).
        padding_idx: Option<usize>,
    },
    /// Layer norm (`F.layer_norm`) of x (input 0) over its trailing `axes` axes, each row
    /// normalised by its mean and biased variance, then scaled by `gamma` and shifted by
    /// `beta` (the next inputs, each of the trailing shape, when present). Needs a
    /// [scratch buffer](Op::needs_scratch): the rows' statistics, kept for the VJP.
    LayerNorm {
        /// How many trailing axes make a row (`normalized_shape`'s length).
        axes: usize,
        /// Added to the variance before the square root.
        eps: f64,
        /// Whether a scale `gamma` follows x among the inputs.
        gamma: bool,
        /// Whether a shift `beta` follows (x and `gamma`, if present).
        beta: bool,
    },
    /// Batch norm (`F.batch_norm`) of x `[N, C, ...]` (input 0), each channel (axis 1)
    /// normalised over every other axis, then scaled by `gamma` and shifted by `beta` (the
    /// next inputs, `[C]` each, when present). In training by the batch's mean and biased
    /// variance; in evaluation by the running mean and variance, the last two inputs (`[C]`
    /// each, no gradient). The op updates nothing: a model computes the running estimates'
    /// new values from the batch as ordinary nodes. Needs a
    /// [scratch buffer](Op::needs_scratch): the channels' statistics, kept for the VJP.
    BatchNorm {
        /// Added to the variance before the square root.
        eps: f64,
        /// Whether the batch's statistics normalise (else the running estimates, inputs).
        training: bool,
        /// Whether a scale `gamma` follows x among the inputs.
        gamma: bool,
        /// Whether a shift `beta` follows (x and `gamma`, if present).
        beta: bool,
    },
    // The convolution's VJPs as ops of their own, so that its recorded VJP can be
    // differentiated again (issue 16). The shape of the gradient is that of a third input,
    // whose values are not read: an `Op` holds no shape beside other parameters, and a replay
    // at another batch follows it.
    /// `conv2d`'s VJP for its input: the gradient of x from the output's gradient g
    /// `[N, O, OH, OW]` (input 0) and the weight w (input 1), in the shape of input 2 (x, or
    /// any node of its shape); a transposed convolution (`torch.nn.grad.conv2d_input`).
    Conv2dInputGrad(Conv2dArgs),
    /// `conv2d`'s VJP for its weight: the gradient of w from the input x (input 0) and the
    /// output's gradient g (input 1), in the shape of input 2 (`torch.nn.grad.conv2d_weight`).
    Conv2dWeightGrad(Conv2dArgs),
    // The pools' VJPs as ops of their own, for their recorded VJPs (issue 16).
    /// `max_pool2d`'s VJP: x (input 0) and the pooled output's gradient g (input 1) → each
    /// window's g added at the element the pool took from x, in x's shape. No gradient to x
    /// (the positions are piecewise constant in it).
    MaxPool2dGrad(Pool2dArgs),
    /// [`MaxPool2dGrad`](Op::MaxPool2dGrad)'s adjoint: u (input 1, of x's shape) at the
    /// element each window of x (input 0) takes, in the pooled shape. No gradient to x.
    MaxPool2dSelect(Pool2dArgs),
    /// `avg_pool2d`'s VJP: the pooled output's gradient g (input 0) → each window's share
    /// spread over the elements it covers, in the shape of input 1 (x, whose values are not
    /// read).
    AvgPool2dGrad(Pool2dArgs),
    /// `adaptive_avg_pool2d`'s VJP, as [`AvgPool2dGrad`](Op::AvgPool2dGrad) for its windows.
    AdaptiveAvgPool2dGrad([usize; 2]),
    /// A dense layer's affine map `x·W + b` (`F.linear` with the weight stored `[in, out]`):
    /// x `[m, k]`, W `[k, n]` and b `[n]` (inputs 0-2) give `[m, n]`. The bias is added to
    /// each part of the product as soon as it is final, while it is in cache (one pass over
    /// the output instead of two), with the bits of `add(matmul(x, W), b)`, gradients
    /// included.
    Linear,
}

impl Op {
    /// The op's name as error messages show it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(op) => op.name(),
            Op::Binary(op) => op.name(),
            Op::MatMul => "matmul",
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::SumAxis { .. } => "sum_axis",
            Op::MeanAxis { .. } => "mean_axis",
            Op::Reshape(_) => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Softmax => "softmax",
            Op::LogSoftmax => "log_softmax",
            Op::Mse => "mse",
            Op::CrossEntropy => "cross_entropy",
            Op::Reduce { op, .. } => op.name(),
            Op::SoftmaxAxis { .. } => "softmax_axis",
            Op::LogSoftmaxAxis { .. } => "log_softmax_axis",
            Op::Loss(loss) => loss.name(),
            Op::BroadcastTo(_) => "broadcast_to",
            Op::Narrow { .. } => "narrow",
            Op::IndexSelect { .. } => "index_select",
            Op::Gather { .. } => "gather",
            Op::BatchedMatMul => "batched_matmul",
            Op::Dropout { .. } => "dropout",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Concat { .. } => "concat",
            Op::Stack { .. } => "stack",
            Op::Where => "where",
            Op::WeightedLoss(loss) => loss.name(),
            Op::IndexAdd { .. } => "index_add",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::Conv2d(_) => "conv2d",
            Op::Conv1d(_) => "conv1d",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::AdaptiveAvgPool2d(_) => "adaptive_avg_pool2d",
            Op::Embedding { .. } => "embedding",
            Op::LayerNorm { .. } => "layer_norm",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Conv2dInputGrad(_) => "conv2d_input_grad",
            Op::Conv2dWeightGrad(_) => "conv2d_weight_grad",
            Op::MaxPool2dGrad(_) => "max_pool2d_grad",
            Op::MaxPool2dSelect(_) => "max_pool2d_select",
            Op::AvgPool2dGrad(_) => "avg_pool2d_grad",
            Op::AdaptiveAvgPool2dGrad(_) => "adaptive_avg_pool2d_grad",
            Op::Linear => "linear",
        }
    }

    /// How many inputs the op takes: exactly this many, or at least this many for an op that
    /// [takes any number](Op::takes_any_number).
    #[inline]
    pub fn arity(&self) -> usize {
        match self {
            Op::Where | Op::WeightedLoss(_) | Op::Linear => 3,
            Op::LayerNorm { gamma, beta, .. } => norm_inputs(*gamma, *beta),
            Op::BatchNorm {
                training,
                gamma,
                beta,
                ..
            } => norm_inputs(*gamma, *beta) + 2 * usize::from(!*training),
            Op::Binary(_)
            | Op::MatMul
            | Op::Mse
            | Op::CrossEntropy
            | Op::Loss(_)
            | Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::BatchedMatMul
            | Op::IndexAdd { .. }
            | Op::ScatterAdd { .. }
            | Op::Conv2d(_)
            | Op::Conv1d(_)
            | Op::Embedding { .. }
            | Op::MaxPool2dGrad(_)
            | Op::MaxPool2dSelect(_)
            | Op::AvgPool2dGrad(_)
            | Op::AdaptiveAvgPool2dGrad(_) => 2,
            Op::Conv2dInputGrad(_) | Op::Conv2dWeightGrad(_) => 3,
            Op::Unary(_)
            | Op::Sum
            | Op::Mean
            | Op::SumAxis { .. }
            | Op::MeanAxis { .. }
            | Op::Reshape(_)
            | Op::Transpose { .. }
            | Op::Softmax
            | Op::LogSoftmax
            | Op::Reduce { .. }
            | Op::SoftmaxAxis { .. }
            | Op::LogSoftmaxAxis { .. }
            | Op::BroadcastTo(_)
            | Op::Narrow { .. }
            | Op::Dropout { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Concat { .. }
            | Op::Stack { .. }
            | Op::MaxPool2d(_)
            | Op::AvgPool2d(_)
            | Op::AdaptiveAvgPool2d(_) => 1,
        }
    }

    /// Whether the op takes any number of inputs from its [`arity`](Op::arity) up (`concat`,
    /// `stack`).
    #[inline]
    pub fn takes_any_number(&self) -> bool {
        matches!(self, Op::Concat { .. } | Op::Stack { .. })
    }

    /// Whether the op takes one more input than its [`arity`](Op::arity) optionally (a
    /// convolution's bias).
    #[inline]
    pub fn takes_optional_input(&self) -> bool {
        matches!(self, Op::Conv2d(_) | Op::Conv1d(_))
    }

    /// Whether the op's forward and VJP use a buffer of their own beside the output (a
    /// convolution's patch matrices), which a caller that runs the op repeatedly keeps per
    /// node and passes to [`forward_with_scratch`](Op::forward_with_scratch) and
    /// [`vjp_with_scratch`](Op::vjp_with_scratch), so that a warm step allocates nothing.
    #[inline]
    pub fn needs_scratch(&self) -> bool {
        matches!(
            self,
            Op::Conv2d(_)
                | Op::Conv1d(_)
                | Op::Conv2dInputGrad(_)
                | Op::Conv2dWeightGrad(_)
                | Op::LayerNorm { .. }
                | Op::BatchNorm { .. }
        )
    }

    /// How many elements the op's [scratch buffer](Op::needs_scratch) grows to for these input
    /// shapes (0 for an op without one), for a caller bounding memory before it runs the op.
    /// The shapes must have passed [`output_shape`](Op::output_shape).
    pub fn scratch_len<'s>(&self, inputs: &(impl Shapes<'s> + ?Sized)) -> Result<usize> {
        match *self {
            Op::Conv2d(args) => conv::conv2d_scratch_len(inputs.shape(0), inputs.shape(1), args),
            Op::Conv1d(args) => conv::conv1d_scratch_len(inputs.shape(0), inputs.shape(1), args),
            Op::LayerNorm { axes, .. } => Ok(norm::layer_norm_saved_len(inputs.shape(0), axes)),
            Op::BatchNorm { .. } => Ok(norm::batch_norm_saved_len(inputs.shape(0))),
            Op::Conv2dInputGrad(args) => {
                conv::conv2d_scratch_len(inputs.shape(2), inputs.shape(1), args)
            }
            Op::Conv2dWeightGrad(args) => {
                conv::conv2d_scratch_len(inputs.shape(0), inputs.shape(2), args)
            }
            _ => Ok(0),
        }
    }

    /// Whether the op can be applied to `count` inputs.
    #[inline]
    pub fn accepts(&self, count: usize) -> bool {
        if self.takes_optional_input() {
            count == self.arity() || count == self.arity() + 1
        } else if self.takes_any_number() {
            count >= self.arity()
        } else {
            count == self.arity()
        }
    }

    /// Whether the output has the input's shape with no check needed: the one-input
    /// elementwise ops.
    #[inline]
    pub fn keeps_shape(&self) -> bool {
        matches!(self, Op::Unary(_))
    }

    /// Checks the op's own parameters (an elementwise op's slope, bounds, ...), which
    /// [`output_shape`](Op::output_shape) does too: for a caller that skips it.
    #[inline]
    pub fn check_parameters(&self) -> Result<()> {
        match self {
            Op::Unary(op) => op.check(),
            // The other ops' parameters are axes and shapes, checked against the input's shape.
            _ => Ok(()),
        }
    }

    /// Whether the op is a two-input elementwise op (which broadcasts): for inputs of one
    /// shape, the output has that shape.
    #[inline]
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Binary(_))
    }

    /// Whether a gradient flows to input `index` (a cross-entropy's labels get none, nor does
    /// the input of an op without a gradient such as `detach`).
    #[inline]
    pub fn differentiable_in(&self, index: usize) -> bool {
        match (self, index) {
            (Op::Unary(op), _) => op.has_gradient(),
            (Op::Binary(op), _) => op.has_gradient(),
            (Op::CrossEntropy, 1) => false,
            (Op::Reduce { op, .. }, _) => op.has_gradient(),
            (Op::Loss(loss), k) => loss.differentiable_in(k),
            (
                Op::IndexSelect { .. }
                | Op::Gather { .. }
                | Op::IndexAdd { .. }
                | Op::ScatterAdd { .. },
                1,
            ) => false,
            (Op::Where, 0) => false,
            (Op::Embedding { .. }, 1) => false,
            // The running estimates (evaluation's last two inputs).
            (
                Op::BatchNorm {
                    training: false,
                    gamma,
                    beta,
                    ..
                },
                k,
            ) => k < norm_inputs(*gamma, *beta),
            (Op::MaxPool2dGrad(_) | Op::MaxPool2dSelect(_), 0) => false,
            // The inputs that give a VJP op its output's shape only.
            (Op::Conv2dInputGrad(_) | Op::Conv2dWeightGrad(_), 2) => false,
            (Op::AvgPool2dGrad(_) | Op::AdaptiveAvgPool2dGrad(_), 1) => false,
            (Op::WeightedLoss(loss), k) => k < 2 && loss.differentiable_in(k),
            _ => true,
        }
    }

    /// The output's shape for these input shapes, or an error that names the op and the shapes.
    ///
    /// ```
    /// use wengert_ops::{Op, Shape};
    /// let a = Shape::new(&[2, 3]).unwrap();
    /// let b = Shape::new(&[4, 5]).unwrap();
    /// let err = Op::MatMul.output_shape(&[&a, &b]).unwrap_err();
    /// assert_eq!(err.to_string(), "matmul: shapes [2, 3] and [4, 5] do not fit together");
    /// ```
    ///
    /// `inputs` is a slice or array of shapes, or any list read through [`Shapes`].
    #[inline]
    pub fn output_shape<'s>(&self, inputs: &(impl Shapes<'s> + ?Sized)) -> Result<Shape> {
        if !self.accepts(inputs.count()) {
            return Err(Error::WrongArity {
                op: self.name().to_string(),
                expected: self.arity(),
                got: inputs.count(),
            });
        }
        let op = self.name();
        let x = inputs.shape(0);
        match *self {
            Op::Unary(op) => {
                op.check()?;
                Ok(*x)
            }
            Op::Binary(_) => binary::broadcast_shape(op, x, inputs.shape(1)),
            Op::MatMul => matmul::output_shape(x, inputs.shape(1)),
            Op::Linear => matmul::linear_shape(x, inputs.shape(1), inputs.shape(2)),
            Op::Sum => Ok(Shape::SCALAR),
            Op::Mean => {
                if x.numel() == 0 {
                    return Err(Error::EmptyBatch { op, shape: *x });
                }
                Ok(Shape::SCALAR)
            }
            Op::SumAxis { axis, keep_dim } => {
                reduce::axis_output_shape(op, x, axis, keep_dim, false)
            }
            Op::MeanAxis { axis, keep_dim } => {
                reduce::axis_output_shape(op, x, axis, keep_dim, true)
            }
            Op::Reshape(to) => {
                if to.numel() != x.numel() {
                    return Err(Error::ReshapeMismatch { from: *x, to });
                }
                Ok(to)
            }
            Op::Transpose { axis0, axis1 } => layout::transpose_shape(x, axis0, axis1),
            Op::Softmax | Op::LogSoftmax => {
                if x.rank() == 0 {
                    return Err(Error::WrongRank {
                        op,
                        expected: "at least 1",
                        shape: *x,
                    });
                }
                Ok(*x)
            }
            Op::Mse => loss::mse_shape(x, inputs.shape(1)),
            Op::CrossEntropy => loss::cross_entropy_shape(x, inputs.shape(1)),
            Op::Reduce { op, axis, keep_dim } => op.output_shape(x, axis, keep_dim),
            Op::SoftmaxAxis { axis } | Op::LogSoftmaxAxis { axis } => {
                softmax_axis::softmax_axis_shape(op, x, axis)
            }
            Op::Loss(loss) => loss.output_shape(x, inputs.shape(1), None),
            Op::WeightedLoss(loss) => loss.output_shape(x, inputs.shape(1), Some(inputs.shape(2))),
            Op::BroadcastTo(to) => broadcast_to::broadcast_to_shape(x, &to),
            Op::Narrow {
                axis,
                start,
                length,
            } => slice::narrow_shape(x, axis, start, length),
            Op::IndexSelect { axis } => indexing::index_select_shape(x, axis, inputs.shape(1)),
            Op::Gather { axis } => indexing::gather_shape(x, axis, inputs.shape(1)),
            Op::IndexAdd { axis, len } => scatter::index_add_shape(x, axis, inputs.shape(1), len),
            Op::ScatterAdd { axis, len } => {
                scatter::scatter_add_shape(x, axis, inputs.shape(1), len)
            }
            Op::BatchedMatMul => batched_matmul::batched_matmul_shape(x, inputs.shape(1)),
            Op::Dropout { p, .. } => dropout::dropout_shape(x, p),
            Op::Slice { axis, range } => {
                if axis >= x.rank() {
                    return Err(Error::AxisOutOfRange {
                        op,
                        axis,
                        shape: *x,
                    });
                }
                slice::slice_shape(x, &slice_ranges(axis, range)[..=axis])
            }
            Op::Pad { pads, axes, .. } => {
                // More pairs than any shape has axes: as many as given, refused by pad_shape.
                let pairs = pad_pairs(&pads, axes);
                if axes as usize > crate::MAX_RANK {
                    return pad::pad_shape(x, &[(0, 0); crate::MAX_RANK + 1]);
                }
                pad::pad_shape(x, &pairs[..axes as usize])
            }
            Op::Concat { axis } => concat::concat_shape(inputs, axis),
            Op::Stack { axis } => concat::stack_shape(inputs, axis),
            Op::Where => select::where_shape(x, inputs.shape(1), inputs.shape(2)),
            Op::Conv2d(args) => {
                let bias = (inputs.count() > 2).then(|| inputs.shape(2));
                conv::conv2d_shape(x, inputs.shape(1), bias, args)
            }
            Op::Conv1d(args) => {
                let bias = (inputs.count() > 2).then(|| inputs.shape(2));
                conv::conv1d_shape(x, inputs.shape(1), bias, args)
            }
            Op::MaxPool2d(args) => pool::max_pool2d_shape(x, args),
            Op::AvgPool2d(args) => pool::avg_pool2d_shape(x, args),
            Op::AdaptiveAvgPool2d(size) => pool::adaptive_avg_pool2d_shape(x, size),
            Op::Embedding { padding_idx } => {
                embedding::embedding_shape(inputs.shape(1), x, padding_idx)
            }
            Op::LayerNorm {
                axes,
                eps,
                gamma,
                beta,
            } => {
                let gamma_shape = gamma.then(|| inputs.shape(1));
                let beta_shape = beta.then(|| inputs.shape(1 + usize::from(gamma)));
                norm::layer_norm_shape(x, axes, gamma_shape, beta_shape, eps)
            }
            Op::BatchNorm { eps, training, .. } => {
                // gamma, beta and the running estimates, whichever are present: all `[C]`.
                let mut per_channel = [x; 4];
                let count = inputs.count() - 1;
                for (k, s) in per_channel.iter_mut().enumerate().take(count) {
                    *s = inputs.shape(1 + k);
                }
                let args = BatchNormArgs {
                    eps,
                    ..BatchNormArgs::default()
                };
                norm::batch_norm_shape(x, &per_channel[..count], args, training)
            }
            // The gradient g must be what the convolution of the given shapes gives.
            Op::Conv2dInputGrad(args) => {
                let (w, input) = (inputs.shape(1), *inputs.shape(2));
                conv_grad_shape(self.name(), conv::conv2d_shape(&input, w, None, args)?, x)?;
                Ok(input)
            }
            Op::Conv2dWeightGrad(args) => {
                let (g, weight) = (inputs.shape(1), *inputs.shape(2));
                conv_grad_shape(self.name(), conv::conv2d_shape(x, &weight, None, args)?, g)?;
                Ok(weight)
            }
            // g must be the pooled shape of x (or of `input`); u must be x's shape.
            Op::MaxPool2dGrad(args) => {
                let pooled = pool::max_pool2d_shape(x, args)?;
                conv_grad_shape(self.name(), pooled, inputs.shape(1))?;
                Ok(*x)
            }
            Op::MaxPool2dSelect(args) => {
                let pooled = pool::max_pool2d_shape(x, args)?;
                conv_grad_shape(self.name(), *x, inputs.shape(1))?;
                Ok(pooled)
            }
            Op::AvgPool2dGrad(args) => {
                let input = *inputs.shape(1);
                conv_grad_shape(self.name(), pool::avg_pool2d_shape(&input, args)?, x)?;
                Ok(input)
            }
            Op::AdaptiveAvgPool2dGrad(size) => {
                let input = *inputs.shape(1);
                let pooled = pool::adaptive_avg_pool2d_shape(&input, size)?;
                conv_grad_shape(self.name(), pooled, x)?;
                Ok(input)
            }
        }
    }

    /// Computes the output into `out`, whose length is the element count of
    /// [`output_shape`](Op::output_shape). The inputs must have passed `output_shape`.
    ///
    /// Only data-dependent checks fail here: a cross-entropy label that is not a valid class.
    /// `inputs` is a slice or array of arrays, or any list read through [`Operands`].
    pub fn forward<'a, E: Float>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        out: &mut [E],
    ) -> Result<()> {
        let shape = self.output_shape(&ShapesOf::new(inputs))?;
        self.forward_shaped(inputs, &shape, out)
    }

    /// [`forward`](Op::forward) for a caller that already holds the output's shape (the tape
    /// does: it inferred it when recording), so that it is not inferred twice.
    #[inline(always)]
    pub fn forward_shaped<'a, E: Float>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        shape: &Shape,
        out: &mut [E],
    ) -> Result<()> {
        let x = inputs.get(0).data();
        match *self {
            Op::Unary(_) | Op::Reshape(_) => self.forward_pointwise(x, x, out),
            // Neither input broadcast: element by element.
            Op::Binary(op)
                if self.runs_pointwise(&[x.len(), inputs.get(1).data().len()], out.len()) =>
            {
                op.forward_pointwise(x, inputs.get(1).data(), out)
            }
            Op::Binary(op) => op.forward_broadcast(inputs.get(0), inputs.get(1), shape, out),
            Op::MatMul => matmul::forward(inputs.get(0), inputs.get(1), out),
            Op::Linear => matmul::linear(inputs.get(0), inputs.get(1), inputs.get(2), out),
            Op::Sum => out[0] = reduce::sum(x),
            Op::Mean => out[0] = reduce::sum(x) / E::from_usize(x.len()),
            Op::SumAxis { axis, .. } => reduce::sum_axis(inputs.get(0), axis, false, out),
            Op::MeanAxis { axis, .. } => reduce::sum_axis(inputs.get(0), axis, true, out),
            Op::Transpose { axis0, axis1 } => layout::transpose(inputs.get(0), axis0, axis1, out),
            Op::Softmax => softmax::softmax(inputs.get(0), out),
            Op::LogSoftmax => softmax::log_softmax(inputs.get(0), out),
            Op::Mse => out[0] = loss::mse(x, inputs.get(1).data()),
            Op::CrossEntropy => out[0] = loss::cross_entropy(inputs.get(0), inputs.get(1))?,
            Op::Reduce { op, axis, .. } => op.forward(inputs.get(0), axis, out),
            Op::SoftmaxAxis { axis } => softmax_axis::softmax_along(inputs.get(0), axis, out),
            Op::LogSoftmaxAxis { axis } => {
                softmax_axis::log_softmax_along(inputs.get(0), axis, out)
            }
            Op::Loss(loss) => loss.forward(inputs.get(0), inputs.get(1), None, out)?,
            Op::WeightedLoss(loss) => {
                let weight = Some(inputs.get(2).data());
                loss.forward(inputs.get(0), inputs.get(1), weight, out)?
            }
            Op::BroadcastTo(to) => broadcast_to::broadcast_to(inputs.get(0), &to, out),
            Op::Narrow {
                axis,
                start,
                length,
            } => slice::narrow(inputs.get(0), axis, start, length, out),
            Op::IndexSelect { axis } => {
                indexing::index_select(inputs.get(0), axis, inputs.get(1).data(), out)?
            }
            Op::Gather { axis } => indexing::gather(inputs.get(0), axis, inputs.get(1), out)?,
            Op::IndexAdd { axis, .. } => {
                scatter::index_add(x, axis, inputs.get(1).data(), shape, out)?
            }
            Op::ScatterAdd { axis, .. } => {
                scatter::scatter_add(x, axis, inputs.get(1), shape, out)?
            }
            Op::BatchedMatMul => batched_matmul::batched_matmul(inputs.get(0), inputs.get(1), out),
            Op::Dropout { p, seed } => dropout::dropout(inputs.get(0), p, seed, out),
            Op::Slice { axis, range } => {
                slice::slice(inputs.get(0), &slice_ranges(axis, range)[..=axis], out)
            }
            Op::Pad { pads, axes, value } => {
                let pairs = pad_pairs(&pads, axes);
                pad::pad(
                    inputs.get(0),
                    &pairs[..axes as usize],
                    E::from_f64(value),
                    out,
                )
            }
            Op::Concat { axis } => concat::concat(inputs, axis, out),
            Op::Stack { axis } => concat::stack(inputs, axis, out),
            Op::Where => select::select(inputs.get(0), inputs.get(1), inputs.get(2), shape, out),
            // A caller without a buffer to keep: the patch matrices live for this call only.
            Op::Conv2d(_)
            | Op::Conv1d(_)
            | Op::Conv2dInputGrad(_)
            | Op::Conv2dWeightGrad(_)
            | Op::LayerNorm { .. }
            | Op::BatchNorm { .. } => {
                self.forward_with_scratch(inputs, shape, out, &mut Vec::new())?
            }
            Op::MaxPool2d(args) => pool::max_pool2d(inputs.get(0), args, out),
            Op::AvgPool2d(args) => pool::avg_pool2d(inputs.get(0), args, out),
            Op::AdaptiveAvgPool2d(size) => pool::adaptive_avg_pool2d(inputs.get(0), size, out),
            Op::Embedding { .. } => embedding::embedding(inputs.get(0), inputs.get(1).data(), out)?,
            Op::MaxPool2dGrad(args) => {
                pool::max_pool2d_vjp::<E, false>(inputs.get(0), args, inputs.get(1).data(), out)
            }
            Op::MaxPool2dSelect(args) => {
                pool::max_pool2d_select::<E, false>(inputs.get(0), args, inputs.get(1).data(), out)
            }
            Op::AvgPool2dGrad(args) => {
                let (g, input) = (inputs.get(0).data(), inputs.get(1).shape());
                pool::avg_pool2d_vjp::<E, false>(input, args, g, out)
            }
            Op::AdaptiveAvgPool2dGrad(size) => {
                let (g, input) = (inputs.get(0).data(), inputs.get(1).shape());
                pool::adaptive_avg_pool2d_vjp::<E, false>(input, size, g, out)
            }
        }
        Ok(())
    }

    /// [`forward_shaped`](Op::forward_shaped) with the op's [scratch buffer](Op::needs_scratch),
    /// grown as needed and never shrunk: kept by the caller, it makes repeated runs allocation
    /// free. An op that needs none ignores it.
    #[inline]
    pub fn forward_with_scratch<'a, E: Float>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        shape: &Shape,
        out: &mut [E],
        scratch: &mut Vec<E>,
    ) -> Result<()> {
        let bias = (inputs.count() > 2).then(|| inputs.get(2).data());
        match *self {
            Op::Conv2d(args) => {
                conv::conv2d(inputs.get(0), inputs.get(1), bias, args, scratch, out)
            }
            Op::Conv1d(args) => {
                conv::conv1d(inputs.get(0), inputs.get(1), bias, args, scratch, out)
            }
            Op::LayerNorm {
                axes,
                eps,
                gamma,
                beta,
            } => {
                let x = inputs.get(0);
                let saved = grown(scratch, norm::layer_norm_saved_len(x.shape(), axes));
                let (gamma, beta) = norm_affine(inputs, gamma, beta);
                norm::layer_norm(x, axes, gamma, beta, eps, saved, out)
            }
            Op::BatchNorm {
                eps,
                training,
                gamma,
                beta,
            } => {
                let x = inputs.get(0);
                let saved = grown(scratch, norm::batch_norm_saved_len(x.shape()));
                let (gamma_data, beta_data) = norm_affine(inputs, gamma, beta);
                let args = BatchNormArgs {
                    eps,
                    ..BatchNormArgs::default()
                };
                if training {
                    norm::batch_norm_train(x, gamma_data, beta_data, args, None, saved, out)
                } else {
                    let at = norm_inputs(gamma, beta);
                    let (mean, var) = (inputs.get(at).data(), inputs.get(at + 1).data());
                    norm::batch_norm_eval(x, gamma_data, beta_data, args, mean, var, saved, out)
                }
            }
            Op::Conv2dInputGrad(args) => {
                let (g, w, input) = (inputs.get(0).data(), inputs.get(1), inputs.get(2).shape());
                conv::conv2d_vjp_input::<E, false>(input, w, args, g, scratch, out)
            }
            Op::Conv2dWeightGrad(args) => {
                let (x, g, weight) = (inputs.get(0), inputs.get(1).data(), inputs.get(2).shape());
                conv::conv2d_vjp_weight::<E, false>(x, weight, args, g, scratch, out)
            }
            _ => return self.forward_shaped(inputs, shape, out),
        }
        Ok(())
    }

    /// [`vjp`](Op::vjp) (`ACC`) or [`vjp_overwrite`](Op::vjp_overwrite) with the op's
    /// [scratch buffer](Op::needs_scratch) (see
    /// [`forward_with_scratch`](Op::forward_with_scratch)).
    #[inline]
    pub fn vjp_with_scratch<'a, E: Float, const ACC: bool>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        output: TensorRef<'_, E>,
        grad_output: &[E],
        index: usize,
        grad_input: &mut [E],
        scratch: &mut Vec<E>,
    ) {
        let (g, gi) = (grad_output, grad_input);
        let x = inputs.get(0);
        match (*self, index) {
            // y = x ⋆ w: dx = col2im(wᵀ·dy)
            (Op::Conv2d(args), 0) => {
                conv::conv2d_vjp_input::<E, ACC>(x.shape(), inputs.get(1), args, g, scratch, gi)
            }
            (Op::Conv1d(args), 0) => {
                conv::conv1d_vjp_input::<E, ACC>(x.shape(), inputs.get(1), args, g, scratch, gi)
            }
            // dw = Σₙ dy·im2col(x)ᵀ
            (Op::Conv2d(args), 1) => {
                conv::conv2d_vjp_weight::<E, ACC>(x, inputs.get(1).shape(), args, g, scratch, gi)
            }
            (Op::Conv1d(args), 1) => {
                conv::conv1d_vjp_weight::<E, ACC>(x, inputs.get(1).shape(), args, g, scratch, gi)
            }
            // y = … + bias: dbias = Σ dy over the batch and the positions
            (Op::Conv2d(_) | Op::Conv1d(_), _) => {
                conv::conv_vjp_bias::<E, ACC>(output.shape(), g, gi)
            }
            // x̂ = (x - mean)·invstd, ĝ = dy·γ: dx = invstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)),
            // dγ = Σ_rows dy·x̂, dβ = Σ_rows dy, from the statistics the forward kept
            (
                Op::LayerNorm {
                    axes, gamma, beta, ..
                },
                _,
            ) => {
                let saved = &scratch[..norm::layer_norm_saved_len(x.shape(), axes)];
                let (gamma_data, _) = norm_affine(inputs, gamma, beta);
                let grads = norm_grads(index, gamma, gi);
                norm::layer_norm_vjp::<E, ACC>(x, axes, gamma_data, saved, g, grads)
            }
            // Per channel, x̂ = (x - mean)·invstd: dβ = Σ dy, dγ = Σ dy·x̂; training
            // dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)), evaluation dx = γ·invstd·dy;
            // none to the running estimates
            (
                Op::BatchNorm {
                    training,
                    gamma,
                    beta,
                    ..
                },
                _,
            ) => {
                if index >= norm_inputs(gamma, beta) {
                    return zero_unless::<E, ACC>(gi);
                }
                let saved = &scratch[..norm::batch_norm_saved_len(x.shape())];
                let (gamma_data, _) = norm_affine(inputs, gamma, beta);
                let grads = norm_grads(index, gamma, gi);
                norm::batch_norm_vjp::<E, ACC>(x, gamma_data, saved, training, g, grads)
            }
            // None to the input that gives the shape (`differentiable_in`).
            (Op::Conv2dInputGrad(_) | Op::Conv2dWeightGrad(_), 2) => {
                if !ACC {
                    gi.fill(E::zero());
                }
            }
            // y = input_grad(g, w) = Jₓᵀg, bilinear: dg = conv2d(dy, w), dw = weight_grad(dy, g)
            (Op::Conv2dInputGrad(args), 0) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                conv_into::<E, ACC>(dy, inputs.get(1), args, scratch, gi)
            }
            (Op::Conv2dInputGrad(args), _) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                conv::conv2d_vjp_weight::<E, ACC>(
                    dy,
                    inputs.get(1).shape(),
                    args,
                    x.data(),
                    scratch,
                    gi,
                )
            }
            // y = weight_grad(x, g) = J_wᵀg: dx = input_grad(g, dy), dg = conv2d(x, dy)
            (Op::Conv2dWeightGrad(args), 0) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                conv::conv2d_vjp_input::<E, ACC>(
                    x.shape(),
                    dy,
                    args,
                    inputs.get(1).data(),
                    scratch,
                    gi,
                )
            }
            (Op::Conv2dWeightGrad(args), _) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                conv_into::<E, ACC>(x, dy, args, scratch, gi)
            }
            _ => self.pull_back::<E, ACC>(inputs, output, g, index, gi),
        }
    }

    /// Writes the pull-back of `grad_output` through input `index` into `grad_input`, ignoring
    /// what it held: for the first contribution to a gradient, so that the buffer need not be
    /// zeroed first.
    #[inline]
    pub fn vjp_overwrite<'a, E: Float>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        output: TensorRef<'_, E>,
        grad_output: &[E],
        index: usize,
        grad_input: &mut [E],
    ) {
        self.pull_back::<E, false>(inputs, output, grad_output, index, grad_input);
    }

    /// Adds the pull-back of `grad_output` through input `index` to `grad_input`.
    ///
    /// `output` is this op's forward result for `inputs`; `grad_input` has input `index`'s
    /// shape. Accumulating (rather than overwriting) is what makes fan-out correct.
    #[inline]
    pub fn vjp<'a, E: Float>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        output: TensorRef<'_, E>,
        grad_output: &[E],
        index: usize,
        grad_input: &mut [E],
    ) {
        self.pull_back::<E, true>(inputs, output, grad_output, index, grad_input);
    }

    /// Whether input `index`'s gradient is one matrix product of the output's gradient and
    /// the op's other factor (input `1 - index`), which [`vjp_scaled`](Op::vjp_scaled) can
    /// write as `keep·dest + step·gradient` in the product's own pass: either factor of
    /// `matmul` and of `linear` (its input and weight).
    #[inline]
    pub fn folds_update_of(&self, index: usize) -> bool {
        matches!(self, Op::MatMul | Op::Linear) && index < 2
    }

    /// `dest ← keep·dest + step·g_index` ([`FoldedUpdate`]), where `g_index` is the gradient
    /// through input `index` (for which [`folds_update_of`](Op::folds_update_of) holds) of
    /// `grad_output`.
    /// `other` is the product's other factor (input `1 - index`) and `factor` the shape of
    /// input `index`, whose value is never read: `dest` may be that input's own value, which is
    /// how plain SGD's step (`keep = 1`, `step = -lr`) folds into the product computing the
    /// gradient, with no gradient buffer and no pass over the parameter after.
    ///
    /// Does nothing for an op or input that does not fold (a debug build asserts).
    pub fn vjp_scaled<E: Float>(
        &self,
        other: TensorRef<'_, E>,
        factor: &Shape,
        grad_output: &[E],
        index: usize,
        update: FoldedUpdate<E>,
        dest: &mut [E],
    ) {
        debug_assert!(self.folds_update_of(index), "{} input {index}", self.name());
        if self.folds_update_of(index) {
            let FoldedUpdate { keep, step } = update;
            matmul::factor_grad(other, factor, grad_output, index, step, keep, dest);
        }
    }

    /// Whether the op runs [pointwise](Op::is_pointwise) on inputs of these element counts: it
    /// is a pointwise op and no input is broadcast (each has the output's `out` elements).
    #[inline]
    pub fn runs_pointwise(&self, inputs: &[usize], out: usize) -> bool {
        self.is_pointwise() && inputs.iter().all(|&n| n == out)
    }

    /// Whether the op maps elements one to one when its inputs have the output's element count:
    /// the elementwise ops and reshape. Those run with
    /// [`forward_pointwise`](Op::forward_pointwise) and pull back with
    /// [`vjp_pointwise`](Op::vjp_pointwise) when no input is broadcast.
    #[inline]
    pub fn is_pointwise(&self) -> bool {
        matches!(self, Op::Unary(_) | Op::Binary(_) | Op::Reshape(_))
    }

    /// The forward rule of a [pointwise](Op::is_pointwise) op whose inputs and output all hold
    /// `out.len()` elements: `a` and `b` are the inputs' elements (a one-input op passes its
    /// input twice). The same rules as [`forward`](Op::forward) without the broadcasting.
    ///
    /// For [pointwise](Op::is_pointwise) ops only: any other op leaves `out` as it was (a debug
    /// build asserts). Panics if `a` or `b` is shorter than `out`.
    #[inline(always)]
    pub fn forward_pointwise<E: Float>(&self, a: &[E], b: &[E], out: &mut [E]) {
        debug_assert!(self.is_pointwise(), "{} is not pointwise", self.name());
        match *self {
            Op::Unary(op) => op.forward(a, out),
            Op::Binary(op) => op.forward_pointwise(a, b, out),
            Op::Reshape(_) => out.copy_from_slice(&a[..out.len()]),
            _ => {}
        }
    }

    /// Whether input `index`'s share of the output's gradient is that gradient itself when the
    /// input has the output's element count (either term of a sum, the first of a difference).
    /// The tape's sweep uses it for a broadcast sum's unbroadcast operand: reached first, and
    /// with the sum's gradient not kept, it takes the gradient's buffer instead of a copy.
    #[inline]
    pub fn passes_gradient_to(&self, index: usize) -> bool {
        matches!(self, Op::Binary(op) if op.passes_gradient_to(index))
    }

    /// The pull-back through input `index` of a [pointwise](Op::is_pointwise) op whose inputs and
    /// output all hold `grad_input.len()` elements: `a` and `b` are the inputs' elements (a
    /// one-input op passes its input twice), `out` the output's. Adds into `grad_input` when
    /// `ACC`, overwrites it otherwise. The same rules as [`vjp`](Op::vjp) without the
    /// broadcasting, for the tape's sweep to take without looking at shapes.
    ///
    /// For [pointwise](Op::is_pointwise) ops only: any other op leaves `grad_input` as it was
    /// (a debug build asserts). Panics if an operand is shorter than `grad_input`.
    #[inline(always)]
    pub fn vjp_pointwise<E: Float, const ACC: bool>(
        &self,
        index: usize,
        a: &[E],
        b: &[E],
        out: &[E],
        grad_output: &[E],
        grad_input: &mut [E],
    ) {
        debug_assert!(self.is_pointwise(), "{} is not pointwise", self.name());
        match *self {
            Op::Unary(op) => op.vjp::<E, ACC>(a, out, grad_output, grad_input),
            Op::Binary(op) => op.vjp_pointwise::<E, ACC>(index, a, b, out, grad_output, grad_input),
            // y = reshape x: dx = dy, in the input's shape (the same elements)
            Op::Reshape(_) => {
                let n = grad_input.len();
                for (d, &g) in grad_input.iter_mut().zip(&grad_output[..n]) {
                    unary::store::<E, ACC>(d, g);
                }
            }
            _ => {}
        }
    }

    /// The VJP rules: add into `grad_input` when `ACC`, overwrite it otherwise.
    #[inline(always)]
    fn pull_back<'a, E: Float, const ACC: bool>(
        &self,
        inputs: &(impl Operands<'a, E> + ?Sized),
        output: TensorRef<'_, E>,
        grad_output: &[E],
        index: usize,
        grad_input: &mut [E],
    ) {
        let g = grad_output;
        let x = inputs.get(0).data();
        let y = output.data();
        let gi = grad_input;
        match *self {
            Op::Unary(_) | Op::Reshape(_) => self.vjp_pointwise::<E, ACC>(index, x, x, y, g, gi),
            // Neither input broadcast: element by element.
            Op::Binary(op)
                if self.runs_pointwise(&[x.len(), inputs.get(1).data().len()], y.len()) =>
            {
                op.vjp_pointwise::<E, ACC>(index, x, inputs.get(1).data(), y, g, gi)
            }
            // The same rules, summed over the axes an input was broadcast along.
            Op::Binary(op) => {
                let pair = [inputs.get(0), inputs.get(1)];
                op.vjp_broadcast::<E, ACC>(&pair, output, g, index, gi)
            }
            // C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC
            Op::MatMul => matmul::vjp(inputs.get(0), inputs.get(1), g, index, gi, ACC),
            // y = x·W + b: dx = dy·Wᵀ, dW = xᵀ·dy (as matmul), db = Σ_rows dy (as the
            // broadcast add, which reads only the shapes: the output stands for x·W)
            Op::Linear if index < 2 => matmul::vjp(inputs.get(0), inputs.get(1), g, index, gi, ACC),
            Op::Linear => {
                let pair = [output, inputs.get(2)];
                BinaryOp::Add.vjp_broadcast::<E, ACC>(&pair, output, g, 1, gi)
            }
            // y = Σx: dx = dy
            Op::Sum => unary::fill_add::<E, ACC>(gi, g[0]),
            // y = Σx / n: dx = dy / n
            Op::Mean => unary::fill_add::<E, ACC>(gi, g[0] / E::from_usize(x.len())),
            // y = Σ_axis x: dx = dy broadcast along the axis
            Op::SumAxis { axis, .. } => {
                zero_unless::<E, ACC>(gi);
                reduce::sum_axis_vjp(inputs.get(0).shape(), axis, false, g, gi)
            }
            // y = mean_axis x: dx = dy / len broadcast along the axis
            Op::MeanAxis { axis, .. } => {
                zero_unless::<E, ACC>(gi);
                reduce::sum_axis_vjp(inputs.get(0).shape(), axis, true, g, gi)
            }
            // y = swap(x): dx = swap(dy)
            Op::Transpose { axis0, axis1 } => {
                zero_unless::<E, ACC>(gi);
                layout::transpose_vjp(output.shape(), axis0, axis1, g, gi)
            }
            // y = softmax x: dx = y·(dy - Σ dy·y)
            Op::Softmax => {
                zero_unless::<E, ACC>(gi);
                softmax::softmax_vjp(output, g, gi)
            }
            // y = log_softmax x: dx = dy - softmax(x)·Σ dy
            Op::LogSoftmax => {
                zero_unless::<E, ACC>(gi);
                softmax::log_softmax_vjp(output, g, gi)
            }
            // L = mean (p - t)²: dp = dL·2(p - t)/n, dt = -dp
            Op::Mse => {
                zero_unless::<E, ACC>(gi);
                loss::mse_vjp(x, inputs.get(1).data(), g[0], index, gi)
            }
            // L = mean_b (lse(z_b) - z_b[label_b]): dz = dL·(softmax(z) - onehot(label)) / batch
            Op::CrossEntropy => {
                zero_unless::<E, ACC>(gi);
                if index == 0 {
                    loss::cross_entropy_vjp(inputs.get(0), inputs.get(1), g[0], gi)
                }
            }
            // Each reduction's rule is in `ReduceOp::vjp`.
            Op::Reduce { op, axis, .. } => op.vjp::<E, ACC>(inputs.get(0), axis, y, g, gi),
            // y = softmax x along the axis: dx = y·(dy - Σ dy·y)
            Op::SoftmaxAxis { axis } => {
                softmax_axis::softmax_along_vjp::<E, ACC>(output, axis, g, gi)
            }
            // y = log_softmax x along the axis: dx = dy - e^y·Σ dy
            Op::LogSoftmaxAxis { axis } => {
                softmax_axis::log_softmax_along_vjp::<E, ACC>(output, axis, g, gi)
            }
            // Each loss's rule is in `LossOp::vjp`.
            Op::Loss(loss) => loss.vjp::<E, ACC>(inputs.get(0), inputs.get(1), None, g, index, gi),
            // The same rules with the weights (input 2), which take no gradient.
            Op::WeightedLoss(loss) => {
                let (x, t, w) = (inputs.get(0), inputs.get(1), inputs.get(2).data());
                loss.vjp::<E, ACC>(x, t, Some(w), g, index, gi)
            }
            // y = x repeated: dx = dy summed over the repeats
            Op::BroadcastTo(to) => {
                broadcast_to::broadcast_to_vjp::<E, ACC>(inputs.get(0).shape(), &to, g, gi)
            }
            // y = x[start..start + length] along the axis: dx = dy there, 0 elsewhere
            Op::Narrow {
                axis,
                start,
                length,
            } => slice::narrow_vjp::<E, ACC>(inputs.get(0).shape(), axis, start, length, g, gi),
            // y[.., p, ..] = x[.., idx[p], ..]: dx[.., idx[p], ..] += dy[.., p, ..]; none to idx
            Op::IndexSelect { axis } if index == 0 => {
                let idx = inputs.get(1).data();
                indexing::index_select_vjp::<E, ACC>(inputs.get(0).shape(), axis, idx, g, gi)
            }
            // y[i] = x[i at index[i]]: dx[i at index[i]] += dy[i]; none to the index
            Op::Gather { axis } if index == 0 => {
                indexing::gather_vjp::<E, ACC>(inputs.get(0).shape(), axis, inputs.get(1), g, gi)
            }
            // y = index_add(src, idx): dsrc[.., p, ..] = dy[.., idx[p], ..]; none to idx
            Op::IndexAdd { axis, .. } if index == 0 => {
                let idx = inputs.get(1).data();
                scatter::index_add_vjp::<E, ACC>(output.shape(), axis, idx, g, gi)
            }
            // y = scatter_add(src, index): dsrc[i] = dy[i at index[i]]; none to the index
            Op::ScatterAdd { axis, .. } if index == 0 => {
                scatter::scatter_add_vjp::<E, ACC>(output.shape(), axis, inputs.get(1), g, gi)
            }
            Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::IndexAdd { .. }
            | Op::ScatterAdd { .. } => zero_unless::<E, ACC>(gi),
            // C[b] = A[b]·B[b]: dA[b] = Σ dC·Bᵀ, dB[b] = Σ Aᵀ·dC over the broadcast batches
            Op::BatchedMatMul => {
                batched_matmul::batched_matmul_vjp(inputs.get(0), inputs.get(1), g, index, gi, ACC)
            }
            // y = x·mask/(1 - p): dx = dy·mask/(1 - p)
            Op::Dropout { p, seed } => dropout::dropout_vjp::<E, ACC>(p, seed, g, gi),
            // y = x[range] along the axis: dx = dy at the positions taken, 0 elsewhere
            Op::Slice { axis, range } => {
                let ranges = slice_ranges(axis, range);
                slice::slice_vjp::<E, ACC>(inputs.get(0).shape(), &ranges[..=axis], g, gi)
            }
            // y = x padded: dx = dy at x's place
            Op::Pad { pads, axes, .. } => {
                let pairs = pad_pairs(&pads, axes);
                pad::pad_vjp::<E, ACC>(inputs.get(0).shape(), &pairs[..axes as usize], g, gi)
            }
            // y = concat(x_0, …, x_n): dx_i = the block of dy that x_i filled
            Op::Concat { axis } => concat::concat_vjp::<E, ACC>(inputs, axis, g, index, gi),
            // y = stack(x_0, …, x_n): dx_i = dy[.., i, ..] along the new axis
            Op::Stack { axis } => concat::stack_vjp::<E, ACC>(inputs, axis, g, index, gi),
            // y = where(c, a, b): da = dy where c ≠ 0, db = dy where c = 0, each summed to its
            // input's shape; none to c
            Op::Where => {
                let input = inputs.get(index).shape();
                select::select_vjp::<E, ACC>(inputs.get(0), input, output.shape(), g, index, gi)
            }
            // The rules are in `vjp_with_scratch`; here the scratch lives for this call only.
            Op::Conv2d(_) | Op::Conv1d(_) | Op::Conv2dInputGrad(_) | Op::Conv2dWeightGrad(_) => {
                self.vjp_with_scratch::<E, ACC>(inputs, output, g, index, gi, &mut Vec::new())
            }
            // Without the node's kept statistics: the forward runs again to find them.
            Op::LayerNorm { .. } | Op::BatchNorm { .. } => {
                let mut saved = Vec::new();
                let mut again = vec![E::zero(); output.data().len()];
                let ran = self.forward_with_scratch(inputs, output.shape(), &mut again, &mut saved);
                debug_assert!(ran.is_ok(), "the shapes passed when the node was recorded");
                self.vjp_with_scratch::<E, ACC>(inputs, output, g, index, gi, &mut saved)
            }
            // y = max of each window: dx[argmax] += dy, the argmax found again from x
            Op::MaxPool2d(args) => pool::max_pool2d_vjp::<E, ACC>(inputs.get(0), args, g, gi),
            // y = window sum / divisor: dy / divisor added over each window
            Op::AvgPool2d(args) => {
                pool::avg_pool2d_vjp::<E, ACC>(inputs.get(0).shape(), args, g, gi)
            }
            // y = mean of each adaptive window: dy / window size added over each window
            Op::AdaptiveAvgPool2d(size) => {
                pool::adaptive_avg_pool2d_vjp::<E, ACC>(inputs.get(0).shape(), size, g, gi)
            }
            // y[p] = table[idx[p]]: dtable[idx[p]] += dy[p], padding_idx's row skipped; none
            // to idx
            Op::Embedding { padding_idx } if index == 0 => {
                let (table, idx) = (inputs.get(0).shape(), inputs.get(1).data());
                embedding::embedding_vjp::<E, ACC>(table, idx, padding_idx, g, gi)
            }
            Op::Embedding { .. } => zero_unless::<E, ACC>(gi),
            // None to x (`differentiable_in`): the positions are piecewise constant in it.
            Op::MaxPool2dGrad(_) | Op::MaxPool2dSelect(_) if index == 0 => {
                if !ACC {
                    gi.fill(E::zero());
                }
            }
            Op::AvgPool2dGrad(_) | Op::AdaptiveAvgPool2dGrad(_) if index == 1 => {
                if !ACC {
                    gi.fill(E::zero());
                }
            }
            // y = grad(x, g), linear in g: dg = select(x, dy)
            Op::MaxPool2dGrad(args) => {
                pool::max_pool2d_select::<E, ACC>(inputs.get(0), args, g, gi)
            }
            // y = select(x, u), linear in u: du = grad(x, dy), its adjoint
            Op::MaxPool2dSelect(args) => pool::max_pool2d_vjp::<E, ACC>(inputs.get(0), args, g, gi),
            // y = avg_pool2d's VJP of g, linear: dg = avg_pool2d(dy)
            Op::AvgPool2dGrad(args) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                add_or_write::<E, ACC>(gi, |out| pool::avg_pool2d(dy, args, out))
            }
            Op::AdaptiveAvgPool2dGrad(size) => {
                let Ok(dy) = TensorRef::new(output.shape(), g) else {
                    return;
                };
                add_or_write::<E, ACC>(gi, |out| pool::adaptive_avg_pool2d(dy, size, out))
            }
        }
    }
}

/// Checks that a convolution's VJP op is given the gradient `have` of the convolution's output
/// `want`.
fn conv_grad_shape(op: &'static str, want: Shape, have: &Shape) -> Result<()> {
    if want == *have {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            lhs: want,
            rhs: *have,
        })
    }
}

/// `gi = f()` or, when `ACC`, `gi += f()`, for a kernel `f` that overwrites its output.
fn add_or_write<E: Float, const ACC: bool>(gi: &mut [E], f: impl FnOnce(&mut [E])) {
    if ACC {
        let mut y = vec![E::zero(); gi.len()];
        f(&mut y);
        for (acc, v) in gi.iter_mut().zip(y) {
            *acc += v;
        }
    } else {
        f(gi);
    }
}

/// `gi = conv2d(x, w)` without a bias, or `gi += conv2d(x, w)` when `ACC`.
fn conv_into<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    w: TensorRef<'_, E>,
    args: Conv2dArgs,
    scratch: &mut Vec<E>,
    gi: &mut [E],
) {
    if ACC {
        let mut y = vec![E::zero(); gi.len()];
        conv::conv2d(x, w, None, args, scratch, &mut y);
        for (acc, v) in gi.iter_mut().zip(y) {
            *acc += v;
        }
    } else {
        conv::conv2d(x, w, None, args, scratch, gi);
    }
}

/// The slice kernel's per-axis ranges for a slice of `axis` alone: whole axes before it.
#[inline]
fn slice_ranges(axis: usize, range: SliceAxis) -> [SliceAxis; crate::MAX_RANK] {
    let mut ranges = [SliceAxis::FULL; crate::MAX_RANK];
    if let Some(r) = ranges.get_mut(axis) {
        *r = range;
    }
    ranges
}

/// The pad kernel's `(before, after)` pairs from an op's stored counts.
#[inline]
fn pad_pairs(pads: &[[u32; 2]; crate::MAX_RANK], axes: u8) -> [(usize, usize); crate::MAX_RANK] {
    let mut pairs = [(0, 0); crate::MAX_RANK];
    for (pair, [before, after]) in pairs.iter_mut().zip(pads).take(axes as usize) {
        *pair = (*before as usize, *after as usize);
    }
    pairs
}

/// The first `len` elements of an op's scratch buffer, grown to them if short (never
/// shrunk, so a warm step allocates nothing).
fn grown<E: Float>(scratch: &mut Vec<E>, len: usize) -> &mut [E] {
    if scratch.len() < len {
        scratch.resize(len, E::zero());
    }
    &mut scratch[..len]
}

/// How many inputs a norm takes before any running estimates: x, then `gamma` and `beta`
/// when present.
#[inline]
pub(crate) fn norm_inputs(gamma: bool, beta: bool) -> usize {
    1 + usize::from(gamma) + usize::from(beta)
}

/// A norm's `gamma` and `beta` data, each when among its inputs (after x, in that order).
fn norm_affine<'a, E: Float>(
    inputs: &(impl Operands<'a, E> + ?Sized),
    gamma: bool,
    beta: bool,
) -> (Option<&'a [E]>, Option<&'a [E]>) {
    let at_beta = 1 + usize::from(gamma);
    let gamma = gamma.then(|| inputs.get(1).data());
    let beta = beta.then(|| inputs.get(at_beta).data());
    (gamma, beta)
}

/// The one gradient a norm's fused VJP is asked for: input `index` is x, then `gamma` when
/// present, then `beta`.
fn norm_grads<E: Float>(index: usize, gamma: bool, gi: &mut [E]) -> NormGrads<'_, E> {
    match (index, gamma) {
        (0, _) => NormGrads {
            x: Some(gi),
            ..NormGrads::default()
        },
        (1, true) => NormGrads {
            gamma: Some(gi),
            ..NormGrads::default()
        },
        _ => NormGrads {
            beta: Some(gi),
            ..NormGrads::default()
        },
    }
}

/// Zeroes `gi` when a rule that can only add is asked to overwrite.
#[inline]
fn zero_unless<E: Float, const ACC: bool>(gi: &mut [E]) {
    if !ACC {
        gi.fill(E::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_parameter_is_larger_than_a_shape() {
        // The tape stores an `Op` in every node: the non-elementwise ops' parameters (a
        // reduction's axis, a loss's options, a slice's range, a pad's counts) must not grow
        // it past the reshape's inline shape and the tag.
        assert_eq!(
            std::mem::size_of::<Op>(),
            std::mem::size_of::<Shape>() + std::mem::align_of::<Shape>()
        );
    }
}
