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

use std::ops::Range;

use wengert_ops::Float;

use crate::{Error, Result};

/// What an overlapped step's sweep calls as the gradient's buckets become final on this
/// process (see [`GradientReducer::all_reduce_overlapped`]).
pub trait BucketSink<E> {
    /// Bucket `index` is final: `sums` holds this process's partial sums over its range.
    fn ready(&mut self, index: usize, sums: &[E]) -> Result<()>;

    /// Lets the exchanges under way progress; the sweep calls it often (after every
    /// parameter), so a transport that only moves data inside its own calls keeps moving.
    fn progress(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The sweep of an overlapped step: runs the backward sweeps of this process's micro-batches,
/// hands every bucket to the sink exactly once, and fills the `f64` totals.
pub type Sweep<'s, E> = dyn FnMut(&mut dyn BucketSink<E>, &mut [f64]) -> Result<()> + 's;

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

    /// The same reduction, started bucket by bucket while `sweep` runs (PyTorch DDP's
    /// overlap): `buckets` cut the flattened gradient into contiguous ranges, `sweep` hands
    /// each one's partial sums to the sink as soon as they are final and fills `stats`; on
    /// return `grads` holds the sums over all processes, `stats` the totals. Every element must
    /// be summed exactly as [`all_reduce`](GradientReducer::all_reduce) sums it, so the bits do
    /// not depend on the buckets.
    ///
    /// The default collects the buckets, then calls `all_reduce` once after the sweep: right
    /// for a transport without non-blocking exchanges.
    fn all_reduce_overlapped(
        &mut self,
        buckets: &[Range<usize>],
        grads: &mut [E],
        stats: &mut [f64],
        sweep: &mut Sweep<'_, E>,
    ) -> Result<()> {
        let mut collect = Collect {
            buckets,
            grads: &mut *grads,
            seen: vec![false; buckets.len()],
        };
        sweep(&mut collect, stats)?;
        collect.check()?;
        self.all_reduce(grads, stats)
    }
}

/// The sink of the default overlapped reduction: copies each bucket into place.
struct Collect<'c, E> {
    buckets: &'c [Range<usize>],
    grads: &'c mut [E],
    seen: Vec<bool>,
}

impl<E: Copy> Collect<'_, E> {
    fn check(&self) -> Result<()> {
        match self.seen.iter().position(|&s| !s) {
            Some(b) => Err(unfinished(b)),
            None => Ok(()),
        }
    }
}

impl<E: Copy> BucketSink<E> for Collect<'_, E> {
    fn ready(&mut self, index: usize, sums: &[E]) -> Result<()> {
        let range = check_bucket(self.buckets, &mut self.seen, index, sums.len())?;
        self.grads[range].copy_from_slice(sums);
        Ok(())
    }
}

/// Checks that bucket `index` exists, has `len` elements and is handed over once; its range.
pub(crate) fn check_bucket(
    buckets: &[Range<usize>],
    seen: &mut [bool],
    index: usize,
    len: usize,
) -> Result<Range<usize>> {
    let Some(range) = buckets.get(index) else {
        return Err(Error::Distributed(format!(
            "bucket {index} handed over, of {}",
            buckets.len()
        )));
    };
    if range.len() != len || seen[index] {
        return Err(Error::Distributed(format!(
            "bucket {index} handed over twice or with {len} elements, not {}",
            range.len()
        )));
    }
    seen[index] = true;
    Ok(range.clone())
}

/// The error of a sweep that returned without handing over bucket `index`.
pub(crate) fn unfinished(index: usize) -> Error {
    Error::Distributed(format!(
        "the sweep ended without handing over bucket {index}"
    ))
}

/// Cuts the gradients of parameters of `sizes` elements (flattened in this order) into
/// buckets of at least `bucket_elements` elements each (the last parameters' bucket may be
/// smaller), from the last parameter down: the order in which a reverse sweep over a network
/// recorded layer by layer finishes them. Each bucket is a whole number of parameters;
/// returns the buckets' ranges and, for each parameter, its bucket.
pub fn plan_buckets(sizes: &[usize], bucket_elements: usize) -> (Vec<Range<usize>>, Vec<usize>) {
    let total: usize = sizes.iter().sum();
    let mut buckets = Vec::new();
    let mut of_param = vec![0; sizes.len()];
    let mut end = total;
    let mut start = total;
    for (k, &n) in sizes.iter().enumerate().rev() {
        start -= n;
        of_param[k] = buckets.len();
        if end - start >= bucket_elements.max(1) {
            buckets.push(start..end);
            end = start;
        }
    }
    if end > 0 {
        // The first parameters' remainder.
        buckets.push(0..end);
    }
    (buckets, of_param)
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

/// Computes micro-batch `j`'s weighted gradient into [`Spine::leaf`] and its totals.
pub(crate) type Leaf<'l, E> =
    dyn FnMut(usize, &mut Spine<'_, E>, &mut [f64; STATS]) -> Result<()> + 'l;

/// The buffers a leaf of the tree writes: its own, and for the last leaf of a
/// [deferred](TreeSum::sum_deferring_last) sum the levels above it, which the leaf folds in
/// itself, range by range, as its gradient becomes final.
pub(crate) struct Spine<'s, E> {
    /// Levels `0..=d` of the tree, the leaf's buffer last.
    levels: &'s mut [Vec<E>],
    deferred: bool,
}

impl<E: Float> Spine<'_, E> {
    /// The leaf's gradient buffer.
    pub(crate) fn leaf(&mut self) -> &mut [E] {
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// Whether this is the last leaf of a deferred sum: then the leaf must
    /// [`finish`](Spine::finish) every element itself.
    pub(crate) fn deferred(&self) -> bool {
        self.deferred
    }

    /// Adds up `range` of the leaf's gradient along the tree's right spine, with the very
    /// additions the tree would make after the leaf, deepest first; returns the sums over the
    /// whole tree for that range.
    pub(crate) fn finish(&mut self, range: Range<usize>) -> &[E] {
        for d in (1..self.levels.len()).rev() {
            let (lower, upper) = self.levels.split_at_mut(d);
            add_into(&mut lower[d - 1][range.clone()], &upper[0][range.clone()]);
        }
        &self.levels[0][range]
    }
}

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
        self.sum_with(len, lo, hi, false, leaf)
    }

    /// [`sum`](TreeSum::sum), leaving the gradient additions after the last leaf to that leaf
    /// ([`Spine::finish`]), so that it can finish part of the gradient while computing the rest.
    pub(crate) fn sum_deferring_last(
        &mut self,
        len: usize,
        lo: usize,
        hi: usize,
        leaf: &mut Leaf<'_, E>,
    ) -> Result<()> {
        self.sum_with(len, lo, hi, true, leaf)
    }

    fn sum_with(
        &mut self,
        len: usize,
        lo: usize,
        hi: usize,
        defer: bool,
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
        self.node(lo, hi, 0, defer, leaf)
    }

    /// Sums `[lo, hi)` into level `level`; `spine`: the node is on the right spine of a
    /// deferred sum, whose gradient additions its last leaf makes.
    fn node(
        &mut self,
        lo: usize,
        hi: usize,
        level: usize,
        spine: bool,
        leaf: &mut Leaf<'_, E>,
    ) -> Result<()> {
        if hi - lo == 1 {
            let mut target = Spine {
                levels: if spine {
                    &mut self.levels[..=level]
                } else {
                    &mut self.levels[level..=level]
                },
                deferred: spine,
            };
            return leaf(lo, &mut target, &mut self.stats[level]);
        }
        let mid = lo + (hi - lo) / 2;
        self.node(lo, mid, level, false, leaf)?;
        self.node(mid, hi, level + 1, spine, leaf)?;
        if !spine {
            let (lower, upper) = self.levels.split_at_mut(level + 1);
            add_into(&mut lower[level], &upper[0]);
        }
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
            g.leaf()[0] = values[j];
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
    fn buckets_hold_whole_parameters_from_the_last_one_down() {
        // Sizes 6, 2, 4, 3: from the end, 3+4 ≥ 5, then 2+6.
        let (ranges, of) = plan_buckets(&[6, 2, 4, 3], 5);
        assert_eq!(ranges, [8..15, 0..8]);
        assert_eq!(of, [1, 1, 0, 0]);
        // One element each: every parameter its own bucket.
        let (ranges, of) = plan_buckets(&[6, 2, 4, 3], 1);
        assert_eq!(ranges, [12..15, 8..12, 6..8, 0..6]);
        assert_eq!(of, [3, 2, 1, 0]);
        // Larger than everything: one bucket.
        let (ranges, of) = plan_buckets(&[6, 2, 4, 3], 1 << 20);
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0], 0..15);
        assert_eq!(of, [0; 4]);
    }

    #[test]
    fn a_deferred_sum_finished_range_by_range_is_the_plain_sum() {
        let value =
            |j: usize, i: usize| 1.0 + ((j * 7 + i) as f32).sin() * 1e-3 * 3f32.powi(i as i32 % 5);
        for (lo, hi) in [(0, 1), (0, 5), (3, 7), (4, 8)] {
            let mut plain = TreeSum::<f32>::default();
            plain
                .sum(6, lo, hi, &mut |j, g, s| {
                    assert!(!g.deferred());
                    for (i, x) in g.leaf().iter_mut().enumerate() {
                        *x = value(j, i);
                    }
                    *s = [j as f64, 1.0];
                    Ok(())
                })
                .unwrap();
            let mut deferred = TreeSum::<f32>::default();
            let mut finished = vec![0.0; 6];
            deferred
                .sum_deferring_last(6, lo, hi, &mut |j, g, s| {
                    assert_eq!(g.deferred(), j == hi - 1);
                    for (i, x) in g.leaf().iter_mut().enumerate() {
                        *x = value(j, i);
                    }
                    *s = [j as f64, 1.0];
                    if g.deferred() {
                        for r in [4..6, 0..1, 1..4] {
                            finished[r.clone()].copy_from_slice(g.finish(r));
                        }
                    }
                    Ok(())
                })
                .unwrap();
            let (want, want_stats) = plain.result();
            let want_stats = *want_stats;
            assert_eq!(deferred.result().0, &*want);
            assert_eq!(finished, want);
            assert_eq!(*deferred.result().1, want_stats);
        }
    }

    #[test]
    fn the_default_overlapped_reduction_collects_every_bucket_once() {
        let buckets = [3..5, 0..3];
        let mut grads = [0.0f32; 5];
        let mut stats = [0.0; 2];
        GradientReducer::<f32>::all_reduce_overlapped(
            &mut LocalReducer,
            &buckets,
            &mut grads,
            &mut stats,
            &mut |sink, stats| {
                sink.ready(0, &[4.0, 5.0])?;
                sink.progress()?;
                sink.ready(1, &[1.0, 2.0, 3.0])?;
                stats[0] = 7.0;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(grads, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(stats, [7.0, 0.0]);
        // A bucket twice, of the wrong size, or missing: refused.
        for deliver in [&[0, 0][..], &[2], &[0]] {
            let result = GradientReducer::<f32>::all_reduce_overlapped(
                &mut LocalReducer,
                &buckets,
                &mut grads,
                &mut stats,
                &mut |sink, _| {
                    for &b in deliver {
                        sink.ready(b, &[0.0; 2])?;
                    }
                    Ok(())
                },
            );
            assert!(result.is_err(), "{deliver:?}");
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
