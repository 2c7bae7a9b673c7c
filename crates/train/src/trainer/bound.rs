//! [`BoundModel`]: a model's parameters recorded once on a tape, and the recordings of its
//! batches after them.

use ndarray::ArrayView2;
use wengert_ops::{Float, Shape};
use wengert_tape::{Mark, NodeId, Tape};

use crate::metrics::argmax;
use crate::module::record_parameters;
use crate::objective::{Batch, Objective};
use crate::{Dataset, Error, Mode, Module, ParameterIds, Result};

/// A tape holding a model's parameters: recorded first on a cleared tape (so that parameter `i`
/// is node `i`), then a mark every batch rewinds to. The buffers a batch needs are kept here
/// and reused, so that recording a batch allocates nothing once they are sized.
#[derive(Debug)]
pub(crate) struct BoundModel<E: Float> {
    pub(crate) tape: Tape<E>,
    /// Where the parameters are, apart from the tape so that both can be borrowed at once
    /// (in [`Tape::no_grad`]'s closure).
    pub(crate) at: Binding,
}

/// The parameters' place on a [`BoundModel`]'s tape, and the batch's reused labels.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) ids: Vec<NodeId>,
    pub(crate) shapes: Vec<Shape>,
    pub(crate) mark: Mark,
    /// The labels of the batch being recorded.
    pub(crate) labels: Vec<usize>,
}

/// One batch's forward pass and loss on the tape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded {
    pub(crate) output: NodeId,
    pub(crate) loss: NodeId,
}

impl<E: Float> BoundModel<E> {
    /// An empty tape, bound to no model yet.
    pub(crate) fn new() -> Self {
        let tape = Tape::new();
        let mark = tape.mark();
        BoundModel {
            tape,
            at: Binding {
                ids: Vec::new(),
                shapes: Vec::new(),
                mark,
                labels: Vec::new(),
            },
        }
    }

    /// Records `model`'s parameters on the cleared tape and marks the point after them.
    pub(crate) fn bind<M: Module<E>>(&mut self, model: &M) -> Result<()> {
        self.tape.clear();
        let at = &mut self.at;
        at.ids = record_parameters(model, &mut self.tape)?;
        at.shapes.clear();
        for &id in &at.ids {
            at.shapes.push(self.tape.shape(id)?);
        }
        at.mark = self.tape.mark();
        Ok(())
    }

    /// The number of parameters' elements, all together.
    pub(crate) fn parameter_count(&self) -> usize {
        self.at.shapes.iter().map(Shape::numel).sum()
    }

    /// Copies the parameters living on the tape back into `model`.
    pub(crate) fn write_back<M: Module<E>>(&self, model: &mut M) -> Result<()> {
        let mut params = model.parameters_mut();
        if params.len() != self.at.ids.len() {
            return Err(Error::Model(format!(
                "the model lists {} parameters, but {} when training began",
                params.len(),
                self.at.ids.len()
            )));
        }
        for (p, &id) in params.iter_mut().zip(&self.at.ids) {
            let value = self.tape.value(id)?;
            if p.shape() != value.shape() {
                return Err(Error::Model(format!(
                    "a parameter of shape {:?} on the tape cannot go back into one of shape {:?}",
                    value.shape(),
                    p.shape()
                )));
            }
            p.assign(&value);
        }
        Ok(())
    }

    /// [`Binding::record_batch`] on this tape.
    pub(crate) fn record_batch<M: Module<E>>(
        &mut self,
        model: &M,
        objective: &mut Objective<'_, '_, E>,
        data: &Dataset<E>,
        indices: &[usize],
        mode: Mode,
    ) -> Result<Recorded> {
        self.at
            .record_batch(&mut self.tape, model, objective, data, indices, mode)
    }

    /// A recorded batch's loss, as `f64`.
    pub(crate) fn loss_value(&self, recorded: Recorded) -> Result<f64> {
        Ok(Float::to_f64(self.tape.item(recorded.loss)?))
    }

    /// How many rows of the batch's output pick their label (0 for a regression, whose
    /// `data` has no classes); allocates nothing.
    pub(crate) fn hits(&self, data: &Dataset<E>, recorded: Recorded) -> Result<usize> {
        if data.classes().is_none() {
            return Ok(0);
        }
        let scores = output_view(&self.tape, recorded.output)?;
        Ok(scores
            .rows()
            .into_iter()
            .zip(&self.at.labels)
            .filter(|(row, l)| argmax(*row) == **l)
            .count())
    }
}

impl Binding {
    /// Rewinds `tape` to the mark and records the forward pass in `mode` and the
    /// `objective` of the examples of `data` at `indices` (their labels gathered into
    /// [`labels`](Binding::labels)). The targets go on the tape as `data` holds them: labels
    /// for a classification set, values for a regression (a built-in loss has been checked
    /// to fit them).
    pub(crate) fn record_batch<E: Float, M: Module<E>>(
        &mut self,
        tape: &mut Tape<E>,
        model: &M,
        objective: &mut Objective<'_, '_, E>,
        data: &Dataset<E>,
        indices: &[usize],
        mode: Mode,
    ) -> Result<Recorded> {
        data.gather_labels(indices, &mut self.labels);
        tape.rewind(self.mark)?;
        let x = tape.input(data.feature_rows(indices))?;
        let output = self.forward(tape, model, x, mode)?;
        let target = match data.target_rows(indices) {
            Some(values) => tape.input(values)?,
            None => tape.labels(&self.labels)?,
        };
        let batch = Batch {
            target,
            labels: data.classes().map(|_| &self.labels[..]),
            parameters: &self.ids,
            indices,
            mode,
        };
        let loss = objective.record(tape, output, &batch)?;
        Ok(Recorded { output, loss })
    }

    /// Records `model`'s forward pass of `x` in `mode`, and checks that it took every one of
    /// its parameters from the tape and recorded none of its own.
    pub(crate) fn forward<E: Float, M: Module<E>>(
        &self,
        tape: &mut Tape<E>,
        model: &M,
        x: NodeId,
        mode: Mode,
    ) -> Result<NodeId> {
        let mut params = ParameterIds::with_mode(&self.ids, mode);
        let output = model.forward(tape, &mut params, x)?;
        params.finish()?;
        let recorded = tape.parameters().count();
        if recorded != self.ids.len() {
            return Err(Error::Model(format!(
                "the tape holds {recorded} parameters but the model lists {}: forward must take \
                 its parameters from the ids it is given, not record its own",
                self.ids.len()
            )));
        }
        Ok(output)
    }
}

/// A node's value as a matrix, or an error if the model's output is not one.
pub(crate) fn output_view<E: Float>(tape: &Tape<E>, output: NodeId) -> Result<ArrayView2<'_, E>> {
    let shape = tape.shape(output)?;
    if shape.rank() != 2 {
        return Err(Error::Model(format!(
            "the model's output has shape {:?}; expected [batch, outputs]",
            shape.dims()
        )));
    }
    let dims = shape.dims();
    Ok(ArrayView2::from_shape((dims[0], dims[1]), tape.data(output)?).expect("sized by its shape"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Init, Linear, Rng};
    use ndarray::array;

    /// A layer whose forward pass records a parameter of its own instead of taking it.
    struct Sneaky(Linear<f64>);

    impl Module<f64> for Sneaky {
        fn forward(
            &self,
            tape: &mut Tape<f64>,
            params: &mut ParameterIds<'_>,
            x: NodeId,
        ) -> Result<NodeId> {
            let out = self.0.forward(tape, params, x)?;
            let extra = tape.parameter(array![[1.0]])?;
            Ok(tape.mul(out, extra)?)
        }

        fn parameters(&self) -> Vec<ndarray::ArrayViewD<'_, f64>> {
            self.0.parameters()
        }

        fn parameters_mut(&mut self) -> Vec<ndarray::ArrayViewMutD<'_, f64>> {
            self.0.parameters_mut()
        }
    }

    fn mse() -> Objective<'static, 'static, f64> {
        Objective::Builtin(crate::Loss::Mse)
    }

    fn layer() -> Linear<f64> {
        Linear::new(2, 1, Init::GlorotUniform, &mut Rng::seed_from_u64(0)).unwrap()
    }

    #[test]
    fn a_batch_is_recorded_after_the_parameters_and_rewinds_to_them() {
        let data =
            Dataset::regression(array![[1.0, 2.0], [3.0, 4.0]], array![[1.0], [0.0]]).unwrap();
        let model = layer();
        let mut bound = BoundModel::new();
        bound.bind(&model).unwrap();
        assert_eq!(bound.parameter_count(), 3);
        let first = bound
            .record_batch(&model, &mut mse(), &data, &[0, 1], Mode::Evaluation)
            .unwrap();
        let len = bound.tape.len();
        let again = bound
            .record_batch(&model, &mut mse(), &data, &[1, 0], Mode::Evaluation)
            .unwrap();
        assert_eq!(bound.tape.len(), len, "a batch re-records from the mark");
        // The same positions (a rewind makes new ids for them).
        assert_eq!(first.loss.index(), again.loss.index());
        assert_ne!(first.loss, again.loss);
        assert_eq!(bound.hits(&data, again).unwrap(), 0);
    }

    #[test]
    fn a_model_that_records_its_own_parameters_or_changes_its_list_is_refused() {
        let data = Dataset::regression(array![[1.0, 2.0]], array![[1.0]]).unwrap();
        let model = Sneaky(layer());
        let mut bound = BoundModel::new();
        bound.bind(&model).unwrap();
        let err = bound
            .record_batch(&model, &mut mse(), &data, &[0], Mode::Evaluation)
            .unwrap_err();
        assert!(err.to_string().contains("not record its own"), "{err}");

        let mut other = crate::Mlp::<f64>::builder(&[2, 2, 1]).build().unwrap();
        let err = bound.write_back(&mut other).unwrap_err();
        assert!(
            err.to_string().contains("lists 4 parameters, but 2"),
            "{err}"
        );
    }
}
