//! [`Sgd`]: stochastic gradient descent, with heavy-ball or Nesterov momentum and L2 decay.

use std::marker::PhantomData;

use ndarray::ArrayD;
use wengert_ops::{Float, FoldedUpdate, Shape};

use super::validate::{buffer, check_rate, check_state, non_negative, same_length, zeros_like};
use super::{Optimizer, OptimizerState};
use crate::{Error, Result};

/// Stochastic gradient descent, optionally with momentum (heavy-ball or Nesterov) and L2
/// weight decay: PyTorch's `torch.optim.SGD` with `dampening = 0`.
///
/// With `g = grad + weight_decay·p`: without momentum `p -= lr·g`; with momentum `μ`,
/// `b = g` on the first step and `b = μ·b + g` after, then `p -= lr·b` (or `p -= lr·(g + μ·b)`
/// with Nesterov).
///
/// Settings are checked when the optimiser is built ([`Sgd::new`], [`SgdBuilder::build`]):
/// a negative or non-finite rate, negative momentum or decay, or Nesterov without momentum is
/// an error there, not at the first step.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Optimizer, Sgd};
/// let mut w = array![1.0f64, 2.0].into_dyn();
/// let g = array![0.5, -1.0].into_dyn();
/// let mut sgd = Sgd::new(0.1)?;
/// sgd.step(&mut [w.view_mut()], &[g])?;
/// assert_eq!(w, array![0.95, 2.1].into_dyn());
///
/// let nesterov = Sgd::<f64>::builder(0.1).momentum(0.9).nesterov(true).build()?;
/// assert!(Sgd::<f64>::builder(0.1).nesterov(true).build().is_err());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<E: Float> {
    lr: f64,
    /// This step's rate, from `begin_step`.
    step_lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    steps: u64,
    buffers: Vec<ArrayD<E>>,
    /// Whether the step in progress is the first with momentum (its buffers start at `g`).
    first: bool,
}

impl<E: Float> Sgd<E> {
    /// Plain SGD with learning rate `lr`; errors if `lr` is negative or not finite.
    pub fn new(lr: f64) -> Result<Self> {
        Sgd::builder(lr).build()
    }

    /// SGD with learning rate `lr` and settings to choose, checked by
    /// [`build`](SgdBuilder::build).
    pub fn builder(lr: f64) -> SgdBuilder<E> {
        SgdBuilder {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            element: PhantomData,
        }
    }
}

/// The settings of an [`Sgd`], from [`Sgd::builder`].
#[derive(Debug, Clone, Copy)]
pub struct SgdBuilder<E: Float> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    element: PhantomData<E>,
}

impl<E: Float> SgdBuilder<E> {
    /// Heavy-ball momentum `μ` (PyTorch's `momentum`, default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Nesterov momentum (needs a positive [`momentum`](SgdBuilder::momentum)).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// L2 weight decay: `weight_decay·p` is added to the gradient (default 0).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The optimiser, or an error naming the first setting that cannot work.
    pub fn build(self) -> Result<Sgd<E>> {
        check_rate(self.lr)?;
        non_negative("momentum", self.momentum)?;
        non_negative("weight decay", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(Error::InvalidConfig(
                "Nesterov momentum needs a positive momentum".into(),
            ));
        }
        Ok(Sgd {
            lr: self.lr,
            step_lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            steps: 0,
            buffers: Vec::new(),
            first: false,
        })
    }
}

impl<E: Float> Optimizer<E> for Sgd<E> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        check_rate(lr)?;
        check_state(shapes, &self.buffers)?;
        self.step_lr = lr;
        self.first = self.buffers.is_empty();
        if self.momentum != 0.0 && self.first {
            self.buffers = zeros_like(shapes);
        }
        self.steps += 1;
        Ok(())
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        same_length(index, param.len(), grad.len())?;
        let lr = E::from_f64(self.step_lr);
        let wd = E::from_f64(self.weight_decay);
        let mu = E::from_f64(self.momentum);
        let use_wd = self.weight_decay != 0.0;
        if self.momentum != 0.0 {
            let (first, nesterov) = (self.first, self.nesterov);
            let buf = buffer(&mut self.buffers, index, param.len())?;
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf) {
                let d = if use_wd { g + wd * *p } else { g };
                *b = if first { d } else { *b * mu + d };
                let d = if nesterov { d + mu * *b } else { *b };
                *p += -lr * d;
            }
        } else {
            for (p, &g) in param.iter_mut().zip(grad) {
                let d = if use_wd { g + wd * *p } else { g };
                *p += -lr * d;
            }
        }
        Ok(())
    }

    /// Without momentum the update is `p ← (1 - lr·wd)·p - lr·g`: it folds, unless the
    /// element type cannot hold `1 - lr·wd` closely enough to keep the decay (in `f32`, the
    /// steps of `1 - x` near 1 are 6e-8 apart: a decay `lr·wd` under about 6e-5 would be
    /// rounded by more than 0.1%, and under 3e-8 lost). Such a step is left to
    /// [`update`](Optimizer::update), which applies `wd·p` to each element.
    fn folded_update(&self, _index: usize) -> Option<FoldedUpdate<E>> {
        if self.momentum != 0.0 {
            return None;
        }
        let decay = self.step_lr * self.weight_decay;
        let keep = E::from_f64(1.0 - decay);
        let kept_decay = 1.0 - keep.to_f64();
        ((kept_decay - decay).abs() <= 1e-3 * decay).then(|| FoldedUpdate {
            keep,
            step: E::from_f64(-self.step_lr),
        })
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn name(&self) -> &'static str {
        if self.momentum == 0.0 {
            "sgd"
        } else if self.nesterov {
            "nesterov"
        } else {
            "momentum"
        }
    }

    fn state(&self) -> OptimizerState<E> {
        OptimizerState::from_parts(
            Optimizer::<E>::name(self),
            self.steps,
            &self.settings(),
            &[("momentum_buffer", &self.buffers)],
        )
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        let names: &[&str] = if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        };
        state.check(Optimizer::<E>::name(self), &self.settings(), names)?;
        self.steps = state.step;
        self.buffers = state.take("momentum_buffer");
        Ok(())
    }
}

impl<E: Float> Sgd<E> {
    fn settings(&self) -> [(&'static str, f64); 3] {
        [
            ("momentum", self.momentum),
            ("nesterov", f64::from(u8::from(self.nesterov))),
            ("weight_decay", self.weight_decay),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::tests::{close, run};

    #[test]
    fn sgd_with_weight_decay_matches_a_hand_step() {
        // p = 1, g = 0.5, wd = 0.1: d = 0.5 + 0.1 = 0.6; p = 1 - 0.1·0.6 = 0.94.
        let mut sgd = Sgd::builder(0.1).weight_decay(0.1).build().unwrap();
        close(&run(&mut sgd, 1.0, &[0.5]), &[0.94]);
    }

    #[test]
    fn momentum_matches_hand_steps() {
        // μ = 0.9, lr = 0.1, grads 1 then 2.
        // step 1: b = 1, p = 1 - 0.1 = 0.9.  step 2: b = 0.9 + 2 = 2.9, p = 0.9 - 0.29 = 0.61.
        let mut sgd = Sgd::builder(0.1).momentum(0.9).build().unwrap();
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.9, 0.61]);
        assert_eq!(Optimizer::<f64>::name(&sgd), "momentum");
    }

    #[test]
    fn nesterov_matches_hand_steps() {
        // step 1: b = 1, d = 1 + 0.9·1 = 1.9, p = 1 - 0.19 = 0.81.
        // step 2: b = 0.9 + 2 = 2.9, d = 2 + 0.9·2.9 = 4.61, p = 0.81 - 0.461 = 0.349.
        let mut sgd = Sgd::builder(0.1)
            .momentum(0.9)
            .nesterov(true)
            .build()
            .unwrap();
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.81, 0.349]);
    }
}
