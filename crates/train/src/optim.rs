//! Optimisers with PyTorch's update rules ([`Sgd`], [`Adam`], [`AdamW`]) and gradient clipping.
//!
//! Each update follows the order of operations of PyTorch's single-tensor implementation
//! (`torch.optim.SGD`, `Adam`, `AdamW` with `foreach=False`), with the step's scalars (bias
//! corrections, step size) computed in `f64` as Python does, so that a run can be compared
//! with PyTorch's step for step.

use ndarray::{ArrayD, ArrayViewMutD};
use wengert_ops::{Float, Shape};
use wengert_tape::{Graph, Tape};

use crate::{Error, Result};

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
    /// state (Adam, AdamW) refuse an update with no step begun (a new optimiser, or one that
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
                "no gradients on the tape: call backward before the optimiser's step".into(),
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

/// An optimiser's state between steps, as [`Optimizer::state`] takes it.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Adam, Optimizer};
///
/// let mut a = Adam::<f64>::new(0.1)?;
/// let mut p = array![1.0, 2.0].into_dyn();
/// a.step(&mut [p.view_mut()], &[array![0.5, -1.0].into_dyn()])?;
///
/// let mut b = Adam::new(0.1)?;
/// b.load_state(&a.state())?;
/// let (mut pa, mut pb) = (p.clone(), p.clone());
/// let g = array![0.25, 0.75].into_dyn();
/// a.step(&mut [pa.view_mut()], &[g.clone()])?;
/// b.step(&mut [pb.view_mut()], &[g])?;
/// assert_eq!(pa, pb);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<E: Float> {
    /// The optimiser's [`name`](Optimizer::name), checked on load.
    pub kind: String,
    /// Steps taken (Adam's bias corrections depend on it).
    pub step: u64,
    /// The settings that shape an update, by name (the learning rate aside: the trainer's
    /// schedule sets it before every step); checked on load, bit for bit.
    pub settings: Vec<(String, f64)>,
    /// Per-parameter buffers by name, each one array per parameter in the optimiser's order:
    /// `momentum_buffer` for SGD with momentum, `exp_avg` and `exp_avg_sq` for Adam and
    /// AdamW. Empty before the first step.
    pub buffers: Vec<(String, Vec<ArrayD<E>>)>,
}

impl<E: Float> OptimizerState<E> {
    /// Checks that this state was saved by an optimiser named `kind` with `settings`, and
    /// holds exactly the buffers `names` (or none, before the first step).
    fn check(&self, kind: &str, settings: &[(&str, f64)], names: &[&str]) -> Result<()> {
        if self.kind != kind {
            return Err(Error::InvalidConfig(format!(
                "the saved optimiser state is {}'s, not {kind}'s",
                self.kind
            )));
        }
        for &(name, value) in settings {
            let saved = self.settings.iter().find(|(n, _)| n == name).map(|s| s.1);
            if saved.map(f64::to_bits) != Some(value.to_bits()) {
                return Err(Error::InvalidConfig(format!(
                    "the saved {kind} state has {name} {}, this optimiser {value}",
                    saved.map_or("missing".to_string(), |v| v.to_string())
                )));
            }
        }
        let saved: Vec<&str> = self.buffers.iter().map(|(n, _)| n.as_str()).collect();
        if !saved.is_empty() && saved != names {
            return Err(Error::InvalidConfig(format!(
                "the saved {kind} state holds buffers {saved:?}, expected {names:?}"
            )));
        }
        let lens: Vec<usize> = self.buffers.iter().map(|(_, b)| b.len()).collect();
        if lens.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::InvalidConfig(format!(
                "the saved {kind} state's buffers cover different numbers of parameters: {lens:?}"
            )));
        }
        if let Some((_, first)) = self.buffers.first() {
            for (name, arrays) in &self.buffers[1..] {
                if let Some(i) = (0..first.len()).find(|&i| arrays[i].shape() != first[i].shape()) {
                    return Err(Error::InvalidConfig(format!(
                        "the saved {kind} state's {name} for parameter {i} has shape {:?}, its {} {:?}",
                        arrays[i].shape(),
                        self.buffers[0].0,
                        first[i].shape()
                    )));
                }
            }
        }
        for (name, arrays) in &self.buffers {
            if let Some((i, _)) = arrays
                .iter()
                .enumerate()
                .find(|(_, a)| a.iter().any(|x| !x.is_finite()))
            {
                return Err(Error::InvalidConfig(format!(
                    "the saved {kind} state's {name} for parameter {i} is not finite"
                )));
            }
        }
        Ok(())
    }

    /// The buffers named `name` (empty if there are none yet).
    fn take(&self, name: &str) -> Vec<ArrayD<E>> {
        self.buffers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| {
                b.iter()
                    .map(|a| a.as_standard_layout().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
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

/// Checks that `grads` match `params` one for one, and returns their shapes.
fn check_shapes<E: Float>(
    params: &[ArrayViewMutD<'_, E>],
    grads: &[ArrayD<E>],
) -> Result<Vec<Shape>> {
    if params.len() != grads.len() {
        return Err(Error::Model(format!(
            "{} parameters but {} gradients",
            params.len(),
            grads.len()
        )));
    }
    let mut shapes = Vec::with_capacity(params.len());
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        if p.shape() != g.shape() {
            return Err(Error::Model(format!(
                "parameter {i} has shape {:?} but its gradient {:?}",
                p.shape(),
                g.shape()
            )));
        }
        shapes.push(Shape::new(p.shape())?);
    }
    Ok(shapes)
}

/// Checks that the per-parameter `state` (if any yet) fits parameters of `shapes`.
fn check_state<E: Float>(shapes: &[Shape], state: &[ArrayD<E>]) -> Result<()> {
    if state.is_empty() {
        return Ok(());
    }
    if state.len() != shapes.len() {
        return Err(Error::Model(format!(
            "the optimiser saw {} parameters before and {} now",
            state.len(),
            shapes.len()
        )));
    }
    for (i, (s, shape)) in state.iter().zip(shapes).enumerate() {
        if s.shape() != shape.dims() {
            return Err(Error::Model(format!(
                "parameter {i} changed shape from {:?} to {:?} between steps",
                s.shape(),
                shape.dims()
            )));
        }
    }
    Ok(())
}

fn zeros_like<E: Float>(shapes: &[Shape]) -> Vec<ArrayD<E>> {
    shapes.iter().map(|s| ArrayD::zeros(s.dims())).collect()
}

/// The state buffer of parameter `index` as a slice of `len` elements, or an error naming the
/// mismatch (an `update` outside the list its `begin_step` was given).
fn buffer<E: Float>(buffers: &mut [ArrayD<E>], index: usize, len: usize) -> Result<&mut [E]> {
    let count = buffers.len();
    let b = buffers
        .get_mut(index)
        .and_then(|b| b.as_slice_mut())
        .ok_or_else(|| {
            Error::Model(format!(
                "update of parameter {index}, but the step began with {count}"
            ))
        })?;
    if b.len() != len {
        return Err(Error::Model(format!(
            "parameter {index} has {len} elements, but {} when the step began",
            b.len()
        )));
    }
    Ok(b)
}

/// Checks that a parameter and its gradient have the same length.
fn same_length(index: usize, param: usize, grad: usize) -> Result<()> {
    if param != grad {
        return Err(Error::Model(format!(
            "parameter {index} has {param} elements but its gradient {grad}"
        )));
    }
    Ok(())
}

/// Stochastic gradient descent, optionally with momentum (heavy-ball or Nesterov) and L2
/// weight decay: PyTorch's `torch.optim.SGD` with `dampening = 0`.
///
/// With `g = grad + weight_decay·p`: without momentum `p -= lr·g`; with momentum `μ`,
/// `b = g` on the first step and `b = μ·b + g` after, then `p -= lr·b` (or `p -= lr·(g + μ·b)`
/// with Nesterov).
///
/// Settings are checked when the optimiser is built ([`Sgd::new`], [`SgdBuilder::build`]):
/// a negative or non-finite rate, negative momentum or decay, or Nesterov without momentum is
/// an error there, not at the first step.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Optimizer, Sgd};
/// let mut w = array![1.0f64, 2.0].into_dyn();
/// let g = array![0.5, -1.0].into_dyn();
/// let mut sgd = Sgd::new(0.1)?;
/// sgd.step(&mut [w.view_mut()], &[g])?;
/// assert_eq!(w, array![0.95, 2.1].into_dyn());
///
/// let nesterov = Sgd::<f64>::builder(0.1).momentum(0.9).nesterov(true).build()?;
/// assert!(Sgd::<f64>::builder(0.1).nesterov(true).build().is_err());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<E: Float> {
    lr: f64,
    /// This step's rate, from `begin_step`.
    step_lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    steps: u64,
    buffers: Vec<ArrayD<E>>,
    /// Whether the step in progress is the first with momentum (its buffers start at `g`).
    first: bool,
}

impl<E: Float> Sgd<E> {
    /// Plain SGD with learning rate `lr`; errors if `lr` is negative or not finite.
    pub fn new(lr: f64) -> Result<Self> {
        Sgd::builder(lr).build()
    }

    /// SGD with learning rate `lr` and settings to choose, checked by
    /// [`build`](SgdBuilder::build).
    pub fn builder(lr: f64) -> SgdBuilder<E> {
        SgdBuilder {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            element: std::marker::PhantomData,
        }
    }
}

/// The settings of an [`Sgd`], from [`Sgd::builder`].
#[derive(Debug, Clone, Copy)]
pub struct SgdBuilder<E: Float> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    element: std::marker::PhantomData<E>,
}

impl<E: Float> SgdBuilder<E> {
    /// Heavy-ball momentum `μ` (PyTorch's `momentum`, default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Nesterov momentum (needs a positive [`momentum`](SgdBuilder::momentum)).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// L2 weight decay: `weight_decay·p` is added to the gradient (default 0).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The optimiser, or an error naming the first setting that cannot work.
    pub fn build(self) -> Result<Sgd<E>> {
        check_rate(self.lr)?;
        non_negative("momentum", self.momentum)?;
        non_negative("weight decay", self.weight_decay)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(Error::InvalidConfig(
                "Nesterov momentum needs a positive momentum".into(),
            ));
        }
        Ok(Sgd {
            lr: self.lr,
            step_lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            steps: 0,
            buffers: Vec::new(),
            first: false,
        })
    }
}

/// Checks a learning rate: finite and not negative.
fn check_rate(lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the learning rate must be finite and not negative, got {lr}"
        )))
    }
}

/// Checks a setting that must be finite and not negative.
fn non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "the {name} must be finite and not negative, got {value}"
        )))
    }
}

impl<E: Float> Optimizer<E> for Sgd<E> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        check_rate(lr)?;
        check_state(shapes, &self.buffers)?;
        self.step_lr = lr;
        self.first = self.buffers.is_empty();
        if self.momentum != 0.0 && self.first {
            self.buffers = zeros_like(shapes);
        }
        self.steps += 1;
        Ok(())
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        same_length(index, param.len(), grad.len())?;
        let lr = E::from_f64(self.step_lr);
        let wd = E::from_f64(self.weight_decay);
        let mu = E::from_f64(self.momentum);
        let use_wd = self.weight_decay != 0.0;
        if self.momentum != 0.0 {
            let (first, nesterov) = (self.first, self.nesterov);
            let buf = buffer(&mut self.buffers, index, param.len())?;
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf) {
                let d = if use_wd { g + wd * *p } else { g };
                *b = if first { d } else { *b * mu + d };
                let d = if nesterov { d + mu * *b } else { *b };
                *p += -lr * d;
            }
        } else {
            for (p, &g) in param.iter_mut().zip(grad) {
                let d = if use_wd { g + wd * *p } else { g };
                *p += -lr * d;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn name(&self) -> &'static str {
        if self.momentum == 0.0 {
            "sgd"
        } else if self.nesterov {
            "nesterov"
        } else {
            "momentum"
        }
    }

    fn state(&self) -> OptimizerState<E> {
        OptimizerState {
            kind: Optimizer::<E>::name(self).to_string(),
            step: self.steps,
            settings: self
                .settings()
                .iter()
                .map(|&(n, v)| (n.to_string(), v))
                .collect(),
            buffers: if self.buffers.is_empty() {
                Vec::new()
            } else {
                vec![("momentum_buffer".to_string(), self.buffers.clone())]
            },
        }
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        let names: &[&str] = if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        };
        state.check(Optimizer::<E>::name(self), &self.settings(), names)?;
        self.steps = state.step;
        self.buffers = state.take("momentum_buffer");
        Ok(())
    }
}

impl<E: Float> Sgd<E> {
    fn settings(&self) -> [(&'static str, f64); 3] {
        [
            ("momentum", self.momentum),
            ("nesterov", f64::from(u8::from(self.nesterov))),
            ("weight_decay", self.weight_decay),
        ]
    }
}

/// The moment estimates Adam and AdamW share.
#[derive(Debug, Clone)]
struct AdamState<E: Float> {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    step: u64,
    exp_avg: Vec<ArrayD<E>>,
    exp_avg_sq: Vec<ArrayD<E>>,
    /// The step in progress's scalars, set by `begin_step` (none before the first step and after
    /// `load_state`, so that an `update` outside a step is an error, not a silent NaN).
    scalars: Option<AdamScalars<E>>,
}

/// The scalars of one Adam step, computed once per step (in `f64`, as Python does) rather
/// than per element.
#[derive(Debug, Clone, Copy)]
struct AdamScalars<E> {
    step_size: E,
    bias_correction2_sqrt: E,
    eps: E,
    one_minus_beta1: E,
    beta2: E,
    one_minus_beta2: E,
    weight_decay: E,
    decay: E,
}

impl<E: Float> AdamState<E> {
    fn new(lr: f64, weight_decay: f64) -> Self {
        AdamState {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
            scalars: None,
        }
    }

    fn settings(&self) -> [(&'static str, f64); 4] {
        [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ]
    }

    fn state(&self, kind: &str) -> OptimizerState<E> {
        OptimizerState {
            kind: kind.to_string(),
            step: self.step,
            settings: self
                .settings()
                .iter()
                .map(|&(n, v)| (n.to_string(), v))
                .collect(),
            buffers: if self.exp_avg.is_empty() {
                Vec::new()
            } else {
                vec![
                    ("exp_avg".to_string(), self.exp_avg.clone()),
                    ("exp_avg_sq".to_string(), self.exp_avg_sq.clone()),
                ]
            },
        }
    }

    fn load_state(&mut self, kind: &str, state: &OptimizerState<E>) -> Result<()> {
        state.check(kind, &self.settings(), &["exp_avg", "exp_avg_sq"])?;
        self.step = state.step;
        self.exp_avg = state.take("exp_avg");
        self.exp_avg_sq = state.take("exp_avg_sq");
        self.scalars = None;
        Ok(())
    }

    /// Checks the settings, once, when the optimiser is built.
    fn check(&self) -> Result<()> {
        check_rate(self.lr)?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::InvalidConfig(format!(
                    "Adam's {name} must be in [0, 1), got {beta}"
                )));
            }
        }
        non_negative("eps", self.eps)?;
        non_negative("weight decay", self.weight_decay)
    }

    /// Starts a step at rate `lr`: sizes or checks the moments and computes the step's scalars.
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        check_rate(lr)?;
        check_state(shapes, &self.exp_avg)?;
        if self.exp_avg.is_empty() {
            self.exp_avg = zeros_like(shapes);
            self.exp_avg_sq = zeros_like(shapes);
        }
        self.step += 1;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        // Python floats, as in torch.optim.adam._single_tensor_adam.
        let bias_correction1 = 1.0 - self.beta1.powi(t);
        let bias_correction2 = 1.0 - self.beta2.powi(t);
        self.scalars = Some(AdamScalars {
            step_size: E::from_f64(lr / bias_correction1),
            bias_correction2_sqrt: E::from_f64(bias_correction2.sqrt()),
            eps: E::from_f64(self.eps),
            one_minus_beta1: E::from_f64(1.0 - self.beta1),
            beta2: E::from_f64(self.beta2),
            one_minus_beta2: E::from_f64(1.0 - self.beta2),
            weight_decay: E::from_f64(self.weight_decay),
            decay: E::from_f64(1.0 - lr * self.weight_decay),
        });
        Ok(())
    }

    /// Updates one parameter; `decoupled` selects AdamW's decay (`p *= 1 - lr·wd` first) over
    /// Adam's L2.
    fn update(&mut self, index: usize, param: &mut [E], grad: &[E], decoupled: bool) -> Result<()> {
        same_length(index, param.len(), grad.len())?;
        let m = buffer(&mut self.exp_avg, index, param.len())?;
        let v = buffer(&mut self.exp_avg_sq, index, param.len())?;
        let c = self.scalars.as_ref().ok_or_else(|| {
            Error::Model("an optimiser's update must follow begin_step (none since the start or the last load_state)".into())
        })?;
        let decays = self.weight_decay != 0.0;
        // Each combination gets its own loop, free of per-element branches.
        match (decays && decoupled, decays && !decoupled) {
            (false, false) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, false, false>(p, g, m, v, c)
            }),
            (true, _) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, true, false>(p, g, m, v, c)
            }),
            (false, true) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, false, true>(p, g, m, v, c)
            }),
        }
        Ok(())
    }
}

/// The constructors of [`Adam`] and [`AdamW`]: `new(lr)` with PyTorch's defaults, and a
/// builder whose settings [`build`](AdamBuilder::build) checks (a rate that is negative or not
/// finite, betas outside `[0, 1)`, a negative `eps` or decay are errors there).
macro_rules! adam_builder {
    ($Opt:ident, $Builder:ident, $decay:expr, $decay_doc:literal) => {
        impl<E: Float> $Opt<E> {
            #[doc = concat!(stringify!($Opt), " with learning rate `lr` and PyTorch's defaults.")]
            pub fn new(lr: f64) -> Result<Self> {
                $Opt::builder(lr).build()
            }

            #[doc = concat!(stringify!($Opt), " with learning rate `lr` and settings to choose.")]
            pub fn builder(lr: f64) -> $Builder<E> {
                $Builder {
                    state: AdamState::new(lr, $decay),
                }
            }
        }

        #[doc = concat!("The settings of an [`", stringify!($Opt), "`], from [`",
                                                            stringify!($Opt), "::builder`].")]
        #[derive(Debug, Clone)]
        pub struct $Builder<E: Float> {
            state: AdamState<E>,
        }

        impl<E: Float> $Builder<E> {
            /// The decay rates of the moment estimates (default `(0.9, 0.999)`), each in `[0, 1)`.
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.state.beta1 = beta1;
                self.state.beta2 = beta2;
                self
            }

            /// The term added to the denominator (default `1e-8`).
            pub fn eps(mut self, eps: f64) -> Self {
                self.state.eps = eps;
                self
            }

            #[doc = $decay_doc]
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.state.weight_decay = weight_decay;
                self
            }

            /// The optimiser, or an error naming the first setting that cannot work.
            pub fn build(self) -> Result<$Opt<E>> {
                self.state.check()?;
                Ok($Opt { state: self.state })
            }
        }
    };
}

/// Below this many elements an update runs on one thread: waking a sleeping worker costs more
/// than it saves (W4's 8,192-element layer ran slower split).
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Runs `f` on `(param, grad, exp_avg, exp_avg_sq)`, split in two halves on two of the
/// current rayon pool's threads when the parameter is large and the caller is inside a pool
/// of more than one thread (from outside, `rayon::join` would go through rayon's global queue,
/// which allocates). Every element is updated by itself, so the result is the same for any
/// split.
fn split<E: Float, F>(param: &mut [E], grad: &[E], exp_avg: &mut [E], exp_avg_sq: &mut [E], f: &F)
where
    F: Fn(&mut [E], &[E], &mut [E], &mut [E]) + Sync,
{
    let n = param.len();
    if n < PARALLEL_MIN_ELEMENTS
        || rayon::current_thread_index().is_none()
        || rayon::current_num_threads() < 2
    {
        return f(param, grad, exp_avg, exp_avg_sq);
    }
    // Halves of whole cache lines (16 f32 or 8 f64).
    let mid = (n / 2).next_multiple_of(16).min(n);
    let (p0, p1) = param.split_at_mut(mid);
    let (g0, g1) = grad.split_at(mid);
    let (m0, m1) = exp_avg.split_at_mut(mid);
    let (v0, v1) = exp_avg_sq.split_at_mut(mid);
    rayon::join(|| f(p0, g0, m0, v0), || f(p1, g1, m1, v1));
}

/// Adam's update of one parameter, element by element in PyTorch's order of operations:
/// `SHRINK` is AdamW's decoupled decay, `L2` Adam's decay through the gradient.
#[inline]
fn adam_loop<E: Float, const SHRINK: bool, const L2: bool>(
    param: &mut [E],
    grad: &[E],
    exp_avg: &mut [E],
    exp_avg_sq: &mut [E],
    c: &AdamScalars<E>,
) {
    let lerp_from_a = c.one_minus_beta1.abs() < E::from_f64(0.5);
    let one_minus_w = E::one() - c.one_minus_beta1;
    let neg_step_size = -c.step_size;
    for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(exp_avg).zip(exp_avg_sq) {
        if SHRINK {
            *p *= c.decay;
        }
        let g = if L2 { g + c.weight_decay * *p } else { g };
        // torch.lerp(m, g, 1 - β₁), whose formula depends on the weight (loop-invariant).
        *m = if lerp_from_a {
            *m + c.one_minus_beta1 * (g - *m)
        } else {
            g - (g - *m) * one_minus_w
        };
        *v = *v * c.beta2 + c.one_minus_beta2 * g * g;
        let denom = v.sqrt() / c.bias_correction2_sqrt + c.eps;
        *p += neg_step_size * (*m / denom);
    }
}

/// Adam (Kingma & Ba), PyTorch's `torch.optim.Adam`: `β = (0.9, 0.999)`, `ε = 1e-8`, and L2
/// weight decay added to the gradient.
///
/// `m = β₁m + (1-β₁)g`, `v = β₂v + (1-β₂)g²`, then
/// `p -= lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)`.
#[derive(Debug, Clone)]
pub struct Adam<E: Float> {
    state: AdamState<E>,
}

adam_builder!(
    Adam,
    AdamBuilder,
    0.0,
    "L2 weight decay, added to the gradient (default 0)."
);

impl<E: Float> Optimizer<E> for Adam<E> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        self.state.begin_step(lr, shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        self.state.update(index, param, grad, false)
    }

    fn learning_rate(&self) -> f64 {
        self.state.lr
    }

    fn name(&self) -> &'static str {
        "adam"
    }

    fn state(&self) -> OptimizerState<E> {
        self.state.state("adam")
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        self.state.load_state("adam", state)
    }
}

/// AdamW (Loshchilov & Hutter), PyTorch's `torch.optim.AdamW`: Adam whose weight decay
/// shrinks the parameters directly (`p *= 1 - lr·wd`) instead of entering the gradient.
/// Default weight decay 0.01, as in PyTorch.
#[derive(Debug, Clone)]
pub struct AdamW<E: Float> {
    state: AdamState<E>,
}

adam_builder!(
    AdamW,
    AdamWBuilder,
    0.01,
    "Decoupled weight decay (default 0.01)."
);

impl<E: Float> Optimizer<E> for AdamW<E> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        self.state.begin_step(lr, shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        self.state.update(index, param, grad, true)
    }

    fn learning_rate(&self) -> f64 {
        self.state.lr
    }

    fn name(&self) -> &'static str {
        "adamw"
    }

    fn state(&self) -> OptimizerState<E> {
        self.state.state("adamw")
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        self.state.load_state("adamw", state)
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_` does (`coef = max_norm / (norm + 1e-6)`, applied when below 1), and
/// returns the norm before clipping. `grads` is anything holding gradients ([`GradientSet`]):
/// owned arrays, views into arrays, or a [`Tape`], whose parameters' gradients are clipped
/// where they are, ready for [`Optimizer::step_tape`].
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
    grads.for_each_grad(&mut |g| sum += squares(g.iter()));
    let total = sum.sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = E::from_f64(coef);
        grads.for_each_grad_mut(&mut |mut g| g.map_inplace(|x| *x *= c));
    }
    total
}

/// Gradients that [`clip_grad_norm`] can scale in place: visited one array at a time.
pub trait GradientSet<E: Float> {
    /// Calls `f` on every gradient.
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>));
    /// Calls `f` on every gradient, to change it in place.
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>));
}

impl<E: Float> GradientSet<E> for [ArrayD<E>] {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>)) {
        self.iter().for_each(|g| f(g.view()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.iter_mut().for_each(|g| f(g.view_mut()));
    }
}

impl<E: Float> GradientSet<E> for Vec<ArrayD<E>> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>)) {
        self.as_mut_slice().for_each_grad(f);
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.as_mut_slice().for_each_grad_mut(f);
    }
}

impl<E: Float> GradientSet<E> for [ArrayViewMutD<'_, E>] {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>)) {
        self.iter().for_each(|g| f(g.view()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.iter_mut().for_each(|g| f(g.view_mut()));
    }
}

impl<E: Float> GradientSet<E> for Vec<ArrayViewMutD<'_, E>> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>)) {
        self.as_mut_slice().for_each_grad(f);
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.as_mut_slice().for_each_grad_mut(f);
    }
}

/// A tape's parameters' gradients from its last sweep, where they are.
impl<E: Float> GradientSet<E> for Tape<E> {
    fn for_each_grad(&mut self, f: &mut dyn FnMut(ndarray::ArrayViewD<'_, E>)) {
        self.parameter_grads_mut()
            .for_each(|g| f(ndarray::ArrayView1::from(&g[..]).into_dyn()));
    }
    fn for_each_grad_mut(&mut self, f: &mut dyn FnMut(ArrayViewMutD<'_, E>)) {
        self.parameter_grads_mut()
            .for_each(|g| f(ndarray::ArrayViewMut1::from(g).into_dyn()));
    }
}

/// The sum of squares of `xs`, in `f64`, in order.
fn squares<'a, E: Float>(xs: impl Iterator<Item = &'a E>) -> f64 {
    xs.map(|&x| {
        let x = Float::to_f64(x);
        x * x
    })
    .sum()
}

/// The L2 norm of all of `grads` together, summed in `f64` in order.
pub(crate) fn global_norm<'a, E: Float>(
    grads: impl Iterator<Item = ndarray::ArrayViewD<'a, E>>,
) -> f64 {
    grads
        .flat_map(|g| g.into_iter())
        .map(|&x| {
            let x = Float::to_f64(x);
            x * x
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn run<O: Optimizer<f64>>(opt: &mut O, p0: f64, grads: &[f64]) -> Vec<f64> {
        let mut p = array![p0].into_dyn();
        let mut out = Vec::new();
        for &g in grads {
            opt.step(&mut [p.view_mut()], &[array![g].into_dyn()])
                .unwrap();
            out.push(p[[0]]);
        }
        out
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn sgd_with_weight_decay_matches_a_hand_step() {
        // p = 1, g = 0.5, wd = 0.1: d = 0.5 + 0.1 = 0.6; p = 1 - 0.1·0.6 = 0.94.
        let mut sgd = Sgd::builder(0.1).weight_decay(0.1).build().unwrap();
        close(&run(&mut sgd, 1.0, &[0.5]), &[0.94]);
    }

    #[test]
    fn momentum_matches_hand_steps() {
        // μ = 0.9, lr = 0.1, grads 1 then 2.
        // step 1: b = 1, p = 1 - 0.1 = 0.9.  step 2: b = 0.9 + 2 = 2.9, p = 0.9 - 0.29 = 0.61.
        let mut sgd = Sgd::builder(0.1).momentum(0.9).build().unwrap();
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.9, 0.61]);
        assert_eq!(Optimizer::<f64>::name(&sgd), "momentum");
    }

    #[test]
    fn nesterov_matches_hand_steps() {
        // step 1: b = 1, d = 1 + 0.9·1 = 1.9, p = 1 - 0.19 = 0.81.
        // step 2: b = 0.9 + 2 = 2.9, d = 2 + 0.9·2.9 = 4.61, p = 0.81 - 0.461 = 0.349.
        let mut sgd = Sgd::builder(0.1)
            .momentum(0.9)
            .nesterov(true)
            .build()
            .unwrap();
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.81, 0.349]);
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
        refused(AdamW::<f64>::new(f64::INFINITY).map(drop), "learning rate");
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
    fn adam_matches_hand_steps() {
        // lr = 0.1, β = (0.9, 0.999), ε = 1e-8, grads 0.5 then -1.
        // step 1: m = 0.05, v = 0.00025; m̂ = 0.5, √v̂ = 0.5; p = 1 - 0.1·0.5/(0.5 + 1e-8).
        let p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);
        // step 2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975.
        let (m, v): (f64, f64) = (0.9 * 0.05 - 0.1, 0.999 * 0.00025 + 0.001);
        let bc1 = 1.0 - 0.9f64 * 0.9;
        let bc2 = 1.0 - 0.999f64 * 0.999;
        let p2 = p1 - (0.1 / bc1) * m / (v.sqrt() / bc2.sqrt() + 1e-8);
        let mut adam = Adam::new(0.1).unwrap();
        close(&run(&mut adam, 1.0, &[0.5, -1.0]), &[p1, p2]);
    }

    #[test]
    fn adam_weight_decay_is_l2_and_adamw_decay_is_decoupled() {
        // Adam, wd = 0.1: g = 0.5 + 0.1·1 = 0.6, and the first step moves p by lr·sign(g).
        let mut adam = Adam::builder(0.1).weight_decay(0.1).build().unwrap();
        close(
            &run(&mut adam, 1.0, &[0.5]),
            &[1.0 - 0.1 * 0.6 / (0.6 + 1e-8)],
        );
        // AdamW, wd = 0.1: p = 1·(1 - 0.01) = 0.99, then the Adam step on g = 0.5.
        let mut adamw = AdamW::builder(0.1).weight_decay(0.1).build().unwrap();
        close(
            &run(&mut adamw, 1.0, &[0.5]),
            &[0.99 - 0.1 * 0.5 / (0.5 + 1e-8)],
        );
        assert_eq!(Optimizer::<f64>::name(&adamw), "adamw");
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
            || Box::new(AdamW::new(0.1).unwrap()),
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

    #[test]
    fn a_state_that_does_not_fit_is_refused() {
        let mut adam = Adam::<f64>::new(0.1).unwrap();
        run(&mut adam, 1.0, &[0.5]);
        let mut state = adam.state();
        state.buffers[1].1[0] = array![1.0, 2.0].into_dyn();
        let err = Adam::<f64>::new(0.1)
            .unwrap()
            .load_state(&state)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("exp_avg_sq for parameter 0 has shape [2]"),
            "{err}"
        );
        let mut state = adam.state();
        state.buffers[0].1[0][[0]] = f64::NAN;
        assert!(Adam::<f64>::new(0.1).unwrap().load_state(&state).is_err());
        let err = Sgd::<f64>::builder(0.1)
            .momentum(0.5)
            .build()
            .unwrap()
            .load_state(&Sgd::builder(0.1).momentum(0.9).build().unwrap().state());
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("momentum 0.9, this optimiser 0.5")
        );
    }

    #[test]
    fn a_large_parameter_updated_on_two_threads_matches_one_thread_bit_for_bit() {
        // Large enough to be split across the pool's threads; an odd length for a ragged end.
        let n = 3 * PARALLEL_MIN_ELEMENTS + 5;
        let p0 = ArrayD::from_shape_fn(vec![n], |i| (i[0] as f32 * 0.37).sin());
        let grads: Vec<ArrayD<f32>> = (0..3)
            .map(|s| ArrayD::from_shape_fn(vec![n], |i| ((i[0] + s) as f32 * 0.11).cos()))
            .collect();
        let train = |threads: usize, opt: &mut (dyn Optimizer<f32> + Send)| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut p = p0.clone();
            for g in &grads {
                pool.install(|| opt.step(&mut [p.view_mut()], std::slice::from_ref(g)))
                    .unwrap();
            }
            p.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
        };
        let one = train(1, &mut Adam::new(0.01).unwrap());
        assert_eq!(train(2, &mut Adam::new(0.01).unwrap()), one);
        assert_ne!(p0.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), one);
        let one = train(1, &mut AdamW::new(0.01).unwrap());
        assert_eq!(train(2, &mut AdamW::new(0.01).unwrap()), one);
    }

    #[test]
    fn clipping_leaves_small_gradients_alone() {
        let mut g = vec![array![0.3f64].into_dyn(), array![0.4].into_dyn()];
        assert!((clip_grad_norm(&mut g, 1.0) - 0.5).abs() < 1e-15);
        assert_eq!(g[0][[0]], 0.3);
    }
}
