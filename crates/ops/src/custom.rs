//! [`CustomOp`]: how a user adds an op of their own, by its forward rule and its VJP rule.

use ndarray::{ArrayViewD, ArrayViewMutD};

use crate::{Error, Float, Op, Result, Shape};

/// An op defined outside wengert: a forward rule and a vector-Jacobian rule.
///
/// Register it on a tape once, then record it like a built-in op. Inputs and outputs are
/// row-major arrays; `vjp` *adds* its contribution to `grad_input`, so that an input used twice
/// receives the sum of both paths.
///
/// ```
/// use ndarray::{ArrayViewD, ArrayViewMutD};
/// use wengert_ops::{CustomOp, Result, Shape};
///
/// /// y = x³, elementwise.
/// struct Cube;
///
/// impl CustomOp<f64> for Cube {
///     fn name(&self) -> &str { "cube" }
///     fn arity(&self) -> usize { 1 }
///     fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> { Ok(*inputs[0]) }
///     fn forward(&self, inputs: &[ArrayViewD<'_, f64>], mut out: ArrayViewMutD<'_, f64>) -> Result<()> {
///         out.zip_mut_with(&inputs[0], |y, &x| *y = x * x * x);
///         Ok(())
///     }
///     // y = x³: dx = dy · 3x²
///     fn vjp(&self, inputs: &[ArrayViewD<'_, f64>], _output: ArrayViewD<'_, f64>,
///            grad_output: ArrayViewD<'_, f64>, _input_index: usize, mut grad_input: ArrayViewMutD<'_, f64>) {
///         ndarray::Zip::from(&mut grad_input).and(&inputs[0]).and(&grad_output)
///             .for_each(|gx, &x, &gy| *gx += gy * 3.0 * x * x);
///     }
/// }
/// ```
pub trait CustomOp<E: Float>: Send + Sync {
    /// The op's name, used in error messages.
    fn name(&self) -> &str;

    /// How many inputs the op takes.
    fn arity(&self) -> usize;

    /// The output's shape for these input shapes, or an error naming the op and the shapes.
    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape>;

    /// Computes the output into `out`, which has the shape `output_shape` returned.
    fn forward(&self, inputs: &[ArrayViewD<'_, E>], out: ArrayViewMutD<'_, E>) -> Result<()>;

    /// Adds `grad_output`'s pull-back through input `input_index` to `grad_input`.
    fn vjp(
        &self,
        inputs: &[ArrayViewD<'_, E>],
        output: ArrayViewD<'_, E>,
        grad_output: ArrayViewD<'_, E>,
        input_index: usize,
        grad_input: ArrayViewMutD<'_, E>,
    );

    /// Records `grad_output`'s pull-back through input `input_index` with built-in ops, so
    /// that the op's gradient can be differentiated again (`Tape::record_grad`): the same rule
    /// as [`vjp`](CustomOp::vjp), written with `recorder.record(op, &[...])`, returning the
    /// node of the input's gradient (of the input's shape). The default has none, and a
    /// recorded sweep through the op is then [`Error::NotTwiceDifferentiable`], naming it.
    ///
    /// ```
    /// use wengert_ops::{BinaryOp, Op, RecordedNode, Result, UnaryOp, VjpRecorder};
    /// // y = x³: dx = dy · 3x², recorded
    /// fn record_cube_vjp(
    ///     recorder: &mut dyn VjpRecorder<f64>,
    ///     inputs: &[RecordedNode],
    ///     grad_output: RecordedNode,
    /// ) -> Result<RecordedNode> {
    ///     let x = inputs[0];
    ///     let sq = recorder.record(Op::Binary(BinaryOp::Mul), &[x, x])?;
    ///     let three_sq = recorder.record(Op::Unary(UnaryOp::MulScalar(3.0)), &[sq])?;
    ///     recorder.record(Op::Binary(BinaryOp::Mul), &[grad_output, three_sq])
    /// }
    /// ```
    fn record_vjp(
        &self,
        recorder: &mut dyn VjpRecorder<E>,
        inputs: &[RecordedNode],
        output: RecordedNode,
        grad_output: RecordedNode,
        input_index: usize,
    ) -> Result<RecordedNode> {
        let _ = (recorder, inputs, output, grad_output, input_index);
        Err(Error::NotTwiceDifferentiable {
            op: self.name().to_string(),
        })
    }
}

/// A node as a custom op's [recorded VJP](CustomOp::record_vjp) sees it: a handle the
/// [`VjpRecorder`] gave out (the op's inputs, output and output gradient, and each node it
/// recorded), meaningful to that recorder only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedNode(usize);

impl RecordedNode {
    /// The handle numbered `index` by its recorder.
    pub fn new(index: usize) -> Self {
        RecordedNode(index)
    }

    /// The handle's number.
    pub fn index(self) -> usize {
        self.0
    }
}

/// What a custom op's [recorded VJP](CustomOp::record_vjp) records built-in ops with: the tape,
/// behind handles.
pub trait VjpRecorder<E: Float> {
    /// Records `op` on `inputs` and returns the new node's handle.
    fn record(&mut self, op: Op, inputs: &[RecordedNode]) -> Result<RecordedNode>;
}
