//! The reverse sweep: one loop from the output down to the first node, applying each op's VJP.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IntoDimension, IxDyn};
use wengert_ops::{Error, Float, Result, Shape, TensorRef};

use crate::fold::Folds;
use crate::node::{NodeKind, grad_bit};
use crate::tape::{NodeOperands, inputs_of, takes_grad, tensor_of};
use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// The gradient of the scalar `loss` with respect to every parameter.
    ///
    /// Each gradient has its parameter's shape. Nodes marked with
    /// [`retain_grad`](Tape::retain_grad) keep theirs too; every other intermediate gradient is
    /// dropped as soon as the sweep has passed it on to the node's inputs (its buffer stays with
    /// the tape for the next sweep). Calling `backward` again recomputes from scratch, with
    /// bit-identical results.
    ///
    /// Errors if `loss` is not on this tape or does not hold exactly one element, and with
    /// [`Error::NoGradient`] if no gradient can reach it (recorded under
    /// [`no_grad`](Tape::no_grad), or from inputs only), as PyTorch does.
    pub fn backward(&mut self, loss: NodeId) -> Result<Gradients<'_, E>> {
        self.check_loss(loss)?;
        self.sweep(loss, |seed| seed.fill(E::one()), &mut (), &mut ());
        Ok(Gradients { tape: self })
    }

    /// The checks [`backward`](Tape::backward) makes before it changes anything: `loss` is on
    /// this tape, holds exactly one element, and a gradient can reach it. For a caller that
    /// must know a sweep will run before it starts a step of its own (an optimiser's).
    pub fn check_loss(&self, loss: NodeId) -> Result<()> {
        self.check_ids(&[loss])?;
        let shape = self.nodes[loss.index()].shape;
        if shape.numel() != 1 {
            return Err(Error::LossNotScalar { shape });
        }
        self.check_differentiable(loss)
    }

    /// [`backward`](Tape::backward), telling `on_final` each parameter's gradient as soon as
    /// it is final, during the sweep: right after the parameter's last consumer (the one
    /// recorded first) has passed its share on, so that a caller can start using it (sending
    /// it to other processes, say) while the rest of the sweep runs. `on_final` gets the
    /// parameter's position in [`parameters`](Tape::parameters), its id and its gradient;
    /// every parameter is told exactly once, a parameter the loss does not depend on with
    /// zeros. The gradients are the bits `backward` gives.
    pub fn backward_with(
        &mut self,
        loss: NodeId,
        on_final: impl FnMut(usize, NodeId, &[E]),
    ) -> Result<Gradients<'_, E>> {
        self.check_loss(loss)?;
        let mut watch = FinalWatch::new(self, loss.index(), on_final);
        self.sweep(loss, |seed| seed.fill(E::one()), &mut watch, &mut ());
        Ok(Gradients { tape: self })
    }

    /// A vector-Jacobian product: the gradients of `Σ seed · output` for an output of any shape
    /// (PyTorch's `backward(gradient=...)`). `seed` must have the output's shape, except that
    /// any one-element seed (`[]` or `[1]`) fits a one-element output. Errors as
    /// [`backward`](Tape::backward) does when no gradient can reach the output.
    pub fn backward_with_seed(
        &mut self,
        output: NodeId,
        seed: ArrayViewD<'_, E>,
    ) -> Result<Gradients<'_, E>> {
        self.check_ids(&[output])?;
        let out_shape = self.nodes[output.index()].shape;
        let seed_shape = Shape::new(seed.shape())?;
        let both_scalar = out_shape.numel() == 1 && seed_shape.numel() == 1;
        if !both_scalar && !out_shape.same_as(&seed_shape) {
            return Err(Error::SeedShape {
                output: out_shape,
                seed: seed_shape,
            });
        }
        self.check_differentiable(output)?;
        self.sweep(
            output,
            |buf| {
                for (d, &s) in buf.iter_mut().zip(seed.iter()) {
                    *d = s;
                }
            },
            &mut (),
            &mut (),
        );
        Ok(Gradients { tape: self })
    }

    /// Refuses a sweep from a node no gradient can reach.
    fn check_differentiable(&self, output: NodeId) -> Result<()> {
        if self.nodes[output.index()].requires_grad {
            Ok(())
        } else {
            Err(Error::NoGradient { id: output.raw() })
        }
    }

    /// The gradient the last sweep kept for `id`, if any.
    pub fn grad(&self, id: NodeId) -> Option<ArrayViewD<'_, E>> {
        let buf = self.live_grad(id)?;
        let shape = self.nodes[id.index()].shape;
        Some(
            ArrayViewD::from_shape(IxDyn(shape.dims()), buf)
                .expect("a gradient has its node's shape"),
        )
    }

    /// Moves the gradient the last sweep kept for `id` out of the tape, without copying.
    pub fn take_grad(&mut self, id: NodeId) -> Option<ArrayD<E>> {
        self.live_grad(id)?;
        let i = id.index();
        self.grad_stamps[i] = 0;
        let buf = std::mem::take(&mut self.grads[i]);
        let dims = self.nodes[i].shape.dims().into_dimension();
        Some(ArrayD::from_shape_vec(dims, buf).expect("a gradient has its node's shape"))
    }

    /// The elements of `id`'s gradient if the last sweep kept one.
    pub(crate) fn live_grad(&self, id: NodeId) -> Option<&[E]> {
        let i = id.index();
        (self.nodes.get(i).is_some_and(|n| n.epoch == id.epoch())
            && self.grad_stamps.get(i) == Some(&self.sweep)
            && self.sweep != 0)
            .then(|| &self.grads[i][..])
    }

    /// Makes every gradient buffer dead without touching it, by moving to a fresh stamp.
    pub(crate) fn invalidate_grads(&mut self) {
        self.sweep = match self.sweep.checked_add(1) {
            Some(s) => s,
            None => {
                // After 2³² sweeps the stamps wrap: clear them so no old one looks live.
                self.grad_stamps.fill(0);
                1
            }
        };
    }

    /// The one reverse loop every sweep runs: seeds `output`'s gradient, then pulls back
    /// through each node reached, telling `watch` its progress and applying `folds`' updates.
    pub(crate) fn sweep(
        &mut self,
        output: NodeId,
        seed: impl FnOnce(&mut [E]),
        watch: &mut impl Watch<E>,
        folds: &mut impl Folds<E>,
    ) {
        self.invalidate_grads();
        let stamp = self.sweep;
        let len = self.nodes.len();
        if self.grads.len() < len {
            self.grads.resize_with(len, Vec::new);
            self.grad_stamps.resize(len, 0);
        }
        let out = output.index();
        let seed_buf = &mut self.grads[out];
        zero(seed_buf, self.nodes[out].shape.numel());
        seed(seed_buf);
        self.grad_stamps[out] = stamp;

        let Tape {
            nodes,
            listed_inputs,
            values,
            grads,
            grad_stamps,
            custom_ops,
            scratch,
            ..
        } = self;
        // Sliced to the output once, so that the loop indexes node `i`'s own entries unchecked.
        // Values are written only by a folded update, to a parameter no later node reads.
        let (nodes, values) = (&nodes[..=out], &mut values[..=out]);
        let (grads, grad_stamps) = (&mut grads[..=out], &mut grad_stamps[..=out]);
        // Inputs have smaller ids than their users, so by the time the loop reaches a node every
        // path from the output has already added its share to the node's gradient.
        for i in (0..=out).rev() {
            watch.before(i, grads, grad_stamps, stamp);
            if grad_stamps[i] != stamp {
                continue;
            }
            let node = &nodes[i];
            if node.grad_inputs != 0 {
                let fold = folds.at(i);
                // The folded input is served last, after the others have read its old value.
                let grad_inputs = match fold {
                    Some(f) => node.grad_inputs & !grad_bit(f.operand),
                    None => node.grad_inputs,
                };
                // Every input is below `i`: split there to read this gradient while writing theirs.
                let (below, here) = grads.split_at_mut(i);
                let g = &here[0][..];
                let NodeKind::Op(op) = &node.kind else {
                    unreachable!("only built-in ops have a gradient mask")
                };
                if node.pointwise && g.len() == 1 {
                    // A chain of scalar ops (W3): the same rules on slices whose length, 1, the
                    // compiler sees, so none of the slice loops' set-up (which costs more than
                    // the arithmetic) is run.
                    let [a, b] = node.inputs;
                    let a = std::slice::from_ref(&values[a.index()][0]);
                    let b = std::slice::from_ref(&values[b.index()][0]);
                    let y = std::slice::from_ref(&values[i][0]);
                    let g = std::slice::from_ref(&g[0]);
                    let mut mask = node.grad_inputs;
                    while mask != 0 {
                        let k = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let j = node.inputs[k].index();
                        let (gi, fresh) = grad_slot(below, grad_stamps, stamp, j, 1);
                        let gi = std::slice::from_mut(&mut gi[0]);
                        if fresh {
                            op.vjp_pointwise::<E, false>(k, a, b, y, g, gi);
                        } else {
                            op.vjp_pointwise::<E, true>(k, a, b, y, g, gi);
                        }
                    }
                } else if node.pointwise {
                    // The common case of a training step: every operand has `g.len()`
                    // elements, so no shape is read.
                    let [a, b] = node.inputs;
                    let (a, b) = (&values[a.index()][..], &values[b.index()][..]);
                    let mut mask = node.grad_inputs;
                    while mask != 0 {
                        let k = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let j = node.inputs[k].index();
                        let (gi, fresh) = grad_slot(below, grad_stamps, stamp, j, g.len());
                        if fresh {
                            op.vjp_pointwise::<E, false>(k, a, b, &values[i], g, gi);
                        } else {
                            op.vjp_pointwise::<E, true>(k, a, b, &values[i], g, gi);
                        }
                    }
                } else if node.lists_inputs() || op.needs_scratch() {
                    // More than two inputs, listed, or an op with a scratch buffer of its own:
                    // each input that takes a gradient gets its share.
                    let ids = inputs_of(listed_inputs, node);
                    let operands = NodeOperands { nodes, values, ids };
                    let mut none = Vec::new();
                    let scratch = match scratch.get_mut(i) {
                        Some(buf) if op.needs_scratch() => buf,
                        _ => &mut none,
                    };
                    let output = tensor_of(nodes, values, i);
                    for (k, j) in ids.iter().enumerate() {
                        let folded = fold.is_some_and(|f| f.operand == k);
                        if folded || !takes_grad(nodes, listed_inputs, node, k) {
                            continue;
                        }
                        let n = nodes[j.index()].shape.numel();
                        let (gi, fresh) = grad_slot(below, grad_stamps, stamp, j.index(), n);
                        if fresh {
                            op.vjp_with_scratch::<E, false>(&operands, output, g, k, gi, scratch);
                        } else {
                            op.vjp_with_scratch::<E, true>(&operands, output, g, k, gi, scratch);
                        }
                    }
                } else {
                    let output = tensor_of(nodes, values, i);
                    let refs = [
                        tensor_of(nodes, values, node.inputs[0].index()),
                        tensor_of(nodes, values, node.inputs[1].index()),
                    ];
                    let refs = &refs[..node.inputs_len as usize];
                    // An input whose share is this gradient itself (the unbroadcast operand of a
                    // bias add), reached for the first time, takes this node's buffer once the
                    // other input is served, rather than a copy of it: one pass over the
                    // activations fewer per layer. Never for a kept gradient.
                    let mut handoff = None;
                    for k in (0..node.inputs_len as usize).filter(|k| grad_inputs & 1 << k != 0) {
                        let j = node.inputs[k].index();
                        let n = nodes[j].shape.numel();
                        if handoff.is_none()
                            && !node.retain_grad
                            && n == g.len()
                            && op.passes_gradient_to(k)
                            && grad_stamps[j] != stamp
                        {
                            handoff = Some(j);
                            continue;
                        }
                        let (gi, fresh) = grad_slot(below, grad_stamps, stamp, j, n);
                        if fresh {
                            op.vjp_overwrite(refs, output, g, k, gi);
                        } else {
                            op.vjp(refs, output, g, k, gi);
                        }
                    }
                    if let Some(j) = handoff {
                        // A broadcast op's other input has fewer elements, so it is not `j`.
                        // (Never at a folding node: a product passes no gradient on whole.)
                        std::mem::swap(&mut here[0], &mut below[j]);
                        grad_stamps[j] = stamp;
                    }
                }
                if let Some(f) = fold {
                    let ids = inputs_of(listed_inputs, node);
                    let other = ids[1 - f.operand].index();
                    // Moved out and back (no copy), to be written while the other factor is read.
                    let mut value = std::mem::take(&mut values[f.param]);
                    op.vjp_scaled(
                        tensor_of(nodes, values, other),
                        &nodes[f.param].shape,
                        &here[0],
                        f.operand,
                        f.update,
                        &mut value,
                    );
                    values[f.param] = value;
                }
            } else if let NodeKind::Custom(id) = node.kind
                && node.requires_grad
            {
                let (below, here) = grads.split_at_mut(i);
                let g = &here[0][..];
                let inputs = inputs_of(listed_inputs, node);
                let custom = &custom_ops[id.0 as usize];
                let output = tensor_of(nodes, values, i);
                let views: Vec<ArrayViewD<'_, E>> = inputs
                    .iter()
                    .map(|&x| tensor_of(nodes, values, x.index()).view())
                    .collect();
                let g_view = view_of(&node.shape, g);
                for (k, &input) in inputs.iter().enumerate() {
                    let target = &nodes[input.index()];
                    if !target.requires_grad {
                        continue;
                    }
                    let (gi, fresh) = grad_slot(
                        below,
                        grad_stamps,
                        stamp,
                        input.index(),
                        target.shape.numel(),
                    );
                    if fresh {
                        gi.fill(E::zero());
                    }
                    let gi = ArrayViewMutD::from_shape(IxDyn(target.shape.dims()), gi)
                        .expect("sized to the input");
                    custom.vjp(&views, output.view(), g_view.view(), k, gi);
                }
            }
            if !node.retain_grad {
                // Dropped: passed on to the inputs, no longer readable.
                grad_stamps[i] = 0;
            }
        }
        // A parameter the output does not depend on has a zero gradient, not a missing one.
        for &p in &self.params {
            let i = p.index();
            if self.grad_stamps[i] != stamp && !folds.folded(i) {
                zero(&mut self.grads[i], self.nodes[i].shape.numel());
                self.grad_stamps[i] = stamp;
            }
        }
    }
}

/// What the sweep tells about its progress: nothing for a plain sweep (`()`, compiled away).
pub(crate) trait Watch<E> {
    /// Called as the sweep reaches node `i`, every node above it processed.
    fn before(&mut self, i: usize, grads: &mut [Vec<E>], stamps: &mut [u32], stamp: u32);
}

impl<E> Watch<E> for () {
    #[inline(always)]
    fn before(&mut self, _: usize, _: &mut [Vec<E>], _: &mut [u32], _: u32) {}
}

/// Tells a caller each parameter's gradient once every consumer of the parameter is processed.
struct FinalWatch<F> {
    /// `(lowest consumer, position, parameter)`, the lowest consumer descending: a parameter's
    /// gradient is final once the sweep is below it. A parameter with no consumer up to the
    /// output has `output + 1`, so it is told (with zeros) before the first node.
    pending: Vec<(usize, usize, NodeId)>,
    /// Sizes of the parameters' gradients, by position.
    sizes: Vec<usize>,
    on_final: F,
}

impl<F> FinalWatch<F> {
    fn new<E: Float>(tape: &Tape<E>, out: usize, on_final: F) -> Self {
        let mut lowest = vec![usize::MAX; out + 1];
        for (c, node) in tape.nodes[..=out].iter().enumerate().rev() {
            for &j in inputs_of(&tape.listed_inputs, node) {
                lowest[j.index()] = c;
            }
        }
        let mut pending: Vec<(usize, usize, NodeId)> = tape
            .params
            .iter()
            .enumerate()
            .filter(|&(_, p)| p.index() <= out)
            .map(|(k, &p)| (lowest[p.index()].min(out + 1), k, p))
            .collect();
        // Parameters recorded after the output are not on its path: told first, with zeros.
        pending.extend(
            (tape.params.iter().enumerate())
                .filter(|&(_, p)| p.index() > out)
                .map(|(k, &p)| (usize::MAX, k, p)),
        );
        pending.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let sizes = (tape.params.iter())
            .map(|p| tape.nodes[p.index()].shape.numel())
            .collect();
        FinalWatch {
            pending,
            sizes,
            on_final,
        }
    }
}

impl<E: Float, F: FnMut(usize, NodeId, &[E])> Watch<E> for FinalWatch<F> {
    fn before(&mut self, i: usize, grads: &mut [Vec<E>], stamps: &mut [u32], stamp: u32) {
        while let Some(&(consumer, k, p)) = self.pending.last() {
            if consumer <= i {
                return;
            }
            self.pending.pop();
            let n = self.sizes[k];
            let Some(buf) = grads.get_mut(p.index()) else {
                // Above the output: the sweep never touches it.
                (self.on_final)(k, p, &vec![E::zero(); n]);
                continue;
            };
            if stamps[p.index()] != stamp {
                // No gradient reached it: zero, as the sweep's end would make it.
                zero(buf, n);
                stamps[p.index()] = stamp;
            }
            (self.on_final)(k, p, buf);
        }
    }
}

/// Resets `buf` to `n` zeros, reusing its allocation.
#[inline]
fn zero<E: Float>(buf: &mut Vec<E>, n: usize) {
    buf.clear();
    buf.resize(n, E::zero());
}

/// The gradient buffer of node `j`, which holds `n` elements, and whether this sweep reaches it
/// for the first time (then it holds stale numbers of the right length, to be overwritten).
#[inline(always)]
fn grad_slot<'a, E: Float>(
    below: &'a mut [Vec<E>],
    stamps: &mut [u32],
    stamp: u32,
    j: usize,
    n: usize,
) -> (&'a mut [E], bool) {
    let fresh = stamps[j] != stamp;
    if fresh {
        // Same length as last time (the steady state of a training loop): leave the stale
        // numbers, the first VJP overwrites them. Otherwise resize, which zeroes.
        if below[j].len() != n {
            zero(&mut below[j], n);
        }
        stamps[j] = stamp;
    }
    (&mut below[j][..], fresh)
}

fn view_of<'a, E: Float>(shape: &'a Shape, data: &'a [E]) -> ArrayViewD<'a, E> {
    TensorRef::trusted(shape, data).view()
}

/// The gradients of one sweep, read by node id. Borrowed from the tape; drop it (or use
/// [`Tape::grad`]) to record again.
#[derive(Debug)]
pub struct Gradients<'t, E: Float> {
    pub(crate) tape: &'t Tape<E>,
}

impl<'t, E: Float> Gradients<'t, E> {
    /// The gradient with respect to `id`: every parameter has one (zeros if the loss does not
    /// depend on it), except those whose update a [`Tape::backward_folding`] sweep folded into
    /// their product, as does every node marked with [`Tape::retain_grad`] that the sweep
    /// reached.
    pub fn get(&self, id: NodeId) -> Option<ArrayViewD<'t, E>> {
        self.tape.grad(id)
    }

    /// The gradient's elements in row-major order.
    pub fn data(&self, id: NodeId) -> Option<&'t [E]> {
        self.tape.live_grad(id)
    }

    /// Every parameter with its gradient, in recording order (after a
    /// [`Tape::backward_folding`] sweep, those whose update it did not fold).
    pub fn parameters(&self) -> impl Iterator<Item = (NodeId, ArrayViewD<'t, E>)> + 't {
        let tape: &'t Tape<E> = self.tape;
        tape.parameters()
            .filter_map(move |id| tape.grad(id).map(|g| (id, g)))
    }
}
