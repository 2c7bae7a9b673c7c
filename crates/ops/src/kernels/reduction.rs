//! [`Reduction`]: how a loss turns its per-example terms into its output (PyTorch's
//! `reduction="mean" | "sum" | "none"`), shared by every loss kernel.

use crate::{Error, Float, Result, Shape};

/// How a loss reduces its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// The sum of the terms divided by their count (or, for losses with class weights, by the
    /// total weight of the targets): a scalar.
    Mean,
    /// The sum of the terms: a scalar.
    Sum,
    /// Every term, in the shape of the terms.
    None,
}

impl Reduction {
    /// The name PyTorch gives it: `"mean"`, `"sum"` or `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::None => "none",
        }
    }

    /// The loss's output shape when its terms have shape `terms`: a scalar for a mean or a
    /// sum, `terms` for none. A mean of no terms is an [`EmptyBatch`](Error::EmptyBatch) error
    /// naming `op` and `input` (the shape the user passed).
    pub fn output_shape(self, op: &'static str, input: &Shape, terms: &Shape) -> Result<Shape> {
        match self {
            Reduction::None => Ok(*terms),
            Reduction::Sum => Ok(Shape::SCALAR),
            Reduction::Mean if terms.numel() == 0 => Err(Error::EmptyBatch { op, shape: *input }),
            Reduction::Mean => Ok(Shape::SCALAR),
        }
    }

    /// Writes the `n` terms `term(i)` into `out` (none), or their sum (sum) or their sum
    /// divided by `divisor` (mean) into `out[0]`. Sums run in order in `f64`.
    #[inline]
    pub(crate) fn write<E: Float>(
        self,
        n: usize,
        divisor: f64,
        out: &mut [E],
        mut term: impl FnMut(usize) -> E,
    ) {
        match self {
            Reduction::None => {
                for (i, o) in out.iter_mut().enumerate().take(n) {
                    *o = term(i);
                }
            }
            Reduction::Sum | Reduction::Mean => {
                let mut total = 0.0f64;
                for i in 0..n {
                    total += term(i).to_f64();
                }
                if self == Reduction::Mean {
                    total /= divisor;
                }
                out[0] = E::from_f64(total);
            }
        }
    }

    /// The output gradient that reaches each term `i`: `g[i]` (none), `g[0]` (sum) or
    /// `g[0] / divisor` (mean), with the division done once.
    #[inline(always)]
    pub(crate) fn grad_of<'g, E: Float>(self, g: &'g [E], divisor: E) -> impl Fn(usize) -> E + 'g {
        let whole = match self {
            Reduction::None => E::zero(),
            Reduction::Sum => g[0],
            Reduction::Mean => g[0] / divisor,
        };
        move |i| if self == Reduction::None { g[i] } else { whole }
    }
}
