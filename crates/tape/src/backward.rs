//! The reverse sweep: one loop from the output down to the first node, applying each op's VJP.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IntoDimension, IxDyn};
use wengert_ops::{Error, Float, Result, Shape};

use crate::node::NodeKind;
use crate::tape::tensor_of;
use crate::{NodeId, Tape};

impl<E: Float> Tape<E> {
    /// The gradient of the scalar `loss` with respect to every parameter.
    ///
    /// Each gradient has its parameter's shape. Nodes marked with
    /// [`retain_grad`](Tape::retain_grad) keep theirs too; every other intermediate gradient is
    /// released as soon as the sweep has passed it on. Calling `backward` again recomputes
    /// from scratch, with bit-identical results.
    ///
    /// Errors if `loss` is not on this tape or does not hold exactly one element.
    pub fn backward(&mut self, loss: NodeId) -> Result<Gradients<'_, E>> {
        self.check_ids(&[loss])?;
        let shape = self.nodes[loss.index()].shape;
        if shape.numel() != 1 {
            return Err(Error::LossNotScalar { shape });
        }
        self.sweep(loss, |seed| seed.fill(E::one()))?;
        Ok(Gradients { tape: self })
    }

    /// A vector-Jacobian product: the gradients of `Σ seed · output` for an output of any shape
    /// (PyTorch's `backward(gradient=...)`). `seed` must have the output's shape.
    pub fn backward_with_seed(
        &mut self,
        output: NodeId,
        seed: ArrayViewD<'_, E>,
    ) -> Result<Gradients<'_, E>> {
        self.check_ids(&[output])?;
        let out_shape = self.nodes[output.index()].shape;
        let seed_shape = Shape::new(seed.shape())?;
        if !out_shape.same_as(&seed_shape) {
            return Err(Error::SeedShape {
                output: out_shape,
                seed: seed_shape,
            });
        }
        self.sweep(output, |buf| {
            for (d, &s) in buf.iter_mut().zip(seed.iter()) {
                *d = s;
            }
        })?;
        Ok(Gradients { tape: self })
    }

    /// The gradient the last sweep kept for `id`, if any.
    pub fn grad(&self, id: NodeId) -> Option<ArrayViewD<'_, E>> {
        let buf = self.grads.get(id.index())?.as_ref()?;
        let shape = self.nodes.get(id.index())?.shape;
        Some(
            ArrayViewD::from_shape(IxDyn(shape.dims()), buf)
                .expect("a gradient has its node's shape"),
        )
    }

    /// Moves the gradient the last sweep kept for `id` out of the tape, without copying.
    pub fn take_grad(&mut self, id: NodeId) -> Option<ArrayD<E>> {
        let buf = self.grads.get_mut(id.index())?.take()?;
        let shape = self.nodes[id.index()].shape;
        Some(
            ArrayD::from_shape_vec(shape.dims().into_dimension(), buf)
                .expect("a gradient has its node's shape"),
        )
    }

    /// A zeroed gradient buffer of `n` elements, from the pool where one is spare.
    fn zeroed(pool: &mut Vec<Vec<E>>, n: usize) -> Vec<E> {
        let mut buf = pool.pop().unwrap_or_default();
        buf.clear();
        buf.resize(n, E::zero());
        buf
    }

    fn sweep(&mut self, output: NodeId, seed: impl FnOnce(&mut [E])) -> Result<()> {
        // Release what the last sweep kept; the same buffers serve this one.
        for grad in &mut self.grads {
            if let Some(buf) = grad.take() {
                self.pool.push(buf);
            }
        }
        self.grads.resize_with(self.nodes.len(), || None);
        let out = output.index();
        let mut seed_buf = Self::zeroed(&mut self.pool, self.nodes[out].shape.numel());
        seed(&mut seed_buf);
        self.grads[out] = Some(seed_buf);

        // Inputs have smaller ids than their users, so by the time the loop reaches a node every
        // path from the output has already added its share to the node's gradient.
        for i in (0..=out).rev() {
            let Some(g) = self.grads[i].take() else {
                continue;
            };
            let node = self.nodes[i];
            if node.requires_grad {
                self.pull_back(i, &g);
            }
            if node.retain_grad {
                self.grads[i] = Some(g);
            } else {
                self.pool.push(g);
            }
        }
        // A parameter the output does not depend on has a zero gradient, not a missing one.
        for (node, grad) in self.nodes.iter().zip(&mut self.grads) {
            if node.kind == NodeKind::Parameter && grad.is_none() {
                *grad = Some(Self::zeroed(&mut self.pool, node.shape.numel()));
            }
        }
        Ok(())
    }

    /// Adds node `i`'s gradient `g`, pulled back through its op, to each input that needs one.
    fn pull_back(&mut self, i: usize, g: &[E]) {
        let node = self.nodes[i];
        let start = node.inputs_start as usize;
        let inputs = &self.input_ids[start..start + node.inputs_len as usize];
        let output = tensor_of(&self.nodes, &self.values, NodeId::new(i as u32));
        match node.kind {
            NodeKind::Op(op) => {
                let first = inputs[0];
                let second = inputs.get(1).copied().unwrap_or(first);
                let refs = [
                    tensor_of(&self.nodes, &self.values, first),
                    tensor_of(&self.nodes, &self.values, second),
                ];
                for (k, &input) in inputs.iter().enumerate() {
                    let target = &self.nodes[input.index()];
                    if !target.requires_grad || !op.differentiable_in(k) {
                        continue;
                    }
                    let n = target.shape.numel();
                    let gi = self.grads[input.index()]
                        .get_or_insert_with(|| Self::zeroed(&mut self.pool, n));
                    op.vjp(&refs[..inputs.len()], output, g, k, gi);
                }
            }
            NodeKind::Custom(id) => {
                let custom = &self.custom_ops[id.0 as usize];
                let views: Vec<ArrayViewD<'_, E>> = inputs
                    .iter()
                    .map(|&x| tensor_of(&self.nodes, &self.values, x).view())
                    .collect();
                let g_view =
                    ArrayViewD::from_shape(IxDyn(node.shape.dims()), g).expect("sized to the node");
                for (k, &input) in inputs.iter().enumerate() {
                    let target = &self.nodes[input.index()];
                    if !target.requires_grad {
                        continue;
                    }
                    let n = target.shape.numel();
                    let gi = self.grads[input.index()]
                        .get_or_insert_with(|| Self::zeroed(&mut self.pool, n));
                    let gi = ArrayViewMutD::from_shape(IxDyn(target.shape.dims()), &mut gi[..])
                        .expect("sized to the input");
                    custom.vjp(&views, output.view(), g_view.view(), k, gi);
                }
            }
            NodeKind::Input | NodeKind::Parameter => {}
        }
    }
}

/// The gradients of one sweep, read by node id. Borrowed from the tape; drop it (or use
/// [`Tape::grad`]) to record again.
#[derive(Debug)]
pub struct Gradients<'t, E: Float> {
    tape: &'t Tape<E>,
}

impl<'t, E: Float> Gradients<'t, E> {
    /// The gradient with respect to `id`: every parameter has one (zeros if the loss does not
    /// depend on it), as does every node marked with [`Tape::retain_grad`] that the sweep reached.
    pub fn get(&self, id: NodeId) -> Option<ArrayViewD<'t, E>> {
        self.tape.grad(id)
    }

    /// The gradient's elements in row-major order.
    pub fn data(&self, id: NodeId) -> Option<&'t [E]> {
        self.tape.grads.get(id.index())?.as_deref()
    }

    /// Every parameter with its gradient, in recording order.
    pub fn parameters(&self) -> impl Iterator<Item = (NodeId, ArrayViewD<'t, E>)> + 't {
        let tape: &'t Tape<E> = self.tape;
        tape.parameters()
            .filter_map(move |id| tape.grad(id).map(|g| (id, g)))
    }
}
