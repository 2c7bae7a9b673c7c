//! Spread and size of the elements, over all of them or along one axis: variance and standard
//! deviation with a `correction` (`torch.var`, `torch.std`), and the Euclidean norm
//! (`torch.linalg.vector_norm` with `ord = 2`).

use super::lanes::{Lanes, reduced_shape};
use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

/// The output shape of `var` or `std` (`op`): the divisor `len - correction` must be positive,
/// where PyTorch would return NaN or infinity with a warning; a negative or non-finite
/// correction is refused too. An empty output (no lanes) accepts any finite correction.
pub fn var_shape(
    op: &'static str,
    x: &Shape,
    axis: Option<usize>,
    keep_dim: bool,
    correction: f64,
) -> Result<Shape> {
    let out = reduced_shape(op, x, axis, keep_dim, true)?;
    let len = Lanes::of(x, axis).len;
    let bad = !(correction.is_finite() && correction >= 0.0);
    if bad || (out.numel() > 0 && len as f64 - correction <= 0.0) {
        return Err(Error::InvalidArgument {
            op,
            argument: "correction",
            value: correction,
            requirement: format!(
                "it must be at least 0 and below the {len} elements reduced in each lane of {x}"
            ),
        });
    }
    Ok(out)
}

/// The output shape of `norm`; an empty lane's norm is 0.
pub fn norm_shape(x: &Shape, axis: Option<usize>, keep_dim: bool) -> Result<Shape> {
    reduced_shape("norm", x, axis, keep_dim, true)
}

/// The mean of lane `j`.
#[inline]
fn lane_mean<E: Float>(data: &[E], lanes: Lanes, j: usize) -> E {
    let mut s = E::zero();
    for k in lanes.offsets(j) {
        s += data[k];
    }
    s / E::from_usize(lanes.len)
}

/// `out[j] = Σ (x - mean)² / (len - correction)` over lane `j`, in two passes (the mean, then
/// the squared deviations) for accuracy.
pub fn var<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, correction: f64, out: &mut [E]) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    let divisor = E::from_f64(lanes.len as f64 - correction);
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        let mean = lane_mean(data, lanes, j);
        let mut s = E::zero();
        for k in lanes.offsets(j) {
            let d = data[k] - mean;
            s += d * d;
        }
        *o = s / divisor;
    }
}

/// `out[j] = √var` (see [`var`]).
pub fn std<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, correction: f64, out: &mut [E]) {
    var(x, axis, correction, out);
    for o in out {
        *o = o.sqrt();
    }
}

/// y = var x: dx = dy·2(x - mean) / (len - correction). Adds into `gi` when `ACC`, overwrites
/// it otherwise.
pub fn var_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    correction: f64,
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let two = E::from_f64(2.0);
    let divisor = E::from_f64(lanes.len as f64 - correction);
    for (j, &g) in g.iter().enumerate().take(lanes.count()) {
        spread::<E, ACC>(x.data(), lanes, j, two * g / divisor, gi);
    }
}

/// y = std x: dx = dy·(x - mean) / ((len - correction)·y), and 0 where y = 0 (PyTorch masks
/// that case, where the formula is 0/0). `y` is [`std()`]'s output. Adds into `gi` when `ACC`,
/// overwrites it otherwise.
pub fn std_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    correction: f64,
    y: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let divisor = E::from_f64(lanes.len as f64 - correction);
    for j in 0..lanes.count() {
        let scale = if y[j] == E::zero() {
            E::zero()
        } else {
            g[j] / (divisor * y[j])
        };
        spread::<E, ACC>(x.data(), lanes, j, scale, gi);
    }
}

/// `gi` (+)= `scale·(x - mean)` over lane `j`.
#[inline]
fn spread<E: Float, const ACC: bool>(data: &[E], lanes: Lanes, j: usize, scale: E, gi: &mut [E]) {
    let mean = lane_mean(data, lanes, j);
    for k in lanes.offsets(j) {
        store::<E, ACC>(&mut gi[k], scale * (data[k] - mean));
    }
}

/// `out[j] = √Σ x²` over lane `j`. A sum of squares that overflows or falls below the normal
/// range (zero included) is redone with the lane scaled by its largest magnitude, so the norm is right
/// wherever it is representable (PyTorch's overflows for `f32` elements above about 1.8e19).
pub fn norm<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, out: &mut [E]) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        let mut s = E::zero();
        for k in lanes.offsets(j) {
            s += data[k] * data[k];
        }
        *o = if s.is_infinite() || s < E::min_positive_value() {
            scaled_norm(data, lanes, j)
        } else {
            s.sqrt()
        };
    }
}

/// `a·√Σ (x/a)²` with `a` the lane's largest magnitude.
fn scaled_norm<E: Float>(data: &[E], lanes: Lanes, j: usize) -> E {
    let a = lanes
        .offsets(j)
        .fold(E::zero(), |a, k| a.max(data[k].abs()));
    if a.is_infinite() || a == E::zero() {
        return a;
    }
    let mut s = E::zero();
    for k in lanes.offsets(j) {
        let r = data[k] / a;
        s += r * r;
    }
    a * s.sqrt()
}

/// y = ‖x‖₂: dx = dy·x / y, and 0 where y = 0 (PyTorch's choice of subgradient there).
/// `y` is [`norm`]'s output. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn norm_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    y: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for j in 0..lanes.count() {
        let scale = if y[j] == E::zero() {
            E::zero()
        } else {
            g[j] / y[j]
        };
        for k in lanes.offsets(j) {
            store::<E, ACC>(&mut gi[k], scale * data[k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, check_reduction, values};
    use proptest::prelude::*;

    fn reference_var(lane: &[f64], correction: f64) -> f64 {
        let n = lane.len() as f64;
        let mean = lane.iter().sum::<f64>() / n;
        lane.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - correction)
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Var(f64),
        Std(f64),
        Norm,
    }

    fn check(kind: Kind, dims: &[usize], axis: Option<usize>, x: &[f64]) -> f64 {
        check_reduction(
            dims,
            axis,
            x,
            &|x, axis, out| match kind {
                Kind::Var(c) => var(x, axis, c, out),
                Kind::Std(c) => std(x, axis, c, out),
                Kind::Norm => norm(x, axis, out),
            },
            &|x, axis, y, g, gi, acc| match (kind, acc) {
                (Kind::Var(c), true) => var_vjp::<f64, true>(x, axis, c, g, gi),
                (Kind::Var(c), false) => var_vjp::<f64, false>(x, axis, c, g, gi),
                (Kind::Std(c), true) => std_vjp::<f64, true>(x, axis, c, y, g, gi),
                (Kind::Std(c), false) => std_vjp::<f64, false>(x, axis, c, y, g, gi),
                (Kind::Norm, true) => norm_vjp::<f64, true>(x, axis, y, g, gi),
                (Kind::Norm, false) => norm_vjp::<f64, false>(x, axis, y, g, gi),
            },
            &|lane| match kind {
                Kind::Var(c) => reference_var(lane, c),
                Kind::Std(c) => reference_var(lane, c).sqrt(),
                Kind::Norm => lane.iter().map(|v| v * v).sum::<f64>().sqrt(),
            },
        )
    }

    const CASES: [(&[usize], Option<usize>); 6] = [
        (&[3, 4], Some(0)),
        (&[3, 4], Some(1)),
        (&[2, 3, 2], Some(1)),
        (&[3, 4], None),
        (&[2, 4], Some(0)),
        (&[2, 1, 3], Some(2)),
    ];

    #[test]
    fn var_std_norm_match_the_definitions_and_finite_differences() {
        for kind in [
            Kind::Var(1.0),
            Kind::Var(0.0),
            Kind::Var(0.5),
            Kind::Std(1.0),
            Kind::Std(0.0),
            Kind::Norm,
        ] {
            let mut worst = 0.0f64;
            for (dims, axis) in CASES {
                let x = values(dims.iter().product(), 13);
                let err = check(kind, dims, axis, &x);
                assert!(err < FD_TOL, "{kind:?} {dims:?} {axis:?}: {err}");
                worst = worst.max(err);
            }
            eprintln!("fd worst {kind:?}: {worst:e}");
        }
    }

    #[test]
    fn std_and_norm_at_zero_have_zero_gradient() {
        let s = Shape::new(&[2, 3]).unwrap();
        let x = [2.0, 2.0, 2.0, 0.0, 0.0, 0.0];
        let mut y = [0.0; 2];
        std(TensorRef::trusted(&s, &x), Some(1), 1.0, &mut y);
        assert_eq!(y, [0.0, 0.0]);
        let mut gi = [f64::NAN; 6];
        std_vjp::<f64, false>(
            TensorRef::trusted(&s, &x),
            Some(1),
            1.0,
            &y,
            &[1.0; 2],
            &mut gi,
        );
        assert_eq!(gi, [0.0; 6]);
        norm(TensorRef::trusted(&s, &x), Some(1), &mut y);
        assert_eq!(y[1], 0.0);
        let mut gi = [f64::NAN; 6];
        norm_vjp::<f64, false>(TensorRef::trusted(&s, &x), Some(1), &y, &[1.0; 2], &mut gi);
        assert_eq!(&gi[3..], &[0.0; 3]);
    }

    #[test]
    fn norm_neither_overflows_nor_underflows() {
        let s = Shape::new(&[2]).unwrap();
        let mut y = [0.0f32];
        norm(TensorRef::trusted(&s, &[3e30f32, 4e30]), None, &mut y);
        assert!((y[0] / 5e30 - 1.0).abs() < 1e-6, "{}", y[0]);
        norm(TensorRef::trusted(&s, &[3e-30f32, 4e-30]), None, &mut y);
        assert!((y[0] / 5e-30 - 1.0).abs() < 1e-6, "{}", y[0]);
        norm(TensorRef::trusted(&s, &[f32::INFINITY, 1.0]), None, &mut y);
        assert_eq!(y[0], f32::INFINITY);
        let e = Shape::new(&[0]).unwrap();
        norm(TensorRef::trusted(&e, &[]), None, &mut y);
        assert_eq!(y[0], 0.0);
    }

    #[test]
    fn corrections_that_leave_no_degrees_of_freedom_are_errors() {
        let s = Shape::new(&[2, 3]).unwrap();
        assert!(var_shape("var", &s, Some(1), false, 2.0).is_ok());
        for c in [3.0, 3.5, -1.0, f64::NAN, f64::INFINITY] {
            let err = var_shape("std", &s, Some(1), false, c).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        op: "std",
                        argument: "correction",
                        ..
                    }
                ),
                "{c}"
            );
        }
        let err = var_shape("var", &Shape::new(&[1]).unwrap(), None, false, 1.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "var: correction = 1 is invalid: it must be at least 0 and below the 1 elements \
             reduced in each lane of [1]"
        );
        // No lanes at all: nothing is divided.
        assert!(var_shape("var", &Shape::new(&[0, 3]).unwrap(), Some(1), false, 1.0).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_shapes(
            dims in proptest::collection::vec(2usize..4, 1..4),
            axis_pick in 0usize..4,
            seed in 0u64..1000,
        ) {
            let axis = (axis_pick < dims.len()).then_some(axis_pick);
            let x = values(dims.iter().product(), seed);
            for kind in [Kind::Var(1.0), Kind::Std(1.0), Kind::Norm] {
                prop_assert!(check(kind, &dims, axis, &x) < FD_TOL);
            }
        }
    }
}
