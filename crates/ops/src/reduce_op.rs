//! [`ReduceOp`]: the reductions beyond sums and means, over all elements or along one axis,
//! each with its shape, forward and VJP rule calling the kernels in [`crate::kernels`].

use crate::kernels::extrema::{self, Extreme};
use crate::kernels::{logsumexp, moments, product};
use crate::{Float, Result, Shape, TensorRef};

/// A reduction of the lanes of an array (all its elements, or each lane along one axis) to one
/// value per lane. Held in [`Op::Reduce`](crate::Op::Reduce) with the axis and `keep_dim`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReduceOp {
    /// The largest element (`torch.amax`): ties share the gradient evenly; NaN is the largest.
    Amax,
    /// The smallest element (`torch.amin`): ties share the gradient evenly; NaN is the smallest.
    Amin,
    /// The largest element, its gradient sent whole to the first largest (the values of
    /// `torch.max(x, dim)`, whose indices are [`ArgMax`](ReduceOp::ArgMax)'s).
    MaxAt,
    /// The smallest element, its gradient sent whole to the first smallest (the values of
    /// `torch.min(x, dim)`).
    MinAt,
    /// The position of the first largest element along the lane (over all elements, the flat
    /// index), as a float; no gradient.
    ArgMax,
    /// The position of the first smallest element, as [`ArgMax`](ReduceOp::ArgMax).
    ArgMin,
    /// `ln Σ eˣ`, overflow-safe (`torch.logsumexp`).
    LogSumExp,
    /// The product `Π x` (`torch.prod`).
    Prod,
    /// The variance `Σ (x - mean)² / (N - correction)` (`torch.var(correction=)`).
    Var(f64),
    /// The standard deviation, `√var` (`torch.std(correction=)`).
    Std(f64),
    /// The Euclidean norm `√Σ x²` (`torch.linalg.vector_norm(ord=2)`), overflow-safe.
    Norm,
}

impl ReduceOp {
    /// The op's name as error messages show it.
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Amax => "amax",
            ReduceOp::Amin => "amin",
            ReduceOp::MaxAt => "max_dim",
            ReduceOp::MinAt => "min_dim",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
            ReduceOp::LogSumExp => "logsumexp",
            ReduceOp::Prod => "prod",
            ReduceOp::Var(_) => "var",
            ReduceOp::Std(_) => "std",
            ReduceOp::Norm => "norm",
        }
    }

    /// Whether a gradient flows to the input (not for the positions).
    #[inline]
    pub fn has_gradient(&self) -> bool {
        !matches!(self, ReduceOp::ArgMax | ReduceOp::ArgMin)
    }

    /// The extreme an extremum reduction looks for.
    fn extreme(&self) -> Extreme {
        match self {
            ReduceOp::Amin | ReduceOp::MinAt | ReduceOp::ArgMin => Extreme::Min,
            _ => Extreme::Max,
        }
    }

    /// The output shape of the reduction of `x` along `axis` (all elements for `None`), or a
    /// typed error: a missing axis, an empty lane where no value is defined (an extreme), a
    /// correction the lanes cannot take.
    pub fn output_shape(&self, x: &Shape, axis: Option<usize>, keep_dim: bool) -> Result<Shape> {
        let name = self.name();
        match *self {
            ReduceOp::Amax
            | ReduceOp::Amin
            | ReduceOp::MaxAt
            | ReduceOp::MinAt
            | ReduceOp::ArgMax
            | ReduceOp::ArgMin => extrema::extremum_shape(name, x, axis, keep_dim),
            ReduceOp::LogSumExp => logsumexp::logsumexp_shape(x, axis, keep_dim),
            ReduceOp::Prod => product::prod_shape(x, axis, keep_dim),
            ReduceOp::Var(c) | ReduceOp::Std(c) => moments::var_shape(name, x, axis, keep_dim, c),
            ReduceOp::Norm => moments::norm_shape(x, axis, keep_dim),
        }
    }

    /// Writes one value per lane of `x` into `out`; `x` must have passed
    /// [`output_shape`](ReduceOp::output_shape).
    pub fn forward<E: Float>(&self, x: TensorRef<'_, E>, axis: Option<usize>, out: &mut [E]) {
        match *self {
            ReduceOp::Amax | ReduceOp::Amin | ReduceOp::MaxAt | ReduceOp::MinAt => {
                extrema::extremum(x, axis, self.extreme(), out)
            }
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                extrema::arg_extremum(x, axis, self.extreme(), out)
            }
            ReduceOp::LogSumExp => logsumexp::logsumexp(x, axis, out),
            ReduceOp::Prod => product::prod(x, axis, out),
            ReduceOp::Var(c) => moments::var(x, axis, c, out),
            ReduceOp::Std(c) => moments::std(x, axis, c, out),
            ReduceOp::Norm => moments::norm(x, axis, out),
        }
    }

    /// The pull-back of `g` (one value per lane) into `gi` (the input's shape): adds when
    /// `ACC`, overwrites otherwise, writing every element either way. `y` is the forward's
    /// output.
    pub fn vjp<E: Float, const ACC: bool>(
        &self,
        x: TensorRef<'_, E>,
        axis: Option<usize>,
        y: &[E],
        g: &[E],
        gi: &mut [E],
    ) {
        match *self {
            // y = amax x: dx = dy·[x = y] / #{x = y}
            ReduceOp::Amax | ReduceOp::Amin => extrema::extremum_vjp::<E, ACC>(x, axis, y, g, gi),
            // y = x[first argmax]: dx = dy there, 0 elsewhere
            ReduceOp::MaxAt | ReduceOp::MinAt => {
                extrema::extremum_first_vjp::<E, ACC>(x, axis, self.extreme(), g, gi)
            }
            // positions: no gradient (never asked; the input still gets zeros)
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                if !ACC {
                    gi.fill(E::zero());
                }
            }
            // y = ln Σ eˣ: dx = dy·e^(x - y)
            ReduceOp::LogSumExp => logsumexp::logsumexp_vjp::<E, ACC>(x, axis, y, g, gi),
            // y = Π x: dx = dy·Π_{j≠i} x_j
            ReduceOp::Prod => product::prod_vjp::<E, ACC>(x, axis, y, g, gi),
            // y = Σ (x - m)² / (N - c): dx = dy·2(x - m) / (N - c)
            ReduceOp::Var(c) => moments::var_vjp::<E, ACC>(x, axis, c, g, gi),
            // y = √var: dx = dy·(x - m) / ((N - c)·y), 0 where y = 0
            ReduceOp::Std(c) => moments::std_vjp::<E, ACC>(x, axis, c, y, g, gi),
            // y = √Σ x²: dx = dy·x / y, 0 where y = 0
            ReduceOp::Norm => moments::norm_vjp::<E, ACC>(x, axis, y, g, gi),
        }
    }
}
