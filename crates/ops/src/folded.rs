//! [`FoldedUpdate`]: an optimiser's step written into the product that computes the gradient.

/// An update of the form `value ← keep·value + step·gradient`: plain SGD (`keep = 1`,
/// `step = -lr`), or with L2 weight decay `wd` (`keep = 1 - lr·wd`). An update of this form
/// can be computed by the matrix product that makes the gradient, in its own output pass
/// ([`Op::vjp_scaled`](crate::Op::vjp_scaled)), so that the gradient is never stored and no
/// pass over the parameter follows the sweep.
///
/// ```
/// use wengert_ops::FoldedUpdate;
/// let sgd = FoldedUpdate::sgd(0.1f32);
/// assert_eq!((sgd.keep, sgd.step), (1.0, -0.1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldedUpdate<E> {
    /// What the old value is multiplied by.
    pub keep: E,
    /// What the gradient is multiplied by before it is added.
    pub step: E,
}

impl<E: crate::Float> FoldedUpdate<E> {
    /// Plain SGD at learning rate `lr`: `value ← value - lr·gradient`.
    pub fn sgd(lr: E) -> Self {
        FoldedUpdate {
            keep: E::one(),
            step: -lr,
        }
    }
}
