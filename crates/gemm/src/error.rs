//! The one way a product can be refused: operands whose shapes do not fit.

use std::fmt;

/// The shapes of a product that cannot be computed: `a` is `[m, k]`, `b` must be `[k, n]` and
/// `c` must be `[m, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmError {
    /// The shape of `a`.
    pub a: [usize; 2],
    /// The shape of `b`.
    pub b: [usize; 2],
    /// The shape of `c`.
    pub c: [usize; 2],
}

impl GemmError {
    /// `Ok` when `a·b` is defined and has `c`'s shape.
    pub(crate) fn check(
        a: (usize, usize),
        b: (usize, usize),
        c: (usize, usize),
    ) -> Result<(), GemmError> {
        if a.1 == b.0 && c == (a.0, b.1) {
            Ok(())
        } else {
            Err(GemmError {
                a: [a.0, a.1],
                b: [b.0, b.1],
                c: [c.0, c.1],
            })
        }
    }

    fn reason(&self) -> &'static str {
        if self.a[1] != self.b[0] {
            "the inner dimensions differ"
        } else {
            "c does not have the product's shape"
        }
    }
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gemm: cannot multiply a {:?} by b {:?} into c {:?}: {}",
            self.a,
            self.b,
            self.c,
            self.reason()
        )
    }
}

impl std::error::Error for GemmError {}
