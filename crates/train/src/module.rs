//! [`Module`]: what the trainer needs of a model, and [`ParameterIds`], the parameters' nodes
//! it hands to the forward pass.

use ndarray::{ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Result};

/// A model the [`Trainer`](crate::Trainer) can train: a forward pass recorded on a tape, and
/// the parameters it owns.
///
/// The parameters live on the tape while a model trains: the trainer records each one once
/// (in the order [`parameters`](Module::parameters) lists them), and every step hands
/// `forward` their nodes through a [`ParameterIds`], which it takes in that same order with
/// [`ParameterIds::next`]. The optimiser updates the parameters on the tape, and the trainer
/// writes them back into the model when an epoch ends and when training stops. So `forward`
/// records no parameter of its own, and takes every id it is given: the trainer refuses a
/// model that does otherwise.
///
/// ```
/// use ndarray::{array, Array2, ArrayViewD, ArrayViewMutD};
/// use wengert_tape::{NodeId, Tape};
/// use wengert_train::{Module, ParameterIds};
///
/// /// y = x·w, no bias.
/// struct Scale { w: Array2<f64> }
///
/// impl Module<f64> for Scale {
///     fn forward(
///         &self,
///         tape: &mut Tape<f64>,
///         params: &mut ParameterIds<'_>,
///         x: NodeId,
///     ) -> wengert_train::Result<NodeId> {
///         let w = params.next()?;
///         Ok(tape.matmul(x, w)?)
///     }
///     fn parameters(&self) -> Vec<ArrayViewD<'_, f64>> { vec![self.w.view().into_dyn()] }
///     fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f64>> {
///         vec![self.w.view_mut().into_dyn()]
///     }
/// }
///
/// // Outside a trainer, `apply` records the parameters (copied in), then the forward pass.
/// let model = Scale { w: array![[2.0], [3.0]] };
/// let mut tape = Tape::new();
/// let x = tape.input(array![[1.0, 1.0]])?;
/// let y = model.apply(&mut tape, x)?;
/// assert_eq!(tape.data(y)?, &[5.0]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub trait Module<E: Float> {
    /// Records the forward pass of the batch `x` (`[batch, features]`) and returns the output
    /// node (`[batch, outputs]`: logits for a classifier, predictions for a regression),
    /// taking each parameter's node from `params`, in [`parameters`](Module::parameters)
    /// order.
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId>;

    /// The parameters, in the order `forward` takes them.
    fn parameters(&self) -> Vec<ArrayViewD<'_, E>>;

    /// The parameters, mutably, in the same order.
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>>;

    /// The number of scalar parameters.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.len()).sum()
    }

    /// Records the parameters on `tape` (copying them in, after whatever the tape holds),
    /// then the forward pass of `x`: for a one-off pass outside a [`Trainer`](crate::Trainer),
    /// or to record the model into a larger graph.
    fn apply(&self, tape: &mut Tape<E>, x: NodeId) -> Result<NodeId> {
        let ids = record_parameters(self, tape)?;
        let mut params = ParameterIds::new(&ids);
        let y = self.forward(tape, &mut params, x)?;
        params.finish()?;
        Ok(y)
    }
}

/// Records `model`'s parameters on `tape`, in order, and returns their ids.
pub(crate) fn record_parameters<E: Float, M: Module<E> + ?Sized>(
    model: &M,
    tape: &mut Tape<E>,
) -> Result<Vec<NodeId>> {
    let mut ids = Vec::new();
    for p in model.parameters() {
        ids.push(tape.parameter(p)?);
    }
    Ok(ids)
}

/// The nodes of a model's parameters, handed to [`Module::forward`] to take one by one, in
/// [`Module::parameters`] order. A model built from others hands the same `ParameterIds` to
/// each part in turn.
#[derive(Debug)]
pub struct ParameterIds<'a> {
    ids: &'a [NodeId],
    taken: usize,
}

impl<'a> ParameterIds<'a> {
    /// The parameters at `ids`, none taken yet.
    pub fn new(ids: &'a [NodeId]) -> Self {
        ParameterIds { ids, taken: 0 }
    }

    /// The next parameter's node, or an error if the model has taken them all.
    #[allow(
        clippy::should_implement_trait,
        reason = "a model takes its parameters with `?`: running out is an error, not the end"
    )]
    pub fn next(&mut self) -> Result<NodeId> {
        let id = self.ids.get(self.taken).copied().ok_or_else(|| {
            Error::Model(format!(
                "forward took more parameters than the {} its model lists",
                self.ids.len()
            ))
        })?;
        self.taken += 1;
        Ok(id)
    }

    /// How many have been taken.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Checks that every parameter was taken.
    pub fn finish(&self) -> Result<()> {
        if self.taken != self.ids.len() {
            return Err(Error::Model(format!(
                "forward took {} parameters but the model lists {}",
                self.taken,
                self.ids.len()
            )));
        }
        Ok(())
    }
}
