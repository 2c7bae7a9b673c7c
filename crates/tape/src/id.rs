//! [`NodeId`]: the handle of a node on a tape, and the recording epochs that keep it honest.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The handle of a recorded node: its position on the tape and the recording epoch it was
/// issued in.
///
/// Ids are handed out by the tape only, in increasing order, so a node's inputs always have
/// smaller ids than the node. An id is only meaningful on the tape that issued it, and only while
/// that tape still holds the node: every method that takes an id checks both, and answers an id
/// from another tape, or one whose node a [`clear`](crate::Tape::clear) or
/// [`rewind`](crate::Tape::rewind) removed, with [`Error::StaleNode`](crate::Error::StaleNode)
/// (or [`Error::UnknownNode`](crate::Error::UnknownNode) when its position is past the tape's
/// end), never with another node's value.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::{Error, Tape};
///
/// let mut tape = Tape::<f64>::new();
/// let x = tape.input(array![1.0, 2.0]).unwrap();
/// tape.clear();
/// let y = tape.input(array![3.0]).unwrap(); // the same position as `x`
/// assert_eq!(tape.value(y).unwrap()[0], 3.0);
/// assert!(matches!(tape.value(x), Err(Error::StaleNode { .. })));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    index: u32,
    epoch: Epoch,
}

impl NodeId {
    /// The id of the node at `index`, recorded in `epoch`; only the tape creates ids.
    #[inline]
    pub(crate) fn new(index: u32, epoch: Epoch) -> NodeId {
        NodeId { index, epoch }
    }

    /// The raw index.
    #[inline]
    pub(crate) fn raw(self) -> u32 {
        self.index
    }

    /// The recording epoch the id was issued in.
    #[inline]
    pub(crate) fn epoch(self) -> Epoch {
        self.epoch
    }

    /// The node's position on the tape.
    #[inline]
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.index)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.index)
    }
}

/// A recording epoch: a number no other epoch of any tape in the process shares. A tape takes a
/// new one when it is made and at every [`clear`](crate::Tape::clear) and
/// [`rewind`](crate::Tape::rewind); each node keeps the one it was recorded in, and so does
/// every id issued for it. A node and an id agree on their epoch only if the id was issued for
/// that very node: an id from another tape carries an epoch this tape never had, and one from
/// before a clear or a rewind carries an epoch the node now at its position was not recorded in.
///
/// Drawn from one process-wide 64-bit counter, so epochs never repeat (2⁶⁴ clears at one per
/// nanosecond would take five centuries).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct Epoch(u64);

impl Epoch {
    /// An epoch never handed out before.
    #[inline]
    pub(crate) fn fresh() -> Epoch {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Only uniqueness matters, not ordering with other memory: relaxed is enough.
        Epoch(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_never_repeat_across_threads() {
        let drawn: Vec<Epoch> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| Epoch::fresh()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let unique: std::collections::BTreeSet<Epoch> = drawn.iter().copied().collect();
        assert_eq!(unique.len(), drawn.len());
    }
}
