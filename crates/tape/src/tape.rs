//! [`Tape`]: the arena of recorded nodes and the recording machinery every op goes through.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use wengert_ops::{
    BinaryOp, CustomOp, Error, Float, Op, Operands, Result, Shape, Shapes, TensorRef, UnaryOp,
};

use crate::fold::FoldPlan;
use crate::id::Epoch;
use crate::node::{CustomOpId, Node, NodeKind, SHARED_GRAD_BIT, grad_bit};
use crate::{IntoValue, NodeId};

/// A Wengert list: the record of a computation, in the order it ran.
///
/// Each node holds what produced it (an input, a parameter, or an op and the ids of its
/// inputs), its shape and its value. Nodes are only ever appended, and an op's inputs must
/// already be on the tape, so every input has a smaller id than the node that uses it; the
/// reverse sweep in [`backward`](Tape::backward) is therefore one loop from the loss down.
///
/// [`clear`](Tape::clear) forgets the nodes but keeps every buffer, so a training loop that
/// records the same computation each step stops allocating after the first.
///
/// ```
/// use ndarray::array;
/// use wengert_tape::Tape;
///
/// # fn main() -> wengert_tape::Result<()> {
/// let mut tape = Tape::<f64>::new();
/// let x = tape.input(array![[1.0, 2.0]])?;
/// let w = tape.parameter(array![[0.5], [-1.0]])?;
/// let y = tape.matmul(x, w)?; // [[-1.5]]
/// let loss = tape.sum(y)?;
/// let grads = tape.backward(loss)?;
/// assert_eq!(grads.get(w).unwrap(), array![[1.0], [2.0]].into_dyn());
/// # Ok(())
/// # }
/// ```
pub struct Tape<E: Float> {
    pub(crate) nodes: Vec<Node>,
    /// The input ids of every node that lists its inputs (a custom op, or a built-in op of
    /// more than two inputs), back to back; each such node holds where its range starts.
    /// Built-in ops of one or two inputs hold them inline. Cleared, not freed, by `clear`.
    pub(crate) listed_inputs: Vec<NodeId>,
    /// One value buffer per node; slots past `nodes.len()` are spares kept from before a clear.
    pub(crate) values: Vec<Vec<E>>,
    /// One gradient buffer per slot, kept across sweeps and clears for reuse.
    pub(crate) grads: Vec<Vec<E>>,
    /// Per slot, the buffer of an op that [needs one](Op::needs_scratch) beside its value (a
    /// convolution's patch matrices), kept across clears and rewinds so that a warm step
    /// allocates nothing. Grown only to the last slot such an op took: the other ops never
    /// touch it.
    pub(crate) scratch: Vec<Vec<E>>,
    /// Per slot, the sweep whose gradient the buffer holds; it is live only while this equals
    /// `sweep`. A stamp rather than an `Option` lets a sweep start without touching every slot.
    pub(crate) grad_stamps: Vec<u32>,
    /// The current sweep's stamp; 0 stands for "no sweep" and is never a live stamp.
    pub(crate) sweep: u32,
    /// The parameters' ids, in recording order.
    pub(crate) params: Vec<NodeId>,
    /// The parameters' shapes, beside their ids: what an optimiser's step begins with, kept
    /// here so that no step builds the list.
    pub(crate) param_shapes: Vec<Shape>,
    pub(crate) custom_ops: Vec<Box<dyn CustomOp<E>>>,
    /// False inside [`no_grad`](Tape::no_grad): new op nodes then need no gradient.
    pub(crate) grad_enabled: bool,
    /// The epoch new nodes are recorded in: fresh at every clear and rewind, so that an id
    /// issued before one cannot name the node that later takes its position.
    pub(crate) epoch: Epoch,
    /// The plan of [`backward_folding`](Tape::backward_folding)'s sweep, kept for reuse.
    pub(crate) folds: FoldPlan<E>,
}

impl<E: Float> Default for Tape<E> {
    fn default() -> Self {
        Tape::new()
    }
}

impl<E: Float> std::fmt::Debug for Tape<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape")
            .field("nodes", &self.nodes.len())
            .field("element", &E::NAME)
            .field("custom_ops", &self.custom_ops.len())
            .finish()
    }
}

impl<E: Float> Tape<E> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            nodes: Vec::new(),
            listed_inputs: Vec::new(),
            values: Vec::new(),
            grads: Vec::new(),
            scratch: Vec::new(),
            grad_stamps: Vec::new(),
            sweep: 0,
            params: Vec::new(),
            param_shapes: Vec::new(),
            custom_ops: Vec::new(),
            grad_enabled: true,
            epoch: Epoch::fresh(),
            folds: FoldPlan::default(),
        }
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        let mut tape = Tape::new();
        tape.nodes.reserve(nodes);
        tape.values.reserve(nodes);
        tape
    }

    /// The number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Forgets every node, keeping all buffers (and registered custom ops) for the next
    /// recording. Ids issued before are no longer valid.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.listed_inputs.clear();
        self.params.clear();
        self.param_shapes.clear();
        self.invalidate_grads();
        self.grad_enabled = true;
        self.epoch = Epoch::fresh();
    }

    /// A point to [`rewind`](Tape::rewind) to: everything recorded so far stays, everything
    /// after goes.
    ///
    /// Record the parameters once, take a mark, and rewind to it every step: the parameters then
    /// live on the tape across steps, an optimiser updates them in place with
    /// [`update_parameters`](Tape::update_parameters), and nothing is copied in per step.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(array![1.0, -2.0])?;
    /// let start = tape.mark();
    /// for _ in 0..100 {
    ///     tape.rewind(start)?;
    ///     let sq = tape.mul(w, w)?;
    ///     let loss = tape.sum(sq)?; // loss = Σ w², minimised at 0
    ///     tape.backward(loss)?;
    ///     tape.update_parameters(|_, _, value, grad| {
    ///         for (v, g) in value.iter_mut().zip(grad) {
    ///             *v -= 0.1 * g;
    ///         }
    ///         Ok::<(), wengert_tape::Error>(())
    ///     })?;
    /// }
    /// assert!(tape.value(w)?.iter().all(|v| v.abs() < 1e-9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn mark(&self) -> Mark {
        Mark {
            nodes: self.nodes.len(),
            listed_inputs: self.listed_inputs.len(),
            params: self.params.len(),
            last: self.nodes.last().map(|n| n.epoch),
        }
    }

    /// Forgets every node recorded after `mark`, keeping the nodes before it with their values
    /// (and every buffer, as [`clear`](Tape::clear) does). Gradients are forgotten too.
    pub fn rewind(&mut self, mark: Mark) -> Result<()> {
        let fits = mark.nodes <= self.nodes.len()
            // The node before the mark is the one the mark saw: not another tape's, nor one
            // recorded after a rewind past it.
            && self.nodes[..mark.nodes].last().map(|n| n.epoch) == mark.last
            // The list of inputs ended exactly there after the mark's last node: a mark from
            // before a rewind and a re-recording is refused, not half applied.
            && mark.listed_inputs == self.nodes[..mark.nodes].last().map_or(0, list_end)
            && mark.params <= self.params.len()
            // The parameters before the mark are exactly the first `mark.params` of the list.
            && (mark.params == 0 || self.params[mark.params - 1].index() < mark.nodes)
            && self.params.get(mark.params).is_none_or(|p| p.index() >= mark.nodes);
        if !fits {
            return Err(Error::StaleMark {
                mark: mark.nodes,
                len: self.nodes.len(),
            });
        }
        self.nodes.truncate(mark.nodes);
        self.listed_inputs.truncate(mark.listed_inputs);
        self.params.truncate(mark.params);
        self.param_shapes.truncate(mark.params);
        self.invalidate_grads();
        self.grad_enabled = true;
        self.epoch = Epoch::fresh();
        Ok(())
    }

    /// Gives a leaf (an input or a parameter) a new value of the same shape, written into its
    /// existing buffer: a new batch of data, or parameters loaded from elsewhere. Nodes recorded
    /// after it keep their old values until they are recorded again.
    pub fn set_value(&mut self, id: NodeId, value: ndarray::ArrayViewD<'_, E>) -> Result<()> {
        self.check_ids(&[id])?;
        let node = &self.nodes[id.index()];
        if !matches!(node.kind, NodeKind::Input | NodeKind::Parameter) {
            return Err(Error::NotALeaf { id: id.raw() });
        }
        let shape = Shape::new(value.shape())?;
        if !shape.same_as(&node.shape) {
            return Err(Error::LeafShape {
                leaf: node.shape,
                value: shape,
            });
        }
        let buf = &mut self.values[id.index()];
        for (d, &v) in buf.iter_mut().zip(value.iter()) {
            *d = v;
        }
        Ok(())
    }

    /// Gives the leaf `leaf` the value of the node `source` (of the same shape), copied into
    /// the leaf's buffer without allocating: a model's running statistics, recorded as
    /// ordinary nodes during a training pass, moved into the leaves the next pass reads.
    /// Errors as [`set_value`](Tape::set_value) does.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let running = tape.input(array![1.0, 2.0])?;
    /// let moved = tape.mul_scalar(running, 0.5)?;
    /// tape.set_value_from(running, moved)?;
    /// assert_eq!(tape.data(running)?, &[0.5, 1.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_value_from(&mut self, leaf: NodeId, source: NodeId) -> Result<()> {
        self.check_ids(&[leaf, source])?;
        let node = &self.nodes[leaf.index()];
        if !matches!(node.kind, NodeKind::Input | NodeKind::Parameter) {
            return Err(Error::NotALeaf { id: leaf.raw() });
        }
        let shape = self.nodes[source.index()].shape;
        if !shape.same_as(&node.shape) {
            return Err(Error::LeafShape {
                leaf: node.shape,
                value: shape,
            });
        }
        let (to, from) = (leaf.index(), source.index());
        if to == from {
            return Ok(());
        }
        let (low, high) = self.values.split_at_mut(to.max(from));
        let (to_buf, from_buf) = if to < from {
            (&mut low[to], &high[0])
        } else {
            (&mut high[0], &low[from])
        };
        let n = shape.numel();
        to_buf[..n].copy_from_slice(&from_buf[..n]);
        Ok(())
    }

    /// Calls `f(index, id, value, grad)` for every parameter that has a gradient from the last
    /// sweep, in recording order, with the parameter's place in [`parameters`](Tape::parameters)
    /// and its value to update in place: the hook an optimiser steps through. Stops at the first
    /// error `f` returns, and returns it.
    pub fn update_parameters<Err>(
        &mut self,
        mut f: impl FnMut(usize, NodeId, &mut [E], &[E]) -> std::result::Result<(), Err>,
    ) -> std::result::Result<(), Err> {
        for (index, &p) in self.params.iter().enumerate() {
            let i = p.index();
            if self.sweep != 0 && self.grad_stamps.get(i) == Some(&self.sweep) {
                f(index, p, &mut self.values[i], &self.grads[i])?;
            }
        }
        Ok(())
    }

    /// The parameters' shapes, in recording order (what an optimiser's step begins with).
    pub fn parameter_shapes(&self) -> &[Shape] {
        &self.param_shapes
    }

    /// Whether the last sweep left a gradient for every parameter: a
    /// [`backward`](Tape::backward) ran since the last [`clear`](Tape::clear) or
    /// [`rewind`](Tape::rewind), and no gradient was taken out since.
    pub fn has_parameter_grads(&self) -> bool {
        self.sweep != 0
            && self
                .params
                .iter()
                .all(|p| self.grad_stamps.get(p.index()) == Some(&self.sweep))
    }

    /// The gradients the last sweep left for the parameters, to change in place (clipping):
    /// one slice per parameter that has one, in recording order.
    pub fn parameter_grads_mut(&mut self) -> impl Iterator<Item = &mut [E]> + '_ {
        let sweep = self.sweep;
        self.grads
            .iter_mut()
            .zip(&self.grad_stamps)
            .zip(&self.nodes)
            .filter(move |((_, stamp), node)| {
                sweep != 0 && **stamp == sweep && node.kind == NodeKind::Parameter
            })
            .map(|((g, _), _)| &mut g[..])
    }

    /// Calls `f(id, value)` for every parameter, gradient or not, with its value to update in
    /// place: the hook for an optimiser stepping with gradients held outside the tape (summed
    /// over several sweeps, or received from other processes).
    pub fn update_parameter_values(&mut self, mut f: impl FnMut(NodeId, &mut [E])) {
        for &p in &self.params {
            f(p, &mut self.values[p.index()]);
        }
    }

    /// Records a value fed in from outside, with no gradient wanted: data, labels, constants.
    pub fn input(&mut self, value: impl IntoValue<E>) -> Result<NodeId> {
        self.push_leaf(NodeKind::Input, value)
    }

    /// Records a value whose gradient [`backward`](Tape::backward) returns: a weight, a bias.
    pub fn parameter(&mut self, value: impl IntoValue<E>) -> Result<NodeId> {
        self.push_leaf(NodeKind::Parameter, value)
    }

    /// Records class labels for [`cross_entropy`](Tape::cross_entropy): a `[batch]` input
    /// holding each class index as a float (exact up to 2²⁴ classes in `f32`).
    pub fn labels(&mut self, labels: &[usize]) -> Result<NodeId> {
        let id = self.next_id()?;
        let mut buf = self.take_slot(id);
        buf.clear();
        buf.extend(labels.iter().map(|&l| E::from_usize(l)));
        self.finish_node(
            id,
            NodeKind::Input,
            &[],
            Shape::vector(labels.len()),
            buf,
            false,
        )
    }

    /// Records a built-in op applied to `inputs`. The named methods ([`matmul`](Tape::matmul),
    /// [`relu`](Tape::relu), ...) call this.
    pub fn record(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        match (inputs, op.arity()) {
            _ if op.takes_any_number()
                || op.needs_scratch()
                || (op.arity() > 2 && op.accepts(inputs.len())) =>
            {
                self.record_listed(op, inputs.iter().copied())
            }
            (&[x], 1) => self.record_unary(op, x),
            (&[a, b], 2) => self.record_binary(op, a, b),
            _ => {
                self.next_id()?;
                self.check_ids(inputs)?;
                Err(Error::WrongArity {
                    op: op.name().to_string(),
                    expected: op.arity(),
                    got: inputs.len(),
                })
            }
        }
    }

    /// Records a one-input built-in op: the path every activation and unary op takes, kept
    /// short because tiny ops cost little more than their bookkeeping.
    #[inline(always)]
    pub(crate) fn record_unary(&mut self, op: Op, x: NodeId) -> Result<NodeId> {
        if let Op::Unary(unary) = op {
            return self.record_elementwise_unary(unary, x);
        }
        let id = self.next_id()?;
        self.check_ids(&[x])?;
        let input = &self.nodes[x.index()];
        let shape = if op.keeps_shape() {
            op.check_parameters()?;
            input.shape
        } else {
            op.output_shape(&[&input.shape])?
        };
        let grad_inputs =
            u8::from(self.grad_enabled && input.requires_grad && op.differentiable_in(0));
        let pointwise = op.runs_pointwise(&[input.shape.numel()], shape.numel());
        self.push_op(op, [x, x], 1, shape, grad_inputs, pointwise);
        self.run_forward(op, id)
    }

    /// Records a two-input built-in op.
    #[inline(always)]
    pub(crate) fn record_binary(&mut self, op: Op, a: NodeId, b: NodeId) -> Result<NodeId> {
        let id = self.next_id()?;
        self.check_ids(&[a, b])?;
        let (na, nb) = (&self.nodes[a.index()], &self.nodes[b.index()]);
        if let Op::Binary(binary) = op {
            if na.shape.same_as(&nb.shape) {
                return Ok(self.record_elementwise_binary(binary, id, a, b));
            }
            // Broadcast: out of line, so that a named elementwise method stays small enough
            // to inline into its caller (a `Var` method, W3's chain through handles).
            return self.record_broadcast(op, id, a, b);
        }
        self.record_binary_shaped(op, id, a, b)
    }

    /// [`record_binary`](Tape::record_binary) for an elementwise op whose inputs broadcast.
    #[inline(never)]
    fn record_broadcast(&mut self, op: Op, id: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.record_binary_shaped(op, id, a, b)
    }

    /// [`record_binary`](Tape::record_binary) once the ids are checked, for any op: the output
    /// shape inferred by the op's rule.
    #[inline(always)]
    fn record_binary_shaped(&mut self, op: Op, id: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        let (na, nb) = (&self.nodes[a.index()], &self.nodes[b.index()]);
        let shape = op.output_shape(&[&na.shape, &nb.shape])?;
        let grad_inputs = if self.grad_enabled {
            u8::from(na.requires_grad && op.differentiable_in(0))
                | u8::from(nb.requires_grad && op.differentiable_in(1)) << 1
        } else {
            0
        };
        let pointwise = op.runs_pointwise(&[na.shape.numel(), nb.shape.numel()], shape.numel());
        self.push_op(op, [a, b], 2, shape, grad_inputs, pointwise);
        self.run_forward(op, id)
    }

    /// [`record_unary`](Tape::record_unary) for an elementwise op: the output has the input's
    /// shape and is computed element by element.
    ///
    /// The op arrives as its [`UnaryOp`], taken out of the [`Op`] before anything else reads
    /// it, and the node's [`Op`] is rebuilt from it: inlined into a named method, the rule is
    /// then a constant, and only its own loop is compiled in. Matching on the whole `Op` after
    /// it has been copied around (it is as large as a [`Shape`]) left the optimiser a value in
    /// memory to dispatch on at run time (20 instructions more per op of W3, `docs/BENCHMARKS.md`).
    #[inline(always)]
    fn record_elementwise_unary(&mut self, unary: UnaryOp, x: NodeId) -> Result<NodeId> {
        let id = self.next_id()?;
        self.check_ids(&[x])?;
        unary.check()?;
        let input = &self.nodes[x.index()];
        let shape = input.shape;
        let grad_inputs =
            u8::from(self.grad_enabled && input.requires_grad && unary.has_gradient());
        let (below, out) = output_slot(&mut self.values, id.index(), shape.numel());
        unary.forward(&below[x.index()], out);
        self.push_op(Op::Unary(unary), [x, x], 1, shape, grad_inputs, true);
        Ok(id)
    }

    /// [`record_binary`](Tape::record_binary) for an elementwise op on two inputs of one shape
    /// (nothing broadcast), which cannot fail once the ids are checked; the op arrives as its
    /// [`BinaryOp`] for the reason [`record_elementwise_unary`](Tape::record_elementwise_unary)
    /// gives.
    #[inline(always)]
    fn record_elementwise_binary(
        &mut self,
        binary: BinaryOp,
        id: NodeId,
        a: NodeId,
        b: NodeId,
    ) -> NodeId {
        let (na, nb) = (&self.nodes[a.index()], &self.nodes[b.index()]);
        let shape = na.shape;
        let grad_inputs = if self.grad_enabled && binary.has_gradient() {
            u8::from(na.requires_grad) | u8::from(nb.requires_grad) << 1
        } else {
            0
        };
        let (below, out) = output_slot(&mut self.values, id.index(), shape.numel());
        binary.forward_pointwise(&below[a.index()], &below[b.index()], out);
        self.push_op(Op::Binary(binary), [a, b], 2, shape, grad_inputs, true);
        id
    }

    /// Appends a built-in op's node, before its value is computed: the shape goes straight
    /// into the node rather than being carried across the forward rule.
    #[inline(always)]
    fn push_op(
        &mut self,
        op: Op,
        inputs: [NodeId; 2],
        arity: u32,
        shape: Shape,
        grad_inputs: u8,
        pointwise: bool,
    ) {
        self.nodes.push(Node {
            kind: NodeKind::Op(op),
            inputs,
            inputs_len: arity,
            list_start: self.listed_inputs.len() as u32,
            shape,
            requires_grad: grad_inputs != 0,
            grad_inputs,
            retain_grad: false,
            pointwise,
            epoch: self.epoch,
        });
    }

    /// Records a built-in op with any number of inputs (`concat`, `stack`, `where_cond`, a
    /// weighted loss). More than two input ids go to `listed_inputs`, whose capacity `clear`
    /// and `rewind` keep, so that recording allocates nothing once a step has run; one or two
    /// are held inline, as every other op's. Nothing stays on the tape if a step fails.
    pub(crate) fn record_listed(
        &mut self,
        op: Op,
        inputs: impl IntoIterator<Item = NodeId>,
    ) -> Result<NodeId> {
        let id = self.next_id()?;
        let start = self.listed_inputs.len();
        self.listed_inputs.extend(inputs);
        let recorded = self.push_listed(op, id, start);
        if recorded.is_err() {
            self.listed_inputs.truncate(start);
        }
        recorded
    }

    /// [`record_listed`](Tape::record_listed) once the ids are in `listed_inputs[start..]`.
    fn push_listed(&mut self, op: Op, id: NodeId, start: usize) -> Result<NodeId> {
        let ids = &self.listed_inputs[start..];
        self.check_ids(ids)?;
        let list_start = u32::try_from(start).map_err(|_| Error::TapeFull)?;
        let count = u32::try_from(ids.len()).map_err(|_| Error::TapeFull)?;
        let shape = op.output_shape(&NodeShapes {
            nodes: &self.nodes,
            ids,
        })?;
        let mut grad_inputs = 0u8;
        if self.grad_enabled {
            for (k, j) in ids.iter().enumerate() {
                if self.nodes[j.index()].requires_grad && op.differentiable_in(k) {
                    grad_inputs |= grad_bit(k);
                }
            }
        }
        // `output_shape` refused an empty list.
        let inline = [ids[0], ids.get(1).copied().unwrap_or(ids[0])];
        if count <= 2 {
            self.listed_inputs.truncate(start);
        }
        self.nodes.push(Node {
            kind: NodeKind::Op(op),
            inputs: inline,
            inputs_len: count,
            list_start,
            shape,
            requires_grad: grad_inputs != 0,
            grad_inputs,
            retain_grad: false,
            pointwise: false,
            epoch: self.epoch,
        });
        let slot = id.index();
        let (below, out) = output_slot(&mut self.values, slot, shape.numel());
        let ids = if count > 2 {
            &self.listed_inputs[start..]
        } else {
            &inline[..count as usize]
        };
        let operands = NodeOperands {
            nodes: &self.nodes,
            values: below,
            ids,
        };
        let ran = if op.needs_scratch() {
            if self.scratch.len() <= slot {
                self.scratch.resize_with(slot + 1, Vec::new);
            }
            op.forward_with_scratch(&operands, &shape, out, &mut self.scratch[slot])
        } else {
            op.forward_shaped(&operands, &shape, out)
        };
        match ran {
            Ok(()) => Ok(id),
            Err(err) => {
                self.nodes.pop();
                Err(err)
            }
        }
    }

    /// Whether the sweep passes node `node`'s gradient to its input `k` (see
    /// [`grad_bit`]): an input past the shared bit is asked again.
    #[inline]
    pub(crate) fn takes_grad(&self, node: &Node, k: usize) -> bool {
        takes_grad(&self.nodes, &self.listed_inputs, node, k)
    }

    /// Runs `op`, node `id`'s op (the last node, just pushed), into its slot's buffer, which
    /// keeps its allocation from the last recording: the steady state of a training loop writes
    /// in place. On an error the node is taken off again and the buffer stays as a spare.
    ///
    /// `op` is passed rather than read back from the node so that, inlined into a named method,
    /// it is a constant and only its own rule is compiled in.
    #[inline(always)]
    fn run_forward(&mut self, op: Op, id: NodeId) -> Result<NodeId> {
        let slot = id.index();
        let node = &self.nodes[slot];
        let (below, out) = output_slot(&mut self.values, slot, node.shape.numel());
        let [a, b] = node.inputs;
        if node.pointwise {
            op.forward_pointwise(&below[a.index()], &below[b.index()], out);
            return Ok(id);
        }
        let operand =
            |i: NodeId| TensorRef::trusted(&self.nodes[i.index()].shape, &below[i.index()]);
        let refs = [operand(a), operand(b)];
        match op.forward_shaped(&refs[..node.inputs_len as usize], &node.shape, out) {
            Ok(()) => Ok(id),
            Err(err) => {
                self.nodes.pop();
                Err(err)
            }
        }
    }

    /// Registers a custom op on this tape, for [`custom`](Tape::custom) to record. Registrations
    /// survive [`clear`](Tape::clear).
    pub fn register_custom(&mut self, op: Box<dyn CustomOp<E>>) -> CustomOpId {
        self.custom_ops.push(op);
        CustomOpId(
            u32::try_from(self.custom_ops.len() - 1).expect("fewer than u32::MAX custom ops"),
        )
    }

    /// Records a registered custom op applied to `inputs`.
    pub fn custom(&mut self, op: CustomOpId, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.next_id()?;
        self.check_ids(inputs)?;
        let custom = self
            .custom_ops
            .get(op.0 as usize)
            .ok_or(Error::UnknownCustomOp { id: op.0 })?;
        if inputs.len() != custom.arity() {
            return Err(Error::WrongArity {
                op: custom.name().to_string(),
                expected: custom.arity(),
                got: inputs.len(),
            });
        }
        let shapes: Vec<&Shape> = inputs
            .iter()
            .map(|i| &self.nodes[i.index()].shape)
            .collect();
        let shape = custom.output_shape(&shapes)?;
        let mut buf = self.take_slot(id);
        buf.clear();
        buf.resize(shape.numel(), E::zero());
        let custom = &self.custom_ops[op.0 as usize];
        let views: Vec<ArrayViewD<'_, E>> = inputs.iter().map(|&i| self.tensor(i).view()).collect();
        let out = ArrayViewMutD::from_shape(IxDyn(shape.dims()), &mut buf[..])
            .expect("sized to the shape");
        let ran = custom.forward(&views, out);
        drop(views);
        if let Err(err) = ran {
            self.return_slot(id, buf);
            return Err(err);
        }
        let requires_grad =
            self.grad_enabled && inputs.iter().any(|&i| self.nodes[i.index()].requires_grad);
        self.finish_node(id, NodeKind::Custom(op), inputs, shape, buf, requires_grad)
    }

    /// Runs `f` with gradient recording off: the nodes it records hold values but need no
    /// gradient, so `backward` passes through none of them (PyTorch's `torch.no_grad`).
    /// Use it for inference and for evaluation during training.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.grad_enabled;
        self.grad_enabled = false;
        let result = f(self);
        self.grad_enabled = before;
        result
    }

    /// Asks [`backward`](Tape::backward) to keep this node's gradient as well (PyTorch's
    /// `retain_grad`); parameters' gradients are always kept.
    ///
    /// On an input (data) it also makes the gradient flow there (PyTorch's `requires_grad_`):
    /// the gradient of a loss with respect to the data, for saliency maps or adversarial
    /// examples. Ask before recording ops on the input, since they decide when recorded which
    /// inputs they pass a gradient to: asking later is [`Error::LeafAlreadyUsed`].
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.input(array![1.0, -2.0])?;
    /// tape.retain_grad(x)?;
    /// let sq = tape.mul(x, x)?;
    /// let loss = tape.sum(sq)?;
    /// let grads = tape.backward(loss)?;
    /// assert_eq!(grads.data(x), Some(&[2.0, -4.0][..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn retain_grad(&mut self, id: NodeId) -> Result<()> {
        self.check_ids(&[id])?;
        if self.nodes[id.index()].kind == NodeKind::Input && !self.nodes[id.index()].requires_grad {
            let used = self.nodes[id.index() + 1..]
                .iter()
                .any(|n| self.inputs_of(n).contains(&id));
            if used {
                return Err(Error::LeafAlreadyUsed { id: id.raw() });
            }
            self.nodes[id.index()].requires_grad = true;
        }
        self.nodes[id.index()].retain_grad = true;
        Ok(())
    }

    /// The node's value.
    pub fn value(&self, id: NodeId) -> Result<ArrayViewD<'_, E>> {
        self.check_ids(&[id])?;
        Ok(self.tensor(id).view())
    }

    /// The node's value, copied into an owned array.
    pub fn value_owned(&self, id: NodeId) -> Result<ArrayD<E>> {
        Ok(self.value(id)?.to_owned())
    }

    /// The node's elements in row-major order.
    pub fn data(&self, id: NodeId) -> Result<&[E]> {
        self.check_ids(&[id])?;
        Ok(&self.values[id.index()])
    }

    /// The single element of a one-element node (a loss), or an error naming its shape.
    pub fn item(&self, id: NodeId) -> Result<E> {
        let data = self.data(id)?;
        match data {
            [x] => Ok(*x),
            _ => Err(Error::LossNotScalar {
                shape: self.nodes[id.index()].shape,
            }),
        }
    }

    /// The node's shape.
    pub fn shape(&self, id: NodeId) -> Result<Shape> {
        self.check_ids(&[id])?;
        Ok(self.nodes[id.index()].shape)
    }

    /// What produced the node.
    pub fn kind(&self, id: NodeId) -> Result<NodeKind> {
        self.check_ids(&[id])?;
        Ok(self.nodes[id.index()].kind)
    }

    /// The node's inputs, in order.
    pub fn inputs(&self, id: NodeId) -> Result<&[NodeId]> {
        self.check_ids(&[id])?;
        Ok(self.inputs_of(&self.nodes[id.index()]))
    }

    /// Whether a gradient can reach this node from a loss (it depends on a parameter, outside
    /// [`no_grad`](Tape::no_grad) and [`detach`](Tape::detach)).
    pub fn requires_grad(&self, id: NodeId) -> Result<bool> {
        self.check_ids(&[id])?;
        Ok(self.nodes[id.index()].requires_grad)
    }

    /// The ids of every parameter, in recording order.
    pub fn parameters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.params.iter().copied()
    }

    /// Every node's id, in recording order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<'_, E> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeId::new(i as u32, node.epoch))
    }

    /// The registered custom op behind `id`.
    pub fn custom_op(&self, id: CustomOpId) -> Result<&dyn CustomOp<E>> {
        self.custom_ops
            .get(id.0 as usize)
            .map(|b| b.as_ref())
            .ok_or(Error::UnknownCustomOp { id: id.0 })
    }

    // ----- the machinery every node goes through -----

    pub(crate) fn inputs_of<'a>(&'a self, node: &'a Node) -> &'a [NodeId] {
        inputs_of(&self.listed_inputs, node)
    }

    /// A node's value as a kernel operand.
    #[inline]
    pub(crate) fn tensor(&self, id: NodeId) -> TensorRef<'_, E> {
        tensor_of(&self.nodes, &self.values, id.index())
    }

    /// The id the next node will get, or an error if the tape is full.
    #[inline]
    fn next_id(&self) -> Result<NodeId> {
        match u32::try_from(self.nodes.len()) {
            Ok(n) if n < u32::MAX => Ok(NodeId::new(n, self.epoch)),
            _ => Err(Error::TapeFull),
        }
    }

    #[inline]
    pub(crate) fn check_ids(&self, ids: &[NodeId]) -> Result<()> {
        for &id in ids {
            match self.nodes.get(id.index()) {
                Some(node) if node.epoch == id.epoch() => {}
                Some(_) => return Err(Error::StaleNode { id: id.raw() }),
                None => {
                    return Err(Error::UnknownNode {
                        id: id.raw(),
                        len: self.nodes.len(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Takes the value buffer of slot `id` (a spare from before a clear, or a new one).
    #[inline]
    fn take_slot(&mut self, id: NodeId) -> Vec<E> {
        self.values
            .get_mut(id.index())
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Puts a buffer back into slot `id` without recording a node, so its capacity is kept.
    #[inline]
    fn return_slot(&mut self, id: NodeId, buf: Vec<E>) {
        match self.values.get_mut(id.index()) {
            Some(slot) => *slot = buf,
            None => self.values.push(buf),
        }
    }

    fn push_leaf(&mut self, kind: NodeKind, value: impl IntoValue<E>) -> Result<NodeId> {
        let id = self.next_id()?;
        let mut buf = self.take_slot(id);
        match value.write_into(&mut buf) {
            Ok(shape) => self.finish_node(id, kind, &[], shape, buf, kind == NodeKind::Parameter),
            Err(err) => {
                self.return_slot(id, buf);
                Err(err)
            }
        }
    }

    #[inline]
    fn finish_node(
        &mut self,
        id: NodeId,
        kind: NodeKind,
        inputs: &[NodeId],
        shape: Shape,
        value: Vec<E>,
        requires_grad: bool,
    ) -> Result<NodeId> {
        debug_assert_eq!(shape.numel(), value.len());
        self.return_slot(id, value);
        let list_start = u32::try_from(self.listed_inputs.len()).map_err(|_| Error::TapeFull)?;
        if matches!(kind, NodeKind::Custom(_)) {
            self.listed_inputs.extend_from_slice(inputs);
        }
        if kind == NodeKind::Parameter {
            self.params.push(id);
            self.param_shapes.push(shape);
        }
        let first = inputs.first().copied().unwrap_or(id);
        self.nodes.push(Node {
            kind,
            inputs: [first, inputs.get(1).copied().unwrap_or(first)],
            inputs_len: inputs.len() as u32,
            list_start,
            shape,
            requires_grad,
            // Leaves have no inputs; a custom op's are looked up at each sweep.
            grad_inputs: 0,
            retain_grad: kind == NodeKind::Parameter,
            pointwise: false,
            epoch: self.epoch,
        });
        Ok(id)
    }
}

/// The values below `slot` (a new node's inputs, split off so they can be read while its value
/// is written) and the slot's own buffer, sized to `n` elements. The buffer keeps its
/// allocation from the last recording, and every built-in forward rule writes each element of
/// its output, so one of the right length is not zeroed first.
#[inline(always)]
fn output_slot<E: Float>(
    values: &mut Vec<Vec<E>>,
    slot: usize,
    n: usize,
) -> (&[Vec<E>], &mut Vec<E>) {
    if values.len() == slot {
        values.push(Vec::new());
    }
    let (below, rest) = values.split_at_mut(slot);
    let out = &mut rest[0];
    if out.len() != n {
        out.clear();
        out.resize(n, E::zero());
    }
    (below, out)
}

/// Where the list of inputs ends after `node` was recorded.
#[inline]
fn list_end(node: &Node) -> usize {
    let own = if node.lists_inputs() {
        node.inputs_len as usize
    } else {
        0
    };
    node.list_start as usize + own
}

/// A node's inputs: inline for a built-in op of one or two, in `listed_inputs` otherwise.
#[inline]
pub(crate) fn inputs_of<'a>(listed_inputs: &'a [NodeId], node: &'a Node) -> &'a [NodeId] {
    let len = node.inputs_len as usize;
    if node.lists_inputs() {
        let start = node.list_start as usize;
        &listed_inputs[start..start + len]
    } else {
        &node.inputs[..len]
    }
}

/// Whether the sweep passes a built-in op node's gradient to its input `k`: the input's bit of
/// `grad_inputs`, and for an input sharing the last bit, whether it needs a gradient and the
/// op is differentiable in it (what recording decided).
#[inline]
pub(crate) fn takes_grad(nodes: &[Node], listed_inputs: &[NodeId], node: &Node, k: usize) -> bool {
    if node.grad_inputs & grad_bit(k) == 0 {
        return false;
    }
    if k < SHARED_GRAD_BIT {
        return true;
    }
    let NodeKind::Op(op) = node.kind else {
        return false;
    };
    let j = inputs_of(listed_inputs, node)[k];
    nodes[j.index()].requires_grad && op.differentiable_in(k)
}

/// The shapes of a node's inputs, read from the tape's nodes.
pub(crate) struct NodeShapes<'t> {
    pub nodes: &'t [Node],
    pub ids: &'t [NodeId],
}

impl<'t> Shapes<'t> for NodeShapes<'t> {
    #[inline]
    fn count(&self) -> usize {
        self.ids.len()
    }
    #[inline]
    fn shape(&self, k: usize) -> &'t Shape {
        &self.nodes[self.ids[k].index()].shape
    }
}

/// The values of a node's inputs, read from the tape's nodes and value buffers.
pub(crate) struct NodeOperands<'t, E> {
    pub nodes: &'t [Node],
    pub values: &'t [Vec<E>],
    pub ids: &'t [NodeId],
}

impl<'t, E: Float> Operands<'t, E> for NodeOperands<'t, E> {
    #[inline]
    fn count(&self) -> usize {
        self.ids.len()
    }
    #[inline]
    fn get(&self, k: usize) -> TensorRef<'t, E> {
        tensor_of(self.nodes, self.values, self.ids[k].index())
    }
}

/// A point on a tape to [`rewind`](Tape::rewind) to, from [`Tape::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    nodes: usize,
    listed_inputs: usize,
    params: usize,
    /// The epoch of the node just before the mark, if any.
    last: Option<Epoch>,
}

/// A node's value as a kernel operand, from the tape's parts (so that the sweep can borrow
/// values while it writes gradients).
#[inline]
pub(crate) fn tensor_of<'a, E: Float>(
    nodes: &'a [Node],
    values: &'a [Vec<E>],
    i: usize,
) -> TensorRef<'a, E> {
    TensorRef::trusted(&nodes[i].shape, &values[i])
}
