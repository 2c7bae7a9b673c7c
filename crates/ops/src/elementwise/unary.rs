//! The table of one-input elementwise ops: each row its forward rule `y(x)` beside its
//! derivative rule `dx(g, x, y)` (`g` the output's gradient, `y` the output). See
//! `docs/OPS.md` for the formulas and edge rules in one table.

use crate::Arith;
use crate::arith::select;

super::unary_ops! {
    /// `x + c` for a constant `c`.
    AddScalar(c = 0.75) "add_scalar" {
        y(x) = x + x.lit(c);
        dx(g, x, y) = g;
    }
    /// `x · c` for a constant `c`.
    MulScalar(c = -1.5) "mul_scalar" {
        y(x) = x * x.lit(c);
        dx(g, x, y) = g * g.lit(c);
    }
    /// `-x`.
    Neg "neg" {
        y(x) = -x;
        dx(g, x, y) = -g;
    }
    /// `max(x, 0)`, with derivative 0 at 0 (as PyTorch).
    Relu "relu" {
        y(x) = x.relu();
        dx(g, x, y) = {
            let zero = x.lit(0.0);
            select(x.gt(zero), g, zero)
        };
    }
    /// Hyperbolic tangent.
    Tanh "tanh" {
        y(x) = x.tanh();
        dx(g, x, y) = g * (y.lit(1.0) - y * y);
    }
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid "sigmoid" {
        y(x) = x.sigmoid();
        dx(g, x, y) = g * y * (y.lit(1.0) - y);
    }
    /// `eˣ`.
    Exp "exp" {
        y(x) = x.exp();
        dx(g, x, y) = g * y;
    }
    /// Natural logarithm.
    Log "log" {
        y(x) = x.log();
        dx(g, x, y) = g / x;
    }
    /// The input's value, through which no gradient flows (PyTorch's `detach`, JAX's
    /// `stop_gradient`).
    Detach "detach" {
        y(x) = x;
        dx = none;
    }
}
