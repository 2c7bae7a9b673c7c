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
}
