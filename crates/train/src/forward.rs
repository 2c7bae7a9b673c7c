//! [`ParameterIds`]: what a forward pass is handed besides its input: the parameters' nodes,
//! the buffers' nodes and where their new values go ([`BufferUpdates`]), whether it trains or
//! evaluates ([`Mode`]), and the seeds of its random draws.

use wengert_tape::NodeId;

use crate::{Error, Result, Rng};

/// Whether a forward pass trains or evaluates (PyTorch's `model.train()` and `model.eval()`).
///
/// The mode belongs to the pass, not to the model: the [`Trainer`](crate::Trainer) gives its
/// training steps [`Mode::Training`] and everything else [`Mode::Evaluation`], so a model can
/// never be left in the wrong mode, and evaluating needs no mutable access to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Evaluation: stochastic layers are off ([`Dropout`](crate::Dropout) passes its input
    /// through), and no random number is drawn from the step's seed.
    #[default]
    Evaluation,
    /// Training, with the seed of this pass: each stochastic layer draws its own seed from it
    /// with [`ParameterIds::next_seed`], so the same seed replays the same pass.
    Training {
        /// The pass's seed (the trainer draws one per training pass from a seeded stream).
        seed: u64,
    },
}

impl Mode {
    /// The mode of a trainer's training pass: micro-batch `micro_batch` of step `step`
    /// (both counted from 0) of the run seeded `run_seed`. The pass's seed is a function of
    /// these three numbers alone (the word at position `(step, micro_batch)` of a ChaCha8
    /// stream of the run's seed), so a resumed run, or ranks sharing a step's micro-batches,
    /// draw the same masks with no state to carry. Steps repeat their seeds after 2³⁵.
    ///
    /// ```
    /// use wengert_train::Mode;
    /// assert_eq!(Mode::training_step(0, 5, 1), Mode::training_step(0, 5, 1));
    /// assert_ne!(Mode::training_step(0, 5, 1), Mode::training_step(0, 5, 0));
    /// assert!(Mode::training_step(0, 5, 1).is_training());
    /// ```
    pub fn training_step(run_seed: u64, step: u64, micro_batch: u32) -> Mode {
        let mut state = Rng::with_stream(run_seed, crate::rng_streams::STEPS).state();
        // Two 32-bit words per seed; ChaCha counts 2⁶⁸ words, so 35 bits of step fit.
        let step = u128::from(step) & ((1 << 35) - 1);
        state.word_pos = (step << 33) | (u128::from(micro_batch) << 1);
        Mode::Training {
            seed: Rng::from_state(&state).next_u64(),
        }
    }

    /// Whether this is [`Mode::Training`].
    pub fn is_training(self) -> bool {
        matches!(self, Mode::Training { .. })
    }
}

/// The context of one forward pass, handed to [`Module::forward`](crate::Module::forward):
/// the nodes of the model's parameters, to take one by one in
/// [`Module::parameters`](crate::Module::parameters) order, the pass's [`Mode`], and a
/// stream of seeds for its stochastic layers. A model built from others hands the same
/// `ParameterIds` to each part in turn.
///
/// ```
/// use wengert_tape::NodeId;
/// use wengert_train::{Mode, ParameterIds};
///
/// let ids: [NodeId; 0] = [];
/// let mut training = ParameterIds::with_mode(&ids, Mode::Training { seed: 7 });
/// let mut again = ParameterIds::with_mode(&ids, Mode::Training { seed: 7 });
/// assert!(training.is_training());
/// let (a, b) = (training.next_seed(), training.next_seed());
/// assert_ne!(a, b); // each layer its own seed,
/// assert_eq!((again.next_seed(), again.next_seed()), (a, b)); // the same for the same pass
/// assert!(!ParameterIds::new(&ids).is_training());
/// ```
#[derive(Debug)]
pub struct ParameterIds<'a> {
    ids: &'a [NodeId],
    taken: usize,
    mode: Mode,
    /// The pass's seed stream, started at the first draw (most passes draw none).
    seeds: Option<Rng>,
    /// The buffers' nodes (leaves holding their current values), taken in order.
    buffers: &'a [NodeId],
    buffers_taken: usize,
    /// Where a training pass registers its buffers' new values; none without buffers.
    updates: Option<&'a mut BufferUpdates>,
}

/// The new values a training pass computed for its model's buffers (batch norm's running
/// statistics): `(buffer index, node)` pairs, the index in
/// [`Module::buffers`](crate::Module::buffers) order, the node on the pass's tape. No op
/// writes a buffer: the pass records the new value as an ordinary node, and whoever runs the
/// pass copies it into the buffer after the step (the [`Trainer`](crate::Trainer), or
/// [`Module::apply_training`](crate::Module::apply_training)). So replaying a recorded pass
/// recomputes the values but never moves the buffers twice. Reused from pass to pass, it
/// allocates only when it grows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BufferUpdates {
    updates: Vec<(usize, NodeId)>,
}

impl BufferUpdates {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `(buffer index, node)` pairs, in the order the pass registered them (a buffer
    /// registered twice: the later value wins when they are applied in order).
    pub fn iter(&self) -> impl Iterator<Item = (usize, NodeId)> + '_ {
        self.updates.iter().copied()
    }

    /// How many were registered.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// Forgets them, keeping the memory.
    pub fn clear(&mut self) {
        self.updates.clear();
    }
}

impl<'a> ParameterIds<'a> {
    /// The parameters at `ids`, none taken yet, for a pass in [`Mode::Evaluation`].
    pub fn new(ids: &'a [NodeId]) -> Self {
        Self::with_mode(ids, Mode::Evaluation)
    }

    /// The parameters at `ids`, none taken yet, for a pass in `mode`.
    pub fn with_mode(ids: &'a [NodeId], mode: Mode) -> Self {
        ParameterIds {
            ids,
            taken: 0,
            mode,
            seeds: None,
            buffers: &[],
            buffers_taken: 0,
            updates: None,
        }
    }

    /// The pass with the model's buffers at `buffers` (nodes holding their current values,
    /// in [`Module::buffers`](crate::Module::buffers) order), to take one by one with
    /// [`next_buffer`](ParameterIds::next_buffer), and `updates` (cleared here) to receive
    /// the new values a training pass gives them with
    /// [`update_buffer`](ParameterIds::update_buffer).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    /// use wengert_train::{BufferUpdates, Mode, ParameterIds};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let count = tape.input(array![3.0])?;
    /// let mut updates = BufferUpdates::new();
    /// let buffers = [count];
    /// let mut params = ParameterIds::with_mode(&[], Mode::Training { seed: 0 })
    ///     .with_buffers(&buffers, &mut updates);
    /// // A layer counting its training passes: the new count is an ordinary node.
    /// let count = params.next_buffer()?;
    /// let next = tape.add_scalar(count, 1.0)?;
    /// params.update_buffer(count, next)?;
    /// params.finish()?;
    /// assert_eq!(updates.iter().collect::<Vec<_>>(), [(0, next)]);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn with_buffers(mut self, buffers: &'a [NodeId], updates: &'a mut BufferUpdates) -> Self {
        updates.clear();
        self.buffers = buffers;
        self.buffers_taken = 0;
        self.updates = Some(updates);
        self
    }

    /// The pass's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the pass trains: stochastic layers are on.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }

    /// The next seed for a stochastic layer of this pass: the `k`-th call gives the `k`-th
    /// number of a ChaCha8 stream seeded with the pass's seed (seed 0 in evaluation), so the
    /// layers of a pass draw different masks and a pass replayed with its seed draws the
    /// same ones. A layer draws one seed per training pass, whatever its settings, so that
    /// the layers after it keep their seeds.
    pub fn next_seed(&mut self) -> u64 {
        let seed = match self.mode {
            Mode::Training { seed } => seed,
            Mode::Evaluation => 0,
        };
        self.seeds
            .get_or_insert_with(|| Rng::with_stream(seed, crate::rng_streams::LAYERS))
            .next_u64()
    }

    /// The next parameter's node, or an error if the model has taken them all.
    #[allow(
        clippy::should_implement_trait,
        reason = "a model takes its parameters with `?`: running out is an error, not the end"
    )]
    pub fn next(&mut self) -> Result<NodeId> {
        let id = self.ids.get(self.taken).copied().ok_or_else(|| {
            Error::Model(format!(
                "forward took more parameters than the {} its model lists",
                self.ids.len()
            ))
        })?;
        self.taken += 1;
        Ok(id)
    }

    /// How many have been taken.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// The next buffer's node (its current value: a leaf the pass reads, such as a running
    /// mean), in [`Module::buffers`](crate::Module::buffers) order, or an error if the model
    /// has taken them all or the pass was given none
    /// ([`with_buffers`](ParameterIds::with_buffers)).
    pub fn next_buffer(&mut self) -> Result<NodeId> {
        let id = self
            .buffers
            .get(self.buffers_taken)
            .copied()
            .ok_or_else(|| {
                Error::Model(format!(
                    "forward took more buffers than the {} this pass was given (a model with \
                 buffers runs through `apply`, the trainer, or `ParameterIds::with_buffers`)",
                    self.buffers.len()
                ))
            })?;
        self.buffers_taken += 1;
        Ok(id)
    }

    /// Registers `value` (a node of the buffer's shape) as the new value of the buffer whose
    /// node [`next_buffer`](ParameterIds::next_buffer) gave as `buffer`: it is copied into
    /// the buffer once the training step is done. An error in an evaluation pass (which
    /// moves no buffer) or for a node that is not one of the pass's buffers.
    pub fn update_buffer(&mut self, buffer: NodeId, value: NodeId) -> Result<()> {
        if !self.is_training() {
            return Err(Error::Model(
                "an evaluation pass updates no buffer: check `is_training` first".into(),
            ));
        }
        let index = self.buffers[..self.buffers_taken]
            .iter()
            .position(|&b| b == buffer)
            .ok_or_else(|| {
                Error::Model(format!(
                    "node {buffer:?} is not a buffer this pass has taken, so it cannot be updated"
                ))
            })?;
        let updates = self.updates.as_deref_mut().expect("given with the buffers");
        updates.updates.push((index, value));
        Ok(())
    }

    /// Checks that every parameter and every buffer was taken.
    pub fn finish(&self) -> Result<()> {
        if self.taken != self.ids.len() {
            return Err(Error::Model(format!(
                "forward took {} parameters but the model lists {}",
                self.taken,
                self.ids.len()
            )));
        }
        if self.buffers_taken != self.buffers.len() {
            return Err(Error::Model(format!(
                "forward took {} buffers but the model lists {}: a model takes each of its \
                 buffers with `next_buffer`",
                self.buffers_taken,
                self.buffers.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_the_pass_seed_and_the_draw() {
        let draw = |mode| {
            let mut p = ParameterIds::with_mode(&[], mode);
            [p.next_seed(), p.next_seed()]
        };
        let a = draw(Mode::Training { seed: 1 });
        assert_eq!(a, draw(Mode::Training { seed: 1 }));
        assert_ne!(a, draw(Mode::Training { seed: 2 }));
        assert_ne!(a[0], a[1]);
        assert_eq!(draw(Mode::Evaluation), draw(Mode::Evaluation));
    }

    #[test]
    fn training_steps_have_seeds_of_their_own() {
        let seed = |run, step, micro| match Mode::training_step(run, step, micro) {
            Mode::Training { seed } => seed,
            Mode::Evaluation => unreachable!("a training step"),
        };
        let mut seen = std::collections::BTreeSet::new();
        for run in 0..3 {
            for step in [0, 1, 2, 1000, u64::from(u32::MAX) + 1] {
                for micro in [0, 1, 7, u32::MAX] {
                    assert!(seen.insert(seed(run, step, micro)), "{run} {step} {micro}");
                }
            }
        }
        assert_eq!(seed(4, 9, 2), seed(4, 9, 2));
    }

    #[test]
    fn taking_too_many_or_too_few_parameters_is_an_error() {
        let mut tape = wengert_tape::Tape::<f32>::new();
        let ids = [tape.parameter(vec![1.0f32]).unwrap()];
        let mut p = ParameterIds::new(&ids);
        assert!(p.finish().is_err());
        assert_eq!(p.next().unwrap(), ids[0]);
        p.finish().unwrap();
        let err = p.next().unwrap_err();
        assert!(err.to_string().contains("more parameters"), "{err}");
    }
}
