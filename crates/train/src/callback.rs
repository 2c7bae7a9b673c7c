//! [`Callback`]s: hooks into the training loop, and what they are told.

/// What a callback tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Carry on.
    Continue,
    /// Stop after this step or epoch; the history so far is returned.
    Stop,
}

/// One optimiser step, as the loop reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The step, counted from 1 over the run.
    pub step: usize,
    /// The batch within the epoch, counted from 1.
    pub batch: usize,
    /// The number of batches per epoch.
    pub batches: usize,
    /// The examples in this batch.
    pub batch_size: usize,
    /// The batch's loss, before the update.
    pub loss: f64,
    /// The learning rate the update used.
    pub learning_rate: f64,
}

/// One epoch's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The mean loss over the epoch's batches (weighted by batch size), as the weights moved.
    pub train_loss: f64,
    /// The fraction of training examples classified right as the epoch went (classifiers).
    pub train_accuracy: Option<f64>,
    /// The loss on the validation set at the end of the epoch.
    pub val_loss: Option<f64>,
    /// The accuracy on the validation set at the end of the epoch (classifiers).
    pub val_accuracy: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Seconds since training started, at the end of the epoch.
    pub seconds: f64,
}

/// A hook into [`Trainer::fit`](crate::Trainer::fit). Both methods default to doing nothing.
///
/// ```
/// use wengert_train::{Callback, Control, EpochRecord};
///
/// /// Stops once the training loss is below a target.
/// struct StopBelow(f64);
///
/// impl Callback for StopBelow {
///     fn on_epoch(&mut self, record: &EpochRecord) -> Control {
///         if record.train_loss < self.0 { Control::Stop } else { Control::Continue }
///     }
/// }
/// ```
pub trait Callback {
    /// Called after every optimiser step.
    fn on_step(&mut self, _step: &StepInfo) -> Control {
        Control::Continue
    }

    /// Called after every epoch, once its validation metrics are known.
    fn on_epoch(&mut self, _record: &EpochRecord) -> Control {
        Control::Continue
    }
}

/// A borrowed callback is a callback, so that its owner can read what it gathered once
/// training is over: `trainer.with_callback(&mut mine)`.
impl<C: Callback + ?Sized> Callback for &mut C {
    fn on_step(&mut self, step: &StepInfo) -> Control {
        (**self).on_step(step)
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        (**self).on_epoch(record)
    }
}

/// A closure called after every epoch, as a [`Callback`].
///
/// ```
/// use wengert_train::{EpochRecord, OnEpoch};
/// let log = OnEpoch(|r: &EpochRecord| println!("epoch {} loss {:.4}", r.epoch, r.train_loss));
/// ```
pub struct OnEpoch<F>(pub F);

impl<F: FnMut(&EpochRecord)> Callback for OnEpoch<F> {
    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        (self.0)(record);
        Control::Continue
    }
}

/// A closure called after every step, as a [`Callback`].
pub struct OnStep<F>(pub F);

impl<F: FnMut(&StepInfo)> Callback for OnStep<F> {
    fn on_step(&mut self, step: &StepInfo) -> Control {
        (self.0)(step);
        Control::Continue
    }
}
