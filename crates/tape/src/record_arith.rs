//! [`Rec`]: the elementwise rules' [`Arith`] run with tape ops, so that a derivative rule, the
//! same row of the table the first-order sweep computes numbers with, records its own graph.
//!
//! A value is either a node on the tape or a literal (`x.lit(c)` in a rule): literals fold
//! into each other and into the scalar ops (`x + c` is one `add_scalar` node), so that a rule
//! records no more nodes than it has tensor operations.
//!
//! A mask is the comparison op's node (`gt`, `ge`, `eq`), 1 where it holds and 0 elsewhere
//! (false for a NaN operand), with no gradient; a literal compared with a node is a node of
//! that value in the node's shape, built from the node (so that a replay rebuilds it). A
//! select is the `where_cond` op, so a branch that is infinite or NaN where it is not taken
//! does not reach the value (a blend `o + m·(t - o)` would give `0 · ∞ = NaN` there), and
//! its gradient there is 0. A literal branch is a node built from the mask, `m·0 + c` (the
//! mask holds only 0 and 1, so this is `c` exactly), made once per mask and value.

use std::cell::RefCell;
use std::ops::{Add, Div, Mul, Neg, Sub};

use wengert_ops::{Arith, Error, Float, Num, Result};

use crate::{NodeId, Tape};

/// The tape a recorded rule writes to, and the first error any of its ops met: the operators
/// of [`Arith`] cannot return a `Result`, so the error waits here until the rule is done.
pub(crate) struct Recorder<'a, E: Float> {
    tape: RefCell<&'a mut Tape<E>>,
    error: RefCell<Option<Error>>,
    /// The literal branches of selects made nodes so far: (mask, value's bits, node).
    filled: RefCell<Vec<(NodeId, u64, NodeId)>>,
}

/// A recorded value: a node, or a constant not yet on the tape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val {
    /// A node on the tape.
    Node(NodeId),
    /// A constant, the same at every element.
    Lit(f64),
}

/// A value in a rule being recorded: what [`Arith`] is implemented for.
#[derive(Clone, Copy)]
pub(crate) struct Rec<'r, 'a, E: Float> {
    cx: &'r Recorder<'a, E>,
    pub val: Val,
}

impl<'a, E: Float> Recorder<'a, E> {
    /// A recorder writing to `tape`.
    pub fn new(tape: &'a mut Tape<E>) -> Self {
        Recorder {
            tape: RefCell::new(tape),
            error: RefCell::new(None),
            filled: RefCell::new(Vec::new()),
        }
    }

    /// `id` as a value of a rule.
    pub fn node(&self, id: NodeId) -> Rec<'_, 'a, E> {
        Rec {
            cx: self,
            val: Val::Node(id),
        }
    }

    /// The first error an op of the rules met, if any.
    pub fn take_error(&self) -> Result<()> {
        match self.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `then` where the mask node `mask` holds, else `otherwise`: a `where_cond` node, a
    /// literal branch made a node of the mask's shape.
    fn select(&self, mask: NodeId, then: Val, otherwise: Val) -> Val {
        self.run(|t| {
            let then = self.branch(t, mask, then)?;
            let otherwise = self.branch(t, mask, otherwise)?;
            t.where_cond(mask, then, otherwise)
        })
    }

    /// A select's branch as a node: a literal `c` becomes `mask·0 + c` (exactly `c`: a mask
    /// holds 0 and 1 only), once per mask and value.
    fn branch(&self, t: &mut Tape<E>, mask: NodeId, v: Val) -> Result<NodeId> {
        let c = match v {
            Val::Node(id) => return Ok(id),
            Val::Lit(c) => c,
        };
        let key = (mask, c.to_bits());
        let made = self
            .filled
            .borrow()
            .iter()
            .find(|f| (f.0, f.1) == key)
            .map(|f| f.2);
        if let Some(id) = made {
            return Ok(id);
        }
        let zero = t.mul_scalar(mask, E::zero())?;
        let id = if c == 0.0 {
            zero
        } else {
            t.add_scalar(zero, E::from_f64(c))?
        };
        self.filled.borrow_mut().push((mask, c.to_bits(), id));
        Ok(id)
    }

    /// Runs `f` on the tape, unless an earlier op failed: then, as after a failure of its own,
    /// the result is a placeholder and the error is kept for [`take_error`](Self::take_error).
    fn run(&self, f: impl FnOnce(&mut Tape<E>) -> Result<NodeId>) -> Val {
        if self.error.borrow().is_some() {
            return Val::Lit(f64::NAN);
        }
        match f(&mut self.tape.borrow_mut()) {
            Ok(id) => Val::Node(id),
            Err(e) => {
                *self.error.borrow_mut() = Some(e);
                Val::Lit(f64::NAN)
            }
        }
    }
}

impl<'r, 'a, E: Float> Rec<'r, 'a, E> {
    fn with(self, val: Val) -> Self {
        Rec { cx: self.cx, val }
    }

    /// A one-input op: `num` on a literal, `op` on a node.
    fn map(
        self,
        num: impl FnOnce(f64) -> f64,
        op: impl FnOnce(&mut Tape<E>, NodeId) -> Result<NodeId>,
    ) -> Self {
        match self.val {
            Val::Lit(c) => self.with(Val::Lit(num(c))),
            Val::Node(x) => self.with(self.cx.run(|t| op(t, x))),
        }
    }

    /// `+ c` on a node, folding `+ 0`.
    fn add_lit(self, x: NodeId, c: f64) -> Self {
        if c == 0.0 {
            return self.with(Val::Node(x));
        }
        self.with(self.cx.run(|t| t.add_scalar(x, E::from_f64(c))))
    }

    /// `· c` on a node, folding `· 1` and `· -1`.
    fn mul_lit(self, x: NodeId, c: f64) -> Self {
        let val = if c == 1.0 {
            Val::Node(x)
        } else if c == -1.0 {
            self.cx.run(|t| t.neg(x))
        } else {
            self.cx.run(|t| t.mul_scalar(x, E::from_f64(c)))
        };
        self.with(val)
    }

    /// A two-input op on two nodes.
    fn binary(
        self,
        other: Self,
        op: impl FnOnce(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>,
    ) -> Self {
        match (self.val, other.val) {
            (Val::Node(a), Val::Node(b)) => self.with(self.cx.run(|t| op(t, a, b))),
            _ => unreachable!("called with two nodes"),
        }
    }

    /// A comparison: `holds` on two literals, `op` on nodes (a literal made a node of the
    /// other side's shape).
    fn compare(
        self,
        other: Self,
        holds: impl FnOnce(f64, f64) -> bool,
        op: impl FnOnce(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>,
    ) -> Self {
        let val = match (self.val, other.val) {
            (Val::Lit(a), Val::Lit(b)) => Val::Lit(truth(holds(a, b))),
            (Val::Node(a), Val::Node(b)) => self.cx.run(|t| op(t, a, b)),
            (Val::Node(a), Val::Lit(c)) => self.cx.run(|t| {
                let c = t.fill_like(a, c)?;
                op(t, a, c)
            }),
            (Val::Lit(c), Val::Node(b)) => self.cx.run(|t| {
                let c = t.fill_like(b, c)?;
                op(t, c, b)
            }),
        };
        self.with(val)
    }
}

impl<E: Float> Add for Rec<'_, '_, E> {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        match (self.val, rhs.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a + b)),
            (Val::Node(x), Val::Lit(c)) | (Val::Lit(c), Val::Node(x)) => self.add_lit(x, c),
            _ => self.binary(rhs, |t, a, b| t.add(a, b)),
        }
    }
}

impl<E: Float> Sub for Rec<'_, '_, E> {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        match (self.val, rhs.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a - b)),
            (Val::Node(x), Val::Lit(c)) => self.add_lit(x, -c),
            (Val::Lit(c), Val::Node(_)) => {
                let n = -rhs;
                match n.val {
                    Val::Node(x) => n.add_lit(x, c),
                    Val::Lit(_) => n,
                }
            }
            _ => self.binary(rhs, |t, a, b| t.sub(a, b)),
        }
    }
}

impl<E: Float> Mul for Rec<'_, '_, E> {
    type Output = Self;
    fn mul(self, rhs: Self) -> Self {
        match (self.val, rhs.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a * b)),
            (Val::Node(x), Val::Lit(c)) | (Val::Lit(c), Val::Node(x)) => self.mul_lit(x, c),
            _ => self.binary(rhs, |t, a, b| t.mul(a, b)),
        }
    }
}

impl<E: Float> Div for Rec<'_, '_, E> {
    type Output = Self;
    fn div(self, rhs: Self) -> Self {
        match (self.val, rhs.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a / b)),
            (Val::Node(x), Val::Lit(c)) => self.mul_lit(x, 1.0 / c),
            // c / x = c · x⁻¹
            (Val::Lit(c), Val::Node(_)) => {
                let inv = rhs.powf(-1.0);
                match inv.val {
                    Val::Node(x) => inv.mul_lit(x, c),
                    Val::Lit(_) => inv,
                }
            }
            _ => self.binary(rhs, |t, a, b| t.div(a, b)),
        }
    }
}

impl<E: Float> Neg for Rec<'_, '_, E> {
    type Output = Self;
    fn neg(self) -> Self {
        self.map(|c| -c, |t, x| t.neg(x))
    }
}

/// 1 or 0 for a truth value, as a literal.
fn truth(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl<E: Float> Arith for Rec<'_, '_, E> {
    /// 1 where the comparison holds, 0 elsewhere (a literal when both sides are).
    type Mask = Self;

    fn lit(self, c: f64) -> Self {
        self.with(Val::Lit(c))
    }
    fn gt(self, other: Self) -> Self {
        self.compare(other, |a, b| a > b, |t, a, b| t.gt(a, b))
    }
    fn ge(self, other: Self) -> Self {
        self.compare(other, |a, b| a >= b, |t, a, b| t.ge(a, b))
    }
    fn eq(self, other: Self) -> Self {
        self.compare(other, |a, b| a == b, |t, a, b| t.eq(a, b))
    }
    fn select(mask: Self, then: Self, otherwise: Self) -> Self {
        match mask.val {
            Val::Lit(m) => {
                if m != 0.0 {
                    then
                } else {
                    otherwise
                }
            }
            // Both branches one value: no select to record.
            Val::Node(_) if then.val == otherwise.val => then,
            Val::Node(m) => mask.with(mask.cx.select(m, then.val, otherwise.val)),
        }
    }
    fn exp(self) -> Self {
        self.map(f64::exp, |t, x| t.exp(x))
    }
    fn log(self) -> Self {
        self.map(f64::ln, |t, x| t.log(x))
    }
    fn tanh(self) -> Self {
        self.map(f64::tanh, |t, x| t.tanh(x))
    }
    fn sigmoid(self) -> Self {
        self.map(|c| 1.0 / (1.0 + (-c).exp()), |t, x| t.sigmoid(x))
    }
    fn relu(self) -> Self {
        self.map(|c| if c > 0.0 { c } else { 0.0 }, |t, x| t.relu(x))
    }
    fn sqrt(self) -> Self {
        self.map(f64::sqrt, |t, x| t.sqrt(x))
    }
    fn abs(self) -> Self {
        self.map(f64::abs, |t, x| t.abs(x))
    }
    fn sign(self) -> Self {
        self.map(
            |c| {
                if c == 0.0 || c.is_nan() {
                    c
                } else {
                    c.signum()
                }
            },
            |t, x| t.sign(x),
        )
    }
    fn powf(self, p: f64) -> Self {
        self.map(|c| c.powf(p), |t, x| t.powf(x, E::from_f64(p)))
    }
    fn pow(self, other: Self) -> Self {
        match (self.val, other.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a.powf(b))),
            (Val::Node(_), Val::Lit(p)) => self.powf(p),
            // The rules raise a literal to a node nowhere, but it costs nothing.
            (Val::Lit(c), Val::Node(b)) => self.with(self.cx.run(|t| {
                let c = t.fill_like(b, c)?;
                t.pow(c, b)
            })),
            _ => self.binary(other, |t, a, b| t.pow(a, b)),
        }
    }
    fn sin(self) -> Self {
        self.map(f64::sin, |t, x| t.sin(x))
    }
    fn cos(self) -> Self {
        self.map(f64::cos, |t, x| t.cos(x))
    }
    fn log1p(self) -> Self {
        self.map(f64::ln_1p, |t, x| t.log1p(x))
    }
    fn expm1(self) -> Self {
        self.map(f64::exp_m1, |t, x| t.expm1(x))
    }
    fn erf(self) -> Self {
        self.map(|c| Num(c).erf().0, |t, x| t.erf(x))
    }
    fn maximum(self, other: Self) -> Self {
        match (self.val, other.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a.max(b))),
            (Val::Node(a), Val::Lit(c)) => self.with(self.cx.run(|t| {
                let c = t.fill_like(a, c)?;
                t.maximum(a, c)
            })),
            (Val::Lit(_), Val::Node(_)) => other.maximum(self),
            _ => self.binary(other, |t, a, b| t.maximum(a, b)),
        }
    }
    fn minimum(self, other: Self) -> Self {
        match (self.val, other.val) {
            (Val::Lit(a), Val::Lit(b)) => self.with(Val::Lit(a.min(b))),
            (Val::Node(a), Val::Lit(c)) => self.with(self.cx.run(|t| {
                let c = t.fill_like(a, c)?;
                t.minimum(a, c)
            })),
            (Val::Lit(_), Val::Node(_)) => other.minimum(self),
            _ => self.binary(other, |t, a, b| t.minimum(a, b)),
        }
    }
}
