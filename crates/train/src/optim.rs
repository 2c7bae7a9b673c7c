//! Optimisers with PyTorch's update rules ([`Sgd`], [`Adam`], [`AdamW`]) and gradient clipping.
//!
//! Each update follows the order of operations of PyTorch's single-tensor implementation
//! (`torch.optim.SGD`, `Adam`, `AdamW` with `foreach=False`), with the step's scalars (bias
//! corrections, step size) computed in `f64` as Python does, so that a run can be compared
//! with PyTorch's step for step.

use ndarray::{ArrayD, ArrayViewMutD};
use wengert_ops::{Float, Shape};

use crate::{Error, Result};

/// An optimiser: updates parameters in place from their gradients.
///
/// A step is [`begin_step`](Optimizer::begin_step) with every parameter's shape, then one
/// [`update`](Optimizer::update) per parameter on its elements, row-major: the trainer calls
/// them on the parameters living on its tape ([`Tape::update_parameters`]), with nothing
/// copied or allocated. [`step`](Optimizer::step) does the same for parameters held in arrays.
///
/// An optimiser of one's own, `p -= lr·sign(g)`:
///
/// ```
/// use ndarray::array;
/// use wengert_ops::Shape;
/// use wengert_train::{Optimizer, OptimizerState, Result};
///
/// struct SignSgd { lr: f64, steps: u64 }
///
/// impl Optimizer<f64> for SignSgd {
///     fn begin_step(&mut self, _shapes: &[Shape]) -> Result<()> {
///         self.steps += 1; // no per-parameter state to size
///         Ok(())
///     }
///     fn update(&mut self, _index: usize, param: &mut [f64], grad: &[f64]) -> Result<()> {
///         for (p, g) in param.iter_mut().zip(grad) {
///             *p -= self.lr * g.signum();
///         }
///         Ok(())
///     }
///     fn learning_rate(&self) -> f64 { self.lr }
///     fn set_learning_rate(&mut self, lr: f64) { self.lr = lr; }
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
/// let mut opt = SignSgd { lr: 0.1, steps: 0 };
/// opt.step(&mut [w.view_mut()], &[array![3.0, -0.01].into_dyn()])?;
/// assert_eq!(w, array![0.4, -0.4].into_dyn());
/// # Ok::<(), wengert_train::Error>(())
/// ```
///
/// [`Tape::update_parameters`]: wengert_tape::Tape::update_parameters
pub trait Optimizer<E: Float> {
    /// Starts a step over parameters of these shapes, which must be the same, in the same
    /// order, at every step: counts the step, sizes the per-parameter state on the first one
    /// and checks it after.
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()>;

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
        self.begin_step(&shapes)?;
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

    /// The learning rate the next step uses.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (a schedule calls this before each step).
    fn set_learning_rate(&mut self, lr: f64);

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
/// let mut a = Adam::<f64>::new(0.1);
/// let mut p = array![1.0, 2.0].into_dyn();
/// a.step(&mut [p.view_mut()], &[array![0.5, -1.0].into_dyn()])?;
///
/// let mut b = Adam::new(0.1);
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
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()> {
        (**self).begin_step(shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        (**self).update(index, param, grad)
    }

    fn step(&mut self, params: &mut [ArrayViewMutD<'_, E>], grads: &[ArrayD<E>]) -> Result<()> {
        (**self).step(params, grads)
    }

    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        (**self).set_learning_rate(lr);
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
/// ```
/// use ndarray::array;
/// use wengert_train::{Optimizer, Sgd};
/// let mut w = array![1.0f64, 2.0].into_dyn();
/// let g = array![0.5, -1.0].into_dyn();
/// let mut sgd = Sgd::new(0.1);
/// sgd.step(&mut [w.view_mut()], &[g])?;
/// assert_eq!(w, array![0.95, 2.1].into_dyn());
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<E: Float> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    steps: u64,
    buffers: Vec<ArrayD<E>>,
    /// Whether the step in progress is the first with momentum (its buffers start at `g`).
    first: bool,
}

impl<E: Float> Sgd<E> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            steps: 0,
            buffers: Vec::new(),
            first: false,
        }
    }

    /// Heavy-ball momentum `μ` (PyTorch's `momentum`).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Nesterov momentum (needs a positive `momentum`).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// L2 weight decay: `weight_decay·p` is added to the gradient.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<E: Float> Optimizer<E> for Sgd<E> {
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()> {
        check_state(shapes, &self.buffers)?;
        if self.nesterov && self.momentum <= 0.0 {
            return Err(Error::InvalidConfig(
                "Nesterov momentum needs a positive momentum".into(),
            ));
        }
        self.first = self.buffers.is_empty();
        if self.momentum != 0.0 && self.first {
            self.buffers = zeros_like(shapes);
        }
        self.steps += 1;
        Ok(())
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        same_length(index, param.len(), grad.len())?;
        let lr = E::from_f64(self.lr);
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

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
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

    /// Starts a step: sizes or checks the moments and computes the step's scalars.
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()> {
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
            step_size: E::from_f64(self.lr / bias_correction1),
            bias_correction2_sqrt: E::from_f64(bias_correction2.sqrt()),
            eps: E::from_f64(self.eps),
            one_minus_beta1: E::from_f64(1.0 - self.beta1),
            beta2: E::from_f64(self.beta2),
            one_minus_beta2: E::from_f64(1.0 - self.beta2),
            weight_decay: E::from_f64(self.weight_decay),
            decay: E::from_f64(1.0 - self.lr * self.weight_decay),
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

impl<E: Float> Adam<E> {
    /// Adam with learning rate `lr` and PyTorch's defaults.
    pub fn new(lr: f64) -> Self {
        Adam {
            state: AdamState::new(lr, 0.0),
        }
    }

    /// The decay rates of the moment estimates (default `(0.9, 0.999)`).
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

    /// L2 weight decay, added to the gradient (default 0).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.state.weight_decay = weight_decay;
        self
    }
}

impl<E: Float> Optimizer<E> for Adam<E> {
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()> {
        self.state.begin_step(shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        self.state.update(index, param, grad, false)
    }

    fn learning_rate(&self) -> f64 {
        self.state.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.state.lr = lr;
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

impl<E: Float> AdamW<E> {
    /// AdamW with learning rate `lr` and PyTorch's defaults.
    pub fn new(lr: f64) -> Self {
        AdamW {
            state: AdamState::new(lr, 0.01),
        }
    }

    /// The decay rates of the moment estimates (default `(0.9, 0.999)`).
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

    /// Decoupled weight decay (default 0.01).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.state.weight_decay = weight_decay;
        self
    }
}

impl<E: Float> Optimizer<E> for AdamW<E> {
    fn begin_step(&mut self, shapes: &[Shape]) -> Result<()> {
        self.state.begin_step(shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        self.state.update(index, param, grad, true)
    }

    fn learning_rate(&self) -> f64 {
        self.state.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.state.lr = lr;
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
/// returns the norm before clipping.
///
/// ```
/// use ndarray::array;
/// let mut g = vec![array![3.0f64].into_dyn(), array![4.0].into_dyn()];
/// let norm = wengert_train::clip_grad_norm(&mut g, 1.0);
/// assert_eq!(norm, 5.0);
/// assert!((g[0][[0]] - 0.6).abs() < 1e-6 && (g[1][[0]] - 0.8).abs() < 1e-6);
/// ```
pub fn clip_grad_norm<E: Float>(grads: &mut [ArrayD<E>], max_norm: f64) -> f64 {
    let total = global_norm(grads.iter().map(|g| g.view()));
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = E::from_f64(coef);
        for g in grads.iter_mut() {
            g.mapv_inplace(|x| x * c);
        }
    }
    total
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
        let mut sgd = Sgd::new(0.1).weight_decay(0.1);
        close(&run(&mut sgd, 1.0, &[0.5]), &[0.94]);
    }

    #[test]
    fn momentum_matches_hand_steps() {
        // μ = 0.9, lr = 0.1, grads 1 then 2.
        // step 1: b = 1, p = 1 - 0.1 = 0.9.  step 2: b = 0.9 + 2 = 2.9, p = 0.9 - 0.29 = 0.61.
        let mut sgd = Sgd::new(0.1).momentum(0.9);
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.9, 0.61]);
        assert_eq!(Optimizer::<f64>::name(&sgd), "momentum");
    }

    #[test]
    fn nesterov_matches_hand_steps() {
        // step 1: b = 1, d = 1 + 0.9·1 = 1.9, p = 1 - 0.19 = 0.81.
        // step 2: b = 0.9 + 2 = 2.9, d = 2 + 0.9·2.9 = 4.61, p = 0.81 - 0.461 = 0.349.
        let mut sgd = Sgd::new(0.1).momentum(0.9).nesterov(true);
        close(&run(&mut sgd, 1.0, &[1.0, 2.0]), &[0.81, 0.349]);
        let mut bad = Sgd::<f64>::new(0.1).nesterov(true);
        let mut p = array![1.0].into_dyn();
        assert!(
            bad.step(&mut [p.view_mut()], &[array![1.0].into_dyn()])
                .is_err()
        );
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
        let mut adam = Adam::new(0.1);
        close(&run(&mut adam, 1.0, &[0.5, -1.0]), &[p1, p2]);
    }

    #[test]
    fn adam_weight_decay_is_l2_and_adamw_decay_is_decoupled() {
        // Adam, wd = 0.1: g = 0.5 + 0.1·1 = 0.6, and the first step moves p by lr·sign(g).
        let mut adam = Adam::new(0.1).weight_decay(0.1);
        close(
            &run(&mut adam, 1.0, &[0.5]),
            &[1.0 - 0.1 * 0.6 / (0.6 + 1e-8)],
        );
        // AdamW, wd = 0.1: p = 1·(1 - 0.01) = 0.99, then the Adam step on g = 0.5.
        let mut adamw = AdamW::new(0.1).weight_decay(0.1);
        close(
            &run(&mut adamw, 1.0, &[0.5]),
            &[0.99 - 0.1 * 0.5 / (0.5 + 1e-8)],
        );
        assert_eq!(Optimizer::<f64>::name(&adamw), "adamw");
    }

    #[test]
    fn a_changed_parameter_list_is_refused() {
        let mut adam = Adam::<f64>::new(0.1);
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
            || Box::new(Sgd::new(0.1)),
            || Box::new(Sgd::new(0.1).momentum(0.9)),
            || Box::new(Adam::new(0.1)),
            || Box::new(AdamW::new(0.1)),
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
        assert!(Optimizer::<f64>::state(&Sgd::new(0.1)).buffers.is_empty());
    }

    #[test]
    fn a_state_that_does_not_fit_is_refused() {
        let mut adam = Adam::<f64>::new(0.1);
        run(&mut adam, 1.0, &[0.5]);
        let mut state = adam.state();
        state.buffers[1].1[0] = array![1.0, 2.0].into_dyn();
        let err = Adam::<f64>::new(0.1).load_state(&state).unwrap_err();
        assert!(
            err.to_string()
                .contains("exp_avg_sq for parameter 0 has shape [2]"),
            "{err}"
        );
        let mut state = adam.state();
        state.buffers[0].1[0][[0]] = f64::NAN;
        assert!(Adam::<f64>::new(0.1).load_state(&state).is_err());
        let err = Sgd::<f64>::new(0.1)
            .momentum(0.5)
            .load_state(&Sgd::new(0.1).momentum(0.9).state());
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
        let one = train(1, &mut Adam::new(0.01));
        assert_eq!(train(2, &mut Adam::new(0.01)), one);
        assert_ne!(p0.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), one);
        let one = train(1, &mut AdamW::new(0.01));
        assert_eq!(train(2, &mut AdamW::new(0.01)), one);
    }

    #[test]
    fn clipping_leaves_small_gradients_alone() {
        let mut g = vec![array![0.3f64].into_dyn(), array![0.4].into_dyn()];
        assert!((clip_grad_norm(&mut g, 1.0) - 0.5).abs() < 1e-15);
        assert_eq!(g[0][[0]], 0.3);
    }
}
