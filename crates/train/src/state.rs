//! [`TrainState`]: everything that decides the rest of a training run, so that a run can
//! stop and resume bit for bit.

use std::ops::Range;

use ndarray::ArrayD;
use wengert_ops::Float;

use crate::{Error, History, OptimizerState, PlateauState, Result, RngState};

/// A training run between two steps: the model's weights, the optimiser's state, where the
/// loop stands (epoch, batch, the data order and the random stream that shuffles it), what
/// the current epoch has summed so far, early stopping's memory and the history.
///
/// [`Trainer::checkpoint_every`](crate::Trainer::checkpoint_every) hands one out;
/// [`Trainer::resume`](crate::Trainer::resume) continues from it, and the resumed run ends
/// with bit-identical weights and history (apart from the seconds) to one that never
/// stopped. [`TrainState::to_checkpoint`] and [`TrainState::from_checkpoint`] map it to and
/// from a [`wengert_io::Checkpoint`] on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState<E: Float> {
    /// The epoch in progress (or next to start), counted from 0.
    pub epoch: usize,
    /// Batches of `epoch` done; 0 when the epoch has not started (its order is not yet
    /// shuffled).
    pub batch: usize,
    /// The order of the training examples: this epoch's once it has started, else the last
    /// one's (each epoch shuffles the order it inherits).
    pub order: Vec<usize>,
    /// The stream that shuffles the order.
    pub rng: RngState,
    /// What the epoch in progress has summed so far.
    pub progress: EpochProgress,
    /// The epochs completed and the steps taken.
    pub history: History,
    /// The lowest monitored loss so far (infinite before the first epoch ends).
    pub best_loss: f64,
    /// Epochs since the monitored loss last improved.
    pub since_best: usize,
    /// The weights of the best epoch, kept when early stopping restores them.
    pub best_parameters: Option<Vec<ArrayD<E>>>,
    /// The learning rate the schedule scales (the optimiser's, lowered by
    /// [`ReduceOnPlateau`](crate::ReduceOnPlateau) if the run has one).
    pub base_learning_rate: f64,
    /// Reduce-on-plateau's memory (untouched by a run without one).
    pub plateau: PlateauState,
    /// The name of the loss the run minimises ([`Trainer::loss_name`](crate::Trainer::loss_name):
    /// `custom` for a closure), checked on resume; empty when not recorded (a state saved
    /// by a build before it was).
    pub loss: String,
    /// Seconds spent training so far (carried into a resumed run's records).
    pub elapsed_seconds: f64,
    /// The model's parameters, in [`Module::parameters`](crate::Module::parameters) order.
    pub parameters: Vec<ArrayD<E>>,
    /// The optimiser's state.
    pub optimizer: OptimizerState<E>,
}

impl<E: Float> TrainState<E> {
    /// Checks that this state can continue on a model whose parameters have `shapes` and on a
    /// training set cut into `batches`: the order is a permutation of those examples, the
    /// position is inside an epoch of such batches, and every saved array has the parameters'
    /// shapes.
    pub(crate) fn check_fits(&self, shapes: &[Vec<usize>], batches: Batches) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("cannot resume: {m}")));
        let n = batches.examples;
        if self.order.len() != n {
            return bad(format!(
                "the run trained on {} examples, this training set has {n}",
                self.order.len()
            ));
        }
        let mut seen = vec![false; n];
        for &i in &self.order {
            if i >= n || std::mem::replace(&mut seen[i], true) {
                return bad("the saved data order is not a permutation of the examples".into());
            }
        }
        if self.batch > 0 && self.progress.seen != self.batch * batches.size {
            return bad(format!(
                "the run saw {} examples in {} batches of its epoch; this trainer's batches \
                 hold {}",
                self.progress.seen, self.batch, batches.size
            ));
        }
        if self.batch >= batches.count {
            return bad(format!(
                "the saved position (batch {} of {}) is past the end of an epoch",
                self.batch, batches.count
            ));
        }
        if self.history.epochs.len() != self.epoch {
            return bad(format!(
                "the history holds {} epochs but the run is at epoch {}",
                self.history.epochs.len(),
                self.epoch
            ));
        }
        let arrays = [
            ("parameters", Some(&self.parameters)),
            ("best parameters", self.best_parameters.as_ref()),
        ];
        let buffers = self
            .optimizer
            .buffers
            .iter()
            .map(|(name, b)| (name.as_str(), Some(b)));
        for (name, saved) in arrays.into_iter().chain(buffers) {
            let Some(saved) = saved else { continue };
            let saved: Vec<&[usize]> = saved.iter().map(ArrayD::shape).collect();
            if saved != shapes {
                return bad(format!(
                    "the saved {name} have shapes {saved:?}, the model's parameters {shapes:?}"
                ));
            }
        }
        if self.parameters.iter().flatten().any(|x| !x.is_finite()) {
            return bad("a saved parameter is not finite".into());
        }
        Ok(())
    }
}

/// How an epoch's examples are cut into batches: every batch holds `size` examples but the
/// last, which holds the rest. The one place this is computed, for the loop and for the check
/// of a resumed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batches {
    /// Examples per epoch.
    pub(crate) examples: usize,
    /// Examples per batch (the configured batch size, at most the examples).
    pub(crate) size: usize,
    /// Batches per epoch.
    pub(crate) count: usize,
}

impl Batches {
    /// Batches of `batch_size` over `examples` (a zero batch size counts as 1: the trainer
    /// refuses it before it gets here).
    pub(crate) fn new(examples: usize, batch_size: usize) -> Self {
        let size = batch_size.min(examples).max(1);
        Batches {
            examples,
            size,
            count: examples.div_ceil(size),
        }
    }

    /// The positions in the epoch's order of batch `b`'s examples.
    pub(crate) fn range(&self, b: usize) -> Range<usize> {
        (b * self.size).min(self.examples)..((b + 1) * self.size).min(self.examples)
    }
}

/// What an epoch's steps add up to so far, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EpochProgress {
    /// The sum of batch losses, each weighted by its batch's size.
    pub loss_sum: f64,
    /// Examples classified right.
    pub correct: usize,
    /// Examples seen.
    pub seen: usize,
    /// The rate of the last step.
    pub learning_rate: f64,
}

/// When [`Trainer::checkpoint_every`](crate::Trainer::checkpoint_every) hands out the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// After every `n`-th optimiser step (counted over the run), in the middle of an epoch
    /// too; a step that ends an epoch hands out the state once the epoch is recorded.
    Steps(usize),
    /// After every `n`-th epoch, once it is recorded.
    Epochs(usize),
}

impl Every {
    /// Whether the state is due after `steps` steps, mid-epoch.
    pub(crate) fn due_mid_epoch(self, steps: usize) -> bool {
        matches!(self, Every::Steps(n) if n > 0 && steps.is_multiple_of(n))
    }

    /// Whether the state is due when `epochs` epochs are done, after `steps` steps.
    pub(crate) fn due_at_epoch_end(self, epochs: usize, steps: usize) -> bool {
        match self {
            Every::Steps(n) => n > 0 && steps.is_multiple_of(n),
            Every::Epochs(n) => n > 0 && epochs.is_multiple_of(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EpochRecord, StopReason};
    use ndarray::array;

    #[test]
    fn batches_cover_every_example_once_and_only_the_last_is_short() {
        for (examples, batch_size) in [(45, 7), (10, 5), (3, 32), (1, 1), (0, 4)] {
            let b = Batches::new(examples, batch_size);
            let ranges: Vec<Range<usize>> = (0..b.count).map(|i| b.range(i)).collect();
            let covered: Vec<usize> = ranges.iter().cloned().flatten().collect();
            assert_eq!(covered, (0..examples).collect::<Vec<_>>(), "{b:?}");
            let full = ranges.iter().filter(|r| r.len() == b.size).count();
            assert!(full + 1 >= b.count, "{b:?}: {ranges:?}");
        }
        assert_eq!(Batches::new(45, 7).count, 7);
        assert_eq!(Batches::new(3, 32).size, 3);
    }

    fn state() -> TrainState<f64> {
        TrainState {
            epoch: 1,
            batch: 2,
            order: vec![3, 0, 4, 1, 2],
            rng: crate::Rng::seed_from_u64(0).state(),
            progress: EpochProgress {
                seen: 4,
                ..EpochProgress::default()
            },
            history: History {
                epochs: vec![EpochRecord {
                    epoch: 1,
                    train_loss: 1.0,
                    train_accuracy: None,
                    val_loss: None,
                    val_accuracy: None,
                    learning_rate: 0.1,
                    seconds: 0.0,
                }],
                best_epoch: Some(1),
                stop_reason: StopReason::Completed,
                steps: 5,
            },
            best_loss: 1.0,
            since_best: 0,
            best_parameters: None,
            base_learning_rate: 0.1,
            plateau: PlateauState::default(),
            loss: "cross_entropy".into(),
            elapsed_seconds: 0.0,
            parameters: vec![array![[1.0, 2.0]].into_dyn()],
            optimizer: OptimizerState {
                kind: "sgd".into(),
                step: 5,
                settings: Vec::new(),
                buffers: Vec::new(),
            },
        }
    }

    #[test]
    fn a_state_that_does_not_fit_the_run_is_refused_by_what_differs() {
        let shapes = [vec![1, 2]];
        let batches = Batches::new(5, 2);
        state().check_fits(&shapes, batches).unwrap();
        let refused = |s: TrainState<f64>, shapes: &[Vec<usize>], b: Batches, what: &str| {
            let err = s.check_fits(shapes, b).unwrap_err().to_string();
            assert!(err.contains("cannot resume") && err.contains(what), "{err}");
        };
        refused(state(), &shapes, Batches::new(6, 2), "5 examples");
        refused(state(), &shapes, Batches::new(5, 3), "batches hold 3");
        refused(
            state(),
            &[vec![2, 1]],
            batches,
            "saved parameters have shapes [[1, 2]]",
        );
        let mut s = state();
        s.order[0] = 0;
        refused(s, &shapes, batches, "not a permutation");
        let mut s = state();
        (s.batch, s.progress.seen) = (3, 6);
        refused(s, &shapes, batches, "past the end");
        let mut s = state();
        s.epoch = 2;
        refused(s, &shapes, batches, "history holds 1 epochs");
        let mut s = state();
        s.optimizer.buffers = vec![("momentum_buffer".into(), vec![array![1.0].into_dyn()])];
        refused(s, &shapes, batches, "momentum_buffer have shapes [[1]]");
        let mut s = state();
        s.parameters[0][[0, 1]] = f64::NAN;
        refused(s, &shapes, batches, "not finite");
    }
}
