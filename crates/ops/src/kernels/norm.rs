//! Normalisation layers, each one fused forward and one fused VJP rather than ten composed ops:
//! `batch_norm` (`torch.nn.functional.batch_norm`) and `layer_norm`
//! (`torch.nn.functional.layer_norm`), each with an optional scale `gamma` and shift `beta`.
//!
//! Both compute `y = (x - mean)·invstd·gamma + beta` with `invstd = 1/sqrt(var + eps)` and the
//! biased variance, and write each group's `mean` and `invstd` to a `saved` buffer that the VJP
//! reads back (`[mean₀.., invstd₀..]`): nothing else is kept and nothing is allocated. Statistics
//! are summed in `f64`, in order, with two passes (mean, then squared deviations).
//!
//! - **Batch norm** groups axis 1 (channels) over every other axis: `[N, C]`, `[N, C, L]`,
//!   `[N, C, H, W]`, .... In training the statistics are the batch's, and the running estimates
//!   move by `momentum` towards the batch mean and the *unbiased* batch variance (PyTorch's
//!   rule); in evaluation the running estimates normalise and receive no gradient.
//! - **Layer norm** groups the trailing `axes` axes of each row; `gamma` and `beta` have their
//!   shape (elementwise affine).
//!
//! Batch norm runs channel by channel on the calling thread (a channel's elements are spread
//! over the batch); layer norm gives each row to one task. Both are bit-identical for any thread
//! count: every output element and every sum has one fixed order.

use rayon::prelude::*;

use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

const BATCH_NORM: &str = "batch_norm";
const LAYER_NORM: &str = "layer_norm";

/// Below this many elements layer norm's rows go one after another on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// The arguments of `batch_norm` (PyTorch's defaults: eps 1e-5, momentum 0.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormArgs {
    /// Added to the variance before the square root (finite, at least 0).
    pub eps: f64,
    /// How far a training step moves the running estimates towards the batch's (in `[0, 1]`).
    pub momentum: f64,
}

impl Default for BatchNormArgs {
    fn default() -> Self {
        BatchNormArgs {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            argument: "eps",
            value: eps,
            requirement: "it must be finite and at least 0".to_string(),
        })
    }
}

/// (N, C, elements per channel per example) of a batch norm's input (rank checked).
fn bn_layout(x: &Shape) -> (usize, usize, usize) {
    let d = x.dims();
    (d[0], d[1], d[2..].iter().product())
}

/// The output shape of `batch_norm` (the input's): `x` has at least 2 axes (channels on axis 1),
/// every per-channel operand given (gamma, beta, the running mean and variance) has shape `[C]`,
/// and in training each channel has more than one value (PyTorch refuses one).
///
/// ```
/// use wengert_ops::kernels::norm::{BatchNormArgs, batch_norm_shape};
/// use wengert_ops::Shape;
/// let x = Shape::new(&[64, 32, 28, 28]).unwrap();
/// let c = Shape::vector(32);
/// assert!(batch_norm_shape(&x, &[&c, &c], BatchNormArgs::default(), true).is_ok());
/// ```
pub fn batch_norm_shape(
    x: &Shape,
    per_channel: &[&Shape],
    args: BatchNormArgs,
    training: bool,
) -> Result<Shape> {
    if x.rank() < 2 {
        return Err(Error::WrongRank {
            op: BATCH_NORM,
            expected: "at least 2 ([N, C, ...])",
            shape: *x,
        });
    }
    check_eps(BATCH_NORM, args.eps)?;
    if !(0.0..=1.0).contains(&args.momentum) {
        return Err(Error::InvalidArgument {
            op: BATCH_NORM,
            argument: "momentum",
            value: args.momentum,
            requirement: "it must lie in [0, 1]".to_string(),
        });
    }
    let (n, c, inner) = bn_layout(x);
    if let Some(bad) = per_channel.iter().find(|s| s.dims() != [c]) {
        return Err(Error::ShapeMismatch {
            op: BATCH_NORM,
            lhs: *x,
            rhs: **bad,
        });
    }
    if training && c > 0 && n * inner <= 1 {
        return Err(Error::InvalidArgument {
            op: BATCH_NORM,
            argument: "values per channel",
            value: (n * inner) as f64,
            requirement: format!("training needs more than 1 value per channel, and {x} has not"),
        });
    }
    Ok(*x)
}

/// The length of batch norm's `saved` buffer: a mean and an `invstd` per channel.
pub fn batch_norm_saved_len(x: &Shape) -> usize {
    2 * x.dim(1).unwrap_or(0)
}

/// The `(n, c)` plane of `data`.
#[inline]
fn plane<E>(data: &[E], n: usize, c: usize, channels: usize, inner: usize) -> &[E] {
    let at = (n * channels + c) * inner;
    &data[at..at + inner]
}

/// Writes `y = (x - mean)·invstd·gamma + beta` for channel `c`.
#[allow(clippy::too_many_arguments)]
fn bn_apply<E: Float>(
    x: &[E],
    (n, channels, inner): (usize, usize, usize),
    c: usize,
    gamma: Option<&[E]>,
    beta: Option<&[E]>,
    mean: E,
    invstd: E,
    out: &mut [E],
) {
    let scale = invstd * gamma.map_or(E::one(), |g| g[c]);
    let shift = beta.map_or(E::zero(), |b| b[c]);
    for i in 0..n {
        let at = (i * channels + c) * inner;
        for (o, &v) in out[at..at + inner].iter_mut().zip(&x[at..at + inner]) {
            *o = (v - mean) * scale + shift;
        }
    }
}

/// Batch norm in training: normalises each channel by the batch's mean and biased variance,
/// writes them to `saved` (`[mean; C]` then `[invstd; C]`), and when `running` is given
/// updates it: `r = (1 - momentum)·r + momentum·stat`, with the unbiased variance
/// (shapes as [`batch_norm_shape`] checked with `training`).
pub fn batch_norm_train<E: Float>(
    x: TensorRef<'_, E>,
    gamma: Option<&[E]>,
    beta: Option<&[E]>,
    args: BatchNormArgs,
    mut running: Option<(&mut [E], &mut [E])>,
    saved: &mut [E],
    out: &mut [E],
) {
    let layout @ (n, channels, inner) = bn_layout(x.shape());
    let data = x.data();
    let m = (n * inner) as f64;
    for c in 0..channels {
        let mut sum = 0.0f64;
        for i in 0..n {
            sum += plane(data, i, c, channels, inner)
                .iter()
                .map(|&v| Float::to_f64(v))
                .sum::<f64>();
        }
        let mean = sum / m;
        let mut squares = 0.0f64;
        for i in 0..n {
            for &v in plane(data, i, c, channels, inner) {
                let d = Float::to_f64(v) - mean;
                squares += d * d;
            }
        }
        let var = squares / m;
        let invstd = 1.0 / (var + args.eps).sqrt();
        saved[c] = E::from_f64(mean);
        saved[channels + c] = E::from_f64(invstd);
        if let Some((rm, rv)) = running.as_mut() {
            let k = args.momentum;
            let unbiased = squares / (m - 1.0);
            rm[c] = E::from_f64((1.0 - k) * Float::to_f64(rm[c]) + k * mean);
            rv[c] = E::from_f64((1.0 - k) * Float::to_f64(rv[c]) + k * unbiased);
        }
        bn_apply(
            data,
            layout,
            c,
            gamma,
            beta,
            E::from_f64(mean),
            E::from_f64(invstd),
            out,
        );
    }
}

/// Batch norm in evaluation: normalises by the running mean and variance, and writes the mean
/// and `invstd` it used to `saved` for [`batch_norm_vjp`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval<E: Float>(
    x: TensorRef<'_, E>,
    gamma: Option<&[E]>,
    beta: Option<&[E]>,
    args: BatchNormArgs,
    running_mean: &[E],
    running_var: &[E],
    saved: &mut [E],
    out: &mut [E],
) {
    let layout @ (_, channels, _) = bn_layout(x.shape());
    for c in 0..channels {
        let invstd = E::from_f64(1.0 / (Float::to_f64(running_var[c]) + args.eps).sqrt());
        saved[c] = running_mean[c];
        saved[channels + c] = invstd;
        bn_apply(
            x.data(),
            layout,
            c,
            gamma,
            beta,
            running_mean[c],
            invstd,
            out,
        );
    }
}

/// The gradients a fused VJP writes: each is computed only when given.
#[derive(Debug, Default)]
pub struct NormGrads<'a, E> {
    /// The input's gradient.
    pub x: Option<&'a mut [E]>,
    /// `gamma`'s gradient.
    pub gamma: Option<&'a mut [E]>,
    /// `beta`'s gradient.
    pub beta: Option<&'a mut [E]>,
}

/// Batch norm's VJP, from the `saved` statistics of [`batch_norm_train`] (`training`) or
/// [`batch_norm_eval`]. With `x̂ = (x - mean)·invstd` and sums over a channel's `m` values:
/// `dbeta = Σ dy`, `dgamma = Σ dy·x̂`, and `dx = gamma·invstd·(dy - Σdy/m - x̂·Σ(dy·x̂)/m)` in
/// training (the statistics depend on `x`), `dx = gamma·invstd·dy` in evaluation. Adds into
/// each gradient given when `ACC`, overwrites it otherwise.
pub fn batch_norm_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    gamma: Option<&[E]>,
    saved: &[E],
    training: bool,
    g: &[E],
    mut grads: NormGrads<'_, E>,
) {
    let (n, channels, inner) = bn_layout(x.shape());
    let data = x.data();
    let m = (n * inner) as f64;
    for c in 0..channels {
        let (mean, invstd) = (Float::to_f64(saved[c]), Float::to_f64(saved[channels + c]));
        let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
        for i in 0..n {
            let xs = plane(data, i, c, channels, inner);
            for (&v, &d) in xs.iter().zip(plane(g, i, c, channels, inner)) {
                let d = Float::to_f64(d);
                sum_g += d;
                sum_gx += d * (Float::to_f64(v) - mean) * invstd;
            }
        }
        if let Some(gb) = grads.beta.as_deref_mut() {
            store::<E, ACC>(&mut gb[c], E::from_f64(sum_g));
        }
        if let Some(gg) = grads.gamma.as_deref_mut() {
            store::<E, ACC>(&mut gg[c], E::from_f64(sum_gx));
        }
        let Some(gx) = grads.x.as_deref_mut() else {
            continue;
        };
        let scale = invstd * gamma.map_or(1.0, |w| Float::to_f64(w[c]));
        let (mean_g, mean_gx) = if training {
            (sum_g / m, sum_gx / m)
        } else {
            (0.0, 0.0)
        };
        for i in 0..n {
            let at = (i * channels + c) * inner;
            let rows = gx[at..at + inner]
                .iter_mut()
                .zip(&data[at..at + inner])
                .zip(&g[at..at + inner]);
            for ((d, &v), &dy) in rows {
                let xhat = (Float::to_f64(v) - mean) * invstd;
                let v = scale * (Float::to_f64(dy) - mean_g - xhat * mean_gx);
                store::<E, ACC>(d, E::from_f64(v));
            }
        }
    }
}

/// (rows, elements per row) of a layer norm over the trailing `axes` axes.
fn ln_layout(x: &Shape, axes: usize) -> (usize, usize) {
    let d = x.dims();
    let inner: usize = d[d.len() - axes..].iter().product();
    (d[..d.len() - axes].iter().product(), inner)
}

/// The output shape of `layer_norm` over the trailing `axes` axes of `x` (the input's): `axes`
/// is 1 to `x`'s rank, those axes hold at least one element, and `gamma` and `beta` (when given)
/// have their shape.
///
/// ```
/// use wengert_ops::kernels::norm::layer_norm_shape;
/// use wengert_ops::Shape;
/// let x = Shape::new(&[8, 16, 32]).unwrap();
/// let w = Shape::vector(32);
/// assert!(layer_norm_shape(&x, 1, Some(&w), Some(&w), 1e-5).is_ok());
/// ```
pub fn layer_norm_shape(
    x: &Shape,
    axes: usize,
    gamma: Option<&Shape>,
    beta: Option<&Shape>,
    eps: f64,
) -> Result<Shape> {
    if axes == 0 || axes > x.rank() {
        return Err(Error::InvalidArgument {
            op: LAYER_NORM,
            argument: "axes",
            value: axes as f64,
            requirement: format!("it must count 1 to {} trailing axes of {x}", x.rank()),
        });
    }
    check_eps(LAYER_NORM, eps)?;
    let normalized = &x.dims()[x.rank() - axes..];
    if let Some(bad) = [gamma, beta]
        .into_iter()
        .flatten()
        .find(|s| s.dims() != normalized)
    {
        return Err(Error::ShapeMismatch {
            op: LAYER_NORM,
            lhs: *x,
            rhs: *bad,
        });
    }
    if ln_layout(x, axes).1 == 0 {
        return Err(Error::EmptyBatch {
            op: LAYER_NORM,
            shape: *x,
        });
    }
    Ok(*x)
}

/// One row of [`layer_norm`]'s work: its output, its input, and where its mean and `invstd` go.
type LnRow<'a, E> = (((&'a mut [E], &'a [E]), &'a mut E), &'a mut E);

/// The length of layer norm's `saved` buffer: a mean and an `invstd` per row.
pub fn layer_norm_saved_len(x: &Shape, axes: usize) -> usize {
    2 * ln_layout(x, axes.min(x.rank())).0
}

/// Layer norm: each row (the trailing `axes` axes) normalised by its mean and biased variance,
/// then scaled and shifted elementwise; the statistics go to `saved` (`[mean; rows]` then
/// `[invstd; rows]`). Shapes as [`layer_norm_shape`] checked.
pub fn layer_norm<E: Float>(
    x: TensorRef<'_, E>,
    axes: usize,
    gamma: Option<&[E]>,
    beta: Option<&[E]>,
    eps: f64,
    saved: &mut [E],
    out: &mut [E],
) {
    let (rows, d) = ln_layout(x.shape(), axes);
    if d == 0 || rows == 0 {
        return;
    }
    let (means, invstds) = saved[..2 * rows].split_at_mut(rows);
    let row = |(((o, xs), mean), invstd): LnRow<'_, E>| {
        let mu = xs.iter().map(|&v| Float::to_f64(v)).sum::<f64>() / d as f64;
        let var = xs
            .iter()
            .map(|&v| (Float::to_f64(v) - mu).powi(2))
            .sum::<f64>()
            / d as f64;
        let is = 1.0 / (var + eps).sqrt();
        *mean = E::from_f64(mu);
        *invstd = E::from_f64(is);
        for (j, (o, &v)) in o.iter_mut().zip(xs).enumerate() {
            let y = (Float::to_f64(v) - mu) * is;
            let y = E::from_f64(y) * gamma.map_or(E::one(), |w| w[j]);
            *o = y + beta.map_or(E::zero(), |b| b[j]);
        }
    };
    let out = &mut out[..rows * d];
    if rows > 1 && rows * d >= PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(d)
            .zip(x.data().par_chunks(d))
            .zip(means.par_iter_mut())
            .zip(invstds.par_iter_mut())
            .for_each(row);
    } else {
        out.chunks_mut(d)
            .zip(x.data().chunks(d))
            .zip(means.iter_mut())
            .zip(invstds.iter_mut())
            .for_each(row);
    }
}

/// Layer norm's VJP from [`layer_norm`]'s `saved` statistics. With `x̂ = (x - mean)·invstd`
/// and `ĝ = dy·gamma` on each row of `D` elements: `dx = invstd·(ĝ - Σĝ/D - x̂·Σ(ĝ·x̂)/D)`,
/// and over the rows, in order, `dgamma = Σ dy·x̂`, `dbeta = Σ dy`. Adds into each gradient
/// given when `ACC`, overwrites it otherwise.
pub fn layer_norm_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axes: usize,
    gamma: Option<&[E]>,
    saved: &[E],
    g: &[E],
    mut grads: NormGrads<'_, E>,
) {
    let (rows, d) = ln_layout(x.shape(), axes);
    let data = x.data();
    let xhat = |r: usize, j: usize| {
        (Float::to_f64(data[r * d + j]) - Float::to_f64(saved[r])) * Float::to_f64(saved[rows + r])
    };
    for (grad, with_xhat) in [
        (grads.gamma.as_deref_mut(), true),
        (grads.beta.as_deref_mut(), false),
    ] {
        let Some(dst) = grad else { continue };
        if !ACC {
            dst[..d].fill(E::zero());
        }
        for r in 0..rows {
            for (j, t) in dst[..d].iter_mut().enumerate() {
                let dy = g[r * d + j];
                *t += if with_xhat {
                    dy * E::from_f64(xhat(r, j))
                } else {
                    dy
                };
            }
        }
    }
    let Some(gx) = grads.x.as_deref_mut() else {
        return;
    };
    let row = |(r, dst): (usize, &mut [E])| {
        let gh =
            |j: usize| Float::to_f64(g[r * d + j]) * gamma.map_or(1.0, |w| Float::to_f64(w[j]));
        let (mut sum, mut sum_x) = (0.0f64, 0.0f64);
        for j in 0..d {
            sum += gh(j);
            sum_x += gh(j) * xhat(r, j);
        }
        let (mean, mean_x) = (sum / d as f64, sum_x / d as f64);
        let invstd = Float::to_f64(saved[rows + r]);
        for (j, t) in dst.iter_mut().enumerate() {
            let v = invstd * (gh(j) - mean - xhat(r, j) * mean_x);
            store::<E, ACC>(t, E::from_f64(v));
        }
    };
    let gx = &mut gx[..rows * d];
    if d == 0 {
        return;
    }
    if rows > 1 && rows * d >= PARALLEL_MIN_ELEMENTS {
        gx.par_chunks_mut(d).enumerate().for_each(row);
    } else {
        gx.chunks_mut(d).enumerate().for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// Which of a norm's inputs a finite-difference check moves.
    #[derive(Debug, Clone, Copy)]
    enum Wrt {
        X,
        Gamma,
        Beta,
    }

    fn grads<'a>(wrt: Wrt, gi: &'a mut [f64]) -> NormGrads<'a, f64> {
        match wrt {
            Wrt::X => NormGrads {
                x: Some(gi),
                ..Default::default()
            },
            Wrt::Gamma => NormGrads {
                gamma: Some(gi),
                ..Default::default()
            },
            Wrt::Beta => NormGrads {
                beta: Some(gi),
                ..Default::default()
            },
        }
    }

    /// A norm's forward `(x, gamma, beta) → y`.
    type NormForward<'a> = &'a dyn Fn(&[f64], &[f64], &[f64]) -> Vec<f64>;

    /// A norm's VJP `(wrt, g, gi, accumulate)`.
    type NormVjp<'a> = &'a dyn Fn(Wrt, &[f64], &mut [f64], bool);

    /// The worst finite-difference error of a norm's VJP with respect to x and, when
    /// `affine`, gamma and beta: `run(x, gamma, beta)` is the forward, `vjp(wrt, g, gi, acc)`
    /// the gradient of the input `wrt` at `at`.
    fn fd_affine(
        affine: bool,
        at: [&[f64]; 3],
        run: NormForward<'_>,
        vjp: NormVjp<'_>,
        g: &[f64],
    ) -> f64 {
        let [x, gamma, beta] = at;
        let wrts: &[Wrt] = if affine {
            &[Wrt::X, Wrt::Gamma, Wrt::Beta]
        } else {
            &[Wrt::X]
        };
        let mut worst = 0.0f64;
        for &wrt in wrts {
            let pick = |v: &[f64]| match wrt {
                Wrt::X => run(v, gamma, beta),
                Wrt::Gamma => run(x, v, beta),
                Wrt::Beta => run(x, gamma, v),
            };
            let point = match wrt {
                Wrt::X => x,
                Wrt::Gamma => gamma,
                Wrt::Beta => beta,
            };
            let pull = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| vjp(wrt, g, gi, acc);
            worst = worst.max(fd_error(&pick, &pull, point, g));
        }
        worst
    }

    /// Batch norm's forward (training or evaluation, from fixed running statistics) against
    /// its definition and its VJP against finite differences for x, gamma and beta.
    fn check_batch_norm(dims: &[usize], affine: bool, training: bool, seed: u64) -> f64 {
        let s = shape(dims);
        let c = dims[1];
        let args = BatchNormArgs::default();
        let cs = Shape::vector(c);
        batch_norm_shape(&s, &[&cs, &cs, &cs, &cs], args, training).unwrap();
        let x = values(s.numel(), seed);
        let (gamma, beta) = (values(c, seed + 1), values(c, seed + 2));
        let rm = values(c, seed + 3);
        let rv: Vec<f64> = values(c, seed + 4).iter().map(|v| v.abs() + 0.1).collect();
        let run = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            let mut y = vec![f64::NAN; x.len()];
            let mut saved = vec![f64::NAN; 2 * c];
            let xt = TensorRef::trusted(&s, x);
            let (gm, bt) = (affine.then_some(gamma), affine.then_some(beta));
            if training {
                batch_norm_train(xt, gm, bt, args, None, &mut saved, &mut y);
            } else {
                batch_norm_eval(xt, gm, bt, args, &rm, &rv, &mut saved, &mut y);
            }
            (y, saved)
        };
        // The definition, channel by channel.
        let (y, _) = run(&x, &gamma, &beta);
        let inner: usize = dims[2..].iter().product();
        for ch in 0..c {
            let idx: Vec<usize> = (0..dims[0])
                .flat_map(|n| (0..inner).map(move |k| (n * c + ch) * inner + k))
                .collect();
            let vals: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
            let (mean, var) = if training {
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                (mean, var)
            } else {
                (rm[ch], rv[ch])
            };
            for &i in &idx {
                let mut want = (x[i] - mean) / (var + 1e-5).sqrt();
                if affine {
                    want = want * gamma[ch] + beta[ch];
                }
                assert!(
                    (y[i] - want).abs() < 1e-12,
                    "{dims:?} at {i}: {} vs {want}",
                    y[i]
                );
            }
        }
        let g = values(s.numel(), seed + 5);
        let vjp = |wrt: Wrt, g: &[f64], gi: &mut [f64], acc: bool| {
            let (_, saved) = run(&x, &gamma, &beta);
            let xt = TensorRef::trusted(&s, &x);
            let gm = affine.then_some(&gamma[..]);
            if acc {
                batch_norm_vjp::<f64, true>(xt, gm, &saved, training, g, grads(wrt, gi));
            } else {
                batch_norm_vjp::<f64, false>(xt, gm, &saved, training, g, grads(wrt, gi));
            }
        };
        fd_affine(
            affine,
            [&x, &gamma, &beta],
            &|x, gm, bt| run(x, gm, bt).0,
            &vjp,
            &g,
        )
    }

    #[test]
    fn batch_norm_matches_its_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for dims in [
            &[4usize, 3][..],
            &[2, 3, 5],
            &[2, 2, 3, 3],
            &[1, 2, 2],
            &[3, 0, 2],
        ] {
            for affine in [true, false] {
                for training in [true, false] {
                    let err = check_batch_norm(dims, affine, training, 1);
                    assert!(err < FD_TOL, "{dims:?} {affine} {training}: {err}");
                    worst = worst.max(err);
                }
            }
        }
        eprintln!("fd worst batch norm: {worst:e}");
    }

    #[test]
    fn running_statistics_follow_pytorch() {
        // One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
        let s = shape(&[4, 1]);
        let x = [1.0, 2.0, 3.0, 4.0];
        let (mut rm, mut rv) = ([0.0], [1.0]);
        let mut saved = [0.0; 2];
        let mut y = [0.0; 4];
        let args = BatchNormArgs::default();
        let xt = TensorRef::trusted(&s, &x);
        batch_norm_train(
            xt,
            None,
            None,
            args,
            Some((&mut rm, &mut rv)),
            &mut saved,
            &mut y,
        );
        assert_eq!(saved, [2.5, 1.0 / (1.25f64 + 1e-5).sqrt()]);
        assert!((rm[0] - 0.25).abs() < 1e-15);
        assert!((rv[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-15);
        assert!((y[0] + 1.5 / (1.25f64 + 1e-5).sqrt()).abs() < 1e-15);
        // Evaluation uses the running statistics, and leaves them alone.
        batch_norm_eval(
            xt,
            Some(&[2.0]),
            Some(&[1.0]),
            args,
            &rm,
            &rv,
            &mut saved,
            &mut y,
        );
        assert!((y[0] - (2.0 * (1.0 - rm[0]) / (rv[0] + 1e-5).sqrt() + 1.0)).abs() < 1e-15);
    }

    #[test]
    fn batch_norm_errors_name_the_argument() {
        let x = shape(&[4, 3, 2]);
        let args = BatchNormArgs::default();
        let c = Shape::vector(3);
        assert!(batch_norm_shape(&x, &[&c], args, true).is_ok());
        let bad = Shape::vector(2);
        assert_eq!(
            batch_norm_shape(&x, &[&c, &bad], args, true).unwrap_err(),
            Error::ShapeMismatch {
                op: BATCH_NORM,
                lhs: x,
                rhs: bad
            }
        );
        assert!(matches!(
            batch_norm_shape(&Shape::vector(3), &[], args, true),
            Err(Error::WrongRank { op: BATCH_NORM, .. })
        ));
        let err = batch_norm_shape(&shape(&[1, 3]), &[], args, true).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    argument: "values per channel",
                    ..
                }
            ),
            "{err}"
        );
        assert!(batch_norm_shape(&shape(&[1, 3]), &[], args, false).is_ok());
        for (eps, momentum, name) in [
            (-1.0, 0.1, "eps"),
            (f64::NAN, 0.1, "eps"),
            (1e-5, 1.5, "momentum"),
        ] {
            let err = batch_norm_shape(&x, &[], BatchNormArgs { eps, momentum }, true).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { argument, .. } if argument == name),
                "{err}"
            );
        }
    }

    fn check_layer_norm(dims: &[usize], axes: usize, affine: bool, seed: u64) -> f64 {
        let s = shape(dims);
        let ws = shape(&dims[dims.len() - axes..]);
        let eps = 1e-5;
        layer_norm_shape(&s, axes, Some(&ws), Some(&ws), eps).unwrap();
        let x = values(s.numel(), seed);
        let (gamma, beta) = (values(ws.numel(), seed + 1), values(ws.numel(), seed + 2));
        let saved_len = layer_norm_saved_len(&s, axes);
        let run = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            let mut y = vec![f64::NAN; x.len()];
            let mut saved = vec![f64::NAN; saved_len];
            let (gm, bt) = (affine.then_some(gamma), affine.then_some(beta));
            layer_norm(
                TensorRef::trusted(&s, x),
                axes,
                gm,
                bt,
                eps,
                &mut saved,
                &mut y,
            );
            (y, saved)
        };
        let (y, _) = run(&x, &gamma, &beta);
        let d = ws.numel();
        for (r, (xs, ys)) in x.chunks(d).zip(y.chunks(d)).enumerate() {
            let mean = xs.iter().sum::<f64>() / d as f64;
            let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            for j in 0..d {
                let mut want = (xs[j] - mean) / (var + eps).sqrt();
                if affine {
                    want = want * gamma[j] + beta[j];
                }
                assert!((ys[j] - want).abs() < 1e-12, "{dims:?} row {r} at {j}");
            }
        }
        let g = values(s.numel(), seed + 5);
        let vjp = |wrt: Wrt, g: &[f64], gi: &mut [f64], acc: bool| {
            let (_, saved) = run(&x, &gamma, &beta);
            let xt = TensorRef::trusted(&s, &x);
            let gm = affine.then_some(&gamma[..]);
            if acc {
                layer_norm_vjp::<f64, true>(xt, axes, gm, &saved, g, grads(wrt, gi));
            } else {
                layer_norm_vjp::<f64, false>(xt, axes, gm, &saved, g, grads(wrt, gi));
            }
        };
        fd_affine(
            affine,
            [&x, &gamma, &beta],
            &|x, gm, bt| run(x, gm, bt).0,
            &vjp,
            &g,
        )
    }

    #[test]
    fn layer_norm_matches_its_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, axes) in [
            (&[3usize, 5][..], 1),
            (&[2, 3, 4], 2),
            (&[2, 3, 4], 3),
            (&[4, 1], 1),
            (&[0, 3], 1),
            (&[7], 1),
        ] {
            for affine in [true, false] {
                let err = check_layer_norm(dims, axes, affine, 2);
                assert!(err < FD_TOL, "{dims:?} {axes} {affine}: {err}");
                worst = worst.max(err);
            }
        }
        eprintln!("fd worst layer norm: {worst:e}");
    }

    #[test]
    fn layer_norm_by_hand_and_its_errors() {
        // [1, 2, 3]: mean 2, variance 2/3.
        let s = shape(&[1, 3]);
        let mut y = [0.0; 3];
        let mut saved = [0.0; 2];
        layer_norm(
            TensorRef::trusted(&s, &[1.0, 2.0, 3.0]),
            1,
            None,
            None,
            0.0,
            &mut saved,
            &mut y,
        );
        let r = (1.5f64).sqrt();
        assert_eq!(saved, [2.0, r]);
        assert_eq!(y, [-r, 0.0, r]);
        let x = shape(&[2, 3, 4]);
        let err = layer_norm_shape(&x, 0, None, None, 1e-5).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidArgument {
                op: LAYER_NORM,
                argument: "axes",
                ..
            }
        ));
        assert!(layer_norm_shape(&x, 4, None, None, 1e-5).is_err());
        let w = shape(&[4, 3]);
        assert_eq!(
            layer_norm_shape(&x, 2, Some(&w), None, 1e-5).unwrap_err(),
            Error::ShapeMismatch {
                op: LAYER_NORM,
                lhs: x,
                rhs: w
            }
        );
        assert!(matches!(
            layer_norm_shape(&shape(&[2, 0]), 1, None, None, 1e-5),
            Err(Error::EmptyBatch { op: LAYER_NORM, .. })
        ));
    }

    #[test]
    fn layer_norm_is_bit_identical_for_any_thread_count() {
        let s = shape(&[256, 512]);
        let x = values(s.numel(), 1);
        let (gamma, g) = (values(512, 2), values(s.numel(), 3));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let xt = TensorRef::trusted(&s, &x);
                let mut y = vec![0.0; x.len()];
                let mut saved = vec![0.0; 512];
                layer_norm(xt, 1, Some(&gamma), None, 1e-5, &mut saved, &mut y);
                let mut dx = vec![0.0; x.len()];
                let gr = NormGrads {
                    x: Some(&mut dx[..]),
                    ..Default::default()
                };
                layer_norm_vjp::<f64, false>(xt, 1, Some(&gamma), &saved, &g, gr);
                y.iter().chain(&dx).map(|v| v.to_bits()).collect::<Vec<_>>()
            })
        };
        assert_eq!(run(1), run(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_norms(
            n in 1usize..4, c in 1usize..4, l in 1usize..4, affine in proptest::bool::ANY,
            training in proptest::bool::ANY, seed in 0u64..1000,
        ) {
            prop_assume!(!training || n * l > 1);
            prop_assert!(check_batch_norm(&[n, c, l], affine, training, seed) < FD_TOL);
            prop_assert!(check_layer_norm(&[n, c, l], 2, affine, seed) < FD_TOL);
        }
    }
}
