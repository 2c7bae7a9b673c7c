//! [`Arith`]: the arithmetic the elementwise rules are written in, so that one rule serves
//! every type that can carry it.
//!
//! Two types implement it: [`Num`], a float, on which the rules compute numbers (the forward
//! pass and the first-order sweep), and the tape's recording type (`wengert-tape`'s
//! `record_arith`), which appends a tape op for each method, so that a derivative rule becomes
//! the VJP's own graph (higher-order gradients, `Tape::record_grad`) without a second copy of
//! the rule.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::Float;
use crate::kernels::unary;

/// The operations an elementwise rule may use: the four arithmetic operators, negation,
/// constants, a comparison with a select, and the functions the built-in ops are made of.
///
/// Each method is an op the engine has, so that anything implementing the trait with tape ops
/// can run every rule.
///
/// ```
/// use wengert_ops::{Arith, Num, select};
/// // ReLU's derivative rule, written once for any `Arith` type.
/// fn relu_vjp<T: Arith>(g: T, x: T) -> T {
///     let zero = x.lit(0.0);
///     select(x.gt(zero), g, zero)
/// }
/// assert_eq!(relu_vjp(Num(2.0f64), Num(1.0)).0, 2.0);
/// assert_eq!(relu_vjp(Num(2.0f64), Num(0.0)).0, 0.0);
/// ```
pub trait Arith:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A truth value per element: `bool` for a number.
    type Mask: Copy;

    /// The constant `c`, of `self`'s kind (rounded to `f32` for an `f32`).
    fn lit(self, c: f64) -> Self;
    /// `self > other`, false if either is NaN.
    fn gt(self, other: Self) -> Self::Mask;
    /// `self >= other`, false if either is NaN.
    fn ge(self, other: Self) -> Self::Mask;
    /// `self == other`, false if either is NaN.
    fn eq(self, other: Self) -> Self::Mask;
    /// `then` where `mask` holds, else `otherwise`.
    fn select(mask: Self::Mask, then: Self, otherwise: Self) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn log(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The logistic function `1 / (1 + e^-x)`, without overflow for either sign.
    fn sigmoid(self) -> Self;
    /// `max(x, 0)`, passing NaN through.
    fn relu(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// `|x|`.
    fn abs(self) -> Self;
    /// -1, 0 or 1 as `x` is negative, zero (of either sign) or positive; NaN stays NaN.
    fn sign(self) -> Self;
    /// `x^p` for a constant `p`.
    fn powf(self, p: f64) -> Self;
    /// `self^other`.
    fn pow(self, other: Self) -> Self;
    /// The sine.
    fn sin(self) -> Self;
    /// The cosine.
    fn cos(self) -> Self;
    /// `ln(1 + x)`, accurate near 0.
    fn log1p(self) -> Self;
    /// `eˣ - 1`, accurate near 0.
    fn expm1(self) -> Self;
    /// The larger of two values; NaN if either is.
    fn maximum(self, other: Self) -> Self;
    /// The smaller of two values; NaN if either is.
    fn minimum(self, other: Self) -> Self;
    /// The error function `(2/√π) ∫₀ˣ e^(-t²) dt`.
    fn erf(self) -> Self;
}

/// `then` where `mask` holds, else `otherwise`: [`Arith::select`] as a function, so that a rule
/// reads `select(x.gt(zero), g, zero)`.
#[inline(always)]
pub fn select<T: Arith>(mask: T::Mask, then: T, otherwise: T) -> T {
    T::select(mask, then, otherwise)
}

/// A float seen through [`Arith`]: the rules run on it compute numbers.
///
/// A wrapper rather than an implementation on `f32` and `f64` themselves, whose own `exp`,
/// `tanh`, ... would make every such call in generic float code ambiguous. It costs nothing:
/// every method is the float's own, inlined.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub struct Num<E>(pub E);

impl<E: Float> Add for Num<E> {
    type Output = Self;
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        Num(self.0 + rhs.0)
    }
}

impl<E: Float> Sub for Num<E> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        Num(self.0 - rhs.0)
    }
}

impl<E: Float> Mul for Num<E> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        Num(self.0 * rhs.0)
    }
}

impl<E: Float> Div for Num<E> {
    type Output = Self;
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        Num(self.0 / rhs.0)
    }
}

impl<E: Float> Neg for Num<E> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Num(-self.0)
    }
}

impl<E: Float> Arith for Num<E> {
    type Mask = bool;

    #[inline(always)]
    fn lit(self, c: f64) -> Self {
        Num(E::from_f64(c))
    }
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self.0 > other.0
    }
    #[inline(always)]
    fn ge(self, other: Self) -> bool {
        self.0 >= other.0
    }
    #[inline(always)]
    fn eq(self, other: Self) -> bool {
        self.0 == other.0
    }
    #[inline(always)]
    fn select(mask: bool, then: Self, otherwise: Self) -> Self {
        if mask { then } else { otherwise }
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Num(self.0.exp())
    }
    #[inline(always)]
    fn log(self) -> Self {
        Num(self.0.ln())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Num(self.0.tanh_op())
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Num(unary::sigmoid(self.0))
    }
    #[inline(always)]
    fn relu(self) -> Self {
        Num(unary::relu(self.0))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Num(self.0.sqrt())
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Num(self.0.abs())
    }
    #[inline(always)]
    fn sign(self) -> Self {
        let x = self.0;
        Num(if x > E::zero() {
            E::one()
        } else if x < E::zero() {
            -E::one()
        } else if x == E::zero() {
            E::zero()
        } else {
            x
        })
    }
    #[inline(always)]
    fn powf(self, p: f64) -> Self {
        Num(self.0.powf(E::from_f64(p)))
    }
    #[inline(always)]
    fn pow(self, other: Self) -> Self {
        Num(self.0.powf(other.0))
    }
    #[inline(always)]
    fn sin(self) -> Self {
        Num(self.0.sin())
    }
    #[inline(always)]
    fn cos(self) -> Self {
        Num(self.0.cos())
    }
    #[inline(always)]
    fn log1p(self) -> Self {
        Num(self.0.ln_1p())
    }
    #[inline(always)]
    fn expm1(self) -> Self {
        Num(self.0.exp_m1())
    }
    #[inline(always)]
    fn maximum(self, other: Self) -> Self {
        let (a, b) = (self.0, other.0);
        Num(if a.is_nan() || b.is_nan() {
            a + b
        } else if a > b {
            a
        } else {
            b
        })
    }
    #[inline(always)]
    fn minimum(self, other: Self) -> Self {
        let (a, b) = (self.0, other.0);
        Num(if a.is_nan() || b.is_nan() {
            a + b
        } else if a < b {
            a
        } else {
            b
        })
    }
    #[inline(always)]
    fn erf(self) -> Self {
        // std has no erf. libm's is musl's (FreeBSD msun's `s_erf.c`, from Sun's fdlibm),
        // within 1 ulp in f64; an f32 is computed in f64 and rounded once, as `tanh`.
        Num(E::from_f64(libm::erf(self.0.to_f64())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by another method: `(2/√π) e^(-x²) Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))`, a series of
    /// positive terms (no cancellation, unlike the Taylor series), summed to f64 precision.
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-18 * sum.abs() {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum
    }

    #[test]
    fn erf_agrees_with_a_series_and_with_published_values_to_f64_precision() {
        let erf = |x: f64| Num(x).erf().0;
        let mut worst: f64 = 0.0;
        for i in -400..=400 {
            let x = f64::from(i) / 100.0 + 0.003;
            let reference = erf_series(x);
            worst = worst.max(((erf(x) - reference) / reference).abs());
        }
        assert!(worst < 2e-15, "worst relative error {worst:e}");
        // Abramowitz and Stegun, table 7.1, and Wolfram Alpha to 20 digits.
        for (x, value) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
        ] {
            assert!(
                (erf(x) - value).abs() <= 2.0 * f64::EPSILON * value,
                "erf({x})"
            );
            assert_eq!(erf(-x), -erf(x), "odd");
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(6.0), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(Num(0.5f32).erf().0, 0.520_499_9f32);
    }
}
