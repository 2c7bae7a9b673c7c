//! Softmax and log-softmax along any axis (`torch.softmax(x, dim)`,
//! `torch.log_softmax(x, dim)`).
//!
//! Along the last axis these call [`super::softmax`]'s row kernels unchanged; along another
//! axis they run the same arithmetic, in the same order, on each strided lane, so the two
//! paths agree bit for bit on the same lane.

use super::lanes::Lanes;
use super::softmax;
use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

/// The output shape (the input's), or [`AxisOutOfRange`](Error::AxisOutOfRange) naming `op`
/// (`"softmax"` or `"log_softmax"`) when `x` has no axis `axis` (a scalar has none).
pub fn softmax_axis_shape(op: &'static str, x: &Shape, axis: usize) -> Result<Shape> {
    if axis >= x.rank() {
        return Err(Error::AxisOutOfRange {
            op,
            axis,
            shape: *x,
        });
    }
    Ok(*x)
}

/// Whether `axis` is the last axis, where the contiguous row kernels apply.
#[inline]
fn is_last(shape: &Shape, axis: usize) -> bool {
    axis + 1 == shape.rank()
}

/// The lane's maximum, NaN not winning (as [`softmax`]'s rows).
#[inline]
fn lane_max<E: Float>(data: &[E], lanes: Lanes, j: usize) -> E {
    lanes.offsets(j).fold(
        E::neg_infinity(),
        |m, k| if data[k] > m { data[k] } else { m },
    )
}

/// `out = softmax(x)` along `axis`: `exp(x - max) / Σ exp(x - max)` on each lane.
pub fn softmax_along<E: Float>(x: TensorRef<'_, E>, axis: usize, out: &mut [E]) {
    if is_last(x.shape(), axis) {
        return softmax::softmax(x, out);
    }
    let lanes = Lanes::of(x.shape(), Some(axis));
    let data = x.data();
    for j in 0..lanes.count() {
        let m = lane_max(data, lanes, j);
        let mut s = E::zero();
        for k in lanes.offsets(j) {
            out[k] = (data[k] - m).exp();
            s += out[k];
        }
        let inv = E::one() / s;
        for k in lanes.offsets(j) {
            out[k] *= inv;
        }
    }
}

/// `out = log_softmax(x)` along `axis`: `(x - max) - ln Σ exp(x - max)` on each lane.
pub fn log_softmax_along<E: Float>(x: TensorRef<'_, E>, axis: usize, out: &mut [E]) {
    if is_last(x.shape(), axis) {
        return softmax::log_softmax(x, out);
    }
    let lanes = Lanes::of(x.shape(), Some(axis));
    let data = x.data();
    for j in 0..lanes.count() {
        let m = lane_max(data, lanes, j);
        let s: E = lanes.offsets(j).map(|k| (data[k] - m).exp()).sum();
        let ln_s = s.ln();
        for k in lanes.offsets(j) {
            out[k] = (data[k] - m) - ln_s;
        }
    }
}

/// y = softmax x along `axis`: dx = y·(dy - Σ dy·y) on each lane. Adds into `gi` when `ACC`,
/// overwrites it otherwise.
pub fn softmax_along_vjp<E: Float, const ACC: bool>(
    y: TensorRef<'_, E>,
    axis: usize,
    g: &[E],
    gi: &mut [E],
) {
    if is_last(y.shape(), axis) {
        if !ACC {
            gi.fill(E::zero());
        }
        return softmax::softmax_vjp(y, g, gi);
    }
    let lanes = Lanes::of(y.shape(), Some(axis));
    let yd = y.data();
    for j in 0..lanes.count() {
        let dot: E = lanes.offsets(j).map(|k| yd[k] * g[k]).sum();
        for k in lanes.offsets(j) {
            store::<E, ACC>(&mut gi[k], yd[k] * (g[k] - dot));
        }
    }
}

/// y = log_softmax x along `axis`: dx = dy - exp(y)·Σ dy on each lane. Adds into `gi` when
/// `ACC`, overwrites it otherwise.
pub fn log_softmax_along_vjp<E: Float, const ACC: bool>(
    y: TensorRef<'_, E>,
    axis: usize,
    g: &[E],
    gi: &mut [E],
) {
    if is_last(y.shape(), axis) {
        if !ACC {
            gi.fill(E::zero());
        }
        return softmax::log_softmax_vjp(y, g, gi);
    }
    let lanes = Lanes::of(y.shape(), Some(axis));
    let yd = y.data();
    for j in 0..lanes.count() {
        let total: E = lanes.offsets(j).map(|k| g[k]).sum();
        for k in lanes.offsets(j) {
            store::<E, ACC>(&mut gi[k], g[k] - yd[k].exp() * total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    /// Softmax (or log-softmax) by the book, lane by lane in f64.
    fn naive(x: &[f64], s: &Shape, axis: usize, log: bool) -> Vec<f64> {
        let lanes = Lanes::of(s, Some(axis));
        let mut out = vec![0.0; x.len()];
        for j in 0..lanes.count() {
            let ks: Vec<usize> = lanes.offsets(j).collect();
            let lse = ks.iter().map(|&k| x[k].exp()).sum::<f64>().ln();
            for &k in &ks {
                out[k] = if log { x[k] - lse } else { (x[k] - lse).exp() };
            }
        }
        out
    }

    fn check(dims: &[usize], axis: usize, x: &[f64]) -> f64 {
        let s = Shape::new(dims).unwrap();
        let mut worst = 0.0f64;
        for log in [false, true] {
            let f = |x: &[f64]| {
                let mut y = vec![0.0; x.len()];
                let xt = TensorRef::trusted(&s, x);
                if log {
                    log_softmax_along(xt, axis, &mut y)
                } else {
                    softmax_along(xt, axis, &mut y)
                }
                y
            };
            let y = f(x);
            for (a, b) in y.iter().zip(naive(x, &s, axis, log)) {
                assert!((a - b).abs() <= 1e-13 * b.abs().max(1.0), "{dims:?} {axis}");
            }
            let vjp = |x: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                let y = f(x);
                let yt = TensorRef::trusted(&s, &y);
                match (log, acc) {
                    (false, true) => softmax_along_vjp::<f64, true>(yt, axis, g, gi),
                    (false, false) => softmax_along_vjp::<f64, false>(yt, axis, g, gi),
                    (true, true) => log_softmax_along_vjp::<f64, true>(yt, axis, g, gi),
                    (true, false) => log_softmax_along_vjp::<f64, false>(yt, axis, g, gi),
                }
            };
            worst = worst.max(fd_error(&f, &vjp, x, &values(x.len(), 23)));
        }
        worst
    }

    #[test]
    fn every_axis_matches_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, axis) in [
            (&[3usize, 4][..], 0),
            (&[3, 4], 1),
            (&[2, 3, 2], 0),
            (&[2, 3, 2], 1),
            (&[2, 3, 2], 2),
            (&[1, 4], 0),
            (&[4, 1], 1),
            (&[5], 0),
            (&[0, 3], 0),
            (&[3, 0], 0),
        ] {
            let x = values(dims.iter().product(), 29);
            let err = check(dims, axis, &x);
            assert!(err < FD_TOL, "{dims:?} {axis}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst softmax/log_softmax along an axis: {worst:e}");
    }

    #[test]
    fn a_strided_lane_gives_the_bits_of_the_same_row() {
        // x is [3, 2]: softmax along axis 0 of x is softmax along axis 1 of xᵀ.
        let x = [1e4f32, -3.0, 1e4, 7.5, -1e4, 0.25];
        let xt = [1e4f32, 1e4, -1e4, -3.0, 7.5, 0.25];
        let (s, st) = (Shape::new(&[3, 2]).unwrap(), Shape::new(&[2, 3]).unwrap());
        let (mut a, mut b) = ([0.0f32; 6], [0.0f32; 6]);
        for log in [false, true] {
            if log {
                log_softmax_along(TensorRef::trusted(&s, &x), 0, &mut a);
                log_softmax_along(TensorRef::trusted(&st, &xt), 1, &mut b);
            } else {
                softmax_along(TensorRef::trusted(&s, &x), 0, &mut a);
                softmax_along(TensorRef::trusted(&st, &xt), 1, &mut b);
            }
            for r in 0..3 {
                for c in 0..2 {
                    assert_eq!(a[r * 2 + c].to_bits(), b[c * 3 + r].to_bits());
                }
            }
        }
    }

    #[test]
    fn a_missing_axis_is_an_error() {
        let s = Shape::new(&[2, 3]).unwrap();
        assert!(softmax_axis_shape("softmax", &s, 1).is_ok());
        assert_eq!(
            softmax_axis_shape("log_softmax", &s, 2),
            Err(Error::AxisOutOfRange {
                op: "log_softmax",
                axis: 2,
                shape: s
            })
        );
        assert!(softmax_axis_shape("softmax", &Shape::SCALAR, 0).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_shapes(
            dims in proptest::collection::vec(1usize..4, 1..4),
            axis_pick in 0usize..3,
            seed in 0u64..1000,
        ) {
            let axis = axis_pick % dims.len();
            let x = values(dims.iter().product(), seed);
            prop_assert!(check(&dims, axis, &x) < FD_TOL);
        }
    }
}
