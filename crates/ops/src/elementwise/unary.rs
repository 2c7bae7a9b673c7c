//! The table of one-input elementwise ops: each row its forward rule `y(x)` beside its
//! derivative rule `dx(g, x, y)` (`g` the output's gradient, `y` the output). See
//! `docs/OPS.md` for the formulas and edge rules in one table.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

use crate::arith::select;
use crate::{Arith, Error, Result};

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
    /// `√x`. Its derivative at 0 is infinite, as PyTorch's.
    Sqrt "sqrt" {
        y(x) = x.sqrt();
        dx(g, x, y) = g / (y.lit(2.0) * y);
    }
    /// `1 / √x`.
    Rsqrt "rsqrt" {
        y(x) = x.lit(1.0) / x.sqrt();
        dx(g, x, y) = g.lit(-0.5) * g * (y * y * y);
    }
    /// `|x|`, with derivative 0 at 0 (as PyTorch).
    Abs "abs" {
        y(x) = x.abs();
        dx(g, x, y) = g * x.sign();
    }
    /// `x²`.
    Square "square" {
        y(x) = x * x;
        dx(g, x, y) = g * (x.lit(2.0) * x);
    }
    /// `xᵖ` for a constant exponent `p`; with `p = 0` the gradient is 0 everywhere (as PyTorch).
    Powf(p = 2.5) "powf" {
        y(x) = x.powf(p);
        dx(g, x, y) = if p == 0.0 {
            g.lit(0.0)
        } else {
            g * (x.lit(p) * x.powf(p - 1.0))
        };
    }
    /// The sine.
    Sin "sin" {
        y(x) = x.sin();
        dx(g, x, y) = g * x.cos();
    }
    /// The cosine.
    Cos "cos" {
        y(x) = x.cos();
        dx(g, x, y) = g * -x.sin();
    }
    /// `ln(1 + x)`, accurate near 0.
    Log1p "log1p" {
        y(x) = x.log1p();
        dx(g, x, y) = g / (x + x.lit(1.0));
    }
    /// `eˣ - 1`, accurate near 0.
    Expm1 "expm1" {
        y(x) = x.expm1();
        dx(g, x, y) = g * (y + y.lit(1.0));
    }
    /// `ln(1 + e^(βx)) / β`, and `x` itself where `βx > threshold` (PyTorch's `softplus`,
    /// whose defaults are `β = 1`, `threshold = 20`).
    Softplus(beta = 1.0, threshold = 20.0) "softplus" {
        y(x) = {
            let bx = x * x.lit(beta);
            select(bx.gt(x.lit(threshold)), x, bx.exp().log1p() / x.lit(beta))
        };
        dx(g, x, y) = {
            let bx = x * x.lit(beta);
            let z = bx.exp();
            select(bx.gt(x.lit(threshold)), g, g * z / (z + z.lit(1.0)))
        };
    }
    /// `x` where `x > 0`, else `slope · x`; the derivative at 0 is the slope (as PyTorch).
    LeakyRelu(slope = 0.1) "leaky_relu" {
        y(x) = select(x.gt(x.lit(0.0)), x, x * x.lit(slope));
        dx(g, x, y) = select(x.gt(x.lit(0.0)), g, g * g.lit(slope));
    }
    /// `x` where `x > 0`, else `α(eˣ - 1)`; the derivative at 0 is `α` (as PyTorch).
    Elu(alpha = 1.0) "elu" {
        y(x) = select(x.gt(x.lit(0.0)), x, x.lit(alpha) * x.expm1());
        dx(g, x, y) = select(x.gt(x.lit(0.0)), g, g * g.lit(alpha) * x.exp());
    }
    /// `x · σ(x)` (also called swish).
    Silu "silu" {
        y(x) = x * x.sigmoid();
        dx(g, x, y) = {
            let s = x.sigmoid();
            let one = s.lit(1.0);
            g * s * (one + x * (one - s))
        };
    }
    /// `x` limited to `[min, max]` (a missing bound is infinite); NaN stays NaN, and
    /// `min > max` gives `max` everywhere (as PyTorch). The gradient passes where
    /// `min <= x <= max`, bounds included, as PyTorch's.
    Clamp(min = -0.5, max = 1.0) "clamp" {
        y(x) = {
            let above = select(x.lit(min).gt(x), x.lit(min), x);
            select(above.gt(x.lit(max)), x.lit(max), above)
        };
        dx(g, x, y) = {
            let zero = g.lit(0.0);
            select(x.ge(x.lit(min)), select(x.lit(max).ge(x), g, zero), zero)
        };
    }
    /// -1, 0 or 1 as `x` is negative, zero or positive; NaN stays NaN. No gradient flows.
    Sign "sign" {
        y(x) = x.sign();
        dx = none;
    }
    /// The input's value, through which no gradient flows (PyTorch's `detach`, JAX's
    /// `stop_gradient`).
    Detach "detach" {
        y(x) = x;
        dx = none;
    }
    /// The error function `(2/√π) ∫₀ˣ e^(-t²) dt`.
    Erf "erf" {
        y(x) = x.erf();
        dx(g, x, y) = g * x.lit(FRAC_2_SQRT_PI) * (-(x * x)).exp();
    }
    /// `x · Φ(x)`, `Φ` the standard normal CDF `(1 + erf(x/√2)) / 2` (PyTorch's `gelu`,
    /// `approximate='none'`). Far below 0, `1 + erf` rounds to 0 before `x` multiplies it, so
    /// the value is exactly 0 from about -8.3 in f64, as PyTorch's.
    Gelu "gelu" {
        y(x) = x * x.lit(0.5) * (x.lit(1.0) + (x * x.lit(FRAC_1_SQRT_2)).erf());
        dx(g, x, y) = {
            let cdf = x.lit(0.5) * (x.lit(1.0) + (x * x.lit(FRAC_1_SQRT_2)).erf());
            let pdf = x.lit(FRAC_1_SQRT_2PI) * (x * x * x.lit(-0.5)).exp();
            g * (cdf + x * pdf)
        };
    }
    /// `x · (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2` (PyTorch's `gelu`,
    /// `approximate='tanh'`).
    GeluTanh "gelu_tanh" {
        y(x) = {
            let inner = x.lit(SQRT_2_OVER_PI) * (x + x.lit(GELU_CUBIC) * x * x * x);
            x * x.lit(0.5) * (x.lit(1.0) + inner.tanh())
        };
        dx(g, x, y) = {
            let inner = x.lit(SQRT_2_OVER_PI) * (x + x.lit(GELU_CUBIC) * x * x * x);
            let t = inner.tanh();
            let one = x.lit(1.0);
            let slope = x.lit(SQRT_2_OVER_PI) * (one + x.lit(3.0 * GELU_CUBIC) * x * x);
            g * (x.lit(0.5) * (one + t) + x.lit(0.5) * x * (one - t * t) * slope)
        };
    }
}

/// `√(2/π)`, the tanh approximation's scale.
const SQRT_2_OVER_PI: f64 = FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
/// `1/√(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = FRAC_2_SQRT_PI * FRAC_1_SQRT_2 * 0.5;
/// The cubic coefficient of the tanh approximation of gelu (Hendrycks and Gimpel, 2016).
const GELU_CUBIC: f64 = 0.044715;

impl UnaryOp {
    /// Checks the op's parameters, so that a bad one is an error when the op is recorded (or
    /// loaded), never garbage: a NaN or an infinite parameter where the rule needs a finite one.
    #[inline] // folds away when the op is a constant (a named method's), as on every record
    pub fn check(self) -> Result<()> {
        let bad = |parameter, value: f64, expected| {
            Err(Error::BadParameter {
                op: self.name(),
                parameter,
                value,
                expected,
            })
        };
        match self {
            UnaryOp::Powf(p) if p.is_nan() => bad("p", p, "a number"),
            UnaryOp::Softplus(beta, _) if !(beta.is_finite() && beta > 0.0) => {
                bad("beta", beta, "finite and positive")
            }
            UnaryOp::Softplus(_, threshold) if threshold.is_nan() => {
                bad("threshold", threshold, "a number")
            }
            UnaryOp::LeakyRelu(slope) if !slope.is_finite() => bad("slope", slope, "finite"),
            UnaryOp::Elu(alpha) if !alpha.is_finite() => bad("alpha", alpha, "finite"),
            UnaryOp::Clamp(min, _) if min.is_nan() => bad("min", min, "a number"),
            UnaryOp::Clamp(_, max) if max.is_nan() => bad("max", max, "a number"),
            // Every other parameter may be any value (`x + c` with an infinite `c` is inf).
            _ => Ok(()),
        }
    }
}
