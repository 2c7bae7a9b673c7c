//! Higher-order gradients on the handle API: [`Var::record_grad`] and [`Var::hvp`], the
//! [`Tape`](crate::Tape) methods of those names through handles.

use wengert_ops::{Float, Result};

use crate::{NodeId, Var};

impl<'g, E: Float> Var<'g, E> {
    /// The gradient of this node (summed, if it is not a scalar) with respect to each of `wrt`,
    /// recorded as nodes that can be differentiated again: see
    /// [`Tape::record_grad`](crate::Tape::record_grad).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Graph;
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// // a gradient penalty: loss + |∂loss/∂x|²
    /// let g = Graph::<f64>::new();
    /// let x = g.input(array![[1.0, -2.0]])?.retain_grad()?;
    /// let w = g.parameter(array![[3.0], [4.0]])?;
    /// let loss = x.matmul(&w)?.tanh()?.sum()?;
    /// let dx = loss.record_grad(&[x])?[0];
    /// let total = loss.add(&dx.square()?.sum()?)?;
    /// let grads = total.backward()?;
    /// assert_eq!(grads[&w].len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn record_grad(&self, wrt: &[Var<'g, E>]) -> Result<Vec<Var<'g, E>>> {
        let ids: Vec<NodeId> = wrt.iter().map(Var::id).collect();
        let grads = self.graph().tape_mut()?.record_grad(self.id(), &ids)?;
        self.wrap(grads)
    }

    /// The Hessian-vector products of this scalar with respect to `wrt` along `v` (one node of
    /// the same shape per entry of `wrt`), recorded: see [`Tape::hvp`](crate::Tape::hvp).
    pub fn hvp(&self, wrt: &[Var<'g, E>], v: &[Var<'g, E>]) -> Result<Vec<Var<'g, E>>> {
        let wrt: Vec<NodeId> = wrt.iter().map(Var::id).collect();
        let v: Vec<NodeId> = v.iter().map(Var::id).collect();
        let products = self.graph().tape_mut()?.hvp(self.id(), &wrt, &v)?;
        self.wrap(products)
    }

    fn wrap(&self, ids: Vec<NodeId>) -> Result<Vec<Var<'g, E>>> {
        ids.into_iter().map(|id| self.graph().var(id)).collect()
    }
}
