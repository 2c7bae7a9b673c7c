//! The loop: epochs of batches, each batch a step, each epoch a record, with the callbacks,
//! early stopping, the checkpoint hook and the best weights in between.

use std::time::Instant;

use wengert_ops::Float;

use super::{History, StopReason, Trainer};
use crate::callback::{Callback, Control, EpochRecord, StepInfo};
use crate::state::{Batches, EpochProgress, Every, TrainState};
use crate::{Dataset, Error, Module, Result, Rng};

/// What one run trains on, and since when.
struct Run<'d, E: Float> {
    train: &'d Dataset<E>,
    validation: Option<&'d Dataset<E>>,
    batches: Batches,
    started: Instant,
    /// Seconds spent before this piece of the run (a resumed run's earlier pieces).
    seconds_before: f64,
}

impl<E: Float> Run<'_, E> {
    /// Seconds spent training, this piece of the run and the earlier ones.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }
}

/// How the loop goes on after a part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// To the next batch or epoch.
    Go,
    /// A callback stopped the run.
    Stopped,
    /// The checkpoint hook paused the run.
    Paused,
}

impl<E: Float> Trainer<'_, E> {
    /// The loop, from `state` to the end of the run (or a pause), with the parameters on the
    /// tape; the model holds them again when it returns, even with an error.
    pub(super) fn run<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
        state: TrainState<E>,
    ) -> Result<History> {
        self.bound.bind(model)?;
        let run = Run {
            train,
            validation,
            batches: self.batches(train),
            started: Instant::now(),
            seconds_before: state.elapsed_seconds,
        };
        let result = self.run_bound(model, &run, state);
        if result.is_err() {
            // The steps taken before the error stand, as they would on the model's own arrays.
            let _ = self.bound.write_back(model);
        }
        result
    }

    /// Epoch after epoch until the last, early stopping, a callback's stop or a pause.
    fn run_bound<M: Module<E>>(
        &mut self,
        model: &mut M,
        run: &Run<'_, E>,
        mut s: TrainState<E>,
    ) -> Result<History> {
        let mut rng = Rng::from_state(&s.rng);
        let mut flow = Flow::Go;
        while flow == Flow::Go
            && s.history.stop_reason != StopReason::EarlyStopping
            && s.epoch < self.config.epochs
        {
            if s.batch == 0 {
                start_epoch(&mut s, &mut rng);
            }
            // Each epoch keeps the pool's other threads awake afresh: they go back to rayon
            // after a pause (the checkpoint written at an epoch's end, a slow callback).
            let mut epoch = |this: &mut Self| -> Result<Flow> {
                let flow = this.run_epoch(model, run, &mut s, &rng)?;
                if flow == Flow::Go {
                    this.end_epoch(model, run, &mut s, &rng)
                } else {
                    Ok(flow)
                }
            };
            flow = if self.threads_awake {
                wengert_ops::stay_awake(|| epoch(self))?
            } else {
                epoch(self)?
            };
        }
        self.finish(model, s, flow == Flow::Paused)
    }

    /// The rest of the epoch in progress, batch after batch.
    fn run_epoch<M: Module<E>>(
        &mut self,
        model: &mut M,
        run: &Run<'_, E>,
        s: &mut TrainState<E>,
        rng: &Rng,
    ) -> Result<Flow> {
        while s.batch < run.batches.count {
            let info = self.train_batch(model, run, s)?;
            if self.notify(|c| c.on_step(&info)) == Control::Stop {
                s.history.stop_reason = StopReason::Callback;
                let record = self.epoch_record(model, run, s.epoch, &s.progress)?;
                s.history.epochs.push(record);
                return Ok(Flow::Stopped);
            }
            if s.batch < run.batches.count
                && self.due(|e| e.due_mid_epoch(s.history.steps))
                && self.hand_out(model, s, rng, run.seconds())? == Control::Stop
            {
                return Ok(Flow::Paused);
            }
        }
        Ok(Flow::Go)
    }

    /// One step on the epoch's next batch, added to the epoch's sums.
    fn train_batch<M: Module<E>>(
        &mut self,
        model: &M,
        run: &Run<'_, E>,
        s: &mut TrainState<E>,
    ) -> Result<StepInfo> {
        let (epoch, batch) = (s.epoch, s.batch);
        let lr = self.learning_rate(s)?;
        let indices = &s.order[run.batches.range(batch)];
        let (loss, hits) = self.step(model, run.train, indices, lr, s.history.steps)?;
        let size = indices.len();
        s.history.steps += 1;
        s.batch += 1;
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss {
                epoch: epoch + 1,
                step: s.history.steps,
                loss,
            });
        }
        let p = &mut s.progress;
        p.loss_sum += loss * size as f64;
        p.correct += hits;
        p.seen += size;
        p.learning_rate = lr;
        Ok(StepInfo {
            epoch: epoch + 1,
            step: s.history.steps,
            batch: batch + 1,
            batches: run.batches.count,
            batch_size: size,
            loss,
            learning_rate: lr,
        })
    }

    /// The rate of the next step: the schedule's value at the state's epoch and step, from its
    /// base rate; an error naming the step if it is negative or not finite (a schedule
    /// function can give anything).
    fn learning_rate(&self, s: &TrainState<E>) -> Result<f64> {
        let (epoch, step) = (s.epoch, s.history.steps);
        let lr = (self.config.schedule).learning_rate(s.base_learning_rate, epoch, step);
        if lr.is_finite() && lr >= 0.0 {
            return Ok(lr);
        }
        Err(Error::InvalidConfig(format!(
            "the schedule gave the learning rate {lr} for step {} (epoch {}); a rate must be \
             finite and not negative",
            step + 1,
            epoch + 1
        )))
    }

    /// Records the epoch just trained, keeps the best weights, lowers the rate on a plateau,
    /// asks the callbacks, early stopping and the checkpoint hook.
    fn end_epoch<M: Module<E>>(
        &mut self,
        model: &mut M,
        run: &Run<'_, E>,
        s: &mut TrainState<E>,
        rng: &Rng,
    ) -> Result<Flow> {
        let record = self.epoch_record(model, run, s.epoch, &s.progress)?;
        s.history.epochs.push(record);
        s.epoch += 1;
        s.batch = 0;
        self.track_best(model, s, &record)?;
        if let Some(plateau) = &self.config.plateau {
            let monitored = record.val_loss.unwrap_or(record.train_loss);
            s.base_learning_rate =
                plateau.end_epoch(&mut s.plateau, monitored, s.base_learning_rate);
        }
        if self.notify(|c| c.on_epoch(&record)) == Control::Stop {
            s.history.stop_reason = StopReason::Callback;
            return Ok(Flow::Stopped);
        }
        if self.config.patience.is_some_and(|p| s.since_best >= p) {
            s.history.stop_reason = StopReason::EarlyStopping;
        }
        if self.due(|e| e.due_at_epoch_end(s.epoch, s.history.steps))
            && self.hand_out(model, s, rng, run.seconds())? == Control::Stop
        {
            return Ok(Flow::Paused);
        }
        Ok(Flow::Go)
    }

    /// Early stopping's memory: the lowest monitored loss (the validation loss, else the
    /// training loss) and, when the run restores them, that epoch's weights. Kept with or
    /// without patience, so that the best epoch reported and the weights the run ends with
    /// always agree.
    fn track_best<M: Module<E>>(
        &mut self,
        model: &mut M,
        s: &mut TrainState<E>,
        record: &EpochRecord,
    ) -> Result<()> {
        let monitored = record.val_loss.unwrap_or(record.train_loss);
        if monitored >= s.best_loss {
            s.since_best += 1;
            return Ok(());
        }
        s.best_loss = monitored;
        s.history.best_epoch = Some(record.epoch);
        s.since_best = 0;
        if self.config.restore_best {
            self.bound.write_back(model)?;
            s.best_parameters = Some(model.parameters().iter().map(|p| p.to_owned()).collect());
            s.best_buffers = Some(model.buffers().iter().map(|b| b.to_owned()).collect());
        }
        Ok(())
    }

    /// Puts the weights back into `model`: the last ones, then the best epoch's if the run
    /// was not paused and ended elsewhere.
    fn finish<M: Module<E>>(
        &mut self,
        model: &mut M,
        mut s: TrainState<E>,
        paused: bool,
    ) -> Result<History> {
        self.bound.write_back(model)?;
        if paused {
            s.history.stop_reason = StopReason::Paused;
            return Ok(s.history);
        }
        if let Some(best) = s.best_parameters
            && s.history.best_epoch != s.history.last().map(|r| r.epoch)
        {
            for (mut p, b) in model.parameters_mut().into_iter().zip(best) {
                p.assign(&b);
            }
            for (mut b, saved) in model
                .buffers_mut()
                .into_iter()
                .zip(s.best_buffers.iter().flatten())
            {
                b.assign(saved);
            }
        }
        Ok(s.history)
    }

    /// Whether a checkpoint hook is set and due.
    fn due(&self, when: impl FnOnce(Every) -> bool) -> bool {
        self.checkpoint
            .as_ref()
            .is_some_and(|(every, _)| when(*every))
    }

    /// Hands the state (with the live parameters, optimiser state and random stream) to the
    /// checkpoint hook, and returns what it says.
    fn hand_out<M: Module<E>>(
        &mut self,
        model: &mut M,
        s: &mut TrainState<E>,
        rng: &Rng,
        seconds: f64,
    ) -> Result<Control> {
        self.bound.write_back(model)?;
        s.rng = rng.state();
        s.elapsed_seconds = seconds;
        s.parameters = model.parameters().iter().map(|p| p.to_owned()).collect();
        s.buffers = model.buffers().iter().map(|b| b.to_owned()).collect();
        s.optimizer = self.optimizer.state();
        let control = match self.checkpoint.as_mut() {
            Some((_, save)) => save(s),
            None => Ok(Control::Continue),
        };
        s.parameters = Vec::new();
        s.buffers = Vec::new();
        control
    }

    /// The record of epoch `epoch` (from 0) from its sums, with the validation set evaluated.
    fn epoch_record<M: Module<E>>(
        &mut self,
        model: &M,
        run: &Run<'_, E>,
        epoch: usize,
        tally: &EpochProgress,
    ) -> Result<EpochRecord> {
        let val = match run.validation {
            Some(v) if !v.is_empty() => Some(self.evaluate_bound(model, v)?),
            _ => None,
        };
        let seen = tally.seen.max(1) as f64;
        Ok(EpochRecord {
            epoch: epoch + 1,
            train_loss: tally.loss_sum / seen,
            train_accuracy: self
                .classifies(run.train)
                .then(|| tally.correct as f64 / seen),
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.and_then(|v| v.accuracy),
            learning_rate: tally.learning_rate,
            seconds: run.seconds(),
        })
    }

    /// Calls every callback (all of them, even after one asks to stop) and says whether any
    /// asked to stop.
    fn notify(&mut self, mut f: impl FnMut(&mut dyn Callback) -> Control) -> Control {
        let mut control = Control::Continue;
        for c in &mut self.callbacks {
            if f(c.as_mut()) == Control::Stop {
                control = Control::Stop;
            }
        }
        control
    }
}

/// Shuffles the order the epoch inherits and starts its sums at the base rate.
fn start_epoch<E: Float>(s: &mut TrainState<E>, rng: &mut Rng) {
    rng.shuffle(&mut s.order);
    s.progress = EpochProgress {
        learning_rate: s.base_learning_rate,
        ..EpochProgress::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sgd, TrainConfig};
    use ndarray::array;

    /// XOR's four points, in batches of 2: two steps an epoch.
    fn xor() -> Dataset<f64> {
        let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        Dataset::classification(x, vec![0, 1, 1, 0], 2).unwrap()
    }

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 2,
            ..TrainConfig::default()
        }
    }

    /// Asks to stop at step `at`.
    struct StopAtStep(usize);

    impl Callback for StopAtStep {
        fn on_step(&mut self, step: &StepInfo) -> Control {
            if step.step == self.0 {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }

    #[test]
    fn a_stop_mid_epoch_records_the_part_of_the_epoch_that_ran() {
        let mut model = crate::Mlp::builder(&[2, 3, 2]).seed(0).build().unwrap();
        let mut trainer =
            Trainer::new(config(5), Sgd::new(0.1).unwrap()).with_callback(StopAtStep(3));
        let history = trainer.fit(&mut model, &xor(), None).unwrap();
        assert_eq!(history.stop_reason, StopReason::Callback);
        assert_eq!(history.steps, 3);
        // Epoch 1 whole, then epoch 2's first batch of 2 examples.
        assert_eq!(history.epochs.len(), 2);
        assert_eq!(history.epochs[1].epoch, 2);
    }

    #[test]
    fn a_pause_mid_epoch_records_nothing_of_it_and_hands_out_the_position() {
        let mut model = crate::Mlp::builder(&[2, 3, 2]).seed(0).build().unwrap();
        let mut trainer = Trainer::new(config(5), Sgd::new(0.1).unwrap());
        let mut at = None;
        trainer.checkpoint_every(Every::Steps(3), |s: &TrainState<f64>| {
            at = Some((s.epoch, s.batch, s.progress.seen, s.parameters.len()));
            Ok(Control::Stop)
        });
        let history = trainer.fit(&mut model, &xor(), None).unwrap();
        drop(trainer);
        assert_eq!(history.stop_reason, StopReason::Paused);
        assert_eq!((history.steps, history.epochs.len()), (3, 1));
        // In epoch 2 (from 0: 1), one batch of 2 done, with the model's 4 arrays.
        assert_eq!(at, Some((1, 1, 2, 4)));
    }

    #[test]
    fn the_best_epochs_weights_are_kept_and_restored_only_when_asked() {
        // At this rate the loss rises again after epoch 2.
        let run = |restore_best: bool| {
            let mut model = crate::Mlp::builder(&[2, 3, 2]).seed(0).build().unwrap();
            let config = TrainConfig {
                restore_best,
                ..config(3)
            };
            let mut trainer = Trainer::new(config, Sgd::new(0.5).unwrap());
            let history = trainer.fit(&mut model, &xor(), None).unwrap();
            (model, history)
        };
        let (restored, h) = run(true);
        let (last, h_last) = run(false);
        let losses = |h: &History| h.epochs.iter().map(|r| r.train_loss).collect::<Vec<_>>();
        assert_eq!(losses(&h), losses(&h_last));
        assert_eq!(h.best_epoch, h_last.best_epoch);
        let best = h.best_epoch.unwrap();
        assert!(
            best < 3,
            "the case needs a best epoch before the last: {h:?}"
        );
        assert_ne!(restored, last);
        // The weights restored are those of the best epoch: a run of that many epochs.
        let mut short = crate::Mlp::builder(&[2, 3, 2]).seed(0).build().unwrap();
        Trainer::new(config(best), Sgd::new(0.5).unwrap())
            .fit(&mut short, &xor(), None)
            .unwrap();
        assert_eq!(restored, short);
    }
}
