//! What the options build: the network, its optimiser (with the command's default rates) and
//! the trainer's settings.

use wengert_train::{Activation, Adam, Optimizer, Sgd, TrainConfig};

use super::architecture::Architecture;
use super::net::Network;
use crate::E;
use crate::args::{ActivationArg, OptimizerArg, TrainArgs};

/// A network ready to train, and how.
pub struct Setup {
    /// The network, its weights drawn from `--seed`.
    pub model: Network,
    /// Its non-linearity.
    pub activation: Activation,
    /// The optimiser, its settings checked.
    pub optimizer: Box<dyn Optimizer<E>>,
    /// The base learning rate: `--lr` or the optimiser's default.
    pub learning_rate: f64,
    /// `--weight-decay` or the optimiser's default.
    pub weight_decay: f64,
    /// Epochs, batches, early stopping and seed.
    pub config: TrainConfig,
}

/// The network `architecture` describes, its optimiser and the trainer's settings, as `args`
/// say.
pub fn build(args: &TrainArgs, architecture: &Architecture) -> Result<Setup, String> {
    let activation = match args.activation {
        ActivationArg::Relu => Activation::Relu,
        ActivationArg::Tanh => Activation::Tanh,
        ActivationArg::Sigmoid => Activation::Sigmoid,
    };
    let model = Network::build(architecture, activation, args.dropout, args.seed)?;
    let learning_rate = args.lr.unwrap_or(match args.optimizer {
        OptimizerArg::Sgd | OptimizerArg::Momentum => 0.05,
        OptimizerArg::Adam | OptimizerArg::Adamw => 1e-3,
    });
    let weight_decay = args.weight_decay.unwrap_or(match args.optimizer {
        OptimizerArg::Adamw => 0.01,
        _ => 0.0,
    });
    let (lr, wd) = (learning_rate, weight_decay);
    let optimizer: Box<dyn Optimizer<E>> = match args.optimizer {
        OptimizerArg::Sgd => boxed(Sgd::builder(lr).weight_decay(wd).build()),
        OptimizerArg::Momentum => boxed(Sgd::builder(lr).momentum(0.9).weight_decay(wd).build()),
        OptimizerArg::Adam => boxed(Adam::builder(lr).weight_decay(wd).build()),
        OptimizerArg::Adamw => boxed(Adam::builder(lr).decoupled_weight_decay(wd).build()),
    }
    .map_err(|e| e.to_string())?;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        accumulate: args.accumulate,
        patience: (args.patience > 0).then_some(args.patience),
        seed: args.seed,
        ..TrainConfig::default()
    };
    Ok(Setup {
        model,
        activation,
        optimizer,
        learning_rate,
        weight_decay,
        config,
    })
}

/// An optimiser just built (its settings checked), boxed for the trainer.
fn boxed<O: Optimizer<E> + 'static>(
    built: wengert_train::Result<O>,
) -> wengert_train::Result<Box<dyn Optimizer<E>>> {
    Ok(Box::new(built?))
}
