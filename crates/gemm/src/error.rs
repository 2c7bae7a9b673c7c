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
    /// The length of the bias, for [`gemm_bias`](crate::gemm_bias) (it must be `n`).
    pub bias: Option<usize>,
}

impl GemmError {
    /// `Ok` when `a·b` is defined and has `c`'s shape.
    pub(crate) fn check(
        a: (usize, usize),
        b: (usize, usize),
        c: (usize, usize),
    ) -> Result<(), GemmError> {
        Self::check_bias(a, b, c, None)
    }

    /// [`check`](GemmError::check), and that a bias of `bias` elements has one per column.
    pub(crate) fn check_bias(
        a: (usize, usize),
        b: (usize, usize),
        c: (usize, usize),
        bias: Option<usize>,
    ) -> Result<(), GemmError> {
        if a.1 == b.0 && c == (a.0, b.1) && bias.is_none_or(|len| len == b.1) {
            Ok(())
        } else {
            Err(GemmError {
                a: [a.0, a.1],
                b: [b.0, b.1],
                c: [c.0, c.1],
                bias,
            })
        }
    }

    fn reason(&self) -> String {
        if self.a[1] != self.b[0] {
            "the inner dimensions differ".into()
        } else if self.c != [self.a[0], self.b[1]] {
            "c does not have the product's shape".into()
        } else {
            let len = self.bias.unwrap_or_default();
            format!("the bias has {len} elements, not one per column of c")
        }
    }
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gemm: cannot multiply a {:?} by b {:?} into c {:?}",
            self.a, self.b, self.c
        )?;
        if let Some(len) = self.bias {
            write!(f, " with a bias [{len}]")?;
        }
        write!(f, ": {}", self.reason())
    }
}

impl std::error::Error for GemmError {}
