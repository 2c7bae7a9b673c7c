//! Classification losses over a class axis, as PyTorch defines them: `nll_loss` on
//! log-probabilities, and `cross_entropy` on logits with class weights, an ignored label,
//! label smoothing, and either class-index or probability targets; each reduced by a
//! [`Reduction`].
//!
//! Layout (PyTorch's): the input is `[C]`, `[N, C]` or `[N, C, d1, ...]`; the classes lie along
//! axis 1 (axis 0 for a vector). Class-index targets have the input's shape without the class
//! axis and hold whole numbers stored as floats; probability targets have the input's shape.
//! Class weights are `[C]`. Each position of the target shape is one *lane* of the input along
//! the class axis, and one term of the loss.

use super::lanes::Lanes;
use super::reduction::Reduction;
use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

const NLL: &str = "nll_loss";
const CROSS_ENTROPY: &str = "cross_entropy";

/// What the targets of a cross-entropy hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Targets {
    /// One class index per lane, stored as a float (the target has no class axis).
    Classes,
    /// A probability for every class (the target has the input's shape).
    Probabilities,
}

/// The arguments of [`cross_entropy`] besides its arrays (PyTorch's keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropyOptions {
    /// What the targets hold.
    pub targets: Targets,
    /// A class-index target equal to this is skipped: its term is 0 and a mean leaves it out
    /// (PyTorch's `ignore_index`, whose default is -100). Not used with probabilities.
    pub ignore_index: Option<i64>,
    /// `ε` in `[0, 1]`: the target becomes `(1 - ε)·target + ε/C` uniformly.
    pub label_smoothing: f64,
    /// How the terms are reduced.
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions {
    /// Class indices, nothing ignored, no smoothing, the mean: PyTorch's defaults (but for
    /// `ignore_index`, which is opt-in here).
    fn default() -> Self {
        CrossEntropyOptions {
            targets: Targets::Classes,
            ignore_index: None,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

/// The class axis of an input of rank `rank`: 1, or 0 for a vector.
#[inline]
fn class_axis(rank: usize) -> usize {
    usize::from(rank >= 2)
}

/// Checks the input, target and weight shapes; returns the loss's output shape.
fn class_shape(
    op: &'static str,
    x: &Shape,
    target: &Shape,
    weight: Option<&Shape>,
    targets: Targets,
    reduction: Reduction,
) -> Result<Shape> {
    if x.rank() == 0 {
        return Err(Error::WrongRank {
            op,
            expected: "at least 1 ([C] or [N, C, ...])",
            shape: *x,
        });
    }
    let axis = class_axis(x.rank());
    let classes = x.dims()[axis];
    if classes == 0 {
        return Err(Error::EmptyBatch { op, shape: *x });
    }
    let terms = x.without_axis(axis)?;
    let want = match targets {
        Targets::Classes => terms,
        Targets::Probabilities => *x,
    };
    if !target.same_as(&want) {
        return Err(Error::ShapeMismatch {
            op,
            lhs: *x,
            rhs: *target,
        });
    }
    if let Some(w) = weight
        && !w.same_as(&Shape::vector(classes))
    {
        return Err(Error::ShapeMismatch {
            op,
            lhs: *x,
            rhs: *w,
        });
    }
    reduction.output_shape(op, x, &terms)
}

/// The output shape of [`nll_loss`] for log-probabilities `x`, class-index targets `target`
/// and optional class weights.
pub fn nll_loss_shape(
    x: &Shape,
    target: &Shape,
    weight: Option<&Shape>,
    reduction: Reduction,
) -> Result<Shape> {
    class_shape(NLL, x, target, weight, Targets::Classes, reduction)
}

/// The output shape of [`cross_entropy`]; also checks that `label_smoothing` is in `[0, 1]`.
pub fn cross_entropy_shape(
    x: &Shape,
    target: &Shape,
    weight: Option<&Shape>,
    options: &CrossEntropyOptions,
) -> Result<Shape> {
    let eps = options.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::InvalidArgument {
            op: CROSS_ENTROPY,
            argument: "label_smoothing",
            value: eps,
            requirement: "it must be between 0 and 1".to_string(),
        });
    }
    class_shape(
        CROSS_ENTROPY,
        x,
        target,
        weight,
        options.targets,
        options.reduction,
    )
}

/// The class a stored label names: `None` for the ignored label, or an error saying why it
/// names none.
fn class<E: Float>(
    op: &'static str,
    row: usize,
    label: E,
    classes: usize,
    ignore: Option<i64>,
) -> Result<Option<usize>> {
    let v = label.to_f64();
    if ignore.is_some_and(|i| i as f64 == v) {
        return Ok(None);
    }
    if !(v >= 0.0 && v.fract() == 0.0) {
        return Err(Error::LabelNotAClass { op, row, label: v });
    }
    if v >= classes as f64 {
        return Err(Error::LabelOutOfRange {
            op,
            row,
            label: v,
            classes,
        });
    }
    Ok(Some(v as usize))
}

/// The weight of class `k` (1 without weights).
#[inline(always)]
fn weight_of<E: Float>(weight: Option<&[E]>, k: usize) -> E {
    weight.map_or(E::one(), |w| w[k])
}

/// Validates every label and returns the divisor of a mean: the total weight of the targets
/// that are not ignored (their count without weights).
fn target_weight<E: Float>(
    op: &'static str,
    target: &[E],
    weight: Option<&[E]>,
    classes: usize,
    ignore: Option<i64>,
) -> Result<f64> {
    let mut total = 0.0f64;
    for (row, &label) in target.iter().enumerate() {
        if let Some(k) = class(op, row, label, classes, ignore)? {
            total += weight_of(weight, k).to_f64();
        }
    }
    Ok(total)
}

/// `out` = the terms `-w[t]·x[t]` of each lane (0 for an ignored target), reduced; a mean
/// divides by the total weight of the targets not ignored, so an all-ignored batch gives NaN
/// (0/0, as PyTorch). A label that names no class is an error, and `out` is then untouched.
pub fn nll_loss<E: Float>(
    x: TensorRef<'_, E>,
    target: &[E],
    weight: Option<&[E]>,
    ignore_index: Option<i64>,
    reduction: Reduction,
    out: &mut [E],
) -> Result<()> {
    let lanes = Lanes::of(x.shape(), Some(class_axis(x.shape().rank())));
    let divisor = target_weight(NLL, target, weight, lanes.len, ignore_index)?;
    let data = x.data();
    reduction.write(lanes.count(), divisor, out, |j| {
        match class(NLL, j, target[j], lanes.len, ignore_index) {
            Ok(Some(k)) => -weight_of(weight, k) * data[lanes.start(j) + k * lanes.inner],
            _ => E::zero(),
        }
    });
    Ok(())
}

/// `L = reduce(-w[t]·x[t])`: `dx = -dL_j·w[t]` at each lane's target class, 0 elsewhere (and in
/// ignored lanes). The targets get no gradient. Adds into `gi` when `ACC`, overwrites it
/// otherwise. Labels are as [`nll_loss`] validated them; a bad one sends nothing.
pub fn nll_loss_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    target: &[E],
    weight: Option<&[E]>,
    ignore_index: Option<i64>,
    reduction: Reduction,
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x, Some(class_axis(x.rank())));
    let divisor = target_weight(NLL, target, weight, lanes.len, ignore_index).unwrap_or(1.0);
    let grad = reduction.grad_of(g, E::from_f64(divisor));
    if !ACC {
        gi.fill(E::zero());
    }
    for (j, &label) in target.iter().enumerate().take(lanes.count()) {
        if let Ok(Some(k)) = class(NLL, j, label, lanes.len, ignore_index) {
            gi[lanes.start(j) + k * lanes.inner] -= grad(j) * weight_of(weight, k);
        }
    }
}

/// Lane `j`'s maximum `m` and `ln Σ exp(z - m)`: its log-softmax is `(z - m) - ln_s`.
#[inline]
fn log_softmax_parts<E: Float>(z: &[E], lanes: Lanes, j: usize) -> (E, E) {
    let m = lanes
        .offsets(j)
        .fold(E::neg_infinity(), |m, k| if z[k] > m { z[k] } else { m });
    let s: E = lanes.offsets(j).map(|k| (z[k] - m).exp()).sum();
    (m, s.ln())
}

/// The divisor of a mean: the total target weight (class indices) or the number of lanes
/// (probabilities, as PyTorch). Validates the labels.
fn ce_divisor<E: Float>(
    target: &[E],
    weight: Option<&[E]>,
    lanes: Lanes,
    options: &CrossEntropyOptions,
) -> Result<f64> {
    match options.targets {
        Targets::Classes => target_weight(
            CROSS_ENTROPY,
            target,
            weight,
            lanes.len,
            options.ignore_index,
        ),
        Targets::Probabilities => Ok(lanes.count() as f64),
    }
}

/// What a lane's target is.
#[derive(Clone, Copy)]
enum Lane {
    /// A class index equal to the ignored label: the lane adds nothing.
    Ignored,
    /// A class index.
    Hot(usize),
    /// Probabilities, read from the target at the lane's offsets.
    Soft,
}

/// Lane `j`'s target. Labels were validated before; one that names no class is ignored.
#[inline]
fn lane_target<E: Float>(
    target: &[E],
    lanes: Lanes,
    options: &CrossEntropyOptions,
    j: usize,
) -> Lane {
    match options.targets {
        Targets::Probabilities => Lane::Soft,
        Targets::Classes => {
            match class(CROSS_ENTROPY, j, target[j], lanes.len, options.ignore_index) {
                Ok(Some(k)) => Lane::Hot(k),
                _ => Lane::Ignored,
            }
        }
    }
}

/// The smoothed target of class `c` (at `offset` in the input) times its class weight:
/// `w_c·t'_c`, with `t' = (1 - ε)·t + ε/C` and `t` the lane's one-hot or probabilities.
#[inline(always)]
fn weighted_target<E: Float>(
    target: &[E],
    weight: Option<&[E]>,
    lanes: Lanes,
    eps: E,
    lane: Lane,
    (c, offset): (usize, usize),
) -> E {
    let t = match lane {
        Lane::Hot(k) if k == c => E::one(),
        Lane::Hot(_) | Lane::Ignored => E::zero(),
        Lane::Soft => target[offset],
    };
    weight_of(weight, c) * ((E::one() - eps) * t + eps / E::from_usize(lanes.len))
}

/// `out` = the terms `-Σ_c w_c·t'_c·log_softmax(z)_c` of each lane, reduced (PyTorch's
/// `cross_entropy`), with `t'` the smoothed target (see [`CrossEntropyOptions`]). Ignored lanes
/// give 0. A mean divides by the total weight of the class targets not ignored (NaN if there
/// are none, as PyTorch), or by the number of lanes for probability targets. A label that
/// names no class is an error, and `out` is then untouched.
pub fn cross_entropy<E: Float>(
    z: TensorRef<'_, E>,
    target: &[E],
    weight: Option<&[E]>,
    options: &CrossEntropyOptions,
    out: &mut [E],
) -> Result<()> {
    let lanes = Lanes::of(z.shape(), Some(class_axis(z.shape().rank())));
    let divisor = ce_divisor(target, weight, lanes, options)?;
    let data = z.data();
    let eps = E::from_f64(options.label_smoothing);
    options.reduction.write(lanes.count(), divisor, out, |j| {
        let lane = lane_target(target, lanes, options, j);
        if matches!(lane, Lane::Ignored) {
            return E::zero();
        }
        let (m, ln_s) = log_softmax_parts(data, lanes, j);
        if let (Lane::Hot(c), true) = (lane, eps == E::zero()) {
            // The common case, one class and no smoothing: one term, not C.
            let k = lanes.start(j) + c * lanes.inner;
            return -weight_of(weight, c) * ((data[k] - m) - ln_s);
        }
        let mut term = E::zero();
        for (c, k) in lanes.offsets(j).enumerate() {
            let wt = weighted_target(target, weight, lanes, eps, lane, (c, k));
            // 0·(-inf) would be NaN for a class of zero target and zero probability.
            if wt != E::zero() {
                term -= wt * ((data[k] - m) - ln_s);
            }
        }
        term
    });
    Ok(())
}

/// L = reduce(-Σ_c w_c·t'_c·lp_c), lp = log_softmax(z):
/// - `index` 0: dz_c = dL_j·(a_c - softmax(z)_c·Σ a), with a_c = -w_c·t'_c;
/// - `index` 1 (probability targets): dt_c = -dL_j·(1 - ε)·w_c·lp_c; class-index targets get
///   no gradient (zeros when overwriting).
///
/// Ignored lanes get 0. Adds into `gi` when `ACC`, overwrites it otherwise. Labels are as
/// [`cross_entropy`] validated them.
pub fn cross_entropy_vjp<E: Float, const ACC: bool>(
    z: TensorRef<'_, E>,
    target: &[E],
    weight: Option<&[E]>,
    options: &CrossEntropyOptions,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    let lanes = Lanes::of(z.shape(), Some(class_axis(z.shape().rank())));
    if index == 1 && options.targets == Targets::Classes {
        if !ACC {
            gi.fill(E::zero());
        }
        return;
    }
    let divisor = ce_divisor(target, weight, lanes, options).unwrap_or(1.0);
    let grad = options.reduction.grad_of(g, E::from_f64(divisor));
    let data = z.data();
    let eps = E::from_f64(options.label_smoothing);
    let keep = E::one() - eps;
    for j in 0..lanes.count() {
        let lane = lane_target(target, lanes, options, j);
        if matches!(lane, Lane::Ignored) {
            for k in lanes.offsets(j) {
                store::<E, ACC>(&mut gi[k], E::zero());
            }
            continue;
        }
        let scale = grad(j);
        let (m, ln_s) = log_softmax_parts(data, lanes, j);
        if index == 0 {
            let mut total = E::zero();
            for (c, k) in lanes.offsets(j).enumerate() {
                total += weighted_target(target, weight, lanes, eps, lane, (c, k));
            }
            for (c, k) in lanes.offsets(j).enumerate() {
                let wt = weighted_target(target, weight, lanes, eps, lane, (c, k));
                let p = ((data[k] - m) - ln_s).exp();
                store::<E, ACC>(&mut gi[k], scale * (p * total - wt));
            }
        } else {
            for (c, k) in lanes.offsets(j).enumerate() {
                let lp = (data[k] - m) - ln_s;
                store::<E, ACC>(&mut gi[k], -scale * keep * weight_of(weight, c) * lp);
            }
        }
    }
}

#[cfg(test)]
mod tests;
