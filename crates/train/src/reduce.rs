//! Gradient accumulation and its reduction across processes: the fixed order in which the
//! gradients of a batch's micro-batches are summed, and the [`GradientReducer`] that carries
//! the partial sums between processes.
//!
//! A global batch of `batch_size` examples is cut into `accumulate` micro-batches of
//! `batch_size / accumulate` examples (the last global batch of an epoch may leave some of them
//! short or empty). Micro-batch `j`'s contribution is its mean-loss gradient times
//! `examples_j / examples_in_batch`, so that the total is the gradient of the batch's mean loss.
//! The contributions are summed over a binary tree of the micro-batch index that does not
//! depend on how many processes share the work: the sum over `[lo, hi)` is the sum over
//! `[lo, mid)` plus the sum over `[mid, hi)`, `mid = lo + (hi - lo) / 2`, down to single
//! micro-batches. With `N` processes (a power of two dividing `accumulate`), process `r` owns
//! micro-batches `[r·K/N, (r+1)·K/N)`, which is exactly a subtree; it sums that subtree, and the
//! reducer combines the `N` subtree sums over the top `log₂ N` levels of the same tree. Every
//! addition is then the same, in the same order, whatever `N`: the weights are bit-identical.

use wengert_ops::Float;

use crate::{Error, Result};

/// Carries the gradient sums of a step between the processes that train one model together.
///
/// The [`Trainer`](crate::Trainer) calls it once per optimiser step, on every process, after
/// each has summed the micro-batches it owns (see the [module docs](self)). An implementation
/// must leave every process with the same bits: the sum over the ranks' tree, that is, for
/// ranks `[lo, hi)` of a power-of-two count, the sum over `[lo, mid)` plus the sum over
/// `[mid, hi)`, `mid = (lo + hi) / 2`, each addition [`add_into`] of the lower half's values and
/// the upper half's. Recursive doubling does exactly that: at level `l` rank `r` swaps its
/// partial sums with rank `r xor 2^l` and both add them, the lower rank's first. Any transport
/// that follows it (MPI in the `mpi` module, with the `mpi` feature, or an embedder's own) gives
/// weights bit-identical to one process accumulating the same micro-batches.
pub trait GradientReducer<E: Float> {
    /// This process's place among the `ranks()`, from 0.
    fn rank(&self) -> usize;

    /// How many processes train together: a power of two.
    fn ranks(&self) -> usize;

    /// Replaces this process's partial sums with the sums over all processes: `grads` (every
    /// parameter's gradient, flattened in parameter order) and `stats` (a few `f64` totals the
    /// trainer keeps beside them: the batch loss and the examples classified right). Called
    /// with slices of the same lengths on every process.
    fn all_reduce(&mut self, grads: &mut [E], stats: &mut [f64]) -> Result<()>;
}

/// The reducer of a process training on its own: one rank, nothing to exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalReducer;

impl<E: Float> GradientReducer<E> for LocalReducer {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn all_reduce(&mut self, _grads: &mut [E], _stats: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

/// One addition of the tree: `lower[i] = lower[i] + upper[i]`, `lower` holding the sum over the
/// lower half of a range. (IEEE addition is commutative, so both partners of a pair get the
/// same bits whichever adds; the order of the levels is what must not change.)
pub fn add_into<T: Copy + std::ops::Add<Output = T>>(lower: &mut [T], upper: &[T]) {
    for (l, &u) in lower.iter_mut().zip(upper) {
        *l = *l + u;
    }
}

/// Checks that `ranks` processes can share `accumulate` micro-batches of a `batch_size` batch
/// along the tree.
pub(crate) fn check_layout(batch_size: usize, accumulate: usize, ranks: usize) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidConfig(m));
    if accumulate == 0 {
        return bad("gradient accumulation needs at least 1 micro-batch per step".into());
    }
    if !batch_size.is_multiple_of(accumulate) {
        return bad(format!(
            "the batch size {batch_size} does not split into {accumulate} equal micro-batches"
        ));
    }
    if ranks == 0 || !ranks.is_power_of_two() {
        return bad(format!(
            "{ranks} processes: data-parallel training needs a power of two (1, 2, 4, ...)"
        ));
    }
    if !accumulate.is_multiple_of(ranks) {
        return bad(format!(
            "{ranks} processes cannot share {accumulate} micro-batches equally: accumulate a \
             multiple of {ranks}"
        ));
    }
    Ok(())
}

/// The buffers of the tree sum, one level per depth, sized once and reused every step.
#[derive(Debug, Default)]
pub(crate) struct TreeSum<E> {
    /// Partial gradient sums, `levels[d]` for the node at depth `d` being summed.
    levels: Vec<Vec<E>>,
    /// The `f64` totals beside them (loss, hits).
    stats: Vec<[f64; STATS]>,
}

/// Computes micro-batch `j`'s weighted gradient and totals into the buffers it is given.
pub(crate) type Leaf<'l, E> = dyn FnMut(usize, &mut [E], &mut [f64; STATS]) -> Result<()> + 'l;

/// The totals carried beside the gradients: the weighted batch loss and the hits.
pub(crate) const STATS: usize = 2;

impl<E: Float> TreeSum<E> {
    /// Sums `leaf(j, grads, stats)` over the micro-batches `[lo, hi)` along the tree; the sum
    /// is left in [`result`](TreeSum::result). `len` is the gradient's length.
    pub(crate) fn sum(
        &mut self,
        len: usize,
        lo: usize,
        hi: usize,
        leaf: &mut Leaf<'_, E>,
    ) -> Result<()> {
        let depth = depth(hi - lo);
        if self.levels.len() < depth {
            self.levels.resize_with(depth, Vec::new);
            self.stats.resize(depth, [0.0; STATS]);
        }
        for level in &mut self.levels {
            if level.len() != len {
                level.clear();
                level.resize(len, E::zero());
            }
        }
        self.node(lo, hi, 0, leaf)
    }

    fn node(&mut self, lo: usize, hi: usize, level: usize, leaf: &mut Leaf<'_, E>) -> Result<()> {
        if hi - lo == 1 {
            return leaf(lo, &mut self.levels[level], &mut self.stats[level]);
        }
        let mid = lo + (hi - lo) / 2;
        self.node(lo, mid, level, leaf)?;
        self.node(mid, hi, level + 1, leaf)?;
        let (lower, upper) = self.levels.split_at_mut(level + 1);
        add_into(&mut lower[level], &upper[0]);
        let (lower, upper) = self.stats.split_at_mut(level + 1);
        add_into(&mut lower[level], &upper[0]);
        Ok(())
    }

    /// The gradient sum and the totals of the last [`sum`](TreeSum::sum).
    pub(crate) fn result(&mut self) -> (&mut [E], &mut [f64; STATS]) {
        (&mut self.levels[0], &mut self.stats[0])
    }
}

/// The levels of buffers a tree over `leaves` needs: the right spine is the deepest.
fn depth(leaves: usize) -> usize {
    let mut depth = 1;
    let mut n = leaves;
    while n > 1 {
        n -= n / 2;
        depth += 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree sum of `values[lo..hi]`, written out recursively.
    fn reference(values: &[f32], lo: usize, hi: usize) -> f32 {
        if hi - lo == 1 {
            return values[lo];
        }
        let mid = lo + (hi - lo) / 2;
        reference(values, lo, mid) + reference(values, mid, hi)
    }

    fn tree(values: &[f32], lo: usize, hi: usize) -> f32 {
        let mut sum = TreeSum::<f32>::default();
        sum.sum(1, lo, hi, &mut |j, g, s| {
            g[0] = values[j];
            *s = [1.0, 0.0];
            Ok(())
        })
        .unwrap();
        let (g, s) = sum.result();
        assert_eq!(s[0], (hi - lo) as f64);
        g[0]
    }

    #[test]
    fn the_tree_sum_follows_the_midpoint_tree() {
        // Values whose sum depends on the order.
        let values: Vec<f32> = (0..37)
            .map(|i| (i as f32 * 0.37).sin() * 10f32.powi(i % 7 - 3))
            .collect();
        for k in 1..=values.len() {
            assert_eq!(
                tree(&values, 0, k).to_bits(),
                reference(&values, 0, k).to_bits()
            );
        }
    }

    #[test]
    fn subtrees_of_ranks_combine_to_the_whole_tree() {
        let values: Vec<f32> = (0..24)
            .map(|i| 1.0 + (i as f32) * 1e-7 * 3f32.powi(i % 5))
            .collect();
        for k in [4, 8, 12, 24] {
            let whole = tree(&values, 0, k);
            for ranks in [1, 2, 4] {
                check_layout(k, k, ranks).unwrap();
                // Recursive doubling over the ranks' subtree sums.
                let mut partial: Vec<f32> = (0..ranks)
                    .map(|r| tree(&values, r * k / ranks, (r + 1) * k / ranks))
                    .collect();
                let mut step = 1;
                while step < ranks {
                    let before = partial.clone();
                    for (r, p) in partial.iter_mut().enumerate() {
                        let (lo, hi) = if r & step == 0 {
                            (r, r ^ step)
                        } else {
                            (r ^ step, r)
                        };
                        *p = before[lo] + before[hi];
                    }
                    step *= 2;
                }
                assert!(
                    partial.iter().all(|p| p.to_bits() == whole.to_bits()),
                    "k {k}, {ranks} ranks"
                );
            }
        }
    }

    #[test]
    fn layouts_that_break_the_tree_are_refused() {
        assert!(check_layout(32, 0, 1).is_err());
        assert!(check_layout(30, 4, 1).is_err());
        assert!(check_layout(24, 6, 3).is_err());
        assert!(check_layout(24, 6, 4).is_err());
        assert!(check_layout(32, 8, 4).is_ok());
    }
}
