//! The recorded VJPs of the ops past the elementwise ones, sums, matmul and the classic losses:
//! reductions, softmax along an axis, the losses with a reduction, the shape and indexing ops,
//! batched matmul and dropout. Each is the formula the first-order rule in `wengert_ops`
//! implements (quoted above it), written with tape ops, so that it is itself differentiable;
//! masks are the comparison ops, whose own gradient is zero.
//!
//! Every constant a rule needs (ones, a one-hot, a bound to compare with) is built from nodes
//! already on the tape (`x⁰` of a detached node, a `scatter_add` of the labels), never fed as
//! an input, so that a tape holding recorded gradients saves and replays like any other.

use wengert_ops::{
    CrossEntropyOptions, Distance, Float, LossOp, ReduceOp, Reduction, Result, SliceAxis, Targets,
};

use crate::{NodeId, Tape};

/// The class axis of a class loss's input of rank `rank`: 1, or 0 for a vector (PyTorch's).
fn class_axis(rank: usize) -> usize {
    usize::from(rank >= 2)
}

impl<E: Float> Tape<E> {
    /// `c` in `x`'s shape, following `x` on a replay.
    pub(crate) fn fill_like(&mut self, x: NodeId, c: f64) -> Result<NodeId> {
        let ones = self.ones_like(x)?;
        if c == 1.0 {
            return Ok(ones);
        }
        self.mul_scalar(ones, E::from_f64(c))
    }

    /// A lane's value `v` of a reduction of `x` along `axis` (all elements for `None`) in the
    /// keep-dim shape, so that it broadcasts against `x`.
    fn kept(
        &mut self,
        v: NodeId,
        x: NodeId,
        axis: Option<usize>,
        keep_dim: bool,
    ) -> Result<NodeId> {
        match axis {
            Some(a) if !keep_dim => {
                let mut dims = self.node_shape(x).dims().to_vec();
                dims[a] = 1;
                self.reshape(v, &dims)
            }
            // A scalar broadcasts against any shape.
            _ => Ok(v),
        }
    }

    /// The sums of `v` over each lane, kept (a scalar over all elements).
    fn lane_sum(&mut self, v: NodeId, axis: Option<usize>) -> Result<NodeId> {
        match axis {
            Some(a) => self.sum_axis_keepdim(v, a),
            None => self.sum(v),
        }
    }

    /// The number of elements of a lane of `x`.
    fn lane_len(&self, x: NodeId, axis: Option<usize>) -> usize {
        let shape = self.node_shape(x);
        axis.map_or(shape.numel(), |a| shape.dims()[a])
    }

    /// `v` with its zeros replaced by ones (a divisor whose zeros divide a zero numerator).
    fn zeros_to_ones(&mut self, v: NodeId) -> Result<NodeId> {
        let zero = self.zeros_like(v)?;
        let is_zero = self.eq(v, zero)?;
        self.add(v, is_zero)
    }

    /// The recorded VJP of a reduction `here = op(x)` with gradient `g`; `None` for the
    /// positions, which have no gradient.
    pub(crate) fn reduce_vjp(
        &mut self,
        op: ReduceOp,
        axis: Option<usize>,
        keep_dim: bool,
        (x, here, g): (NodeId, NodeId, NodeId),
    ) -> Result<Option<NodeId>> {
        let gk = self.kept(g, x, axis, keep_dim)?;
        let yk = self.kept(here, x, axis, keep_dim)?;
        let share = match op {
            // y = amax x: dx = dy·[x = y] / #{x = y}
            ReduceOp::Amax | ReduceOp::Amin => {
                let hit = self.eq(x, yk)?;
                let count = self.lane_sum(hit, axis)?;
                let share = self.mul(hit, gk)?;
                self.div(share, count)?
            }
            // y = x[first argmax]: dx = dy there, 0 elsewhere
            ReduceOp::MaxAt | ReduceOp::MinAt => {
                let arg = if op == ReduceOp::MaxAt {
                    ReduceOp::ArgMax
                } else {
                    ReduceOp::ArgMin
                };
                self.first_extreme_vjp(arg, axis, x, gk)?
            }
            // positions: no gradient
            ReduceOp::ArgMax | ReduceOp::ArgMin => return Ok(None),
            // y = ln Σ eˣ: dx = dy·e^(x - y)
            ReduceOp::LogSumExp => {
                let centred = self.sub(x, yk)?;
                let p = self.exp(centred)?;
                self.mul(p, gk)?
            }
            ReduceOp::Prod => self.prod_vjp(axis, x, gk)?,
            // y = Σ (x - m)² / (N - c): dx = dy·2(x - m) / (N - c)
            ReduceOp::Var(c) => {
                let dev = self.deviation(x, axis)?;
                let scale = 2.0 / (self.lane_len(x, axis) as f64 - c);
                let d = self.mul(dev, gk)?;
                self.mul_scalar(d, E::from_f64(scale))?
            }
            // y = √var: dx = dy·(x - m) / ((N - c)·y), 0 where y = 0 (where x - m = 0 too)
            ReduceOp::Std(c) => {
                let dev = self.deviation(x, axis)?;
                let y = self.zeros_to_ones(yk)?;
                let d = self.mul(dev, gk)?;
                let d = self.div(d, y)?;
                let scale = 1.0 / (self.lane_len(x, axis) as f64 - c);
                self.mul_scalar(d, E::from_f64(scale))?
            }
            // y = √Σ x²: dx = dy·x / y, 0 where y = 0 (where x = 0 too)
            ReduceOp::Norm => {
                let y = self.zeros_to_ones(yk)?;
                let d = self.mul(x, gk)?;
                self.div(d, y)?
            }
        };
        // Over all elements without keep_dim the share is still `x`'s shape: every factor is.
        Ok(Some(self.broadcast_to_like(share, x)?))
    }

    /// `share` in `x`'s shape (it is, unless every factor of a rule was a lane value).
    fn broadcast_to_like(&mut self, share: NodeId, x: NodeId) -> Result<NodeId> {
        if self.node_shape(share) == self.node_shape(x) {
            return Ok(share);
        }
        self.broadcast_like(share, x)
    }

    /// `x - mean(x)` along each lane.
    fn deviation(&mut self, x: NodeId, axis: Option<usize>) -> Result<NodeId> {
        let m = match axis {
            Some(a) => self.mean_axis_keepdim(x, a)?,
            None => self.mean(x)?,
        };
        self.sub(x, m)
    }

    /// `dy` (kept) sent to each lane's first extreme: a `scatter_add` at the positions `arg`
    /// gives, so the positions follow `x` on a replay.
    fn first_extreme_vjp(
        &mut self,
        arg: ReduceOp,
        axis: Option<usize>,
        x: NodeId,
        gk: NodeId,
    ) -> Result<NodeId> {
        let shape = self.node_shape(x);
        match axis {
            Some(a) => {
                let at = self.record(
                    wengert_ops::Op::Reduce {
                        op: arg,
                        axis,
                        keep_dim: true,
                    },
                    &[x],
                )?;
                self.scatter_add(gk, at, a, shape.dims()[a])
            }
            None => {
                let n = shape.numel();
                let at = self.record(
                    wengert_ops::Op::Reduce {
                        op: arg,
                        axis: None,
                        keep_dim: false,
                    },
                    &[x],
                )?;
                let at = self.reshape(at, &[1])?;
                let g1 = self.reshape(gk, &[1])?;
                let flat = self.scatter_add(g1, at, 0, n)?;
                self.reshape(flat, shape.dims())
            }
        }
    }

    /// y = Π x: dx_i = dy·Π_{j≠i} x_j, without dividing by zero. With `z` the zeros of a lane
    /// and `x' = x·(1 - z) + z` (its zeros made ones), `P = Π x'`:
    /// - no zero: `dy·P / x_i`;
    /// - one zero: `dy·P` at it, and `dy·P·s / x_i` elsewhere, with `s = Σ x·z` (0, but with
    ///   derivative 1 in the zero, so that the mixed second derivatives are right);
    /// - two or more: 0 (exact; the second derivative between two zeros is then 0, not the
    ///   product of the rest, a measure-zero set where this rule is not twice exact).
    fn prod_vjp(&mut self, axis: Option<usize>, x: NodeId, gk: NodeId) -> Result<NodeId> {
        let zero = self.zeros_like(x)?;
        let z = self.eq(x, zero)?;
        let not_z = self.neg(z)?;
        let not_z = self.add_scalar(not_z, E::one())?;
        // x' = x·(1 - z) + z: no gradient flows into a zero through it (P does not depend on
        // the zero it leaves out).
        let kept = self.mul(x, not_z)?;
        let x1 = self.add(kept, z)?;
        let p = self.record(
            wengert_ops::Op::Reduce {
                op: ReduceOp::Prod,
                axis,
                keep_dim: true,
            },
            &[x1],
        )?;
        let nz = self.lane_sum(z, axis)?;
        let xz = self.mul(x, z)?;
        let s = self.lane_sum(xz, axis)?;
        let none_zero = {
            let zero = self.zeros_like(nz)?;
            self.eq(nz, zero)?
        };
        let at_most_one = {
            let one = self.ones_like(nz)?;
            self.le(nz, one)?
        };
        // factor = z + (1 - z)·(s + [no zero]) / x'
        let off = self.add(s, none_zero)?;
        let off = self.div(off, x1)?;
        let off = self.mul(not_z, off)?;
        let factor = self.add(z, off)?;
        let d = self.mul(factor, p)?;
        let d = self.mul(d, at_most_one)?;
        self.mul(d, gk)
    }

    /// y = softmax x along `axis`: dx = y·(dy - Σ dy·y)
    pub(crate) fn softmax_axis_vjp(
        &mut self,
        axis: usize,
        here: NodeId,
        g: NodeId,
    ) -> Result<NodeId> {
        let gy = self.mul(g, here)?;
        let s = self.sum_axis_keepdim(gy, axis)?;
        let centred = self.sub(g, s)?;
        self.mul(here, centred)
    }

    /// y = log_softmax x along `axis`: dx = dy - e^y·Σ dy
    pub(crate) fn log_softmax_axis_vjp(
        &mut self,
        axis: usize,
        here: NodeId,
        g: NodeId,
    ) -> Result<NodeId> {
        let p = self.exp(here)?;
        let s = self.sum_axis_keepdim(g, axis)?;
        let ps = self.mul(p, s)?;
        self.sub(g, ps)
    }

    /// The gradient of each term of a loss of `x`'s shape (a distance, binary cross-entropy):
    /// `dy / n`, `dy`, or `dy` itself per term, in `x`'s shape.
    fn term_grads(&mut self, g: NodeId, reduction: Reduction, x: NodeId) -> Result<NodeId> {
        match reduction {
            Reduction::Mean => {
                let n = self.node_shape(x).numel();
                let d = self.broadcast_like(g, x)?;
                self.mul_scalar(d, E::from_usize(n).recip())
            }
            Reduction::Sum => self.broadcast_like(g, x),
            Reduction::None => Ok(g),
        }
    }

    /// The recorded VJP of a loss through input `k` (0 the prediction, 1 the target); `None`
    /// for class targets, which have no gradient.
    pub(crate) fn loss_vjp(
        &mut self,
        loss: LossOp,
        (x, t): (NodeId, NodeId),
        k: usize,
        g: NodeId,
    ) -> Result<Option<NodeId>> {
        match loss {
            // L = ρ(x - t): dx = dL·ρ'(x - t), dt = -dx
            LossOp::Distance {
                distance,
                reduction,
            } => {
                let d = self.sub(x, t)?;
                let slope = self.distance_slope(distance, d)?;
                let dl = self.term_grads(g, reduction, x)?;
                let dx = self.mul(dl, slope)?;
                Ok(Some(if k == 0 { dx } else { self.neg(dx)? }))
            }
            // L = (1 - t)x + softplus(-x): dx = dL·((1 - t) - σ(-x)), dt = -dL·x
            LossOp::BceWithLogits { reduction } => {
                let dl = self.term_grads(g, reduction, x)?;
                let share = if k == 0 {
                    let nx = self.neg(x)?;
                    let s = self.sigmoid(nx)?;
                    let nt = self.neg(t)?;
                    let keep = self.add_scalar(nt, E::one())?;
                    let d = self.sub(keep, s)?;
                    self.mul(dl, d)?
                } else {
                    let d = self.mul(dl, x)?;
                    self.neg(d)?
                };
                Ok(Some(share))
            }
            // L = -x[t]: dx = -dL at the target; none to the targets
            LossOp::Nll {
                ignore_index,
                reduction,
            } => {
                if k != 0 {
                    return Ok(None);
                }
                let (hot, valid) = self.class_one_hot(x, t, ignore_index)?;
                let dl = self.class_term_grads(g, reduction, x, valid)?;
                let d = self.mul(hot, dl)?;
                Ok(Some(self.neg(d)?))
            }
            LossOp::CrossEntropy(options) => self.cross_entropy_with_vjp(options, (x, t), k, g),
        }
    }

    /// The slope `ρ'(d)` of a distance loss, with the first-order rule's branches as masks.
    fn distance_slope(&mut self, distance: Distance, d: NodeId) -> Result<NodeId> {
        let sign = self.sign(d)?;
        // |d| < β: d/β, else sign(d) (β = 0 is L1)
        // |d| < δ: d, else δ·sign(d)
        let (bound, inner, outer) = match distance {
            Distance::L1 => return Ok(sign),
            Distance::SmoothL1 { beta: 0.0 } => return Ok(sign),
            Distance::SmoothL1 { beta } => {
                (beta, self.mul_scalar(d, E::from_f64(beta.recip()))?, sign)
            }
            Distance::Huber { delta } => (delta, d, self.mul_scalar(sign, E::from_f64(delta))?),
        };
        let size = self.abs(d)?;
        let bound = self.fill_like(d, bound)?;
        let inside = self.lt(size, bound)?;
        self.where_cond(inside, inner, outer)
    }

    /// The one-hot rows of class-index targets `t` of a class loss's input `x`, zero in lanes
    /// whose target is `ignore`, and the mask of the lanes not ignored (`None`: all are).
    /// Built with `scatter_add` from `t` itself, so that it follows the targets on a replay.
    fn class_one_hot(
        &mut self,
        x: NodeId,
        t: NodeId,
        ignore: Option<i64>,
    ) -> Result<(NodeId, Option<NodeId>)> {
        let axis = class_axis(self.node_shape(x).rank());
        let classes = self.node_shape(x).dims()[axis];
        let t = self.detach(t)?;
        let (safe, valid) = match ignore {
            Some(i) => {
                let ignored = self.fill_like(t, i as f64)?;
                let skip = self.eq(t, ignored)?;
                let skip = self.neg(skip)?;
                let valid = self.add_scalar(skip, E::one())?;
                // An ignored target may name no class: position 0 takes its (zero) share.
                (self.mul(t, valid)?, Some(valid))
            }
            None => (t, None),
        };
        let at = self.unsqueeze(safe, axis)?;
        let src = match valid {
            Some(v) => self.unsqueeze(v, axis)?,
            None => self.ones_like(at)?,
        };
        Ok((self.scatter_add(src, at, axis, classes)?, valid))
    }

    /// The gradient of each term of a class loss, broadcastable against its input `x`: a mean
    /// divides by the lanes not ignored (`valid`), or by all lanes.
    fn class_term_grads(
        &mut self,
        g: NodeId,
        reduction: Reduction,
        x: NodeId,
        valid: Option<NodeId>,
    ) -> Result<NodeId> {
        let shape = self.node_shape(x);
        let axis = class_axis(shape.rank());
        match (reduction, valid) {
            (Reduction::Mean, Some(valid)) => {
                let count = self.sum(valid)?;
                // All ignored: every share is 0 (the first-order rule's), not 0/0.
                let count = self.zeros_to_ones(count)?;
                self.div(g, count)
            }
            (Reduction::Mean, None) => {
                let lanes = shape.numel() / shape.dims()[axis];
                self.mul_scalar(g, E::from_usize(lanes).recip())
            }
            (Reduction::Sum, _) => Ok(g),
            (Reduction::None, _) => self.unsqueeze(g, axis),
        }
    }

    /// L = reduce(-Σ_c t'_c·log_softmax(z)_c), t' = (1 - ε)t + ε/C:
    /// dz = dL·(p·Σ t' - t'); probability targets dt = -dL·(1 - ε)·log_softmax(z)
    fn cross_entropy_with_vjp(
        &mut self,
        options: CrossEntropyOptions,
        (z, t): (NodeId, NodeId),
        k: usize,
        g: NodeId,
    ) -> Result<Option<NodeId>> {
        let axis = class_axis(self.node_shape(z).rank());
        let classes = self.node_shape(z).dims()[axis] as f64;
        let eps = options.label_smoothing;
        let (smoothed, total, valid) = match options.targets {
            Targets::Classes => {
                if k != 0 {
                    return Ok(None);
                }
                let (hot, valid) = self.class_one_hot(z, t, options.ignore_index)?;
                let kept = self.mul_scalar(hot, E::from_f64(1.0 - eps))?;
                // Lanes not ignored: t' sums to 1; ignored ones: t' = 0.
                let (smoothed, total) = match valid {
                    Some(v) => {
                        let v = self.unsqueeze(v, axis)?;
                        let spread = self.mul_scalar(v, E::from_f64(eps / classes))?;
                        (self.add(kept, spread)?, Some(v))
                    }
                    None => (self.add_scalar(kept, E::from_f64(eps / classes))?, None),
                };
                (smoothed, total, valid)
            }
            Targets::Probabilities => {
                let kept = self.mul_scalar(t, E::from_f64(1.0 - eps))?;
                let smoothed = self.add_scalar(kept, E::from_f64(eps / classes))?;
                let total = self.sum_axis_keepdim(smoothed, axis)?;
                (smoothed, Some(total), None)
            }
        };
        let dl = self.class_term_grads(g, options.reduction, z, valid)?;
        let share = if k == 0 {
            let p = self.softmax_axis(z, axis)?;
            let pt = match total {
                Some(total) => self.mul(p, total)?,
                None => p,
            };
            let d = self.sub(pt, smoothed)?;
            self.mul(dl, d)?
        } else {
            let lp = self.log_softmax_axis(z, axis)?;
            let d = self.mul(dl, lp)?;
            self.mul_scalar(d, E::from_f64(eps - 1.0))?
        };
        Ok(Some(share))
    }

    /// L = mean_b (lse(z_b) - z_b[label_b]): dz = dL·(softmax(z) - onehot(label)) / batch
    pub(crate) fn cross_entropy_vjp(
        &mut self,
        z: NodeId,
        labels: NodeId,
        g: NodeId,
    ) -> Result<NodeId> {
        let p = self.softmax(z)?;
        let (hot, _) = self.class_one_hot(z, labels, None)?;
        let diff = self.sub(p, hot)?;
        let scaled = self.mul(diff, g)?;
        let batch = E::from_usize(self.node_shape(z).dims()[0]);
        self.mul_scalar(scaled, batch.recip())
    }

    /// y = x[start..start + length] along `axis`: dx = dy padded back with zeros
    pub(crate) fn narrow_vjp(
        &mut self,
        (x, g): (NodeId, NodeId),
        axis: usize,
        start: i64,
        length: usize,
    ) -> Result<NodeId> {
        let len = self.node_shape(x).dims()[axis];
        // Checked when recorded: `start` lies in -len..=len.
        let from = if start < 0 {
            (start + len as i64) as usize
        } else {
            start as usize
        };
        self.pad_axis(g, axis, (from, len - from - length))
    }

    /// `g` padded with zeros on `axis` alone.
    fn pad_axis(&mut self, g: NodeId, axis: usize, pair: (usize, usize)) -> Result<NodeId> {
        let mut pads = vec![(0, 0); self.node_shape(g).rank()];
        pads[axis] = pair;
        self.pad(g, &pads, E::zero())
    }

    /// y = x padded: dx = dy narrowed back to x's place on each padded axis
    pub(crate) fn pad_vjp(
        &mut self,
        (x, g): (NodeId, NodeId),
        pads: &[[u32; 2]],
    ) -> Result<NodeId> {
        let dims = self.node_shape(x).dims().to_vec();
        let mut d = g;
        for (axis, &[before, after]) in pads.iter().enumerate() {
            if before != 0 || after != 0 {
                d = self.narrow(d, axis, i64::from(before), dims[axis])?;
            }
        }
        Ok(d)
    }

    /// y = x[start:end:step] along `axis`: dx = dy at the positions taken, 0 elsewhere. For a
    /// step above 1, each element of `dy` is followed by `step - 1` zeros (a pad on a new axis
    /// after `axis`, then a reshape), then placed with a pad.
    pub(crate) fn slice_vjp(
        &mut self,
        (x, g): (NodeId, NodeId),
        axis: usize,
        range: SliceAxis,
    ) -> Result<Option<NodeId>> {
        let len = self.node_shape(x).dims()[axis];
        let (start, step, count) = range.resolve(len);
        if count == 0 {
            // Nothing taken: the share is zero by construction (`None` in the sweep).
            return Ok(None);
        }
        let (spread, taken) = if step == 1 {
            (g, count)
        } else {
            let mut dims = self.node_shape(g).dims().to_vec();
            let u = self.unsqueeze(g, axis + 1)?;
            let u = self.pad_axis(u, axis + 1, (0, step - 1))?;
            dims[axis] = count * step;
            let u = self.reshape(u, &dims)?;
            // The trailing zeros past the end of x are cut.
            let taken = (count * step).min(len - start);
            (self.narrow(u, axis, 0, taken)?, taken)
        };
        self.pad_axis(spread, axis, (start, len - start - taken))
            .map(Some)
    }

    /// y[.., p, ..] = x[.., idx[p], ..]: dx = index_add(dy, idx)
    pub(crate) fn index_select_vjp(
        &mut self,
        (x, idx, g): (NodeId, NodeId, NodeId),
        axis: usize,
    ) -> Result<NodeId> {
        let len = self.node_shape(x).dims()[axis];
        self.index_add(g, idx, axis, len)
    }

    /// y[p] = table[idx[p]]: dtable = index_add(dy as `[P, dim]`, idx as `[P]`) along the
    /// rows, the positions naming `padding_idx` masked out of dy first
    pub(crate) fn embedding_vjp(
        &mut self,
        (table, idx, g): (NodeId, NodeId, NodeId),
        padding_idx: Option<usize>,
    ) -> Result<NodeId> {
        let t = self.node_shape(table);
        let (num, dim) = (t.dims()[0], t.dims()[1]);
        let positions = self.node_shape(idx).numel();
        let idx = self.reshape(idx, &[positions])?;
        let mut g = self.reshape(g, &[positions, dim])?;
        if let Some(p) = padding_idx {
            let pad = self.fill_like(idx, p as f64)?;
            let hit = self.eq(idx, pad)?;
            let miss = self.neg(hit)?;
            let keep = self.add_scalar(miss, E::one())?;
            let keep = self.reshape(keep, &[positions, 1])?;
            g = self.mul(g, keep)?;
        }
        self.index_add(g, idx, 0, num)
    }

    /// y = x̂·γ + β over rows of the trailing `axes` axes, x̂ = (x - mean)·invstd, ĝ = dy·γ:
    /// dx = invstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)), dγ = Σ_rows dy·x̂, dβ = Σ_rows dy (input `k`:
    /// x, then γ when present, then β)
    pub(crate) fn layer_norm_vjp(
        &mut self,
        (x, gamma, g): (NodeId, Option<NodeId>, NodeId),
        axes: usize,
        eps: f64,
        k: usize,
    ) -> Result<NodeId> {
        let shape = self.node_shape(x);
        let dims = shape.dims();
        let split = dims.len() - axes;
        let rows: usize = dims[..split].iter().product();
        let d: usize = dims[split..].iter().product();
        let xs = self.reshape(x, &[rows, d])?;
        let mean = self.mean_axis_keepdim(xs, 1)?;
        let centred = self.sub(xs, mean)?;
        let sq = self.square(centred)?;
        let var = self.mean_axis_keepdim(sq, 1)?;
        let shifted = self.add_scalar(var, E::from_f64(eps))?;
        let invstd = self.rsqrt(shifted)?;
        let xhat = self.mul(centred, invstd)?;
        let g2 = self.reshape(g, &[rows, d])?;
        match (k, gamma) {
            (0, _) => {
                let gh = match gamma {
                    Some(w) => {
                        let w = self.reshape(w, &[1, d])?;
                        self.mul(g2, w)?
                    }
                    None => g2,
                };
                let mean_gh = self.mean_axis_keepdim(gh, 1)?;
                let ghx = self.mul(gh, xhat)?;
                let mean_ghx = self.mean_axis_keepdim(ghx, 1)?;
                let along = self.mul(xhat, mean_ghx)?;
                let c = self.sub(gh, mean_gh)?;
                let c = self.sub(c, along)?;
                let dx = self.mul(c, invstd)?;
                self.reshape(dx, shape.dims())
            }
            (1, Some(_)) => {
                let p = self.mul(g2, xhat)?;
                let s = self.sum_axis(p, 0)?;
                self.reshape(s, &shape.dims()[split..])
            }
            _ => {
                let s = self.sum_axis(g2, 0)?;
                self.reshape(s, &shape.dims()[split..])
            }
        }
    }

    /// y = x̂·γ + β per channel (axis 1 of x `[N, C, ...]`), x̂ = (x - mean)·invstd over the
    /// channel's m values, ĝ = dy·γ: in training (the batch's mean and biased variance)
    /// dx = invstd·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)), in evaluation (the `running` estimates,
    /// constants) dx = ĝ·invstd; dγ = Σ dy·x̂, dβ = Σ dy (input `k`: x, then γ when present,
    /// then β)
    pub(crate) fn batch_norm_vjp(
        &mut self,
        (x, gamma, g): (NodeId, Option<NodeId>, NodeId),
        running: Option<(NodeId, NodeId)>,
        eps: f64,
        k: usize,
    ) -> Result<NodeId> {
        let shape = self.node_shape(x);
        let dims = shape.dims();
        let (n, c) = (dims[0], dims[1]);
        let inner: usize = dims[2..].iter().product();
        let g3 = self.reshape(g, &[n, c, inner])?;
        // Σ over the batch and the positions: [N, C, L] to [C].
        let per_channel_sum = |tape: &mut Self, v: NodeId| -> Result<NodeId> {
            let s = tape.sum_axis(v, 2)?;
            tape.sum_axis(s, 0)
        };
        if k > 0 && gamma.is_none() || k > 1 {
            return per_channel_sum(self, g3);
        }
        if shape.numel() == 0 {
            // No value to normalise (C = 0, or evaluation of an empty batch): a zero share.
            return match k {
                0 => self.mul_scalar(g, E::zero()),
                _ => per_channel_sum(self, g3),
            };
        }
        // The mean over the batch and the positions, kept as [1, C, 1].
        let per_channel_mean = |tape: &mut Self, v: NodeId| -> Result<NodeId> {
            let m = tape.mean_axis_keepdim(v, 2)?;
            tape.mean_axis_keepdim(m, 0)
        };
        let x3 = self.reshape(x, &[n, c, inner])?;
        let (centred, var) = match running {
            None => {
                let mean = per_channel_mean(self, x3)?;
                let centred = self.sub(x3, mean)?;
                let sq = self.square(centred)?;
                (centred, per_channel_mean(self, sq)?)
            }
            Some((mean, var)) => {
                let mean = self.reshape(mean, &[1, c, 1])?;
                (self.sub(x3, mean)?, self.reshape(var, &[1, c, 1])?)
            }
        };
        let shifted = self.add_scalar(var, E::from_f64(eps))?;
        let invstd = self.rsqrt(shifted)?;
        let xhat = self.mul(centred, invstd)?;
        if k == 1 {
            let p = self.mul(g3, xhat)?;
            return per_channel_sum(self, p);
        }
        let gh = match gamma {
            Some(w) => {
                let w = self.reshape(w, &[1, c, 1])?;
                self.mul(g3, w)?
            }
            None => g3,
        };
        let inside = if running.is_some() {
            gh
        } else {
            let mean_gh = per_channel_mean(self, gh)?;
            let ghx = self.mul(gh, xhat)?;
            let mean_ghx = per_channel_mean(self, ghx)?;
            let along = self.mul(xhat, mean_ghx)?;
            let d = self.sub(gh, mean_gh)?;
            self.sub(d, along)?
        };
        let dx = self.mul(inside, invstd)?;
        self.reshape(dx, dims)
    }

    /// y[i] = x[i at index[i]]: dx = scatter_add(dy, index), padded with zeros where the index
    /// is shorter than x off the axis
    pub(crate) fn gather_vjp(
        &mut self,
        (x, index, g): (NodeId, NodeId, NodeId),
        axis: usize,
    ) -> Result<NodeId> {
        let x_dims = self.node_shape(x).dims().to_vec();
        let i_dims = self.node_shape(index).dims().to_vec();
        let d = self.scatter_add(g, index, axis, x_dims[axis])?;
        if i_dims
            .iter()
            .zip(&x_dims)
            .enumerate()
            .all(|(a, (i, x))| a == axis || i == x)
        {
            return Ok(d);
        }
        let pads: Vec<(usize, usize)> = i_dims
            .iter()
            .zip(&x_dims)
            .enumerate()
            .map(|(a, (&i, &x))| if a == axis { (0, 0) } else { (0, x - i) })
            .collect();
        self.pad(d, &pads, E::zero())
    }

    /// C[b] = A[b]·B[b]: dA = Σ dC·Bᵀ, dB = Σ Aᵀ·dC, each summed over the batches the operand
    /// was broadcast to
    pub(crate) fn batched_matmul_vjp(
        &mut self,
        (a, b, g): (NodeId, NodeId, NodeId),
        k: usize,
    ) -> Result<NodeId> {
        if k == 0 {
            let bt = self.transpose(b)?;
            let d = self.matmul(g, bt)?;
            self.sum_to(d, a)
        } else {
            let at = self.transpose(a)?;
            let d = self.matmul(at, g)?;
            self.sum_to(d, b)
        }
    }
}

/// The recorded VJPs of the weighted losses (`Op::WeightedLoss`): the rules of [`LossOp`] with
/// the weights as constants. They are detached, so that they get no gradient at any order, as
/// at the first (and in PyTorch).
impl<E: Float> Tape<E> {
    /// The recorded VJP of a weighted loss through input `k` (0 the prediction, 1 the target);
    /// `w` is the weights input. `None` for class targets, which have no gradient.
    pub(crate) fn weighted_loss_vjp(
        &mut self,
        loss: LossOp,
        (x, t, w): (NodeId, NodeId, NodeId),
        k: usize,
        g: NodeId,
    ) -> Result<Option<NodeId>> {
        match loss {
            // Refused when recorded (a distance takes no weights); its rule has none to use.
            LossOp::Distance { .. } => self.loss_vjp(loss, (x, t), k, g),
            // L = (1 - t)x + (p·t + 1 - t)·softplus(-x):
            // dx = dL·((1 - t) - (p·t + 1 - t)·σ(-x)), dt = dL·((p - 1)·softplus(-x) - x)
            LossOp::BceWithLogits { reduction } => {
                let p = self.weights_along(w, x, last_axis(self.node_shape(x).rank()))?;
                let dl = self.term_grads(g, reduction, x)?;
                let p1 = self.add_scalar(p, -E::one())?;
                let nx = self.neg(x)?;
                let d = if k == 0 {
                    let s = self.sigmoid(nx)?;
                    let q = self.mul(p1, t)?;
                    let q = self.add_scalar(q, E::one())?;
                    let qs = self.mul(q, s)?;
                    let nt = self.neg(t)?;
                    let keep = self.add_scalar(nt, E::one())?;
                    self.sub(keep, qs)?
                } else {
                    // Past the threshold `softplus(z) = z` is exact to the last bit of `E`.
                    let exact = -E::epsilon().ln() + E::from_f64(4.0);
                    let sp = self.softplus_with(nx, E::one(), exact)?;
                    let d = self.mul(p1, sp)?;
                    self.sub(d, x)?
                };
                Ok(Some(self.mul(dl, d)?))
            }
            // L = -w[t]·x[t] per lane, a mean over Σ w[t] of the lanes kept:
            // dx = -dL·w[t] at the target; none to the targets
            LossOp::Nll {
                ignore_index,
                reduction,
            } => {
                if k != 0 {
                    return Ok(None);
                }
                let axis = class_axis(self.node_shape(x).rank());
                let w = self.weights_along(w, x, Some(axis))?;
                let (hot, _) = self.class_one_hot(x, t, ignore_index)?;
                let picked = self.mul(hot, w)?;
                let dl = self.weighted_class_term_grads(g, reduction, x, picked)?;
                let d = self.mul(picked, dl)?;
                Ok(Some(self.neg(d)?))
            }
            LossOp::CrossEntropy(options) => {
                let axis = class_axis(self.node_shape(x).rank());
                let w = self.weights_along(w, x, Some(axis))?;
                self.weighted_cross_entropy_vjp(options, (x, t, w), k, g)
            }
        }
    }

    /// The weights `w` (a vector) detached and shaped to broadcast against `x` along `axis`
    /// (ones elsewhere; a scalar `x` takes its one weight as a scalar).
    fn weights_along(&mut self, w: NodeId, x: NodeId, axis: Option<usize>) -> Result<NodeId> {
        let w = self.detach(w)?;
        let dims = self.node_shape(x).dims().to_vec();
        let mut shape = vec![1; dims.len()];
        if let Some(a) = axis {
            shape[a] = dims[a];
        }
        self.reshape(w, &shape)
    }

    /// The gradient of each term of a weighted class loss, broadcastable against its input
    /// `x`: a mean divides by the total weight of the targets kept (`Σ picked`, `picked` the
    /// one-hot targets times their weights); a total of 0 (every lane ignored) gives zero
    /// shares, as the first-order rule does, not 0/0.
    fn weighted_class_term_grads(
        &mut self,
        g: NodeId,
        reduction: Reduction,
        x: NodeId,
        picked: NodeId,
    ) -> Result<NodeId> {
        match reduction {
            Reduction::Mean => {
                let total = self.sum(picked)?;
                let total = self.zeros_to_ones(total)?;
                self.div(g, total)
            }
            Reduction::Sum => Ok(g),
            Reduction::None => {
                let axis = class_axis(self.node_shape(x).rank());
                self.unsqueeze(g, axis)
            }
        }
    }

    /// L = reduce(-Σ_c w_c·t'_c·log_softmax(z)_c), t' = (1 - ε)t + ε/C, `w` shaped along the
    /// class axis: dz = dL·(p·Σ a - a), a = w·t'; probability targets
    /// dt = -dL·(1 - ε)·w·log_softmax(z). Class targets' mean divides by Σ w[t] over the lanes
    /// kept, probability targets' by the lane count.
    fn weighted_cross_entropy_vjp(
        &mut self,
        options: CrossEntropyOptions,
        (z, t, w): (NodeId, NodeId, NodeId),
        k: usize,
        g: NodeId,
    ) -> Result<Option<NodeId>> {
        let axis = class_axis(self.node_shape(z).rank());
        let classes = self.node_shape(z).dims()[axis] as f64;
        let eps = options.label_smoothing;
        let (smoothed, dl) = match options.targets {
            Targets::Classes => {
                if k != 0 {
                    return Ok(None);
                }
                let (hot, valid) = self.class_one_hot(z, t, options.ignore_index)?;
                let picked = self.mul(hot, w)?;
                let dl = self.weighted_class_term_grads(g, options.reduction, z, picked)?;
                let kept = self.mul_scalar(hot, E::from_f64(1.0 - eps))?;
                // Lanes kept: t' sums to 1; ignored ones: t' = 0.
                let smoothed = match valid {
                    Some(v) => {
                        let v = self.unsqueeze(v, axis)?;
                        let spread = self.mul_scalar(v, E::from_f64(eps / classes))?;
                        self.add(kept, spread)?
                    }
                    None => self.add_scalar(kept, E::from_f64(eps / classes))?,
                };
                (smoothed, dl)
            }
            Targets::Probabilities => {
                let kept = self.mul_scalar(t, E::from_f64(1.0 - eps))?;
                let smoothed = self.add_scalar(kept, E::from_f64(eps / classes))?;
                (
                    smoothed,
                    self.class_term_grads(g, options.reduction, z, None)?,
                )
            }
        };
        let share = if k == 0 {
            let a = self.mul(smoothed, w)?;
            let total = self.sum_axis_keepdim(a, axis)?;
            let p = self.softmax_axis(z, axis)?;
            let pt = self.mul(p, total)?;
            let d = self.sub(pt, a)?;
            self.mul(dl, d)?
        } else {
            let lp = self.log_softmax_axis(z, axis)?;
            let wl = self.mul(w, lp)?;
            let d = self.mul(dl, wl)?;
            self.mul_scalar(d, E::from_f64(eps - 1.0))?
        };
        Ok(Some(share))
    }
}

/// The last axis of an array of rank `rank`, none for a scalar: where `pos_weight` lies.
fn last_axis(rank: usize) -> Option<usize> {
    rank.checked_sub(1)
}
