//! Batch norm as a user trains it: a network with `BatchNorm1d` (and one with `BatchNorm2d`)
//! trained by the `Trainer`, its running statistics moved once per step by the batch's
//! statistics, used in evaluation, saved and loaded in both file formats and in checkpoints,
//! and a resumed run bit-identical to a straight one.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, array};
use wengert_io::LoadOptions;
use wengert_tape::{NodeId, Tape};
use wengert_train::{
    Activation, Adam, BatchNorm1d, BatchNorm2d, Control, Dataset, Every, Init, Linear, Module,
    ParameterIds, Rng, Sequential, Sgd, TrainConfig, TrainState, Trainer, load_safetensors,
    load_state, save_safetensors, save_state, state_dict,
};

use crate::accumulate::SharedReducer;
use crate::disc;

/// Linear 2 → 16, batch norm, ReLU, linear 16 → 2: a classifier of the disc.
fn network(seed: u64) -> Sequential<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    Sequential::new()
        .push(Linear::new(2, 16, Init::HeNormal, &mut rng).unwrap())
        .push(BatchNorm1d::new(16).unwrap())
        .push(Activation::Relu)
        .push(Linear::new(16, 2, Init::GlorotUniform, &mut rng).unwrap())
}

/// The model's whole state (parameters and buffers, by name) as bits.
fn bits(model: &impl Module<f32>) -> Vec<(String, Vec<u32>)> {
    state_dict(model)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, t.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 25,
        ..TrainConfig::default()
    }
}

#[test]
fn a_network_with_batch_norm_trains_evaluates_by_its_running_statistics_and_saves_them() {
    let (train, test) = (disc(300, 1), disc(300, 2));
    let mut model = network(3);
    let mut trainer = Trainer::new(config(30), Adam::new(0.02).unwrap());
    let history = trainer.fit(&mut model, &train, None).unwrap();
    let losses: Vec<f64> = history.epochs.iter().map(|r| r.train_loss).collect();
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
    let accuracy = trainer.evaluate(&model, &test).unwrap().accuracy.unwrap();
    assert!(accuracy > 0.9, "{accuracy}");
    // The statistics moved from (0, 1) and came back into the model with the weights.
    let state = state_dict(&model).unwrap();
    assert!(state["1.running_mean"].iter().any(|&m| m.abs() > 0.05));
    assert!(
        state["1.running_var"]
            .iter()
            .any(|&v| (v - 1.0).abs() > 0.05)
    );
    // Evaluation normalises by them: the trainer's pass and the model's own agree.
    let x = test.features();
    let predicted = model.predict(x).unwrap();
    assert_eq!(predicted, trainer.predict(&model, x).unwrap().into_dyn());

    let dir = tempfile::tempdir().unwrap();
    let (weights, tensors) = (
        dir.path().join("bn.weights"),
        dir.path().join("bn.safetensors"),
    );
    save_state(&model, &weights).unwrap();
    save_safetensors(&model, &tensors).unwrap();
    for path in [&weights, &tensors] {
        let mut loaded = network(4);
        if path == &weights {
            load_state(&mut loaded, path).unwrap();
        } else {
            load_safetensors(&mut loaded, path).unwrap();
        }
        assert_eq!(bits(&loaded), bits(&model));
        assert_eq!(loaded.predict(x).unwrap(), predicted);
    }
}

#[test]
fn each_training_step_moves_the_statistics_once_by_its_batch() {
    // A model that is one batch norm over the two features; the whole set is one batch, so
    // every step sees the same batch statistics.
    let data = Dataset::classification(
        array![[1.0f64, 10.0], [2.0, 30.0], [4.0, 20.0], [5.0, 60.0]],
        vec![0, 1, 0, 1],
        2,
    )
    .unwrap();
    let stats = |j: usize| {
        let v: Vec<f64> = data.features().column(j).to_vec();
        let mean = v.iter().sum::<f64>() / 4.0;
        let unbiased = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 3.0;
        (mean, unbiased)
    };
    for steps in [1, 3] {
        let mut model = BatchNorm1d::<f64>::new(2).unwrap();
        let config = TrainConfig {
            epochs: steps,
            batch_size: 4,
            restore_best: false,
            ..TrainConfig::default()
        };
        Trainer::new(config, Sgd::new(0.1).unwrap())
            .fit(&mut model, &data, None)
            .unwrap();
        // r ← 0.9·r + 0.1·stat, `steps` times from (0, 1).
        let kept = 0.9f64.powi(steps as i32);
        for j in 0..2 {
            let (mean, var) = stats(j);
            let expected = ((1.0 - kept) * mean, kept + (1.0 - kept) * var);
            let got = (model.running_mean()[j], model.running_var()[j]);
            assert!(
                (got.0 - expected.0).abs() < 1e-12,
                "{steps}: {got:?} {expected:?}"
            );
            assert!(
                (got.1 - expected.1).abs() < 1e-12,
                "{steps}: {got:?} {expected:?}"
            );
        }
    }
}

#[test]
fn a_resumed_run_with_batch_norm_is_bit_identical_to_a_straight_one() {
    let train = disc(100, 5);
    let mut straight = network(6);
    let history = Trainer::new(config(4), Adam::new(0.01).unwrap())
        .fit(&mut straight, &train, None)
        .unwrap();

    // Paused after step 6 (mid-epoch 2), through the checkpoint's bytes, resumed afresh.
    let mut bytes = Vec::new();
    let mut model = network(6);
    let mut first = Trainer::new(config(4), Adam::new(0.01).unwrap());
    first.checkpoint_every(Every::Steps(6), |s: &TrainState<f32>| {
        bytes = s.to_checkpoint().to_bytes();
        Ok(Control::Stop)
    });
    first.fit(&mut model, &train, None).unwrap();
    drop(first);
    let checkpoint = wengert_io::Checkpoint::from_bytes(&bytes, &LoadOptions::default()).unwrap();
    assert!(checkpoint.arrays.contains_key("train.buffers.1"));
    let state = TrainState::<f32>::from_checkpoint(&checkpoint).unwrap();
    assert_eq!(state.buffers.len(), 2);
    // A checkpoint that lost a buffer names it; a state without the buffers does not fit.
    let mut damaged = checkpoint.clone();
    damaged.arrays.remove("train.buffers.1");
    let err = TrainState::<f32>::from_checkpoint(&damaged).unwrap_err();
    assert!(
        err.to_string().contains("train.buffers.1 is missing"),
        "{err}"
    );
    let mut bufferless = state.clone();
    bufferless.buffers.clear();
    let err = Trainer::new(config(4), Adam::new(0.01).unwrap())
        .resume(&mut network(7), &train, None, bufferless)
        .unwrap_err();
    assert!(
        err.to_string().contains("saved buffers have shapes []"),
        "{err}"
    );
    let mut resumed = network(7);
    let again = Trainer::new(config(4), Adam::new(0.01).unwrap())
        .resume(&mut resumed, &train, None, state)
        .unwrap();
    assert_eq!(bits(&resumed), bits(&straight));
    let losses = |h: &wengert_train::History| -> Vec<u64> {
        h.epochs.iter().map(|r| r.train_loss.to_bits()).collect()
    };
    assert_eq!(losses(&again), losses(&history));
}

#[test]
fn processes_sharing_a_step_refuse_a_model_that_moves_its_statistics() {
    let train = disc(40, 8);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 20,
        accumulate: 2,
        ..TrainConfig::default()
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = SharedReducer::group(2)
            .into_iter()
            .map(|reducer| {
                let (config, train) = (config.clone(), &train);
                scope.spawn(move || {
                    let mut model = network(9);
                    Trainer::new(config, Adam::new(0.01).unwrap())
                        .with_reducer(reducer)
                        .fit(&mut model, train, None)
                        .unwrap_err()
                })
            })
            .collect();
        for h in handles {
            let err = h.join().unwrap().to_string();
            assert!(err.contains("2 processes sharing a step"), "{err}");
        }
    });
    // One process accumulating two micro-batches moves the statistics by each in turn.
    let mut model = network(9);
    Trainer::new(config, Adam::new(0.01).unwrap())
        .fit(&mut model, &train, None)
        .unwrap();
    assert!(
        state_dict(&model).unwrap()["1.running_mean"]
            .iter()
            .all(|&m| m != 0.0)
    );
}

/// The features `[N, 8]` seen as `[N, 2, 2, 2]` images, batch-normalised per channel, and
/// flattened back: a stand-in for a convolution's feature maps.
struct Images(BatchNorm2d<f32>);

impl Module<f32> for Images {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let n = tape.shape(x)?.dims()[0];
        let images = tape.reshape(x, &[n, 2, 2, 2])?;
        let y = self.0.forward(tape, params, images)?;
        Ok(tape.reshape(y, &[n, 8])?)
    }
    fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.0.parameters()
    }
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        self.0.parameters_mut()
    }
    fn parameter_names(&self) -> Vec<String> {
        self.0.parameter_names()
    }
    fn buffers(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.0.buffers()
    }
    fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        self.0.buffers_mut()
    }
    fn buffer_names(&self) -> Vec<String> {
        self.0.buffer_names()
    }
}

#[test]
fn batch_norm_2d_trains_inside_the_trainer() {
    let (train, test) = (disc(300, 10), disc(300, 11));
    let mut rng = Rng::seed_from_u64(12);
    let mut model = Sequential::new()
        .push(Linear::new(2, 8, Init::HeNormal, &mut rng).unwrap())
        .push(Images(BatchNorm2d::new(2).unwrap()))
        .push(Activation::Relu)
        .push(Linear::new(8, 2, Init::GlorotUniform, &mut rng).unwrap());
    let mut trainer = Trainer::new(config(30), Adam::new(0.02).unwrap());
    let history = trainer.fit(&mut model, &train, None).unwrap();
    let (first, last) = (
        history.epochs[0].train_loss,
        history.last().unwrap().train_loss,
    );
    assert!(last < 0.6 * first, "{first} → {last}");
    let accuracy = trainer.evaluate(&model, &test).unwrap().accuracy.unwrap();
    assert!(accuracy > 0.85, "{accuracy}");
    let state: Vec<(String, ArrayD<f32>)> = state_dict(&model).unwrap().into_iter().collect();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"1.running_var") && names.contains(&"1.weight"));
    assert!(
        state
            .iter()
            .any(|(n, t)| n == "1.running_var" && t.iter().all(|&v| v != 1.0))
    );
}
