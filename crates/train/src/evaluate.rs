//! Evaluation: a model's loss on a data set, and for a classifier its accuracy and confusion
//! matrix, summed chunk by chunk. [`evaluate`] runs a [`Module`]; [`EvaluationSum`] takes the
//! chunks of outputs of anything else (a replayed tape, another engine's scores), so that every
//! evaluation computes its figures the same way.

use ndarray::ArrayView2;
use wengert_ops::Float;
use wengert_tape::Tape;

use crate::metrics::argmax;
use crate::objective::Objective;
use crate::trainer::bound::{BoundModel, output_view};
use crate::{ConfusionMatrix, Dataset, Error, Loss, Mode, Module, Result, Targets};

/// A model's loss (and, for a classifier, accuracy and confusion matrix) on a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The mean loss over the examples (for RMSE, the root of the mean squared error).
    pub loss: f64,
    /// The fraction classified right (classifiers).
    pub accuracy: Option<f64>,
    /// Actual against predicted classes (classifiers).
    pub confusion: Option<ConfusionMatrix>,
}

/// `model`'s [`Evaluation`] on `data` under `loss`, computed under [`Tape::no_grad`] on a tape
/// of its own, in chunks of `chunk` examples (which change the work's size, not the result).
///
/// ```
/// use ndarray::array;
/// use wengert_train::{evaluate, Dataset, Init, Linear, Loss, Rng};
///
/// let x = array![[1.0f64], [2.0]];
/// let data = Dataset::regression(x, array![[2.0], [5.0]])?;
/// let mut model = Linear::new(1, 1, Init::Zeros, &mut Rng::seed_from_u64(0))?;
/// model.weight.fill(2.0);
/// // Errors 0 and 1: MSE 0.5, RMSE √0.5.
/// assert_eq!(evaluate(&model, &data, Loss::Mse, 1)?.loss, 0.5);
/// assert_eq!(evaluate(&model, &data, Loss::Rmse, 1)?.loss, 0.5f64.sqrt());
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub fn evaluate<E: Float, M: Module<E>>(
    model: &M,
    data: &Dataset<E>,
    loss: Loss,
    chunk: usize,
) -> Result<Evaluation> {
    check_targets(loss, data, "evaluation")?;
    let mut bound = BoundModel::new();
    bound.bind(model)?;
    evaluate_bound(&mut bound, model, data, Objective::Builtin(loss), chunk)
}

/// [`evaluate`] of a built-in loss or a closure, with the model's parameters already on
/// `bound`'s tape. A closure's chunks are averaged weighted by their examples, as a mean's.
pub(crate) fn evaluate_bound<E: Float, M: Module<E>>(
    bound: &mut BoundModel<E>,
    model: &M,
    data: &Dataset<E>,
    mut objective: Objective<'_, '_, E>,
    chunk: usize,
) -> Result<Evaluation> {
    let mut sum = match objective.builtin() {
        Some(loss) => EvaluationSum::new(loss, data.classes())?,
        None => EvaluationSum::of_means(data.classes()),
    };
    let mut per_chunk = objective.per_chunk();
    let indices: Vec<usize> = (0..data.len()).collect();
    for part in indices.chunks(chunk.max(1)) {
        let at = &mut bound.at;
        let per_chunk = &mut per_chunk;
        bound.tape.no_grad(|tape| -> Result<()> {
            let recorded = at.record_batch(tape, model, per_chunk, data, part, Mode::Evaluation)?;
            let mean = Float::to_f64(tape.item(recorded.loss)?);
            sum.add(mean, output_view(tape, recorded.output)?, &at.labels)
        })?;
    }
    Ok(sum.finish())
}

/// Checks that `data`'s targets are what `loss` takes: class labels for cross-entropy,
/// regression targets for the others. `what` names the set in the message.
pub(crate) fn check_targets<E: Float>(loss: Loss, data: &Dataset<E>, what: &str) -> Result<()> {
    let labels = matches!(data.targets(), Targets::Classes { .. });
    if labels == loss.is_classification() {
        return Ok(());
    }
    let (needs, has) = if labels {
        ("regression targets", "class labels")
    } else {
        ("class labels", "regression targets")
    };
    Err(Error::InvalidConfig(format!(
        "the {loss} loss needs {needs}, but the {what} set has {has}"
    )))
}

/// An [`Evaluation`] summed chunk by chunk: each chunk's mean loss weighted by its examples,
/// and for a classifier each row's predicted class (its largest output) against its label.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::Tape;
/// use wengert_train::{EvaluationSum, Loss};
///
/// // Scores from anywhere (here by hand), in two chunks.
/// let mut sum = EvaluationSum::new(Loss::CrossEntropy, Some(2))?;
/// let mut tape = Tape::<f32>::new();
/// sum.add_scores(&mut tape, array![[2.0, 0.0], [0.0, 1.0]].view(), &[0, 0])?;
/// sum.add_scores(&mut tape, array![[0.0, 3.0]].view(), &[1])?;
/// let eval = sum.finish();
/// assert_eq!(eval.accuracy, Some(2.0 / 3.0));
/// assert_eq!(eval.confusion.unwrap().get(0, 1), 1);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EvaluationSum {
    loss: Loss,
    loss_sum: f64,
    examples: usize,
    confusion: Option<ConfusionMatrix>,
}

impl EvaluationSum {
    /// An empty sum of `loss`, over `classes` classes for a classifier (`None` for a
    /// regression); errors if the two disagree.
    pub fn new(loss: Loss, classes: Option<usize>) -> Result<Self> {
        if classes.is_some() != loss.is_classification() {
            return Err(Error::InvalidConfig(format!(
                "the {loss} loss {} class labels",
                if classes.is_some() {
                    "does not take"
                } else {
                    "needs"
                }
            )));
        }
        Ok(EvaluationSum {
            loss,
            loss_sum: 0.0,
            examples: 0,
            confusion: classes.map(ConfusionMatrix::new),
        })
    }

    /// An empty sum of chunks whose values are means over their examples, such as a loss
    /// closure's, over `classes` classes for a classifier. The loss it holds only says how
    /// the chunks combine (weighted by their examples, no root); its scores are never added
    /// with [`add_scores`](EvaluationSum::add_scores).
    pub(crate) fn of_means(classes: Option<usize>) -> Self {
        let loss = if classes.is_some() {
            Loss::CrossEntropy
        } else {
            Loss::Mse
        };
        EvaluationSum {
            loss,
            loss_sum: 0.0,
            examples: 0,
            confusion: classes.map(ConfusionMatrix::new),
        }
    }

    /// The loss each chunk's mean is to be taken of: the loss itself, but MSE for RMSE, which
    /// is not a mean over examples ([`finish`](EvaluationSum::finish) takes the root of the
    /// whole set's mean).
    pub fn chunk_loss(&self) -> Loss {
        self.loss.per_chunk().0
    }

    /// Adds a chunk: the mean [`chunk_loss`](EvaluationSum::chunk_loss) of its examples, and
    /// their outputs, one row each (scored against `labels` for a classifier, whose outputs
    /// must score every class; ignored for a regression).
    pub fn add<E: Float>(
        &mut self,
        mean_loss: f64,
        outputs: ArrayView2<'_, E>,
        labels: &[usize],
    ) -> Result<()> {
        self.check_chunk(outputs, labels)?;
        if let Some(m) = &mut self.confusion {
            for (row, &label) in outputs.rows().into_iter().zip(labels) {
                m.add(label, argmax(row));
            }
        }
        self.loss_sum += mean_loss * outputs.nrows() as f64;
        self.examples += outputs.nrows();
        Ok(())
    }

    /// Checks that a classifier's chunk scores every class and has a label in range per row.
    fn check_chunk<E: Float>(&self, outputs: ArrayView2<'_, E>, labels: &[usize]) -> Result<()> {
        let Some(m) = &self.confusion else {
            return Ok(());
        };
        let (rows, classes) = (outputs.nrows(), m.classes());
        if outputs.ncols() != classes || labels.len() != rows {
            return Err(Error::Model(format!(
                "a chunk of {rows} rows scores {} classes against {} labels; expected \
                 {classes} classes and a label per row",
                outputs.ncols(),
                labels.len()
            )));
        }
        match labels.iter().find(|&&l| l >= classes) {
            Some(&bad) => Err(Error::InvalidData(format!(
                "label {bad} is not a class of {classes} (0 to {})",
                classes - 1
            ))),
            None => Ok(()),
        }
    }

    /// Adds a chunk of a classifier's scores (logits) against `labels`, its loss computed on
    /// `tape`, which is cleared first.
    pub fn add_scores<E: Float>(
        &mut self,
        tape: &mut Tape<E>,
        scores: ArrayView2<'_, E>,
        labels: &[usize],
    ) -> Result<()> {
        if !self.loss.is_classification() {
            return Err(Error::InvalidConfig(format!(
                "the {} loss does not take class labels",
                self.loss
            )));
        }
        // A label out of range is refused by name, before the loss's own message.
        self.check_chunk(scores, labels)?;
        tape.clear();
        let loss = self.chunk_loss();
        let mean = tape.no_grad(|tape| -> Result<f64> {
            let logits = tape.input(scores)?;
            let targets = tape.labels(labels)?;
            let loss = loss.record(tape, logits, targets)?;
            Ok(Float::to_f64(tape.item(loss)?))
        })?;
        self.add(mean, scores, labels)
    }

    /// The evaluation of the chunks added (a loss of 0 if there were none).
    pub fn finish(self) -> Evaluation {
        let mut loss = self.loss_sum / self.examples.max(1) as f64;
        if self.loss.per_chunk().1 {
            loss = loss.sqrt();
        }
        Evaluation {
            loss,
            accuracy: self.confusion.as_ref().map(ConfusionMatrix::accuracy),
            confusion: self.confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Init, Linear, Mlp, Rng};
    use ndarray::{Array2, array};

    #[test]
    fn rmse_is_the_root_of_the_whole_sets_mean_whatever_the_chunks() {
        let x = Array2::from_shape_fn((7, 2), |(i, j)| (i * 2 + j) as f64 * 0.1);
        let y = Array2::from_shape_fn((7, 1), |(i, _)| (i as f64).sin());
        let data = Dataset::regression(x, y).unwrap();
        let model = Mlp::<f64>::builder(&[2, 3, 1]).seed(0).build().unwrap();
        let mse = evaluate(&model, &data, Loss::Mse, 7).unwrap().loss;
        for chunk in [1, 2, 3, 7, 100] {
            let rmse = evaluate(&model, &data, Loss::Rmse, chunk).unwrap().loss;
            assert!((rmse - mse.sqrt()).abs() < 1e-15, "chunk {chunk}");
            let by_chunks = evaluate(&model, &data, Loss::Mse, chunk).unwrap().loss;
            assert!((by_chunks - mse).abs() < 1e-15, "chunk {chunk}");
        }
    }

    #[test]
    fn a_classifier_gets_its_accuracy_and_confusion() {
        let x = array![[1.0f64, 0.0], [0.0, 1.0], [1.0, 0.0]];
        let data = Dataset::classification(x, vec![0, 1, 1], 2).unwrap();
        // The identity: each row's larger input is its prediction.
        let mut model = Linear::new(2, 2, Init::Zeros, &mut Rng::seed_from_u64(0)).unwrap();
        model.weight.assign(&array![[1.0, 0.0], [0.0, 1.0]]);
        let eval = evaluate(&model, &data, Loss::CrossEntropy, 2).unwrap();
        assert_eq!(eval.accuracy, Some(2.0 / 3.0));
        let m = eval.confusion.unwrap();
        assert_eq!((m.get(0, 0), m.get(1, 1), m.get(1, 0)), (1, 1, 1));
        // Cross-entropy of logits (1, 0) at their label: ln(1 + e⁻¹); at the other: ln(1 + e).
        let (right, wrong) = ((1.0 + (-1f64).exp()).ln(), (1.0 + 1f64.exp()).ln());
        assert!((eval.loss - (2.0 * right + wrong) / 3.0).abs() < 1e-12);
        let err = evaluate(&model, &data, Loss::Mse, 2).unwrap_err();
        assert!(
            err.to_string().contains("needs regression targets"),
            "{err}"
        );
    }

    #[test]
    fn chunks_that_do_not_fit_are_refused_by_name() {
        let mut sum = EvaluationSum::new(Loss::CrossEntropy, Some(3)).unwrap();
        let mut tape = Tape::<f32>::new();
        let scores = array![[0.0f32, 1.0, 2.0]];
        let err = sum.add_scores(&mut tape, scores.view(), &[3]).unwrap_err();
        assert!(
            err.to_string().contains("label 3 is not a class of 3"),
            "{err}"
        );
        let err = sum
            .add(0.0, array![[0.0f32, 1.0]].view(), &[0])
            .unwrap_err();
        assert!(err.to_string().contains("scores 2 classes"), "{err}");
        assert!(EvaluationSum::new(Loss::Mse, Some(2)).is_err());
        assert!(EvaluationSum::new(Loss::CrossEntropy, None).is_err());
        // Nothing was added by the refused chunks.
        sum.add_scores(&mut tape, scores.view(), &[2]).unwrap();
        assert_eq!(sum.finish().accuracy, Some(1.0));
    }
}
