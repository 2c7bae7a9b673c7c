//! [`Schedule`]: the learning rate as a function of the epoch and step.

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
}

impl Schedule {
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
}
