//! The command line, declared with clap: every option's help text lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Train a multilayer perceptron classifier and report its accuracy.
    ///
    /// With no options it trains on the UCI handwritten digits embedded in the binary
    /// (1797 8x8 images; UCI Machine Learning Repository, E. Alpaydin and C. Kaynak, 1998,
    /// CC BY 4.0), holding out 20% as a test set.
    Train(TrainArgs),
}

/// Options of `wengert train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// A numeric CSV file to train on: one example per row, one column the class label
    /// (0, 1, ...). Default: the embedded digits.
    #[arg(long, value_name = "PATH", conflicts_with = "mnist")]
    pub data: Option<PathBuf>,

    /// A directory holding MNIST's IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each may be gzipped as .gz). The t10k
    /// files are the test set.
    #[arg(long, value_name = "DIR")]
    pub mnist: Option<PathBuf>,

    /// The CSV column holding the label: an index counted from 0, a name from the header, or
    /// `last`.
    #[arg(long, value_name = "COLUMN", default_value = "last")]
    pub label_column: String,

    /// Whether the CSV's first line is a header (auto: when a field of it is not a number).
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto)]
    pub header: HeaderArg,

    /// The hidden layers' widths, comma-separated (for example 128,64).
    #[arg(
        long,
        value_name = "WIDTHS",
        value_delimiter = ',',
        default_value = "128,64"
    )]
    pub hidden: Vec<usize>,

    /// The non-linearity between layers.
    #[arg(long, value_enum, default_value_t = ActivationArg::Relu)]
    pub activation: ActivationArg,

    /// The optimiser (PyTorch's update rules): plain SGD, SGD with momentum 0.9, Adam or AdamW.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,

    /// The learning rate [default: 0.001 for adam and adamw, 0.05 for sgd and momentum].
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub lr: Option<f64>,

    /// Weight decay: L2 for sgd, momentum and adam, decoupled for adamw [default: 0, and 0.01
    /// for adamw].
    #[arg(long, value_name = "DECAY", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,

    /// Examples per step: the training set size (or more) is batch gradient descent, 1 is
    /// stochastic gradient descent, anything between is mini-batch.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch_size: usize,

    /// The most passes over the training set (early stopping may end sooner).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub epochs: usize,

    /// The seed of the initial weights, the splits and the batch order: the same seed gives
    /// the same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// The fraction of the training examples held out to validate on after every epoch (0 for
    /// none).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub validation_split: f64,

    /// The fraction of a CSV data set (or the digits) held out as the test set.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.2,
        allow_negative_numbers = true
    )]
    pub test_split: f64,

    /// Stop after this many epochs without a lower validation loss, keeping the best epoch's
    /// weights (0: never stop early).
    #[arg(long, value_name = "EPOCHS", default_value_t = 10)]
    pub patience: usize,

    /// Worker threads for the matrix products [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// The directory for metrics.csv (per epoch), metrics.json (summary) and curves.svg (loss
    /// and accuracy curves) [default: runs/<timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print no progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `--header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeaderArg {
    /// Detect it.
    Auto,
    /// The first line is a header.
    Yes,
    /// Every line is data.
    No,
}

/// `--activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActivationArg {
    /// max(x, 0).
    Relu,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
