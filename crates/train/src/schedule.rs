//! [`Schedule`]: the learning rate as a function of the epoch and step, built-in or given as a
//! closure ([`LrLambda`]).

use std::fmt;
use std::sync::Arc;

/// A learning-rate schedule, evaluated before every optimiser step from the base rate (the
/// optimiser's rate when training starts), the epoch (counted from 0) and the step (counted
/// from 0 over the run).
///
/// ```
/// use wengert_train::Schedule;
/// let s = Schedule::Step { every: 10, gamma: 0.5 };
/// assert_eq!(s.learning_rate(0.1, 25, 0), 0.025);
/// let w = Schedule::Warmup { steps: 4, then: Box::new(Schedule::Constant) };
/// assert_eq!(w.learning_rate(0.1, 0, 1), 0.05);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// PyTorch's `StepLR`: multiplied by `gamma` every `every` epochs.
    Step {
        /// The period, in epochs.
        every: usize,
        /// The factor per period.
        gamma: f64,
    },
    /// PyTorch's `CosineAnnealingLR` (its closed form): from the base rate down to `min_lr`
    /// along half a cosine over `epochs` epochs.
    Cosine {
        /// The length of the half-period, in epochs.
        epochs: usize,
        /// The rate at the end.
        min_lr: f64,
    },
    /// A linear warm-up over the first `steps` optimiser steps (step `s` uses
    /// `(s + 1) / steps` of the rate), then `then`.
    Warmup {
        /// The length of the warm-up, in steps.
        steps: usize,
        /// The schedule it multiplies.
        then: Box<Schedule>,
    },
    /// PyTorch's `LambdaLR`, per step: the base rate times a function of the epoch and the
    /// step, made with [`Schedule::lambda`] (or [`Schedule::per_step`]).
    Lambda(LrLambda),
}

/// The factor a [`Schedule::Lambda`] multiplies the base rate by, a function of the epoch and
/// the step (both counted from 0). It is shared, not copied, when the schedule is cloned, and
/// two are equal when they are the same function.
#[derive(Clone)]
pub struct LrLambda(Arc<dyn Fn(usize, usize) -> f64 + Send + Sync>);

impl LrLambda {
    /// The factor for `epoch` and `step`.
    pub fn factor(&self, epoch: usize, step: usize) -> f64 {
        (self.0)(epoch, step)
    }
}

impl fmt::Debug for LrLambda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LrLambda(..)")
    }
}

impl PartialEq for LrLambda {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Schedule {
    /// A schedule whose rate at `(epoch, step)` is the base rate times `factor(epoch, step)`
    /// (PyTorch's `LambdaLR`, stepped every optimiser step), both counted from 0 over the run.
    /// The trainer refuses a rate that is negative or not finite, naming the step. With a base
    /// rate of 1 the function gives the rate itself.
    ///
    /// ```
    /// use wengert_train::Schedule;
    /// // Ten steps of linear warm-up, then an inverse square-root decay.
    /// let s = Schedule::lambda(|_epoch, step| {
    ///     let t = (step + 1) as f64;
    ///     if t <= 10.0 { t / 10.0 } else { (10.0 / t).sqrt() }
    /// });
    /// assert_eq!(s.learning_rate(0.1, 0, 4), 0.05);
    /// assert_eq!(s.learning_rate(0.1, 3, 39), 0.05);
    /// ```
    pub fn lambda(factor: impl Fn(usize, usize) -> f64 + Send + Sync + 'static) -> Schedule {
        Schedule::Lambda(LrLambda(Arc::new(factor)))
    }

    /// [`Schedule::lambda`] of the step alone.
    ///
    /// ```
    /// use wengert_train::Schedule;
    /// // Halved every 100 steps, whatever the epochs' length.
    /// let s = Schedule::per_step(|step| 0.5f64.powi((step / 100) as i32));
    /// assert_eq!(s.learning_rate(0.2, 0, 250), 0.05);
    /// ```
    pub fn per_step(factor: impl Fn(usize) -> f64 + Send + Sync + 'static) -> Schedule {
        Schedule::lambda(move |_, step| factor(step))
    }

    /// The rate for `epoch` and `step`, from the base rate `base`.
    pub fn learning_rate(&self, base: f64, epoch: usize, step: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                let periods = epoch / (*every).max(1);
                base * gamma.powi(periods.min(i32::MAX as usize) as i32)
            }
            Schedule::Cosine { epochs, min_lr } => {
                let t = epoch.min(*epochs) as f64 / (*epochs).max(1) as f64;
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            Schedule::Warmup { steps, then } => {
                let factor = if step < *steps {
                    (step + 1) as f64 / *steps as f64
                } else {
                    1.0
                };
                factor * then.learning_rate(base, epoch, step)
            }
            Schedule::Lambda(f) => base * f.factor(epoch, step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_runs_from_base_to_min() {
        let s = Schedule::Cosine {
            epochs: 10,
            min_lr: 0.01,
        };
        assert_eq!(s.learning_rate(0.1, 0, 0), 0.1);
        assert!((s.learning_rate(0.1, 5, 0) - 0.055).abs() < 1e-15);
        assert!((s.learning_rate(0.1, 10, 0) - 0.01).abs() < 1e-15);
        assert!((s.learning_rate(0.1, 20, 0) - 0.01).abs() < 1e-15);
    }

    #[test]
    fn warmup_ramps_then_hands_over() {
        let s = Schedule::Warmup {
            steps: 4,
            then: Box::new(Schedule::Step {
                every: 1,
                gamma: 0.1,
            }),
        };
        let rates: Vec<f64> = (0..5).map(|k| s.learning_rate(1.0, 0, k)).collect();
        assert_eq!(rates, [0.25, 0.5, 0.75, 1.0, 1.0]);
        assert!((s.learning_rate(1.0, 2, 100) - 0.01).abs() < 1e-15);
        assert_eq!(Schedule::Constant.learning_rate(0.3, 7, 9), 0.3);
    }

    #[test]
    fn a_lambda_scales_the_base_and_is_equal_only_to_itself() {
        let s = Schedule::lambda(|epoch, step| (epoch * 10 + step) as f64);
        assert_eq!(s.learning_rate(0.5, 2, 3), 11.5);
        assert_eq!(s, s.clone());
        assert_ne!(
            s,
            Schedule::lambda(|epoch, step| (epoch * 10 + step) as f64)
        );
        assert_eq!(format!("{s:?}"), "Lambda(LrLambda(..))");
        // Inside a warm-up, like any schedule.
        let w = Schedule::Warmup {
            steps: 2,
            then: Box::new(Schedule::per_step(|step| 1.0 / (step + 1) as f64)),
        };
        assert_eq!(w.learning_rate(1.0, 0, 0), 0.5);
        assert_eq!(w.learning_rate(1.0, 0, 3), 0.25);
    }
}
