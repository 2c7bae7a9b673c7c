//! Optimisers with PyTorch's update rules ([`Sgd`], [`Adam`]) and gradient clipping.
//!
//! Each update follows the order of operations of PyTorch's single-tensor implementation
//! (`torch.optim.SGD`, `Adam`, `AdamW` with `foreach=False`), with the step's scalars (bias
//! corrections, step size) computed in `f64` as Python does, so that a run can be compared
//! with PyTorch's step for step. One module per optimiser; the trait and the boxed optimiser
//! here; the state a checkpoint keeps in `state`, clipping in `clip`, the checks every
//! optimiser shares in `validate`.

mod adam;
mod clip;
mod sgd;
mod state;
mod validate;

use ndarray::{ArrayD, ArrayViewMutD};
use wengert_ops::{Float, FoldedUpdate, Shape};
use wengert_tape::{Graph, NodeId, Tape, Var};

pub use adam::{Adam, AdamBuilder};
pub use clip::{GradientSet, clip_grad_norm};
pub(crate) use clip::{add_squares, clip_factor};
pub use sgd::{Sgd, SgdBuilder};
pub use state::OptimizerState;

use crate::{Error, Result};
use validate::check_shapes;

/// An optimiser: updates parameters in place from their gradients.
///
/// A step is [`begin_step`](Optimizer::begin_step) with the step's learning rate and every
/// parameter's shape, then one [`update`](Optimizer::update) per parameter on its elements,
/// row-major. [`step_tape`](Optimizer::step_tape) does this on the parameters living on a tape,
/// reading the tape's gradients where they are, with nothing copied or allocated; the trainer
/// does the same with its schedule's rate. [`step`](Optimizer::step) does it for parameters
/// held in arrays. The optimiser keeps its base rate ([`learning_rate`](Optimizer::learning_rate))
/// and never changes it: a schedule passes each step's rate in instead.
///
/// An optimiser of one's own, `p -= lr·sign(g)`:
///
/// ```
/// use ndarray::array;
/// use wengert_ops::Shape;
/// use wengert_train::{Optimizer, OptimizerState, Result};
///
/// struct SignSgd { lr: f64, step_lr: f64, steps: u64 }
///
/// impl Optimizer<f64> for SignSgd {
///     fn begin_step(&mut self, lr: f64, _shapes: &[Shape]) -> Result<()> {
///         self.step_lr = lr;
///         self.steps += 1; // no per-parameter state to size
///         Ok(())
///     }
///     fn update(&mut self, _index: usize, param: &mut [f64], grad: &[f64]) -> Result<()> {
///         for (p, g) in param.iter_mut().zip(grad) {
///             *p -= self.step_lr * g.signum();
///         }
///         Ok(())
///     }
///     fn learning_rate(&self) -> f64 { self.lr }
///     fn name(&self) -> &'static str { "sign_sgd" }
///     fn state(&self) -> OptimizerState<f64> {
///         OptimizerState { kind: "sign_sgd".into(), step: self.steps, settings: vec![], buffers: vec![] }
///     }
///     fn load_state(&mut self, state: &OptimizerState<f64>) -> Result<()> {
///         self.steps = state.step;
///         Ok(())
///     }
/// }
///
/// let mut w = array![0.5, -0.5].into_dyn();
/// let mut opt = SignSgd { lr: 0.1, step_lr: 0.0, steps: 0 };
/// opt.step(&mut [w.view_mut()], &[array![3.0, -0.01].into_dyn()])?;
/// assert_eq!(w, array![0.4, -0.4].into_dyn());
/// # Ok::<(), wengert_train::Error>(())
/// ```
///
pub trait Optimizer<E: Float> {
    /// Starts a step at learning rate `lr` over parameters of these shapes, which must be the
    /// same, in the same order, at every step: counts the step, sizes the per-parameter state
    /// on the first one and checks it after. The rate is this step's only (a schedule's value);
    /// the optimiser's own [`learning_rate`](Optimizer::learning_rate) stays as built.
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()>;

    /// Updates parameter `index` (its place in the list [`begin_step`](Optimizer::begin_step)
    /// was given) in place from its gradient; both hold the parameter's elements, row-major.
    /// Each parameter is updated once per step, after `begin_step`; optimisers with per-step
    /// state (Adam) refuse an update with no step begun (a new optimiser, or one that
    /// just loaded a state).
    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()>;

    /// One whole step: `params[i]` and `grads[i]` belong together and have the same shape;
    /// the list must be the same, in the same order, at every step.
    fn step(&mut self, params: &mut [ArrayViewMutD<'_, E>], grads: &[ArrayD<E>]) -> Result<()> {
        let shapes = check_shapes(params, grads)?;
        self.begin_step(self.learning_rate(), &shapes)?;
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            match p.as_slice_mut() {
                Some(p) => self.update(i, p, g)?,
                None => {
                    let mut owned = p.as_standard_layout().into_owned();
                    self.update(i, owned.as_slice_mut().expect("standard layout"), g)?;
                    p.assign(&owned);
                }
            }
        }
        Ok(())
    }

    /// One whole step on the parameters living on `tape`, from the gradients its last
    /// [`backward`](Tape::backward) left there, read in place: nothing is copied or allocated.
    /// The parameters must be the same, in the same order, at every step (record them once and
    /// [`rewind`](Tape::rewind) to a mark after them). Errors, changing nothing, if the tape
    /// holds no gradients (no `backward` since the last rewind).
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_train::{Optimizer, Sgd};
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(array![1.0, -2.0])?;
    /// let start = tape.mark();
    /// let mut sgd = Sgd::new(0.1)?;
    /// for _ in 0..100 {
    ///     tape.rewind(start)?;
    ///     let sq = tape.mul(w, w)?;
    ///     let loss = tape.sum(sq)?; // Σ w², smallest at 0
    ///     tape.backward(loss)?;
    ///     sgd.step_tape(&mut tape)?;
    /// }
    /// assert!(tape.value(w)?.iter().all(|v| v.abs() < 1e-9));
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    fn step_tape(&mut self, tape: &mut Tape<E>) -> Result<()> {
        if !tape.has_parameter_grads() {
            return Err(Error::Model(
                "no gradients on the tape: call backward before the optimiser's step (after \
                 backward_folding or backward_step, the folded parameters have taken their \
                 step and have none)"
                    .into(),
            ));
        }
        self.begin_step(self.learning_rate(), tape.parameter_shapes())?;
        tape.update_parameters(|index, _, value, grad| self.update(index, value, grad))
    }

    /// [`step_tape`](Optimizer::step_tape) on the tape of a [`Graph`], the handle API's
    /// training loop: `loss.backward()?; adam.step_graph(&graph)?;`. Errors if the graph's
    /// gradients are still borrowed.
    fn step_graph(&mut self, graph: &Graph<E>) -> Result<()> {
        self.step_tape(&mut *graph.tape_mut()?)
    }

    /// This step's update of parameter `index` as `value ← keep·value + step·grad`, when the
    /// optimiser's update has that form (plain SGD, with or without weight decay): then
    /// [`backward_step`](Optimizer::backward_step) computes it inside the product that makes
    /// the gradient. Asked after [`begin_step`](Optimizer::begin_step), at this step's rate;
    /// a parameter whose update is folded gets no [`update`](Optimizer::update) call. The
    /// default, for optimisers with per-parameter state (momentum, Adam), is `None`.
    fn folded_update(&self, _index: usize) -> Option<FoldedUpdate<E>> {
        None
    }

    /// The sweep and the step in one, from the scalar `loss` recorded on `tape`: a
    /// [`backward`](Tape::backward) that folds the updates
    /// [`folded_update`](Optimizer::folded_update) allows into the products that compute
    /// their gradients ([`Tape::backward_folding`]), then [`update`](Optimizer::update) on
    /// every other parameter, at the base rate. The same step as `tape.backward(loss)?`
    /// followed by [`step_tape`](Optimizer::step_tape), to rounding (the product rounds the
    /// weight once per block of at most 512 examples of the batch, 256 for `f64`, see
    /// [`Tape::backward_folding`]), and for
    /// plain SGD without a pass over the weights or their gradients' buffers; a folded
    /// parameter has no gradient left on the tape. Errors, changing nothing, if `loss`
    /// cannot be swept or the step cannot begin.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_train::{Optimizer, Sgd};
    /// use wengert_tape::Tape;
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.parameter(array![[1.0], [-2.0]])?;
    /// let start = tape.mark();
    /// let mut sgd = Sgd::new(0.1)?;
    /// for _ in 0..200 {
    ///     tape.rewind(start)?;
    ///     let x = tape.input(array![[1.0, 0.0], [0.0, 1.0]])?;
    ///     let y = tape.matmul(x, w)?;
    ///     let sq = tape.mul(y, y)?;
    ///     let loss = tape.sum(sq)?; // Σ w², smallest at 0
    ///     sgd.backward_step(&mut tape, loss)?;
    /// }
    /// assert!(tape.value(w)?.iter().all(|v| v.abs() < 1e-9));
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    fn backward_step(&mut self, tape: &mut Tape<E>, loss: NodeId) -> Result<()> {
        tape.check_loss(loss)?;
        self.begin_step(self.learning_rate(), tape.parameter_shapes())?;
        tape.backward_folding(loss, |index, _| self.folded_update(index))?;
        tape.update_parameters(|index, _, value, grad| self.update(index, value, grad))
    }

    /// [`backward_step`](Optimizer::backward_step) from a loss recorded on a [`Graph`], the
    /// handle API's training loop: `sgd.backward_step_graph(&loss)?`. Errors if the graph's
    /// tape is borrowed (gradients of an earlier sweep still held).
    fn backward_step_graph(&mut self, loss: &Var<'_, E>) -> Result<()> {
        self.backward_step(&mut *loss.graph().tape_mut()?, loss.id())
    }

    /// The base learning rate, as built: what [`step`](Optimizer::step) and
    /// [`step_tape`](Optimizer::step_tape) use, and what a schedule starts from.
    fn learning_rate(&self) -> f64;

    /// A short name for reports (`sgd`, `adam`, ...).
    fn name(&self) -> &'static str;

    /// Everything the next steps depend on besides the gradients: the step count, the
    /// per-parameter buffers (moments) and the settings, so that a run can stop and resume
    /// bit for bit ([`load_state`](Optimizer::load_state)).
    fn state(&self) -> OptimizerState<E>;

    /// Continues from a saved [`state`](Optimizer::state). Errors, changing nothing, if the
    /// state is another optimiser's or was saved with other settings.
    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()>;
}

/// A boxed optimiser is an optimiser, so that one chosen at run time can drive a
/// [`Trainer`](crate::Trainer).
impl<E: Float, O: Optimizer<E> + ?Sized> Optimizer<E> for Box<O> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        (**self).begin_step(lr, shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        (**self).update(index, param, grad)
    }

    fn step(&mut self, params: &mut [ArrayViewMutD<'_, E>], grads: &[ArrayD<E>]) -> Result<()> {
        (**self).step(params, grads)
    }

    fn step_tape(&mut self, tape: &mut Tape<E>) -> Result<()> {
        (**self).step_tape(tape)
    }

    fn step_graph(&mut self, graph: &Graph<E>) -> Result<()> {
        (**self).step_graph(graph)
    }

    fn folded_update(&self, index: usize) -> Option<FoldedUpdate<E>> {
        (**self).folded_update(index)
    }

    fn backward_step(&mut self, tape: &mut Tape<E>, loss: NodeId) -> Result<()> {
        (**self).backward_step(tape, loss)
    }

    fn backward_step_graph(&mut self, loss: &Var<'_, E>) -> Result<()> {
        (**self).backward_step_graph(loss)
    }

    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn state(&self) -> OptimizerState<E> {
        (**self).state()
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        (**self).load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Adam, Sgd};
    use ndarray::array;

    pub(crate) fn run<O: Optimizer<f64>>(opt: &mut O, p0: f64, grads: &[f64]) -> Vec<f64> {
        let mut p = array![p0].into_dyn();
        let mut out = Vec::new();
        for &g in grads {
            opt.step(&mut [p.view_mut()], &[array![g].into_dyn()])
                .unwrap();
            out.push(p[[0]]);
        }
        out
    }

    pub(crate) fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn settings_that_cannot_work_fail_when_the_optimiser_is_built() {
        let refused = |r: Result<()>, what: &str| {
            let err = r.unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        };
        // Nesterov without momentum used to pass the builder and fail at the first step.
        refused(
            Sgd::<f64>::builder(0.1).nesterov(true).build().map(drop),
            "Nesterov",
        );
        refused(Sgd::<f64>::new(-0.1).map(drop), "learning rate");
        refused(Sgd::<f64>::new(f64::NAN).map(drop), "learning rate");
        refused(
            Sgd::<f64>::builder(0.1).momentum(-0.5).build().map(drop),
            "momentum",
        );
        refused(
            Sgd::<f64>::builder(0.1)
                .weight_decay(-1.0)
                .build()
                .map(drop),
            "weight decay",
        );
        refused(
            Adam::<f64>::builder(0.1)
                .betas(1.0, 0.999)
                .build()
                .map(drop),
            "beta1",
        );
        refused(
            Adam::<f64>::builder(0.1).betas(0.9, -0.1).build().map(drop),
            "beta2",
        );
        refused(
            Adam::<f64>::builder(0.1).eps(-1e-8).build().map(drop),
            "eps",
        );
        refused(Adam::<f64>::adamw(f64::INFINITY).map(drop), "learning rate");
        // A schedule's rate is checked as it comes in, too.
        let mut sgd = Sgd::<f64>::new(0.1).unwrap();
        refused(sgd.begin_step(-1.0, &[]), "learning rate");
    }

    #[test]
    fn the_rate_passed_to_a_step_is_used_and_the_base_rate_stays() {
        let mut sgd = Sgd::<f64>::new(0.1).unwrap();
        let mut p = [1.0];
        sgd.begin_step(0.5, &[Shape::vector(1)]).unwrap();
        sgd.update(0, &mut p, &[1.0]).unwrap();
        assert_eq!(p, [0.5]);
        assert_eq!(Optimizer::<f64>::learning_rate(&sgd), 0.1);
    }

    #[test]
    fn step_tape_reads_the_tapes_gradients_in_place() {
        let mut tape = wengert_tape::Tape::<f64>::new();
        let w = tape.parameter(array![1.0, -2.0]).unwrap();
        let b = tape.parameter(array![0.5]).unwrap();
        let start = tape.mark();
        let mut adam = Adam::new(0.1).unwrap();
        let mut by_hand = Adam::new(0.1).unwrap();
        let (mut w2, mut b2) = (array![1.0, -2.0].into_dyn(), array![0.5].into_dyn());
        for _ in 0..5 {
            tape.rewind(start).unwrap();
            // Without a sweep there is nothing to step on.
            assert!(adam.step_tape(&mut tape).is_err());
            let sq = tape.mul(w, w).unwrap();
            let s = tape.sum(sq).unwrap();
            let loss = tape.add(s, b).unwrap();
            tape.backward(loss).unwrap();
            let grads = [w2.mapv(|x| 2.0 * x), array![1.0].into_dyn()];
            by_hand
                .step(&mut [w2.view_mut(), b2.view_mut()], &grads)
                .unwrap();
            adam.step_tape(&mut tape).unwrap();
            assert_eq!(tape.value(w).unwrap(), w2);
            assert_eq!(tape.value(b).unwrap(), b2);
        }
    }

    #[test]
    fn a_changed_parameter_list_is_refused() {
        let mut adam = Adam::<f64>::new(0.1).unwrap();
        let mut a = array![1.0].into_dyn();
        let mut b = array![1.0, 2.0].into_dyn();
        adam.step(&mut [a.view_mut()], &[array![1.0].into_dyn()])
            .unwrap();
        assert!(
            adam.step(&mut [b.view_mut()], &[array![1.0, 1.0].into_dyn()])
                .is_err()
        );
        assert!(
            adam.step(&mut [a.view_mut()], &[array![1.0, 1.0].into_dyn()])
                .is_err()
        );
    }

    #[test]
    fn a_loaded_state_continues_the_same_steps() {
        let grads = [0.5, -1.0, 2.0, 0.25];
        type Make = fn() -> Box<dyn Optimizer<f64>>;
        let makers: [Make; 4] = [
            || Box::new(Sgd::new(0.1).unwrap()),
            || Box::new(Sgd::builder(0.1).momentum(0.9).build().unwrap()),
            || Box::new(Adam::new(0.1).unwrap()),
            || Box::new(Adam::adamw(0.1).unwrap()),
        ];
        for make in makers {
            let mut a = make();
            let straight = run(&mut a, 1.0, &grads);
            let mut first = make();
            let half = run(&mut first, 1.0, &grads[..2]);
            let state = first.state();
            assert_eq!(state.step, 2);
            let mut second = make();
            second.load_state(&state).unwrap();
            let rest = run(&mut second, half[1], &grads[2..]);
            assert_eq!(rest, straight[2..], "{}", a.name());
        }
        assert!(
            Optimizer::<f64>::state(&Sgd::new(0.1).unwrap())
                .buffers
                .is_empty()
        );
    }
}
