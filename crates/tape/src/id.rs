//! [`NodeId`]: the handle of a node on a tape.

use std::fmt;

/// The handle of a recorded node: its position on the tape.
///
/// Ids are handed out by the tape only, in increasing order, so a node's inputs always have
/// smaller ids than the node. An id is only meaningful on the tape that issued it, and only
/// until that tape is cleared; the tape answers a foreign id that is out of its range with
/// [`Error::UnknownNode`](crate::Error::UnknownNode).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u32);

impl NodeId {
    /// The id of the node at `index`; only the tape creates ids.
    #[inline]
    pub(crate) fn new(index: u32) -> NodeId {
        NodeId(index)
    }

    /// The raw index.
    #[inline]
    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    /// The node's position on the tape.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}
