//! [`Loss`]: the objectives the trainer minimises, and how each is recorded on a tape.

use std::fmt;
use std::str::FromStr;

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Result};

/// A training objective. Each reduces by the mean over the batch, as PyTorch's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error against regression targets of the output's shape.
    Mse,
    /// The square root of the mean squared error (same units as the targets).
    Rmse,
    /// Softmax cross-entropy of logits against class labels.
    CrossEntropy,
}

impl Loss {
    /// Whether the loss takes class labels (rather than regression targets).
    pub fn is_classification(self) -> bool {
        self == Loss::CrossEntropy
    }

    /// The lower-case name (`mse`, `rmse`, `cross_entropy`).
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Rmse => "rmse",
            Loss::CrossEntropy => "cross_entropy",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "mse" => Ok(Loss::Mse),
            "rmse" => Ok(Loss::Rmse),
            "cross_entropy" | "ce" => Ok(Loss::CrossEntropy),
            _ => Err(Error::InvalidConfig(format!(
                "unknown loss `{s}` (expected mse, rmse or cross_entropy)"
            ))),
        }
    }
}

impl Loss {
    /// Records this loss of `prediction` against `target` (labels for cross-entropy, values
    /// for the others), with built-in ops only, so that a step allocates nothing and a saved
    /// tape holds no custom op.
    ///
    /// RMSE is `√max(mse, m)` with `m` the type's smallest positive normal: the clamp passes no
    /// gradient below `m`, so a perfect fit has a zero gradient rather than the square root's
    /// infinite one (which would turn the step's gradients into NaN); above `m` it is exactly
    /// `√mse` and its gradient.
    pub(crate) fn record<E: Float>(
        self,
        tape: &mut Tape<E>,
        prediction: NodeId,
        target: NodeId,
    ) -> wengert_ops::Result<NodeId> {
        match self {
            Loss::Mse => tape.mse(prediction, target),
            Loss::CrossEntropy => tape.cross_entropy(prediction, target),
            Loss::Rmse => {
                let mse = tape.mse(prediction, target)?;
                let floored = tape.clamp(mse, Some(E::min_positive_value()), None)?;
                tape.sqrt(floored)
            }
        }
    }

    /// The loss to record per chunk when a data set is evaluated in chunks, and whether the
    /// mean of the chunks' values is then to be rooted: RMSE is not a mean over examples, so
    /// its chunks record MSE and the root is taken of the whole set's mean.
    pub(crate) fn per_chunk(self) -> (Loss, bool) {
        match self {
            Loss::Rmse => (Loss::Mse, true),
            other => (other, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rmse_is_the_root_of_mse_with_the_chain_rule_gradient() {
        let mut tape = Tape::<f64>::new();
        let p = tape.parameter(array![[1.0], [3.0]]).unwrap();
        let t = tape.input(array![[0.0], [0.0]]).unwrap();
        let loss = Loss::Rmse.record(&mut tape, p, t).unwrap();
        // mse = (1 + 9) / 2 = 5
        assert_eq!(tape.item(loss).unwrap(), 5f64.sqrt());
        let g = tape.backward(loss).unwrap().get(p).unwrap().to_owned();
        // d√m/dp = (1 / 2√m) · 2p / n
        let s = 5f64.sqrt();
        assert!((g[[0, 0]] - 1.0 / (2.0 * s)).abs() < 1e-15);
        assert!((g[[1, 0]] - 3.0 / (2.0 * s)).abs() < 1e-15);
    }

    #[test]
    fn a_perfect_fit_under_rmse_has_a_zero_gradient_not_nan() {
        let mut tape = Tape::<f32>::new();
        let p = tape.parameter(array![[0.5f32], [2.0]]).unwrap();
        let t = tape.input(array![[0.5f32], [2.0]]).unwrap();
        let loss = Loss::Rmse.record(&mut tape, p, t).unwrap();
        // The floor's root, far below anything a run reports.
        let value = tape.item(loss).unwrap();
        assert!(value > 0.0 && value < 1e-18, "{value}");
        let g = tape.backward(loss).unwrap().get(p).unwrap().to_owned();
        assert!(g.iter().all(|&x| x == 0.0), "{g}");
    }

    #[test]
    fn names_parse_back() {
        for loss in [Loss::Mse, Loss::Rmse, Loss::CrossEntropy] {
            assert_eq!(loss.name().parse::<Loss>().unwrap(), loss);
        }
        assert_eq!("CE".parse::<Loss>().unwrap(), Loss::CrossEntropy);
        assert!("hinge".parse::<Loss>().is_err());
        assert_eq!(Loss::Rmse.per_chunk(), (Loss::Mse, true));
        assert_eq!(Loss::Mse.per_chunk(), (Loss::Mse, false));
    }
}
