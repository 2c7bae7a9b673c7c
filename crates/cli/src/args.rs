//! The command line, declared with clap: every option's help text lives here.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// wengert: train neural networks with a reverse-mode autodiff engine.
#[derive(Debug, Parser)]
#[command(name = "wengert", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a classifier (a multilayer perceptron, or a small CNN) and report its accuracy.
    ///
    /// With no options it trains an MLP on the UCI handwritten digits embedded in the binary
    /// (1797 8x8 images; UCI Machine Learning Repository, E. Alpaydin and C. Kaynak, 1998,
    /// CC BY 4.0), holding out 20% as a test set; --model cnn trains a small convolutional
    /// network on them as images.
    ///
    /// Into its --out directory it writes metrics.csv, metrics.json, curves.svg, the trained
    /// model as model.tape (a self-contained tape: input `x` of raw features, standardised
    /// inside; outputs `logits` and `probs`), and a `checkpoint-<step>.ckpt` after every epoch
    /// (the last --keep-checkpoints kept). --resume DIR continues a run from its newest
    /// checkpoint that loads, and ends exactly as the run would have had it never stopped.
    Train(TrainArgs),

    /// Evaluate a saved model on labelled data: accuracy, loss and confusion matrix.
    ///
    /// Without --data it evaluates on the model's own test split: the data, seed and split
    /// saved in model.tape by `wengert train` (the digits, the CSV file, or MNIST's t10k
    /// files), drawn as train drew it, so that it reproduces the test accuracy the run
    /// reported and never scores examples the model trained on.
    Eval(EvalArgs),

    /// Predict the classes of unlabelled examples with a saved model.
    ///
    /// Reads a CSV of feature columns only (the same columns, in the same order, as the model
    /// was trained on, without the label) and writes a CSV with a header: the predicted class,
    /// then one probability per class (prob_0, prob_1, ...; for a model trained on class
    /// names, the class is its name and the columns prob_<name>).
    Predict(PredictArgs),

    /// Export a saved model's weights for other frameworks.
    ///
    /// Each fully connected layer's weights are named `layers.<i>.weight` (shape [inputs,
    /// outputs], the transpose of PyTorch's nn.Linear.weight) and `layers.<i>.bias`; a CNN's
    /// convolutions `conv.<i>.weight` ([out, in, 3, 3], as nn.Conv2d.weight) and
    /// `conv.<i>.bias`; the input standardisation is input.mean and input.std.
    Export(ExportArgs),
}

/// Options of `wengert train`.
#[derive(Debug, Clone, Args)]
// A value may start with `-` (`--lr -1`, `--epochs -1`): it is then refused by the
// option's own check, which names the option, never taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// A CSV file to train on: one example per row, numeric feature columns and one label
    /// column, either class indices (0, 1, ...) or class names (`setosa`, ...: classes are
    /// the names in sorted order, saved in model.tape). At most 256 MiB and 1024 classes.
    /// Default: the embedded digits.
    #[arg(long, value_name = "PATH", conflicts_with = "mnist")]
    pub data: Option<PathBuf>,

    /// A directory holding MNIST's IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each may be gzipped as .gz). The t10k
    /// files are the test set.
    #[arg(long, value_name = "DIR")]
    pub mnist: Option<PathBuf>,

    /// The CSV column holding the label: an index counted from 0, a name from the header, or
    /// `last` (a header that makes it ambiguous, such as a column named `last` elsewhere, is
    /// refused).
    #[arg(long, value_name = "COLUMN", default_value = "last")]
    pub label_column: String,

    /// Whether the CSV's first row is a header (auto: when none of its fields is empty or a
    /// number, so that a malformed first row of data is reported, not skipped).
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto)]
    pub header: HeaderArg,

    /// The network: `mlp`, fully connected layers on the features; or `cnn`, a small
    /// convolutional network on the features read as one-channel images (the digits as 8x8,
    /// MNIST as 28x28, a CSV file of N·N pixel columns as NxN): per --channels width C, a 3x3
    /// convolution to C channels (padding 1), the activation and a 2x2 max-pool; then the
    /// feature maps flattened into the fully connected layers (--hidden, then the classes).
    #[arg(long, value_enum, default_value_t = ModelArg::Mlp)]
    pub model: ModelArg,

    /// The hidden fully connected layers' widths, comma-separated (for example 128,64)
    /// [default: 128,64 for --model mlp; none for cnn: the feature maps go straight to the
    /// classes].
    #[arg(long, value_name = "WIDTHS", value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,

    /// With --model cnn: the convolutions' output channels, one convolution block each,
    /// comma-separated; each block halves the image's height and width [default: 16,32].
    #[arg(long, value_name = "WIDTHS", value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,

    /// Dropout before the last layer: in training each of its inputs is zeroed with
    /// probability P (the others scaled by 1/(1-P)); evaluation, prediction and the saved
    /// model use every input. At least 0 and below 1; 0 is no dropout.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub dropout: f64,

    /// The non-linearity between layers.
    #[arg(long, value_enum, default_value_t = ActivationArg::Relu)]
    pub activation: ActivationArg,

    /// The optimiser (PyTorch's update rules): plain SGD, SGD with momentum 0.9, Adam or AdamW.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,

    /// The learning rate [default: 0.001 for adam and adamw, 0.05 for sgd and momentum].
    #[arg(long, value_name = "RATE")]
    pub lr: Option<f64>,

    /// Weight decay: L2 for sgd, momentum and adam, decoupled for adamw [default: 0, and 0.01
    /// for adamw].
    #[arg(long, value_name = "DECAY")]
    pub weight_decay: Option<f64>,

    /// Examples per step: the training set size (or more) is batch gradient descent, 1 is
    /// stochastic gradient descent, anything between is mini-batch.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch_size: usize,

    /// Micro-batches per step (gradient accumulation): each batch is recorded in K parts of
    /// batch-size / K examples whose gradients are summed in a fixed order before one update
    /// (the batch size must be a multiple of K). Under MPI the processes share them [default:
    /// 1, or the number of processes].
    #[arg(long, value_name = "K", default_value_t = 1, hide_default_value = true)]
    pub accumulate: usize,

    /// When the step is in micro-batches (under MPI, or with --accumulate), reduce the
    /// gradient in buckets of about MIB mebibytes as the backward sweep of the last
    /// micro-batch finishes them, overlapping the exchanges with the rest of the sweep; 0
    /// reduces once after the sweep. The weights are the same bits either way.
    #[arg(long, value_name = "MIB", default_value_t = 0.0)]
    pub bucket_mib: f64,

    /// The most passes over the training set (early stopping may end sooner).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub epochs: usize,

    /// The seed of the initial weights, the splits and the batch order: the same seed gives
    /// the same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// The fraction of the training examples held out to validate on after every epoch (0 for
    /// none).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub validation_split: f64,

    /// The fraction of a CSV data set (or the digits) held out as the test set.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.2)]
    pub test_split: f64,

    /// Stop after this many epochs without a lower validation loss (0: never stop early).
    /// Either way the saved model has the weights of the best epoch reported.
    #[arg(long, value_name = "EPOCHS", default_value_t = 10)]
    pub patience: usize,

    /// Worker threads for the matrix products, 1 to 1024 [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// The directory for metrics.csv (per epoch), metrics.json (summary), curves.svg (loss
    /// and accuracy curves), model.tape and the checkpoints; by default `runs/<timestamp>`,
    /// or the --resume directory. It is locked while the run lives, and one that holds
    /// another run is refused.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print no progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// How many of the newest checkpoints to keep in the output directory (at least 1).
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub keep_checkpoints: usize,

    /// Continue the run whose checkpoints are in DIR, from the newest one that loads (a
    /// damaged one is reported and skipped). The run keeps its settings (an option given
    /// with another value is an error) except --epochs, which may grow, and writes into DIR
    /// unless --out says otherwise.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// Options of `wengert eval`.
#[derive(Debug, Clone, Args)]
// A value may start with `-` (`--lr -1`, `--epochs -1`): it is then refused by the
// option's own check, which names the option, never taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// The model file (a model.tape written by `wengert train`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,

    /// A CSV file of labelled examples, the same feature columns as the model was trained on
    /// (class names if it was trained on names) [default: the model's own test split].
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,

    /// The CSV column holding the label: an index counted from 0, a name from the header, or
    /// `last` (a header that makes it ambiguous, such as a column named `last` elsewhere, is
    /// refused).
    #[arg(long, value_name = "COLUMN", default_value = "last")]
    pub label_column: String,

    /// Whether the CSV's first row is a header (auto: when none of its fields is empty or a
    /// number, so that a malformed first row of data is reported, not skipped).
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto)]
    pub header: HeaderArg,

    /// Without --data: the seed of the test split [default: the model's, as saved by
    /// `wengert train`; 0 for a model that does not record it].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Without --data: the fraction held out as the test split [default: the model's; 0.2
    /// for a model that does not record it].
    #[arg(long, value_name = "FRACTION")]
    pub test_split: Option<f64>,

    /// The most memory to use for the data, the model and its replay (and the confusion matrix), in bytes
    /// or with a binary suffix: 512M, 2G, 1.5G. The model is replayed in chunks of at most
    /// 1024 examples, smaller when its per-example cost needs it; a model that cannot fit
    /// one example is refused before it runs [default: half the machine's memory, from
    /// /proc/meminfo; 2G where that cannot be read].
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse_size)]
    pub max_memory: Option<u64>,
}

/// Options of `wengert predict`.
#[derive(Debug, Clone, Args)]
// A value may start with `-` (`--lr -1`, `--epochs -1`): it is then refused by the
// option's own check, which names the option, never taken for an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct PredictArgs {
    /// The model file (a model.tape written by `wengert train`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,

    /// A numeric CSV file of feature columns only, one example per row.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,

    /// Whether the CSV's first row is a header (auto: when none of its fields is empty or a
    /// number, so that a malformed first row of data is reported, not skipped).
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto)]
    pub header: HeaderArg,

    /// Write the predictions to FILE (atomically; through a symbolic link to its target)
    /// instead of standard output (`-`).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The most memory to use for the data, the model and its replay (and the predictions, held until written), in bytes
    /// or with a binary suffix: 512M, 2G, 1.5G. The model is replayed in chunks of at most
    /// 1024 examples, smaller when its per-example cost needs it; a model that cannot fit
    /// one example is refused before it runs [default: half the machine's memory, from
    /// /proc/meminfo; 2G where that cannot be read].
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse_size)]
    pub max_memory: Option<u64>,
}

/// Options of `wengert export`.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
#[command(group(ArgGroup::new("format").required(true).multiple(true).args(["safetensors", "weights"])))]
pub struct ExportArgs {
    /// The model file (a model.tape written by `wengert train`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,

    /// Write the weights as a safetensors file (PyTorch, JAX, candle), as f32.
    #[arg(long, value_name = "OUT")]
    pub safetensors: Option<PathBuf>,

    /// Write the weights as a wengert weights file.
    #[arg(long, value_name = "OUT")]
    pub weights: Option<PathBuf>,

    /// The safetensors' weight layout: `wengert` writes each layers.<i>.weight as wengert
    /// holds it, [inputs, outputs]; `pytorch` as torch.nn.Linear does, [outputs, inputs], for
    /// `load_state_dict` to take as they are.
    #[arg(long, value_enum, default_value_t = LayoutArg::Wengert, requires = "safetensors")]
    pub layout: LayoutArg,
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// `[inputs, outputs]`: `x·W + b`.
    Wengert,
    /// `[outputs, inputs]`: `x·Wᵀ + b`, torch.nn.Linear's.
    Pytorch,
}

/// `--header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderArg {
    /// Detect it.
    Auto,
    /// The first line is a header.
    Yes,
    /// Every line is data.
    No,
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelArg {
    /// A multilayer perceptron.
    Mlp,
    /// A convolutional network on the features read as one-channel images.
    Cnn,
}

impl ModelArg {
    /// The name used in reports and `metrics.json`.
    pub fn name(self) -> &'static str {
        match self {
            ModelArg::Mlp => "mlp",
            ModelArg::Cnn => "cnn",
        }
    }
}

/// The convolutions' widths when `--channels` is not given.
pub const DEFAULT_CHANNELS: [usize; 2] = [16, 32];

/// The MLP's hidden widths when `--hidden` is not given.
pub const DEFAULT_MLP_HIDDEN: [usize; 2] = [128, 64];

impl TrainArgs {
    /// `--hidden`, or the model's default: `128,64` for an MLP, none for a CNN.
    pub fn hidden_widths(&self) -> Vec<usize> {
        match (&self.hidden, self.model) {
            (Some(widths), _) => widths.clone(),
            (None, ModelArg::Mlp) => DEFAULT_MLP_HIDDEN.to_vec(),
            (None, ModelArg::Cnn) => Vec::new(),
        }
    }

    /// The convolutions' widths: `--channels` or its default for a CNN, none for an MLP.
    pub fn channel_widths(&self) -> Vec<usize> {
        match self.model {
            ModelArg::Mlp => Vec::new(),
            ModelArg::Cnn => self
                .channels
                .clone()
                .unwrap_or_else(|| DEFAULT_CHANNELS.to_vec()),
        }
    }
}

/// The options of `wengert train` followed by `line`, for the unit tests.
#[cfg(test)]
pub fn parse_train(line: &[&str]) -> TrainArgs {
    let cli = Cli::try_parse_from([&["wengert", "train"], line].concat()).expect("valid options");
    match cli.command {
        Command::Train(args) => args,
        _ => unreachable!("parsed as train"),
    }
}

/// `--activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationArg {
    /// max(x, 0).
    Relu,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerArg {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

impl OptimizerArg {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerArg::Sgd => "sgd",
            OptimizerArg::Momentum => "momentum",
            OptimizerArg::Adam => "adam",
            OptimizerArg::Adamw => "adamw",
        }
    }
}
