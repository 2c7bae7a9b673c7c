//! The named recording methods: one per built-in op, so that a forward pass reads like the math.

use wengert_ops::{
    BinaryOp, Conv1dArgs, Conv2dArgs, CrossEntropyOptions, Distance, Float, LossOp, Op, Pool2dArgs,
    ReduceOp, Reduction, Result, Shape, SliceAxis, UnaryOp,
};

use std::borrow::Borrow;

use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// Matrix product of `[m, k]` and `[k, n]`; for operands of rank 3 or more, the product
    /// of each pair of matrices `[..., m, k]·[..., k, n]`, the batch axes broadcast as NumPy
    /// (`torch.matmul`), on the same kernel, bit-identical for any thread count.
    ///
    /// ```
    /// use ndarray::{Array3, array};
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(Array3::from_shape_fn((4, 2, 3), |(b, i, j)| (b + i + j) as f64))?;
    /// let w = tape.parameter(array![[1.0], [0.0], [-1.0]])?; // one matrix for every batch
    /// let c = tape.matmul(a, w)?;
    /// assert_eq!(tape.shape(c)?.dims(), &[4, 2, 1]);
    /// assert!(tape.data(c)?.iter().all(|&v| v == -2.0));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        // A stale id reads some node's rank here; recording checks the ids either way.
        let rank = |id: NodeId| self.nodes.get(id.index()).map_or(0, |n| n.shape.rank());
        if rank(a) > 2 || rank(b) > 2 {
            return self.record_binary(Op::BatchedMatMul, a, b);
        }
        self.record_binary(Op::MatMul, a, b)
    }

    /// A dense layer's `x·w + b`: x `[m, k]`, w `[k, n]` and b `[n]` give `[m, n]`, the
    /// values and gradients of `add(matmul(x, w), b)` bit for bit, in one node. The bias is
    /// added to each part of the product while the kernel still has it in cache, so the output
    /// is written once and no `x·w` is kept: one pass over the layer's output fewer than the
    /// two ops (PyTorch's `addmm`). Shapes that do not fit are `ShapeMismatch` or `WrongRank`,
    /// naming them.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let w = tape.parameter(array![[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])?;
    /// let b = tape.parameter(array![0.5, -0.5, 0.0])?;
    /// let y = tape.linear(x, w, b)?;
    /// assert_eq!(tape.data(y)?, &[1.5, 1.5, 3.0, 3.5, 3.5, 7.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(b).unwrap(), &[2.0, 2.0, 2.0]); // one per row
    /// assert_eq!(grads.data(w).unwrap(), &[4.0, 4.0, 4.0, 6.0, 6.0, 6.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn linear(&mut self, x: NodeId, w: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_listed(Op::Linear, [x, w, b])
    }

    /// `a + b`, broadcasting as NumPy does (a bias add is `add(xw, b)`).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let b = tape.parameter(array![10.0, 20.0])?; // a bias, broadcast down the rows
    /// let c = tape.add(a, b)?;
    /// assert_eq!(tape.data(c)?, &[11.0, 22.0, 13.0, 24.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(b).unwrap(), &[2.0, 2.0]); // summed over the broadcast rows
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Add), a, b)
    }

    /// `a - b`, broadcasting.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![5.0, 3.0])?;
    /// let b = tape.parameter(array![1.0, 4.0])?;
    /// let c = tape.sub(a, b)?;
    /// assert_eq!(tape.data(c)?, &[4.0, -1.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(b).unwrap(), &[-1.0, -1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Sub), a, b)
    }

    /// `a * b` elementwise, broadcasting.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![2.0, 3.0])?;
    /// let b = tape.parameter(array![4.0, 5.0])?;
    /// let c = tape.mul(a, b)?;
    /// assert_eq!(tape.data(c)?, &[8.0, 15.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(a).unwrap(), &[4.0, 5.0]); // d(ab)/da = b
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Mul), a, b)
    }

    /// `a / b` elementwise, broadcasting.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![1.0, 6.0])?;
    /// let b = tape.parameter(array![2.0, 4.0])?;
    /// let c = tape.div(a, b)?;
    /// assert_eq!(tape.data(c)?, &[0.5, 1.5]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(b).unwrap(), &[-0.25, -0.375]); // -a / b²
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Div), a, b)
    }

    /// The larger of `a` and `b` elementwise, broadcasting; NaN if either is. On a tie each
    /// input gets half the gradient, as in PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![[1.0, 5.0], [2.0, 0.0]])?;
    /// let b = tape.parameter(array![2.0, 0.0])?; // broadcast down the rows
    /// let c = tape.maximum(a, b)?;
    /// assert_eq!(tape.data(c)?, &[2.0, 5.0, 2.0, 0.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(a).unwrap(), &[0.0, 1.0, 0.5, 0.5]); // a tie splits the gradient
    /// assert_eq!(grads.data(b).unwrap(), &[1.5, 0.5]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn maximum(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Maximum), a, b)
    }

    /// The smaller of `a` and `b` elementwise, broadcasting; NaN if either is. On a tie each
    /// input gets half the gradient, as in PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![[1.0, 5.0], [2.0, 0.0]])?;
    /// let b = tape.parameter(array![2.0, 0.0])?; // broadcast down the rows
    /// let c = tape.minimum(a, b)?;
    /// assert_eq!(tape.data(c)?, &[1.0, 0.0, 2.0, 0.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(a).unwrap(), &[1.0, 0.0, 0.5, 0.5]); // a tie splits the gradient
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn minimum(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Minimum), a, b)
    }

    /// `a^b` elementwise, broadcasting.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![2.0, 3.0])?;
    /// let b = tape.parameter(array![3.0, 2.0])?;
    /// let c = tape.pow(a, b)?;
    /// assert_eq!(tape.data(c)?, &[8.0, 9.0]);
    /// let loss = tape.sum(c)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(a).unwrap(), &[12.0, 6.0]); // b·a^(b-1)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn pow(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Pow), a, b)
    }

    /// 1.0 where `a == b`, else 0.0, broadcasting: a mask, through which no gradient flows.
    /// NaN equals nothing.
    ///
    /// ```
    /// # fn main() -> wengert_tape::Result<()> {
    /// use wengert_tape::Tape;
    /// let mut tape = Tape::<f32>::new();
    /// let a = tape.parameter(vec![1.0, 2.0, 3.0])?;
    /// let b = tape.input(vec![2.0])?;
    /// let eq = tape.eq(a, b)?;
    /// let lt = tape.lt(a, b)?;
    /// let ge = tape.ge(a, b)?;
    /// assert_eq!(tape.data(eq)?, &[0.0, 1.0, 0.0]);
    /// assert_eq!(tape.data(lt)?, &[1.0, 0.0, 0.0]);
    /// assert_eq!(tape.data(ge)?, &[0.0, 1.0, 1.0]);
    /// assert!(!tape.requires_grad(eq)?); // a mask needs no gradient
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn eq(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Eq), a, b)
    }

    /// 1.0 where `a < b`, else 0.0 (0.0 if either is NaN), broadcasting; no gradient flows.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.input(array![1.0, 2.0, 3.0, f64::NAN])?;
    /// let b = tape.input(array![2.0])?; // broadcast
    /// let mask = tape.lt(a, b)?;
    /// assert_eq!(tape.data(mask)?, &[1.0, 0.0, 0.0, 0.0]); // NaN compares false
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn lt(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Lt), a, b)
    }

    /// 1.0 where `a <= b`, else 0.0 (0.0 if either is NaN), broadcasting; no gradient flows.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.input(array![1.0, 2.0, 3.0, f64::NAN])?;
    /// let b = tape.input(array![2.0])?; // broadcast
    /// let mask = tape.le(a, b)?;
    /// assert_eq!(tape.data(mask)?, &[1.0, 1.0, 0.0, 0.0]); // NaN compares false
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn le(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Le), a, b)
    }

    /// 1.0 where `a > b`, else 0.0 (0.0 if either is NaN), broadcasting; no gradient flows.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.input(array![1.0, 2.0, 3.0, f64::NAN])?;
    /// let b = tape.input(array![2.0])?; // broadcast
    /// let mask = tape.gt(a, b)?;
    /// assert_eq!(tape.data(mask)?, &[0.0, 0.0, 1.0, 0.0]); // NaN compares false
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn gt(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Gt), a, b)
    }

    /// 1.0 where `a >= b`, else 0.0 (0.0 if either is NaN), broadcasting; no gradient flows.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.input(array![1.0, 2.0, 3.0, f64::NAN])?;
    /// let b = tape.input(array![2.0])?; // broadcast
    /// let mask = tape.ge(a, b)?;
    /// assert_eq!(tape.data(mask)?, &[0.0, 1.0, 1.0, 0.0]); // NaN compares false
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn ge(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Binary(BinaryOp::Ge), a, b)
    }

    /// `x + c` for a constant `c`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0])?;
    /// let y = tape.add_scalar(x, 0.5)?;
    /// assert_eq!(tape.data(y)?, &[1.5, 2.5]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn add_scalar(&mut self, x: NodeId, c: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::AddScalar(c.to_f64())), x)
    }

    /// `x * c` for a constant `c`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, -2.0])?;
    /// let y = tape.mul_scalar(x, 3.0)?;
    /// assert_eq!(tape.data(y)?, &[3.0, -6.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[3.0, 3.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn mul_scalar(&mut self, x: NodeId, c: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::MulScalar(c.to_f64())), x)
    }

    /// `-x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, -2.0])?;
    /// let y = tape.neg(x)?;
    /// assert_eq!(tape.data(y)?, &[-1.0, 2.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-1.0, -1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn neg(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Neg), x)
    }

    /// `max(x, 0)`; its derivative at 0 is 0, as in PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-1.0, 0.0, 2.0])?;
    /// let y = tape.relu(x)?;
    /// assert_eq!(tape.data(y)?, &[0.0, 0.0, 2.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 0.0, 1.0]); // relu'(0) = 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn relu(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Relu), x)
    }

    /// `tanh x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1.0])?;
    /// let y = tape.tanh(x)?;
    /// assert!((tape.data(y)?[1] - 0.761_594_155_955_764_9).abs() < 1e-12);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap()[0], 1.0); // 1 - tanh²(0)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Tanh), x)
    }

    /// The logistic function `1 / (1 + e^-x)`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0])?;
    /// let y = tape.sigmoid(x)?;
    /// assert_eq!(tape.data(y)?, &[0.5]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.25]); // σ(1 - σ)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sigmoid(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Sigmoid), x)
    }

    /// `e^x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1.0])?;
    /// let y = tape.exp(x)?;
    /// assert!((tape.data(y)?[1] - std::f64::consts::E).abs() < 1e-12);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap()[0], 1.0); // eˣ again
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn exp(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Exp), x)
    }

    /// `ln x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 4.0])?;
    /// let y = tape.log(x)?;
    /// assert_eq!(tape.data(y)?[0], 0.0);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 0.25]); // 1 / x
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn log(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Log), x)
    }

    /// `√x`; its derivative at 0 is infinite, as in PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![4.0, 0.0])?;
    /// let y = tape.sqrt(x)?;
    /// assert_eq!(tape.data(y)?, &[2.0, 0.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.25, f64::INFINITY]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sqrt(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Sqrt), x)
    }

    /// `1 / √x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![4.0])?;
    /// let y = tape.rsqrt(x)?;
    /// assert_eq!(tape.data(y)?, &[0.5]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-0.0625]); // -x^(-3/2) / 2
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn rsqrt(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Rsqrt), x)
    }

    /// `|x|`; its derivative at 0 is 0, as in PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-2.0, 0.0, 3.0])?;
    /// let y = tape.abs(x)?;
    /// assert_eq!(tape.data(y)?, &[2.0, 0.0, 3.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-1.0, 0.0, 1.0]); // abs'(0) = 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn abs(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Abs), x)
    }

    /// `x²`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![3.0, -1.0])?;
    /// let y = tape.square(x)?;
    /// assert_eq!(tape.data(y)?, &[9.0, 1.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[6.0, -2.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn square(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Square), x)
    }

    /// `xᵖ` for a constant exponent `p` (PyTorch's `x.pow(p)` with a number); `p` must not
    /// be NaN.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![2.0, 4.0])?;
    /// let y = tape.powf(x, 3.0)?;
    /// assert_eq!(tape.data(y)?, &[8.0, 64.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[12.0, 48.0]); // 3x²
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn powf(&mut self, x: NodeId, p: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Powf(p.to_f64())), x)
    }

    /// The sine.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, std::f64::consts::FRAC_PI_2])?;
    /// let y = tape.sin(x)?;
    /// assert_eq!(tape.data(y)?, &[0.0, 1.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap()[0], 1.0); // cos 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sin(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Sin), x)
    }

    /// The cosine.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, std::f64::consts::FRAC_PI_2])?;
    /// let y = tape.cos(x)?;
    /// assert_eq!(tape.data(y)?[0], 1.0);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert!((grads.data(x).unwrap()[1] + 1.0).abs() < 1e-12); // -sin(π/2)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn cos(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Cos), x)
    }

    /// `ln(1 + x)`, accurate near 0.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1e-20])?;
    /// let y = tape.log1p(x)?;
    /// assert_eq!(tape.data(y)?, &[0.0, 1e-20]); // ln(1.0 + 1e-20) would be 0
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 1.0]); // 1 / (1 + x)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn log1p(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Log1p), x)
    }

    /// `eˣ - 1`, accurate near 0.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1e-20])?;
    /// let y = tape.expm1(x)?;
    /// assert_eq!(tape.data(y)?, &[0.0, 1e-20]); // e^1e-20 - 1.0 would be 0
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 1.0]); // eˣ
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn expm1(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Expm1), x)
    }

    /// `ln(1 + eˣ)` with PyTorch's defaults (`β = 1`, and `x` itself above 20).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 30.0])?;
    /// let y = tape.softplus(x)?;
    /// assert!((tape.data(y)?[0] - std::f64::consts::LN_2).abs() < 1e-12);
    /// assert_eq!(tape.data(y)?[1], 30.0); // above the threshold, x itself
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.5, 1.0]); // σ(x), and 1 past the threshold
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn softplus(&mut self, x: NodeId) -> Result<NodeId> {
        self.softplus_with(x, E::one(), E::from_f64(20.0))
    }

    /// `ln(1 + e^(βx)) / β`, and `x` itself where `βx > threshold` (gradient 1 there), as
    /// PyTorch's `softplus(x, beta, threshold)`. `beta` must be finite and positive.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1.0])?;
    /// let y = tape.softplus_with(x, 2.0, 1.0)?; // βx = 2 > 1: x itself
    /// assert!((tape.data(y)?[0] - std::f64::consts::LN_2 / 2.0).abs() < 1e-12);
    /// assert_eq!(tape.data(y)?[1], 1.0);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.5, 1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn softplus_with(&mut self, x: NodeId, beta: E, threshold: E) -> Result<NodeId> {
        let op = UnaryOp::Softplus(beta.to_f64(), threshold.to_f64());
        self.record_unary(Op::Unary(op), x)
    }

    /// `x` where `x > 0`, else `slope · x`; the derivative at 0 is the slope, as in PyTorch.
    /// `slope` must be finite.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-2.0, 0.0, 3.0])?;
    /// let y = tape.leaky_relu(x, 0.25)?;
    /// assert_eq!(tape.data(y)?, &[-0.5, 0.0, 3.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.25, 0.25, 1.0]); // the slope at 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn leaky_relu(&mut self, x: NodeId, slope: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::LeakyRelu(slope.to_f64())), x)
    }

    /// `x` where `x > 0`, else `α(eˣ - 1)`. `alpha` must be finite.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-1.0, 2.0])?;
    /// let y = tape.elu(x, 1.0)?;
    /// assert!((tape.data(y)?[0] - ((-1.0f64).exp() - 1.0)).abs() < 1e-12);
    /// assert_eq!(tape.data(y)?[1], 2.0);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap()[1], 1.0);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn elu(&mut self, x: NodeId, alpha: E) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Elu(alpha.to_f64())), x)
    }

    /// `x · σ(x)` (swish).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1.0])?;
    /// let y = tape.silu(x)?;
    /// assert!((tape.data(y)?[1] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap()[0], 0.5); // σ(0) + 0·σ'(0)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn silu(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Silu), x)
    }

    /// `x` limited to `[min, max]`, either bound optional but not both; the gradient passes
    /// where `min <= x <= max`, as in PyTorch. `min > max` gives `max` everywhere.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-2.0, 0.5, 1.0, 3.0])?;
    /// let y = tape.clamp(x, Some(0.0), Some(1.0))?;
    /// assert_eq!(tape.data(y)?, &[0.0, 0.5, 1.0, 1.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 1.0, 1.0, 0.0]); // 1 on the bound, as PyTorch
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn clamp(&mut self, x: NodeId, min: Option<E>, max: Option<E>) -> Result<NodeId> {
        if min.is_none() && max.is_none() {
            return Err(wengert_ops::Error::MissingParameter {
                op: "clamp",
                expected: "at least one of min and max",
            });
        }
        let min = min.map_or(f64::NEG_INFINITY, |m| m.to_f64());
        let max = max.map_or(f64::INFINITY, |m| m.to_f64());
        self.record_unary(Op::Unary(UnaryOp::Clamp(min, max)), x)
    }

    /// -1, 0 or 1 as `x` is negative, zero or positive; no gradient flows through it.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![-3.0, 0.0, 2.0])?;
    /// let y = tape.sign(x)?;
    /// assert_eq!(tape.data(y)?, &[-1.0, 0.0, 1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sign(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Sign), x)
    }

    /// The error function `(2/√π) ∫₀ˣ e^(-t²) dt`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, f64::INFINITY])?;
    /// let y = tape.erf(x)?;
    /// assert_eq!(tape.data(y)?, &[0.0, 1.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert!((grads.data(x).unwrap()[0] - std::f64::consts::FRAC_2_SQRT_PI).abs() < 1e-12);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn erf(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Erf), x)
    }

    /// `x · Φ(x)`, `Φ` the standard normal CDF, exactly (PyTorch's `gelu`,
    /// `approximate='none'`).
    ///
    /// ```
    /// # fn main() -> wengert_tape::Result<()> {
    /// use wengert_tape::Tape;
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(vec![-1.0, 0.0, 1.0])?;
    /// let y = tape.gelu(x)?;
    /// let exact = tape.data(y)?.to_vec();
    /// assert!((exact[2] - 0.841_344_746_068_542_9).abs() < 1e-15); // Φ(1)
    /// assert_eq!(exact[1], 0.0);
    /// let approximate = tape.gelu_tanh(x)?;
    /// assert!((tape.data(approximate)?[2] - exact[2]).abs() < 2e-4);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn gelu(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Gelu), x)
    }

    /// gelu's tanh approximation, `x · (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2` (PyTorch's
    /// `gelu` with `approximate='tanh'`).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1.0])?;
    /// let y = tape.gelu_tanh(x)?;
    /// assert!((tape.data(y)?[1] - 0.841_191_990_607_477).abs() < 1e-12);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert!((grads.data(x).unwrap()[0] - 0.5).abs() < 1e-12);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn gelu_tanh(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::GeluTanh), x)
    }

    /// The sum of all elements, a scalar.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let s = tape.sum(x)?;
    /// assert_eq!(tape.data(s)?, &[10.0]);
    /// assert_eq!(tape.shape(s)?.rank(), 0);
    /// let grads = tape.backward(s)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0; 4]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn sum(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Sum, x)
    }

    /// The mean of all elements, a scalar.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let m = tape.mean(x)?;
    /// assert_eq!(tape.data(m)?, &[2.5]);
    /// let grads = tape.backward(m)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.25; 4]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn mean(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Mean, x)
    }

    /// The sum along `axis`, which is removed.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let s = tape.sum_axis(x, 0)?;
    /// assert_eq!(tape.data(s)?, &[4.0, 6.0]);
    /// assert_eq!(tape.shape(s)?.dims(), &[2]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
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
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let s = tape.sum_axis_keepdim(x, 1)?;
    /// assert_eq!(tape.data(s)?, &[3.0, 7.0]);
    /// assert_eq!(tape.shape(s)?.dims(), &[2, 1]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
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
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let m = tape.mean_axis(x, 1)?;
    /// assert_eq!(tape.data(m)?, &[1.5, 3.5]);
    /// let loss = tape.sum(m)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.5; 4]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
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
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let m = tape.mean_axis_keepdim(x, 0)?;
    /// assert_eq!(tape.data(m)?, &[2.0, 3.0]);
    /// assert_eq!(tape.shape(m)?.dims(), &[1, 2]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
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
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// let y = tape.reshape(x, &[2, 3])?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 3]);
    /// assert_eq!(tape.data(y)?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn reshape(&mut self, x: NodeId, dims: &[usize]) -> Result<NodeId> {
        self.record_unary(Op::Reshape(Shape::new(dims)?), x)
    }

    /// The transpose of a matrix; for more axes, the last two are exchanged.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])?;
    /// let y = tape.transpose(x)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[3, 2]);
    /// assert_eq!(tape.data(y)?, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
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
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[[1.0, 2.0]], [[3.0, 4.0]]])?; // [2, 1, 2]
    /// let y = tape.transpose_axes(x, 0, 2)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 1, 2]);
    /// assert_eq!(tape.data(y)?, &[1.0, 3.0, 2.0, 4.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn transpose_axes(&mut self, x: NodeId, axis0: usize, axis1: usize) -> Result<NodeId> {
        self.record_unary(Op::Transpose { axis0, axis1 }, x)
    }

    /// Softmax along the last axis.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 1.0], [0.0, 1000.0]])?;
    /// let y = tape.softmax(x)?;
    /// assert_eq!(tape.data(y)?, &[0.5, 0.5, 0.0, 1.0]); // no overflow
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0; 4]); // each row always sums to 1
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Softmax, x)
    }

    /// Log-softmax along the last axis.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[0.0, 0.0]])?;
    /// let y = tape.log_softmax(x)?;
    /// assert!(tape.data(y)?.iter().all(|v| (v + std::f64::consts::LN_2).abs() < 1e-12));
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 0.0]); // 1 - 2·softmax
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn log_softmax(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::LogSoftmax, x)
    }

    /// Softmax along `axis` (PyTorch's `torch.softmax(x, dim)`): each lane along the axis
    /// sums to 1. Along the last axis it computes exactly what [`softmax`](Tape::softmax)
    /// does.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[0.0, 5.0], [0.0, 5.0]])?;
    /// let columns = tape.softmax_axis(x, 0)?;
    /// assert_eq!(tape.data(columns)?, &[0.5, 0.5, 0.5, 0.5]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn softmax_axis(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(Op::SoftmaxAxis { axis }, x)
    }

    /// Log-softmax along `axis` (`torch.log_softmax(x, dim)`).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[0.0, 5.0], [0.0, 5.0]])?;
    /// let y = tape.log_softmax_axis(x, 0)?; // down the columns
    /// assert!(tape.data(y)?.iter().all(|v| (v + std::f64::consts::LN_2).abs() < 1e-12));
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn log_softmax_axis(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.record_unary(Op::LogSoftmaxAxis { axis }, x)
    }

    /// Mean squared error of `prediction` and `target` (same shape), a scalar.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let p = tape.parameter(array![1.0, 3.0])?;
    /// let t = tape.input(array![0.0, 0.0])?;
    /// let loss = tape.mse(p, t)?;
    /// assert_eq!(tape.data(loss)?, &[5.0]);
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(p).unwrap(), &[1.0, 3.0]); // 2(p - t) / N
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn mse(&mut self, prediction: NodeId, target: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Mse, prediction, target)
    }

    /// Softmax cross-entropy of `logits` `[batch, classes]` against `labels` `[batch]` (see
    /// [`Tape::labels`]), averaged over the batch. Finite for any finite logits.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let logits = tape.parameter(array![[0.0, 0.0]])?;
    /// let labels = tape.labels(&[1])?;
    /// let loss = tape.cross_entropy(logits, labels)?;
    /// assert!((tape.data(loss)?[0] - std::f64::consts::LN_2).abs() < 1e-12);
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(logits).unwrap(), &[0.5, -0.5]); // softmax - one-hot
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn cross_entropy(&mut self, logits: NodeId, labels: NodeId) -> Result<NodeId> {
        self.record_binary(Op::CrossEntropy, logits, labels)
    }

    /// `x`'s value, through which no gradient flows.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![3.0])?;
    /// let fixed = tape.detach(x)?;
    /// let y = tape.mul(fixed, x)?;
    /// assert_eq!(tape.data(y)?, &[9.0]);
    /// let grads = tape.backward(y)?;
    /// assert_eq!(grads.data(x).unwrap(), &[3.0]); // not 2x: one factor is a constant
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn detach(&mut self, x: NodeId) -> Result<NodeId> {
        self.record_unary(Op::Unary(UnaryOp::Detach), x)
    }

    /// Records the reduction `op` of `x` along `axis` (all elements for `None`).
    #[inline]
    fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axis: Option<usize>,
        keep_dim: bool,
    ) -> Result<NodeId> {
        self.record_unary(Op::Reduce { op, axis, keep_dim }, x)
    }

    /// The largest element along `axis` (all elements for `None`), the axis removed unless
    /// `keep_dim` (PyTorch's `amax`); ties share the gradient evenly, NaN counts as largest.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0, 3.0], [4.0, 0.0, 2.0]])?;
    /// let m = tape.amax(x, Some(1), false)?;
    /// assert_eq!(tape.data(m)?, &[3.0, 4.0]);
    /// let loss = tape.sum(m)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 0.5, 0.5, 1.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn amax(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Amax, x, axis, keep_dim)
    }

    /// The smallest element along `axis` (all elements for `None`), as [`amax`](Tape::amax).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0], [0.0, 0.0]])?;
    /// let y = tape.amin(x, Some(1), false)?;
    /// assert_eq!(tape.data(y)?, &[1.0, 0.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 0.0, 0.5, 0.5]); // a tie shares it
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn amin(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Amin, x, axis, keep_dim)
    }

    /// The largest element along `axis` and its position (PyTorch's `torch.max(x, dim)`):
    /// the values, whose gradient goes whole to the first largest element, and the positions
    /// (as floats, no gradient).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0, 3.0], [4.0, 0.0, 2.0]])?;
    /// let (values, indices) = tape.max_dim(x, 1, false)?;
    /// assert_eq!(tape.data(values)?, &[3.0, 4.0]);
    /// assert_eq!(tape.data(indices)?, &[1.0, 0.0]);
    /// let loss = tape.sum(values)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn max_dim(&mut self, x: NodeId, axis: usize, keep_dim: bool) -> Result<(NodeId, NodeId)> {
        let values = self.reduce(ReduceOp::MaxAt, x, Some(axis), keep_dim)?;
        let indices = self.reduce(ReduceOp::ArgMax, x, Some(axis), keep_dim)?;
        Ok((values, indices))
    }

    /// The smallest element along `axis` and its position (`torch.min(x, dim)`), as
    /// [`max_dim`](Tape::max_dim).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0, 1.0], [4.0, 0.0, 2.0]])?;
    /// let (values, indices) = tape.min_dim(x, 1, false)?;
    /// assert_eq!(tape.data(values)?, &[1.0, 0.0]);
    /// assert_eq!(tape.data(indices)?, &[0.0, 1.0]);
    /// let loss = tape.sum(values)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]); // the first smallest
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn min_dim(&mut self, x: NodeId, axis: usize, keep_dim: bool) -> Result<(NodeId, NodeId)> {
        let values = self.reduce(ReduceOp::MinAt, x, Some(axis), keep_dim)?;
        let indices = self.reduce(ReduceOp::ArgMin, x, Some(axis), keep_dim)?;
        Ok((values, indices))
    }

    /// The position of the first largest element along `axis` as a float (over all elements,
    /// the flat index), PyTorch's `argmax`; no gradient flows through it.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[1.0, 3.0, 3.0], [4.0, 0.0, 2.0]])?;
    /// let rows = tape.argmax(x, Some(1), false)?;
    /// assert_eq!(tape.data(rows)?, &[1.0, 0.0]); // the first of a tie
    /// let flat = tape.argmax(x, None, false)?;
    /// assert_eq!(tape.data(flat)?, &[3.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn argmax(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::ArgMax, x, axis, keep_dim)
    }

    /// The position of the first smallest element, as [`argmax`](Tape::argmax).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[1.0, 3.0, 1.0], [4.0, 0.0, 2.0]])?;
    /// let rows = tape.argmin(x, Some(1), false)?;
    /// assert_eq!(tape.data(rows)?, &[0.0, 1.0]);
    /// let flat = tape.argmin(x, None, true)?;
    /// assert_eq!(tape.data(flat)?, &[4.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn argmin(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::ArgMin, x, axis, keep_dim)
    }

    /// `ln Σ eˣ` along `axis` (all elements for `None`), without overflow; an empty lane gives
    /// `-inf`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1000.0, 1000.0])?;
    /// let y = tape.logsumexp(x, None, false)?;
    /// assert!((tape.data(y)?[0] - (1000.0 + std::f64::consts::LN_2)).abs() < 1e-9);
    /// let grads = tape.backward(y)?;
    /// assert!(grads.data(x).unwrap().iter().all(|g| (g - 0.5).abs() < 1e-12)); // the softmax
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn logsumexp(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::LogSumExp, x, axis, keep_dim)
    }

    /// The product along `axis` (all elements for `None`); an empty lane gives 1, and the
    /// gradient is right with zeros in the lane (no division).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![2.0, 0.0, 3.0])?;
    /// let p = tape.prod(x, None, false)?;
    /// assert_eq!(tape.data(p)?, &[0.0]);
    /// let grads = tape.backward(p)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 6.0, 0.0]); // the product of the others
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn prod(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Prod, x, axis, keep_dim)
    }

    /// The variance along `axis`, `Σ (x - mean)² / (N - correction)` (PyTorch's
    /// `var(correction=)`: 1 is the unbiased estimate). `correction` must be finite, at least
    /// 0 and below the lane's length.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 3.0])?;
    /// let unbiased = tape.var(x, None, 1.0, false)?;
    /// assert_eq!(tape.data(unbiased)?, &[2.0]);
    /// let biased = tape.var(x, Some(0), 0.0, false)?;
    /// assert_eq!(tape.data(biased)?, &[1.0]);
    /// let grads = tape.backward(unbiased)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-2.0, 2.0]); // 2(x - mean) / (N - 1)
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn var(
        &mut self,
        x: NodeId,
        axis: Option<usize>,
        correction: f64,
        keep_dim: bool,
    ) -> Result<NodeId> {
        self.reduce(ReduceOp::Var(correction), x, axis, keep_dim)
    }

    /// The standard deviation, `√var` (see [`var`](Tape::var)); its gradient where it is 0 is
    /// 0, as PyTorch.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0], [2.0, 2.0]])?;
    /// let s = tape.std(x, Some(1), 0.0, false)?;
    /// assert_eq!(tape.data(s)?, &[1.0, 0.0]);
    /// let loss = tape.sum(s)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-0.5, 0.5, 0.0, 0.0]); // 0 where std is 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn std(
        &mut self,
        x: NodeId,
        axis: Option<usize>,
        correction: f64,
        keep_dim: bool,
    ) -> Result<NodeId> {
        self.reduce(ReduceOp::Std(correction), x, axis, keep_dim)
    }

    /// The Euclidean norm `√Σ x²` along `axis` (all elements for `None`), without overflow or
    /// underflow; its gradient at 0 is 0.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[3.0, 4.0], [0.0, 0.0]])?;
    /// let n = tape.norm(x, Some(1), false)?;
    /// assert_eq!(tape.data(n)?, &[5.0, 0.0]);
    /// let loss = tape.sum(n)?;
    /// let grads = tape.backward(loss)?;
    /// let g = grads.data(x).unwrap();
    /// assert!((g[1] - 0.8).abs() < 1e-12 && g[3] == 0.0); // x / ‖x‖, and 0 at 0
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn norm(&mut self, x: NodeId, axis: Option<usize>, keep_dim: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Norm, x, axis, keep_dim)
    }

    /// Records a loss of `x` against `target`.
    #[inline]
    fn loss(&mut self, loss: LossOp, x: NodeId, target: NodeId) -> Result<NodeId> {
        self.record_binary(Op::Loss(loss), x, target)
    }

    /// `|x - t|` per element, reduced (PyTorch's `l1_loss`); `x` and `target` have one shape
    /// and both get a gradient (its slope at `x = t` is 0).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, -2.0, 0.5])?;
    /// let t = tape.input(array![0.0, 0.0, 0.5])?;
    /// let loss = tape.l1_loss(x, t, Reduction::Sum)?;
    /// assert_eq!(tape.data(loss)?, &[3.0]);
    /// let each = tape.l1_loss(x, t, Reduction::None)?;
    /// assert_eq!(tape.data(each)?, &[1.0, 2.0, 0.0]);
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, -1.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn l1_loss(&mut self, x: NodeId, target: NodeId, reduction: Reduction) -> Result<NodeId> {
        let distance = Distance::L1;
        self.loss(
            LossOp::Distance {
                distance,
                reduction,
            },
            x,
            target,
        )
    }

    /// `0.5 d²/β` where `|d| < β`, else `|d| - 0.5β`, `d = x - t` (PyTorch's
    /// `smooth_l1_loss(beta=)`); `beta = 0` is L1, a negative or NaN one an error.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.5, 3.0])?;
    /// let t = tape.input(array![0.0, 0.0])?;
    /// let loss = tape.smooth_l1_loss(x, t, 1.0, Reduction::Sum)?;
    /// assert_eq!(tape.data(loss)?, &[0.125 + 2.5]); // quadratic inside β, linear outside
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.5, 1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn smooth_l1_loss(
        &mut self,
        x: NodeId,
        target: NodeId,
        beta: f64,
        reduction: Reduction,
    ) -> Result<NodeId> {
        let distance = Distance::SmoothL1 { beta };
        self.loss(
            LossOp::Distance {
                distance,
                reduction,
            },
            x,
            target,
        )
    }

    /// `0.5 d²` where `|d| < δ`, else `δ(|d| - 0.5δ)`, `d = x - t` (PyTorch's
    /// `huber_loss(delta=)`); `delta` must be above 0.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.5, 3.0])?;
    /// let t = tape.input(array![0.0, 0.0])?;
    /// let loss = tape.huber_loss(x, t, 2.0, Reduction::Sum)?;
    /// assert_eq!(tape.data(loss)?, &[0.125 + 4.0]); // 0.5·0.5², then 2·(3 - 1)
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.5, 2.0]); // the slope is capped at δ
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn huber_loss(
        &mut self,
        x: NodeId,
        target: NodeId,
        delta: f64,
        reduction: Reduction,
    ) -> Result<NodeId> {
        let distance = Distance::Huber { delta };
        self.loss(
            LossOp::Distance {
                distance,
                reduction,
            },
            x,
            target,
        )
    }

    /// `-[t·ln σ(x) + (1 - t)·ln(1 - σ(x))]` per element of logits `x` and targets in
    /// `[0, 1]` of the same shape, reduced (PyTorch's `binary_cross_entropy_with_logits`);
    /// no overflow at any logit. Both get a gradient.
    ///
    /// ```
    /// use ndarray::array;
    /// use std::f64::consts::LN_2;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![0.0, 1000.0])?;
    /// let t = tape.input(array![1.0, 1.0])?;
    /// let each = tape.binary_cross_entropy_with_logits(x, t, Reduction::None)?;
    /// assert!((tape.data(each)?[0] - LN_2).abs() < 1e-12 && tape.data(each)?[1] == 0.0);
    /// let loss = tape.binary_cross_entropy_with_logits(x, t, Reduction::Sum)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[-0.5, 0.0]); // σ(x) - t, finite at 1000 too
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn binary_cross_entropy_with_logits(
        &mut self,
        x: NodeId,
        target: NodeId,
        reduction: Reduction,
    ) -> Result<NodeId> {
        self.loss(LossOp::BceWithLogits { reduction }, x, target)
    }

    /// `-x[target]` per lane of log-probabilities `x` (`[C]`, `[N, C]` or `[N, C, d...]`,
    /// classes on axis 1) and class indices (see [`Tape::labels`]) without the class axis,
    /// reduced (PyTorch's `nll_loss`). A target equal to `ignore_index` adds 0 and leaves a
    /// mean's divisor; a target naming no class is an error. The targets get no gradient.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[-1.0, -2.0], [-3.0, -4.0]])?;
    /// let t = tape.labels(&[1, 0])?;
    /// let all = tape.nll_loss(x, t, None, Reduction::Mean)?;
    /// assert_eq!(tape.data(all)?, &[2.5]); // (2 + 3) / 2
    /// let kept = tape.nll_loss(x, t, Some(0), Reduction::Mean)?; // 2 / 1: lane 2 ignored
    /// let grads = tape.backward(kept)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, -1.0, 0.0, 0.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn nll_loss(
        &mut self,
        x: NodeId,
        target: NodeId,
        ignore_index: Option<i64>,
        reduction: Reduction,
    ) -> Result<NodeId> {
        let loss = LossOp::Nll {
            ignore_index,
            reduction,
        };
        self.loss(loss, x, target)
    }

    /// Softmax cross-entropy of logits `z` (classes on axis 1, as [`nll_loss`](Tape::nll_loss))
    /// against class indices or, with [`Targets::Probabilities`](wengert_ops::Targets), class
    /// probabilities of `z`'s shape, with label smoothing, `ignore_index` and a reduction
    /// (PyTorch's `cross_entropy`). Probability targets get a gradient, class indices none.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{CrossEntropyOptions, Reduction, Tape, Targets};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let z = tape.parameter(array![[0.0, 0.0], [0.0, 0.0]])?;
    /// let soft = tape.parameter(array![[0.5, 0.5], [1.0, 0.0]])?;
    /// let options = CrossEntropyOptions {
    ///     targets: Targets::Probabilities,
    ///     reduction: Reduction::None,
    ///     ..CrossEntropyOptions::default()
    /// };
    /// let loss = tape.cross_entropy_with(z, soft, options)?;
    /// let ln2 = 2f64.ln();
    /// assert!(tape.data(loss)?.iter().all(|&l| (l - ln2).abs() < 1e-15));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn cross_entropy_with(
        &mut self,
        z: NodeId,
        target: NodeId,
        options: CrossEntropyOptions,
    ) -> Result<NodeId> {
        self.loss(LossOp::CrossEntropy(options), z, target)
    }

    /// Records a loss of `x` against `target` with `weight` as a third input.
    #[inline]
    fn weighted_loss(
        &mut self,
        loss: LossOp,
        x: NodeId,
        target: NodeId,
        weight: NodeId,
    ) -> Result<NodeId> {
        self.record_listed(Op::WeightedLoss(loss), [x, target, weight])
    }

    /// [`binary_cross_entropy_with_logits`](Tape::binary_cross_entropy_with_logits) with
    /// `pos_weight` (`[C]`, `C` being `x`'s last axis, 1 for a scalar), which scales the
    /// positive term of each column: `-[p·t·ln σ(x) + (1 - t)·ln(1 - σ(x))]` (PyTorch's
    /// `pos_weight`). `x` and `target` get a gradient, `pos_weight` none (PyTorch does not
    /// differentiate in it either).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[0.0, 0.0]])?;
    /// let t = tape.input(array![[1.0, 1.0]])?;
    /// let p = tape.input(array![1.0, 3.0])?;
    /// let loss = tape.binary_cross_entropy_with_logits_weighted(x, t, p, Reduction::None)?;
    /// let ln2 = 2f64.ln();
    /// assert_eq!(tape.data(loss)?, &[ln2, 3.0 * ln2]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn binary_cross_entropy_with_logits_weighted(
        &mut self,
        x: NodeId,
        target: NodeId,
        pos_weight: NodeId,
        reduction: Reduction,
    ) -> Result<NodeId> {
        let loss = LossOp::BceWithLogits { reduction };
        self.weighted_loss(loss, x, target, pos_weight)
    }

    /// [`nll_loss`](Tape::nll_loss) with class weights `weight` (`[C]`): each lane's term is
    /// `-w[t]·x[t]`, and a mean divides by the sum of the weights of the targets not ignored
    /// (PyTorch's `weight`). `x` gets a gradient, the targets and the weights none.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Reduction, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[-1.0, -2.0], [-3.0, -4.0]])?;
    /// let t = tape.labels(&[1, 0])?;
    /// let w = tape.input(array![1.0, 3.0])?;
    /// let loss = tape.nll_loss_weighted(x, t, w, None, Reduction::Mean)?;
    /// assert_eq!(tape.data(loss)?, &[2.25]); // (3·2 + 1·3) / (3 + 1)
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, -0.75, -0.25, 0.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn nll_loss_weighted(
        &mut self,
        x: NodeId,
        target: NodeId,
        weight: NodeId,
        ignore_index: Option<i64>,
        reduction: Reduction,
    ) -> Result<NodeId> {
        let loss = LossOp::Nll {
            ignore_index,
            reduction,
        };
        self.weighted_loss(loss, x, target, weight)
    }

    /// [`cross_entropy_with`](Tape::cross_entropy_with) with class weights `weight` (`[C]`):
    /// each lane's term is `-Σ_c w_c·t'_c·log_softmax(z)_c`; a mean divides by the sum of the
    /// weights of the class targets not ignored, or by the lane count for probability targets
    /// (PyTorch's `weight`). The weights get no gradient.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{CrossEntropyOptions, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let z = tape.parameter(array![[0.0, 0.0], [0.0, 0.0]])?;
    /// let labels = tape.labels(&[0, 1])?;
    /// let w = tape.input(array![1.0, 3.0])?;
    /// // (1·ln 2 + 3·ln 2) / (1 + 3)
    /// let loss = tape.cross_entropy_weighted(z, labels, w, CrossEntropyOptions::default())?;
    /// assert!((tape.item(loss)? - 2f64.ln()).abs() < 1e-15);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn cross_entropy_weighted(
        &mut self,
        z: NodeId,
        target: NodeId,
        weight: NodeId,
        options: CrossEntropyOptions,
    ) -> Result<NodeId> {
        self.weighted_loss(LossOp::CrossEntropy(options), z, target, weight)
    }

    /// `x` without its axis `axis`, which must exist; if its length is not 1, `x` is
    /// returned unchanged, as PyTorch's `squeeze(dim)` (recorded as a reshape).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0], [2.0]])?;
    /// let y = tape.squeeze(x, 1)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2]);
    /// let same = tape.squeeze(x, 0)?; // length 2: unchanged
    /// assert_eq!(tape.shape(same)?.dims(), &[2, 1]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn squeeze(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        let shape = self.shape(x)?;
        let to = match shape.dim(axis) {
            None => {
                return Err(wengert_ops::Error::AxisOutOfRange {
                    op: "squeeze",
                    axis,
                    shape,
                });
            }
            Some(1) => {
                let mut dims = [0usize; wengert_ops::MAX_RANK];
                let rest = shape.dims().iter().enumerate().filter(|&(a, _)| a != axis);
                for (d, (_, &n)) in dims.iter_mut().zip(rest) {
                    *d = n;
                }
                Shape::new(&dims[..shape.rank() - 1])?
            }
            Some(_) => shape,
        };
        self.record_unary(Op::Reshape(to), x)
    }

    /// `x` with a new axis of length 1 at `axis` (`0..=rank`), as PyTorch's `unsqueeze`
    /// (recorded as a reshape).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0])?;
    /// let row = tape.unsqueeze(x, 0)?;
    /// assert_eq!(tape.shape(row)?.dims(), &[1, 2]);
    /// let column = tape.unsqueeze(x, 1)?;
    /// assert_eq!(tape.shape(column)?.dims(), &[2, 1]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn unsqueeze(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        let shape = self.shape(x)?;
        if axis > shape.rank() {
            return Err(wengert_ops::Error::AxisOutOfRange {
                op: "unsqueeze",
                axis,
                shape,
            });
        }
        let mut dims = [1usize; wengert_ops::MAX_RANK + 1];
        dims[..axis].copy_from_slice(&shape.dims()[..axis]);
        dims[axis + 1..=shape.rank()].copy_from_slice(&shape.dims()[axis..]);
        self.record_unary(Op::Reshape(Shape::new(&dims[..=shape.rank()])?), x)
    }

    /// Axes `start..=end` merged into one, as PyTorch's `flatten(start_dim, end_dim)`
    /// (recorded as a reshape); a scalar becomes a vector of one element.
    ///
    /// ```
    /// use ndarray::Array3;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f32>::new();
    /// let x = tape.input(Array3::<f32>::zeros((2, 3, 4)))?;
    /// let y = tape.flatten(x, 1, 2)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 12]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn flatten(&mut self, x: NodeId, start: usize, end: usize) -> Result<NodeId> {
        let shape = self.shape(x)?;
        let dims = shape.dims();
        if shape.rank() == 0 {
            return self.record_unary(Op::Reshape(Shape::vector(1)), x);
        }
        for axis in [start, end] {
            if axis >= shape.rank() {
                return Err(wengert_ops::Error::AxisOutOfRange {
                    op: "flatten",
                    axis,
                    shape,
                });
            }
        }
        if start > end {
            return Err(wengert_ops::Error::InvalidArgument {
                op: "flatten",
                argument: "start",
                value: start as f64,
                requirement: format!("it must not be after end = {end}"),
            });
        }
        let mut to = [0usize; wengert_ops::MAX_RANK];
        to[..start].copy_from_slice(&dims[..start]);
        to[start] = dims[start..=end].iter().product();
        let rest = shape.rank() - end - 1;
        to[start + 1..start + 1 + rest].copy_from_slice(&dims[end + 1..]);
        self.record_unary(Op::Reshape(Shape::new(&to[..start + 1 + rest])?), x)
    }

    /// `x` repeated along its length-1 axes and new leading axes to the shape `dims`, as
    /// NumPy broadcasts (PyTorch's `broadcast_to`); the gradient is summed back.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0])?;
    /// let y = tape.broadcast_to(x, &[3, 2])?;
    /// assert_eq!(tape.data(y)?, &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[3.0, 3.0]); // summed back
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn broadcast_to(&mut self, x: NodeId, dims: &[usize]) -> Result<NodeId> {
        self.record_unary(Op::BroadcastTo(Shape::new(dims)?), x)
    }

    /// `length` elements of `x` along `axis` from `start` (negative counts from the end), as
    /// PyTorch's `narrow`; a range that does not fit is an error.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![1.0, 2.0, 3.0, 4.0, 5.0])?;
    /// let y = tape.narrow(x, 0, -2, 2)?; // the last two
    /// assert_eq!(tape.data(y)?, &[4.0, 5.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 0.0, 0.0, 1.0, 1.0]);
    /// assert!(tape.narrow(x, 0, 4, 2).is_err());
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn narrow(&mut self, x: NodeId, axis: usize, start: i64, length: usize) -> Result<NodeId> {
        let op = Op::Narrow {
            axis,
            start,
            length,
        };
        self.record_unary(op, x)
    }

    /// The slices of `x` along `axis` at the positions `indices` holds (a vector or scalar of
    /// whole numbers as floats, from [`Tape::labels`] or [`Tape::input`]), as PyTorch's
    /// `index_select(x, axis, indices)`; repeated positions add their gradients; no gradient
    /// flows to the positions. A position out of range is `IndexOutOfRange`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])?;
    /// let idx = tape.labels(&[2, 0, 2])?;
    /// let y = tape.index_select(x, idx, 1)?;
    /// assert_eq!(tape.data(y)?, &[3.0, 1.0, 3.0, 6.0, 4.0, 6.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 0.0, 2.0, 1.0, 0.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn index_select(&mut self, x: NodeId, indices: NodeId, axis: usize) -> Result<NodeId> {
        self.record_binary(Op::IndexSelect { axis }, x, indices)
    }

    /// `y[i] = x[i with its axis coordinate replaced by index[i]]`, as PyTorch's
    /// `gather(x, axis, index)`: `index` has `x`'s rank and no larger length off `axis`, its
    /// values whole numbers in range (as floats); the gradient is scattered back (added), none
    /// flows to the index.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let index = tape.input(array![[1.0, 1.0], [0.0, 1.0]])?;
    /// let y = tape.gather(x, index, 1)?;
    /// assert_eq!(tape.data(y)?, &[2.0, 2.0, 3.0, 4.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 2.0, 1.0, 1.0]); // repeats add up
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn gather(&mut self, x: NodeId, index: NodeId, axis: usize) -> Result<NodeId> {
        self.record_binary(Op::Gather { axis }, x, index)
    }

    /// Zeros of length `len` along `axis`, with the slices of `src` along it added at the
    /// positions `indices` holds (one per slice, whole numbers in `0..len` as floats; repeats
    /// add up): `index_select`'s adjoint, PyTorch's `zeros(..).index_add_(axis, indices, src)`.
    /// The gradient of `src` is `index_select` of the output's; none flows to the positions.
    /// A position out of range is `IndexOutOfRange`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let src = tape.parameter(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])?;
    /// let idx = tape.labels(&[2, 0, 2])?;
    /// let y = tape.index_add(src, idx, 1, 4)?;
    /// assert_eq!(tape.data(y)?, &[2.0, 0.0, 4.0, 0.0, 5.0, 0.0, 10.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn index_add(
        &mut self,
        src: NodeId,
        indices: NodeId,
        axis: usize,
        len: usize,
    ) -> Result<NodeId> {
        self.record_binary(Op::IndexAdd { axis, len }, src, indices)
    }

    /// Zeros of length `len` along `axis`, with each `src[i]` added at `i` with its `axis`
    /// coordinate replaced by `index[i]` (`index` has `src`'s shape; whole numbers in `0..len`
    /// as floats; repeats add up): `gather`'s adjoint, PyTorch's
    /// `zeros(..).scatter_add_(axis, index, src)`. The gradient of `src` is `gather` of the
    /// output's; none flows to the index. A position out of range is `IndexOutOfRange`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// // One-hot rows from class labels.
    /// let mut tape = Tape::<f64>::new();
    /// let ones = tape.input(array![[1.0], [1.0]])?;
    /// let labels = tape.input(array![[2.0], [0.0]])?;
    /// let hot = tape.scatter_add(ones, labels, 1, 3)?;
    /// assert_eq!(tape.data(hot)?, &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn scatter_add(
        &mut self,
        src: NodeId,
        index: NodeId,
        axis: usize,
        len: usize,
    ) -> Result<NodeId> {
        self.record_binary(Op::ScatterAdd { axis, len }, src, index)
    }

    /// Inverted dropout (PyTorch's `dropout(x, p, training=True)`): each element zeroed with
    /// probability `p`, the others scaled by `1 / (1 - p)`. The mask depends only on
    /// `mask_seed` and the element's position (SplitMix64), the same for f32 and f64, so a
    /// replayed step or a resumed run draws it again; give each layer and step its own seed.
    /// `p = 1` gives zeros (gradient 0); `p` outside `[0, 1]` is `InvalidArgument`.
    ///
    /// ```
    /// use ndarray::Array1;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(Array1::from_elem(64, 1.0))?;
    /// let y = tape.dropout(x, 0.5, 7)?; // the same seed, the same mask
    /// let mask = tape.data(y)?.to_vec();
    /// assert!(mask.contains(&0.0) && mask.iter().all(|&v| v == 0.0 || v == 2.0)); // kept: ×2
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &mask[..]); // the mask, scaled
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn dropout(&mut self, x: NodeId, p: f64, mask_seed: u64) -> Result<NodeId> {
        self.record_unary(Op::Dropout { p, seed: mask_seed }, x)
    }

    /// `x[start:end:step]` on each leading axis, one [`SliceAxis`] per axis (the rest whole),
    /// by Python's rules: negative bounds count from the end, bounds out of range are clamped
    /// (never an error), `end = i64::MAX` is "to the end"; `step` must be at least 1. Recorded
    /// as one `slice` node per axis that is not taken whole (none at all gives `x` itself).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{SliceAxis, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
    /// let every_other = SliceAxis { start: 1, end: i64::MAX, step: 2 };
    /// let y = tape.slice(x, &[SliceAxis::range(-1, 9), every_other])?;
    /// assert_eq!(tape.data(y)?, &[6.0, 8.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn slice(&mut self, x: NodeId, ranges: &[SliceAxis]) -> Result<NodeId> {
        let shape = self.shape(x)?;
        if ranges.len() > shape.rank() {
            return Err(wengert_ops::Error::WrongRank {
                op: "slice",
                expected: "at least as many axes as ranges",
                shape,
            });
        }
        let mut y = x;
        for (axis, &range) in ranges.iter().enumerate() {
            if range != SliceAxis::FULL || range.step < 1 {
                y = self.record_unary(Op::Slice { axis, range }, y)?;
            }
        }
        Ok(y)
    }

    /// `x` surrounded by `value`: `pads[a] = (before, after)` elements on each axis `a`, in
    /// axis order, one pair for every axis (PyTorch's `F.pad(mode="constant")`, whose list
    /// runs from the last axis). Counts are not negative: crop with [`slice`](Tape::slice).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0]])?;
    /// let y = tape.pad(x, &[(1, 0), (0, 1)], 0.0)?; // a row before, a column after
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 3]);
    /// assert_eq!(tape.data(y)?, &[0.0, 0.0, 0.0, 1.0, 2.0, 0.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[1.0, 1.0]);
    /// # Ok::<(), wengert_tape::Error>(())
    /// ```
    #[inline]
    pub fn pad(&mut self, x: NodeId, pads: &[(usize, usize)], value: E) -> Result<NodeId> {
        let too_many = |v: usize| wengert_ops::Error::InvalidArgument {
            op: "pad",
            argument: "pads",
            value: v as f64,
            requirement: format!(
                "at most {} pairs of counts below 2^32",
                wengert_ops::MAX_RANK
            ),
        };
        if pads.len() > wengert_ops::MAX_RANK {
            return Err(too_many(pads.len()));
        }
        let mut stored = [[0u32; 2]; wengert_ops::MAX_RANK];
        for (s, &(before, after)) in stored.iter_mut().zip(pads) {
            for (slot, n) in s.iter_mut().zip([before, after]) {
                *slot = u32::try_from(n).map_err(|_| too_many(n))?;
            }
        }
        let op = Op::Pad {
            pads: stored,
            axes: pads.len() as u8,
            value: value.to_f64(),
        };
        self.record_unary(op, x)
    }

    /// The inputs joined along `axis` (PyTorch's `torch.cat`): any number of at least one, of
    /// one rank and the same lengths off `axis`; each gets its block of the gradient. Held in
    /// the tape's reused list of inputs, so recording allocates nothing in a loop.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![[1.0], [2.0]])?;
    /// let b = tape.parameter(array![[3.0, 4.0], [5.0, 6.0]])?;
    /// let y = tape.concat([a, b, a], 1)?;
    /// assert_eq!(tape.data(y)?, &[1.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0, 2.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(a).unwrap(), &[2.0, 2.0]); // used twice
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn concat(
        &mut self,
        inputs: impl IntoIterator<Item = impl Borrow<NodeId>>,
        axis: usize,
    ) -> Result<NodeId> {
        let ids = inputs.into_iter().map(|id| *id.borrow());
        self.record_listed(Op::Concat { axis }, ids)
    }

    /// The inputs, all of one shape, stacked along a new axis at `axis` (`0..=rank`;
    /// PyTorch's `torch.stack`): any number of at least one; input `k` gets the gradient's
    /// slice `k` along the new axis.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.parameter(array![1.0, 2.0])?;
    /// let b = tape.parameter(array![3.0, 4.0])?;
    /// let y = tape.stack(&[a, b], 1)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 2]);
    /// assert_eq!(tape.data(y)?, &[1.0, 3.0, 2.0, 4.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn stack(
        &mut self,
        inputs: impl IntoIterator<Item = impl Borrow<NodeId>>,
        axis: usize,
    ) -> Result<NodeId> {
        let ids = inputs.into_iter().map(|id| *id.borrow());
        self.record_listed(Op::Stack { axis }, ids)
    }

    /// `a` where `cond` is not 0, else `b`, the three broadcast together as NumPy does
    /// (PyTorch's `torch.where`; a NaN condition counts as true, as its conversion to bool).
    /// `a` gets the gradient where the condition holds, `b` elsewhere, each summed over the
    /// axes it was broadcast along; `cond` gets none. Masks come from the comparisons
    /// ([`gt`](Tape::gt), ...).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![-1.0, 2.0, -3.0])?;
    /// let zero = tape.input(array![0.0])?;
    /// let positive = tape.gt(x, zero)?;
    /// let y = tape.where_cond(positive, x, zero)?; // relu
    /// assert_eq!(tape.data(y)?, &[0.0, 2.0, 0.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 1.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn where_cond(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_listed(Op::Where, [cond, a, b])
    }

    /// 2-D convolution of `x` `[N, C, H, W]` with `weight` `[O, C/groups, kh, kw]`, plus an
    /// optional `bias` `[O]`, giving `[N, O, OH, OW]` (PyTorch's `F.conv2d`; `args` holds
    /// stride, padding and dilation as (height, width) pairs, and groups). Runs im2col and one
    /// product per image and group on the gemm kernel, bit-identical for any thread count; the
    /// node keeps its patch buffer across [`clear`](Tape::clear) and [`rewind`](Tape::rewind),
    /// so a warm training step allocates nothing.
    ///
    /// ```
    /// use ndarray::Array4;
    /// use wengert_tape::{Conv2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(Array4::from_elem((1, 1, 3, 3), 1.0))?;
    /// let w = tape.parameter(Array4::from_elem((2, 1, 2, 2), 0.5))?;
    /// let b = tape.parameter(ndarray::array![0.0, 1.0])?;
    /// let y = tape.conv2d(x, w, Some(b), Conv2dArgs::default())?;
    /// assert_eq!(tape.shape(y)?.dims(), &[1, 2, 2, 2]);
    /// assert_eq!(tape.data(y)?[..5], [2.0, 2.0, 2.0, 2.0, 3.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(b).unwrap(), &[4.0, 4.0]); // four positions each
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn conv2d(
        &mut self,
        x: NodeId,
        weight: NodeId,
        bias: Option<NodeId>,
        args: Conv2dArgs,
    ) -> Result<NodeId> {
        self.record_listed(Op::Conv2d(args), [x, weight].into_iter().chain(bias))
    }

    /// 1-D convolution of `x` `[N, C, L]` with `weight` `[O, C/groups, k]`, plus an optional
    /// `bias` `[O]`, giving `[N, O, OL]` (PyTorch's `F.conv1d`): [`conv2d`](Tape::conv2d) on a
    /// height of 1, with the same buffer reuse.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Conv1dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[[1.0, 2.0, 3.0, 4.0]]])?;
    /// let w = tape.parameter(array![[[1.0, -1.0]]])?;
    /// let args = Conv1dArgs { padding: 1, ..Conv1dArgs::default() };
    /// let y = tape.conv1d(x, w, None, args)?;
    /// assert_eq!(tape.data(y)?, &[-1.0, -1.0, -1.0, -1.0, 4.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn conv1d(
        &mut self,
        x: NodeId,
        weight: NodeId,
        bias: Option<NodeId>,
        args: Conv1dArgs,
    ) -> Result<NodeId> {
        self.record_listed(Op::Conv1d(args), [x, weight].into_iter().chain(bias))
    }

    /// 2-D max pooling of `x` `[N, C, H, W]` (or `[C, H, W]`): each window's largest element
    /// (PyTorch's `F.max_pool2d` with `ceil_mode=False`, dilation 1; `Pool2dArgs::new(k)` is
    /// its defaults). Padding reads as -∞; of equal maxima the first in row order takes the
    /// gradient, and a NaN is the maximum.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Pool2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[[1.0, 5.0], [3.0, 2.0]]])?;
    /// let y = tape.max_pool2d(x, Pool2dArgs::new([2, 2]))?;
    /// assert_eq!(tape.data(y)?, &[5.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x).unwrap(), &[0.0, 1.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn max_pool2d(&mut self, x: NodeId, args: Pool2dArgs) -> Result<NodeId> {
        self.record_unary(Op::MaxPool2d(args), x)
    }

    /// 2-D average pooling of `x` `[N, C, H, W]` (or `[C, H, W]`): each window's sum divided by
    /// the window's size with `count_include_pad` (PyTorch's default), else by the input
    /// elements it covers (`F.avg_pool2d`, without `divisor_override`).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Pool2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[[1.0, 5.0], [3.0, 2.0]]])?;
    /// let y = tape.avg_pool2d(x, Pool2dArgs::new([2, 2]))?;
    /// assert_eq!(tape.data(y)?, &[2.75]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn avg_pool2d(&mut self, x: NodeId, args: Pool2dArgs) -> Result<NodeId> {
        self.record_unary(Op::AvgPool2d(args), x)
    }

    /// Adaptive 2-D average pooling of `x` `[N, C, H, W]` (or `[C, H, W]`) to `size`
    /// (`F.adaptive_avg_pool2d`): window `i` of an axis of length `L` pooled to `S` covers
    /// `⌊i·L/S⌋..⌈(i+1)·L/S⌉`; `[1, 1]` is global average pooling.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[[1.0, 5.0], [3.0, 2.0]]])?;
    /// let y = tape.adaptive_avg_pool2d(x, [1, 1])?;
    /// assert_eq!(tape.data(y)?, &[2.75]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn adaptive_avg_pool2d(&mut self, x: NodeId, size: [usize; 2]) -> Result<NodeId> {
        self.record_unary(Op::AdaptiveAvgPool2d(size), x)
    }

    /// The rows of `table` `[num, dim]` that `indices` names (whole numbers as floats, any
    /// shape, from [`Tape::labels`] or [`Tape::input`]), giving `[...indices, dim]`, as
    /// PyTorch's `F.embedding(indices, table, padding_idx)` (without `max_norm`). Repeated
    /// rows add their gradients; the row `padding_idx` names gets none, nor do the indices.
    /// An index that is not a whole number in `0..num` is `IndexOutOfRange` naming its
    /// position; a `padding_idx` past the table is `InvalidArgument`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let table = tape.parameter(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])?;
    /// let idx = tape.input(array![[2.0, 0.0], [2.0, 1.0]])?;
    /// let y = tape.embedding(table, idx, Some(1))?;
    /// assert_eq!(tape.shape(y)?.dims(), &[2, 2, 2]);
    /// assert_eq!(tape.data(y)?, &[5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// // Row 2 was picked twice; row 1 is the padding row.
    /// assert_eq!(grads.data(table).unwrap(), &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    /// let bad = tape.input(array![3.0])?;
    /// assert!(tape.embedding(table, bad, None).is_err());
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn embedding(
        &mut self,
        table: NodeId,
        indices: NodeId,
        padding_idx: Option<usize>,
    ) -> Result<NodeId> {
        self.record_binary(Op::Embedding { padding_idx }, table, indices)
    }

    /// Layer norm of `x` over its trailing `axes` axes (PyTorch's
    /// `F.layer_norm(x, x.shape[-axes:], gamma, beta, eps)`): each row normalised by its mean
    /// and biased variance, `(x - mean)/sqrt(var + eps)`, then multiplied by `gamma` and
    /// shifted by `beta` elementwise when given (each of the trailing shape). One node with a
    /// fused VJP that reads back the rows' statistics the forward kept (in the node's scratch
    /// buffer, reused across rewinds). `axes` outside `1..=rank` or a negative or non-finite
    /// `eps` is `InvalidArgument`, a `gamma` or `beta` of another shape `ShapeMismatch`, an
    /// empty row `EmptyBatch`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 3.0], [2.0, 2.0]])?;
    /// let gamma = tape.parameter(array![2.0, 1.0])?;
    /// let beta = tape.parameter(array![0.5, 0.0])?;
    /// let y = tape.layer_norm(x, Some(gamma), Some(beta), 1, 0.0)?;
    /// // Row 0 is (-1, 1) normalised; row 1 has no spread: (0, 0) with eps 0 gives NaN.
    /// assert_eq!(&tape.data(y)?[..2], &[-1.5, 1.0]);
    /// let y = tape.layer_norm(x, None, None, 2, 1e-5)?;
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// // A normalised sum is constant: no gradient to x.
    /// assert!(grads.data(x).unwrap().iter().all(|g| g.abs() < 1e-9));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn layer_norm(
        &mut self,
        x: NodeId,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
        axes: usize,
        eps: f64,
    ) -> Result<NodeId> {
        let op = Op::LayerNorm {
            axes,
            eps,
            gamma: gamma.is_some(),
            beta: beta.is_some(),
        };
        self.record_listed(op, [x].into_iter().chain(gamma).chain(beta))
    }

    /// Batch norm of `x` `[N, C, ...]` in training (PyTorch's `F.batch_norm(x, None, None,
    /// gamma, beta, training=True, eps=eps)`): each channel (axis 1) normalised by the batch's
    /// mean and biased variance over every other axis, `(x - mean)/sqrt(var + eps)`, then
    /// multiplied by `gamma` and shifted by `beta` (`[C]` each) when given. One node with a
    /// fused VJP that reads back the channels' statistics the forward kept (in the node's
    /// scratch buffer, reused across rewinds). It updates no running estimate: a model
    /// records their new values from the batch as ordinary nodes (see `BatchNorm1d` in
    /// `wengert-train`), so a replay never updates anything twice. Rank below 2 is
    /// `WrongRank`, a negative or non-finite `eps` or a channel of at most one value
    /// `InvalidArgument`, a `gamma` or `beta` not `[C]` `ShapeMismatch`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 6.0]])?;
    /// let gamma = tape.parameter(array![2.0, 1.0])?;
    /// let beta = tape.parameter(array![0.5, 0.0])?;
    /// // Channel 0: mean 2, variance 1; channel 1: mean 4, variance 4.
    /// let y = tape.batch_norm(x, Some(gamma), Some(beta), 0.0)?;
    /// assert_eq!(tape.data(y)?, &[-1.5, -1.0, 2.5, 1.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// // A normalised channel sums to 0 whatever x: no gradient to x; beta's is the count.
    /// assert!(grads.data(x).unwrap().iter().all(|g| g.abs() < 1e-12));
    /// assert_eq!(grads.data(beta).unwrap(), &[2.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
        eps: f64,
    ) -> Result<NodeId> {
        let op = Op::BatchNorm {
            eps,
            training: true,
            gamma: gamma.is_some(),
            beta: beta.is_some(),
        };
        self.record_listed(op, [x].into_iter().chain(gamma).chain(beta))
    }

    /// Batch norm of `x` `[N, C, ...]` in evaluation (PyTorch's `F.batch_norm(x,
    /// running_mean, running_var, gamma, beta, training=False, eps=eps)`): each channel
    /// normalised by the running estimates `running_mean` and `running_var` (`[C]` each, no
    /// gradient flows to them), then scaled and shifted as [`batch_norm`](Tape::batch_norm).
    /// Errors as there, a running estimate not `[C]` being `ShapeMismatch` too.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[1.0, 2.0], [3.0, 6.0]])?;
    /// let mean = tape.input(array![0.0, 1.0])?;
    /// let var = tape.input(array![4.0, 0.25])?;
    /// let y = tape.batch_norm_eval(x, None, None, mean, var, 0.0)?;
    /// assert_eq!(tape.data(y)?, &[0.5, 2.0, 1.5, 10.0]);
    /// let loss = tape.sum(y)?;
    /// let grads = tape.backward(loss)?;
    /// // An affine map of x: dy/dx = 1/sqrt(var) per channel.
    /// assert_eq!(grads.data(x).unwrap(), &[0.5, 2.0, 0.5, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn batch_norm_eval(
        &mut self,
        x: NodeId,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
        running_mean: NodeId,
        running_var: NodeId,
        eps: f64,
    ) -> Result<NodeId> {
        let op = Op::BatchNorm {
            eps,
            training: false,
            gamma: gamma.is_some(),
            beta: beta.is_some(),
        };
        let inputs = [x].into_iter().chain(gamma).chain(beta);
        self.record_listed(op, inputs.chain([running_mean, running_var]))
    }

    /// [`conv2d`](Tape::conv2d)'s VJP for its input, as an op: the gradient of an input of
    /// `like`'s shape (the input itself, say; its values are not read and get no gradient) from
    /// the output's gradient `grad` and the `weight` (a transposed convolution,
    /// `torch.nn.grad.conv2d_input`). The recorded sweep records it, so that an input gradient
    /// can be differentiated again.
    ///
    /// ```
    /// use ndarray::{Array4, array};
    /// use wengert_tape::{Conv2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let g = tape.input(Array4::from_elem((1, 1, 2, 2), 1.0))?;
    /// let w = tape.parameter(array![[[[1.0, 2.0], [3.0, 4.0]]]])?;
    /// let x = tape.input(Array4::zeros((1, 1, 3, 3)))?;
    /// let dx = tape.conv2d_input_grad(g, w, x, Conv2dArgs::default())?;
    /// // Each input element gets the weights of the windows it lies in.
    /// assert_eq!(tape.data(dx)?, &[1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn conv2d_input_grad(
        &mut self,
        grad: NodeId,
        weight: NodeId,
        like: NodeId,
        args: Conv2dArgs,
    ) -> Result<NodeId> {
        self.record_listed(Op::Conv2dInputGrad(args), [grad, weight, like])
    }

    /// [`conv2d`](Tape::conv2d)'s VJP for its weight, as an op: the gradient of a weight of
    /// `like`'s shape (the weight itself, say; its values are not read) from the input `x` and
    /// the output's gradient `grad` (`torch.nn.grad.conv2d_weight`), recorded by the recorded
    /// sweep.
    ///
    /// ```
    /// use ndarray::{Array4, array};
    /// use wengert_tape::{Conv2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.parameter(array![[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])?;
    /// let g = tape.input(Array4::from_elem((1, 1, 2, 2), 1.0))?;
    /// let w = tape.input(Array4::zeros((1, 1, 2, 2)))?;
    /// let dw = tape.conv2d_weight_grad(x, g, w, Conv2dArgs::default())?;
    /// // Each weight gets the sum of the inputs it meets.
    /// assert_eq!(tape.data(dw)?, &[12.0, 16.0, 24.0, 28.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn conv2d_weight_grad(
        &mut self,
        x: NodeId,
        grad: NodeId,
        like: NodeId,
        args: Conv2dArgs,
    ) -> Result<NodeId> {
        self.record_listed(Op::Conv2dWeightGrad(args), [x, grad, like])
    }

    /// [`max_pool2d`](Tape::max_pool2d)'s VJP, as an op: each window's `grad` added at the
    /// element the pool takes from `x`, in `x`'s shape. The recorded sweep records it; no
    /// gradient flows to `x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Pool2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[[1.0, 5.0], [3.0, 2.0]]])?;
    /// let g = tape.parameter(array![[[7.0]]])?;
    /// let dx = tape.max_pool2d_grad(x, g, Pool2dArgs::new([2, 2]))?;
    /// assert_eq!(tape.data(dx)?, &[0.0, 7.0, 0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn max_pool2d_grad(&mut self, x: NodeId, grad: NodeId, args: Pool2dArgs) -> Result<NodeId> {
        self.record_binary(Op::MaxPool2dGrad(args), x, grad)
    }

    /// [`max_pool2d_grad`](Tape::max_pool2d_grad)'s adjoint, as an op: `u` (of `x`'s shape) at
    /// the element each window of `x` takes, in the pooled shape. No gradient flows to `x`.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Pool2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![[[1.0, 5.0], [3.0, 2.0]]])?;
    /// let u = tape.parameter(array![[[10.0, 20.0], [30.0, 40.0]]])?;
    /// let picked = tape.max_pool2d_select(x, u, Pool2dArgs::new([2, 2]))?;
    /// assert_eq!(tape.data(picked)?, &[20.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn max_pool2d_select(&mut self, x: NodeId, u: NodeId, args: Pool2dArgs) -> Result<NodeId> {
        self.record_binary(Op::MaxPool2dSelect(args), x, u)
    }

    /// [`avg_pool2d`](Tape::avg_pool2d)'s VJP, as an op: each window's `grad` divided as the
    /// pool divides and spread over the elements it covers, in `like`'s shape (the pool's
    /// input, say; its values are not read and get no gradient).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{Pool2dArgs, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let g = tape.parameter(array![[[8.0]]])?;
    /// let x = tape.input(ndarray::Array3::zeros((1, 2, 2)))?;
    /// let dx = tape.avg_pool2d_grad(g, x, Pool2dArgs::new([2, 2]))?;
    /// assert_eq!(tape.data(dx)?, &[2.0, 2.0, 2.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn avg_pool2d_grad(
        &mut self,
        grad: NodeId,
        like: NodeId,
        args: Pool2dArgs,
    ) -> Result<NodeId> {
        self.record_binary(Op::AvgPool2dGrad(args), grad, like)
    }

    /// [`adaptive_avg_pool2d`](Tape::adaptive_avg_pool2d)'s VJP, as an op: each window's
    /// `grad` divided by its size and spread over it, in `like`'s shape (its values unread).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let g = tape.parameter(array![[[8.0]]])?;
    /// let x = tape.input(ndarray::Array3::zeros((1, 2, 2)))?;
    /// let dx = tape.adaptive_avg_pool2d_grad(g, x, [1, 1])?;
    /// assert_eq!(tape.data(dx)?, &[2.0, 2.0, 2.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn adaptive_avg_pool2d_grad(
        &mut self,
        grad: NodeId,
        like: NodeId,
        size: [usize; 2],
    ) -> Result<NodeId> {
        self.record_binary(Op::AdaptiveAvgPool2dGrad(size), grad, like)
    }
}
