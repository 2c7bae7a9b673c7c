//! [`Loss`]: the objectives the trainer minimises, and [`Sqrt`], the op RMSE needs.

use std::fmt;
use std::str::FromStr;

use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use wengert_ops::{CustomOp, Float, Shape};
use wengert_tape::{CustomOpId, NodeId, Tape};

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

/// Records losses on one tape, remembering the custom ops it registered there.
#[derive(Debug, Default)]
pub(crate) struct LossRecorder {
    sqrt: Option<CustomOpId>,
}

impl LossRecorder {
    /// Records `loss` of `prediction` against `target` (labels for cross-entropy, values for
    /// the others).
    pub(crate) fn record<E: Float>(
        &mut self,
        tape: &mut Tape<E>,
        loss: Loss,
        prediction: NodeId,
        target: NodeId,
    ) -> wengert_ops::Result<NodeId> {
        match loss {
            Loss::Mse => tape.mse(prediction, target),
            Loss::CrossEntropy => tape.cross_entropy(prediction, target),
            Loss::Rmse => {
                let mse = tape.mse(prediction, target)?;
                let sqrt = *self
                    .sqrt
                    .get_or_insert_with(|| tape.register_custom(Box::new(Sqrt)));
                tape.custom(sqrt, &[mse])
            }
        }
    }
}

/// `√x` elementwise, as a custom op (the engine has no built-in square root).
///
/// Its derivative `1 / (2√x)` is taken as 0 where `x` is 0, so that a perfect fit gives a zero
/// gradient rather than NaN.
#[derive(Debug, Clone, Copy)]
pub struct Sqrt;

impl<E: Float> CustomOp<E> for Sqrt {
    fn name(&self) -> &str {
        "sqrt"
    }

    fn arity(&self) -> usize {
        1
    }

    fn output_shape(&self, inputs: &[&Shape]) -> wengert_ops::Result<Shape> {
        Ok(*inputs[0])
    }

    fn forward(
        &self,
        inputs: &[ArrayViewD<'_, E>],
        mut out: ArrayViewMutD<'_, E>,
    ) -> wengert_ops::Result<()> {
        out.zip_mut_with(&inputs[0], |y, &x| *y = x.sqrt());
        Ok(())
    }

    fn vjp(
        &self,
        _inputs: &[ArrayViewD<'_, E>],
        output: ArrayViewD<'_, E>,
        grad_output: ArrayViewD<'_, E>,
        _input_index: usize,
        mut grad_input: ArrayViewMutD<'_, E>,
    ) {
        let half = E::from_f64(0.5);
        Zip::from(&mut grad_input)
            .and(&output)
            .and(&grad_output)
            .for_each(|gx, &y, &gy| {
                if y != E::zero() {
                    *gx += gy * half / y;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rmse_is_the_root_of_mse_with_the_chain_rule_gradient() {
        let mut tape = Tape::<f64>::new();
        let mut rec = LossRecorder::default();
        let p = tape.parameter(array![[1.0], [3.0]]).unwrap();
        let t = tape.input(array![[0.0], [0.0]]).unwrap();
        let loss = rec.record(&mut tape, Loss::Rmse, p, t).unwrap();
        // mse = (1 + 9) / 2 = 5
        assert!((tape.item(loss).unwrap() - 5f64.sqrt()).abs() < 1e-15);
        let g = tape.backward(loss).unwrap().get(p).unwrap().to_owned();
        // d√m/dp = (1 / 2√m) · 2p / n
        let s = 5f64.sqrt();
        assert!((g[[0, 0]] - 1.0 / (2.0 * s)).abs() < 1e-15);
        assert!((g[[1, 0]] - 3.0 / (2.0 * s)).abs() < 1e-15);
        // A second RMSE on the same tape reuses the registered op.
        let again = rec.record(&mut tape, Loss::Rmse, p, t).unwrap();
        assert_eq!(tape.item(again).unwrap(), tape.item(loss).unwrap());
    }

    #[test]
    fn sqrt_passes_gradcheck_away_from_zero_and_is_zero_at_zero() {
        let mut tape = Tape::<f64>::new();
        let id = tape.register_custom(Box::new(Sqrt));
        let x = tape.parameter(array![0.0, 4.0]).unwrap();
        let y = tape.custom(id, &[x]).unwrap();
        let s = tape.sum(y).unwrap();
        let g = tape.backward(s).unwrap().get(x).unwrap().to_owned();
        assert_eq!(g, array![0.0, 0.25].into_dyn());
        assert_eq!("CE".parse::<Loss>().unwrap(), Loss::CrossEntropy);
        assert!("hinge".parse::<Loss>().is_err());
    }
}
