//! The layers past the MLP as a user builds models from them: a small CNN, pooling variants and
//! a token model trained by the `Trainer` (their loss falls, they classify), their gradients
//! checked against finite differences, their state saved in both formats and loaded back, and
//! prediction without a trainer.

use ndarray::{Array2, ArrayD, ArrayViewD, ArrayViewMutD};
use wengert_tape::{GradcheckOptions, NodeId, Tape, gradcheck};
use wengert_train::{
    Activation, Adam, AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, Dataset, Embedding, Flatten,
    History, Init, LayerNorm, Linear, MaxPool2d, Module, ParameterIds, Rng, Sequential,
    TrainConfig, Trainer, Unflatten, load_safetensors, load_state, prefixed, save_safetensors,
    save_state, state_dict,
};

/// `n` noisy 6×6 images, flat (`[n, 36]`, as the trainer feeds rows): class 0 a vertical bar
/// in a random column, class 1 a horizontal bar in a random row.
fn bars(n: usize, seed: u64) -> Dataset<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 36));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let at = (rng.uniform_in(0.0, 6.0) as usize).min(5);
        for (p, v) in x.row_mut(i).iter_mut().enumerate() {
            let (row, col) = (p / 6, p % 6);
            let on = if class == 0 { col == at } else { row == at };
            *v = f32::from(u8::from(on)) + 0.2 * rng.normal() as f32;
        }
        labels.push(class);
    }
    Dataset::classification(x, labels, 2).unwrap()
}

/// Unflatten to 1×6×6, conv 1→4 3×3 pad 1, ReLU, max-pool 2, flatten (36), linear 36→2.
fn small_cnn(seed: u64) -> Sequential<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    Sequential::new()
        .push(Unflatten::new(1, &[1, 6, 6]).unwrap())
        .push(Conv2d::builder(1, 4, 3).padding(1).build(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(MaxPool2d::new(2).unwrap())
        .push(Flatten)
        .push(Linear::new(36, 2, Init::GlorotUniform, &mut rng).unwrap())
}

/// Trains `model` on `data` for `epochs` with Adam, batches of 16; the history and the
/// trainer.
fn train<M: Module<f32>>(
    model: &mut M,
    data: &Dataset<f32>,
    epochs: usize,
) -> (History, Trainer<'static, f32>) {
    let config = TrainConfig {
        epochs,
        batch_size: 16,
        restore_best: false,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
    let history = trainer.fit(model, data, None).unwrap();
    (history, trainer)
}

/// The first and last epochs' training losses.
fn first_and_last(history: &History) -> (f64, f64) {
    let losses: Vec<f64> = history.epochs.iter().map(|e| e.train_loss).collect();
    (losses[0], *losses.last().unwrap())
}

#[test]
fn a_small_cnn_learns_bars_inside_the_trainer() {
    let (train_set, test) = (bars(200, 1), bars(200, 2));
    let mut model = small_cnn(0);
    let (history, mut trainer) = train(&mut model, &train_set, 8);
    let (first, last) = first_and_last(&history);
    assert!(last < first / 4.0, "the loss went from {first} to {last}");
    let evaluation = trainer.evaluate(&model, &test).unwrap();
    assert!(evaluation.accuracy.unwrap() > 0.95, "{evaluation:?}");
    // Inference without a trainer gives the trainer's outputs.
    let x = test.features();
    assert_eq!(
        model.predict(x).unwrap(),
        trainer.predict(&model, x).unwrap().into_dyn()
    );
}

#[test]
fn conv_layers_name_their_parameters_in_pytorch_layout() {
    let model = small_cnn(0);
    let named: Vec<(String, Vec<usize>)> = model
        .named_parameters()
        .unwrap()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .collect();
    let expected = [
        ("1.weight", vec![4, 1, 3, 3]),
        ("1.bias", vec![4]),
        ("5.weight", vec![36, 2]),
        ("5.bias", vec![2]),
    ];
    assert_eq!(named.len(), expected.len());
    for ((n, s), (en, es)) in named.iter().zip(&expected) {
        assert_eq!((n.as_str(), s), (*en, es));
    }
    // Held as `layers`, as PyTorch's `self.layers = nn.Sequential(...)` names them.
    let mut rng = Rng::seed_from_u64(0);
    let features = Sequential::<f32>::new()
        .push(Conv2d::new(3, 8, 5, &mut rng).unwrap())
        .push(
            Conv1d::builder(8, 8, 3)
                .bias(false)
                .build(&mut rng)
                .unwrap(),
        );
    assert_eq!(
        prefixed("layers", features.parameter_names()),
        ["layers.0.weight", "layers.0.bias", "layers.1.weight"]
    );
}

#[test]
fn a_trained_cnn_saves_and_loads_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let data = bars(64, 3);
    let mut model = small_cnn(0);
    train(&mut model, &data, 2);
    let x = data.features();
    let expected = model.predict(x).unwrap();
    let weights = dir.path().join("cnn.weights");
    let safetensors = dir.path().join("cnn.safetensors");
    save_state(&model, &weights).unwrap();
    save_safetensors(&model, &safetensors).unwrap();
    for format in ["weights", "safetensors"] {
        let mut fresh = small_cnn(7);
        assert_ne!(fresh.predict(x).unwrap(), expected);
        match format {
            "weights" => load_state(&mut fresh, &weights).unwrap(),
            _ => load_safetensors(&mut fresh, &safetensors).unwrap(),
        }
        assert_eq!(state_dict(&fresh).unwrap(), state_dict(&model).unwrap());
        assert_eq!(fresh.predict(x).unwrap(), expected, "{format}");
    }
    // A model whose convolution has other channels is refused, naming the tensor.
    let mut rng = Rng::seed_from_u64(0);
    let mut wider = Sequential::<f32>::new()
        .push(Unflatten::new(1, &[1, 6, 6]).unwrap())
        .push(Conv2d::builder(1, 5, 3).padding(1).build(&mut rng).unwrap());
    let err = load_state(&mut wider, &weights).unwrap_err();
    assert!(err.to_string().contains("`1.weight`"), "{err}");
}

#[test]
fn average_and_adaptive_pooling_train_in_a_deeper_cnn() {
    let mut rng = Rng::seed_from_u64(5);
    let mut model = Sequential::<f32>::new()
        .push(Unflatten::new(1, &[1, 6, 6]).unwrap())
        .push(Conv2d::builder(1, 8, 3).padding(1).build(&mut rng).unwrap())
        .push(Activation::Relu)
        .push(AvgPool2d::with_stride(2, 1).unwrap())
        // Depthwise, then pointwise.
        .push(Conv2d::builder(8, 8, 3).groups(8).build(&mut rng).unwrap())
        .push(Conv2d::new(8, 8, 1, &mut rng).unwrap())
        .push(Activation::Relu)
        .push(AdaptiveAvgPool2d::new(1).unwrap())
        .push(Flatten)
        .push(Linear::new(8, 2, Init::GlorotUniform, &mut rng).unwrap());
    let data = bars(120, 4);
    let (history, _) = train(&mut model, &data, 10);
    let (first, last) = first_and_last(&history);
    assert!(last < first / 2.0, "the loss went from {first} to {last}");
}

/// Tokens 0..6 in sequences of 8; class 1 when token 1 is directly followed by token 2.
fn pairs(n: usize, seed: u64) -> Dataset<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 8));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let mut tokens: Vec<usize> = (0..8)
            .map(|_| (rng.uniform_in(0.0, 6.0) as usize).min(5))
            .collect();
        // Half the examples get the pattern planted, the rest may hold it by chance.
        if i % 2 == 1 {
            let at = (rng.uniform_in(0.0, 7.0) as usize).min(6);
            tokens[at..at + 2].copy_from_slice(&[1, 2]);
        }
        labels.push(usize::from(tokens.windows(2).any(|w| w == [1, 2])));
        for (v, &t) in x.row_mut(i).iter_mut().zip(&tokens) {
            *v = t as f32;
        }
    }
    Dataset::classification(x, labels, 2).unwrap()
}

/// Embedding → layer norm → (positions to channels) conv1d of kernel 2 → ReLU → flatten →
/// linear: a model of one's own around the layers, named as PyTorch would.
struct TokenNet {
    embed: Embedding<f32>,
    norm: LayerNorm<f32>,
    conv: Conv1d<f32>,
    head: Linear<f32>,
}

impl TokenNet {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::seed_from_u64(seed);
        TokenNet {
            embed: Embedding::new(6, 4, None, &mut rng).unwrap(),
            norm: LayerNorm::new(&[4]).unwrap(),
            conv: Conv1d::new(4, 8, 2, &mut rng).unwrap(),
            head: Linear::new(8 * 7, 2, Init::GlorotUniform, &mut rng).unwrap(),
        }
    }

    fn parts(&self) -> [(&str, &dyn Module<f32>); 4] {
        [
            ("embed", &self.embed),
            ("norm", &self.norm),
            ("conv", &self.conv),
            ("head", &self.head),
        ]
    }
}

impl Module<f32> for TokenNet {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        p: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let h = self.embed.forward(tape, p, x)?; // [batch, 8, 4]
        let h = self.norm.forward(tape, p, h)?;
        let h = tape.transpose(h)?; // [batch, 4, 8]: channels first
        let h = self.conv.forward(tape, p, h)?; // [batch, 8, 7]
        let h = tape.relu(h)?;
        let h = Flatten.forward(tape, p, h)?;
        self.head.forward(tape, p, h)
    }
    fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.parts()
            .iter()
            .flat_map(|(_, m)| m.parameters())
            .collect()
    }
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        let mut all = self.embed.parameters_mut();
        all.extend(self.norm.parameters_mut());
        all.extend(self.conv.parameters_mut());
        all.extend(self.head.parameters_mut());
        all
    }
    fn parameter_names(&self) -> Vec<String> {
        self.parts()
            .iter()
            .flat_map(|(name, m)| prefixed(name, m.parameter_names()))
            .collect()
    }
}

#[test]
fn a_token_model_of_embedding_layer_norm_and_conv1d_trains() {
    let (train_set, test) = (pairs(400, 1), pairs(400, 2));
    let mut model = TokenNet::new(0);
    assert_eq!(
        model.parameter_names(),
        [
            "embed.weight",
            "norm.weight",
            "norm.bias",
            "conv.weight",
            "conv.bias",
            "head.weight",
            "head.bias"
        ]
    );
    let (history, mut trainer) = train(&mut model, &train_set, 30);
    let (first, last) = first_and_last(&history);
    assert!(last < first / 3.0, "the loss went from {first} to {last}");
    let evaluation = trainer.evaluate(&model, &test).unwrap();
    assert!(evaluation.accuracy.unwrap() > 0.9, "{evaluation:?}");
}

/// `model`'s gradients with respect to its parameters, at `x`, checked against central finite
/// differences (the check's parameters are the model's, in order).
fn check_gradients(model: &dyn Module<f64>, x: &ArrayD<f64>) {
    let params: Vec<ArrayD<f64>> = model.parameters().iter().map(|p| p.to_owned()).collect();
    let report = gradcheck(
        |tape, ids| {
            let input = tape.input(x)?;
            let mut p = ParameterIds::new(ids);
            let y = model.forward(tape, &mut p, input).expect("the model runs");
            let y = tape.tanh(y)?;
            tape.sum(y)
        },
        &params,
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report:?}");
}

#[test]
fn the_layers_gradients_match_finite_differences() {
    let mut rng = Rng::seed_from_u64(11);
    let mut image = |dims: &[usize]| ArrayD::from_shape_fn(dims, |_| rng.uniform_in(-1.0, 1.0));
    let x = image(&[2, 2, 5, 5]);
    let mut rng = Rng::seed_from_u64(3);
    let cnn = Sequential::<f64>::new()
        .push(
            Conv2d::builder(2, 4, 3)
                .padding(1)
                .stride([1, 2])
                .dilation([2, 1])
                .groups(2)
                .build(&mut rng)
                .unwrap(),
        )
        .push(AvgPool2d::with_stride(2, 1).unwrap().padding(1).unwrap())
        .push(LayerNorm::new(&[4, 4]).unwrap())
        .push(AdaptiveAvgPool2d::new([2, 1]).unwrap())
        .push(Flatten);
    check_gradients(&cnn, &x);
    let pooled = Sequential::<f64>::new()
        .push(Conv2d::new(2, 3, 2, &mut rng).unwrap())
        .push(MaxPool2d::with_stride(2, 1).unwrap());
    check_gradients(&pooled, &x);
    let tokens = ArrayD::from_shape_vec(
        vec![2, 5],
        vec![0.0, 3.0, 3.0, 1.0, 4.0, 2.0, 0.0, 1.0, 1.0, 3.0],
    )
    .unwrap();
    let seq = Sequential::<f64>::new()
        .push(Embedding::new(5, 3, None, &mut rng).unwrap())
        .push(LayerNorm::new(&[3]).unwrap())
        .push(Flatten)
        .push(Unflatten::new(1, &[1, 15]).unwrap())
        .push(
            Conv1d::builder(1, 2, 3)
                .padding(1)
                .stride(2)
                .build(&mut rng)
                .unwrap(),
        );
    check_gradients(&seq, &tokens);
}
