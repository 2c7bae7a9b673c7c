//! Losses made of one term per element of a prediction and a target of the same shape, reduced
//! by a [`Reduction`]: L1, smooth L1 and Huber ([`Distance`]), and binary cross-entropy from
//! logits with an optional positive-class weight.
//!
//! Every input gets a gradient, targets included (PyTorch's rules): for the distance losses
//! the target's is the prediction's negated; for binary cross-entropy see
//! [`bce_with_logits_vjp`].

use super::reduction::Reduction;
use super::unary::{sigmoid, store};
use crate::{Error, Float, Result, Shape, TensorRef};

const BCE: &str = "binary_cross_entropy_with_logits";

/// A loss on the difference `d = x - t` of a prediction and a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distance {
    /// `|d|` (`torch.nn.functional.l1_loss`).
    L1,
    /// `0.5·d²/beta` where `|d| < beta`, `|d| - 0.5·beta` elsewhere; `beta = 0` is L1
    /// (`smooth_l1_loss(beta)`; `beta` must be at least 0).
    SmoothL1 {
        /// Where the quadratic part ends.
        beta: f64,
    },
    /// `0.5·d²` where `|d| < delta`, `delta·(|d| - 0.5·delta)` elsewhere
    /// (`huber_loss(delta)`; `delta` must be above 0).
    Huber {
        /// Where the quadratic part ends.
        delta: f64,
    },
}

impl Distance {
    /// The op's name, as PyTorch's function.
    pub fn name(self) -> &'static str {
        match self {
            Distance::L1 => "l1_loss",
            Distance::SmoothL1 { .. } => "smooth_l1_loss",
            Distance::Huber { .. } => "huber_loss",
        }
    }

    /// An [`InvalidArgument`](Error::InvalidArgument) error for a negative (or NaN) `beta` or
    /// a `delta` that is not positive.
    fn check(self) -> Result<()> {
        let (argument, value, ok, requirement) = match self {
            Distance::L1 => return Ok(()),
            Distance::SmoothL1 { beta } => ("beta", beta, beta >= 0.0, "it must be at least 0"),
            Distance::Huber { delta } => ("delta", delta, delta > 0.0, "it must be above 0"),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                op: self.name(),
                argument,
                value,
                requirement: requirement.to_string(),
            })
        }
    }

    /// The term for a difference `d`.
    #[inline(always)]
    fn value<E: Float>(self, d: E) -> E {
        let half = E::from_f64(0.5);
        match self {
            Distance::L1 => d.abs(),
            Distance::SmoothL1 { beta } => {
                let beta = E::from_f64(beta);
                if d.abs() < beta {
                    half * d * d / beta
                } else {
                    d.abs() - half * beta
                }
            }
            Distance::Huber { delta } => {
                let delta = E::from_f64(delta);
                if d.abs() < delta {
                    half * d * d
                } else {
                    delta * (d.abs() - half * delta)
                }
            }
        }
    }

    /// The term's derivative in `d`; at the kink of L1 (`d = 0`) it is 0, as PyTorch's.
    #[inline(always)]
    fn slope<E: Float>(self, d: E) -> E {
        match self {
            Distance::L1 => sign(d),
            Distance::SmoothL1 { beta } => {
                let beta = E::from_f64(beta);
                if d.abs() < beta { d / beta } else { sign(d) }
            }
            Distance::Huber { delta } => {
                let delta = E::from_f64(delta);
                if d.abs() < delta { d } else { delta * sign(d) }
            }
        }
    }
}

/// -1, 0 or 1 by the sign of `d` (0 at ±0), NaN for NaN.
#[inline(always)]
fn sign<E: Float>(d: E) -> E {
    if d > E::zero() {
        E::one()
    } else if d < E::zero() {
        -E::one()
    } else {
        d * E::zero()
    }
}

/// Prediction and target of the same shape; the loss's shape by `reduction`.
fn same_shape(op: &'static str, x: &Shape, t: &Shape, reduction: Reduction) -> Result<Shape> {
    if !x.same_as(t) {
        return Err(Error::ShapeMismatch {
            op,
            lhs: *x,
            rhs: *t,
        });
    }
    reduction.output_shape(op, x, x)
}

/// The output shape of `loss` for prediction `x` and target `t`, which must have the same
/// shape; also checks `loss`'s argument.
pub fn distance_loss_shape(
    loss: Distance,
    x: &Shape,
    t: &Shape,
    reduction: Reduction,
) -> Result<Shape> {
    loss.check()?;
    same_shape(loss.name(), x, t, reduction)
}

/// `out` = the terms `loss(x - t)`, reduced by `reduction`.
pub fn distance_loss<E: Float>(
    loss: Distance,
    x: &[E],
    t: &[E],
    reduction: Reduction,
    out: &mut [E],
) {
    reduction.write(x.len(), x.len() as f64, out, |i| loss.value(x[i] - t[i]));
}

/// L = reduce ℓ(x - t): dx = dL_i·ℓ'(x - t) (`index` 0), dt = -dL_i·ℓ'(x - t) (`index` 1),
/// where dL_i is the output's gradient reaching term `i` (divided by the count for a mean).
/// Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn distance_loss_vjp<E: Float, const ACC: bool>(
    loss: Distance,
    x: &[E],
    t: &[E],
    reduction: Reduction,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    let grad = reduction.grad_of(g, E::from_usize(x.len()));
    let sign = if index == 0 { E::one() } else { -E::one() };
    for (i, d) in gi.iter_mut().enumerate().take(x.len()) {
        store::<E, ACC>(d, sign * grad(i) * loss.slope(x[i] - t[i]));
    }
}

/// The output shape of binary cross-entropy from logits `x` and targets `t` (same shape), with
/// an optional `pos_weight` of shape `[C]`, `C` being `x`'s last axis (1 for a scalar), which
/// broadcasts over the other axes.
pub fn bce_with_logits_shape(
    x: &Shape,
    t: &Shape,
    pos_weight: Option<&Shape>,
    reduction: Reduction,
) -> Result<Shape> {
    if let Some(w) = pos_weight
        && (w.rank() != 1 || w.dims()[0] != x.last_dim())
    {
        return Err(Error::ShapeMismatch {
            op: BCE,
            lhs: *x,
            rhs: *w,
        });
    }
    same_shape(BCE, x, t, reduction)
}

/// `softplus(-x) = ln(1 + e^-x) = -ln σ(x)`, without overflow for either sign.
#[inline(always)]
fn softplus_neg<E: Float>(x: E) -> E {
    (-x).max(E::zero()) + (-x.abs()).exp().ln_1p()
}

/// The positive-class weight of element `i` (1 without weights).
#[inline(always)]
fn weight_at<E: Float>(pos_weight: Option<&[E]>, i: usize) -> E {
    pos_weight.map_or(E::one(), |w| w[i % w.len()])
}

/// `out` = the terms `-[p·t·ln σ(x) + (1 - t)·ln(1 - σ(x))]`, `p` the positive weight of the
/// element's column, reduced by `reduction`. Computed as `(1 - t)·x + (p·t + 1 - t)·softplus(-x)`
/// (PyTorch's form), which no logit overflows.
pub fn bce_with_logits<E: Float>(
    x: TensorRef<'_, E>,
    t: &[E],
    pos_weight: Option<&[E]>,
    reduction: Reduction,
    out: &mut [E],
) {
    let x = x.data();
    reduction.write(x.len(), x.len() as f64, out, |i| {
        let (x, t, p) = (x[i], t[i], weight_at(pos_weight, i));
        (E::one() - t) * x + (p * t + E::one() - t) * softplus_neg(x)
    });
}

/// L = reduce ℓ(x, t, p) with ℓ = (1 - t)·x + (p·t + 1 - t)·softplus(-x):
/// - `index` 0: dx = dL_i·((1 - t) - (p·t + 1 - t)·σ(-x)) (σ(x) - t without weights);
/// - `index` 1: dt = dL_i·((p - 1)·softplus(-x) - x);
/// - `index` 2: dp = Σ over the rows of dL_i·t·softplus(-x), per column.
///
/// Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn bce_with_logits_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    t: &[E],
    pos_weight: Option<&[E]>,
    reduction: Reduction,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    let x = x.data();
    let grad = reduction.grad_of(g, E::from_usize(x.len()));
    let one = E::one();
    match index {
        0 => {
            for (i, d) in gi.iter_mut().enumerate().take(x.len()) {
                let (x, t, p) = (x[i], t[i], weight_at(pos_weight, i));
                store::<E, ACC>(d, grad(i) * ((one - t) - (p * t + one - t) * sigmoid(-x)));
            }
        }
        1 => {
            for (i, d) in gi.iter_mut().enumerate().take(x.len()) {
                let (x, p) = (x[i], weight_at(pos_weight, i));
                store::<E, ACC>(d, grad(i) * ((p - one) * softplus_neg(x) - x));
            }
        }
        _ => {
            if !ACC {
                gi.fill(E::zero());
            }
            let cols = gi.len();
            for i in 0..x.len() {
                gi[i % cols] += grad(i) * t[i] * softplus_neg(x[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

    fn reduce(terms: Vec<f64>, reduction: Reduction) -> Vec<f64> {
        let n = terms.len() as f64;
        match reduction {
            Reduction::None => terms,
            Reduction::Sum => vec![terms.iter().sum()],
            Reduction::Mean => vec![terms.iter().sum::<f64>() / n],
        }
    }

    fn naive_distance(loss: Distance, d: f64) -> f64 {
        let a = d.abs();
        match loss {
            Distance::L1 => a,
            Distance::SmoothL1 { beta } if a < beta => 0.5 * d * d / beta,
            Distance::SmoothL1 { beta } => a - 0.5 * beta,
            Distance::Huber { delta } if a <= delta => 0.5 * d * d,
            Distance::Huber { delta } => delta * (a - 0.5 * delta),
        }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    /// Checks a distance loss against its definition and finite differences in both inputs.
    fn check_distance(loss: Distance, n: usize, seed: u64) -> f64 {
        let x = values(n, seed);
        let t = values(n, seed + 1);
        let s = Shape::vector(n);
        let mut worst = 0.0f64;
        for reduction in REDUCTIONS {
            let out_n = distance_loss_shape(loss, &s, &s, reduction)
                .unwrap()
                .numel();
            let run = |x: &[f64], t: &[f64]| {
                let mut y = vec![0.0; out_n];
                distance_loss(loss, x, t, reduction, &mut y);
                y
            };
            let want = reduce(
                x.iter()
                    .zip(&t)
                    .map(|(a, b)| naive_distance(loss, a - b))
                    .collect(),
                reduction,
            );
            assert!(close(&run(&x, &t), &want), "{loss:?} {reduction:?}");
            let g = values(out_n, seed + 2);
            for index in 0..2 {
                let f = |v: &[f64]| if index == 0 { run(v, &t) } else { run(&x, v) };
                let vjp = |v: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                    let (x, t) = if index == 0 { (v, &t[..]) } else { (&x[..], v) };
                    if acc {
                        distance_loss_vjp::<f64, true>(loss, x, t, reduction, g, index, gi)
                    } else {
                        distance_loss_vjp::<f64, false>(loss, x, t, reduction, g, index, gi)
                    }
                };
                let at = if index == 0 { &x } else { &t };
                worst = worst.max(fd_error(&f, &vjp, at, &g));
            }
        }
        worst
    }

    const DISTANCES: [Distance; 5] = [
        Distance::L1,
        Distance::SmoothL1 { beta: 1.0 },
        Distance::SmoothL1 { beta: 0.0 },
        Distance::SmoothL1 { beta: 0.3 },
        Distance::Huber { delta: 0.7 },
    ];

    #[test]
    fn distance_losses_match_their_definitions_and_finite_differences() {
        for loss in DISTANCES {
            let mut worst = 0.0f64;
            for (n, seed) in [(1, 1), (7, 2), (12, 3)] {
                let err = check_distance(loss, n, seed);
                assert!(err < FD_TOL, "{loss:?} {n}: {err}");
                worst = worst.max(err);
            }
            eprintln!("fd worst {}: {worst:e}", loss.name());
        }
    }

    #[test]
    fn kinks_follow_pytorch() {
        // L1 at d = 0 has slope 0; smooth L1 and Huber are continuous at their bounds.
        let mut gi = [f64::NAN];
        distance_loss_vjp::<f64, false>(
            Distance::L1,
            &[1.5],
            &[1.5],
            Reduction::Sum,
            &[1.0],
            0,
            &mut gi,
        );
        assert_eq!(gi, [0.0]);
        for loss in [
            Distance::SmoothL1 { beta: 0.5 },
            Distance::Huber { delta: 0.5 },
        ] {
            let below = loss.value(0.5 - 1e-12);
            let at = loss.value(0.5f64);
            assert!((below - at).abs() < 1e-11, "{loss:?}");
            assert!((loss.slope(0.5 - 1e-12) - loss.slope(0.5f64)).abs() < 1e-11);
        }
    }

    #[test]
    fn bad_arguments_and_shapes_are_errors() {
        let (a, b) = (Shape::new(&[2, 3]).unwrap(), Shape::new(&[3, 2]).unwrap());
        for (loss, arg) in [
            (Distance::SmoothL1 { beta: -1.0 }, "beta"),
            (Distance::SmoothL1 { beta: f64::NAN }, "beta"),
            (Distance::Huber { delta: 0.0 }, "delta"),
        ] {
            let err = distance_loss_shape(loss, &a, &a, Reduction::Mean).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { argument, .. } if argument == arg),
                "{loss:?}"
            );
        }
        assert!(matches!(
            distance_loss_shape(Distance::L1, &a, &b, Reduction::Sum),
            Err(Error::ShapeMismatch { op: "l1_loss", .. })
        ));
        let empty = Shape::new(&[0, 3]).unwrap();
        assert!(matches!(
            distance_loss_shape(Distance::L1, &empty, &empty, Reduction::Mean),
            Err(Error::EmptyBatch { .. })
        ));
        assert_eq!(
            distance_loss_shape(Distance::L1, &empty, &empty, Reduction::None).unwrap(),
            empty
        );
        let w = Shape::vector(2);
        assert!(matches!(
            bce_with_logits_shape(&a, &a, Some(&w), Reduction::Mean),
            Err(Error::ShapeMismatch { op: BCE, .. })
        ));
        assert!(bce_with_logits_shape(&a, &a, Some(&Shape::vector(3)), Reduction::Mean).is_ok());
    }

    fn naive_bce(x: f64, t: f64, p: f64) -> f64 {
        let s = 1.0 / (1.0 + (-x).exp());
        -(p * t * s.ln() + (1.0 - t) * (1.0 - s).ln())
    }

    fn check_bce(dims: &[usize], weighted: bool, seed: u64) -> f64 {
        let s = Shape::new(dims).unwrap();
        let n = s.numel();
        let x = values(n, seed);
        let t: Vec<f64> = values(n, seed + 1)
            .iter()
            .map(|v| (v + 2.0) / 4.0)
            .collect();
        let c = s.last_dim();
        let w: Vec<f64> = values(c, seed + 2).iter().map(|v| v + 2.5).collect();
        let mut worst = 0.0f64;
        for reduction in REDUCTIONS {
            let ws = Shape::vector(c);
            let out_n = bce_with_logits_shape(&s, &s, weighted.then_some(&ws), reduction)
                .unwrap()
                .numel();
            let run = |x: &[f64], t: &[f64], w: &[f64]| {
                let mut y = vec![0.0; out_n];
                let pw = weighted.then_some(w);
                bce_with_logits(TensorRef::trusted(&s, x), t, pw, reduction, &mut y);
                y
            };
            let terms = (0..n)
                .map(|i| naive_bce(x[i], t[i], if weighted { w[i % c] } else { 1.0 }))
                .collect();
            assert!(close(&run(&x, &t, &w), &reduce(terms, reduction)));
            let g = values(out_n, seed + 3);
            for index in 0..if weighted { 3 } else { 2 } {
                let pick = |v: &[f64]| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
                    match index {
                        0 => (v.to_vec(), t.clone(), w.clone()),
                        1 => (x.clone(), v.to_vec(), w.clone()),
                        _ => (x.clone(), t.clone(), v.to_vec()),
                    }
                };
                let f = |v: &[f64]| {
                    let (x, t, w) = pick(v);
                    run(&x, &t, &w)
                };
                let vjp = |v: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                    let (x, t, w) = pick(v);
                    let (xt, pw) = (TensorRef::trusted(&s, &x), weighted.then_some(&w[..]));
                    if acc {
                        bce_with_logits_vjp::<f64, true>(xt, &t, pw, reduction, g, index, gi)
                    } else {
                        bce_with_logits_vjp::<f64, false>(xt, &t, pw, reduction, g, index, gi)
                    }
                };
                let at = [&x, &t, &w][index];
                worst = worst.max(fd_error(&f, &vjp, at, &g));
            }
        }
        worst
    }

    #[test]
    fn bce_matches_its_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, seed) in [(&[3usize, 4][..], 1), (&[5], 2), (&[], 3), (&[2, 1, 3], 4)] {
            for weighted in [false, true] {
                let err = check_bce(dims, weighted, seed);
                assert!(err < FD_TOL, "{dims:?} {weighted}: {err}");
                worst = worst.max(err);
            }
        }
        eprintln!("fd worst {BCE}: {worst:e}");
    }

    #[test]
    fn bce_of_huge_logits_is_finite_and_exact() {
        let s = Shape::vector(4);
        let x = [1000.0f32, -1000.0, 1000.0, -1000.0];
        let t = [1.0f32, 0.0, 0.0, 1.0];
        let mut y = [0.0f32; 4];
        bce_with_logits(
            TensorRef::trusted(&s, &x),
            &t,
            None,
            Reduction::None,
            &mut y,
        );
        assert_eq!(y, [0.0, 0.0, 1000.0, 1000.0]);
        let mut gi = [0.0f32; 4];
        bce_with_logits_vjp::<f32, false>(
            TensorRef::trusted(&s, &x),
            &t,
            None,
            Reduction::None,
            &[1.0; 4],
            0,
            &mut gi,
        );
        assert_eq!(gi, [0.0, 0.0, 1.0, -1.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn random_sizes(n in 1usize..10, seed in 0u64..1000, pick in 0usize..5) {
            prop_assert!(check_distance(DISTANCES[pick], n, seed) < FD_TOL);
            prop_assert!(check_bce(&[n, 2], pick % 2 == 0, seed) < FD_TOL);
        }
    }
}
