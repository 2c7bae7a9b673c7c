//! [`Pair`]: a size along two spatial axes, given as one number for both or as two.

use std::fmt;

/// A (height, width) pair of a 2-D layer's setting, from one number for both axes (`3`) or
/// two (`[3, 1]`), as PyTorch takes an `int` or a tuple for `kernel_size`, `stride`, ...
///
/// ```
/// use wengert_train::Pair;
/// assert_eq!(Pair::from(3).0, [3, 3]);
/// assert_eq!(Pair::from([3, 1]).0, [3, 1]);
/// assert_eq!(Pair::from([3, 1]).to_string(), "(3, 1)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair(pub [usize; 2]);

impl From<usize> for Pair {
    fn from(both: usize) -> Self {
        Pair([both, both])
    }
}

impl From<[usize; 2]> for Pair {
    fn from(pair: [usize; 2]) -> Self {
        Pair(pair)
    }
}

impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Self {
        Pair([h, w])
    }
}

impl fmt::Display for Pair {
    /// PyTorch's tuple form, `(3, 1)`, as a layer's description shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.0[0], self.0[1])
    }
}
