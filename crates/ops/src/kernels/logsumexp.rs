//! `logsumexp`: `ln Σ eˣ` over all elements or along one axis, without overflow
//! (`torch.logsumexp`).

use super::lanes::{Lanes, reduced_shape};
use super::unary::store;
use crate::{Float, Result, Shape, TensorRef};

const LOGSUMEXP: &str = "logsumexp";

/// The output shape; an empty lane is allowed (its value is `-inf`, as in PyTorch).
pub fn logsumexp_shape(x: &Shape, axis: Option<usize>, keep_dim: bool) -> Result<Shape> {
    reduced_shape(LOGSUMEXP, x, axis, keep_dim, true)
}

/// `out[j] = m + ln Σ exp(x - m)` over lane `j`, with `m` its maximum, so that no `exp`
/// overflows. An infinite maximum shifts by 0 instead (as PyTorch), so a lane holding `+inf`
/// gives `+inf` and a lane of `-inf` only (or an empty lane) gives `-inf`; NaN gives NaN.
pub fn logsumexp<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, out: &mut [E]) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        let m = lanes.offsets(j).fold(
            E::neg_infinity(),
            |m, k| if data[k] > m { data[k] } else { m },
        );
        let shift = if m.is_finite() { m } else { E::zero() };
        let mut s = E::zero();
        for k in lanes.offsets(j) {
            s += (data[k] - shift).exp();
        }
        *o = shift + s.ln();
    }
}

/// y = logsumexp x: dx = dy·exp(x - y), the softmax of the lane. As in PyTorch, a lane whose
/// value is infinite gets NaN where `x` equals it (`∞ - ∞`).
///
/// `y` is [`logsumexp`]'s output. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn logsumexp_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    y: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for j in 0..lanes.count() {
        for k in lanes.offsets(j) {
            store::<E, ACC>(&mut gi[k], g[j] * (data[k] - y[j]).exp());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, check_reduction, values};
    use proptest::prelude::*;

    fn reference(lane: &[f64]) -> f64 {
        lane.iter().map(|v| v.exp()).sum::<f64>().ln()
    }

    fn check(dims: &[usize], axis: Option<usize>, x: &[f64]) -> f64 {
        check_reduction(
            dims,
            axis,
            x,
            &|x, axis, out| logsumexp(x, axis, out),
            &|x, axis, y, g, gi, acc| {
                if acc {
                    logsumexp_vjp::<f64, true>(x, axis, y, g, gi)
                } else {
                    logsumexp_vjp::<f64, false>(x, axis, y, g, gi)
                }
            },
            &reference,
        )
    }

    #[test]
    fn matches_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, axis) in [
            (&[3usize, 4][..], Some(0)),
            (&[3, 4], Some(1)),
            (&[2, 3, 2], Some(1)),
            (&[3, 4], None),
            (&[1, 4], Some(0)),
            (&[0, 4], Some(1)),
            (&[], None),
        ] {
            let x = values(dims.iter().product(), 5);
            let err = check(dims, axis, &x);
            assert!(err < FD_TOL, "{dims:?} {axis:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst logsumexp: {worst:e}");
    }

    #[test]
    fn huge_and_infinite_inputs() {
        let s = Shape::new(&[2, 2]).unwrap();
        let x = [1e4f32, 1e4, f32::NEG_INFINITY, f32::NEG_INFINITY];
        let mut y = [0.0f32; 2];
        logsumexp(TensorRef::trusted(&s, &x), Some(1), &mut y);
        assert_eq!(y, [1e4 + 2f32.ln(), f32::NEG_INFINITY]);
        let e = Shape::new(&[0]).unwrap();
        let mut y = [0.0f64];
        logsumexp(TensorRef::trusted(&e, &[]), None, &mut y);
        assert_eq!(y[0], f64::NEG_INFINITY);
        let s = Shape::new(&[2]).unwrap();
        logsumexp(TensorRef::trusted(&s, &[f64::INFINITY, 0.0]), None, &mut y);
        assert_eq!(y[0], f64::INFINITY);
        logsumexp(TensorRef::trusted(&s, &[f64::NAN, 0.0]), None, &mut y);
        assert!(y[0].is_nan());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_shapes(
            dims in proptest::collection::vec(1usize..4, 1..4),
            axis_pick in 0usize..4,
            seed in 0u64..1000,
        ) {
            let axis = (axis_pick < dims.len()).then_some(axis_pick);
            let x = values(dims.iter().product(), seed);
            prop_assert!(check(&dims, axis, &x) < FD_TOL);
        }
    }
}
