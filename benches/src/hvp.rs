//! W2's Hessian-vector product: the 784-512-512-10 network's loss differentiated twice, along a
//! fixed direction in parameter space, beside one first-order training step of the same network.
//!
//! The product is PyTorch's double-backward form: the gradient recorded on the tape
//! (`record_grad`), its inner product with the direction, and one ordinary `backward` through
//! all of it; the parameters' gradients are then `H·v`.

use wengert_tape::{Mark, NodeId, Result, Shaped, Tape};

use crate::mlp::{Mlp, forward_on};

/// The network on a tape with a direction per parameter, recorded before the mark.
pub struct HvpMlp {
    tape: Tape<f32>,
    layers: Vec<(NodeId, NodeId)>,
    params: Vec<NodeId>,
    directions: Vec<NodeId>,
    mark: Mark,
    inputs: usize,
}

impl HvpMlp {
    /// Records `mlp`'s parameters, and a direction of the same shapes (each parameter's own
    /// values, so that the product is not trivially sparse).
    pub fn new(mlp: &Mlp) -> Result<Self> {
        let mut tape = Tape::new();
        let mut layers = Vec::new();
        let mut params = Vec::new();
        let mut directions = Vec::new();
        for (l, (w, b)) in mlp.params.iter().enumerate() {
            let (fan_in, fan_out) = (mlp.layers[l], mlp.layers[l + 1]);
            let wid = tape.parameter(Shaped(&[fan_in, fan_out], w))?;
            let bid = tape.parameter(Shaped(&[fan_out], b))?;
            layers.push((wid, bid));
            params.extend([wid, bid]);
            directions.push(tape.input(Shaped(&[fan_in, fan_out], w))?);
            directions.push(tape.input(Shaped(&[fan_out], b))?);
        }
        let mark = tape.mark();
        Ok(HvpMlp {
            tape,
            layers,
            params,
            directions,
            mark,
            inputs: mlp.inputs(),
        })
    }

    /// `H·v` of the cross-entropy loss on this batch, left in the parameters' gradients.
    pub fn hvp(&mut self, x: &[f32], labels: &[usize]) -> Result<()> {
        let logits = forward_on(&mut self.tape, &self.layers, self.mark, self.inputs, x)?;
        let y = self.tape.labels(labels)?;
        let loss = self.tape.cross_entropy(logits, y)?;
        let grads = self.tape.record_grad(loss, &self.params)?;
        let mut dot = None;
        for (&g, &v) in grads.iter().zip(&self.directions) {
            let gv = self.tape.mul(g, v)?;
            let s = self.tape.sum(gv)?;
            dot = Some(match dot {
                Some(d) => self.tape.add(d, s)?,
                None => s,
            });
        }
        let dot = dot.expect("the network has parameters");
        self.tape.backward(dot)?;
        Ok(())
    }
}
