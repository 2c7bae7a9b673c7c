//! [`Trainer`]: the loop that records, differentiates and updates, epoch after epoch.
//!
//! Here the trainer's settings and its public face; `bound.rs` holds the model's parameters
//! on the tape and records batches, `step.rs` takes one optimiser step, `run.rs` the loop over
//! epochs and batches. Evaluation is [`crate::evaluate`]'s.

pub(crate) mod bound;
mod buffers;
mod run;
mod step;

use ndarray::{Array2, ArrayView2};
use wengert_ops::Float;
use wengert_tape::{NodeId, Shaped, Tape};

use crate::callback::{Callback, Control, EpochRecord};
use crate::evaluate::{Evaluation, check_targets, evaluate_bound};
use crate::objective::{Batch, LossFn, Objective, loss_name};
use crate::reduce::{GradientReducer, LocalReducer, TreeSum, check_layout};
use crate::state::{Batches, EpochProgress, Every, TrainState};
use crate::{
    Dataset, Error, Loss, Mode, Module, Optimizer, PlateauState, ReduceOnPlateau, Result, Rng,
    Schedule,
};
use bound::{BoundModel, output_view};

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
    /// The objective (default cross-entropy), unless the trainer is given a closure
    /// ([`Trainer::with_loss_fn`]).
    pub loss: Loss,
    /// The learning rate over time (default constant), built-in or a function of the step
    /// ([`Schedule::lambda`]).
    pub schedule: Schedule,
    /// Lowers the base rate the schedule scales when the validation loss (the training loss,
    /// without a validation set) stops improving (default none).
    pub plateau: Option<ReduceOnPlateau>,
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
    /// The seed of the batch order and of the training passes' stochastic layers, such as
    /// dropout's masks (default 0).
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
            plateau: None,
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

/// Trains a [`Module`] with an [`Optimizer`]: shuffles the examples every epoch, records the
/// forward pass of each batch, differentiates, optionally clips, updates, then evaluates on
/// the validation set under [`Tape::no_grad`](wengert_tape::Tape::no_grad), calls the [`Callback`]s, and stops early if
/// asked.
///
/// The model's parameters live on the trainer's tape while it trains: recorded once, before a
/// [`Mark`](wengert_tape::Mark) the tape is rewound to every step, and updated there in place by the optimiser
/// (through [`Tape::update_parameters`](wengert_tape::Tape::update_parameters)). The model's own arrays are written back when an
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
    /// The loss as a closure, in place of the configuration's.
    loss_fn: Option<Box<LossFn<'a, E>>>,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    /// The model's parameters on the tape, while it trains, evaluates or predicts.
    bound: BoundModel<E>,
    /// A clipped gradient, handed to the optimiser in place of the tape's.
    clipped: Vec<E>,
    checkpoint: Option<(Every, CheckpointHook<'a, E>)>,
    reducer: Box<dyn GradientReducer<E> + 'a>,
    /// The micro-batches' gradient sums, when accumulating or sharing the work.
    tree: TreeSum<E>,
    /// The size of the buckets reduced during the sweep, in bytes; 0: once after it.
    bucket_bytes: usize,
    /// The reduced gradient of an overlapped step.
    reduced: Vec<E>,
    /// Each parameter's element count and its offset in the flattened gradient, kept from one
    /// accumulated step to the next so that a step allocates nothing.
    param_sizes: Vec<usize>,
    param_offsets: Vec<usize>,
    /// Whether a run keeps the pool's other threads awake ([`wengert_ops::stay_awake`]).
    threads_awake: bool,
}

/// What [`Trainer::checkpoint_every`] calls.
type CheckpointHook<'a, E> = Box<dyn FnMut(&TrainState<E>) -> Result<Control> + 'a>;

impl<E: Float> std::fmt::Debug for Trainer<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("optimizer", &self.optimizer.name())
            .field("loss", &self.loss_name())
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
            loss_fn: None,
            callbacks: Vec::new(),
            bound: BoundModel::new(),
            clipped: Vec::new(),
            checkpoint: None,
            reducer: Box::new(LocalReducer),
            tree: TreeSum::default(),
            bucket_bytes: 0,
            reduced: Vec::new(),
            param_sizes: Vec::new(),
            param_offsets: Vec::new(),
            threads_awake: true,
        }
    }

    /// Whether [`fit`](Trainer::fit) and [`resume`](Trainer::resume) keep the rayon pool's
    /// other threads waiting for work by spinning during each epoch (`true`, the default, as
    /// OpenMP's workers do for PyTorch) or let them sleep between parallel products (builder
    /// style). Spinning spares each product of a step the wake-up of a sleeping thread (tens of
    /// microseconds; 3-10% of a 784-512-512-10 step at batch 32 and 128 on 2 threads), at the
    /// cost of the other cores being busy while the run's serial work goes on (they nap after
    /// 2 ms without work). The results are the same bits either way. It takes effect when the
    /// trainer runs on a thread of a pool of more than one thread; see
    /// [`wengert_ops::stay_awake`].
    pub fn keep_threads_awake(mut self, on: bool) -> Self {
        self.threads_awake = on;
        self
    }

    /// Reduces the gradient in buckets of about `bucket_bytes` bytes as the backward sweep of
    /// this process's last micro-batch finishes them, so that the exchanges overlap the rest
    /// of the sweep (as PyTorch DDP does), rather than once after it (`0`, the default).
    /// The weights are the same bits either way: each element is summed in the same order.
    /// Used when the step is in micro-batches (accumulating or sharing the work).
    pub fn overlap_reduction(mut self, bucket_bytes: usize) -> Self {
        self.bucket_bytes = bucket_bytes;
        self
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

    /// Minimises `loss_fn` in place of [`TrainConfig::loss`] (builder style): a closure over
    /// the tape, the model's output node and the [`Batch`] (its targets' node, the
    /// parameters' nodes, which examples), returning the node of the loss, any tape
    /// expression of one element. PyTorch's `loss_fn(output, batch)`.
    ///
    /// The closure is called once per batch (per micro-batch when accumulating or sharing
    /// the step with other processes, the micro-batches' losses and gradients then weighted
    /// by their share of the batch), and once per chunk of
    /// [`eval_batch_size`](TrainConfig::eval_batch_size) examples when evaluating, the
    /// chunks' values averaged weighted by their examples: so the validation loss, the
    /// [`evaluate`](Trainer::evaluate) loss and early stopping use it too. Both weightings are
    /// exact for a mean over the examples plus terms that do not depend on them (a penalty on
    /// the weights); for anything else, they are the weighted mean of the pieces. The
    /// targets are the data set's (labels for a classification set, values for a
    /// regression), and the accuracy is reported whenever the set has labels. A closure that
    /// allocates nothing keeps a step free of allocations.
    ///
    /// A closure cannot be saved: a [`TrainState`] records the loss as `custom`, and
    /// [`resume`](Trainer::resume) refuses a state whose loss is not this trainer's (a custom
    /// run resumed without a closure, or the reverse). Give the resumed trainer the same
    /// closure: the trainer cannot check what it computes, and the run then continues bit for
    /// bit.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{NodeId, Tape};
    /// use wengert_train::{evaluate, Adam, Batch, Dataset, Loss, Mlp, TrainConfig, Trainer};
    ///
    /// // Cross-entropy plus an L1 penalty of 1e-3 on every parameter.
    /// let l1 = |tape: &mut Tape<f32>, output: NodeId, batch: &Batch<'_>| -> wengert_train::Result<NodeId> {
    ///     let mut loss = tape.cross_entropy(output, batch.target())?;
    ///     for &p in batch.parameters() {
    ///         let a = tape.abs(p)?;
    ///         let s = tape.sum(a)?;
    ///         let penalty = tape.mul_scalar(s, 1e-3)?;
    ///         loss = tape.add(loss, penalty)?;
    ///     }
    ///     Ok(loss)
    /// };
    /// let x = array![[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    /// let data = Dataset::classification(x, vec![0, 1, 1, 0], 2)?;
    /// let mut model = Mlp::builder(&[2, 8, 2]).seed(1).build()?;
    /// let config = TrainConfig { epochs: 300, batch_size: 4, ..TrainConfig::default() };
    /// let mut trainer = Trainer::new(config, Adam::new(0.05)?).with_loss_fn(l1);
    /// let history = trainer.fit(&mut model, &data, None)?;
    /// assert_eq!(history.last().unwrap().train_accuracy, Some(1.0));
    /// // The penalty is part of the loss the trainer evaluates.
    /// let cross_entropy = evaluate(&model, &data, Loss::CrossEntropy, 4)?.loss;
    /// assert!(trainer.evaluate(&model, &data)?.loss > cross_entropy);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn with_loss_fn(
        mut self,
        loss_fn: impl FnMut(&mut Tape<E>, NodeId, &Batch<'_>) -> Result<NodeId> + 'a,
    ) -> Self {
        self.loss_fn = Some(Box::new(loss_fn));
        self
    }

    /// The name of the loss this trainer minimises: the configuration's
    /// ([`Loss::name`]), or `custom` for a closure.
    pub fn loss_name(&self) -> &'static str {
        loss_name(self.config.loss, self.loss_fn.is_some())
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
        self.bound.tape.len()
    }

    /// Trains `model` on `train`, validating on `validation` after every epoch. The steps'
    /// forward passes run in training mode ([`Mode::training_step`]: dropout on, its masks
    /// from the configuration's seed), the validation in [`Mode::Evaluation`].
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
            best_buffers: None,
            base_learning_rate: self.optimizer.learning_rate(),
            plateau: PlateauState::default(),
            loss: self.loss_name().into(),
            elapsed_seconds: 0.0,
            // Filled in when the state is handed out.
            parameters: Vec::new(),
            buffers: Vec::new(),
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
    /// batch size, parameters of other shapes, another optimiser or its settings, another
    /// loss (a closure's run resumed without one, or the reverse: see
    /// [`with_loss_fn`](Trainer::with_loss_fn)). The state's [`PlateauState`] carries on
    /// when the configuration has a [`plateau`](TrainConfig::plateau).
    pub fn resume<M: Module<E>>(
        &mut self,
        model: &mut M,
        train: &Dataset<E>,
        validation: Option<&Dataset<E>>,
        mut state: TrainState<E>,
    ) -> Result<History> {
        self.check(train, validation)?;
        let shapes: Vec<Vec<usize>> = model
            .parameters()
            .iter()
            .map(|p| p.shape().to_vec())
            .collect();
        let buffer_shapes: Vec<Vec<usize>> =
            model.buffers().iter().map(|b| b.shape().to_vec()).collect();
        state.check_fits(&shapes, &buffer_shapes, self.batches(train))?;
        self.check_loss(&state.loss)?;
        self.optimizer.load_state(&state.optimizer)?;
        for (mut p, saved) in model.parameters_mut().into_iter().zip(&state.parameters) {
            p.assign(saved);
        }
        for (mut b, saved) in model.buffers_mut().into_iter().zip(&state.buffers) {
            b.assign(saved);
        }
        // The state's copy is not needed while the model holds the live one.
        state.parameters = Vec::new();
        state.buffers = Vec::new();
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

    /// The model's loss on `data` (the trainer's: its [closure](Trainer::with_loss_fn) if it
    /// has one) and, for a classification set, its accuracy and confusion matrix, computed in
    /// [`Mode::Evaluation`] under [`Tape::no_grad`](wengert_tape::Tape::no_grad) in chunks of
    /// `eval_batch_size`.
    pub fn evaluate<M: Module<E>>(&mut self, model: &M, data: &Dataset<E>) -> Result<Evaluation> {
        if self.loss_fn.is_none() {
            check_targets(self.config.loss, data, "evaluation")?;
        }
        self.bound.bind(model)?;
        self.evaluate_bound(model, data)
    }

    /// [`evaluate`](Trainer::evaluate) with the parameters already on the tape.
    fn evaluate_bound<M: Module<E>>(&mut self, model: &M, data: &Dataset<E>) -> Result<Evaluation> {
        let objective = Objective::of(self.config.loss, &mut self.loss_fn);
        evaluate_bound(
            &mut self.bound,
            model,
            data,
            objective,
            self.config.eval_batch_size,
        )
    }

    /// Whether this trainer's runs report an accuracy on `data`: a classification set.
    fn classifies(&self, data: &Dataset<E>) -> bool {
        data.classes().is_some()
    }

    /// The model's outputs for `features` (`[examples, features]`), computed in
    /// [`Mode::Evaluation`] under [`Tape::no_grad`](wengert_tape::Tape::no_grad): logits for a
    /// classifier, predictions for a regression.
    pub fn predict<M: Module<E>>(
        &mut self,
        model: &M,
        features: ArrayView2<'_, E>,
    ) -> Result<Array2<E>> {
        let rows = features.nrows();
        let feats = features.as_standard_layout();
        let data = feats.as_slice().expect("standard layout");
        self.bound.bind(model)?;
        let at = &self.bound.at;
        self.bound.tape.no_grad(|tape| -> Result<Array2<E>> {
            tape.rewind(at.mark)?;
            let x = tape.input(Shaped(&[rows, features.ncols()], data))?;
            let out = at.forward(tape, model, x, Mode::Evaluation)?;
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
        if let Some(plateau) = &self.config.plateau {
            plateau.check()?;
        }
        if self.loss_fn.is_none() {
            check_targets(self.config.loss, train, "training")?;
        }
        if let Some(v) = validation {
            if self.loss_fn.is_none() {
                check_targets(self.config.loss, v, "validation")?;
            } else if v.classes().is_some() != train.classes().is_some() {
                return Err(Error::InvalidData(format!(
                    "the training set has {}, the validation set {}",
                    targets_kind(train),
                    targets_kind(v)
                )));
            }
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

    /// Checks that a state saved by a run of the loss named `saved` (empty: not recorded)
    /// can continue with this trainer's.
    fn check_loss(&self, saved: &str) -> Result<()> {
        let ours = self.loss_name();
        if saved.is_empty() || saved == ours {
            return Ok(());
        }
        let hint = if saved == crate::objective::CUSTOM {
            ": a loss closure is not saved; give this trainer the same one with `with_loss_fn`"
        } else {
            ""
        };
        Err(Error::InvalidConfig(format!(
            "cannot resume: the run minimised the {saved} loss, this trainer the {ours} loss{hint}"
        )))
    }

    /// How this trainer cuts `train` into batches.
    fn batches(&self, train: &Dataset<E>) -> Batches {
        Batches::new(train.len(), self.config.batch_size)
    }
}

/// What a data set's targets are, for messages.
fn targets_kind<E: Float>(data: &Dataset<E>) -> &'static str {
    if data.classes().is_some() {
        "class labels"
    } else {
        "regression targets"
    }
}
