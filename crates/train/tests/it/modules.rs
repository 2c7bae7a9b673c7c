//! Modules as a user builds them: a `Sequential` with dropout trained by the `Trainer` (its
//! masks drawn from the run's seed, the same when resumed or shared between processes),
//! evaluated without dropout, its state saved in both file formats and loaded back, and the
//! errors of a state that does not fit.

use ndarray::{Array1, ArrayViewD, ArrayViewMutD, array};
use wengert_io::{Checkpoint, LoadOptions, Weights, export_safetensors, save_weights};
use wengert_tape::{NodeId, Tape};
use wengert_train::{
    Activation, Adam, Control, Dropout, Every, History, Init, Linear, Module, ParameterIds, Rng,
    Sequential, StopReason, TrainConfig, TrainState, Trainer, load_safetensors, load_state,
    load_state_dict, prefixed, save_safetensors, save_state, state_dict,
};

use crate::accumulate::SharedReducer;
use crate::disc;

/// `x - centre`, with `centre` a buffer: state that is saved but not trained, on the tape
/// as a node the pass takes like a parameter.
struct Centre {
    centre: Array1<f32>,
}

impl Module<f32> for Centre {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let c = params.next_buffer()?;
        Ok(tape.sub(x, c)?)
    }
    fn buffers(&self) -> Vec<ArrayViewD<'_, f32>> {
        vec![self.centre.view().into_dyn()]
    }
    fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        vec![self.centre.view_mut().into_dyn()]
    }
    fn buffer_names(&self) -> Vec<String> {
        vec!["centre".into()]
    }
}

/// A classifier of the disc: centre, linear, ReLU, dropout `p`, linear.
fn network(seed: u64, p: f64, hidden: usize) -> Sequential<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut layers = Sequential::new().push(Centre {
        centre: array![0.1, -0.1],
    });
    layers = layers.push(Linear::new(2, hidden, Init::HeNormal, &mut rng).unwrap());
    layers = layers.push(Activation::Relu);
    if p > 0.0 {
        layers = layers.push(Dropout::new(p).unwrap());
    }
    layers.push(Linear::new(hidden, 2, Init::GlorotUniform, &mut rng).unwrap())
}

/// The same network as `model` without its dropout layer, with the same weights.
fn without_dropout(model: &Sequential<f32>) -> Sequential<f32> {
    let mut twin = network(99, 0.0, 16);
    let renamed: Weights<f32> = state_dict(model)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name.replacen("4.", "3.", 1), t))
        .collect();
    load_state_dict(&mut twin, &renamed).unwrap();
    twin
}

#[test]
fn a_sequential_with_dropout_trains_through_the_trainer_and_evaluates_without_it() {
    let (train, test) = (disc(300, 1), disc(500, 2));
    let mut model = network(3, 0.2, 16);
    let config = TrainConfig {
        epochs: 150,
        batch_size: 30,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.02).unwrap());
    trainer.fit(&mut model, &train, None).unwrap();
    let evaluation = trainer.evaluate(&model, &test).unwrap();
    assert!(evaluation.accuracy.unwrap() > 0.9, "{evaluation:?}");
    // Evaluation is deterministic and dropout-free: the same as the network without the layer.
    let twin = without_dropout(&model);
    let again = trainer.evaluate(&model, &test).unwrap();
    let plain = trainer.evaluate(&twin, &test).unwrap();
    assert_eq!((evaluation.loss, again.loss), (plain.loss, plain.loss));
    let x = test.features();
    let predicted = model.predict(x).unwrap();
    assert_eq!(predicted, model.predict(x).unwrap());
    assert_eq!(predicted, twin.predict(x).unwrap());
    assert_eq!(predicted, trainer.predict(&model, x).unwrap().into_dyn());
    // The buffer is the model's state, not a parameter: training left it alone.
    assert_eq!(model.buffers()[0], array![0.1f32, -0.1].into_dyn());
}

#[test]
fn named_parameters_and_buffers_give_dotted_paths() {
    /// A network held as `layers`, with a `head` of its own.
    struct Net {
        layers: Sequential<f32>,
        head: Linear<f32>,
    }
    impl Module<f32> for Net {
        fn forward(
            &self,
            tape: &mut Tape<f32>,
            p: &mut ParameterIds<'_>,
            x: NodeId,
        ) -> wengert_train::Result<NodeId> {
            let h = self.layers.forward(tape, p, x)?;
            self.head.forward(tape, p, h)
        }
        fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
            [self.layers.parameters(), self.head.parameters()].concat()
        }
        fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
            let mut all = self.layers.parameters_mut();
            all.extend(self.head.parameters_mut());
            all
        }
        fn parameter_names(&self) -> Vec<String> {
            [
                prefixed("layers", self.layers.parameter_names()),
                prefixed("head", self.head.parameter_names()),
            ]
            .concat()
        }
        fn buffers(&self) -> Vec<ArrayViewD<'_, f32>> {
            self.layers.buffers()
        }
        fn buffers_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
            self.layers.buffers_mut()
        }
        fn buffer_names(&self) -> Vec<String> {
            prefixed("layers", self.layers.buffer_names())
        }
    }
    let mut rng = Rng::seed_from_u64(0);
    let net = Net {
        layers: network(1, 0.5, 4),
        head: Linear::new(2, 3, Init::HeNormal, &mut rng).unwrap(),
    };
    let named: Vec<(String, Vec<usize>)> = net
        .named_parameters()
        .unwrap()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .collect();
    let expected = [
        ("layers.1.weight", vec![2, 4]),
        ("layers.1.bias", vec![4]),
        ("layers.4.weight", vec![4, 2]),
        ("layers.4.bias", vec![2]),
        ("head.weight", vec![2, 3]),
        ("head.bias", vec![3]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    assert_eq!(named, expected);
    let buffers: Vec<String> = net
        .named_buffers()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(buffers, ["layers.0.centre"]);
    assert_eq!(state_dict(&net).unwrap().len(), 7);
}

#[test]
fn state_round_trips_through_both_file_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = network(5, 0.5, 8);
    model.buffers_mut()[0].fill(0.25);
    let saved = state_dict(&model).unwrap();
    assert!(saved.contains_key("0.centre"));
    for file in ["model.weights", "model.safetensors"] {
        let path = dir.path().join(file);
        let safetensors = file.ends_with("safetensors");
        if safetensors {
            save_safetensors(&model, &path).unwrap();
        } else {
            save_state(&model, &path).unwrap();
        }
        let mut fresh = network(6, 0.5, 8);
        assert_ne!(state_dict(&fresh).unwrap(), saved);
        if safetensors {
            load_safetensors(&mut fresh, &path).unwrap();
        } else {
            load_state(&mut fresh, &path).unwrap();
        }
        assert_eq!(state_dict(&fresh).unwrap(), saved, "{file}");
        let x = array![[0.3f32, -0.7], [0.0, 0.5]];
        assert_eq!(fresh.predict(&x).unwrap(), model.predict(x).unwrap());
    }
}

#[test]
fn a_state_that_does_not_fit_is_refused_naming_the_first_tensor_and_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = network(5, 0.0, 8);
    let full = state_dict(&model).unwrap();
    let without = |name: &str| {
        let mut s = full.clone();
        s.remove(name);
        s
    };
    let mut extra = full.clone();
    extra.insert("9.weight".into(), array![1.0f32].into_dyn());
    let narrower = state_dict(&network(5, 0.0, 4)).unwrap();
    let cases: [(&str, Weights<f32>, &str); 4] = [
        (
            "missing.weights",
            without("1.bias"),
            "holds no `1.bias` (shape [8])",
        ),
        (
            "buffer.weights",
            without("0.centre"),
            "holds no `0.centre` (shape [2])",
        ),
        (
            "narrow.weights",
            narrower,
            "`1.weight` has shape [2, 4], the model's [2, 8]",
        ),
        (
            "extra.weights",
            extra,
            "holds `9.weight`, which the model does not have",
        ),
    ];
    for (file, state, expected) in cases {
        let path = dir.path().join(file);
        save_weights(&path, &state).unwrap();
        let mut target = network(7, 0.0, 8);
        let before = state_dict(&target).unwrap();
        let err = load_state(&mut target, &path).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains(file), "{err}");
        assert_eq!(
            state_dict(&target).unwrap(),
            before,
            "{file} changed the model"
        );
        let st = dir.path().join(file).with_extension("safetensors");
        export_safetensors(&st, &state).unwrap();
        let err = load_safetensors(&mut target, &st).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

/// A model's parameters, as bits.
fn bits(model: &impl Module<f32>) -> Vec<u32> {
    model
        .parameters()
        .iter()
        .flatten()
        .map(|x| x.to_bits())
        .collect()
}

/// The history with the clock taken out.
fn timeless(mut h: History) -> History {
    for r in &mut h.epochs {
        r.seconds = 0.0;
    }
    h
}

#[test]
fn fit_trains_with_dropout_on_and_validates_with_it_off() {
    let (train, valid) = (disc(60, 1), disc(40, 2));
    let config = TrainConfig {
        epochs: 2,
        batch_size: 10,
        seed: 4,
        ..TrainConfig::default()
    };
    let run = |p| {
        let mut model = network(3, p, 16);
        let mut trainer = Trainer::new(config.clone(), Adam::new(0.02).unwrap());
        let history = trainer.fit(&mut model, &train, Some(&valid)).unwrap();
        // The last validation is the model's evaluation: no dropout in it.
        let evaluated = trainer.evaluate(&model, &valid).unwrap();
        assert_eq!(history.last().unwrap().val_loss, Some(evaluated.loss));
        bits(&model)
    };
    let dropped = run(0.5);
    assert_eq!(dropped, run(0.5), "the same seed, the same masks");
    assert_ne!(dropped, run(0.0), "dropout changed no step");
}

#[test]
fn a_run_with_dropout_resumes_bit_for_bit() {
    let (train, valid) = (disc(45, 5), disc(30, 6));
    let config = TrainConfig {
        epochs: 3,
        batch_size: 7,
        seed: 11,
        ..TrainConfig::default()
    };
    let adam = || Adam::new(0.02).unwrap();
    let mut straight = network(3, 0.3, 8);
    let expected = Trainer::new(config.clone(), adam())
        .fit(&mut straight, &train, Some(&valid))
        .unwrap();
    let mut saved: Option<Vec<u8>> = None;
    let mut pauses = 0;
    let (model, history) = loop {
        // A resumed piece starts from other weights: resuming must overwrite them all.
        let mut model = network(if saved.is_none() { 3 } else { 100 + pauses }, 0.3, 8);
        let mut slot = None;
        let mut trainer = Trainer::new(config.clone(), adam());
        trainer.checkpoint_every(Every::Steps(5), |s: &TrainState<f32>| {
            slot = Some(s.to_checkpoint().to_bytes());
            Ok(Control::Stop)
        });
        let history = match saved.take() {
            None => trainer.fit(&mut model, &train, Some(&valid)),
            Some(bytes) => {
                let checkpoint = Checkpoint::from_bytes(&bytes, &LoadOptions::default()).unwrap();
                let state = TrainState::from_checkpoint(&checkpoint).unwrap();
                trainer.resume(&mut model, &train, Some(&valid), state)
            }
        }
        .unwrap();
        drop(trainer);
        if history.stop_reason != StopReason::Paused {
            break (model, history);
        }
        saved = slot;
        pauses += 1;
    };
    assert_eq!(pauses, 4);
    assert_eq!(bits(&model), bits(&straight));
    assert_eq!(timeless(history), timeless(expected));
}

#[test]
fn ranks_sharing_micro_batches_with_dropout_match_one_process_bit_for_bit() {
    let (train, valid) = (disc(60, 2), disc(20, 3));
    let config = TrainConfig {
        epochs: 2,
        batch_size: 12,
        accumulate: 4,
        ..TrainConfig::default()
    };
    let mut reference = network(9, 0.4, 16);
    Trainer::new(config.clone(), Adam::new(0.01).unwrap())
        .fit(&mut reference, &train, Some(&valid))
        .unwrap();
    for ranks in [2, 4] {
        let models: Vec<Sequential<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = SharedReducer::group(ranks)
                .into_iter()
                .map(|reducer| {
                    let config = config.clone();
                    let (train, valid) = (&train, &valid);
                    scope.spawn(move || {
                        let mut model = network(9, 0.4, 16);
                        Trainer::new(config, Adam::new(0.01).unwrap())
                            .with_reducer(reducer)
                            .fit(&mut model, train, Some(valid))
                            .unwrap();
                        model
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (rank, model) in models.iter().enumerate() {
            assert_eq!(bits(model), bits(&reference), "rank {rank} of {ranks}");
        }
    }
}
