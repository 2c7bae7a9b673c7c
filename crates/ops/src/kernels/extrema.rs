//! Maxima and minima over all elements or along one axis: the values (`amax`, `amin`), the
//! positions (`argmax`, `argmin`, as floats), and the two gradient rules PyTorch has for them.
//!
//! NaN counts as the extreme in both directions, as in PyTorch: a lane holding NaN has the
//! value NaN and, for the positions, the index of its first NaN. Among equal extremes the
//! first position wins.
//!
//! - [`extremum`] / [`extremum_vjp`]: `torch.amax` / `torch.amin`; the gradient is shared
//!   evenly among the elements equal to the extreme.
//! - [`arg_extremum`]: `torch.argmax` / `torch.argmin`, no gradient. Over all elements the
//!   index is into the flattened array.
//! - [`extremum_at_vjp`]: the gradient of `torch.max(x, dim)`'s values, sent whole to the
//!   position [`arg_extremum`] returned. Its forward values are [`extremum`]'s.

use super::lanes::{Lanes, reduced_shape};
use super::unary::store;
use crate::{Float, Result, Shape, TensorRef};

/// Which extreme a kernel looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extreme {
    /// The largest element.
    Max,
    /// The smallest element.
    Min,
}

impl Extreme {
    /// Whether `v` displaces the current extreme `best`: strictly beyond it (so the first of
    /// equal extremes stays), or NaN where `best` is not.
    #[inline(always)]
    fn displaces<E: Float>(self, v: E, best: E) -> bool {
        let beyond = match self {
            Extreme::Max => v > best,
            Extreme::Min => v < best,
        };
        beyond || (v.is_nan() && !best.is_nan())
    }
}

/// The output shape of any of this module's reductions of `x` along `axis` (all elements for
/// `None`); an empty lane is an [`EmptyBatch`](crate::Error::EmptyBatch) error, since it has
/// no extreme.
pub fn extremum_shape(
    op: &'static str,
    x: &Shape,
    axis: Option<usize>,
    keep_dim: bool,
) -> Result<Shape> {
    reduced_shape(op, x, axis, keep_dim, false)
}

/// The position (within its lane) and value of lane `j`'s extreme.
#[inline(always)]
fn find<E: Float>(data: &[E], lanes: Lanes, j: usize, which: Extreme) -> (usize, E) {
    let start = lanes.start(j);
    if lanes.len == 0 {
        // The shape function refuses empty lanes; a caller that skipped it gets NaN, not a panic.
        return (0, E::nan());
    }
    let mut best = (0, data[start]);
    if lanes.inner == 1 {
        for (k, &v) in data[start..start + lanes.len].iter().enumerate().skip(1) {
            if which.displaces(v, best.1) {
                best = (k, v);
            }
        }
    } else {
        for (k, o) in lanes.offsets(j).enumerate().skip(1) {
            if which.displaces(data[o], best.1) {
                best = (k, data[o]);
            }
        }
    }
    best
}

/// `out[j]` = the extreme of lane `j` of `x` (`torch.amax` / `torch.amin`).
pub fn extremum<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, which: Extreme, out: &mut [E]) {
    let lanes = Lanes::of(x.shape(), axis);
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        *o = find(x.data(), lanes, j, which).1;
    }
}

/// `out[j]` = the position of lane `j`'s extreme along the lane (the flat index for `axis`
/// `None`), as a float (`torch.argmax` / `torch.argmin`).
pub fn arg_extremum<E: Float>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    which: Extreme,
    out: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        *o = E::from_usize(find(x.data(), lanes, j, which).0);
    }
}

/// y = amax x (or amin): dx = dy·[x = y] / #{x = y} over each lane; a lane whose extreme is
/// NaN gets NaN everywhere (as PyTorch, whose count of matches is then 0).
///
/// `y` is [`extremum`]'s output. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn extremum_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    y: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for j in 0..lanes.count() {
        let ties = lanes.offsets(j).filter(|&o| data[o] == y[j]).count();
        let share = g[j] / E::from_usize(ties);
        for o in lanes.offsets(j) {
            let v = if ties == 0 {
                // A NaN extreme matches nothing: PyTorch's dy / 0 · 0.
                E::nan()
            } else if data[o] == y[j] {
                share
            } else {
                E::zero()
            };
            store::<E, ACC>(&mut gi[o], v);
        }
    }
}

/// `y = x[argmax]` per lane (`torch.max(x, dim).values`): `dx = dy` at the position `indices`
/// holds (the output of [`arg_extremum`]), 0 elsewhere.
///
/// Adds into `gi` when `ACC`, overwrites it otherwise. An index outside its lane (which
/// [`arg_extremum`] never returns) sends nothing.
pub fn extremum_at_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    axis: Option<usize>,
    indices: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x, axis);
    for j in 0..lanes.count() {
        let k = indices[j].to_f64();
        for (pos, o) in lanes.offsets(j).enumerate() {
            let v = if pos as f64 == k { g[j] } else { E::zero() };
            store::<E, ACC>(&mut gi[o], v);
        }
    }
}

/// `y = x[first extreme]` per lane, the position found again from `x` (as
/// [`arg_extremum`] finds it): `dx = dy` there, 0 elsewhere. [`extremum_at_vjp`] without the
/// indices, for a caller that holds only the input (the tape's sweep), at no allocation.
///
/// Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn extremum_first_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    which: Extreme,
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    for (j, &gj) in g.iter().enumerate().take(lanes.count()) {
        let at = find(x.data(), lanes, j, which).0;
        for (pos, o) in lanes.offsets(j).enumerate() {
            let v = if pos == at { gj } else { E::zero() };
            store::<E, ACC>(&mut gi[o], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// The extreme and its first position of each lane, found by the book: walk every element,
    /// drop the reduced axis from its index to find its output, keep the first extreme.
    fn naive(
        x: &[f64],
        dims: &[usize],
        axis: Option<usize>,
        which: Extreme,
    ) -> (Vec<f64>, Vec<f64>) {
        let out_dims: Vec<usize> = match axis {
            Some(a) => dims
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != a)
                .map(|(_, &d)| d)
                .collect(),
            None => vec![],
        };
        let n: usize = out_dims.iter().product();
        let mut best: Vec<Option<(f64, usize)>> = vec![None; n];
        for (i, &v) in x.iter().enumerate() {
            let idx = unravel(i, dims);
            let (j, pos) = match axis {
                Some(a) => {
                    let mut rest = idx.clone();
                    let pos = rest.remove(a);
                    (ravel(&rest, &out_dims), pos)
                }
                None => (0, i),
            };
            let better = match best[j] {
                None => true,
                Some((b, _)) => match which {
                    Extreme::Max => v > b,
                    Extreme::Min => v < b,
                },
            };
            if better {
                best[j] = Some((v, pos));
            }
        }
        best.iter()
            .map(|b| {
                let (v, p) = b.unwrap();
                (v, p as f64)
            })
            .unzip()
    }

    fn check_against_naive(dims: &[usize], axis: Option<usize>, x: &[f64]) {
        let s = shape(dims);
        for which in [Extreme::Max, Extreme::Min] {
            let out_shape = extremum_shape("max", &s, axis, false).unwrap();
            let (want_v, want_i) = naive(x, dims, axis, which);
            let mut v = vec![0.0; out_shape.numel()];
            let mut i = vec![0.0; out_shape.numel()];
            extremum(TensorRef::trusted(&s, x), axis, which, &mut v);
            arg_extremum(TensorRef::trusted(&s, x), axis, which, &mut i);
            assert_eq!(v, want_v, "{dims:?} {axis:?} {which:?}");
            assert_eq!(i, want_i, "{dims:?} {axis:?} {which:?}");
        }
    }

    #[test]
    fn extremes_match_the_naive_reduction() {
        for (dims, axis) in [
            (&[2usize, 3, 4][..], Some(0)),
            (&[2, 3, 4], Some(1)),
            (&[2, 3, 4], Some(2)),
            (&[2, 3, 4], None),
            (&[1, 5], Some(0)),
            (&[5, 1], Some(1)),
            (&[0, 3], Some(1)),
            (&[], None),
        ] {
            let n = dims.iter().product();
            check_against_naive(dims, axis, &values(n, 3));
            // Ties everywhere: small integers.
            let ties: Vec<f64> = values(n, 4).iter().map(|v| v.round()).collect();
            check_against_naive(dims, axis, &ties);
        }
    }

    #[test]
    fn keep_dim_and_empty_lanes() {
        let s = shape(&[2, 3]);
        assert_eq!(
            extremum_shape("max", &s, Some(0), true).unwrap().dims(),
            &[1, 3]
        );
        assert_eq!(
            extremum_shape("max", &s, None, true).unwrap().dims(),
            &[1, 1]
        );
        assert!(matches!(
            extremum_shape("argmax", &shape(&[2, 0]), Some(1), false),
            Err(crate::Error::EmptyBatch { op: "argmax", .. })
        ));
        // An empty output (lanes of length 3, none of them) is fine.
        assert_eq!(
            extremum_shape("max", &shape(&[0, 3]), Some(1), false)
                .unwrap()
                .dims(),
            &[0]
        );
    }

    #[test]
    fn nan_is_the_extreme_both_ways() {
        let s = shape(&[4]);
        let x = [1.0, f64::NAN, 3.0, f64::NAN];
        for which in [Extreme::Max, Extreme::Min] {
            let mut v = [0.0];
            let mut i = [0.0];
            extremum(TensorRef::trusted(&s, &x), None, which, &mut v);
            arg_extremum(TensorRef::trusted(&s, &x), None, which, &mut i);
            assert!(v[0].is_nan());
            assert_eq!(i[0], 1.0);
            let mut gi = [0.0; 4];
            extremum_vjp::<f64, false>(TensorRef::trusted(&s, &x), None, &v, &[1.0], &mut gi);
            assert!(gi.iter().all(|g| g.is_nan()));
        }
    }

    #[test]
    fn ties_share_the_gradient_and_the_indexed_form_takes_it_whole() {
        let s = shape(&[2, 3]);
        let x = [1.0, 5.0, 5.0, 2.0, 2.0, 2.0];
        let mut y = [0.0; 2];
        extremum(TensorRef::trusted(&s, &x), Some(1), Extreme::Max, &mut y);
        let mut gi = [f64::NAN; 6];
        extremum_vjp::<f64, false>(
            TensorRef::trusted(&s, &x),
            Some(1),
            &y,
            &[6.0, 3.0],
            &mut gi,
        );
        assert_eq!(gi, [0.0, 3.0, 3.0, 1.0, 1.0, 1.0]);
        let mut idx = [0.0; 2];
        arg_extremum(TensorRef::trusted(&s, &x), Some(1), Extreme::Max, &mut idx);
        assert_eq!(idx, [1.0, 0.0]);
        let mut gi = [1.0; 6];
        extremum_at_vjp::<f64, true>(&s, Some(1), &idx, &[6.0, 3.0], &mut gi);
        assert_eq!(gi, [1.0, 7.0, 1.0, 4.0, 1.0, 1.0]);
    }

    /// The worst finite-difference error of both gradient rules on `x` (which must have no
    /// ties: at a tie the extreme is not differentiable).
    fn fd(dims: &[usize], axis: Option<usize>, x: &[f64]) -> f64 {
        let s = shape(dims);
        let out = extremum_shape("max", &s, axis, false).unwrap();
        let g = values(out.numel(), 11);
        let mut worst = 0.0f64;
        for which in [Extreme::Max, Extreme::Min] {
            let f = |x: &[f64]| {
                let mut y = vec![0.0; out.numel()];
                extremum(TensorRef::trusted(&s, x), axis, which, &mut y);
                y
            };
            let vjp = |x: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                let y = f(x);
                let xt = TensorRef::trusted(&s, x);
                if acc {
                    extremum_vjp::<f64, true>(xt, axis, &y, g, gi)
                } else {
                    extremum_vjp::<f64, false>(xt, axis, &y, g, gi)
                }
            };
            worst = worst.max(fd_error(&f, &vjp, x, &g));
            let at_vjp = |x: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                let mut idx = vec![0.0; out.numel()];
                arg_extremum(TensorRef::trusted(&s, x), axis, which, &mut idx);
                if acc {
                    extremum_at_vjp::<f64, true>(&s, axis, &idx, g, gi)
                } else {
                    extremum_at_vjp::<f64, false>(&s, axis, &idx, g, gi)
                }
            };
            worst = worst.max(fd_error(&f, &at_vjp, x, &g));
        }
        worst
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, axis) in [
            (&[3usize, 4][..], Some(0)),
            (&[3, 4], Some(1)),
            (&[2, 3, 2], Some(1)),
            (&[3, 4], None),
            (&[1, 4], Some(0)),
        ] {
            let x = values(dims.iter().product(), 7);
            let err = fd(dims, axis, &x);
            assert!(err < FD_TOL, "{dims:?} {axis:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst extrema: {worst:e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_shapes_match_naive_and_finite_differences(
            dims in proptest::collection::vec(1usize..4, 1..4),
            axis_pick in 0usize..4,
            seed in 0u64..1000,
        ) {
            let axis = (axis_pick < dims.len()).then_some(axis_pick);
            let x = values(dims.iter().product(), seed);
            check_against_naive(&dims, axis, &x);
            prop_assert!(fd(&dims, axis, &x) < FD_TOL);
        }
    }
}
