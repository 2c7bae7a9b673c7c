//! One-input helpers: the overwrite-or-add store every VJP writes through, fills, and the
//! elementwise functions (ReLU, sigmoid) the pointwise rules share.

use crate::Float;

/// `*d += v` when `ACC`, else `*d = v`: a VJP adds to a gradient that already holds another
/// path's share and overwrites one it reaches first, which saves zeroing the buffer.
#[inline(always)]
pub fn store<E: Float, const ACC: bool>(d: &mut E, v: E) {
    if ACC { *d += v } else { *d = v }
}

/// `gi[i] += c` (`ACC`) or `gi[i] = c` for every element.
#[inline]
pub fn fill_add<E: Float, const ACC: bool>(gi: &mut [E], c: E) {
    for d in gi {
        store::<E, ACC>(d, c);
    }
}

/// `max(x, 0)`, passing NaN through (as PyTorch does).
#[inline]
pub fn relu<E: Float>(x: E) -> E {
    // `x <= 0` is false for NaN, so NaN is returned unchanged; -0.0 becomes +0.0.
    if x <= E::zero() { E::zero() } else { x }
}

/// The logistic function, computed without overflow for either sign.
#[inline]
pub fn sigmoid<E: Float>(x: E) -> E {
    if x >= E::zero() {
        E::one() / (E::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (E::one() + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_zeroes_negatives_and_keeps_nan() {
        assert_eq!(relu(-1.0f64), 0.0);
        assert_eq!(relu(2.0f64), 2.0);
        assert!(relu(f64::NAN).is_nan());
        assert_eq!(relu(-0.0f64).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        assert_eq!(sigmoid(1000.0f32), 1.0);
        assert_eq!(sigmoid(-1000.0f32), 0.0);
        assert_eq!(sigmoid(0.0f64), 0.5);
    }
}
