//! Training for wengert: layers, losses, optimisers, data and the loop that drives them.
//!
//! - Models: [`Linear`], [`Mlp`] (built with [`Mlp::builder`]), [`Sequential`] of layers
//!   ([`Linear`], [`Activation`], [`Dropout`], [`Flatten`], [`Unflatten`], the convolutions
//!   [`Conv2d`] and [`Conv1d`], the poolings [`MaxPool2d`], [`AvgPool2d`] and
//!   [`AdaptiveAvgPool2d`], [`LayerNorm`], [`Embedding`]), or any type implementing
//!   [`Module`]; weights start from an [`Init`] drawn from a seeded [`Rng`] (PyTorch's
//!   defaults for each layer). A forward pass
//!   trains or evaluates ([`Mode`]); [`Module::predict`] runs a model without a trainer;
//!   [`save_state`] / [`load_state`] (and safetensors) keep its named parameters and buffers.
//! - Objectives and measures: [`Loss`] (MSE, RMSE, softmax cross-entropy), or any tape
//!   expression as a closure over the output and the [`Batch`]
//!   ([`Trainer::with_loss_fn`]); [`accuracy`], [`ConfusionMatrix`].
//! - Optimisers with PyTorch's update rules: [`Sgd`] (momentum, Nesterov), [`Adam`] (L2 or
//!   decoupled weight decay, AdamW: [`Adam::adamw`]); [`clip_grad_norm`]; learning-rate
//!   [`Schedule`]s (built-in or a function of the step, [`Schedule::lambda`]) and
//!   [`ReduceOnPlateau`].
//! - Data: [`Dataset`] (features and labels or targets in memory), its seeded
//!   [`split`](Dataset::split), [`Standardizer`]; [`loaders`] for CSV and MNIST's IDX files;
//!   [`datasets::digits`], the UCI handwritten digits shipped in the crate.
//! - The loop: [`Trainer`] with a [`TrainConfig`] (epochs, batch size, early stopping), its
//!   [`Callback`]s and the [`History`] it returns; [`evaluate`] and [`EvaluationSum`] for a
//!   model's loss, accuracy and confusion matrix on a data set.
//!
//! The same seed gives the same run: initial weights, splits and batch orders all come from
//! [`Rng`] streams derived from it.
//!
//! ```
//! use wengert_train::{datasets, Adam, Mlp, Standardizer, TrainConfig, Trainer};
//!
//! # fn main() -> wengert_train::Result<()> {
//! let digits = datasets::digits::<f32>()?;
//! let (train, test) = digits.split(0.2, 0)?;
//! let scaler = Standardizer::fit(train.features());
//! let (train, test) = (train.scaled(&scaler)?, test.scaled(&scaler)?);
//!
//! let mut model = Mlp::builder(&[64, 32, 10]).seed(0).build()?;
//! let config = TrainConfig { epochs: 3, batch_size: 64, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(config, Adam::new(1e-3)?);
//! let history = trainer.fit(&mut model, &train, Some(&test))?;
//! assert_eq!(history.epochs.len(), 3);
//! let accuracy = trainer.evaluate(&model, &test)?.accuracy.unwrap();
//! assert!(accuracy > 0.5);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod callback;
mod checkpoint;
mod conv;
mod data;
pub mod datasets;
mod dropout;
mod embedding;
mod error;
mod evaluate;
mod flatten;
mod forward;
mod init;
mod layer_norm;
mod layers;
pub mod loaders;
mod loss;
mod metrics;
mod module;
#[cfg(feature = "mpi")]
pub mod mpi;
mod names;
mod objective;
mod optim;
mod pair;
mod plateau;
mod pool;
pub mod recipe;
pub mod reduce;
mod rng;
mod save;
mod schedule;
mod sequential;
mod state;
mod trainer;
mod unflatten;

pub use callback::{Callback, Control, EpochRecord, OnEpoch, OnStep, StepInfo};
pub use conv::{Conv1d, Conv1dBuilder, Conv2d, Conv2dBuilder};
pub use data::{Dataset, MAX_CLASSES, Standardizer, Targets};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use error::{Error, Result};
pub use evaluate::{Evaluation, EvaluationSum, evaluate};
pub use flatten::Flatten;
pub use forward::{Mode, ParameterIds};
pub use init::Init;
pub use layer_norm::{LayerNorm, LayerNormBuilder};
pub use layers::{Activation, Linear, Mlp, MlpBuilder};
pub use loss::Loss;
pub use metrics::{ConfusionMatrix, MAX_TABLE_CLASSES, accuracy, argmax_rows};
pub use module::Module;
pub use names::prefixed;
pub use objective::{Batch, LossFn};
pub use optim::{
    Adam, AdamBuilder, GradientSet, Optimizer, OptimizerState, Sgd, SgdBuilder, clip_grad_norm,
};
pub use pair::Pair;
pub use plateau::{PlateauState, ReduceOnPlateau, ThresholdMode};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use reduce::{BucketSink, GradientReducer, LocalReducer, Sweep};
pub use rng::{Rng, RngState};
pub use save::{
    load_parameters, load_safetensors, load_state, load_state_dict, save_parameters,
    save_safetensors, save_state, state_dict,
};
pub use schedule::{LrLambda, Schedule};
pub use sequential::{BoxedModule, Sequential};
pub use state::{EpochProgress, Every, TrainState};
pub use trainer::{History, StopReason, TrainConfig, Trainer};
pub use unflatten::Unflatten;

/// The stream numbers that keep a run's random draws apart (see [`Rng::with_stream`]).
pub(crate) mod rng_streams {
    /// Initial weights.
    pub const INIT: u64 = 1;
    /// Train, validation and test splits.
    pub const SPLIT: u64 = 2;
    /// The order of examples in each epoch.
    pub const SHUFFLE: u64 = 3;
    /// The seeds a forward pass hands its stochastic layers, from the pass's own seed.
    pub const LAYERS: u64 = 4;
    /// The seeds of a run's training passes ([`Mode::training_step`](crate::Mode::training_step)).
    pub const STEPS: u64 = 5;
}
