//! The table of two-input elementwise ops: each row its forward rule `c(a, b)` beside the
//! gradients of its two inputs, `da(g, a, b, c)` and `db(g, a, b, c)` (`g` the output's
//! gradient, `c` the output). Broadcasting is the kernels' business; the rules are per element.

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
