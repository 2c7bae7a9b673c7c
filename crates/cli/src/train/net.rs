//! [`Network`]: the model `wengert train` trains, an MLP or a small CNN as its
//! [`Architecture`] says, with optional dropout before the last layer.

use ndarray::{ArrayViewD, ArrayViewMutD};
use wengert_tape::{NodeId, Tape};
use wengert_train::{
    Activation, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Mlp, Module, ParameterIds, Rng,
    Unflatten, prefixed,
};

use super::architecture::{Architecture, KERNEL, POOL};
use crate::E;

/// The random stream of the convolutions' initial weights, apart from the fully connected
/// layers' (which an [`Mlp`] of the same seed draws, so that an MLP run is the one it always
/// was).
const CONV_INIT_STREAM: u64 = 0x636f_6e76;

/// The network: for a CNN, the flat features read as `[1, height, width]` images and passed
/// through the convolution blocks (convolution, activation, 2x2 max-pool), then flattened;
/// then fully connected layers with the activation between them, and dropout (in training
/// passes only) before the last.
///
/// Its parameters are named as PyTorch would name them in a module holding the convolutions
/// as `conv` and the fully connected layers as `layers` (both `nn.ModuleList`s):
/// `conv.<i>.weight` (`[out, in, 3, 3]`, as `nn.Conv2d` holds it), `conv.<i>.bias`,
/// `layers.<i>.weight` (`[inputs, outputs]`, PyTorch's transposed), `layers.<i>.bias`. An
/// MLP's are thus what they were before the CNN existed.
#[derive(Debug, Clone)]
pub struct Network {
    images: Option<Images>,
    layers: Vec<Linear<E>>,
    activation: Activation,
    dropout: Option<Dropout>,
}

/// A CNN's part before the fully connected layers.
#[derive(Debug, Clone)]
struct Images {
    /// `[batch, height·width]` to `[batch, 1, height, width]`: a reshape that keeps the batch
    /// axis, so that a saved model replays it on any batch.
    unflatten: Unflatten,
    /// Each block's convolution, 3x3 with padding 1.
    convs: Vec<Conv2d<E>>,
    /// Each block's pooling, 2x2.
    pool: MaxPool2d,
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
        let head = Mlp::<E>::builder(&architecture.linear)
            .activation(activation)
            .seed(seed)
            .build()
            .map_err(|e| e.to_string())?;
        let images = architecture
            .image
            .map(|image| images(architecture, image, seed))
            .transpose()
            .map_err(|e| e.to_string())?;
        let dropout = (dropout > 0.0)
            .then(|| Dropout::new(dropout))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(Network {
            images,
            layers: head.layers,
            activation,
            dropout,
        })
    }

    /// The convolutions, first to last (none for an MLP).
    fn convs(&self) -> &[Conv2d<E>] {
        self.images.as_ref().map_or(&[], |images| &images.convs)
    }
}

/// The convolution blocks of `architecture` on images of `[height, width]`.
fn images(
    architecture: &Architecture,
    [height, width]: [usize; 2],
    seed: u64,
) -> wengert_train::Result<Images> {
    let mut rng = Rng::with_stream(seed, CONV_INIT_STREAM);
    let convs = architecture
        .blocks()
        .into_iter()
        .map(|(inputs, outputs, _)| {
            Conv2d::builder(inputs, outputs, KERNEL)
                .padding(KERNEL / 2)
                .build(&mut rng)
        })
        .collect::<wengert_train::Result<_>>()?;
    Ok(Images {
        unflatten: Unflatten::new(1, &[1, height, width])?,
        convs,
        pool: MaxPool2d::new(POOL)?,
    })
}

impl Images {
    /// Records the blocks on the flat rows `x`, returning the flattened feature maps.
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        activation: Activation,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let mut h = self.unflatten.forward(tape, params, x)?;
        for conv in &self.convs {
            h = conv.forward(tape, params, h)?;
            h = activation.forward(tape, params, h)?;
            h = self.pool.forward(tape, params, h)?;
        }
        Flatten.forward(tape, params, h)
    }
}

impl Module<E> for Network {
    fn forward(
        &self,
        tape: &mut Tape<E>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let mut h = match &self.images {
            Some(images) => images.forward(tape, params, self.activation, x)?,
            None => x,
        };
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
        self.convs()
            .iter()
            .flat_map(|c| c.parameters())
            .chain(self.layers.iter().flat_map(Linear::parameters))
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, E>> {
        let convs = match &mut self.images {
            Some(images) => &mut images.convs[..],
            None => &mut [],
        };
        convs
            .iter_mut()
            .flat_map(|c| c.parameters_mut())
            .chain(self.layers.iter_mut().flat_map(Linear::parameters_mut))
            .collect()
    }

    fn parameter_names(&self) -> Vec<String> {
        let convs = self.convs().iter().enumerate();
        let layers = self.layers.iter().enumerate();
        convs
            .flat_map(|(i, c)| prefixed(&format!("conv.{i}"), c.parameter_names()))
            .chain(layers.flat_map(|(i, l)| prefixed(&format!("layers.{i}"), l.parameter_names())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};
    use wengert_train::Mode;

    use super::*;
    use crate::args::parse_train as args;

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
        let conv = &mut net.images.as_mut().unwrap().convs[0];
        conv.weight.fill(0.0);
        conv.weight[[0, 0, 1, 2]] = 1.0;
        conv.bias.as_mut().unwrap().fill(0.0);
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
