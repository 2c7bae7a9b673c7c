//! Dropout with a stateless mask: element `i` is kept when a hash of `(seed, i)` says so, so
//! the mask depends on the caller's seed and the element's position only — the same in a
//! replayed step, a resumed run, `f32` or `f64`, on any number of threads — and needs no
//! stored state. Kept elements are scaled by `1/(1 - p)` (`torch.nn.functional.dropout` in
//! training mode).
//!
//! The hash is SplitMix64's output for counter `i` of the stream seeded with `seed`; its top
//! 53 bits, read as a number `u` in `[0, 1)`, keep the element when `u >= p`. Changing it
//! changes every saved run's masks, so a golden test pins it. Layers that should drop
//! independently need different seeds.

use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

const DROPOUT: &str = "dropout";

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The output shape (the input's); `p` must lie in `[0, 1]`.
pub fn dropout_shape(x: &Shape, p: f64) -> Result<Shape> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::InvalidArgument {
            op: DROPOUT,
            argument: "p",
            value: p,
            requirement: "it must be a probability, between 0 and 1".to_string(),
        });
    }
    Ok(*x)
}

/// Whether element `index` survives dropout with probability `p` under `seed`.
///
/// ```
/// use wengert_ops::kernels::dropout::keeps;
/// let kept = (0..10_000).filter(|&i| keeps(7, 0.25, i)).count();
/// assert!((7300..7700).contains(&kept));
/// assert!((0..100).all(|i| keeps(7, 0.0, i) && !keeps(7, 1.0, i)));
/// ```
#[inline]
pub fn keeps(seed: u64, p: f64, index: usize) -> bool {
    let mut z = seed.wrapping_add((index as u64).wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    u >= p
}

/// The factor a kept element is multiplied by: `1/(1 - p)`, and 0 for `p = 1` (nothing is
/// kept then, and the gradient is 0 rather than NaN).
#[inline]
fn scale<E: Float>(p: f64) -> E {
    if p >= 1.0 {
        E::zero()
    } else {
        E::from_f64(1.0 / (1.0 - p))
    }
}

/// `out[i] = x[i]/(1 - p)` where [`keeps`]`(seed, p, i)`, else 0 (`p` as [`dropout_shape`]
/// checked it).
pub fn dropout<E: Float>(x: TensorRef<'_, E>, p: f64, seed: u64, out: &mut [E]) {
    let s = scale::<E>(p);
    for (i, (o, &v)) in out.iter_mut().zip(x.data()).enumerate() {
        *o = if keeps(seed, p, i) { v * s } else { E::zero() };
    }
}

/// y = dropout(x): dx = dy/(1 - p) where the element was kept, 0 elsewhere (the same mask).
/// Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn dropout_vjp<E: Float, const ACC: bool>(p: f64, seed: u64, g: &[E], gi: &mut [E]) {
    let s = scale::<E>(p);
    for (i, (d, &g)) in gi.iter_mut().zip(g).enumerate() {
        store::<E, ACC>(d, if keeps(seed, p, i) { g * s } else { E::zero() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};

    #[test]
    fn the_mask_is_pinned() {
        // A change of hash would change every saved run's masks: it must be deliberate.
        let mask: String = (0..32)
            .map(|i| if keeps(42, 0.5, i) { '1' } else { '0' })
            .collect();
        assert_eq!(mask, GOLDEN_SEED_42_HALF);
    }

    /// `keeps(42, 0.5, i)` for i in 0..32, checked against an independent SplitMix64 in Python.
    const GOLDEN_SEED_42_HALF: &str = "10000101010011100001101100111111";

    #[test]
    fn kept_fraction_and_mean_follow_p() {
        let n = 100_000;
        let s = Shape::vector(n);
        let x = vec![1.0f64; n];
        for p in [0.1, 0.5, 0.9] {
            let mut y = vec![0.0; n];
            dropout(TensorRef::trusted(&s, &x), p, 3, &mut y);
            let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            assert!((kept - (1.0 - p)).abs() < 0.01, "{p}: kept {kept}");
            let mean = y.iter().sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.03, "{p}: mean {mean}");
        }
    }

    #[test]
    fn the_mask_depends_on_seed_and_position_only() {
        let n = 1000;
        let s = Shape::vector(n);
        let x64 = values(n, 1);
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let (mut y64, mut y32) = (vec![0.0f64; n], vec![0.0f32; n]);
        dropout(TensorRef::trusted(&s, &x64), 0.3, 9, &mut y64);
        dropout(TensorRef::trusted(&s, &x32), 0.3, 9, &mut y32);
        assert!(
            y64.iter()
                .zip(&y32)
                .all(|(a, b)| (*a == 0.0) == (*b == 0.0))
        );
        let mut other = vec![0.0f64; n];
        dropout(TensorRef::trusted(&s, &x64), 0.3, 10, &mut other);
        let same = y64
            .iter()
            .zip(&other)
            .filter(|(a, b)| (**a == 0.0) == (**b == 0.0))
            .count();
        assert!(same < 700, "seeds 9 and 10 agree on {same} of {n}");
    }

    #[test]
    fn p_zero_is_identity_p_one_is_zero() {
        let s = Shape::vector(5);
        let x = values(5, 2);
        let mut y = vec![f64::NAN; 5];
        dropout(TensorRef::trusted(&s, &x), 0.0, 1, &mut y);
        assert_eq!(y, x);
        dropout(TensorRef::trusted(&s, &x), 1.0, 1, &mut y);
        assert_eq!(y, [0.0; 5]);
        let mut gi = vec![f64::NAN; 5];
        dropout_vjp::<f64, false>(1.0, 1, &[1.0; 5], &mut gi);
        assert_eq!(gi, [0.0; 5]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let n = 64;
        let s = Shape::vector(n);
        let x = values(n, 4);
        let mut worst = 0.0f64;
        for p in [0.0, 0.3, 0.8] {
            let f = |x: &[f64]| {
                let mut y = vec![0.0; n];
                dropout(TensorRef::trusted(&s, x), p, 5, &mut y);
                y
            };
            let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                if acc {
                    dropout_vjp::<f64, true>(p, 5, g, gi)
                } else {
                    dropout_vjp::<f64, false>(p, 5, g, gi)
                }
            };
            let err = fd_error(&f, &vjp, &x, &values(n, 6));
            assert!(err < FD_TOL, "{p}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst dropout: {worst:e}");
    }

    #[test]
    fn p_outside_zero_one_is_an_error() {
        let s = Shape::vector(3);
        assert!(dropout_shape(&s, 0.0).is_ok() && dropout_shape(&s, 1.0).is_ok());
        for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    dropout_shape(&s, p),
                    Err(Error::InvalidArgument {
                        op: DROPOUT,
                        argument: "p",
                        ..
                    })
                ),
                "{p}"
            );
        }
    }
}
