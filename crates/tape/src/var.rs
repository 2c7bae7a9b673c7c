//! [`Graph`] and [`Var`]: a tape behind a shared reference, and handles that record on it, so
//! that a forward pass reads like the maths: `x.matmul(&w)?.add(&b)?.relu()?`.
//!
//! # Why a `RefCell`, and nothing more
//!
//! A handle that records needs to reach its tape mutably while other handles to the same tape
//! exist (`a.add(&b)` holds two). Rust allows that through one of three things: a raw pointer
//! (`unsafe`, forbidden in this crate), a shared owner with interior mutability (`Rc<RefCell>`
//! or `Arc<Mutex>`, as candle keeps its graph in `Arc`s: a reference count touched per op and a
//! handle that outlives its graph), or a plain borrow of a cell. [`Graph`] is the last: it owns
//! the [`Tape`] in a [`RefCell`], and a [`Var`] is `&Graph` plus a [`NodeId`], two words and
//! `Copy`. Recording an op borrows the tape mutably for the length of that one call (a flag
//! set and cleared, no atomic, no allocation) and records exactly as the plain
//! [`Tape`] methods do, so the hot path keeps its figures. The borrow checker ties every `Var`
//! to its graph's lifetime, so no handle dangles; ids keep their recording epoch, so a `Var`
//! from before a [`rewind`](Graph::rewind) that removed its node is refused, never misread.
//!
//! The one runtime rule the cell adds: while a [`Grads`] (which holds a shared borrow of the
//! tape, so that `grads[&w]` can hand out a slice) or a [`tape_mut`](Graph::tape_mut) guard is
//! alive, recording fails with [`Error::TapeBorrowed`] rather than panicking. Drop the gradients
//! (or use them in one statement) before recording again.
//!
//! # New ops
//!
//! The methods below are generated from one list, a line per op naming the [`Tape`] method it
//! calls; an op added to the tape gets its handle method with one line in that list.

use std::cell::{Ref, RefCell, RefMut};
use std::ops::{Add, Div, Index, Mul, Neg, Sub};

use ndarray::{ArrayD, ArrayViewD};
use wengert_ops::{
    Conv1dArgs, Conv2dArgs, CrossEntropyOptions, CustomOp, Error, Float, Pool2dArgs, Reduction,
    Result, Shape, SliceAxis,
};

use crate::{CustomOpId, IntoValue, Mark, NodeId, Tape};

/// A [`Tape`] that [`Var`] handles record on through a shared reference.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::Graph;
///
/// # fn main() -> wengert_tape::Result<()> {
/// let g = Graph::<f64>::new();
/// let x = g.input(array![[0.0, 1.0], [1.0, 0.0]])?;
/// let y = g.input(array![[1.0], [0.0]])?;
/// let w = g.parameter(array![[0.3], [-0.2]])?;
/// let b = g.parameter(array![0.1])?;
/// let loss = x.matmul(&w)?.add(&b)?.tanh()?.mse(&y)?;
/// let grads = loss.backward()?;
/// assert_eq!(grads[&w].len(), 2);
/// assert_eq!(grads.get(&b).unwrap().shape(), &[1]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Graph<E: Float> {
    tape: RefCell<Tape<E>>,
}

/// A node on a [`Graph`]: the graph and the node's id. `Copy`, and as cheap to pass as a
/// reference. Its methods record ops, one per built-in op; arithmetic operators record `+`,
/// `-`, `*`, `/` and `-x` and, as in candle, give a `Result` (`(&a + &b)?`), since an operand
/// may not fit.
#[derive(Clone, Copy)]
pub struct Var<'g, E: Float> {
    graph: &'g Graph<E>,
    id: NodeId,
}

impl<E: Float> std::fmt::Debug for Var<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({})", self.id)
    }
}

impl<E: Float> From<Tape<E>> for Graph<E> {
    fn from(tape: Tape<E>) -> Self {
        Graph {
            tape: RefCell::new(tape),
        }
    }
}

impl<E: Float> Graph<E> {
    /// A graph on an empty tape.
    pub fn new() -> Self {
        Graph::from(Tape::new())
    }

    /// The tape, given back.
    pub fn into_tape(self) -> Tape<E> {
        self.tape.into_inner()
    }

    /// The tape, for reading (values, shapes, the plain [`Tape`] API), while no handle records.
    pub fn tape(&self) -> Result<Ref<'_, Tape<E>>> {
        self.tape.try_borrow().map_err(|_| Error::TapeBorrowed)
    }

    /// The tape, for changing through the plain [`Tape`] API (an optimiser's step, a custom
    /// op's registration); recording through handles fails while the guard lives.
    pub fn tape_mut(&self) -> Result<RefMut<'_, Tape<E>>> {
        self.tape.try_borrow_mut().map_err(|_| Error::TapeBorrowed)
    }

    /// The tape, mutably, with no runtime check: possible when no handle borrows the graph.
    pub fn get_mut(&mut self) -> &mut Tape<E> {
        self.tape.get_mut()
    }

    /// The handle of a node already on the tape (checked).
    pub fn var(&self, id: NodeId) -> Result<Var<'_, E>> {
        self.tape()?.check_ids(&[id])?;
        Ok(Var { graph: self, id })
    }

    /// Runs `f` on the tape mutably and wraps the node it returns.
    #[inline(always)]
    fn with<'g>(&'g self, f: impl FnOnce(&mut Tape<E>) -> Result<NodeId>) -> Result<Var<'g, E>> {
        let mut tape = self
            .tape
            .try_borrow_mut()
            .map_err(|_| Error::TapeBorrowed)?;
        let id = f(&mut tape)?;
        Ok(Var { graph: self, id })
    }

    /// Records data: see [`Tape::input`].
    pub fn input(&self, value: impl IntoValue<E>) -> Result<Var<'_, E>> {
        self.with(|t| t.input(value))
    }

    /// Records a parameter, whose gradient [`Var::backward`] returns: see [`Tape::parameter`].
    pub fn parameter(&self, value: impl IntoValue<E>) -> Result<Var<'_, E>> {
        self.with(|t| t.parameter(value))
    }

    /// Records class labels for [`Var::cross_entropy`]: see [`Tape::labels`].
    pub fn labels(&self, labels: &[usize]) -> Result<Var<'_, E>> {
        self.with(|t| t.labels(labels))
    }

    /// Registers a custom op for [`custom`](Graph::custom): see [`Tape::register_custom`].
    pub fn register_custom(&self, op: Box<dyn CustomOp<E>>) -> Result<CustomOpId> {
        Ok(self.tape_mut()?.register_custom(op))
    }

    /// Records a registered custom op applied to `inputs`: see [`Tape::custom`].
    pub fn custom<'g>(&'g self, op: CustomOpId, inputs: &[Var<'g, E>]) -> Result<Var<'g, E>> {
        let ids: Vec<NodeId> = inputs.iter().map(|v| v.id).collect();
        self.with(|t| t.custom(op, &ids))
    }

    /// A point to [`rewind`](Graph::rewind) to: see [`Tape::mark`].
    pub fn mark(&self) -> Result<Mark> {
        Ok(self.tape()?.mark())
    }

    /// Forgets everything recorded after `mark`: see [`Tape::rewind`]. Handles to nodes before
    /// the mark (the parameters) stay valid; later ones are refused from then on.
    pub fn rewind(&self, mark: Mark) -> Result<()> {
        self.tape_mut()?.rewind(mark)
    }

    /// Forgets every node: see [`Tape::clear`].
    pub fn clear(&self) -> Result<()> {
        self.tape_mut()?.clear();
        Ok(())
    }

    /// Runs `f` with gradient recording off: see [`Tape::no_grad`].
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let before = std::mem::replace(&mut self.tape_mut()?.grad_enabled, false);
        let result = f();
        // `f` has returned, so every borrow it took is over.
        self.tape_mut()?.grad_enabled = before;
        Ok(result)
    }
}

impl<'g, E: Float> Var<'g, E> {
    /// The node's id on its tape.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The graph the node is on.
    pub fn graph(&self) -> &'g Graph<E> {
        self.graph
    }

    /// Records `f(tape, id)` and wraps its node: the one path every handle method takes.
    #[inline(always)]
    fn unary(&self, f: impl FnOnce(&mut Tape<E>, NodeId) -> Result<NodeId>) -> Result<Self> {
        let id = self.id;
        self.graph.with(|t| f(t, id))
    }

    /// Records `f(tape, id, other's id)`.
    #[inline(always)]
    fn binary(
        &self,
        other: &Var<'g, E>,
        f: impl FnOnce(&mut Tape<E>, NodeId, NodeId) -> Result<NodeId>,
    ) -> Result<Self> {
        let (a, b) = (self.id, other.id);
        self.graph.with(|t| f(t, a, b))
    }

    /// The node's value, copied out.
    pub fn value(&self) -> Result<ArrayD<E>> {
        self.graph.tape()?.value_owned(self.id)
    }

    /// The single element of a one-element node (a loss).
    pub fn item(&self) -> Result<E> {
        self.graph.tape()?.item(self.id)
    }

    /// The node's shape.
    pub fn shape(&self) -> Result<Shape> {
        self.graph.tape()?.shape(self.id)
    }

    /// Gives a leaf a new value of its shape: see [`Tape::set_value`].
    pub fn set_value(&self, value: ArrayViewD<'_, E>) -> Result<()> {
        self.graph.tape_mut()?.set_value(self.id, value)
    }

    /// Asks for this node's gradient; on data, makes the gradient flow to it: see
    /// [`Tape::retain_grad`].
    pub fn retain_grad(&self) -> Result<Self> {
        self.graph.tape_mut()?.retain_grad(self.id)?;
        Ok(*self)
    }

    /// The gradient of this scalar with respect to every parameter: see [`Tape::backward`].
    pub fn backward(&self) -> Result<Grads<'g, E>> {
        self.graph.tape_mut()?.backward(self.id)?;
        Ok(Grads {
            tape: self.graph.tape()?,
        })
    }

    /// A vector-Jacobian product seeded with `seed`: see [`Tape::backward_with_seed`].
    pub fn backward_with_seed(&self, seed: ArrayViewD<'_, E>) -> Result<Grads<'g, E>> {
        self.graph.tape_mut()?.backward_with_seed(self.id, seed)?;
        Ok(Grads {
            tape: self.graph.tape()?,
        })
    }

    /// Records this node's transpose (the last two axes exchanged): see [`Tape::transpose`].
    pub fn t(&self) -> Result<Self> {
        self.transpose()
    }
}

/// Generates the handle methods, one line per op: `name(extra args) "doc";` for an op on one
/// node, `name(&other) "doc";` for an op on two, on three (`ternary`), on two and an optional
/// third (`optional`), on one with an optional scale and shift (`affine`), on one with those
/// and two running estimates (`running`), or on a list of handles
/// (`list`, a method of [`Graph`]). Each calls the [`Tape`] method of that name.
macro_rules! var_methods {
    (
        unary { $( $name:ident ( $($arg:ident : $ty:ty),* ) $doc:literal; )* }
        binary { $( $bname:ident $bdoc:literal; )* }
        binary_with { $( $wname:ident ( $($warg:ident : $wty:ty),* ) $wdoc:literal; )* }
        pair { $( $pname:ident ( $($parg:ident : $pty:ty),* ) $pdoc:literal; )* }
        ternary { $( $tname:ident ( $($targ:ident : $tty:ty),* ) $tdoc:literal; )* }
        optional { $( $oname:ident ( $($oarg:ident : $oty:ty),* ) $odoc:literal; )* }
        affine { $( $aname:ident ( $($aarg:ident : $aty:ty),* ) $adoc:literal; )* }
        running { $( $rname:ident ( $($rarg:ident : $rty:ty),* ) $rdoc:literal; )* }
        list { $( $lname:ident ( $($larg:ident : $lty:ty),* ) $ldoc:literal; )* }
    ) => {
        impl<'g, E: Float> Var<'g, E> {
            $(
                #[doc = $doc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($name), "`].")]
                #[inline(always)]
                pub fn $name(&self $(, $arg: $ty)*) -> Result<Self> {
                    self.unary(|t, x| t.$name(x $(, $arg)*))
                }
            )*
            $(
                #[doc = $bdoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($bname), "`].")]
                #[inline(always)]
                pub fn $bname(&self, other: &Var<'g, E>) -> Result<Self> {
                    self.binary(other, |t, a, b| t.$bname(a, b))
                }
            )*
            $(
                #[doc = $wdoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($wname), "`].")]
                #[inline(always)]
                pub fn $wname(&self, other: &Var<'g, E> $(, $warg: $wty)*) -> Result<Self> {
                    self.binary(other, |t, a, b| t.$wname(a, b $(, $warg)*))
                }
            )*
            $(
                #[doc = $pdoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($pname), "`].")]
                #[inline(always)]
                pub fn $pname(&self $(, $parg: $pty)*) -> Result<(Self, Self)> {
                    let (a, b) = self.graph.tape_mut()?.$pname(self.id $(, $parg)*)?;
                    Ok((Var { graph: self.graph, id: a }, Var { graph: self.graph, id: b }))
                }
            )*
            $(
                #[doc = $tdoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($tname), "`].")]
                #[inline(always)]
                pub fn $tname(
                    &self,
                    second: &Var<'g, E>,
                    third: &Var<'g, E>
                    $(, $targ: $tty)*
                ) -> Result<Self> {
                    let (a, b, c) = (self.id, second.id, third.id);
                    self.graph.with(|t| t.$tname(a, b, c $(, $targ)*))
                }
            )*
            $(
                #[doc = $odoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($oname), "`].")]
                #[inline(always)]
                pub fn $oname(
                    &self,
                    second: &Var<'g, E>,
                    third: Option<&Var<'g, E>>
                    $(, $oarg: $oty)*
                ) -> Result<Self> {
                    let (a, b, c) = (self.id, second.id, third.map(|v| v.id));
                    self.graph.with(|t| t.$oname(a, b, c $(, $oarg)*))
                }
            )*
            $(
                #[doc = $adoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($aname), "`].")]
                #[inline(always)]
                pub fn $aname(
                    &self,
                    gamma: Option<&Var<'g, E>>,
                    beta: Option<&Var<'g, E>>
                    $(, $aarg: $aty)*
                ) -> Result<Self> {
                    let (x, g, b) = (self.id, gamma.map(|v| v.id), beta.map(|v| v.id));
                    self.graph.with(|t| t.$aname(x, g, b $(, $aarg)*))
                }
            )*
            $(
                #[doc = $rdoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($rname), "`].")]
                #[inline(always)]
                pub fn $rname(
                    &self,
                    gamma: Option<&Var<'g, E>>,
                    beta: Option<&Var<'g, E>>,
                    running_mean: &Var<'g, E>,
                    running_var: &Var<'g, E>
                    $(, $rarg: $rty)*
                ) -> Result<Self> {
                    let (x, g, b) = (self.id, gamma.map(|v| v.id), beta.map(|v| v.id));
                    let (m, v) = (running_mean.id, running_var.id);
                    self.graph.with(|t| t.$rname(x, g, b, m, v $(, $rarg)*))
                }
            )*
        }
        impl<E: Float> Graph<E> {
            $(
                #[doc = $ldoc]
                #[doc = concat!("\n\nRecords [`Tape::", stringify!($lname), "`].")]
                #[inline(always)]
                pub fn $lname<'g>(
                    &'g self,
                    inputs: &[Var<'g, E>]
                    $(, $larg: $lty)*
                ) -> Result<Var<'g, E>> {
                    self.with(|t| t.$lname(inputs.iter().map(|v| v.id) $(, $larg)*))
                }
            )*
        }
    };
}

var_methods! {
    unary {
        add_scalar(c: E) "`x + c` for a constant `c`.";
        mul_scalar(c: E) "`x · c` for a constant `c`.";
        neg() "`-x`.";
        relu() "`max(x, 0)`.";
        tanh() "`tanh x`.";
        sigmoid() "The logistic function.";
        exp() "`eˣ`.";
        log() "`ln x`.";
        sum() "The sum of all elements, a scalar.";
        mean() "The mean of all elements, a scalar.";
        sum_axis(axis: usize) "The sum along `axis`, which is removed.";
        sum_axis_keepdim(axis: usize) "The sum along `axis`, kept with length 1.";
        mean_axis(axis: usize) "The mean along `axis`, which is removed.";
        mean_axis_keepdim(axis: usize) "The mean along `axis`, kept with length 1.";
        reshape(dims: &[usize]) "The same elements in the shape `dims`.";
        transpose() "The transpose (the last two axes exchanged).";
        transpose_axes(axis0: usize, axis1: usize) "Axes `axis0` and `axis1` exchanged.";
        softmax() "Softmax along the last axis.";
        log_softmax() "Log-softmax along the last axis.";
        softmax_axis(axis: usize) "Softmax along `axis`.";
        log_softmax_axis(axis: usize) "Log-softmax along `axis`.";
        detach() "The value, through which no gradient flows.";
        sqrt() "`√x`.";
        rsqrt() "`1 / √x`.";
        abs() "`|x|`, with gradient 0 at 0.";
        square() "`x²`.";
        powf(p: E) "`xᵖ` for a constant exponent `p`.";
        sin() "`sin x`.";
        cos() "`cos x`.";
        log1p() "`ln(1 + x)`, exact for small `x`.";
        expm1() "`eˣ - 1`, exact for small `x`.";
        softplus() "`ln(1 + eˣ)`, with PyTorch's threshold.";
        softplus_with(beta: E, threshold: E) "`ln(1 + e^(βx)) / β`, linear above `threshold`.";
        leaky_relu(slope: E) "`x` above 0, `slope · x` below.";
        elu(alpha: E) "`x` above 0, `α(eˣ - 1)` below.";
        silu() "`x · σ(x)`.";
        clamp(min: Option<E>, max: Option<E>) "`x` limited to `[min, max]` (either bound optional).";
        sign() "The sign of `x` (no gradient).";
        erf() "The error function.";
        gelu() "`x · Φ(x)`, `Φ` the standard normal CDF.";
        gelu_tanh() "gelu's tanh approximation.";
        amax(axis: Option<usize>, keep_dim: bool) "The largest element (ties share the gradient).";
        amin(axis: Option<usize>, keep_dim: bool) "The smallest element (ties share the gradient).";
        argmax(axis: Option<usize>, keep_dim: bool) "The first largest element's position.";
        argmin(axis: Option<usize>, keep_dim: bool) "The first smallest element's position.";
        logsumexp(axis: Option<usize>, keep_dim: bool) "`ln Σ eˣ`, without overflow.";
        prod(axis: Option<usize>, keep_dim: bool) "The product of the elements.";
        var(axis: Option<usize>, correction: f64, keep_dim: bool) "The variance.";
        std(axis: Option<usize>, correction: f64, keep_dim: bool) "The standard deviation.";
        norm(axis: Option<usize>, keep_dim: bool) "The Euclidean norm.";
        squeeze(axis: usize) "Without `axis`, if its length is 1.";
        slice(ranges: &[SliceAxis]) "`x[start:end:step]` on each leading axis.";
        pad(pads: &[(usize, usize)], value: E) "Surrounded by `value`, `(before, after)` per axis.";
        dropout(p: f64, mask_seed: u64) "Inverted dropout with a mask drawn from `mask_seed`.";
        unsqueeze(axis: usize) "With a new axis of length 1 at `axis`.";
        flatten(start: usize, end: usize) "Axes `start..=end` merged into one.";
        broadcast_to(dims: &[usize]) "Repeated to the shape `dims`, as NumPy broadcasts.";
        narrow(axis: usize, start: i64, length: usize) "`length` elements along `axis` from `start`.";
        max_pool2d(args: Pool2dArgs) "2-D max pooling (`F.max_pool2d`).";
        avg_pool2d(args: Pool2dArgs) "2-D average pooling (`F.avg_pool2d`).";
        adaptive_avg_pool2d(size: [usize; 2]) "Adaptive 2-D average pooling to `size`.";
    }
    binary {
        matmul "Matrix product of `[m, k]` and `[k, n]`.";
        add "`a + b`, broadcasting.";
        sub "`a - b`, broadcasting.";
        mul "`a · b` elementwise, broadcasting.";
        div "`a / b` elementwise, broadcasting.";
        maximum "The larger of `a` and `b` elementwise (a tie shares the gradient).";
        minimum "The smaller of `a` and `b` elementwise (a tie shares the gradient).";
        pow "`aᵇ` elementwise, broadcasting.";
        eq "1 where `a == b`, else 0 (a mask: no gradient).";
        lt "1 where `a < b`, else 0 (a mask: no gradient).";
        le "1 where `a <= b`, else 0 (a mask: no gradient).";
        gt "1 where `a > b`, else 0 (a mask: no gradient).";
        ge "1 where `a >= b`, else 0 (a mask: no gradient).";
        mse "Mean squared error against `other` (same shape), a scalar.";
        cross_entropy "Softmax cross-entropy of these logits against labels, a scalar.";
    }
    binary_with {
        l1_loss(reduction: Reduction) "`|x - t|`, reduced.";
        smooth_l1_loss(beta: f64, reduction: Reduction) "Smooth L1 loss, reduced.";
        huber_loss(delta: f64, reduction: Reduction) "Huber loss, reduced.";
        binary_cross_entropy_with_logits(reduction: Reduction) "Binary cross-entropy of logits.";
        nll_loss(ignore_index: Option<i64>, reduction: Reduction) "Negative log-likelihood.";
        cross_entropy_with(options: CrossEntropyOptions) "Cross-entropy with PyTorch's options.";
        index_select(axis: usize) "The slices along `axis` at the positions `other` holds.";
        gather(axis: usize) "The elements along `axis` at the positions `other` holds.";
        index_add(axis: usize, len: usize) "Zeros of length `len` along `axis` with these slices added at `other`'s positions.";
        scatter_add(axis: usize, len: usize) "Zeros of length `len` along `axis` with these elements added at `other`'s positions.";
        embedding(padding_idx: Option<usize>) "The rows of this table `[num, dim]` that `other`'s indices name.";
        max_pool2d_grad(args: Pool2dArgs) "`max_pool2d`'s gradient of this input from the output gradient `other`.";
        avg_pool2d_grad(args: Pool2dArgs) "`avg_pool2d`'s input gradient from this output gradient, in `other`'s shape.";
        adaptive_avg_pool2d_grad(size: [usize; 2]) "`adaptive_avg_pool2d`'s input gradient from this output gradient, in `other`'s shape.";
        max_pool2d_select(args: Pool2dArgs) "`other` (of this input's shape) at the element each `max_pool2d` window of this input takes.";
    }
    pair {
        max_dim(axis: usize, keep_dim: bool) "The largest element along `axis` and its position.";
        min_dim(axis: usize, keep_dim: bool) "The smallest element along `axis` and its position.";
    }
    ternary {
        where_cond() "The second handle where this one (a mask) is not 0, else the third.";
        linear() "This input `[m, k]` times the weight handle `[k, n]` plus the bias handle `[n]`: a dense layer in one node (see `Tape::linear`).";
        binary_cross_entropy_with_logits_weighted(reduction: Reduction)
            "Binary cross-entropy of logits against targets, with a `pos_weight` handle.";
        nll_loss_weighted(ignore_index: Option<i64>, reduction: Reduction)
            "Negative log-likelihood against targets, with a class-weight handle.";
        cross_entropy_weighted(options: CrossEntropyOptions)
            "Cross-entropy against targets, with a class-weight handle.";
        conv2d_input_grad(args: Conv2dArgs)
            "`conv2d`'s input gradient from this output gradient and the weight, in the third's shape.";
        conv2d_weight_grad(args: Conv2dArgs)
            "`conv2d`'s weight gradient from this input and the output gradient, in the third's shape.";
    }
    optional {
        conv2d(args: Conv2dArgs) "2-D convolution with a weight handle and an optional bias.";
        conv1d(args: Conv1dArgs) "1-D convolution with a weight handle and an optional bias.";
    }
    affine {
        layer_norm(axes: usize, eps: f64) "Layer norm over the trailing `axes` axes, with an optional scale and shift.";
        batch_norm(eps: f64) "Batch norm over axis 1 by the batch's statistics (training), with an optional scale and shift.";
    }
    running {
        batch_norm_eval(eps: f64) "Batch norm over axis 1 by the running estimates' handles (evaluation; no gradient to them), with an optional scale and shift.";
    }
    list {
        concat(axis: usize) "The handles joined along `axis` (`torch.cat`).";
        stack(axis: usize) "The handles stacked along a new axis at `axis` (`torch.stack`).";
    }
}

/// The operators, for every mix of handles and references to handles.
macro_rules! var_operators {
    ($($Trait:ident $method:ident;)*) => {$(
        impl<'g, E: Float> $Trait<&Var<'g, E>> for &Var<'g, E> {
            type Output = Result<Var<'g, E>>;
            #[inline(always)]
            fn $method(self, rhs: &Var<'g, E>) -> Self::Output {
                Var::$method(self, rhs)
            }
        }
        impl<'g, E: Float> $Trait<Var<'g, E>> for Var<'g, E> {
            type Output = Result<Var<'g, E>>;
            #[inline(always)]
            fn $method(self, rhs: Var<'g, E>) -> Self::Output {
                Var::$method(&self, &rhs)
            }
        }
        impl<'g, E: Float> $Trait<&Var<'g, E>> for Var<'g, E> {
            type Output = Result<Var<'g, E>>;
            #[inline(always)]
            fn $method(self, rhs: &Var<'g, E>) -> Self::Output {
                Var::$method(&self, rhs)
            }
        }
        impl<'g, E: Float> $Trait<Var<'g, E>> for &Var<'g, E> {
            type Output = Result<Var<'g, E>>;
            #[inline(always)]
            fn $method(self, rhs: Var<'g, E>) -> Self::Output {
                Var::$method(self, &rhs)
            }
        }
    )*};
}

var_operators! {
    Add add;
    Sub sub;
    Mul mul;
    Div div;
}

impl<'g, E: Float> Neg for Var<'g, E> {
    type Output = Result<Var<'g, E>>;
    fn neg(self) -> Self::Output {
        Var::neg(&self)
    }
}

impl<'g, E: Float> Neg for &Var<'g, E> {
    type Output = Result<Var<'g, E>>;
    fn neg(self) -> Self::Output {
        Var::neg(self)
    }
}

/// `x + c`, `x - c`, `x * c`, `x / c` for a constant of the element type.
macro_rules! scalar_operators {
    ($($E:ty),*) => {$(
        impl<'g> Add<$E> for Var<'g, $E> {
            type Output = Result<Var<'g, $E>>;
            fn add(self, c: $E) -> Self::Output { self.add_scalar(c) }
        }
        impl<'g> Sub<$E> for Var<'g, $E> {
            type Output = Result<Var<'g, $E>>;
            fn sub(self, c: $E) -> Self::Output { self.add_scalar(-c) }
        }
        impl<'g> Mul<$E> for Var<'g, $E> {
            type Output = Result<Var<'g, $E>>;
            fn mul(self, c: $E) -> Self::Output { self.mul_scalar(c) }
        }
        impl<'g> Div<$E> for Var<'g, $E> {
            type Output = Result<Var<'g, $E>>;
            fn div(self, c: $E) -> Self::Output { self.mul_scalar(1.0 / c) }
        }
    )*};
}

scalar_operators!(f32, f64);

/// The gradients of one sweep from [`Var::backward`], read by handle: `grads[&w]` is `w`'s
/// gradient's elements, row-major (it panics if there is none, like a map's index; every
/// parameter has one); [`get`](Grads::get) is the fallible read, as an array view.
///
/// It holds a shared borrow of the tape: drop it before recording again.
pub struct Grads<'g, E: Float> {
    tape: Ref<'g, Tape<E>>,
}

impl<E: Float> std::fmt::Debug for Grads<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grads").finish_non_exhaustive()
    }
}

impl<'g, E: Float> Grads<'g, E> {
    /// The gradient with respect to `v`, if the sweep kept one.
    pub fn get(&self, v: &Var<'g, E>) -> Option<ArrayViewD<'_, E>> {
        self.tape.grad(v.id)
    }

    /// The gradient's elements, if the sweep kept one.
    pub fn data(&self, v: &Var<'g, E>) -> Option<&[E]> {
        self.tape.live_grad(v.id)
    }

    /// The tape the gradients live on (for [`Tape::grad`] by id, or its parameters).
    pub fn tape(&self) -> &Tape<E> {
        &self.tape
    }
}

impl<'g, E: Float> Index<&Var<'g, E>> for Grads<'g, E> {
    type Output = [E];

    fn index(&self, v: &Var<'g, E>) -> &[E] {
        match self.tape.live_grad(v.id) {
            Some(g) => g,
            None => panic!("no gradient for {} in this sweep", v.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn handles_record_what_the_plain_methods_record() {
        let g = Graph::<f64>::new();
        let x = g.input(array![[1.0, 2.0]]).unwrap();
        let w = g.parameter(array![[0.5], [-1.0]]).unwrap();
        let b = g.parameter(array![0.25]).unwrap();
        let loss = ((x.matmul(&w).unwrap() + b).unwrap() * 2.0)
            .unwrap()
            .tanh()
            .unwrap()
            .sum()
            .unwrap();
        let via_handles = loss.backward().unwrap()[&w].to_vec();

        let mut t = Tape::<f64>::new();
        let (x, w) = (
            t.input(array![[1.0, 2.0]]).unwrap(),
            t.parameter(array![[0.5], [-1.0]]).unwrap(),
        );
        let b = t.parameter(array![0.25]).unwrap();
        let z = t.matmul(x, w).unwrap();
        let z = t.add(z, b).unwrap();
        let z = t.mul_scalar(z, 2.0).unwrap();
        let z = t.tanh(z).unwrap();
        let l = t.sum(z).unwrap();
        let grads = t.backward(l).unwrap();
        assert_eq!(via_handles, grads.data(w).unwrap());
    }

    #[test]
    fn every_named_tape_method_has_its_handle_method() {
        // The handle methods come from a one-line-per-op list, not from the tape's methods
        // themselves: this keeps the two in step when an op is added to `ops.rs`.
        let listed = include_str!("var.rs");
        let missing: Vec<&str> = include_str!("ops.rs")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub fn "))
            .filter_map(|rest| rest.split('(').next())
            .filter(|name| {
                let unary = format!("        {name}(");
                let binary = format!("        {name} \"");
                !listed.contains(&unary) && !listed.contains(&binary)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "add to var_methods! in var.rs: {missing:?}"
        );
    }

    #[test]
    fn recording_while_gradients_are_held_is_an_error_not_a_panic() {
        let g = Graph::<f32>::new();
        let w = g.parameter(array![1.0f32, 2.0]).unwrap();
        let loss = (w * w).unwrap().sum().unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(&grads[&w], &[2.0, 4.0]);
        assert_eq!(w.relu().unwrap_err(), Error::TapeBorrowed);
        drop(grads);
        assert!(w.relu().is_ok());
    }

    #[test]
    fn a_handle_from_before_a_rewind_is_refused() {
        let g = Graph::<f64>::new();
        let w = g.parameter(array![1.0]).unwrap();
        let start = g.mark().unwrap();
        let y = w.exp().unwrap();
        g.rewind(start).unwrap();
        assert!(matches!(y.relu(), Err(Error::UnknownNode { .. })));
        let z = w.tanh().unwrap(); // now at `y`'s position
        assert!(matches!(y.relu(), Err(Error::StaleNode { .. })));
        assert!(z.relu().is_ok());
        assert!(
            w.relu().is_ok(),
            "the parameter before the mark stays valid"
        );
    }

    #[test]
    #[allow(
        clippy::op_ref,
        reason = "the operators on references are the spelling candle users write: it must compile"
    )]
    fn handles_of_two_graphs_do_not_mix() {
        let (g1, g2) = (Graph::<f64>::new(), Graph::<f64>::new());
        let a = g1.input(array![1.0]).unwrap();
        let b = g2.input(array![1.0]).unwrap();
        assert!(matches!(&a + &b, Err(Error::StaleNode { .. })));
    }

    #[test]
    fn no_grad_on_a_graph_records_without_gradients() {
        let g = Graph::<f64>::new();
        let w = g.parameter(array![1.0, 2.0]).unwrap();
        let loss = g.no_grad(|| w.sum()).unwrap().unwrap();
        assert!(matches!(loss.backward(), Err(Error::NoGradient { .. })));
        assert!(w.sum().unwrap().backward().is_ok());
    }
}
