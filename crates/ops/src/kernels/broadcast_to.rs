//! `broadcast_to`: repeat an array along axes of length 1 and new leading axes to reach a
//! shape (`torch.broadcast_to`, NumPy's rules); its VJP sums the gradient back.

use super::binary::broadcast_strides;
use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const BROADCAST_TO: &str = "broadcast_to";

/// `to`, if `x` broadcasts to it: `to` has at least `x`'s rank and, aligning trailing axes,
/// each of `x`'s lengths is `to`'s or 1. Otherwise a
/// [`ShapeMismatch`](Error::ShapeMismatch) naming both.
pub fn broadcast_to_shape(x: &Shape, to: &Shape) -> Result<Shape> {
    let offset = to.rank().checked_sub(x.rank());
    let fits = offset.is_some_and(|offset| {
        x.dims()
            .iter()
            .enumerate()
            .all(|(a, &d)| d == 1 || d == to.dims()[a + offset])
    });
    if !fits {
        return Err(Error::ShapeMismatch {
            op: BROADCAST_TO,
            lhs: *x,
            rhs: *to,
        });
    }
    Ok(*to)
}

/// `out` = `x` repeated to shape `to` (as [`broadcast_to_shape`] checked).
pub fn broadcast_to<E: Float>(x: TensorRef<'_, E>, to: &Shape, out: &mut [E]) {
    let data = x.data();
    walk2(
        to.dims(),
        &broadcast_strides(x.shape(), to),
        &[0; MAX_RANK],
        |i, s, _| out[i] = data[s],
    );
}

/// y = broadcast_to(x): dx = dy summed over the repeated positions, in row-major order of `y`
/// (deterministic). Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn broadcast_to_vjp<E: Float, const ACC: bool>(x: &Shape, to: &Shape, g: &[E], gi: &mut [E]) {
    if !ACC {
        gi.fill(E::zero());
    }
    walk2(
        to.dims(),
        &broadcast_strides(x, to),
        &[0; MAX_RANK],
        |i, s, _| gi[s] += g[i],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};

    fn check(from: &[usize], to: &[usize], seed: u64) -> f64 {
        let (s, t) = (Shape::new(from).unwrap(), Shape::new(to).unwrap());
        assert_eq!(broadcast_to_shape(&s, &t).unwrap(), t);
        let x = values(s.numel(), seed);
        let f = |x: &[f64]| {
            let mut y = vec![0.0; t.numel()];
            broadcast_to(TensorRef::trusted(&s, x), &t, &mut y);
            y
        };
        let want: Vec<f64> = (0..t.numel())
            .map(|i| {
                let idx = unravel(i, to);
                let off = to.len() - from.len();
                let src: Vec<usize> = from
                    .iter()
                    .enumerate()
                    .map(|(a, &d)| if d == 1 { 0 } else { idx[a + off] })
                    .collect();
                x[ravel(&src, from)]
            })
            .collect();
        assert_eq!(f(&x), want, "{from:?} -> {to:?}");
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                broadcast_to_vjp::<f64, true>(&s, &t, g, gi)
            } else {
                broadcast_to_vjp::<f64, false>(&s, &t, g, gi)
            }
        };
        fd_error(&f, &vjp, &x, &values(t.numel(), seed + 1))
    }

    #[test]
    fn broadcasts_match_numpy_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[2, 3]),
            (&[2, 1], &[2, 4]),
            (&[], &[2, 2]),
            (&[1, 3, 1], &[2, 1, 3, 2]),
            (&[2, 3], &[2, 3]),
            (&[1], &[0]),
            (&[0, 1], &[4, 0, 3]),
        ];
        for &(from, to) in cases {
            let err = check(from, to, 5);
            assert!(err < FD_TOL, "{from:?} {to:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst broadcast_to: {worst:e}");
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        for (from, to) in [
            (&[2usize][..], &[3usize][..]),
            (&[2, 3], &[3]),
            (&[2, 3], &[3, 2]),
            (&[0], &[2]),
        ] {
            let (s, t) = (Shape::new(from).unwrap(), Shape::new(to).unwrap());
            assert!(
                matches!(
                    broadcast_to_shape(&s, &t),
                    Err(Error::ShapeMismatch {
                        op: BROADCAST_TO,
                        ..
                    })
                ),
                "{from:?} {to:?}"
            );
        }
    }
}
