//! [`Adam`]: Adam with PyTorch's update rule, its weight decay either L2 (`torch.optim.Adam`)
//! or decoupled (`torch.optim.AdamW`).

use ndarray::ArrayD;
use wengert_ops::{Float, Shape};

use super::validate::{buffer, check_rate, check_state, non_negative, same_length, zeros_like};
use super::{Optimizer, OptimizerState};
use crate::{Error, Result};

/// Below this many elements an update runs on one thread: waking a sleeping worker costs more
/// than it saves (W4's 8,192-element layer ran slower split). `docs/ARCHITECTURE.md` quotes it.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Adam (Kingma & Ba) with PyTorch's defaults, `β = (0.9, 0.999)`, `ε = 1e-8`:
/// `m = β₁m + (1-β₁)g`, `v = β₂v + (1-β₂)g²`, then
/// `p -= lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)`.
///
/// Weight decay is a setting: [`weight_decay`](AdamBuilder::weight_decay) adds `wd·p` to the
/// gradient (PyTorch's `Adam`); [`decoupled_weight_decay`](AdamBuilder::decoupled_weight_decay)
/// shrinks the parameters first, `p *= 1 - lr·wd` (Loshchilov & Hutter, PyTorch's `AdamW`,
/// also built by [`Adam::adamw`]). With decoupled decay the optimiser is named `adamw`, in
/// reports and in the state a checkpoint keeps.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{Adam, Optimizer};
///
/// let mut adamw = Adam::<f64>::builder(0.1).decoupled_weight_decay(0.1).build()?;
/// let mut p = array![1.0].into_dyn();
/// adamw.step(&mut [p.view_mut()], &[array![0.5].into_dyn()])?;
/// // p·(1 - 0.1·0.1), then Adam's first step of lr·sign(g).
/// assert!((p[[0]] - (0.99 - 0.1)).abs() < 1e-6);
/// assert_eq!(adamw.name(), "adamw");
/// assert_eq!(Adam::<f64>::adamw(0.1)?.name(), "adamw");
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Adam<E: Float> {
    settings: AdamSettings,
    step: u64,
    exp_avg: Vec<ArrayD<E>>,
    exp_avg_sq: Vec<ArrayD<E>>,
    /// The step in progress's scalars, set by `begin_step` (none before the first step and after
    /// `load_state`, so that an `update` outside a step is an error, not a silent NaN).
    scalars: Option<AdamScalars<E>>,
}

/// What a builder sets and a checkpoint checks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AdamSettings {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// AdamW's decay (`p *= 1 - lr·wd` before the step) rather than Adam's L2.
    decoupled: bool,
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

impl<E: Float> Adam<E> {
    /// Adam with learning rate `lr` and PyTorch's defaults (no weight decay); errors if `lr`
    /// is negative or not finite.
    pub fn new(lr: f64) -> Result<Self> {
        Adam::builder(lr).build()
    }

    /// AdamW with PyTorch's defaults: Adam with decoupled weight decay 0.01.
    pub fn adamw(lr: f64) -> Result<Self> {
        Adam::builder(lr).decoupled_weight_decay(0.01).build()
    }

    /// Adam with learning rate `lr` and settings to choose, checked by
    /// [`build`](AdamBuilder::build).
    pub fn builder(lr: f64) -> AdamBuilder<E> {
        AdamBuilder {
            settings: AdamSettings {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
            },
            element: std::marker::PhantomData,
        }
    }

    /// The settings a saved state must have been taken with, by name. The decay's kind is
    /// not among them: it is the state's `kind` (`adam` or `adamw`), as it always was.
    fn named_settings(&self) -> [(&'static str, f64); 4] {
        let s = &self.settings;
        [
            ("beta1", s.beta1),
            ("beta2", s.beta2),
            ("eps", s.eps),
            ("weight_decay", s.weight_decay),
        ]
    }
}

/// The settings of an [`Adam`], from [`Adam::builder`]; [`build`](AdamBuilder::build) checks
/// them (a rate that is negative or not finite, betas outside `[0, 1)`, a negative `eps` or
/// decay are errors there, not at the first step).
#[derive(Debug, Clone, Copy)]
pub struct AdamBuilder<E: Float> {
    settings: AdamSettings,
    element: std::marker::PhantomData<E>,
}

impl<E: Float> AdamBuilder<E> {
    /// The decay rates of the moment estimates (default `(0.9, 0.999)`), each in `[0, 1)`.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.settings.beta1 = beta1;
        self.settings.beta2 = beta2;
        self
    }

    /// The term added to the denominator (default `1e-8`).
    pub fn eps(mut self, eps: f64) -> Self {
        self.settings.eps = eps;
        self
    }

    /// L2 weight decay, added to the gradient (PyTorch's `Adam`; default 0). Replaces a
    /// decoupled decay set before.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.settings.weight_decay = weight_decay;
        self.settings.decoupled = false;
        self
    }

    /// Decoupled weight decay, `p *= 1 - lr·wd` before each step (PyTorch's `AdamW`, whose
    /// default is 0.01); the optimiser is then named `adamw`. Replaces an L2 decay set before.
    pub fn decoupled_weight_decay(mut self, weight_decay: f64) -> Self {
        self.settings.weight_decay = weight_decay;
        self.settings.decoupled = true;
        self
    }

    /// The optimiser, or an error naming the first setting that cannot work.
    pub fn build(self) -> Result<Adam<E>> {
        let s = &self.settings;
        check_rate(s.lr)?;
        for (name, beta) in [("beta1", s.beta1), ("beta2", s.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::InvalidConfig(format!(
                    "Adam's {name} must be in [0, 1), got {beta}"
                )));
            }
        }
        non_negative("eps", s.eps)?;
        non_negative("weight decay", s.weight_decay)?;
        Ok(Adam {
            settings: self.settings,
            step: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
            scalars: None,
        })
    }
}

impl<E: Float> Optimizer<E> for Adam<E> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> Result<()> {
        check_rate(lr)?;
        check_state(shapes, &self.exp_avg)?;
        if self.exp_avg.is_empty() {
            self.exp_avg = zeros_like(shapes);
            self.exp_avg_sq = zeros_like(shapes);
        }
        self.step += 1;
        let s = &self.settings;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        // Python floats, as in torch.optim.adam._single_tensor_adam.
        let bias_correction1 = 1.0 - s.beta1.powi(t);
        let bias_correction2 = 1.0 - s.beta2.powi(t);
        self.scalars = Some(AdamScalars {
            step_size: E::from_f64(lr / bias_correction1),
            bias_correction2_sqrt: E::from_f64(bias_correction2.sqrt()),
            eps: E::from_f64(s.eps),
            one_minus_beta1: E::from_f64(1.0 - s.beta1),
            beta2: E::from_f64(s.beta2),
            one_minus_beta2: E::from_f64(1.0 - s.beta2),
            weight_decay: E::from_f64(s.weight_decay),
            decay: E::from_f64(1.0 - lr * s.weight_decay),
        });
        Ok(())
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> Result<()> {
        same_length(index, param.len(), grad.len())?;
        let m = buffer(&mut self.exp_avg, index, param.len())?;
        let v = buffer(&mut self.exp_avg_sq, index, param.len())?;
        let c = self.scalars.as_ref().ok_or_else(|| {
            Error::Model("an optimiser's update must follow begin_step (none since the start or the last load_state)".into())
        })?;
        let decays = self.settings.weight_decay != 0.0;
        // Each kind of decay gets its own loop, free of per-element branches.
        match (decays, self.settings.decoupled) {
            (false, _) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, false, false>(p, g, m, v, c)
            }),
            (true, true) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, true, false>(p, g, m, v, c)
            }),
            (true, false) => split(param, grad, m, v, &|p, g, m, v| {
                adam_loop::<E, false, true>(p, g, m, v, c)
            }),
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.settings.lr
    }

    fn name(&self) -> &'static str {
        if self.settings.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn state(&self) -> OptimizerState<E> {
        OptimizerState::from_parts(
            Optimizer::<E>::name(self),
            self.step,
            &self.named_settings(),
            &[("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)],
        )
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        state.check(
            Optimizer::<E>::name(self),
            &self.named_settings(),
            &["exp_avg", "exp_avg_sq"],
        )?;
        self.step = state.step;
        self.exp_avg = state.take("exp_avg");
        self.exp_avg_sq = state.take("exp_avg_sq");
        self.scalars = None;
        Ok(())
    }
}

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
/// `SHRINK` is the decoupled decay, `L2` the decay through the gradient.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::tests::{close, run};

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
        let mut adamw = Adam::builder(0.1)
            .decoupled_weight_decay(0.1)
            .build()
            .unwrap();
        close(
            &run(&mut adamw, 1.0, &[0.5]),
            &[0.99 - 0.1 * 0.5 / (0.5 + 1e-8)],
        );
        assert_eq!(Optimizer::<f64>::name(&adamw), "adamw");
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
        let one = train(1, &mut Adam::adamw(0.01).unwrap());
        assert_eq!(train(2, &mut Adam::adamw(0.01).unwrap()), one);
    }

    #[test]
    fn the_decay_set_last_decides_its_kind() {
        let l2_then_decoupled = Adam::<f64>::builder(0.1)
            .weight_decay(0.3)
            .decoupled_weight_decay(0.1)
            .build()
            .unwrap();
        let decoupled_then_l2 = Adam::<f64>::builder(0.1)
            .decoupled_weight_decay(0.1)
            .weight_decay(0.1)
            .build()
            .unwrap();
        assert_eq!(l2_then_decoupled.name(), "adamw");
        assert_eq!(decoupled_then_l2.name(), "adam");
        assert_eq!(
            l2_then_decoupled.state().settings[3],
            ("weight_decay".into(), 0.1)
        );
        assert!(
            Adam::<f64>::builder(0.1)
                .decoupled_weight_decay(-1.0)
                .build()
                .is_err()
        );
    }

    #[test]
    fn the_split_size_the_architecture_quotes_is_the_codes() {
        let quoted = wengert_testkit::architecture_figure("PARALLEL_MIN_ELEMENTS");
        assert_eq!(quoted, PARALLEL_MIN_ELEMENTS as u64);
    }
}
