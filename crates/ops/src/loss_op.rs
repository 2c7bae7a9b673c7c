//! [`LossOp`]: the losses of a prediction and a target beyond `mse` and the classic
//! `cross_entropy`, each with PyTorch's `reduction`, their shape, forward and VJP rules side by
//! side calling the kernels in [`crate::kernels`].

use crate::kernels::class_loss::{self, CrossEntropyOptions, Targets};
use crate::kernels::pointwise_loss::{self, Distance};
use crate::kernels::reduction::Reduction;
use crate::{Error, Float, Result, Shape, TensorRef};

/// A loss of an input (predictions, logits or log-probabilities) and a target, reduced by a
/// [`Reduction`]. Held in [`Op::Loss`](crate::Op::Loss); input 0 is the prediction, input 1
/// the target. In [`Op::WeightedLoss`](crate::Op::WeightedLoss) a third input holds weights:
/// `pos_weight` (`[C]`, per column) for binary cross-entropy, the class weights (`[C]`) for
/// `nll_loss` and cross-entropy; the weights get no gradient (PyTorch does not differentiate
/// in them either).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossOp {
    /// A loss of the difference `x - t` (`l1_loss`, `smooth_l1_loss`, `huber_loss`), on a
    /// prediction and a target of one shape; both get a gradient.
    Distance {
        /// Which loss of the difference.
        distance: Distance,
        /// How the terms are reduced.
        reduction: Reduction,
    },
    /// `binary_cross_entropy_with_logits` of logits and targets of one shape; both get a
    /// gradient.
    BceWithLogits {
        /// How the terms are reduced.
        reduction: Reduction,
    },
    /// `nll_loss` of log-probabilities (`[C]`, `[N, C]` or `[N, C, d...]`) and class indices
    /// (stored as floats, without the class axis); the targets get no gradient.
    Nll {
        /// A target equal to this is skipped (its term is 0 and a mean leaves it out).
        ignore_index: Option<i64>,
        /// How the terms are reduced.
        reduction: Reduction,
    },
    /// Softmax cross-entropy of logits and class indices or class probabilities, with label
    /// smoothing; probability targets get a gradient, class indices none.
    CrossEntropy(CrossEntropyOptions),
}

impl LossOp {
    /// The op's name as error messages show it (PyTorch's function name).
    pub fn name(&self) -> &'static str {
        match self {
            LossOp::Distance { distance, .. } => distance.name(),
            LossOp::BceWithLogits { .. } => "binary_cross_entropy_with_logits",
            LossOp::Nll { .. } => "nll_loss",
            LossOp::CrossEntropy(_) => "cross_entropy",
        }
    }

    /// Whether a gradient flows to input `index` (class-index targets get none).
    #[inline]
    pub fn differentiable_in(&self, index: usize) -> bool {
        match self {
            LossOp::Distance { .. } | LossOp::BceWithLogits { .. } => true,
            LossOp::Nll { .. } => index == 0,
            LossOp::CrossEntropy(o) => index == 0 || o.targets == Targets::Probabilities,
        }
    }

    /// Whether the loss takes weights as a third input: `pos_weight` for binary
    /// cross-entropy, class weights for `nll_loss` and cross-entropy.
    pub fn takes_weight(&self) -> bool {
        !matches!(self, LossOp::Distance { .. })
    }

    /// The output shape for this input, target and optional weights, or a typed error naming
    /// the op and the shapes or the bad argument.
    pub fn output_shape(&self, x: &Shape, t: &Shape, weight: Option<&Shape>) -> Result<Shape> {
        match self {
            LossOp::Distance { .. } if weight.is_some() => Err(Error::WrongArity {
                op: self.name().to_string(),
                expected: 2,
                got: 3,
            }),
            LossOp::Distance {
                distance,
                reduction,
            } => pointwise_loss::distance_loss_shape(*distance, x, t, *reduction),
            LossOp::BceWithLogits { reduction } => {
                pointwise_loss::bce_with_logits_shape(x, t, weight, *reduction)
            }
            LossOp::Nll { reduction, .. } => class_loss::nll_loss_shape(x, t, weight, *reduction),
            LossOp::CrossEntropy(options) => class_loss::cross_entropy_shape(x, t, weight, options),
        }
    }

    /// Writes the loss into `out`; fails only on a target that names no class.
    pub fn forward<E: Float>(
        &self,
        x: TensorRef<'_, E>,
        t: TensorRef<'_, E>,
        weight: Option<&[E]>,
        out: &mut [E],
    ) -> Result<()> {
        match *self {
            LossOp::Distance {
                distance,
                reduction,
            } => pointwise_loss::distance_loss(distance, x.data(), t.data(), reduction, out),
            LossOp::BceWithLogits { reduction } => {
                pointwise_loss::bce_with_logits(x, t.data(), weight, reduction, out)
            }
            LossOp::Nll {
                ignore_index,
                reduction,
            } => class_loss::nll_loss(x, t.data(), weight, ignore_index, reduction, out)?,
            LossOp::CrossEntropy(options) => {
                class_loss::cross_entropy(x, t.data(), weight, &options, out)?
            }
        }
        Ok(())
    }

    /// The pull-back of `g` through input `index` (0 or 1) into `gi`: adds when `ACC`,
    /// overwrites otherwise, writing every element either way. The weights take no gradient.
    pub fn vjp<E: Float, const ACC: bool>(
        &self,
        x: TensorRef<'_, E>,
        t: TensorRef<'_, E>,
        weight: Option<&[E]>,
        g: &[E],
        index: usize,
        gi: &mut [E],
    ) {
        if index >= 2 {
            if !ACC {
                gi.fill(E::zero());
            }
            return;
        }
        match *self {
            // L = ρ(x - t): dx = dL·ρ'(x - t), dt = -dx
            LossOp::Distance {
                distance,
                reduction,
            } => pointwise_loss::distance_loss_vjp::<E, ACC>(
                distance,
                x.data(),
                t.data(),
                reduction,
                g,
                index,
                gi,
            ),
            // L = (1 - t)x + (p·t + 1 - t)·softplus(-x): dx = dL·((1 - t) - (p·t + 1 - t)·σ(-x)),
            // dt = dL·((p - 1)·softplus(-x) - x)
            LossOp::BceWithLogits { reduction } => pointwise_loss::bce_with_logits_vjp::<E, ACC>(
                x,
                t.data(),
                weight,
                reduction,
                g,
                index,
                gi,
            ),
            // L = -w[t]·x[t]: dx = -dL·w[t] at the target; none to the targets
            LossOp::Nll {
                ignore_index,
                reduction,
            } => {
                if index == 0 {
                    class_loss::nll_loss_vjp::<E, ACC>(
                        x.shape(),
                        t.data(),
                        weight,
                        ignore_index,
                        reduction,
                        g,
                        gi,
                    )
                } else if !ACC {
                    gi.fill(E::zero());
                }
            }
            // dz = dL·(p·Σa - a), a = w·t' (smoothed); probabilities: dt = -dL·(1 - ε)·w·log_softmax z
            LossOp::CrossEntropy(options) => {
                class_loss::cross_entropy_vjp::<E, ACC>(x, t.data(), weight, &options, g, index, gi)
            }
        }
    }
}
