//! [`LayerNorm`]: each example normalised over its trailing axes, then scaled and shifted.

use std::fmt;
use std::marker::PhantomData;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Init, Module, ParameterIds, Result, Rng};

/// Layer normalisation (PyTorch's `nn.LayerNorm`): over the trailing axes of
/// `normalized_shape`, each slice is normalised by its mean and biased variance,
/// `(x - mean) / √(var + eps)`, then multiplied by `weight` and shifted by `bias` elementwise
/// (each of `normalized_shape`; ones and zeros to start, as in PyTorch). One fused op on the
/// tape; no running statistics, so training and evaluation agree.
///
/// ```
/// use ndarray::array;
/// use wengert_train::{LayerNorm, Module};
///
/// let norm = LayerNorm::<f64>::new(&[2])?;
/// assert_eq!(norm.parameter_names(), ["weight", "bias"]);
/// let y = norm.predict(&array![[1.0, 3.0], [-2.0, 2.0]])?;
/// assert!((y[[0, 0]] + 1.0).abs() < 1e-5 && (y[[1, 1]] - 1.0).abs() < 1e-5);
/// let plain = LayerNorm::<f64>::builder(&[4, 4]).eps(1e-6).elementwise_affine(false).build()?;
/// assert_eq!(plain.to_string(), "LayerNorm((4, 4), eps=0.000001, elementwise_affine=False)");
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm<E: Float> {
    /// The scale, of `normalized_shape`, if the layer has one.
    pub weight: Option<ArrayD<E>>,
    /// The shift, of `normalized_shape`, if the layer has one.
    pub bias: Option<ArrayD<E>>,
    normalized_shape: Vec<usize>,
    eps: f64,
}

impl<E: Float> LayerNorm<E> {
    /// Layer norm over trailing axes of `normalized_shape`, with PyTorch's defaults:
    /// `eps = 1e-5`, a weight and a bias.
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        Self::builder(normalized_shape).build()
    }

    /// A builder for layer norm over trailing axes of `normalized_shape`.
    pub fn builder(normalized_shape: &[usize]) -> LayerNormBuilder<E> {
        LayerNormBuilder {
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
            weight: true,
            bias: true,
            element: PhantomData,
        }
    }

    /// The trailing shape it normalises over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }

    /// The number added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl<E: Float> Module<E> for LayerNorm<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let gamma = self.weight.as_ref().map(|_| params.next()).transpose()?;
        let beta = self.bias.as_ref().map(|_| params.next()).transpose()?;
        let shape = tape.shape(x)?;
        if !shape.dims().ends_with(&self.normalized_shape) {
            return Err(Error::Model(format!(
                "{self} takes an input whose trailing axes are {:?}, got {shape}",
                self.normalized_shape
            )));
        }
        let axes = self.normalized_shape.len();
        Ok(tape.layer_norm(x, gamma, beta, axes, self.eps)?)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        [&self.weight, &self.bias]
            .into_iter()
            .flatten()
            .map(|p| p.view())
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        [&mut self.weight, &mut self.bias]
            .into_iter()
            .flatten()
            .map(|p| p.view_mut())
            .collect()
    }

    fn parameter_names(&self) -> Vec<String> {
        [("weight", &self.weight), ("bias", &self.bias)]
            .into_iter()
            .filter(|(_, p)| p.is_some())
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

impl<E: Float> fmt::Display for LayerNorm<E> {
    /// PyTorch's description, `LayerNorm((64,), eps=1e-05, elementwise_affine=True)` (the
    /// `eps` written in full), with `bias=False` if it has a weight and no bias.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.normalized_shape.iter().map(usize::to_string).collect();
        let shape = match dims.as_slice() {
            [one] => format!("({one},)"),
            _ => format!("({})", dims.join(", ")),
        };
        let affine = if self.weight.is_some() {
            "True"
        } else {
            "False"
        };
        write!(
            f,
            "LayerNorm({shape}, eps={}, elementwise_affine={affine}",
            self.eps
        )?;
        if self.weight.is_some() && self.bias.is_none() {
            f.write_str(", bias=False")?;
        }
        f.write_str(")")
    }
}

/// Builds a [`LayerNorm`]; see [`LayerNorm::builder`].
#[derive(Debug, Clone)]
pub struct LayerNormBuilder<E> {
    normalized_shape: Vec<usize>,
    eps: f64,
    weight: bool,
    bias: bool,
    element: PhantomData<E>,
}

impl<E: Float> LayerNormBuilder<E> {
    /// The number added to the variance (default `1e-5`); finite and not negative.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Whether the layer learns a weight and a bias (default `true`; `false` gives neither,
    /// as PyTorch's `elementwise_affine=False`).
    pub fn elementwise_affine(mut self, affine: bool) -> Self {
        self.weight = affine;
        self.bias = affine;
        self
    }

    /// Whether an affine layer learns a bias (default `true`; PyTorch's `bias=False` keeps the
    /// weight alone).
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias && self.weight;
        self
    }

    /// The layer; an error if the shape is empty or holds a zero, `eps` is negative or not
    /// finite, or the parameters cannot be allocated.
    pub fn build(self) -> Result<LayerNorm<E>> {
        let shape = &self.normalized_shape;
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::InvalidConfig(format!(
                "LayerNorm: the normalised shape must have at least one axis and no empty one, got {shape:?}"
            )));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::InvalidConfig(format!(
                "LayerNorm: eps must be finite and not negative, got {}",
                self.eps
            )));
        }
        // The draws are constant: the stream is never read.
        let mut rng = Rng::seed_from_u64(0);
        let zeros = |rng: &mut Rng| Init::Zeros.sample::<E>(shape, 1, 1, rng);
        let weight = self
            .weight
            .then(|| zeros(&mut rng).map(|w| w.mapv_into(|_| E::one())))
            .transpose()?;
        let bias = self.bias.then(|| zeros(&mut rng)).transpose()?;
        Ok(LayerNorm {
            weight,
            bias,
            normalized_shape: self.normalized_shape,
            eps: self.eps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, array};

    #[test]
    fn normalises_each_example_over_the_trailing_axes_then_scales_and_shifts() {
        let mut norm = LayerNorm::<f64>::new(&[2, 2]).unwrap();
        norm.weight = Some(array![[1.0, 2.0], [1.0, 1.0]].into_dyn());
        norm.bias = Some(array![[0.0, 0.0], [0.0, 10.0]].into_dyn());
        let x = Array::from_iter([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0])
            .into_shape_with_order((2, 2, 2))
            .unwrap();
        let y = norm.predict(&x).unwrap();
        // Example 0: mean 2.5, variance 1.25; example 1 has none, so it is the bias alone.
        let s = (1.25f64 + 1e-5).sqrt();
        let expected = [-1.5 / s, 2.0 * -0.5 / s, 0.5 / s, 10.0 + 1.5 / s];
        for (got, want) in y.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert_eq!(&y.as_slice().unwrap()[4..], &[0.0, 0.0, 0.0, 10.0]);
    }

    #[test]
    fn parameters_start_at_one_and_zero_and_can_be_left_out() {
        let norm = LayerNorm::<f32>::new(&[3]).unwrap();
        assert_eq!(
            norm.parameters(),
            [
                array![1.0f32, 1.0, 1.0].into_dyn().view(),
                array![0.0f32, 0.0, 0.0].into_dyn().view()
            ]
        );
        let scale_only = LayerNorm::<f32>::builder(&[3]).bias(false).build().unwrap();
        assert_eq!(scale_only.parameter_names(), ["weight"]);
        assert_eq!(
            scale_only.to_string(),
            "LayerNorm((3,), eps=0.00001, elementwise_affine=True, bias=False)"
        );
        let none = LayerNorm::<f32>::builder(&[3])
            .elementwise_affine(false)
            .bias(true)
            .build()
            .unwrap();
        assert!(none.parameter_names().is_empty());
        assert!(none.parameters().is_empty());
    }

    #[test]
    fn bad_settings_and_inputs_are_errors_naming_the_layer() {
        for (builder, expected) in [
            (LayerNorm::<f32>::builder(&[]), "at least one axis"),
            (LayerNorm::builder(&[4, 0]), "no empty one"),
            (LayerNorm::builder(&[4]).eps(-1.0), "eps must be"),
            (LayerNorm::builder(&[4]).eps(f64::NAN), "eps must be"),
        ] {
            let err = builder.build().unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let norm = LayerNorm::<f32>::new(&[4]).unwrap();
        let err = norm
            .predict(ndarray::Array2::<f32>::zeros((2, 3)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model: LayerNorm((4,), eps=0.00001, elementwise_affine=True) takes an input whose \
             trailing axes are [4], got [2, 3]"
        );
    }
}
