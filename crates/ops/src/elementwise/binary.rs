//! The table of two-input elementwise ops: each row its forward rule `c(a, b)` beside the
//! gradients of its two inputs, `da(g, a, b, c)` and `db(g, a, b, c)` (`g` the output's
//! gradient, `c` the output). Broadcasting is the kernels' business; the rules are per element.

use crate::Arith;
use crate::arith::select;

super::binary_ops! {
    /// `a + b`, broadcasting.
    Add "add" {
        c(a, b) = a + b;
        da(g, a, b, c) = g;
        db(g, a, b, c) = g;
    }
    /// `a - b`, broadcasting.
    Sub "sub" {
        c(a, b) = a - b;
        da(g, a, b, c) = g;
        db(g, a, b, c) = -g;
    }
    /// `a · b` elementwise, broadcasting.
    Mul "mul" {
        c(a, b) = a * b;
        da(g, a, b, c) = g * b;
        db(g, a, b, c) = g * a;
    }
    /// `a / b` elementwise, broadcasting.
    Div "div" {
        c(a, b) = a / b;
        da(g, a, b, c) = g / b;
        db(g, a, b, c) = -g * c / b;
    }
    /// The larger of `a` and `b`, NaN if either is; on a tie each input gets half the
    /// gradient (as PyTorch's `maximum`).
    Maximum "maximum" {
        c(a, b) = a.maximum(b);
        da(g, a, b, c) = select(b.gt(a), g.lit(0.0), select(a.eq(b), g / g.lit(2.0), g));
        db(g, a, b, c) = select(a.gt(b), g.lit(0.0), select(a.eq(b), g / g.lit(2.0), g));
    }
    /// The smaller of `a` and `b`, NaN if either is; on a tie each input gets half the
    /// gradient (as PyTorch's `minimum`).
    Minimum "minimum" {
        c(a, b) = a.minimum(b);
        da(g, a, b, c) = select(a.gt(b), g.lit(0.0), select(a.eq(b), g / g.lit(2.0), g));
        db(g, a, b, c) = select(b.gt(a), g.lit(0.0), select(a.eq(b), g / g.lit(2.0), g));
    }
    /// `a^b`. As PyTorch: `a`'s gradient is 0 where `b = 0`, and `b`'s is 0 where `a = 0` and
    /// `b >= 0` (rather than `0 · ln 0`).
    Pow "pow" {
        c(a, b) = a.pow(b);
        da(g, a, b, c) = {
            let zero = a.lit(0.0);
            select(b.eq(zero), zero, g * (b * a.pow(b - b.lit(1.0))))
        };
        db(g, a, b, c) = {
            let zero = a.lit(0.0);
            let full = c * a.log();
            g * select(a.eq(zero), select(b.ge(zero), zero, full), full)
        };
    }
    /// 1 where `a == b`, else 0 (NaN equals nothing): a mask, through which no gradient
    /// flows (PyTorch's `eq`, as a float).
    Eq "eq" {
        c(a, b) = select(a.eq(b), a.lit(1.0), a.lit(0.0));
        grads = none;
    }
    /// 1 where `a < b`, else 0 (0 if either is NaN); no gradient.
    Lt "lt" {
        c(a, b) = select(b.gt(a), a.lit(1.0), a.lit(0.0));
        grads = none;
    }
    /// 1 where `a <= b`, else 0 (0 if either is NaN); no gradient.
    Le "le" {
        c(a, b) = select(b.ge(a), a.lit(1.0), a.lit(0.0));
        grads = none;
    }
    /// 1 where `a > b`, else 0 (0 if either is NaN); no gradient.
    Gt "gt" {
        c(a, b) = select(a.gt(b), a.lit(1.0), a.lit(0.0));
        grads = none;
    }
    /// 1 where `a >= b`, else 0 (0 if either is NaN); no gradient.
    Ge "ge" {
        c(a, b) = select(a.ge(b), a.lit(1.0), a.lit(0.0));
        grads = none;
    }
}

impl BinaryOp {
    /// Whether input `index`'s share of the output's gradient is that gradient itself (either
    /// term of a sum, the first of a difference): the tape's sweep then hands a broadcast
    /// sum's unbroadcast operand the gradient's buffer instead of a copy. A test checks it
    /// against the rules.
    #[inline]
    pub fn passes_gradient_to(self, index: usize) -> bool {
        matches!((self, index), (BinaryOp::Add, _) | (BinaryOp::Sub, 0))
    }
}
