//! [`TrainState`]: everything that decides the rest of a training run, so that a run can
//! stop and resume bit for bit.

use ndarray::ArrayD;
use wengert_ops::Float;

use crate::{History, OptimizerState, RngState};

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
    /// The learning rate the schedule scales.
    pub base_learning_rate: f64,
    /// Seconds spent training so far (carried into a resumed run's records).
    pub elapsed_seconds: f64,
    /// The model's parameters, in [`Module::parameters`](crate::Module::parameters) order.
    pub parameters: Vec<ArrayD<E>>,
    /// The optimiser's state.
    pub optimizer: OptimizerState<E>,
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
