//! `prod`: the product of all elements or along one axis (`torch.prod`), with a gradient that
//! stays exact when factors are zero.

use super::lanes::{Lanes, reduced_shape};
use super::unary::store;
use crate::{Float, Result, Shape, TensorRef};

const PROD: &str = "prod";

/// The output shape; an empty lane is allowed (its product is 1).
pub fn prod_shape(x: &Shape, axis: Option<usize>, keep_dim: bool) -> Result<Shape> {
    reduced_shape(PROD, x, axis, keep_dim, true)
}

/// `out[j] = Π` lane `j`, multiplied in order.
pub fn prod<E: Float>(x: TensorRef<'_, E>, axis: Option<usize>, out: &mut [E]) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for (j, o) in out.iter_mut().enumerate().take(lanes.count()) {
        *o = lanes.offsets(j).fold(E::one(), |p, k| p * data[k]);
    }
}

/// y = Π x: dx_i = dy·Π_{j≠i} x_j, lane by lane, by the lane's count of zero factors:
/// - none: `dy·y / x_i` (as PyTorch);
/// - one, at `z`: `dy·Π_{j≠z} x_j` at `z` (the product of the others, recomputed), 0 elsewhere;
/// - several: 0 everywhere (every partial product keeps a zero).
///
/// No division by zero happens. `y` is [`prod`]'s output. Adds into `gi` when `ACC`,
/// overwrites it otherwise.
pub fn prod_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    axis: Option<usize>,
    y: &[E],
    g: &[E],
    gi: &mut [E],
) {
    let lanes = Lanes::of(x.shape(), axis);
    let data = x.data();
    for j in 0..lanes.count() {
        let mut zeros = 0usize;
        let mut others = E::one();
        let mut zero_at = 0;
        for k in lanes.offsets(j) {
            if data[k] == E::zero() {
                zeros += 1;
                zero_at = k;
            } else {
                others *= data[k];
            }
        }
        for k in lanes.offsets(j) {
            let d = match zeros {
                0 => g[j] * y[j] / data[k],
                1 if k == zero_at => g[j] * others,
                _ => E::zero(),
            };
            store::<E, ACC>(&mut gi[k], d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, check_reduction, values};
    use proptest::prelude::*;

    fn check(dims: &[usize], axis: Option<usize>, x: &[f64]) -> f64 {
        check_reduction(
            dims,
            axis,
            x,
            &|x, axis, out| prod(x, axis, out),
            &|x, axis, y, g, gi, acc| {
                if acc {
                    prod_vjp::<f64, true>(x, axis, y, g, gi)
                } else {
                    prod_vjp::<f64, false>(x, axis, y, g, gi)
                }
            },
            &|lane| lane.iter().product(),
        )
    }

    #[test]
    fn matches_the_definition_and_finite_differences_with_zeros() {
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
            let n = dims.iter().product();
            let x = values(n, 9);
            // The same values with one zero, and with two zeros in a lane.
            let mut one_zero = x.clone();
            let mut two_zeros = x.clone();
            if n > 0 {
                one_zero[n / 2] = 0.0;
                two_zeros[0] = 0.0;
                two_zeros[n - 1] = 0.0;
            }
            for x in [x, one_zero, two_zeros] {
                let err = check(dims, axis, &x);
                assert!(err < FD_TOL, "{dims:?} {axis:?} {x:?}: {err}");
                worst = worst.max(err);
            }
        }
        eprintln!("fd worst prod: {worst:e}");
    }

    #[test]
    fn zero_factors_get_exact_gradients() {
        let s = Shape::new(&[3, 3]).unwrap();
        let x = [2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 2.0, 3.0, 4.0];
        let mut y = [0.0; 3];
        prod(TensorRef::trusted(&s, &x), Some(1), &mut y);
        assert_eq!(y, [0.0, 0.0, 24.0]);
        let mut gi = [f64::NAN; 9];
        prod_vjp::<f64, false>(TensorRef::trusted(&s, &x), Some(1), &y, &[1.0; 3], &mut gi);
        assert_eq!(gi, [0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 12.0, 8.0, 6.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_shapes(
            dims in proptest::collection::vec(1usize..4, 1..4),
            axis_pick in 0usize..4,
            seed in 0u64..1000,
            zero_at in proptest::option::of(0usize..64),
        ) {
            let axis = (axis_pick < dims.len()).then_some(axis_pick);
            let mut x = values(dims.iter().product(), seed);
            if let Some(z) = zero_at {
                let n = x.len();
                x[z % n] = 0.0;
            }
            prop_assert!(check(&dims, axis, &x) < FD_TOL);
        }
    }
}
