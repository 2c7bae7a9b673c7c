//! [`Module`]: what the trainer needs of a model (a forward pass, its parameters and buffers),
//! and what a model offers besides: names, evaluation and training passes without a trainer.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{IntoValue, NodeId, Tape};

use crate::names::zip_named;
use crate::{BufferUpdates, Error, Mode, ParameterIds, Result};

/// A model the [`Trainer`](crate::Trainer) can train: a forward pass recorded on a tape, and
/// the parameters it owns (PyTorch's `nn.Module`).
///
/// The parameters live on the tape while a model trains: the trainer records each one once
/// (in the order [`parameters`](Module::parameters) lists them), and every step hands
/// `forward` their nodes through a [`ParameterIds`], which it takes in that same order with
/// [`ParameterIds::next`]. The optimiser updates the parameters on the tape, and the trainer
/// writes them back into the model when an epoch ends and when training stops. So `forward`
/// records no parameter of its own, and takes every id it is given: the trainer refuses a
/// model that does otherwise.
///
/// The same [`ParameterIds`] tells `forward` whether the pass trains or evaluates
/// ([`ParameterIds::is_training`]) and gives stochastic layers their seeds
/// ([`ParameterIds::next_seed`]). Besides its parameters, a model may hold buffers: arrays
/// that are part of its state but not trained (running statistics), saved with it. A pass is
/// handed their nodes too, taken in [`buffers`](Module::buffers) order with
/// [`ParameterIds::next_buffer`] (every one of them, as the parameters); a training pass that
/// moves a buffer records its new value as an ordinary node and registers it with
/// [`ParameterIds::update_buffer`], and the trainer copies it into the buffer after the step
/// ([`BatchNorm1d`](crate::BatchNorm1d) does so). Names
/// ([`parameter_names`](Module::parameter_names), [`buffer_names`](Module::buffer_names))
/// are dotted paths such as `layers.0.weight`; by default `param.<i>` and `buffer.<i>`.
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
/// // Or, for the outputs alone, `predict` (a pass in evaluation mode on a tape of its own).
/// assert_eq!(model.predict(&array![[1.0, 1.0], [1.0, 0.0]])?, array![[5.0], [2.0]].into_dyn());
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub trait Module<E: Float> {
    /// Records the forward pass of the batch `x` (`[batch, features]` for the trainer's
    /// data; any shape a model accepts) and returns the output node (`[batch, outputs]`:
    /// logits for a classifier, predictions for a regression), taking each parameter's node
    /// from `params`, in [`parameters`](Module::parameters) order, in the mode `params`
    /// gives.
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId>;

    /// The parameters, in the order `forward` takes them (none by default: a layer such as
    /// an activation needs only `forward`).
    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        Vec::new()
    }

    /// The parameters, mutably, in the same order.
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        Vec::new()
    }

    /// The parameters' names, in the same order (default `param.0`, `param.1`, ...). A
    /// module holding others gives theirs under its own names for them, with
    /// [`prefixed`](crate::prefixed): `layers.0.weight`.
    fn parameter_names(&self) -> Vec<String> {
        numbered("param", self.parameters().len())
    }

    /// The buffers: arrays of the model's state that are not trained, such as running
    /// statistics (none by default).
    fn buffers(&self) -> Vec<ArrayViewD<'_, E>> {
        Vec::new()
    }

    /// The buffers, mutably, in the same order.
    fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        Vec::new()
    }

    /// The buffers' names, in the same order (default `buffer.0`, `buffer.1`, ...).
    fn buffer_names(&self) -> Vec<String> {
        numbered("buffer", self.buffers().len())
    }

    /// The number of scalar parameters.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.len()).sum()
    }

    /// The parameters with their names, in order; an error if the model names a different
    /// number of parameters than it lists, or gives two the same name.
    fn named_parameters(&self) -> Result<Vec<(String, ArrayViewD<'_, E>)>> {
        zip_named("parameter", self.parameter_names(), self.parameters())
    }

    /// The buffers with their names, in order, checked as in
    /// [`named_parameters`](Module::named_parameters).
    fn named_buffers(&self) -> Result<Vec<(String, ArrayViewD<'_, E>)>> {
        zip_named("buffer", self.buffer_names(), self.buffers())
    }

    /// Records the parameters on `tape` (copying them in, after whatever the tape holds), and
    /// the buffers as inputs, then the forward pass of `x` in [`Mode::Evaluation`]: for a one-off pass outside a
    /// [`Trainer`](crate::Trainer), or to record the model into a larger graph.
    fn apply(&self, tape: &mut Tape<E>, x: NodeId) -> Result<NodeId> {
        self.apply_with(tape, x, Mode::Evaluation)
    }

    /// [`apply`](Module::apply) in `mode`: [`Mode::Training`] with a seed for a training
    /// pass of a loop of one's own. The buffers are recorded as inputs (copied in) after the
    /// parameters; a training pass's new values for them (batch norm's running statistics)
    /// are computed on the tape but not kept, the model being borrowed: see
    /// [`apply_training`](Module::apply_training) to keep them.
    fn apply_with(&self, tape: &mut Tape<E>, x: NodeId, mode: Mode) -> Result<NodeId> {
        apply_recording(self, tape, x, mode, &mut BufferUpdates::new())
    }

    /// A training pass of a loop of one's own with the seed `seed`
    /// ([`apply_with`](Module::apply_with) in [`Mode::Training`]), after which the model's
    /// buffers hold the new values the pass gave them (PyTorch's `model.train()` then
    /// `model(x)`: batch norm's running statistics move once per call). The tape keeps its
    /// own copies, so the backward pass that follows is unaffected.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    /// use wengert_train::{BatchNorm1d, Module};
    ///
    /// let mut norm = BatchNorm1d::<f64>::new(1)?;
    /// let mut tape = Tape::new();
    /// let x = tape.input(array![[1.0], [3.0]])?;
    /// norm.apply_training(&mut tape, x, 0)?;
    /// // Momentum 0.1 from (0, 1) towards the batch's mean 2 and unbiased variance 2.
    /// assert_eq!(norm.running_mean().to_vec(), [0.2]);
    /// assert!((norm.running_var()[0] - 1.1).abs() < 1e-15);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    fn apply_training(&mut self, tape: &mut Tape<E>, x: NodeId, seed: u64) -> Result<NodeId>
    where
        Self: Sized,
    {
        let mut updates = BufferUpdates::new();
        let y = apply_recording(self, tape, x, Mode::Training { seed }, &mut updates)?;
        write_buffers(self, tape, &updates)?;
        Ok(y)
    }

    /// The model's output for the batch `x` (any array or view, copied in), computed in
    /// [`Mode::Evaluation`] without recording gradients, on a tape of its own: inference
    /// without a [`Trainer`](crate::Trainer).
    fn predict(&self, x: impl IntoValue<E>) -> Result<ArrayD<E>>
    where
        Self: Sized,
    {
        let mut tape = Tape::new();
        tape.no_grad(|tape| {
            let x = tape.input(x)?;
            let y = self.apply(tape, x)?;
            Ok(tape.value_owned(y)?)
        })
    }
}

/// `prefix.0`, `prefix.1`, ... : the names of tensors a model does not name itself.
fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}.{i}")).collect()
}

/// Records `model`'s parameters and buffers on `tape`, then its forward pass of `x` in
/// `mode`, the pass's buffer updates left in `updates`.
fn apply_recording<E: Float, M: Module<E> + ?Sized>(
    model: &M,
    tape: &mut Tape<E>,
    x: NodeId,
    mode: Mode,
    updates: &mut BufferUpdates,
) -> Result<NodeId> {
    let ids = record_parameters(model, tape)?;
    let buffers = record_buffers(model, tape)?;
    let mut params = ParameterIds::with_mode(&ids, mode).with_buffers(&buffers, updates);
    let y = model.forward(tape, &mut params, x)?;
    params.finish()?;
    Ok(y)
}

/// Records `model`'s buffers on `tape` as inputs (no gradient), in order, and returns their
/// ids.
pub(crate) fn record_buffers<E: Float, M: Module<E> + ?Sized>(
    model: &M,
    tape: &mut Tape<E>,
) -> Result<Vec<NodeId>> {
    let mut ids = Vec::new();
    for b in model.buffers() {
        ids.push(tape.input(b)?);
    }
    Ok(ids)
}

/// Copies each buffer's new value in `updates` from `tape` into `model`'s buffers, checking
/// that the model lists the buffer and that the value has its shape.
pub(crate) fn write_buffers<E: Float, M: Module<E> + ?Sized>(
    model: &mut M,
    tape: &Tape<E>,
    updates: &BufferUpdates,
) -> Result<()> {
    let mut buffers = model.buffers_mut();
    for (index, node) in updates.iter() {
        let value = tape.value(node)?;
        let Some(buffer) = buffers.get_mut(index) else {
            return Err(Error::Model(format!(
                "a pass updated buffer {index}, but the model lists {}",
                buffers.len()
            )));
        };
        if buffer.shape() != value.shape() {
            return Err(Error::Model(format!(
                "buffer {index} has shape {:?}, but the pass gave it a value of shape {:?}",
                buffer.shape(),
                value.shape()
            )));
        }
        buffer.assign(&value);
    }
    Ok(())
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
