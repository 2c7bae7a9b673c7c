//! [`Trainer`]: the loop that records, differentiates and updates, epoch after epoch.

use std::time::Instant;

use ndarray::{Array2, ArrayD, ArrayView2};
use wengert_ops::{Float, Shape};
use wengert_tape::{Mark, NodeId, Shaped, Tape};

use crate::callback::{Callback, Control, EpochRecord, StepInfo};
use crate::loss::LossRecorder;
use crate::metrics::{ConfusionMatrix, argmax, argmax_rows};
use crate::module::record_parameters;
use crate::reduce::{GradientReducer, LocalReducer, STATS, TreeSum, check_layout};
use crate::state::{EpochProgress, Every, TrainState};
use crate::{
    Dataset, Error, Loss, Module, Optimizer, ParameterIds, Result, Rng, Schedule, Targets,
};

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set (default 20).
    pub epochs: usize,
    /// Examples per optimiser step (default 32). The whole training set (or more) is batch
    /// gradient descent, 1 is stochastic gradient descent, anything between is mini-batch
    /// gradient descent; the examples are reshuffled every epoch and the last batch of an epoch
    /// may be smaller.
    pub batch_size: usize,
    /// The objective (default cross-entropy).
    pub loss: Loss,
    /// The learning rate over time (default constant).
    pub schedule: Schedule,
    /// Clips the gradients' global L2 norm to this before each update (default none).
    pub clip_grad_norm: Option<f64>,
    /// Stops when the validation loss (the training loss, without a validation set) has not
    /// improved for this many epochs (default: never).
    pub patience: Option<usize>,
    /// Ends with the weights of the epoch with the lowest monitored loss, the
    /// [`History::best_epoch`], whether or not `patience` is set (default true); false keeps
    /// the last epoch's weights. (With it, the best epoch a run reports is always the one
    /// whose weights it ends with.)
    pub restore_best: bool,
    /// The seed of the batch order (default 0).
    pub seed: u64,
    /// Examples per forward pass when evaluating (default 1024); does not change results.
    pub eval_batch_size: usize,
    /// Micro-batches per optimiser step (default 1: none): each batch is cut into this many
    /// micro-batches of `batch_size / accumulate` examples, recorded and differentiated one
    /// after another, and their gradients summed in a fixed tree order (see
    /// [`GradientReducer`]) before one update. Memory follows the micro-batch; the update is
    /// the batch's, equal to the whole batch's gradient up to rounding. `batch_size` must be a
    /// multiple of it, and it a multiple of the reducer's process count.
    pub accumulate: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 32,
            loss: Loss::CrossEntropy,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            patience: None,
            restore_best: true,
            seed: 0,
            eval_batch_size: 1024,
            accumulate: 1,
        }
    }
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every epoch ran.
    Completed,
    /// The monitored loss stopped improving for `patience` epochs.
    EarlyStopping,
    /// A callback asked to stop.
    Callback,
    /// A [checkpoint hook](Trainer::checkpoint_every) asked to stop; the run can be
    /// [resumed](Trainer::resume) from the state it was handed.
    Paused,
}

/// What a run did, epoch by epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// One record per epoch that ran.
    pub epochs: Vec<EpochRecord>,
    /// The epoch (from 1) with the lowest monitored loss.
    pub best_epoch: Option<usize>,
    /// Why the run ended.
    pub stop_reason: StopReason,
    /// Optimiser steps taken.
    pub steps: usize,
}

impl History {
    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}

/// A model's loss (and, for a classifier, accuracy and confusion matrix) on a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The mean loss over the examples.
    pub loss: f64,
    /// The fraction classified right (classifiers).
    pub accuracy: Option<f64>,
    /// Actual against predicted classes (classifiers).
    pub confusion: Option<ConfusionMatrix>,
}

/// Trains a [`Module`] with an [`Optimizer`]: shuffles the examples every epoch, records the
/// forward pass of each batch, differentiates, optionally clips, updates, then evaluates on
/// the validation set under [`Tape::no_grad`], calls the [`Callback`]s, and stops early if
/// asked.
///
/// The model's parameters live on the trainer's tape while it trains: recorded once, before a
/// [`Mark`] the tape is rewound to every step, and updated there in place by the optimiser
/// (through [`Tape::update_parameters`]). The model's own arrays are written back when an
/// epoch needs them (the best weights, a checkpoint) and when training stops. Every buffer is
/// reused from one step to the next: a step allocates nothing once the first epoch has sized
/// them, when the loop runs inside a rayon pool (build the trainer and call `fit` in
/// `pool.install(|| ...)`, as `tests/alloc` does). From outside a pool, each matrix product
/// large enough to be split across threads enters rayon's global pool through its job queue,
/// which allocates now and then and costs a hand-over between threads per product.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Adam, Dataset, Mlp, TrainConfig, Trainer};
///
/// // XOR, by full-batch gradient descent.
/// let x = array![[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
/// let data = Dataset::classification(x, vec![0, 1, 1, 0], 2)?;
/// let mut model = Mlp::builder(&[2, 8, 2]).seed(1).build()?;
/// let config = TrainConfig { epochs: 300, batch_size: 4, ..TrainConfig::default() };
/// let mut trainer = Trainer::new(config, Adam::new(0.05)?);
/// let history = trainer.fit(&mut model, &data, None)?;
/// assert_eq!(history.last().unwrap().train_accuracy, Some(1.0));
/// assert_eq!(trainer.evaluate(&model, &data)?.accuracy, Some(1.0));
/// # Ok::<(), wengert_train::Error>(())
/// ```
pub struct Trainer<'a, E: Float> {
    config: TrainConfig,
    optimizer: Box<dyn Optimizer<E> + 'a>,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    tape: Tape<E>,
    losses: LossRecorder,
    batch: BatchBuffers<E>,
    bound: Bound,
    checkpoint: Option<(Every, CheckpointHook<'a, E>)>,
    reducer: Box<dyn GradientReducer<E> + 'a>,
    /// The micro-batches' gradient sums, when accumulating or sharing the work.
    tree: TreeSum<E>,
}

/// The model's parameters as they live on the tape: recorded first on a cleared tape (so that
/// parameter `i` is node `i`), then a mark every step rewinds to.
#[derive(Debug)]
struct Bound {
    ids: Vec<NodeId>,
    shapes: Vec<Shape>,
    mark: Mark,
}

/// What [`Trainer::checkpoint_every`] calls.
type CheckpointHook<'a, E> = Box<dyn FnMut(&TrainState<E>) -> Result<Control> + 'a>;

/// Buffers reused from batch to batch.
#[derive(Debug, Default)]
struct BatchBuffers<E> {
    labels: Vec<usize>,
    /// A clipped gradient, handed to the optimiser in place of the tape's.
    clipped: Vec<E>,
}

impl<E: Float> std::fmt::Debug for Trainer<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("optimizer", &self.optimizer.name())
            .field("callbacks", &self.callbacks.len())
            .field("rank", &self.reducer.rank())
            .field("ranks", &self.reducer.ranks())
            .finish()
    }
}

impl<'a, E: Float> Trainer<'a, E> {
    /// A trainer with this configuration and optimiser; the optimiser's learning rate is the
    /// base rate the schedule scales.
    pub fn new(config: TrainConfig, optimizer: impl Optimizer<E> + 'a) -> Self {
        Trainer {
            config,
            optimizer: Box::new(optimizer),
            callbacks: Vec::new(),
            tape: Tape::new(),
            losses: LossRecorder::default(),
            batch: BatchBuffers::default(),
            bound: Bound {
                ids: Vec::new(),
                shapes: Vec::new(),
                mark: Tape::<E>::new().mark(),
            },
            checkpoint: None,
            reducer: Box::new(LocalReducer),
            tree: TreeSum::default(),
        }
    }

    /// Shares every step with other processes through `reducer` (builder style): this process
    /// computes the gradients of its own micro-batches (see [`TrainConfig::accumulate`]), and
    /// every process steps with their sum, bit for bit the same everywhere. Every process must
    /// run the same trainer on the same data and model, and its callbacks and checkpoint hook
    /// must stop the run at the same step everywhere. A process whose run returns an error
    /// must end the others (as `MPI_Abort` does): they would wait for it at the next step.
    pub fn with_reducer(mut self, reducer: impl GradientReducer<E> + 'a) -> Self {
        self.reducer = Box::new(reducer);
        self
    }

    /// Adds a callback, called in the order added.
    pub fn add_callback(&mut self, callback: impl Callback + 'a) {
        self.callbacks.push(Box::new(callback));
    }

    /// Adds a callback (builder style).
    pub fn with_callback(mut self, callback: impl Callback + 'a) -> Self {
        self.add_callback(callback);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &dyn Optimizer<E> {
        self.optimizer.as_ref()
    }

    /// The number of nodes the last recording left on the tape, the parameters included (the
    /// tape is rewound, not regrown, every step).
    pub fn tape_len(&self) -> usize {
        self.tape.len()
    }

    /// Trains `model` on `train`, validating on `validation` after every epoch.
    ///
    /// Errors before the first step on a configuration that cannot work (a zero batch size, a
    /// loss that does not fit the targets, a validation set with other features), and
    /// [`Error::NonFiniteLoss`] naming the step if the loss becomes NaN or infinite.
    pub fn fit<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
    ) -> Result<History> {
        self.check(train, validation)?;
        let state = TrainState {
            epoch: 0,
            batch: 0,
            order: (0..train.len()).collect(),
            rng: Rng::with_stream(self.config.seed, crate::rng_streams::SHUFFLE).state(),
            progress: EpochProgress::default(),
            history: History {
                epochs: Vec::new(),
                best_epoch: None,
                stop_reason: StopReason::Completed,
                steps: 0,
            },
            best_loss: f64::INFINITY,
            since_best: 0,
            best_parameters: None,
            base_learning_rate: self.optimizer.learning_rate(),
            elapsed_seconds: 0.0,
            // Filled in when the state is handed out.
            parameters: Vec::new(),
            optimizer: self.optimizer.state(),
        };
        self.run(model, train, validation, state)
    }

    /// Continues the run `state` was taken from (by
    /// [`checkpoint_every`](Trainer::checkpoint_every)), on the same data with the same
    /// configuration (the number of epochs may grow) and optimiser: the model's parameters
    /// and the optimiser's state are set from it, and the run ends as if it had never
    /// stopped, bit for bit. The state's base learning rate is kept.
    ///
    /// Errors, changing nothing, if the state does not fit: another number of examples or
    /// batch size, parameters of other shapes, another optimiser or its settings.
    pub fn resume<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
        mut state: TrainState<E>,
    ) -> Result<History> {
        self.check(train, validation)?;
        self.check_state(model, train, &state)?;
        self.optimizer.load_state(&state.optimizer)?;
        for (mut p, saved) in model.parameters_mut().into_iter().zip(&state.parameters) {
            p.assign(saved);
        }
        // The state's copy is not needed while the model holds the live one.
        state.parameters = Vec::new();
        if state.history.stop_reason != StopReason::EarlyStopping {
            state.history.stop_reason = StopReason::Completed;
        }
        self.run(model, train, validation, state)
    }

    /// Hands the run's [`TrainState`] to `save` at the points `every` names (and never
    /// again after `save` returns [`Control::Stop`], which pauses the run: [`fit`](Trainer::fit)
    /// returns at once with [`StopReason::Paused`], the best weights not restored).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_train::{Adam, Control, Dataset, Every, Mlp, TrainConfig, TrainState, Trainer};
    ///
    /// let x = array![[0.0f64, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    /// let data = Dataset::classification(x, vec![0, 1, 1, 0], 2)?;
    /// let config = TrainConfig { epochs: 6, batch_size: 3, ..TrainConfig::default() };
    ///
    /// // A run that never stops.
    /// let mut straight = Mlp::builder(&[2, 4, 2]).seed(1).build()?;
    /// Trainer::new(config.clone(), Adam::new(0.05)?).fit(&mut straight, &data, None)?;
    ///
    /// // A run paused after step 5 (in the middle of epoch 3), then resumed afresh.
    /// let mut saved: Option<TrainState<f64>> = None;
    /// let mut model = Mlp::builder(&[2, 4, 2]).seed(1).build()?;
    /// let mut first = Trainer::new(config.clone(), Adam::new(0.05)?);
    /// first.checkpoint_every(Every::Steps(5), |s: &TrainState<f64>| {
    ///     saved = Some(s.clone());
    ///     Ok(Control::Stop)
    /// });
    /// first.fit(&mut model, &data, None)?;
    /// drop(first);
    ///
    /// let mut model = Mlp::builder(&[2, 4, 2]).seed(99).build()?;
    /// let mut second = Trainer::new(config, Adam::new(0.05)?);
    /// second.resume(&mut model, &data, None, saved.unwrap())?;
    /// assert_eq!(model, straight);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn checkpoint_every(
        &mut self,
        every: Every,
        save: impl FnMut(&TrainState<E>) -> Result<Control> + 'a,
    ) {
        self.checkpoint = Some((every, Box::new(save)));
    }

    /// Checks that `state` fits this trainer, `model` and `train`.
    fn check_state<M: Module<E>>(
        &self,
        model: &M,
        train: &Dataset<E>,
        state: &TrainState<E>,
    ) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(format!("cannot resume: {m}")));
        let n = train.len();
        if state.order.len() != n {
            return bad(format!(
                "the run trained on {} examples, this training set has {n}",
                state.order.len()
            ));
        }
        let mut seen = vec![false; n];
        for &i in &state.order {
            if i >= n || std::mem::replace(&mut seen[i], true) {
                return bad("the saved data order is not a permutation of the examples".into());
            }
        }
        let batch_size = self.config.batch_size.min(n);
        let batches = n.div_ceil(batch_size);
        if state.batch > 0 && state.progress.seen != state.batch * batch_size {
            return bad(format!(
                "the run saw {} examples in {} batches of its epoch; this trainer's batches \
                 hold {batch_size}",
                state.progress.seen, state.batch
            ));
        }
        if state.batch >= batches {
            return bad(format!(
                "the saved position (batch {} of {batches}) is past the end of an epoch",
                state.batch
            ));
        }
        if state.history.epochs.len() != state.epoch {
            return bad(format!(
                "the history holds {} epochs but the run is at epoch {}",
                state.history.epochs.len(),
                state.epoch
            ));
        }
        let shapes = |arrays: &[ArrayD<E>]| -> Vec<Vec<usize>> {
            arrays.iter().map(|a| a.shape().to_vec()).collect()
        };
        let expected: Vec<Vec<usize>> = model
            .parameters()
            .iter()
            .map(|p| p.shape().to_vec())
            .collect();
        if shapes(&state.parameters) != expected {
            return bad(format!(
                "the saved parameters have shapes {:?}, the model's {expected:?}",
                shapes(&state.parameters)
            ));
        }
        if let Some(best) = &state.best_parameters
            && shapes(best) != expected
        {
            return bad(format!(
                "the saved best parameters have shapes {:?}, the model's {expected:?}",
                shapes(best)
            ));
        }
        for (name, buffers) in &state.optimizer.buffers {
            if shapes(buffers) != expected {
                return bad(format!(
                    "the optimiser's {name} has shapes {:?}, the model's parameters {expected:?}",
                    shapes(buffers)
                ));
            }
        }
        if state.parameters.iter().flatten().any(|x| !x.is_finite()) {
            return bad("a saved parameter is not finite".into());
        }
        Ok(())
    }

    /// Records `model`'s parameters on a cleared tape and marks the point after them.
    fn bind<M: Module<E>>(&mut self, model: &M) -> Result<()> {
        self.tape.clear();
        self.bound.ids = record_parameters(model, &mut self.tape)?;
        self.bound.shapes.clear();
        for &id in &self.bound.ids {
            self.bound.shapes.push(self.tape.shape(id)?);
        }
        self.bound.mark = self.tape.mark();
        Ok(())
    }

    /// Copies the parameters living on the tape back into `model`.
    fn write_back<M: Module<E>>(&self, model: &mut M) -> Result<()> {
        let mut params = model.parameters_mut();
        if params.len() != self.bound.ids.len() {
            return Err(Error::Model(format!(
                "the model lists {} parameters, but {} when training began",
                params.len(),
                self.bound.ids.len()
            )));
        }
        for (p, &id) in params.iter_mut().zip(&self.bound.ids) {
            let value = self.tape.value(id)?;
            if p.shape() != value.shape() {
                return Err(Error::Model(format!(
                    "a parameter of shape {:?} on the tape cannot go back into one of shape {:?}",
                    value.shape(),
                    p.shape()
                )));
            }
            p.assign(&value);
        }
        Ok(())
    }

    /// The loop, from `s` to the end of the run (or a pause), with the parameters on the tape;
    /// the model holds them again when it returns, even with an error.
    fn run<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
        s: TrainState<E>,
    ) -> Result<History> {
        self.bind(model)?;
        let result = self.run_bound(model, train, validation, s);
        if result.is_err() {
            // The steps taken before the error stand, as they would on the model's own arrays.
            let _ = self.write_back(model);
        }
        result
    }

    fn run_bound<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
        mut s: TrainState<E>,
    ) -> Result<History> {
        let start = Instant::now();
        let elapsed_before = s.elapsed_seconds;
        let seconds = || elapsed_before + start.elapsed().as_secs_f64();
        let n = train.len();
        let batch_size = self.config.batch_size.min(n);
        let batches = n.div_ceil(batch_size);
        let base_lr = s.base_learning_rate;
        let mut rng = Rng::from_state(&s.rng);
        // Kept with or without patience, so that the reported best epoch and the weights the
        // run ends with always agree.
        let keep_best = self.config.restore_best;
        let mut paused = false;

        'epochs: while s.history.stop_reason != StopReason::EarlyStopping
            && s.epoch < self.config.epochs
        {
            let epoch = s.epoch;
            if s.batch == 0 {
                rng.shuffle(&mut s.order);
                s.progress = EpochProgress {
                    learning_rate: base_lr,
                    ..EpochProgress::default()
                };
            }
            while s.batch < batches {
                let b = s.batch;
                let lr = self
                    .config
                    .schedule
                    .learning_rate(base_lr, epoch, s.history.steps);
                let indices = &s.order[b * batch_size..((b + 1) * batch_size).min(n)];
                let (loss, hits) = if self.config.accumulate == 1 && self.reducer.ranks() == 1 {
                    self.step(model, train, indices, lr)?
                } else {
                    self.step_accumulated(model, train, indices, lr)?
                };
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
                p.loss_sum += loss * indices.len() as f64;
                p.correct += hits;
                p.seen += indices.len();
                p.learning_rate = lr;
                let info = StepInfo {
                    epoch: epoch + 1,
                    step: s.history.steps,
                    batch: b + 1,
                    batches,
                    batch_size: indices.len(),
                    loss,
                    learning_rate: lr,
                };
                if self.notify(|c| c.on_step(&info)) == Control::Stop {
                    s.history.stop_reason = StopReason::Callback;
                    let record =
                        self.epoch_record(model, validation, epoch, &s.progress, seconds())?;
                    s.history.epochs.push(record);
                    break 'epochs;
                }
                if s.batch < batches
                    && self.due(|e| e.due_mid_epoch(s.history.steps))
                    && self.hand_out(model, &mut s, &rng, seconds())? == Control::Stop
                {
                    paused = true;
                    break 'epochs;
                }
            }
            let record = self.epoch_record(model, validation, epoch, &s.progress, seconds())?;
            s.history.epochs.push(record);
            s.epoch += 1;
            s.batch = 0;

            let monitored = record.val_loss.unwrap_or(record.train_loss);
            if monitored < s.best_loss {
                s.best_loss = monitored;
                s.history.best_epoch = Some(epoch + 1);
                s.since_best = 0;
                if keep_best {
                    self.write_back(model)?;
                    s.best_parameters =
                        Some(model.parameters().iter().map(|p| p.to_owned()).collect());
                }
            } else {
                s.since_best += 1;
            }
            if self.notify(|c| c.on_epoch(&record)) == Control::Stop {
                s.history.stop_reason = StopReason::Callback;
                break;
            }
            if self.config.patience.is_some_and(|p| s.since_best >= p) {
                s.history.stop_reason = StopReason::EarlyStopping;
            }
            if self.due(|e| e.due_at_epoch_end(s.epoch, s.history.steps))
                && self.hand_out(model, &mut s, &rng, seconds())? == Control::Stop
            {
                paused = true;
                break;
            }
        }
        self.write_back(model)?;
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
        self.write_back(model)?;
        s.rng = rng.state();
        s.elapsed_seconds = seconds;
        s.parameters = model.parameters().iter().map(|p| p.to_owned()).collect();
        s.optimizer = self.optimizer.state();
        let control = match self.checkpoint.as_mut() {
            Some((_, save)) => save(s),
            None => Ok(Control::Continue),
        };
        s.parameters = Vec::new();
        control
    }

    fn epoch_record<M: Module<E>>(
        &mut self,
        model: &M,
        validation: Option<&Dataset<E>>,
        epoch: usize,
        tally: &EpochProgress,
        seconds: f64,
    ) -> Result<EpochRecord> {
        let val = match validation {
            Some(v) if !v.is_empty() => Some(self.evaluate_bound(model, v)?),
            _ => None,
        };
        let seen = tally.seen.max(1) as f64;
        Ok(EpochRecord {
            epoch: epoch + 1,
            train_loss: tally.loss_sum / seen,
            train_accuracy: self
                .config
                .loss
                .is_classification()
                .then(|| tally.correct as f64 / seen),
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.and_then(|v| v.accuracy),
            learning_rate: tally.learning_rate,
            seconds,
        })
    }

    fn notify(&mut self, mut f: impl FnMut(&mut dyn Callback) -> Control) -> Control {
        let mut control = Control::Continue;
        for c in &mut self.callbacks {
            if f(c.as_mut()) == Control::Stop {
                control = Control::Stop;
            }
        }
        control
    }

    /// One optimiser step at rate `lr` on the examples at `indices`; returns the batch loss
    /// (before the update) and, for a classifier, how many it classified right.
    fn step<M: Module<E>>(
        &mut self,
        model: &M,
        data: &Dataset<E>,
        indices: &[usize],
        lr: f64,
    ) -> Result<(f64, usize)> {
        let buf = &mut self.batch;
        data.gather_labels(indices, &mut buf.labels);
        let tape = &mut self.tape;
        let bound = &self.bound;
        tape.rewind(bound.mark)?;
        let (output, loss) = record_batch(
            tape,
            &mut self.losses,
            self.config.loss,
            model,
            &bound.ids,
            data,
            indices,
            &buf.labels,
        )?;
        let loss_value = Float::to_f64(tape.item(loss)?);
        let hits = if self.config.loss.is_classification() {
            count_hits(tape, output, &buf.labels)?
        } else {
            0
        };
        if !loss_value.is_finite() {
            return Ok((loss_value, hits));
        }
        tape.backward(loss)?;

        // Clipping scales every gradient by one factor, computed over all of them first.
        let scale = match self.config.clip_grad_norm {
            Some(max_norm) => {
                let mut sum = 0.0;
                for g in bound.ids.iter().filter_map(|&id| tape.grad(id)) {
                    crate::optim::add_squares(&mut sum, g.iter());
                }
                crate::optim::clip_factor(sum, max_norm).map(E::from_f64)
            }
            None => None,
        };
        self.optimizer.begin_step(lr, &bound.shapes)?;
        let optimizer = &mut self.optimizer;
        let clipped = &mut buf.clipped;
        tape.update_parameters(|index, _, value, grad| {
            let grad = match scale {
                Some(c) => {
                    clipped.clear();
                    clipped.extend(grad.iter().map(|&g| g * c));
                    &clipped[..]
                }
                None => grad,
            };
            optimizer.update(index, value, grad)
        })?;
        Ok((loss_value, hits))
    }

    /// [`step`](Trainer::step) in micro-batches: this process sums the gradients of the ones
    /// it owns along the tree, the reducer sums those of all processes, then one update.
    fn step_accumulated<M: Module<E>>(
        &mut self,
        model: &M,
        data: &Dataset<E>,
        indices: &[usize],
        lr: f64,
    ) -> Result<(f64, usize)> {
        let accumulate = self.config.accumulate;
        let micro = self.config.batch_size / accumulate;
        let owned = accumulate / self.reducer.ranks();
        let first = self.reducer.rank() * owned;
        let batch = indices.len();
        let total: usize = self.bound.shapes.iter().map(Shape::numel).sum();
        let loss_kind = self.config.loss;
        let tape = &mut self.tape;
        let losses = &mut self.losses;
        let bound = &self.bound;
        let labels = &mut self.batch.labels;
        let mut leaf = |j: usize, grads: &mut [E], stats: &mut [f64; STATS]| -> Result<()> {
            grads.fill(E::zero());
            *stats = [0.0; STATS];
            let part = &indices[(j * micro).min(batch)..((j + 1) * micro).min(batch)];
            if part.is_empty() {
                return Ok(());
            }
            data.gather_labels(part, labels);
            tape.rewind(bound.mark)?;
            let (output, loss) = record_batch(
                tape, losses, loss_kind, model, &bound.ids, data, part, labels,
            )?;
            let loss_value = Float::to_f64(tape.item(loss)?);
            let hits = if loss_kind.is_classification() {
                count_hits(tape, output, labels)?
            } else {
                0
            };
            // The micro-batch's share of the batch's mean loss.
            let weight = part.len() as f64 / batch as f64;
            *stats = [loss_value * weight, hits as f64];
            if !loss_value.is_finite() {
                return Ok(());
            }
            tape.backward(loss)?;
            let w = E::from_f64(weight);
            let mut at = 0;
            for (&id, shape) in bound.ids.iter().zip(&bound.shapes) {
                let n = shape.numel();
                if let Some(g) = tape.grad(id) {
                    for (d, &x) in grads[at..at + n].iter_mut().zip(g.iter()) {
                        *d = x * w;
                    }
                }
                at += n;
            }
            Ok(())
        };
        self.tree.sum(total, first, first + owned, &mut leaf)?;
        let (grads, stats) = self.tree.result();
        self.reducer.all_reduce(grads, &mut stats[..])?;
        let (loss_value, hits) = (stats[0], stats[1] as usize);
        if !loss_value.is_finite() {
            return Ok((loss_value, hits));
        }

        let scale = match self.config.clip_grad_norm {
            Some(max_norm) => {
                // As `global_norm`: the squares summed in f64, in parameter order.
                let norm = grads
                    .iter()
                    .map(|&g| {
                        let g = Float::to_f64(g);
                        g * g
                    })
                    .sum::<f64>()
                    .sqrt();
                let coef = max_norm / (norm + 1e-6);
                (coef < 1.0).then(|| E::from_f64(coef))
            }
            None => None,
        };
        self.optimizer.begin_step(lr, &self.bound.shapes)?;
        let optimizer = &mut self.optimizer;
        let clipped = &mut self.batch.clipped;
        let grads = &*grads;
        let mut at = 0;
        let mut failure = None;
        self.tape.update_parameter_values(|id, value| {
            let grad = &grads[at..at + value.len()];
            at += value.len();
            if failure.is_some() {
                return;
            }
            let grad = match scale {
                Some(c) => {
                    clipped.clear();
                    clipped.extend(grad.iter().map(|&g| g * c));
                    &clipped[..]
                }
                None => grad,
            };
            if let Err(e) = optimizer.update(id.index(), value, grad) {
                failure = Some(e);
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok((loss_value, hits)),
        }
    }

    /// The model's loss on `data` (and, for a classifier, its accuracy and confusion matrix),
    /// computed under [`Tape::no_grad`] in chunks of `eval_batch_size`.
    pub fn evaluate<M: Module<E>>(&mut self, model: &M, data: &Dataset<E>) -> Result<Evaluation> {
        self.check_targets(data, "evaluation")?;
        self.bind(model)?;
        self.evaluate_bound(model, data)
    }

    /// [`evaluate`](Trainer::evaluate) with the parameters already on the tape.
    fn evaluate_bound<M: Module<E>>(&mut self, model: &M, data: &Dataset<E>) -> Result<Evaluation> {
        let classes = data.classes();
        let mut confusion = classes.map(ConfusionMatrix::new);
        let chunk = self.config.eval_batch_size.max(1);
        // RMSE does not average over chunks: average the squared error, then take the root.
        let loss_kind = match self.config.loss {
            Loss::Rmse => Loss::Mse,
            other => other,
        };
        let mut loss_sum = 0.0;
        let indices: Vec<usize> = (0..data.len()).collect();
        for part in indices.chunks(chunk) {
            let buf = &mut self.batch;
            data.gather_labels(part, &mut buf.labels);
            let losses = &mut self.losses;
            let bound = &self.bound;
            let (loss, predicted) = self.tape.no_grad(|tape| -> Result<(f64, Vec<usize>)> {
                tape.rewind(bound.mark)?;
                let (output, loss) = record_batch(
                    tape,
                    losses,
                    loss_kind,
                    model,
                    &bound.ids,
                    data,
                    part,
                    &buf.labels,
                )?;
                let predicted = if classes.is_some() {
                    argmax_rows(output_view(tape, output)?)
                } else {
                    Vec::new()
                };
                Ok((Float::to_f64(tape.item(loss)?), predicted))
            })?;
            loss_sum += loss * part.len() as f64;
            if let Some(m) = confusion.as_mut() {
                for (&a, &p) in self.batch.labels.iter().zip(&predicted) {
                    m.add(a, p);
                }
            }
        }
        let mut loss = loss_sum / data.len().max(1) as f64;
        if self.config.loss == Loss::Rmse {
            loss = loss.sqrt();
        }
        Ok(Evaluation {
            loss,
            accuracy: confusion.as_ref().map(ConfusionMatrix::accuracy),
            confusion,
        })
    }

    /// The model's outputs for `features` (`[examples, features]`), computed under
    /// [`Tape::no_grad`]: logits for a classifier, predictions for a regression.
    pub fn predict<M: Module<E>>(
        &mut self,
        model: &M,
        features: ArrayView2<'_, E>,
    ) -> Result<Array2<E>> {
        let rows = features.nrows();
        let feats = features.as_standard_layout();
        let data = feats.as_slice().expect("standard layout");
        self.bind(model)?;
        let bound = &self.bound;
        self.tape.no_grad(|tape| -> Result<Array2<E>> {
            tape.rewind(bound.mark)?;
            let x = tape.input(Shaped(&[rows, features.ncols()], data))?;
            let out = forward_bound(tape, model, &bound.ids, x)?;
            Ok(output_view(tape, out)?.to_owned())
        })
    }

    fn check(&self, train: &Dataset<E>, validation: Option<&Dataset<E>>) -> Result<()> {
        if self.config.batch_size == 0 {
            return Err(Error::InvalidConfig(
                "the batch size must be at least 1".into(),
            ));
        }
        check_layout(
            self.config.batch_size,
            self.config.accumulate,
            self.reducer.ranks(),
        )?;
        if train.is_empty() {
            return Err(Error::InvalidData("the training set is empty".into()));
        }
        if let Some(max) = self.config.clip_grad_norm
            && (max.is_nan() || max <= 0.0)
        {
            return Err(Error::InvalidConfig(format!(
                "the gradient clipping norm must be positive, got {max}"
            )));
        }
        self.check_targets(train, "training")?;
        if let Some(v) = validation {
            self.check_targets(v, "validation")?;
            if v.n_features() != train.n_features() || v.n_outputs() != train.n_outputs() {
                return Err(Error::InvalidData(format!(
                    "the validation set has {} features and {} outputs, the training set {} and {}",
                    v.n_features(),
                    v.n_outputs(),
                    train.n_features(),
                    train.n_outputs()
                )));
            }
        }
        Ok(())
    }

    fn check_targets(&self, data: &Dataset<E>, what: &str) -> Result<()> {
        let labels = matches!(data.targets(), Targets::Classes { .. });
        if labels != self.config.loss.is_classification() {
            return Err(Error::InvalidConfig(format!(
                "the {} loss needs {}, but the {what} set has {}",
                self.config.loss,
                if labels {
                    "regression targets"
                } else {
                    "class labels"
                },
                if labels {
                    "class labels"
                } else {
                    "regression targets"
                },
            )));
        }
        Ok(())
    }
}

/// Records `model`'s forward pass of `x` on a tape that holds its parameters at `ids`, and
/// checks that it took every one of them and recorded none of its own.
fn forward_bound<E: Float, M: Module<E>>(
    tape: &mut Tape<E>,
    model: &M,
    ids: &[NodeId],
    x: NodeId,
) -> Result<NodeId> {
    let mut params = ParameterIds::new(ids);
    let output = model.forward(tape, &mut params, x)?;
    params.finish()?;
    let recorded = tape.parameters().count();
    if recorded != ids.len() {
        return Err(Error::Model(format!(
            "the tape holds {recorded} parameters but the model lists {}: forward must take \
             its parameters from the ids it is given, not record its own",
            ids.len()
        )));
    }
    Ok(output)
}

/// Records the forward pass and the loss of the examples at `indices`, whose labels (for a
/// classifier) are `labels`.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of the trainer a recording borrows, split so the tape can be borrowed mutably"
)]
fn record_batch<E: Float, M: Module<E>>(
    tape: &mut Tape<E>,
    losses: &mut LossRecorder,
    loss: Loss,
    model: &M,
    ids: &[NodeId],
    data: &Dataset<E>,
    indices: &[usize],
    labels: &[usize],
) -> Result<(NodeId, NodeId)> {
    let x = tape.input(data.feature_rows(indices))?;
    let output = forward_bound(tape, model, ids, x)?;
    let target = if loss.is_classification() {
        tape.labels(labels)?
    } else {
        let values = data.target_rows(indices).ok_or_else(|| {
            Error::InvalidData("a regression loss needs regression targets".into())
        })?;
        tape.input(values)?
    };
    let loss = losses.record(tape, loss, output, target)?;
    Ok((output, loss))
}

/// A node's value as a matrix, or an error if the model's output is not one.
fn output_view<E: Float>(tape: &Tape<E>, output: NodeId) -> Result<ArrayView2<'_, E>> {
    let shape = tape.shape(output)?;
    if shape.rank() != 2 {
        return Err(Error::Model(format!(
            "the model's output has shape {:?}; expected [batch, outputs]",
            shape.dims()
        )));
    }
    let dims = shape.dims();
    Ok(ArrayView2::from_shape((dims[0], dims[1]), tape.data(output)?).expect("sized by its shape"))
}

/// How many rows of the output pick their label; allocates nothing.
fn count_hits<E: Float>(tape: &Tape<E>, output: NodeId, labels: &[usize]) -> Result<usize> {
    let scores = output_view(tape, output)?;
    Ok(scores
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, l)| argmax(*row) == **l)
        .count())
}
