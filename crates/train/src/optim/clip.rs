//! Gradient clipping by global norm, on owned arrays, views or a tape's own gradients.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::Tape;

/// Scales `grads` so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_` does (`coef = max_norm / (norm + 1e-6)`, applied when below 1), and
/// returns the norm before clipping. `grads` is anything holding gradients ([`GradientSet`]):
/// owned arrays, views into arrays, or a [`Tape`], whose parameters' gradients are clipped
/// where they are, ready for [`Optimizer::step_tape`](crate::Optimizer::step_tape).
///
/// ```
/// use ndarray::array;
/// let mut g = vec![array![3.0f64].into_dyn(), array![4.0].into_dyn()];
/// let norm = wengert_train::clip_grad_norm(&mut g, 1.0);
/// assert_eq!(norm, 5.0);
/// assert!((g[0][[0]] - 0.6).abs() < 1e-6 && (g[1][[0]] - 0.8).abs() < 1e-6);
/// ```
pub fn clip_grad_norm<E: Float, G: GradientSet<E> + ?Sized>(grads: &mut G, max_norm: f64) -> f64 {
    let mut sum = 0.0;
    grads.for_each_grad(&mut |g| add_squares(&mut sum, g.iter()));
    if let Some(coef) = clip_factor(sum, max_norm) {
        let c = E::from_f64(coef);
        grads.for_each_grad_mut(&mut |mut g| g.map_inplace(|x| *x *= c));
    }
    sum.sqrt()
}

/// Gradients that [`clip_grad_norm`] can scale in place: visited one array at a time.
pub trait GradientSet<E: Float> {
    /// Calls `f` on every gradient.
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>));
    /// Calls `f` on every gradient, to change it in place.
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>));
}

impl<E: Float> GradientSet<E> for [ArrayD<E>] {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>)) {
        self.iter().for_each(|g| f(g.view()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.iter_mut().for_each(|g| f(g.view_mut()));
    }
}

impl<E: Float> GradientSet<E> for Vec<ArrayD<E>> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>)) {
        self.as_mut_slice().for_each_grad(f);
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.as_mut_slice().for_each_grad_mut(f);
    }
}

impl<E: Float> GradientSet<E> for [ArrayViewMutD<'_, E>] {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>)) {
        self.iter().for_each(|g| f(g.view()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.iter_mut().for_each(|g| f(g.view_mut()));
    }
}

impl<E: Float> GradientSet<E> for Vec<ArrayViewMutD<'_, E>> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>)) {
        self.as_mut_slice().for_each_grad(f);
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.as_mut_slice().for_each_grad_mut(f);
    }
}

/// A tape's parameters' gradients from its last sweep, where they are.
impl<E: Float> GradientSet<E> for Tape<E> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ArrayViewD<'_, E>)) {
        self.parameter_grads_mut()
            .for_each(|g| f(ndarray::ArrayView1::from(&g[..]).into_dyn()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.parameter_grads_mut()
            .for_each(|g| f(ndarray::ArrayViewMut1::from(g).into_dyn()));
    }
}

/// Adds the squares of `xs` to `sum`, in `f64`, in order: the one order every gradient norm
/// here is summed in, so that clipping on the tape, on arrays and in the trainer agree bit for
/// bit.
pub(crate) fn add_squares<'a, E: Float>(sum: &mut f64, xs: impl IntoIterator<Item = &'a E>) {
    for &x in xs {
        let x = Float::to_f64(x);
        *sum += x * x;
    }
}

/// The factor that scales gradients whose squares sum to `sum_of_squares` down to a global norm
/// of `max_norm`, as PyTorch's `clip_grad_norm_` computes it (`max_norm / (norm + 1e-6)`), or
/// `None` when it would not shrink them.
pub(crate) fn clip_factor(sum_of_squares: f64, max_norm: f64) -> Option<f64> {
    let coef = max_norm / (sum_of_squares.sqrt() + 1e-6);
    (coef < 1.0).then_some(coef)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn clipping_works_on_views_and_on_a_tapes_own_gradients() {
        let mut a = array![3.0f64, 0.0].into_dyn();
        let mut b = array![[4.0f64]].into_dyn();
        let mut views = vec![a.view_mut(), b.view_mut()];
        assert_eq!(clip_grad_norm(&mut views, 1.0), 5.0);
        assert!((a[[0]] - 0.6).abs() < 1e-6 && (b[[0, 0]] - 0.8).abs() < 1e-6);

        let mut tape = wengert_tape::Tape::<f64>::new();
        let w = tape.parameter(array![1.5, 2.0]).unwrap();
        let x = tape.input(array![2.0, 2.0]).unwrap();
        let wx = tape.mul(w, x).unwrap();
        let loss = tape.sum(wx).unwrap(); // dL/dw = x = [2, 2], norm √8
        tape.backward(loss).unwrap();
        let norm = clip_grad_norm(&mut tape, 1.0);
        assert!((norm - 8f64.sqrt()).abs() < 1e-12);
        let g = tape.grad(w).unwrap();
        assert!((g[[0]] - 1.0 / 2f64.sqrt()).abs() < 1e-6, "{g}");
    }

    #[test]
    fn clipping_leaves_small_gradients_alone() {
        let mut g = vec![array![0.3f64].into_dyn(), array![0.4].into_dyn()];
        assert!((clip_grad_norm(&mut g, 1.0) - 0.5).abs() < 1e-15);
        assert_eq!(g[0][[0]], 0.3);
    }
}
