//! [`Tape::backward_folding`]: a sweep that applies an optimiser's step to the parameters
//! whose gradient is one matrix product, inside that product.
//!
//! A weight `W` used once, as a factor of a `matmul` or `linear`, gets its whole gradient from
//! one product (`xᵀ·dy`). When the optimiser's update is `W ← keep·W + step·∇W` (plain SGD),
//! that product can write `keep·W + step·(xᵀ·dy)` straight into `W`'s value: no gradient buffer
//! is written, and no pass over `W` follows the sweep. The product runs after every other
//! input of the same node has been served (they read the old `W`), and since `W` has no other
//! consumer, nothing later in the sweep reads it.

use wengert_ops::{Float, FoldedUpdate, Result};

use crate::node::{NodeKind, grad_bit};
use crate::tape::inputs_of;
use crate::{Gradients, NodeId, Tape};

impl<E: Float> Tape<E> {
    /// [`backward`](Tape::backward), folding parameters' updates into the sweep where it can:
    /// `fold` is asked, for each parameter whose gradient is one matrix product (a factor of
    /// exactly one `matmul` or `linear` up to `loss`, used once), whether its update is a
    /// [`FoldedUpdate`] (given the parameter's position in [`parameters`](Tape::parameters)
    /// and its id). For each `Some`, when the sweep reaches that product it writes
    /// `keep·value + step·gradient` into the parameter's value instead of computing the
    /// gradient, and the tape keeps no gradient for it. At most one factor of a product folds
    /// (the other needs the old value).
    ///
    /// Every other parameter's gradient is left as `backward` leaves it, for
    /// [`update_parameters`](Tape::update_parameters), which visits only those: among them a
    /// parameter `fold` said `Some` for whose product the sweep never reached (the loss does
    /// not depend on it), with a zero gradient, so that the same update applied there gives the
    /// same result. The updated values agree with `backward` followed by the same update to
    /// rounding: the product adds the step to the value once per block of its inner
    /// dimension (the batch, for a weight; blocks of at most 512 steps for `f32`, 256 for
    /// `f64`), rounding each time, where the update after
    /// `backward` rounds once. They are bit-identical for any number of threads.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::{FoldedUpdate, Tape};
    ///
    /// # fn main() -> wengert_tape::Result<()> {
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(array![[0.5], [-1.0]])?;
    /// let b = tape.parameter(array![0.25])?;
    /// let x = tape.input(array![[1.0, 2.0]])?;
    /// let y = tape.linear(x, w, b)?; // [[-1.25]]
    /// let loss = tape.sum(y)?;
    /// tape.backward_folding(loss, |_, _| Some(FoldedUpdate::sgd(0.5)))?;
    /// // w took its step inside the product: w - 0.5·xᵀ
    /// assert_eq!(tape.value(w)?, array![[0.0], [-2.0]].into_dyn());
    /// assert!(tape.grad(w).is_none());
    /// // b's gradient is a sum, not a product: it is left for the optimiser.
    /// tape.update_parameters(|_, _, value, grad| {
    ///     value[0] -= 0.5 * grad[0];
    ///     Ok::<(), wengert_tape::Error>(())
    /// })?;
    /// assert_eq!(tape.value(b)?, array![-0.25].into_dyn());
    /// # Ok(())
    /// # }
    /// ```
    pub fn backward_folding(
        &mut self,
        loss: NodeId,
        mut fold: impl FnMut(usize, NodeId) -> Option<FoldedUpdate<E>>,
    ) -> Result<Gradients<'_, E>> {
        self.check_loss(loss)?;
        let mut folds = std::mem::take(&mut self.folds);
        folds.plan(self, loss.index(), &mut fold);
        self.sweep(loss, |seed| seed.fill(E::one()), &mut (), &mut folds);
        self.folds = folds;
        Ok(Gradients { tape: self })
    }
}

/// One update the sweep folds: at node `consumer`, input `operand` (parameter node `param`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned<E> {
    pub consumer: usize,
    pub operand: usize,
    pub param: usize,
    pub update: FoldedUpdate<E>,
}

/// How a node is used up to the output: by how many inputs of later nodes, the last of them.
#[derive(Debug, Clone, Copy, Default)]
struct Use {
    count: u32,
    consumer: u32,
    operand: u32,
    /// A fold is planned at this node (as a consumer): it takes no second one.
    folds_here: bool,
    /// This node is a parameter whose update this sweep folded.
    folded: bool,
}

/// The plan of a folding sweep, kept on the tape so that a training step allocates nothing.
#[derive(Debug)]
pub(crate) struct FoldPlan<E> {
    uses: Vec<Use>,
    /// Ascending by consumer; the sweep takes them from the end.
    plan: Vec<Planned<E>>,
}

impl<E> Default for FoldPlan<E> {
    fn default() -> Self {
        FoldPlan {
            uses: Vec::new(),
            plan: Vec::new(),
        }
    }
}

impl<E: Float> FoldPlan<E> {
    /// Finds the parameters up to node `out` that can fold, and asks `fold` about each.
    fn plan(
        &mut self,
        tape: &Tape<E>,
        out: usize,
        fold: &mut impl FnMut(usize, NodeId) -> Option<FoldedUpdate<E>>,
    ) {
        self.plan.clear();
        self.uses.clear();
        self.uses.resize(out + 1, Use::default());
        let nodes = &tape.nodes[..=out];
        for (c, node) in nodes.iter().enumerate() {
            for (k, j) in inputs_of(&tape.listed_inputs, node).iter().enumerate() {
                let used = &mut self.uses[j.index()];
                used.count = used.count.saturating_add(1);
                // `c` and `k` fit: node ids and input counts are u32.
                (used.consumer, used.operand) = (c as u32, k as u32);
            }
        }
        for (position, &p) in tape.params.iter().enumerate() {
            // A parameter recorded after the output, or used other than once, does not fold.
            let Some(&used) = self.uses.get(p.index()).filter(|used| used.count == 1) else {
                continue;
            };
            let (c, k) = (used.consumer as usize, used.operand as usize);
            let consumer = &nodes[c];
            let foldable = matches!(consumer.kind, NodeKind::Op(op) if op.folds_update_of(k))
                && consumer.grad_inputs & grad_bit(k) != 0
                && !self.uses[c].folds_here;
            if !foldable {
                continue;
            }
            if let Some(update) = fold(position, p) {
                self.uses[c].folds_here = true;
                self.plan.push(Planned {
                    consumer: c,
                    operand: k,
                    param: p.index(),
                    update,
                });
            }
        }
        self.plan.sort_unstable_by_key(|planned| planned.consumer);
    }
}

/// What the sweep folds: nothing for a plain sweep (`()`, compiled away).
pub(crate) trait Folds<E> {
    /// The fold planned at node `i`, which the sweep has just reached, marked as done.
    fn at(&mut self, i: usize) -> Option<Planned<E>>;
    /// Whether this sweep folded parameter node `j`'s update (it then has no gradient).
    fn folded(&self, j: usize) -> bool;
}

impl<E> Folds<E> for () {
    #[inline(always)]
    fn at(&mut self, _: usize) -> Option<Planned<E>> {
        None
    }

    #[inline(always)]
    fn folded(&self, _: usize) -> bool {
        false
    }
}

impl<E: Float> Folds<E> for FoldPlan<E> {
    #[inline]
    fn at(&mut self, i: usize) -> Option<Planned<E>> {
        // The sweep visits nodes in descending order, and every planned consumer is reached
        // or skipped on the way: drop those skipped (their parameters got no gradient).
        while let Some(&last) = self.plan.last() {
            if last.consumer < i {
                return None;
            }
            self.plan.pop();
            if last.consumer == i {
                self.uses[last.param].folded = true;
                return Some(last);
            }
        }
        None
    }

    #[inline]
    fn folded(&self, j: usize) -> bool {
        self.uses.get(j).is_some_and(|used| used.folded)
    }
}
