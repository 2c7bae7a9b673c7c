//! The elementwise ops, each rule written once: [`UnaryOp`] and [`BinaryOp`].
//!
//! Each op is one row of a table (`unary.rs`, `binary.rs`): its name, its forward rule and its
//! derivative rules side by side, written in [`Arith`](crate::Arith). The two macros below turn
//! a table into the enum and into everything that runs a rule: the pointwise loops (one loop
//! per rule, the op decided outside it), the broadcasting kernels' calls (one instance per
//! rule), the scalar forms (`apply`, `derivative`) and the list of every op (`ALL`). Nothing
//! else states an elementwise op's arithmetic.

use crate::kernels::unary::store;
use crate::{Float, Num};

mod binary;
mod unary;

pub use binary::BinaryOp;
pub use unary::UnaryOp;

/// The type of an op's parameter (always `f64`), one per parameter name.
macro_rules! param_type {
    ($p:ident) => {
        f64
    };
}
pub(crate) use param_type;

/// An elementwise loop over at least this many elements is shared among the pool's threads,
/// one part each: below it a pass takes about as long as handing part of it to another thread
/// (W2's ReLU on a batch of 128×512 stays on one; its 1024×512 is halved on two).
const PARALLEL_MIN_ELEMENTS: usize = 1 << 17;

/// Whether a loop over `n` elements is shared: only from a thread of a pool of more than one
/// (from outside, each part would go through rayon's global queue, which allocates).
#[inline(always)]
fn shared(n: usize) -> bool {
    n >= PARALLEL_MIN_ELEMENTS
        && rayon::current_thread_index().is_some()
        && rayon::current_num_threads() > 1
}

/// Runs `body(at, part)` on `threads` parts of `out` of about equal length (`at` being the
/// part's offset in `out`), forking with `rayon::join`. Each element is computed by the same
/// rule whichever thread runs it, so the results are the same bits as one loop's.
fn in_parts<E: Send>(
    out: &mut [E],
    at: usize,
    threads: usize,
    body: &(impl Fn(usize, &mut [E]) + Sync),
) {
    if threads < 2 || out.len() < 32 {
        body(at, out);
        return;
    }
    let left = threads / 2;
    // A multiple of 16 elements, so that no cache line is written by two parts (given an
    // aligned start).
    let mid = (out.len() * left / threads) & !15;
    let (low, high) = out.split_at_mut(mid);
    rayon::join(
        || in_parts(low, at, left, body),
        || in_parts(high, at + mid, threads - left, body),
    );
}

/// `body(0, out)`, or [`in_parts`] with one part per thread of the current pool when the loop
/// is [`shared`].
fn maybe_in_parts<E: Send>(out: &mut [E], body: &(impl Fn(usize, &mut [E]) + Sync)) {
    if shared(out.len()) {
        in_parts(out, 0, rayon::current_num_threads(), body);
    } else {
        body(0, out);
    }
}

/// `out[i] = f(x[i])` for every `i` of `out`; a single element skips the vectorised loop's
/// set-up, which costs more than the arithmetic (a chain of scalar ops).
#[inline(always)]
pub(crate) fn map1<E: Float>(x: &[E], out: &mut [E], f: impl Fn(Num<E>) -> Num<E> + Sync) {
    let n = out.len();
    let x = &x[..n];
    if n == 1 {
        out[0] = f(Num(x[0])).0;
    } else if n >= PARALLEL_MIN_ELEMENTS {
        map1_long(x, out, &f);
    } else {
        for i in 0..n {
            out[i] = f(Num(x[i])).0;
        }
    }
}

/// [`map1`] on a slice long enough to share (out of line: a tiny op's path stays short).
#[inline(never)]
fn map1_long<E: Float>(x: &[E], out: &mut [E], f: &(impl Fn(Num<E>) -> Num<E> + Sync)) {
    let run = |at: usize, out: &mut [E]| {
        for (o, &v) in out.iter_mut().zip(&x[at..]) {
            *o = f(Num(v)).0;
        }
    };
    maybe_in_parts(out, &run);
}

/// `out[i] = f(a[i], b[i])` for every `i` of `out`.
#[inline(always)]
pub(crate) fn map2<E: Float>(
    a: &[E],
    b: &[E],
    out: &mut [E],
    f: impl Fn(Num<E>, Num<E>) -> Num<E> + Sync,
) {
    let n = out.len();
    let (a, b) = (&a[..n], &b[..n]);
    if n == 1 {
        out[0] = f(Num(a[0]), Num(b[0])).0;
    } else if n >= PARALLEL_MIN_ELEMENTS {
        map2_long(a, b, out, &f);
    } else {
        for i in 0..n {
            out[i] = f(Num(a[i]), Num(b[i])).0;
        }
    }
}

/// [`map2`] on a slice long enough to share.
#[inline(never)]
fn map2_long<E: Float>(
    a: &[E],
    b: &[E],
    out: &mut [E],
    f: &(impl Fn(Num<E>, Num<E>) -> Num<E> + Sync),
) {
    let run = |at: usize, out: &mut [E]| {
        let (a, b) = (&a[at..at + out.len()], &b[at..at + out.len()]);
        for i in 0..out.len() {
            out[i] = f(Num(a[i]), Num(b[i])).0;
        }
    };
    maybe_in_parts(out, &run);
}

/// `gi[i]` (+)= `d(g[i], x[i], y[i])`: a one-input rule's pull-back, added when `ACC`.
#[inline(always)]
pub(crate) fn pull1<E: Float, const ACC: bool>(
    x: &[E],
    y: &[E],
    g: &[E],
    gi: &mut [E],
    d: impl Fn(Num<E>, Num<E>, Num<E>) -> Num<E> + Sync,
) {
    let n = gi.len();
    if n >= PARALLEL_MIN_ELEMENTS {
        pull1_long::<E, ACC>(x, y, g, gi, &d);
        return;
    }
    let (x, y, g) = (&x[..n], &y[..n], &g[..n]);
    for i in 0..n {
        store::<E, ACC>(&mut gi[i], d(Num(g[i]), Num(x[i]), Num(y[i])).0);
    }
}

/// [`pull1`] on a slice long enough to share.
#[inline(never)]
fn pull1_long<E: Float, const ACC: bool>(
    x: &[E],
    y: &[E],
    g: &[E],
    gi: &mut [E],
    d: &(impl Fn(Num<E>, Num<E>, Num<E>) -> Num<E> + Sync),
) {
    let run = |at: usize, gi: &mut [E]| {
        let n = gi.len();
        let (x, y, g) = (&x[at..at + n], &y[at..at + n], &g[at..at + n]);
        for i in 0..n {
            store::<E, ACC>(&mut gi[i], d(Num(g[i]), Num(x[i]), Num(y[i])).0);
        }
    };
    maybe_in_parts(gi, &run);
}

/// `gi[i]` (+)= `d(g[i], a[i], b[i], c[i])`: a two-input rule's pull-back through one input,
/// neither input broadcast.
#[inline(always)]
pub(crate) fn pull2<E: Float, const ACC: bool>(
    a: &[E],
    b: &[E],
    c: &[E],
    g: &[E],
    gi: &mut [E],
    d: impl Fn(Num<E>, Num<E>, Num<E>, Num<E>) -> Num<E> + Sync,
) {
    let n = gi.len();
    let (a, b, c, g) = (&a[..n], &b[..n], &c[..n], &g[..n]);
    // A single element skips the vectorised loop's set-up (see `map1`).
    if n == 1 {
        store::<E, ACC>(&mut gi[0], d(Num(g[0]), Num(a[0]), Num(b[0]), Num(c[0])).0);
    } else if n >= PARALLEL_MIN_ELEMENTS {
        pull2_long::<E, ACC>(a, b, c, g, gi, &d);
    } else {
        for i in 0..n {
            store::<E, ACC>(&mut gi[i], d(Num(g[i]), Num(a[i]), Num(b[i]), Num(c[i])).0);
        }
    }
}

/// [`pull2`] on a slice long enough to share.
#[inline(never)]
fn pull2_long<E: Float, const ACC: bool>(
    a: &[E],
    b: &[E],
    c: &[E],
    g: &[E],
    gi: &mut [E],
    d: &(impl Fn(Num<E>, Num<E>, Num<E>, Num<E>) -> Num<E> + Sync),
) {
    let run = |at: usize, gi: &mut [E]| {
        let n = gi.len();
        let (a, b, c, g) = (
            &a[at..at + n],
            &b[at..at + n],
            &c[at..at + n],
            &g[at..at + n],
        );
        for i in 0..n {
            store::<E, ACC>(&mut gi[i], d(Num(g[i]), Num(a[i]), Num(b[i]), Num(c[i])).0);
        }
    };
    maybe_in_parts(gi, &run);
}

/// Defines [`UnaryOp`] from its table. A row is
///
/// ```text
/// /// Doc comment.
/// Variant(param = example, ...) "name" {
///     y(x) = forward rule;
///     dx(g, x, y) = derivative rule;   // or `dx = none;`: no gradient flows
/// }
/// ```
///
/// `x` is the input's element, `y` the output's, `g` the output's gradient; the derivative rule
/// gives the input's gradient. Parameters are `f64`; `example` is the value `ALL` lists the op
/// with.
macro_rules! unary_ops {
    (@has = none;) => { false };
    (@has ($g:ident, $x:ident, $y:ident) = $d:expr;) => { true };
    (@pull $E:ident, $ACC:ident, ($xs:ident, $ys:ident, $gs:ident, $gi:ident) = none;) => {
        // No gradient: a zero share, written only where it must be.
        if !$ACC {
            $gi.fill($E::zero());
        }
    };
    (@pull $E:ident, $ACC:ident, ($xs:ident, $ys:ident, $gs:ident, $gi:ident)
        ($g:ident, $x:ident, $y:ident) = $d:expr;) => {
        $crate::elementwise::pull1::<$E, $ACC>($xs, $ys, $gs, $gi, |$g, $x, $y| $d)
    };
    (@derivative ($gv:ident, $xv:ident, $yv:ident) = none;) => { None };
    (@derivative ($gv:ident, $xv:ident, $yv:ident) ($g:ident, $x:ident, $y:ident) = $d:expr;) => {{
        let ($g, $x, $y) = ($gv, $xv, $yv);
        Some($d)
    }};
    ($(
        $(#[doc = $doc:literal])*
        $V:ident $( ( $($p:ident = $ex:expr),+ ) )? $name:literal {
            y($x:ident) = $f:expr;
            dx $($d:tt)*
        }
    )*) => {
        /// A one-input elementwise op: the output has the input's shape, each element a
        /// function of the input's element at the same place.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum UnaryOp {
            $(
                $(#[doc = $doc])*
                $V $( ( $($crate::elementwise::param_type!($p)),+ ) )?,
            )*
        }

        impl UnaryOp {
            /// How many one-input elementwise ops there are.
            pub const COUNT: usize = [$(stringify!($V)),*].len();

            /// Every one-input elementwise op, in the table's order; an op with parameters
            /// appears once, with example values.
            pub const ALL: [UnaryOp; Self::COUNT] = [$( UnaryOp::$V $( ( $($ex),+ ) )? ),*];

            /// The op's name, as messages and the tape's method show it.
            pub fn name(self) -> &'static str {
                match self {
                    $( UnaryOp::$V { .. } => $name, )*
                }
            }

            /// Whether a gradient flows through the op (none does through `detach`).
            #[inline]
            pub fn has_gradient(self) -> bool {
                match self {
                    $( UnaryOp::$V { .. } => $crate::elementwise::unary_ops!(@has $($d)*), )*
                }
            }

            /// The forward rule on one element.
            #[allow(unused_variables)]
            #[inline]
            pub fn apply<T: $crate::Arith>(self, x: T) -> T {
                match self {
                    $( UnaryOp::$V $( ( $($p),+ ) )? => {
                        let $x = x;
                        $f
                    } )*
                }
            }

            /// The derivative rule on one element: the input's gradient for the output's
            /// gradient `g`, the input `x` and the output `y`; `None` if no gradient flows.
            #[allow(unused_variables)]
            #[inline(always)]
            pub fn derivative<T: $crate::Arith>(self, g: T, x: T, y: T) -> Option<T> {
                match self {
                    $( UnaryOp::$V $( ( $($p),+ ) )? =>
                        $crate::elementwise::unary_ops!(@derivative (g, x, y) $($d)*), )*
                }
            }

            /// `out = f(x)` element by element; `x` has at least `out.len()` elements.
            #[allow(unused_variables)]
            #[inline(always)]
            pub fn forward<E: $crate::Float>(self, x: &[E], out: &mut [E]) {
                match self {
                    $( UnaryOp::$V $( ( $($p),+ ) )? =>
                        $crate::elementwise::map1(x, out, |$x| $f), )*
                }
            }

            /// The pull-back element by element: `gi` (+)= the derivative rule at `(g, x, y)`,
            /// added when `ACC`, written over `gi` otherwise. Every slice has at least
            /// `gi.len()` elements.
            #[allow(unused_variables)]
            #[inline(always)]
            pub fn vjp<E: $crate::Float, const ACC: bool>(
                self,
                x: &[E],
                y: &[E],
                g: &[E],
                gi: &mut [E],
            ) {
                if gi.len() == 1 {
                    // One element (a chain of scalar ops): one dispatch, no loop set-up.
                    use $crate::Num;
                    match self.derivative(Num(g[0]), Num(x[0]), Num(y[0])) {
                        Some(d) => $crate::kernels::unary::store::<E, ACC>(&mut gi[0], d.0),
                        None if !ACC => gi[0] = E::zero(),
                        None => {}
                    }
                    return;
                }
                match self {
                    $( UnaryOp::$V $( ( $($p),+ ) )? => {
                        $crate::elementwise::unary_ops!(@pull E, ACC, (x, y, g, gi) $($d)*)
                    } )*
                }
            }
        }
    };
}
pub(crate) use unary_ops;

/// Defines [`BinaryOp`] from its table. A row is
///
/// ```text
/// /// Doc comment.
/// Variant "name" {
///     c(a, b) = forward rule;
///     da(g, a, b, c) = the left input's gradient;
///     db(g, a, b, c) = the right input's gradient;
/// }
/// ```
///
/// or `grads = none;` in place of `da` and `db`: no gradient flows to either input (a
/// comparison). `a` and `b` are the inputs' elements, `c` the output's, `g` the output's
/// gradient. The rules are stated for one element; broadcasting (and summing a gradient back
/// down to a broadcast input's shape) is the kernel's business, not the rule's.
macro_rules! binary_ops {
    (@has grads = none;) => { false };
    (@has da $($rest:tt)*) => { true };
    (@rule $index:ident, ($gv:ident, $av:ident, $bv:ident, $cv:ident) grads = none;) => {
        $gv.lit(0.0)
    };
    (@rule $index:ident, ($gv:ident, $av:ident, $bv:ident, $cv:ident)
        da($ga:ident, $aa:ident, $ba:ident, $ca:ident) = $da:expr;
        db($gb:ident, $ab:ident, $bb:ident, $cb:ident) = $db:expr;) => {
        if $index == 0 {
            let ($ga, $aa, $ba, $ca) = ($gv, $av, $bv, $cv);
            $da
        } else {
            let ($gb, $ab, $bb, $cb) = ($gv, $av, $bv, $cv);
            $db
        }
    };
    (@pull $E:ident, $ACC:ident, $index:ident, ($as:ident, $bs:ident, $cs:ident, $gs:ident, $gi:ident)
        grads = none;) => {
        // No gradient: a zero share, written only where it must be.
        if !$ACC {
            $gi.fill($E::zero());
        }
    };
    (@pull $E:ident, $ACC:ident, $index:ident, ($as:ident, $bs:ident, $cs:ident, $gs:ident, $gi:ident)
        da($ga:ident, $aa:ident, $ba:ident, $ca:ident) = $da:expr;
        db($gb:ident, $ab:ident, $bb:ident, $cb:ident) = $db:expr;) => {
        if $index == 0 {
            $crate::elementwise::pull2::<$E, $ACC>($as, $bs, $cs, $gs, $gi, |$ga, $aa, $ba, $ca| $da)
        } else {
            $crate::elementwise::pull2::<$E, $ACC>($as, $bs, $cs, $gs, $gi, |$gb, $ab, $bb, $cb| $db)
        }
    };
    (@broadcast $E:ident, $ACC:ident, ($inputs:ident, $output:ident, $gs:ident, $index:ident, $gi:ident)
        grads = none;) => {
        if !$ACC {
            $gi.fill($E::zero());
        }
    };
    (@broadcast $E:ident, $ACC:ident, ($inputs:ident, $output:ident, $gs:ident, $index:ident, $gi:ident)
        da($ga:ident, $aa:ident, $ba:ident, $ca:ident) = $da:expr;
        db($gb:ident, $ab:ident, $bb:ident, $cb:ident) = $db:expr;) => {
        $crate::kernels::binary::vjp::<$E, $ACC>(
            $inputs,
            $output,
            $gs,
            $index,
            $gi,
            |g, a, b, c| {
                use $crate::Num;
                let ($ga, $aa, $ba, $ca) = (Num(g), Num(a), Num(b), Num(c));
                $da.0
            },
            |g, a, b, c| {
                use $crate::Num;
                let ($gb, $ab, $bb, $cb) = (Num(g), Num(a), Num(b), Num(c));
                $db.0
            },
        )
    };
    ($(
        $(#[doc = $doc:literal])*
        $V:ident $name:literal {
            c($a:ident, $b:ident) = $f:expr;
            $($d:tt)*
        }
    )*) => {
        /// A two-input elementwise op, broadcasting as NumPy does.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum BinaryOp {
            $( $(#[doc = $doc])* $V, )*
        }

        impl BinaryOp {
            /// How many two-input elementwise ops there are.
            pub const COUNT: usize = [$(stringify!($V)),*].len();

            /// Every two-input elementwise op, in the table's order.
            pub const ALL: [BinaryOp; Self::COUNT] = [$( BinaryOp::$V ),*];

            /// The op's name, as messages and the tape's method show it.
            pub fn name(self) -> &'static str {
                match self {
                    $( BinaryOp::$V => $name, )*
                }
            }

            /// The forward rule on one pair of elements.
            #[inline]
            pub fn apply<T: $crate::Arith>(self, a: T, b: T) -> T {
                match self {
                    $( BinaryOp::$V => {
                        let ($a, $b) = (a, b);
                        $f
                    } )*
                }
            }

            /// Whether a gradient flows to the inputs (none does through a comparison).
            #[inline]
            pub fn has_gradient(self) -> bool {
                match self {
                    $( BinaryOp::$V => $crate::elementwise::binary_ops!(@has $($d)*), )*
                }
            }

            /// The derivative rule on one element: input `index`'s gradient for the output's
            /// gradient `g`, the inputs `a`, `b` and the output `c` (0 for an op without a
            /// gradient).
            #[allow(unused_variables)]
            #[inline]
            pub fn derivative<T: $crate::Arith>(self, index: usize, g: T, a: T, b: T, c: T) -> T {
                match self {
                    $( BinaryOp::$V =>
                        $crate::elementwise::binary_ops!(@rule index, (g, a, b, c) $($d)*), )*
                }
            }

            /// `out = f(a, b)` element by element, neither input broadcast: each has at least
            /// `out.len()` elements.
            #[inline(always)]
            pub fn forward_pointwise<E: $crate::Float>(self, a: &[E], b: &[E], out: &mut [E]) {
                match self {
                    $( BinaryOp::$V => $crate::elementwise::map2(a, b, out, |$a, $b| $f), )*
                }
            }

            /// The pull-back through input `index`, neither input broadcast: `gi` (+)= the
            /// rule at `(g, a, b, c)`, added when `ACC`. Every slice has at least `gi.len()`
            /// elements.
            #[allow(unused_variables)]
            #[inline(always)]
            pub fn vjp_pointwise<E: $crate::Float, const ACC: bool>(
                self,
                index: usize,
                a: &[E],
                b: &[E],
                c: &[E],
                g: &[E],
                gi: &mut [E],
            ) {
                match self {
                    $( BinaryOp::$V => $crate::elementwise::binary_ops!(
                        @pull E, ACC, index, (a, b, c, g, gi) $($d)*
                    ), )*
                }
            }

            /// `out = f(a, b)` with broadcasting; `shape` is the broadcast of the inputs'
            /// shapes.
            #[inline]
            pub(crate) fn forward_broadcast<E: $crate::Float>(
                self,
                a: $crate::TensorRef<'_, E>,
                b: $crate::TensorRef<'_, E>,
                shape: &$crate::Shape,
                out: &mut [E],
            ) {
                use $crate::Num;
                use $crate::kernels::binary::forward;
                match self {
                    $( BinaryOp::$V => forward(a, b, shape, out, |a, b| {
                        let ($a, $b) = (Num(a), Num(b));
                        $f.0
                    }), )*
                }
            }

            /// The pull-back through input `index` with broadcasting: the rule summed over the
            /// axes the input was broadcast along; added into `gi` when `ACC`.
            #[allow(unused_variables)]
            #[inline]
            pub(crate) fn vjp_broadcast<E: $crate::Float, const ACC: bool>(
                self,
                inputs: &[$crate::TensorRef<'_, E>],
                output: $crate::TensorRef<'_, E>,
                g: &[E],
                index: usize,
                gi: &mut [E],
            ) {
                match self {
                    $( BinaryOp::$V => $crate::elementwise::binary_ops!(
                        @broadcast E, ACC, (inputs, output, g, index, gi) $($d)*
                    ), )*
                }
            }
        }
    };
}
pub(crate) use binary_ops;

#[cfg(test)]
mod tests {
    use super::*;

    /// A few values of each sign, away from every rule's poles.
    const SAMPLES: [f64; 4] = [0.75, -1.25, 2.0, -0.5];

    #[test]
    fn a_shared_loop_is_cut_into_one_part_per_thread_covering_every_element_once() {
        for (n, threads) in [
            (PARALLEL_MIN_ELEMENTS, 2),
            (2 * PARALLEL_MIN_ELEMENTS + 37, 3),
        ] {
            let parts = std::sync::Mutex::new(Vec::new());
            let mut out = vec![0u8; n];
            in_parts(&mut out, 0, threads, &|at, part: &mut [u8]| {
                part.fill(1);
                parts.lock().unwrap().push((at, part.len()));
            });
            let mut parts = parts.into_inner().unwrap();
            parts.sort_unstable();
            assert_eq!(parts.len(), threads, "{n}");
            assert!(parts.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
            assert_eq!(parts[0].0, 0);
            assert_eq!(parts.last().map(|p| p.0 + p.1), Some(n));
            assert!(parts.iter().all(|p| p.1 >= n / threads - 16));
            assert!(out.iter().all(|&x| x == 1));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        assert!(!shared(PARALLEL_MIN_ELEMENTS));
        pool.install(|| {
            assert!(shared(PARALLEL_MIN_ELEMENTS) && !shared(PARALLEL_MIN_ELEMENTS - 1));
        });
    }

    /// Every op's loops, forward and pull-back, on a slice long enough to be shared among
    /// threads: `run` on a 3-thread pool gives the bits of the same calls on one thread.
    #[test]
    fn loops_shared_among_threads_give_the_bits_of_one_loop() {
        // Split once, not at a round number; values within every rule's domain.
        let n = 2 * PARALLEL_MIN_ELEMENTS + 37;
        let values = |seed: u64| -> Vec<f64> {
            (0..n as u64)
                .map(|i| {
                    let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
                    0.1 + (h >> 11) as f64 / (1u64 << 53) as f64 * 1.8
                })
                .collect()
        };
        let (a, b, g) = (values(1), values(2), values(3));
        let run = || {
            let mut outputs = Vec::new();
            for op in UnaryOp::ALL {
                let mut y = vec![0.0; n];
                op.forward(&a, &mut y);
                let mut gi = b.clone();
                op.vjp::<f64, true>(&a, &y, &g, &mut gi);
                let mut fresh = vec![0.0; n];
                op.vjp::<f64, false>(&a, &y, &g, &mut fresh);
                outputs.extend([y, gi, fresh]);
            }
            for op in BinaryOp::ALL {
                let mut c = vec![0.0; n];
                op.forward_pointwise(&a, &b, &mut c);
                for index in 0..2 {
                    let mut gi = g.clone();
                    op.vjp_pointwise::<f64, true>(index, &a, &b, &c, &g, &mut gi);
                    outputs.push(gi);
                }
                outputs.push(c);
            }
            outputs
                .iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let serial = run();
        assert!(
            !shared(n),
            "outside a pool the loops stay on the calling thread"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let parallel = pool.install(|| {
            assert!(shared(n) && !shared(PARALLEL_MIN_ELEMENTS - 1));
            run()
        });
        assert!(serial == parallel, "a shared loop changed some bits");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = UnaryOp::ALL.iter().map(|op| op.name()).collect();
        names.extend(BinaryOp::ALL.iter().map(|op| op.name()));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "{names:?}");
    }

    #[test]
    fn the_gradient_is_handed_over_exactly_where_the_rule_is_the_identity() {
        for op in BinaryOp::ALL {
            for index in 0..2 {
                let identity = SAMPLES.iter().all(|&a| {
                    SAMPLES.iter().all(|&b| {
                        let (a, b, g) = (Num(a), Num(b), Num(0.375));
                        let c = op.apply(a, b);
                        op.derivative(index, g, a, b, c).0.to_bits() == g.0.to_bits()
                    })
                });
                assert_eq!(op.passes_gradient_to(index), identity, "{op:?} {index}");
            }
        }
    }

    #[test]
    fn the_loops_run_the_scalar_rules() {
        let x = SAMPLES.map(f64::abs);
        let g = [0.5, -2.0, 1.5, 3.0];
        for op in UnaryOp::ALL {
            let mut y = [0.0; 4];
            op.forward(&x, &mut y);
            let mut gi = [0.0; 4];
            op.vjp::<f64, false>(&x, &y, &g, &mut gi);
            for i in 0..4 {
                assert_eq!(y[i].to_bits(), op.apply(Num(x[i])).0.to_bits(), "{op:?}");
                let d = op
                    .derivative(Num(g[i]), Num(x[i]), Num(y[i]))
                    .map_or(0.0, |d| d.0);
                assert_eq!(gi[i].to_bits(), d.to_bits(), "{op:?}");
            }
        }
        for op in BinaryOp::ALL {
            let b = SAMPLES;
            let mut c = [0.0; 4];
            op.forward_pointwise(&x, &b, &mut c);
            for index in 0..2 {
                let mut gi = [0.0; 4];
                op.vjp_pointwise::<f64, false>(index, &x, &b, &c, &g, &mut gi);
                for i in 0..4 {
                    let (a, b, c, g) = (Num(x[i]), Num(b[i]), Num(c[i]), Num(g[i]));
                    assert_eq!(c.0.to_bits(), op.apply(a, b).0.to_bits(), "{op:?}");
                    let d = op.derivative(index, g, a, b, c).0;
                    assert_eq!(gi[i].to_bits(), d.to_bits(), "{op:?}");
                }
            }
        }
    }
}
