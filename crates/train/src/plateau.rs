//! [`ReduceOnPlateau`]: PyTorch's `ReduceLROnPlateau`, which lowers the learning rate when the
//! monitored loss stops improving, and [`PlateauState`], its memory between epochs.

use crate::{Error, Result};

/// Lowers the learning rate by `factor` when the monitored loss (the validation loss, else the
/// training loss) has not improved for more than `patience` epochs: PyTorch's
/// `ReduceLROnPlateau` in mode `min`, rule for rule, checked once at the end of every epoch.
///
/// What it lowers is the run's base rate, the one the [`Schedule`](crate::Schedule) scales
/// (with [`Schedule::Constant`](crate::Schedule::Constant), the rate itself), and `min_lr`
/// bounds that base rate. Its memory is a [`PlateauState`] inside the run's
/// [`TrainState`](crate::TrainState), so a resumed run reduces at the same epochs.
///
/// ```
/// use wengert_train::{PlateauState, ReduceOnPlateau};
///
/// let plateau = ReduceOnPlateau { factor: 0.5, patience: 1, ..ReduceOnPlateau::default() };
/// let mut state = PlateauState::default();
/// let mut lr = 0.1;
/// let mut rates = Vec::new();
/// for loss in [1.0, 0.9, 0.95, 0.92, 0.91, 0.5] {
///     lr = plateau.end_epoch(&mut state, loss, lr);
///     rates.push(lr);
/// }
/// // Two epochs without improving on 0.9 are more than the patience of 1: halved after the
/// // fourth, then the count starts again.
/// assert_eq!(rates, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReduceOnPlateau {
    /// The factor the rate is multiplied by, in `[0, 1)` (default 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated: the rate falls at the next one (default 10).
    pub patience: usize,
    /// How much better a loss must be to count as an improvement (default 1e-4).
    pub threshold: f64,
    /// How `threshold` is measured (default relative).
    pub threshold_mode: ThresholdMode,
    /// Epochs after a reduction during which no epoch counts as bad (default 0).
    pub cooldown: usize,
    /// The rate never falls below this (default 0).
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (default 1e-8).
    pub eps: f64,
}

impl Default for ReduceOnPlateau {
    /// PyTorch's defaults.
    fn default() -> Self {
        ReduceOnPlateau {
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// How [`ReduceOnPlateau::threshold`] decides that a loss improves on the best so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThresholdMode {
    /// Better when `loss < best · (1 - threshold)`.
    #[default]
    Rel,
    /// Better when `loss < best - threshold`.
    Abs,
}

/// What [`ReduceOnPlateau`] remembers from one epoch to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauState {
    /// The lowest monitored loss so far (infinite before the first epoch ends).
    pub best: f64,
    /// Epochs since the loss last improved, outside the cooldown.
    pub bad_epochs: usize,
    /// Epochs of cooldown left.
    pub cooldown_left: usize,
}

impl Default for PlateauState {
    /// The state before the first epoch.
    fn default() -> Self {
        PlateauState {
            best: f64::INFINITY,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }
}

impl ReduceOnPlateau {
    /// Checks the settings: a factor in `[0, 1)` (PyTorch's rule), and a threshold, minimum
    /// rate and eps that are finite and not negative.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("reduce-on-plateau: {m}")));
        if !(0.0..1.0).contains(&self.factor) {
            return bad(format!(
                "the factor must be at least 0 and below 1, got {}",
                self.factor
            ));
        }
        for (name, value) in [
            ("threshold", self.threshold),
            ("minimum rate", self.min_lr),
            ("eps", self.eps),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!(
                    "the {name} must be finite and not negative, got {value}"
                ));
            }
        }
        Ok(())
    }

    /// Whether `loss` improves on `best` by the threshold (never for a NaN loss).
    pub fn is_better(&self, loss: f64, best: f64) -> bool {
        match self.threshold_mode {
            ThresholdMode::Rel => loss < best * (1.0 - self.threshold),
            ThresholdMode::Abs => loss < best - self.threshold,
        }
    }

    /// The end of an epoch whose monitored loss was `loss`, run at rate `lr`: updates `state`
    /// and returns the rate for the next epoch (`lr`, or `max(lr · factor, min_lr)` when the
    /// loss has not improved for more than `patience` epochs outside a cooldown and that
    /// lowers it by more than `eps`).
    pub fn end_epoch(&self, state: &mut PlateauState, loss: f64, lr: f64) -> f64 {
        if self.is_better(loss, state.best) {
            state.best = loss;
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        if state.cooldown_left > 0 {
            state.cooldown_left -= 1;
            state.bad_epochs = 0;
        }
        if state.bad_epochs <= self.patience {
            return lr;
        }
        state.cooldown_left = self.cooldown;
        state.bad_epochs = 0;
        let lowered = (lr * self.factor).max(self.min_lr);
        if lr - lowered > self.eps { lowered } else { lr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rates after each epoch of `losses`, from `lr`.
    fn rates(plateau: ReduceOnPlateau, losses: &[f64], mut lr: f64) -> Vec<f64> {
        let mut state = PlateauState::default();
        losses
            .iter()
            .map(|&loss| {
                lr = plateau.end_epoch(&mut state, loss, lr);
                lr
            })
            .collect()
    }

    #[test]
    fn the_rate_falls_after_more_than_patience_bad_epochs_then_waits_out_the_cooldown() {
        let plateau = ReduceOnPlateau {
            factor: 0.5,
            patience: 2,
            cooldown: 2,
            ..ReduceOnPlateau::default()
        };
        // Best 1.0 at epoch 1; epochs 2-4 bad: the third bad one (4) halves. Cooldown over
        // epochs 5 and 6 (bad, not counted); 7, 8, 9 bad: halved again after 9.
        let losses = [1.0, 1.0, 1.5, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0];
        let got = rates(plateau, &losses, 1.0);
        assert_eq!(got, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn an_improvement_below_the_threshold_does_not_count() {
        let rel = ReduceOnPlateau {
            patience: 0,
            ..ReduceOnPlateau::default()
        };
        // 1e-4 relative: 0.99995 is not better than 1.0, 0.9998 is.
        assert_eq!(rates(rel, &[1.0, 0.99995], 1.0), [1.0, 0.1]);
        assert_eq!(rates(rel, &[1.0, 0.9998], 1.0), [1.0, 1.0]);
        let abs = ReduceOnPlateau {
            threshold_mode: ThresholdMode::Abs,
            threshold: 0.1,
            ..rel
        };
        assert_eq!(rates(abs, &[1.0, 0.95], 1.0), [1.0, 0.1]);
        assert_eq!(rates(abs, &[1.0, 0.85], 1.0), [1.0, 1.0]);
        // A NaN loss never improves.
        assert_eq!(rates(rel, &[1.0, f64::NAN], 1.0), [1.0, 0.1]);
    }

    #[test]
    fn the_rate_stops_at_the_minimum_and_a_step_below_eps_is_skipped() {
        let plateau = ReduceOnPlateau {
            patience: 0,
            min_lr: 0.015,
            ..ReduceOnPlateau::default()
        };
        let got = rates(plateau, &[1.0; 5], 1.0);
        assert_eq!(got, [1.0, 0.1, 0.015, 0.015, 0.015]);
        let tiny = ReduceOnPlateau {
            patience: 0,
            eps: 1e-3,
            ..ReduceOnPlateau::default()
        };
        // 1e-3 to 1e-4 lowers it by 9e-4, less than eps: kept.
        assert_eq!(rates(tiny, &[1.0, 1.0], 1e-3), [1e-3, 1e-3]);
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let refused = |p: ReduceOnPlateau, what: &str| {
            let err = p.check().unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        };
        let d = ReduceOnPlateau::default();
        d.check().unwrap();
        refused(ReduceOnPlateau { factor: 1.0, ..d }, "factor");
        refused(ReduceOnPlateau { factor: -0.1, ..d }, "factor");
        refused(
            ReduceOnPlateau {
                factor: f64::NAN,
                ..d
            },
            "factor",
        );
        refused(
            ReduceOnPlateau {
                threshold: -1.0,
                ..d
            },
            "threshold",
        );
        refused(
            ReduceOnPlateau {
                min_lr: f64::INFINITY,
                ..d
            },
            "minimum rate",
        );
        refused(ReduceOnPlateau { eps: f64::NAN, ..d }, "eps");
    }
}
