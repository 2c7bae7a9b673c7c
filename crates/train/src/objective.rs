//! A loss given as a closure: [`Batch`], what it sees of the batch it scores, and
//! [`Objective`], the one way the trainer records a batch's loss, built-in or not.

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Loss, Mode, Result};

/// A loss given as a closure, as [`Trainer::with_loss_fn`](crate::Trainer::with_loss_fn)
/// takes it: from the tape, the model's output node and the [`Batch`], the node of the batch's
/// loss (one element).
pub type LossFn<'a, E> = dyn FnMut(&mut Tape<E>, NodeId, &Batch<'_>) -> Result<NodeId> + 'a;

/// What a loss closure sees of the (micro-)batch it scores, besides the model's output: the
/// targets already on the tape, the parameters' nodes (for a penalty on the weights), and which
/// examples these are.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::Tape;
/// use wengert_train::{Adam, Batch, Dataset, Loss, Mlp, TrainConfig, Trainer};
///
/// let data = Dataset::regression(array![[0.0f64], [1.0], [2.0]], array![[1.0], [3.0], [5.0]])?;
/// let mut model = Mlp::builder(&[1, 1]).seed(0).build()?;
/// let config = TrainConfig { epochs: 2, batch_size: 3, loss: Loss::Mse, ..TrainConfig::default() };
/// let mut seen = Vec::new();
/// let mut trainer = Trainer::new(config, Adam::new(0.1)?).with_loss_fn(
///     |tape: &mut Tape<f64>, output, batch: &Batch<'_>| {
///         seen.push((batch.len(), batch.parameters().len(), batch.mode().is_training()));
///         Ok(tape.mse(output, batch.target())?)
///     },
/// );
/// trainer.fit(&mut model, &data, None)?;
/// drop(trainer);
/// // One step an epoch, on the 3 examples, with the weight and the bias (no validation set:
/// // no evaluation pass).
/// assert_eq!(seen, [(3, 2, true), (3, 2, true)]);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batch<'b> {
    pub(crate) target: NodeId,
    pub(crate) labels: Option<&'b [usize]>,
    pub(crate) parameters: &'b [NodeId],
    pub(crate) indices: &'b [usize],
    pub(crate) mode: Mode,
}

impl<'b> Batch<'b> {
    /// The targets' node: the class labels (a labels node, as
    /// [`Tape::cross_entropy`] takes them) for a classification set, the target values
    /// (`[examples, outputs]`) for a regression.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// The class labels, one per example, for a classification set.
    pub fn labels(&self) -> Option<&'b [usize]> {
        self.labels
    }

    /// The nodes of the model's parameters, in [`Module::parameters`](crate::Module::parameters)
    /// order (the order of [`Module::parameter_names`](crate::Module::parameter_names)).
    pub fn parameters(&self) -> &'b [NodeId] {
        self.parameters
    }

    /// The examples' positions in the data set.
    pub fn indices(&self) -> &'b [usize] {
        self.indices
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no example (the trainer never scores such a batch).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The mode of the forward pass that made the output: training for a step's batches,
    /// evaluation for validation and [`Trainer::evaluate`](crate::Trainer::evaluate).
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// How a batch's loss is recorded: a built-in [`Loss`] or the user's closure.
pub(crate) enum Objective<'f, 'a, E: Float> {
    Builtin(Loss),
    Custom(&'f mut LossFn<'a, E>),
}

impl<'f, 'a, E: Float> Objective<'f, 'a, E> {
    /// The objective of a trainer: its closure if it has one, else its configured loss.
    pub(crate) fn of(loss: Loss, custom: &'f mut Option<Box<LossFn<'a, E>>>) -> Self {
        match custom {
            Some(f) => Objective::Custom(f.as_mut()),
            None => Objective::Builtin(loss),
        }
    }

    /// Records the loss of `output` on `batch`, and checks that it is one number and, in a
    /// training pass, that it depends on the parameters.
    pub(crate) fn record(
        &mut self,
        tape: &mut Tape<E>,
        output: NodeId,
        batch: &Batch<'_>,
    ) -> Result<NodeId> {
        let loss = match self {
            Objective::Builtin(loss) => loss.record(tape, output, batch.target)?,
            Objective::Custom(f) => f(tape, output, batch)?,
        };
        let shape = tape.shape(loss)?;
        if shape.numel() != 1 {
            return Err(Error::Model(format!(
                "the loss function returned a node of shape {:?}; a loss is one number (reduce \
                 it with `sum` or `mean`)",
                shape.dims()
            )));
        }
        if batch.mode.is_training() && !tape.requires_grad(loss)? {
            return Err(Error::Model(
                "the loss function returned a node that depends on no parameter (from the \
                 targets or inputs alone, or detached): there is nothing to train"
                    .into(),
            ));
        }
        Ok(loss)
    }

    /// The objective to record per chunk when a data set is evaluated in chunks whose values
    /// are averaged: MSE for RMSE (whose root the sum takes of the whole set's mean, see
    /// [`Loss::per_chunk`]), else this one; a closure's chunks are taken as they are.
    pub(crate) fn per_chunk(&mut self) -> Objective<'_, 'a, E> {
        match self {
            Objective::Builtin(loss) => Objective::Builtin(loss.per_chunk().0),
            Objective::Custom(f) => Objective::Custom(&mut **f),
        }
    }

    /// The built-in loss, if that is what this is.
    pub(crate) fn builtin(&self) -> Option<Loss> {
        match self {
            Objective::Builtin(loss) => Some(*loss),
            Objective::Custom(_) => None,
        }
    }
}

/// The name a state records for a run's loss: the built-in loss's, or `custom` for a closure
/// (which cannot be saved).
pub(crate) fn loss_name(loss: Loss, custom: bool) -> &'static str {
    if custom { CUSTOM } else { loss.name() }
}

/// The name of a loss given as a closure.
pub(crate) const CUSTOM: &str = "custom";

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn batch(target: NodeId, parameters: &[NodeId]) -> Batch<'_> {
        Batch {
            target,
            labels: None,
            parameters,
            indices: &[0, 1],
            mode: Mode::Evaluation,
        }
    }

    #[test]
    fn a_closure_that_returns_more_than_one_number_is_refused_by_shape() {
        let mut tape = Tape::<f64>::new();
        let w = tape.parameter(array![[1.0], [-2.0]]).unwrap();
        let t = tape.input(array![[0.0], [0.0]]).unwrap();
        let mut f = |tape: &mut Tape<f64>, out: NodeId, b: &Batch<'_>| -> Result<NodeId> {
            Ok(tape.sub(out, b.target())?)
        };
        let err = Objective::Custom(&mut f)
            .record(&mut tape, w, &batch(t, &[w]))
            .unwrap_err();
        assert!(err.to_string().contains("shape [2, 1]"), "{err}");
    }

    #[test]
    fn the_builtin_and_a_closure_of_the_same_expression_give_the_same_node_value() {
        let mut tape = Tape::<f64>::new();
        let w = tape.parameter(array![[1.0], [-2.0]]).unwrap();
        let t = tape.input(array![[0.5], [0.0]]).unwrap();
        let b = batch(t, &[]);
        let builtin = Objective::<f64>::Builtin(Loss::Rmse)
            .record(&mut tape, w, &b)
            .unwrap();
        let mut f = |tape: &mut Tape<f64>, out: NodeId, b: &Batch<'_>| -> Result<NodeId> {
            Ok(Loss::Rmse.record(tape, out, b.target())?)
        };
        let mut custom = Objective::Custom(&mut f);
        let by_closure = custom.record(&mut tape, w, &b).unwrap();
        assert_eq!(tape.item(builtin).unwrap(), tape.item(by_closure).unwrap());
        // RMSE's chunks are recorded as MSE and rooted; a closure's as they are.
        assert!(custom.per_chunk().builtin().is_none());
        let mut rmse = Objective::<f64>::Builtin(Loss::Rmse);
        assert_eq!(rmse.per_chunk().builtin(), Some(Loss::Mse));
        assert_eq!(loss_name(Loss::Mse, true), "custom");
        assert_eq!(loss_name(Loss::Mse, false), "mse");
    }
}
