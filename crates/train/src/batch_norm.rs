//! [`BatchNorm1d`] and [`BatchNorm2d`]: batch normalisation with a learned scale and shift and
//! running statistics, PyTorch's `nn.BatchNorm1d` and `nn.BatchNorm2d`.
//!
//! A training pass normalises each channel by the batch's mean and biased variance (the
//! tape's `batch_norm`) and records the running statistics' new values as ordinary nodes,
//! `r ← (1 - momentum)·r + momentum·stat` with the batch's *unbiased* variance, registered
//! with [`ParameterIds::update_buffer`]: the trainer (or [`Module::apply_training`]) copies
//! them into the buffers once the step is done. No op writes anything, so a replayed pass
//! never moves the statistics twice. An evaluation pass normalises by the running statistics
//! (`batch_norm_eval`), which take no gradient.

use ndarray::{Array1, ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Module, ParameterIds, Result};

/// A batch norm layer's settings (PyTorch's defaults: eps 1e-5, momentum 0.1, affine).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance before the square root (finite, at least 0).
    pub eps: f64,
    /// How far a training pass moves the running statistics towards the batch's (in
    /// `[0, 1]`; 0 leaves them where they are).
    pub momentum: f64,
    /// Whether the layer has a learned scale `weight` (ones at first) and shift `bias`
    /// (zeros); without, it has no parameters.
    pub affine: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// What both layers hold; they differ in the input ranks they accept.
#[derive(Debug, Clone, PartialEq)]
struct Norm<E: Float> {
    /// The scale and shift, `[C]` each, when affine.
    affine: Option<(Array1<E>, Array1<E>)>,
    running_mean: Array1<E>,
    running_var: Array1<E>,
    eps: f64,
    momentum: f64,
}

impl<E: Float> Norm<E> {
    fn new(layer: &str, num_features: usize, options: BatchNormOptions) -> Result<Self> {
        let bad = |what: String| Err(Error::InvalidConfig(format!("{layer}: {what}")));
        if num_features == 0 {
            return bad("it needs at least one feature (channel)".into());
        }
        if !(options.eps.is_finite() && options.eps >= 0.0) {
            return bad(format!(
                "eps must be finite and at least 0, got {}",
                options.eps
            ));
        }
        if !(0.0..=1.0).contains(&options.momentum) {
            return bad(format!(
                "the momentum must lie in [0, 1], got {}",
                options.momentum
            ));
        }
        let filled = |value: E| -> Result<Array1<E>> {
            let mut v = Vec::new();
            v.try_reserve_exact(num_features).map_err(|_| {
                Error::InvalidConfig(format!(
                    "{layer}: {num_features} features do not fit in memory"
                ))
            })?;
            v.resize(num_features, value);
            Ok(Array1::from(v))
        };
        let affine = match options.affine {
            true => Some((filled(E::one())?, filled(E::zero())?)),
            false => None,
        };
        Ok(Norm {
            affine,
            running_mean: filled(E::zero())?,
            running_var: filled(E::one())?,
            eps: options.eps,
            momentum: options.momentum,
        })
    }

    fn options(&self) -> BatchNormOptions {
        BatchNormOptions {
            eps: self.eps,
            momentum: self.momentum,
            affine: self.affine.is_some(),
        }
    }

    /// The forward pass of `x`, whose rank `ranks` must allow (`layer` names the layer and
    /// what it takes in errors).
    fn forward(
        &self,
        (layer, takes, ranks): (&str, &str, &[usize]),
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let shape = tape.shape(x)?;
        let channels = self.running_mean.len();
        if !ranks.contains(&shape.rank()) || shape.dims()[1] != channels {
            return Err(Error::Model(format!(
                "{layer}({channels}) takes {takes} with C = {channels}, got {:?}",
                shape.dims()
            )));
        }
        let (gamma, beta) = match self.affine {
            Some(_) => (Some(params.next()?), Some(params.next()?)),
            None => (None, None),
        };
        let mean = params.next_buffer()?;
        let var = params.next_buffer()?;
        if !params.is_training() {
            return Ok(tape.batch_norm_eval(x, gamma, beta, mean, var, self.eps)?);
        }
        let y = tape.batch_norm(x, gamma, beta, self.eps)?;
        let (new_mean, new_var) = tape.no_grad(|tape| self.moved_statistics(tape, x, mean, var))?;
        params.update_buffer(mean, new_mean)?;
        params.update_buffer(var, new_var)?;
        Ok(y)
    }

    /// The running statistics moved towards the batch's: `(1 - m)·r + m·stat`, with the
    /// batch's mean and unbiased variance per channel, as nodes.
    fn moved_statistics(
        &self,
        tape: &mut Tape<E>,
        x: NodeId,
        mean: NodeId,
        var: NodeId,
    ) -> Result<(NodeId, NodeId)> {
        let dims = tape.shape(x)?;
        let dims = dims.dims();
        let (n, c) = (dims[0], dims[1]);
        let inner: usize = dims[2..].iter().product();
        // Each channel's values in a row: [C, N·L].
        let rows = tape.reshape(x, &[n, c, inner])?;
        let rows = tape.transpose_axes(rows, 0, 1)?;
        let rows = tape.reshape(rows, &[c, n * inner])?;
        let batch_mean = tape.mean_axis(rows, 1)?;
        let batch_var = tape.var(rows, Some(1), 1.0, false)?;
        let m = self.momentum;
        let mut moved = |running: NodeId, batch: NodeId| -> Result<NodeId> {
            let kept = tape.mul_scalar(running, E::from_f64(1.0 - m))?;
            let towards = tape.mul_scalar(batch, E::from_f64(m))?;
            Ok(tape.add(kept, towards)?)
        };
        Ok((moved(mean, batch_mean)?, moved(var, batch_var)?))
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        match &self.affine {
            Some((w, b)) => vec![w.view().into_dyn(), b.view().into_dyn()],
            None => Vec::new(),
        }
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        match &mut self.affine {
            Some((w, b)) => vec![w.view_mut().into_dyn(), b.view_mut().into_dyn()],
            None => Vec::new(),
        }
    }

    fn parameter_names(&self) -> Vec<String> {
        match self.affine {
            Some(_) => vec!["weight".into(), "bias".into()],
            None => Vec::new(),
        }
    }

    fn buffers(&self) -> Vec<ArrayViewD<'_, E>> {
        vec![
            self.running_mean.view().into_dyn(),
            self.running_var.view().into_dyn(),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        vec![
            self.running_mean.view_mut().into_dyn(),
            self.running_var.view_mut().into_dyn(),
        ]
    }
}

/// Generates a batch norm layer over `Norm`: its constructors, accessors and `Module`.
macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $takes:literal, $ranks:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name<E: Float> {
            norm: Norm<E>,
        }

        impl<E: Float> $name<E> {
            /// A layer over `num_features` channels with PyTorch's defaults (eps 1e-5,
            /// momentum 0.1, a scale of ones and a shift of zeros), running mean 0 and
            /// variance 1. An error if `num_features` is 0 or does not fit in memory.
            pub fn new(num_features: usize) -> Result<Self> {
                Self::with_options(num_features, BatchNormOptions::default())
            }

            /// A layer over `num_features` channels with these settings; an error if eps is
            /// negative or not finite, or the momentum outside `[0, 1]`.
            pub fn with_options(num_features: usize, options: BatchNormOptions) -> Result<Self> {
                let norm = Norm::new(stringify!($name), num_features, options)?;
                Ok($name { norm })
            }

            /// The number of channels.
            pub fn num_features(&self) -> usize {
                self.norm.running_mean.len()
            }

            /// The settings.
            pub fn options(&self) -> BatchNormOptions {
                self.norm.options()
            }

            /// The running mean, `[C]` (buffer `running_mean`).
            pub fn running_mean(&self) -> &Array1<E> {
                &self.norm.running_mean
            }

            /// The running variance (unbiased), `[C]` (buffer `running_var`).
            pub fn running_var(&self) -> &Array1<E> {
                &self.norm.running_var
            }

            /// The scale (`weight`) and shift (`bias`), `[C]` each, when affine.
            pub fn affine(&self) -> Option<(&Array1<E>, &Array1<E>)> {
                self.norm.affine.as_ref().map(|(w, b)| (w, b))
            }
        }

        impl<E: Float> Module<E> for $name<E> {
            fn forward(
                &self,
                tape: &mut Tape<E>,
                params: &mut ParameterIds<'_>,
                x: NodeId,
            ) -> Result<NodeId> {
                let layer = (stringify!($name), $takes, &$ranks[..]);
                self.norm.forward(layer, tape, params, x)
            }

            fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
                self.norm.parameters()
            }

            fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
                self.norm.parameters_mut()
            }

            fn parameter_names(&self) -> Vec<String> {
                self.norm.parameter_names()
            }

            fn buffers(&self) -> Vec<ArrayViewD<'_, E>> {
                self.norm.buffers()
            }

            fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
                self.norm.buffers_mut()
            }

            fn buffer_names(&self) -> Vec<String> {
                vec!["running_mean".into(), "running_var".into()]
            }
        }
    };
}

batch_norm_layer! {
    /// Batch normalisation of `[N, C]` or `[N, C, L]` inputs over the batch (and the
    /// positions), per channel (PyTorch's `nn.BatchNorm1d`): parameters `weight` and `bias`
    /// (`[C]`, when affine), buffers `running_mean` and `running_var`. Training passes
    /// normalise by the batch's statistics and move the running ones (see the module's
    /// documentation); evaluation passes normalise by the running ones.
    ///
    /// ```
    /// use ndarray::array;
    /// use wengert_tape::Tape;
    /// use wengert_train::{BatchNorm1d, Module};
    ///
    /// let mut norm = BatchNorm1d::<f64>::new(2)?;
    /// let x = array![[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]];
    /// let mut tape = Tape::new();
    /// let input = tape.input(&x)?;
    /// let y = norm.apply_training(&mut tape, input, 0)?;
    /// // Each column normalised by its mean and biased variance (8/3 and 200/3).
    /// let expected = [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0].map(|v: f64| v * (1.5f64).sqrt());
    /// for (y, e) in tape.data(y)?.iter().zip(expected) {
    ///     assert!((y - e).abs() < 1e-5);
    /// }
    /// // The running statistics moved by 0.1 towards the mean and the unbiased variance.
    /// assert_eq!(norm.running_mean().to_vec(), [0.30000000000000004, 2.0]);
    /// assert_eq!(norm.running_var().to_vec(), [1.3, 10.9]);
    /// // Evaluation normalises by them.
    /// let out = norm.predict(&array![[0.3, 2.0]])?;
    /// assert!(out.iter().all(|v| v.abs() < 1e-12));
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    BatchNorm1d, "[N, C] or [N, C, L]", [2, 3]
}

batch_norm_layer! {
    /// Batch normalisation of `[N, C, H, W]` images over the batch and the positions, per
    /// channel (PyTorch's `nn.BatchNorm2d`): as [`BatchNorm1d`], for a CNN's feature maps.
    ///
    /// ```
    /// use ndarray::Array4;
    /// use wengert_tape::Tape;
    /// use wengert_train::{BatchNorm2d, Module};
    ///
    /// let mut norm = BatchNorm2d::<f32>::new(3)?;
    /// let x = Array4::from_shape_fn((4, 3, 5, 5), |(n, c, h, w)| (n + 2 * c + h * w) as f32);
    /// let mut tape = Tape::new();
    /// let input = tape.input(&x)?;
    /// let y = norm.apply_training(&mut tape, input, 0)?;
    /// assert_eq!(tape.shape(y)?.dims(), &[4, 3, 5, 5]);
    /// assert_eq!(norm.buffer_names(), ["running_mean", "running_var"]);
    /// assert!(norm.running_mean()[2] > norm.running_mean()[0]);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    BatchNorm2d, "[N, C, H, W]", [4]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use ndarray::{Array3, array};

    /// A `[N, C, L]` batch with distinct channels.
    fn batch() -> Array3<f64> {
        Array3::from_shape_fn((3, 2, 2), |(n, c, l)| {
            (n * n) as f64 + 10.0 * c as f64 * (l as f64 + 1.0)
        })
    }

    /// Per channel: the values over the batch and the positions.
    fn channel(x: &Array3<f64>, c: usize) -> Vec<f64> {
        x.index_axis(ndarray::Axis(1), c).iter().copied().collect()
    }

    #[test]
    fn a_training_pass_normalises_by_the_batch_and_moves_the_running_statistics() {
        let options = BatchNormOptions {
            momentum: 0.25,
            ..BatchNormOptions::default()
        };
        let mut norm = BatchNorm1d::<f64>::with_options(2, options).unwrap();
        norm.norm.affine = Some((array![2.0, 0.5], array![1.0, -1.0]));
        norm.norm.running_mean = array![1.0, 2.0];
        let x = batch();
        let mut tape = Tape::new();
        let input = tape.input(&x).unwrap();
        let y = norm.apply_training(&mut tape, input, 7).unwrap();
        let y = tape.value_owned(y).unwrap();
        for c in 0..2 {
            let v = channel(&x, c);
            let m = v.len() as f64;
            let mean = v.iter().sum::<f64>() / m;
            let squares: f64 = v.iter().map(|a| (a - mean).powi(2)).sum();
            let (gamma, beta) = ([2.0, 0.5][c], [1.0, -1.0][c]);
            for n in 0..3 {
                for l in 0..2 {
                    let expected =
                        (x[[n, c, l]] - mean) / (squares / m + 1e-5).sqrt() * gamma + beta;
                    assert!((y[[n, c, l]] - expected).abs() < 1e-12);
                }
            }
            // The unbiased variance moves the running one, as in PyTorch.
            let old_mean = [1.0, 2.0][c];
            let moved_mean = 0.75 * old_mean + 0.25 * mean;
            let moved_var = 0.75 * 1.0 + 0.25 * squares / (m - 1.0);
            assert!((norm.running_mean()[c] - moved_mean).abs() < 1e-12);
            assert!((norm.running_var()[c] - moved_var).abs() < 1e-12);
        }
    }

    #[test]
    fn an_evaluation_pass_normalises_by_the_running_statistics_and_moves_nothing() {
        let mut norm = BatchNorm1d::<f64>::new(2).unwrap();
        norm.norm.running_mean = array![1.0, -2.0];
        norm.norm.running_var = array![4.0, 0.25];
        norm.norm.affine = Some((array![3.0, 1.0], array![0.0, 0.5]));
        let before = norm.clone();
        let x = array![[3.0, -1.0], [1.0, -2.5]];
        let y = norm.predict(&x).unwrap();
        let scale = |var: f64| 1.0 / (var + 1e-5f64).sqrt();
        let expected = [
            2.0 * scale(4.0) * 3.0,
            1.0 * scale(0.25) + 0.5,
            0.0,
            -0.5 * scale(0.25) + 0.5,
        ];
        for (a, e) in y.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{y:?}");
        }
        // A pass in evaluation mode, even through `apply_with`, leaves the buffers alone.
        let mut tape = Tape::new();
        let input = tape.input(&x).unwrap();
        norm.apply_with(&mut tape, input, Mode::Evaluation).unwrap();
        assert_eq!(norm, before);
    }

    #[test]
    fn without_affine_there_are_no_parameters_and_the_names_are_pytorchs() {
        let options = BatchNormOptions {
            affine: false,
            ..BatchNormOptions::default()
        };
        let norm = BatchNorm2d::<f32>::with_options(3, options).unwrap();
        assert!(norm.parameters().is_empty() && norm.affine().is_none());
        assert_eq!(norm.buffer_names(), ["running_mean", "running_var"]);
        let affine = BatchNorm2d::<f32>::new(3).unwrap();
        assert_eq!(affine.parameter_names(), ["weight", "bias"]);
        let (w, b) = affine.affine().unwrap();
        assert_eq!((w.to_vec(), b.to_vec()), (vec![1.0; 3], vec![0.0; 3]));
        assert_eq!(affine.running_var().to_vec(), [1.0; 3]);
    }

    #[test]
    fn bad_settings_and_inputs_are_refused_with_a_clear_message() {
        let cases: [(usize, f64, f64, &str); 5] = [
            (0, 1e-5, 0.1, "at least one feature"),
            (2, -1.0, 0.1, "eps must be finite"),
            (2, f64::NAN, 0.1, "eps must be finite"),
            (2, 1e-5, 1.5, "momentum must lie in [0, 1]"),
            (usize::MAX, 1e-5, 0.1, "do not fit in memory"),
        ];
        for (c, eps, momentum, expected) in cases {
            let options = BatchNormOptions {
                eps,
                momentum,
                affine: true,
            };
            let err = BatchNorm1d::<f32>::with_options(c, options).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let norm = BatchNorm2d::<f64>::new(2).unwrap();
        let err = norm.predict(&array![[1.0, 2.0]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: BatchNorm2d(2) takes [N, C, H, W] with C = 2, got [1, 2]"
        );
        let norm = BatchNorm1d::<f64>::new(3).unwrap();
        let err = norm.predict(&array![[1.0, 2.0]]).unwrap_err();
        assert!(err.to_string().contains("got [1, 2]"), "{err}");
        // One value per channel cannot train (PyTorch refuses it too).
        let mut tape = Tape::new();
        let x = tape.input(array![[1.0, 2.0, 3.0]]).unwrap();
        let err = norm.apply_with(&mut tape, x, Mode::Training { seed: 0 });
        assert!(err.unwrap_err().to_string().contains("more than 1 value"));
    }
}
