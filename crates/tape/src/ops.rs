//! The named recording methods: one per built-in op, so that a forward pass reads like the math.

use wengert_ops::{BinaryOp, Float, Op, Result, Shape, UnaryOp};

use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// Matrix product of `[m, k]` and `[k, n]`.
    #[inline]
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::MatMul, a, b)
    }

    /// `a + b`, broadcasting as NumPy does (a bias add is `add(xw, b)`).
    #[inline]
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Add), a, b)
    }

    /// `a - b`, broadcasting.
    #[inline]
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Sub), a, b)
    }

    /// `a * b` elementwise, broadcasting.
    #[inline]
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Mul), a, b)
    }

    /// `a / b` elementwise, broadcasting.
    #[inline]
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Div), a, b)
    }

    /// `x + c` for a constant `c`.
    #[inline]
    pub fn add_scalar(&mut self, x: NodeId, c: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::AddScalar(c.to_f64())), x)
    }

    /// `x * c` for a constant `c`.
    #[inline]
    pub fn mul_scalar(&mut self, x: NodeId, c: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::MulScalar(c.to_f64())), x)
    }

    /// `-x`.
    #[inline]
    pub fn neg(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Neg), x)
    }

    /// `max(x, 0)`; its derivative at 0 is 0, as in PyTorch.
    #[inline]
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Relu), x)
    }

    /// `tanh x`.
    #[inline]
    pub fn tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Tanh), x)
    }

    /// The logistic function `1 / (1 + e^-x)`.
    #[inline]
    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Sigmoid), x)
    }

    /// `e^x`.
    #[inline]
    pub fn exp(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Exp), x)
    }

    /// `ln x`.
    #[inline]
    pub fn log(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Log), x)
    }

    /// The sum of all elements, a scalar.
    #[inline]
    pub fn sum(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Sum, x)
    }

    /// The mean of all elements, a scalar.
    #[inline]
    pub fn mean(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Mean, x)
    }

    /// The sum along `axis`, which is removed.
    #[inline]
    pub fn sum_axis(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(
            Op::SumAxis {
                axis,
                keep_dim: false,
            },
            x,
        )
    }

    /// The sum along `axis`, kept with length 1.
    #[inline]
    pub fn sum_axis_keepdim(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(
            Op::SumAxis {
                axis,
                keep_dim: true,
            },
            x,
        )
    }

    /// The mean along `axis`, which is removed.
    #[inline]
    pub fn mean_axis(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(
            Op::MeanAxis {
                axis,
                keep_dim: false,
            },
            x,
        )
    }

    /// The mean along `axis`, kept with length 1.
    #[inline]
    pub fn mean_axis_keepdim(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(
            Op::MeanAxis {
                axis,
                keep_dim: true,
            },
            x,
        )
    }

    /// The same elements in the shape `dims` (row-major order is kept).
    #[inline]
    pub fn reshape(&mut self, x: NodeId, dims: &[usize]) -> Result<NodeId> {
        self.record_unary(Op::Reshape(Shape::new(dims)?), x)
    }

    /// The transpose of a matrix; for more axes, the last two are exchanged.
    #[inline]
    pub fn transpose(&mut self, x: NodeId) -> Result<NodeId> {
        let rank = self.shape(x)?.rank();
        if rank < 2 {
            return Err(wengert_ops::Error::WrongRank {
                op: "transpose",
                expected: "at least 2",
                shape: self.shape(x)?,
            });
        }
        self.record_unary(
            Op::Transpose {
                axis0: rank - 2,
                axis1: rank - 1,
            },
            x,
        )
    }

    /// `x` with axes `axis0` and `axis1` exchanged.
    #[inline]
    pub fn transpose_axes(&mut self, x: NodeId, axis0: usize, axis1: usize) -> Result<NodeId> {
        self.record_unary(Op::Transpose { axis0, axis1 }, x)
    }

    /// Softmax along the last axis.
    #[inline]
    pub fn softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Softmax, x)
    }

    /// Log-softmax along the last axis.
    #[inline]
    pub fn log_softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::LogSoftmax, x)
    }

    /// Mean squared error of `prediction` and `target` (same shape), a scalar.
    #[inline]
    pub fn mse(&mut self, prediction: NodeId, target: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Mse, prediction, target)
    }

    /// Softmax cross-entropy of `logits` `[batch, classes]` against `labels` `[batch]` (see
    /// [`Tape::labels`]), averaged over the batch. Finite for any finite logits.
    #[inline]
    pub fn cross_entropy(&mut self, logits: NodeId, labels: NodeId) -> Result<NodeId> {
        self.record_binary(Op::CrossEntropy, logits, labels)
    }

    /// `x`'s value, through which no gradient flows.
    #[inline]
    pub fn detach(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Detach), x)
    }
}
