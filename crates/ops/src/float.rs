//! The element types the engine computes in: `f32` and `f64`, behind one sealed trait.

use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type: `f32` or `f64`.
///
/// The trait is sealed: the kernels rely on IEEE-754 behaviour (NaN propagation, exact `tanh`
/// saturation) that only these two types are known to have.
///
/// ```
/// use wengert_ops::Float;
/// fn half<E: Float>(x: E) -> E { x * E::from_f64(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// ```
pub trait Float:
    sealed::Sealed
    + num_traits::Float
    + ndarray::LinalgScalar
    + wengert_gemm::GemmScalar
    + ndarray::ScalarOperand
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// The type's name as it appears in messages and files: `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;

    /// Converts a count (a batch size, an element count) to this type.
    fn from_usize(n: usize) -> Self;

    /// The hyperbolic tangent, as the `tanh` op computes it: for `f32` within one ulp of the
    /// exact value and several times faster than the platform's `tanhf`; for `f64` the
    /// platform's `tanh`. Saturates to exactly ±1 and passes NaN through.
    fn tanh_op(self) -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn from_usize(n: usize) -> Self {
        n as f32
    }
    #[inline]
    fn tanh_op(self) -> Self {
        tanh_f32(self)
    }
}

/// `tanh` for `f32`, computed in `f64` from one `exp`.
///
/// `(e - 1) / (e + 1)` with `e = exp(2|x|)` loses about `1e-16 / |x|` to cancellation, which at
/// `|x| >= 1e-4` is under `1e-12` relative: far below `f32`'s half ulp (`3e-8`), so the only
/// error left is the final rounding to `f32`. Below `1e-4`, `x·(1 - x²/3)` is exact to `f64`
/// precision (the next term is `2x⁵/15`), and keeps the sign of zero. Above 9.1, `tanh x`
/// is within half an ulp of 1.
#[inline]
fn tanh_f32(x: f32) -> f32 {
    let x = f64::from(x);
    let ax = x.abs();
    if ax < 1e-4 {
        return (x * (1.0 - x * x / 3.0)) as f32;
    }
    if ax > 9.1 {
        return 1f32.copysign(x as f32);
    }
    // NaN reaches here and comes out NaN.
    let e = (2.0 * ax).exp();
    ((e - 1.0) / (e + 1.0)).copysign(x) as f32
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_usize(n: usize) -> Self {
        n as f64
    }
    #[inline]
    fn tanh_op(self) -> Self {
        self.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in ulps between two finite `f32` of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn f32_tanh_is_within_one_ulp_of_the_exact_value() {
        // Every 97th f32 bit pattern from 0 up to 10 (covering all exponents that matter),
        // against the f64 tanh rounded to f32.
        let mut worst = 0;
        let mut bits = 0u32;
        while f32::from_bits(bits) < 10.0 {
            let x = f32::from_bits(bits);
            for x in [x, -x] {
                let exact = f64::from(x).tanh() as f32;
                worst = worst.max(ulps(tanh_f32(x), exact));
            }
            bits += 97;
        }
        assert!(worst <= 1, "worst error {worst} ulps");
    }

    #[test]
    fn f32_tanh_edge_cases() {
        assert_eq!(tanh_f32(300.0), 1.0);
        assert_eq!(tanh_f32(-300.0), -1.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
    }
}
