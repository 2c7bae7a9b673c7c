//! Layers: [`Linear`], the [`Activation`]s (each a module of its own too), and the [`Mlp`]
//! built from them.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use ndarray::{Array1, Array2, ArrayViewD, ArrayViewMutD, Ix1, Ix2};
use wengert_ops::Float;
use wengert_tape::{NodeId, Tape};

use crate::{Error, Init, Module, ParameterIds, Result, Rng};

/// A fully connected layer, `y = x·W + b`, with `W` of shape `[inputs, outputs]` and `b` of
/// shape `[outputs]` (PyTorch stores `W` transposed; the product is the same).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<E: Float> {
    /// The weights, `[inputs, outputs]`.
    pub weight: Array2<E>,
    /// The bias, `[outputs]`.
    pub bias: Array1<E>,
}

impl<E: Float> Linear<E> {
    /// A layer with weights drawn from `init` and a zero bias; an error if `inputs · outputs`
    /// overflows or cannot be allocated.
    pub fn new(inputs: usize, outputs: usize, init: Init, rng: &mut Rng) -> Result<Self> {
        let weight = init
            .sample(&[inputs, outputs], inputs, outputs, rng)?
            .into_dimensionality::<Ix2>()
            .expect("sampled with two axes");
        let bias = Init::Zeros
            .sample(&[outputs], inputs, outputs, rng)?
            .into_dimensionality::<Ix1>()
            .expect("sampled with one axis");
        Ok(Linear { weight, bias })
    }

    /// The number of inputs.
    pub fn inputs(&self) -> usize {
        self.weight.nrows()
    }

    /// The number of outputs.
    pub fn outputs(&self) -> usize {
        self.weight.ncols()
    }
}

impl<E: Float> Module<E> for Linear<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let w = params.next()?;
        let b = params.next()?;
        Ok(tape.linear(x, w, b)?)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        vec![self.weight.view().into_dyn(), self.bias.view().into_dyn()]
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        vec![
            self.weight.view_mut().into_dyn(),
            self.bias.view_mut().into_dyn(),
        ]
    }

    fn parameter_names(&self) -> Vec<String> {
        vec!["weight".into(), "bias".into()]
    }
}

/// An elementwise non-linearity between layers; a [`Module`] of its own too, with no
/// parameters (PyTorch's `nn.ReLU()`, `nn.Tanh()`, ...), to put in a
/// [`Sequential`](crate::Sequential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `tanh x`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x · Φ(x)`, with `Φ` the standard normal distribution function (PyTorch's `nn.GELU()`,
    /// exact).
    Gelu,
    /// `x · σ(x)` (PyTorch's `nn.SiLU()`, also called swish).
    Silu,
}

impl Activation {
    /// Records the activation of `x`.
    pub fn record<E: Float>(self, tape: &mut Tape<E>, x: NodeId) -> wengert_ops::Result<NodeId> {
        match self {
            Activation::Relu => tape.relu(x),
            Activation::Tanh => tape.tanh(x),
            Activation::Sigmoid => tape.sigmoid(x),
            Activation::Gelu => tape.gelu(x),
            Activation::Silu => tape.silu(x),
        }
    }

    /// The initialiser that keeps activations' variance steady through this non-linearity:
    /// He for ReLU and its smooth kin, Glorot for the saturating ones.
    pub fn suggested_init(self) -> Init {
        match self {
            Activation::Relu | Activation::Gelu | Activation::Silu => Init::HeNormal,
            Activation::Tanh | Activation::Sigmoid => Init::GlorotUniform,
        }
    }

    /// The lower-case name (`relu`, `tanh`, `sigmoid`, `gelu`, `silu`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
        }
    }

    /// Every activation, in declaration order.
    pub const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Silu,
    ];
}

impl<E: Float> Module<E> for Activation {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        _params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        Ok(self.record(tape, x)?)
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == lower)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "unknown activation `{s}` (expected relu, tanh, sigmoid, gelu or silu)"
                ))
            })
    }
}

/// A multilayer perceptron: [`Linear`] layers with an [`Activation`] between each pair and
/// none after the last, so that it outputs logits (or raw regression predictions).
///
/// ```
/// use wengert_train::{Activation, Mlp, Module};
/// let mlp = Mlp::<f32>::builder(&[64, 128, 10]).activation(Activation::Relu).seed(0).build()?;
/// assert_eq!(mlp.parameter_count(), 64 * 128 + 128 + 128 * 10 + 10);
/// # Ok::<(), wengert_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<E: Float> {
    /// The layers, input first.
    pub layers: Vec<Linear<E>>,
    /// The non-linearity between layers.
    pub activation: Activation,
}

impl<E: Float> Mlp<E> {
    /// A builder for an MLP with these layer widths: inputs first, outputs last, hidden widths
    /// between (`[64, 128, 64, 10]` has two hidden layers).
    pub fn builder(sizes: &[usize]) -> MlpBuilder<E> {
        MlpBuilder {
            sizes: sizes.to_vec(),
            activation: Activation::Relu,
            init: None,
            seed: 0,
            element: PhantomData,
        }
    }

    /// The parameters' names, in [`Module::parameters`] order: `layers.<i>.weight` and
    /// `layers.<i>.bias` for each layer from 0 (PyTorch's names for an `nn.Sequential`
    /// held as `layers`; the weights are `[inputs, outputs]`, PyTorch's transposed).
    ///
    /// ```
    /// use wengert_train::Mlp;
    /// let mlp = Mlp::<f32>::builder(&[4, 3, 2]).build()?;
    /// assert_eq!(mlp.parameter_names(), ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn parameter_names(&self) -> Vec<String> {
        (0..self.layers.len())
            .flat_map(|i| [format!("layers.{i}.weight"), format!("layers.{i}.bias")])
            .collect()
    }

    /// The layer widths, inputs first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.layers.iter().map(Linear::inputs).collect();
        sizes.extend(self.layers.last().map(Linear::outputs));
        sizes
    }
}

impl<E: Float> Module<E> for Mlp<E> {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> Result<NodeId> {
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tape, params, h)?;
            if i + 1 < self.layers.len() {
                h = self.activation.record(tape, h)?;
            }
        }
        Ok(h)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        self.layers.iter().flat_map(Linear::parameters).collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        self.layers
            .iter_mut()
            .flat_map(Linear::parameters_mut)
            .collect()
    }

    fn parameter_names(&self) -> Vec<String> {
        Mlp::parameter_names(self)
    }
}

/// Builds an [`Mlp`]; see [`Mlp::builder`].
#[derive(Debug, Clone)]
pub struct MlpBuilder<E> {
    sizes: Vec<usize>,
    activation: Activation,
    init: Option<Init>,
    seed: u64,
    element: PhantomData<E>,
}

impl<E: Float> MlpBuilder<E> {
    /// The non-linearity between layers (default ReLU).
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The weight initialiser (default: [`Activation::suggested_init`]); biases start at zero.
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// The seed of the initial weights (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The number of parameters the network will have (every layer's weights and bias),
    /// computed with checked arithmetic: an error if it overflows `usize`. A caller can
    /// refuse a network too large for its memory before [`build`](MlpBuilder::build)
    /// allocates it.
    ///
    /// ```
    /// use wengert_train::Mlp;
    /// assert_eq!(Mlp::<f32>::builder(&[4, 3, 2]).parameter_count()?, 4 * 3 + 3 + 3 * 2 + 2);
    /// assert!(Mlp::<f32>::builder(&[64, 1 << 58, 10]).parameter_count().is_err());
    /// # Ok::<(), wengert_train::Error>(())
    /// ```
    pub fn parameter_count(&self) -> Result<usize> {
        self.sizes
            .windows(2)
            .try_fold(0usize, |total, w| {
                w[0].checked_mul(w[1])
                    .and_then(|weights| weights.checked_add(w[1]))
                    .and_then(|layer| total.checked_add(layer))
            })
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "layer widths {:?} make more parameters than this machine can address",
                    self.sizes
                ))
            })
    }

    /// The network, or an error if there are fewer than two widths, a width is zero, the
    /// parameter count overflows or the parameters cannot be allocated.
    pub fn build(self) -> Result<Mlp<E>> {
        if self.sizes.len() < 2 {
            return Err(Error::InvalidConfig(format!(
                "an MLP needs at least an input and an output width, got {:?}",
                self.sizes
            )));
        }
        if self.sizes.contains(&0) {
            return Err(Error::InvalidConfig(format!(
                "every layer width must be positive, got {:?}",
                self.sizes
            )));
        }
        self.parameter_count()?;
        let init = self.init.unwrap_or(self.activation.suggested_init());
        let mut rng = Rng::with_stream(self.seed, crate::rng_streams::INIT);
        let layers = self
            .sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], init, &mut rng))
            .collect::<Result<_>>()?;
        Ok(Mlp {
            layers,
            activation: self.activation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn linear_computes_xw_plus_b() {
        let layer = Linear {
            weight: array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            bias: array![0.5, -0.5],
        };
        let mut tape = Tape::<f64>::new();
        let x = tape.input(array![[1.0, 0.0, -1.0]]).unwrap();
        let y = layer.apply(&mut tape, x).unwrap();
        assert_eq!(
            tape.value_owned(y).unwrap(),
            array![[-3.5, -4.5]].into_dyn()
        );
        assert_eq!(tape.parameters().count(), 2);
    }

    #[test]
    fn mlp_records_its_parameters_in_order_and_checks_its_sizes() {
        let mlp = Mlp::<f64>::builder(&[3, 4, 2])
            .activation(Activation::Tanh)
            .build()
            .unwrap();
        assert_eq!(mlp.sizes(), [3, 4, 2]);
        let mut tape = Tape::<f64>::new();
        let x = tape.input(array![[1.0, 2.0, 3.0]]).unwrap();
        let y = mlp.apply(&mut tape, x).unwrap();
        assert_eq!(tape.shape(y).unwrap().dims(), &[1, 2]);
        let recorded: Vec<Vec<usize>> = tape
            .parameters()
            .map(|id| tape.shape(id).unwrap().dims().to_vec())
            .collect();
        let listed: Vec<Vec<usize>> = mlp
            .parameters()
            .iter()
            .map(|p| p.shape().to_vec())
            .collect();
        assert_eq!(recorded, listed);
        assert!(Mlp::<f32>::builder(&[3]).build().is_err());
        assert!(Mlp::<f32>::builder(&[3, 0, 2]).build().is_err());
        // Widths whose product overflows are an error, not a panic ("capacity overflow").
        for hidden in [1usize << 58, usize::MAX] {
            let err = Mlp::<f32>::builder(&[64, hidden, 10]).build().unwrap_err();
            assert!(err.to_string().contains("more parameters"), "{err}");
        }
        assert!("swish".parse::<Activation>().is_err());
        assert_eq!("ReLU".parse::<Activation>().unwrap(), Activation::Relu);
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
    }

    #[test]
    fn activations_are_modules_without_parameters() {
        let x = array![[-1.0, 0.0, 2.0]];
        let cases: [(Activation, [f64; 3]); 5] = [
            (Activation::Relu, [0.0, 0.0, 2.0]),
            (Activation::Tanh, [-(1.0f64.tanh()), 0.0, 2.0f64.tanh()]),
            (
                Activation::Sigmoid,
                [0.268_941_421_369_995_1, 0.5, 0.880_797_077_977_882_3],
            ),
            // x·Φ(x): Φ(-1) = 0.158655..., Φ(2) = 0.977249...
            (
                Activation::Gelu,
                [-0.158_655_253_931_457_05, 0.0, 1.954_499_736_103_642],
            ),
            (
                Activation::Silu,
                [-0.268_941_421_369_995_1, 0.0, 1.761_594_155_955_764_9],
            ),
        ];
        for (a, expected) in cases {
            assert!(Module::<f64>::parameters(&a).is_empty());
            let y = a.predict(&x).unwrap();
            for (got, want) in y.iter().zip(expected) {
                assert!((got - want).abs() < 1e-12, "{a}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn linear_and_mlp_name_their_parameters() {
        let mlp = Mlp::<f32>::builder(&[3, 2, 1]).build().unwrap();
        let named: Vec<(String, Vec<usize>)> = mlp
            .named_parameters()
            .unwrap()
            .into_iter()
            .map(|(n, p)| (n, p.shape().to_vec()))
            .collect();
        let expected = [
            ("layers.0.weight", vec![3, 2]),
            ("layers.0.bias", vec![2]),
            ("layers.1.weight", vec![2, 1]),
            ("layers.1.bias", vec![1]),
        ];
        assert_eq!(named.len(), expected.len());
        for ((n, s), (en, es)) in named.iter().zip(&expected) {
            assert_eq!((n.as_str(), s), (*en, es));
        }
        assert_eq!(Module::parameter_names(&mlp.layers[0]), ["weight", "bias"]);
    }

    #[test]
    fn the_seed_fixes_the_weights() {
        let a = Mlp::<f32>::builder(&[4, 3, 2]).seed(1).build().unwrap();
        let b = Mlp::<f32>::builder(&[4, 3, 2]).seed(1).build().unwrap();
        let c = Mlp::<f32>::builder(&[4, 3, 2]).seed(2).build().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
