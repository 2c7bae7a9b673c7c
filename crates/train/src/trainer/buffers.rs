//! The model's buffers on the trainer's tape: recorded once after the parameters, read there
//! by every pass, moved to the new values each training pass computed for them (batch norm's
//! running statistics) once its step is done, and written back into the model with the
//! parameters.

use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::module::record_buffers;
use crate::{BufferUpdates, Error, Module, Result};

/// Where the buffers are on the tape, and the new values the last training pass gave them.
#[derive(Debug, Default)]
pub(crate) struct BufferBinding {
    /// The buffers' leaves, in [`Module::buffers`] order.
    pub(crate) ids: Vec<NodeId>,
    /// The last training pass's new values, not yet moved into the leaves.
    pub(crate) updates: BufferUpdates,
}

impl BufferBinding {
    /// Records `model`'s buffers on `tape` as inputs (after the parameters, before the mark
    /// every step rewinds to).
    pub(crate) fn bind<E: Float, M: Module<E>>(
        &mut self,
        model: &M,
        tape: &mut Tape<E>,
    ) -> Result<()> {
        self.ids = record_buffers(model, tape)?;
        self.updates.clear();
        Ok(())
    }

    /// Moves each buffer the last training pass updated to its new value on the tape, where
    /// the next pass reads it: called once the pass's step (or micro-batch) is differentiated,
    /// so nothing is moved twice and the sweep saw the values the pass read. With `ranks`
    /// processes sharing a step, each would move its buffers by its own micro-batches alone,
    /// and the processes' models would drift apart: refused.
    pub(crate) fn commit<E: Float>(&mut self, tape: &mut Tape<E>, ranks: usize) -> Result<()> {
        if self.updates.is_empty() {
            return Ok(());
        }
        if ranks > 1 {
            return Err(Error::InvalidConfig(format!(
                "the model updates buffers in training (running statistics), which {ranks} \
                 processes sharing a step would each move by their own micro-batches: train it \
                 in one process"
            )));
        }
        for (index, node) in self.updates.iter() {
            let leaf = *self.ids.get(index).ok_or_else(|| {
                Error::Model(format!(
                    "a pass updated buffer {index}, but the model lists {}",
                    self.ids.len()
                ))
            })?;
            tape.set_value_from(leaf, node)?;
        }
        self.updates.clear();
        Ok(())
    }

    /// Copies the buffers living on the tape back into `model`.
    pub(crate) fn write_back<E: Float, M: Module<E>>(
        &self,
        model: &mut M,
        tape: &Tape<E>,
    ) -> Result<()> {
        let mut buffers = model.buffers_mut();
        if buffers.len() != self.ids.len() {
            return Err(Error::Model(format!(
                "the model lists {} buffers, but {} when training began",
                buffers.len(),
                self.ids.len()
            )));
        }
        for (b, &id) in buffers.iter_mut().zip(&self.ids) {
            let value = tape.value(id)?;
            if b.shape() != value.shape() {
                return Err(Error::Model(format!(
                    "a buffer of shape {:?} on the tape cannot go back into one of shape {:?}",
                    value.shape(),
                    b.shape()
                )));
            }
            b.assign(&value);
        }
        Ok(())
    }
}
