//! [`Module`]: what the trainer needs of a model.

use ndarray::{ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

/// A model the [`Trainer`](crate::Trainer) can train: a forward pass recorded on a tape, and
/// the parameters it owns.
///
/// The contract: `forward` records each parameter exactly once with
/// [`Tape::parameter`] (copying it in, `tape.parameter(&self.w)`), in the order `parameters`
/// lists them, and records no other parameter. The trainer checks the count and the shapes
/// and refuses a model that breaks it.
///
/// ```
/// use ndarray::{Array2, ArrayViewD, ArrayViewMutD};
/// use wengert_tape::{NodeId, Tape};
/// use wengert_train::Module;
///
/// /// y = x·w, no bias.
/// struct Scale { w: Array2<f64> }
///
/// impl Module<f64> for Scale {
///     fn forward(&self, tape: &mut Tape<f64>, x: NodeId) -> wengert_ops::Result<NodeId> {
///         let w = tape.parameter(&self.w)?;
///         tape.matmul(x, w)
///     }
///     fn parameters(&self) -> Vec<ArrayViewD<'_, f64>> { vec![self.w.view().into_dyn()] }
///     fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f64>> {
///         vec![self.w.view_mut().into_dyn()]
///     }
/// }
/// ```
pub trait Module<E: Float> {
    /// Records the forward pass of the batch `x` (`[batch, features]`) and returns the output
    /// node (`[batch, outputs]`: logits for a classifier, predictions for a regression).
    fn forward(&self, tape: &mut Tape<E>, x: NodeId) -> wengert_ops::Result<NodeId>;

    /// The parameters, in the order `forward` records them.
    fn parameters(&self) -> Vec<ArrayViewD<'_, E>>;

    /// The parameters, mutably, in the same order.
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>>;

    /// The number of scalar parameters.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.len()).sum()
    }
}
