//! [`Network`]: the model `wengert train` trains, an MLP or a small CNN as its
//! [`Architecture`] says, with optional dropout before the last layer.

use ndarray::{Array1, Array4, ArrayViewD, ArrayViewMutD, Ix1, Ix4};
use wengert_tape::{Conv2dArgs, NodeId, Pool2dArgs, Tape};
use wengert_train::{Activation, Dropout, Init, Linear, Mlp, Module, ParameterIds, Rng};

use super::architecture::{Architecture, KERNEL, POOL};
use crate::E;

/// The random stream of the convolutions' initial weights, apart from the fully connected
/// layers' (which an [`Mlp`] of the same seed draws, so that an MLP run is the one it always
/// was).
const CONV_INIT_STREAM: u64 = 0x636f_6e76;

/// A convolution of a block: `weight` `[out, in, 3, 3]` (PyTorch's `Conv2d.weight`), `bias`
/// `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// `[out, in, 3, 3]`.
    pub weight: Array4<E>,
    /// `[out]`.
    pub bias: Array1<E>,
}

/// The network: for a CNN, the flat features read as `[1, height, width]` images and passed
/// through the convolution blocks (convolution, activation, 2x2 max-pool), then flattened;
/// then fully connected layers with the activation between them, and dropout (in training
/// passes only) before the last.
///
/// Its parameters are named as PyTorch would name them in a module holding the convolutions
/// as `conv` and the fully connected layers as `layers` (both `nn.ModuleList`s):
/// `conv.<i>.weight`, `conv.<i>.bias`, `layers.<i>.weight` (`[inputs, outputs]`, PyTorch's
/// transposed), `layers.<i>.bias`. An MLP's are thus what they were before the CNN existed.
#[derive(Debug, Clone)]
pub struct Network {
    image: Option<[usize; 2]>,
    convs: Vec<Conv>,
    layers: Vec<Linear<E>>,
    activation: Activation,
    dropout: Option<Dropout>,
}

impl Network {
    /// The network `architecture` describes, its weights drawn from `seed`: the fully
    /// connected layers as an [`Mlp`] of their widths draws them (He or Glorot as the
    /// activation suits), the convolutions as PyTorch initialises a `Conv2d` (uniform within
    /// `1/√fan_in`). `dropout` is the probability, 0 for none.
    pub fn build(
        architecture: &Architecture,
        activation: Activation,
        dropout: f64,
        seed: u64,
    ) -> Result<Self, String> {
        let message = |e: wengert_train::Error| e.to_string();
        let head = Mlp::<E>::builder(&architecture.linear)
            .activation(activation)
            .seed(seed)
            .build()
            .map_err(message)?;
        let mut rng = Rng::with_stream(seed, CONV_INIT_STREAM);
        let convs = architecture
            .blocks()
            .into_iter()
            .map(|(inputs, outputs, _)| conv(inputs, outputs, &mut rng))
            .collect::<wengert_train::Result<_>>()
            .map_err(message)?;
        let dropout = (dropout > 0.0)
            .then(|| Dropout::new(dropout))
            .transpose()
            .map_err(message)?;
        Ok(Network {
            image: architecture.image,
            convs,
            layers: head.layers,
            activation,
            dropout,
        })
    }

    /// Records one convolution block on `h`: convolution (padding 1), activation, max-pool.
    fn block(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        h: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let (weight, bias) = (params.next()?, params.next()?);
        let same = Conv2dArgs {
            padding: [KERNEL / 2; 2],
            ..Conv2dArgs::default()
        };
        let h = tape.conv2d(h, weight, Some(bias), same)?;
        let h = self.activation.record(tape, h)?;
        Ok(tape.max_pool2d(h, Pool2dArgs::new([POOL; 2]))?)
    }
}

/// A convolution from `inputs` to `outputs` channels, drawn as PyTorch's `Conv2d` draws its
/// weight (`kaiming_uniform_(a=√5)`) and bias (uniform within `1/√fan_in`).
fn conv(inputs: usize, outputs: usize, rng: &mut Rng) -> wengert_train::Result<Conv> {
    let dims = [outputs, inputs, KERNEL, KERNEL];
    let (fan_in, fan_out) = Init::conv_fans(&dims)?;
    let weight = Init::pytorch_conv()
        .sample::<E>(&dims, fan_in, fan_out, rng)?
        .into_dimensionality::<Ix4>()
        .expect("sampled with four axes");
    let bias = Init::FanInUniform
        .sample::<E>(&[outputs], fan_in, fan_out, rng)?
        .into_dimensionality::<Ix1>()
        .expect("sampled with one axis");
    Ok(Conv { weight, bias })
}

impl Module<E> for Network {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let mut h = x;
        if let Some([height, width]) = self.image {
            let &[batch, _] = tape.shape(x)?.dims() else {
                return Err(wengert_train::Error::Model(format!(
                    "the CNN takes [batch, features], got {}",
                    tape.shape(x)?
                )));
            };
            // A reshape that keeps the batch axis: a saved model replays it on any batch.
            h = tape.reshape(h, &[batch, 1, height, width])?;
            for _ in &self.convs {
                h = self.block(tape, params, h)?;
            }
            h = tape.flatten(h, 1, 3)?;
        }
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            if i == last
                && let Some(dropout) = &self.dropout
            {
                h = dropout.forward(tape, params, h)?;
            }
            h = layer.forward(tape, params, h)?;
            if i < last {
                h = self.activation.record(tape, h)?;
            }
        }
        Ok(h)
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, E>> {
        let convs = self
            .convs
            .iter()
            .flat_map(|c| [c.weight.view().into_dyn(), c.bias.view().into_dyn()]);
        convs
            .chain(self.layers.iter().flat_map(Linear::parameters))
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        let convs = self
            .convs
            .iter_mut()
            .flat_map(|c| [c.weight.view_mut().into_dyn(), c.bias.view_mut().into_dyn()]);
        convs
            .chain(self.layers.iter_mut().flat_map(Linear::parameters_mut))
            .collect()
    }

    fn parameter_names(&self) -> Vec<String> {
        fn named(part: &'static str, count: usize) -> impl Iterator<Item = String> {
            (0..count)
                .flat_map(move |i| ["weight", "bias"].map(|tensor| format!("{part}.{i}.{tensor}")))
        }
        named("conv", self.convs.len())
            .chain(named("layers", self.layers.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ndarray::{Array2, array};
    use wengert_train::Mode;

    use super::*;
    use crate::args::{Cli, Command, TrainArgs};

    fn args(line: &[&str]) -> TrainArgs {
        let cli = Cli::try_parse_from([&["wengert", "train"], line].concat()).unwrap();
        match cli.command {
            Command::Train(args) => args,
            _ => unreachable!("parsed as train"),
        }
    }

    fn network(line: &[&str], features: usize, image: [usize; 2], dropout: f64) -> Network {
        let architecture = Architecture::new(&args(line), features, 3, Some(image)).unwrap();
        Network::build(&architecture, Activation::Relu, dropout, 7).unwrap()
    }

    #[test]
    fn an_mlp_network_is_the_mlp_of_the_same_seed() {
        let net = network(&["--hidden", "5"], 4, [2, 2], 0.0);
        let mlp = Mlp::<E>::builder(&[4, 5, 3]).seed(7).build().unwrap();
        assert_eq!(net.parameter_names(), mlp.parameter_names());
        assert_eq!(net.parameters(), mlp.parameters());
        let x = array![[0.5f32, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]];
        assert_eq!(net.predict(&x).unwrap(), mlp.predict(&x).unwrap());
    }

    #[test]
    fn a_cnn_names_its_tensors_as_pytorch_and_gives_one_row_of_scores_per_example() {
        let net = network(&["--model", "cnn", "--channels", "4,2"], 30, [5, 6], 0.0);
        assert_eq!(
            net.parameter_names(),
            [
                "conv.0.weight",
                "conv.0.bias",
                "conv.1.weight",
                "conv.1.bias",
                "layers.0.weight",
                "layers.0.bias"
            ]
        );
        let shapes: Vec<Vec<usize>> = net
            .parameters()
            .iter()
            .map(|p| p.shape().to_vec())
            .collect();
        // 5x6 → 2x3 → 1x1: two channels of one pixel into the three classes.
        assert_eq!(
            shapes,
            [
                vec![4, 1, 3, 3],
                vec![4],
                vec![2, 4, 3, 3],
                vec![2],
                vec![2, 3],
                vec![3]
            ]
        );
        let bound = 1.0 / (9.0f32).sqrt();
        assert!(net.parameters()[0].iter().all(|w| w.abs() <= bound));
        let x = Array2::from_shape_fn((7, 30), |(i, j)| ((i * 30 + j) % 11) as f32 / 10.0);
        assert_eq!(net.predict(&x).unwrap().shape(), &[7, 3]);
    }

    #[test]
    fn each_example_is_read_as_a_row_major_image() {
        // A kernel whose one tap is the right neighbour moves each pixel one column left;
        // pooled 2x2 and passed through an identity, the scores show which pixels were
        // neighbours: only a row-major reading of [height, width] gives 7 and 8.
        let mut net = network(&["--model", "cnn", "--channels", "1"], 8, [2, 4], 0.0);
        net.convs[0].weight.fill(0.0);
        net.convs[0].weight[[0, 0, 1, 2]] = 1.0;
        net.convs[0].bias.fill(0.0);
        net.layers[0].weight = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        net.layers[0].bias.fill(0.0);
        let x = array![[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]];
        // Shifted: [[2, 3, 4, 0], [6, 7, 8, 0]]; pooled: [7, 8].
        assert_eq!(
            net.predict(&x).unwrap(),
            array![[7.0f32, 8.0, 0.0]].into_dyn()
        );
    }

    #[test]
    fn dropout_acts_before_the_last_layer_in_training_only() {
        let net = network(&["--hidden", "64"], 4, [2, 2], 0.5);
        let x = array![[0.5f32, -1.0, 2.0, 0.0]];
        let plain = network(&["--hidden", "64"], 4, [2, 2], 0.0);
        assert_eq!(net.predict(&x).unwrap(), plain.predict(&x).unwrap());
        let train = |seed| {
            let mut tape = Tape::new();
            let input = tape.input(&x).unwrap();
            let y = net
                .apply_with(&mut tape, input, Mode::Training { seed })
                .unwrap();
            tape.data(y).unwrap().to_vec()
        };
        assert_eq!(train(1), train(1));
        assert_ne!(train(1), train(2));
        assert_ne!(
            train(1),
            plain.predict(&x).unwrap().into_raw_vec_and_offset().0
        );
    }
}
