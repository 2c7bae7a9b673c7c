//! The training loop: the three flavours of gradient descent, early stopping, the NaN guard,
//! callbacks, schedules, regression and reproducibility.

use std::cell::RefCell;

use ndarray::{ArrayViewD, ArrayViewMutD, array};
use wengert_tape::{NodeId, Tape};
use wengert_train::{
    Activation, Adam, Callback, Control, EpochRecord, Error, Linear, Loss, Mlp, Module, OnEpoch,
    OnStep, ParameterIds, Schedule, Sgd, StopReason, TrainConfig, Trainer, datasets,
};

use crate::{disc, plane};

fn disc_model(seed: u64) -> Mlp<f32> {
    Mlp::builder(&[2, 16, 2])
        .activation(Activation::Tanh)
        .seed(seed)
        .build()
        .unwrap()
}

/// Trains the disc problem with `batch_size` and returns the accuracy on fresh points.
fn disc_accuracy(
    batch_size: usize,
    epochs: usize,
    optimizer: impl wengert_train::Optimizer<f32>,
) -> f64 {
    let train = disc(200, 1);
    let test = disc(500, 2);
    let mut model = disc_model(3);
    let config = TrainConfig {
        epochs,
        batch_size,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, optimizer);
    let history = trainer.fit(&mut model, &train, None).unwrap();
    let batches = 200usize.div_ceil(batch_size.min(200));
    assert_eq!(history.steps, epochs * batches);
    trainer.evaluate(&model, &test).unwrap().accuracy.unwrap()
}

#[test]
fn batch_gradient_descent_learns_the_disc_to_95_percent() {
    // Batch size = training set size: one step per epoch on the full gradient.
    let acc = disc_accuracy(200, 400, Adam::new(0.05).unwrap());
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn mini_batch_gradient_descent_learns_the_disc_to_95_percent() {
    let acc = disc_accuracy(20, 200, Adam::new(0.02).unwrap());
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn stochastic_gradient_descent_learns_the_disc_to_95_percent() {
    // Batch size 1: one example per step, plain SGD.
    let acc = disc_accuracy(1, 30, Sgd::new(0.05).unwrap());
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn momentum_and_adamw_train_too() {
    let acc = disc_accuracy(
        20,
        200,
        Sgd::builder(0.1)
            .momentum(0.9)
            .nesterov(true)
            .build()
            .unwrap(),
    );
    assert!(acc >= 0.95, "nesterov accuracy {acc}");
    let acc = disc_accuracy(20, 200, Adam::adamw(0.02).unwrap());
    assert!(acc >= 0.95, "adamw accuracy {acc}");
}

#[test]
fn a_small_mlp_reaches_90_percent_on_the_digits_in_a_few_epochs() {
    let digits = datasets::digits::<f32>().unwrap();
    assert_eq!(digits.len(), 1797);
    let (train, test) = digits.split(0.2, 0).unwrap();
    let scaler = wengert_train::Standardizer::fit(train.features());
    let (train, test) = (
        train.scaled(&scaler).unwrap(),
        test.scaled(&scaler).unwrap(),
    );
    let mut model = Mlp::builder(&[64, 32, 10]).seed(0).build().unwrap();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(3e-3).unwrap());
    trainer.fit(&mut model, &train, Some(&test)).unwrap();
    let eval = trainer.evaluate(&model, &test).unwrap();
    assert!(
        eval.accuracy.unwrap() >= 0.90,
        "accuracy {:?}",
        eval.accuracy
    );
    let confusion = eval.confusion.unwrap();
    assert_eq!(confusion.total(), test.len() as u64);
}

#[test]
fn regression_with_mse_and_rmse_fits_a_plane() {
    for loss in [Loss::Mse, Loss::Rmse] {
        let data = plane(100, 4);
        let mut model = Linear::new(
            2,
            1,
            wengert_train::Init::Zeros,
            &mut wengert_train::Rng::seed_from_u64(0),
        )
        .unwrap();
        let config = TrainConfig {
            epochs: 200,
            batch_size: 100,
            loss,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, Adam::new(0.05).unwrap());
        let history = trainer.fit(&mut model, &data, None).unwrap();
        assert_eq!(history.last().unwrap().train_accuracy, None);
        let eval = trainer.evaluate(&model, &data).unwrap();
        let rmse = if loss == Loss::Mse {
            eval.loss.sqrt()
        } else {
            eval.loss
        };
        assert!(rmse < 0.05, "{loss}: rmse {rmse}");
        assert!(
            (model.weight[[0, 0]] - 2.0).abs() < 0.05,
            "{:?}",
            model.weight
        );
        assert!(
            (model.weight[[1, 0]] + 3.0).abs() < 0.05,
            "{:?}",
            model.weight
        );
        assert!((model.bias[0] - 0.5).abs() < 0.05, "{:?}", model.bias);
    }
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights() {
    // Few examples and a wide net: the validation loss soon rises as the net memorises.
    let train = disc(30, 5);
    let valid = disc(200, 6);
    let mut model = Mlp::builder(&[2, 64, 64, 2]).seed(0).build().unwrap();
    let config = TrainConfig {
        epochs: 2000,
        batch_size: 30,
        patience: Some(5),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.05).unwrap());
    let history = trainer.fit(&mut model, &train, Some(&valid)).unwrap();
    assert_eq!(history.stop_reason, StopReason::EarlyStopping);
    let best = history.best_epoch.unwrap();
    assert_eq!(history.epochs.len(), best + 5);
    let best_val = history.epochs[best - 1].val_loss.unwrap();
    let now = trainer.evaluate(&model, &valid).unwrap().loss;
    assert!(
        (now - best_val).abs() < 1e-6,
        "restored {now}, best {best_val}"
    );
}

#[test]
fn without_patience_the_best_epoch_reported_is_the_one_whose_weights_are_kept() {
    // As above, but every epoch runs (`--patience 0`): the run still ends with the weights
    // of the epoch it reports as best, not the last epoch's.
    let train = disc(30, 5);
    let valid = disc(200, 6);
    let run = |restore_best: bool| {
        let mut model = Mlp::builder(&[2, 64, 64, 2]).seed(0).build().unwrap();
        let config = TrainConfig {
            epochs: 60,
            batch_size: 30,
            patience: None,
            restore_best,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, Adam::new(0.05).unwrap());
        let history = trainer.fit(&mut model, &train, Some(&valid)).unwrap();
        let now = trainer.evaluate(&model, &valid).unwrap().loss;
        (history, now)
    };
    let (history, now) = run(true);
    assert_eq!(history.stop_reason, StopReason::Completed);
    assert_eq!(history.epochs.len(), 60);
    let best = history.best_epoch.unwrap();
    assert!(best < 60, "the validation loss should rise before the end");
    let best_val = history.epochs[best - 1].val_loss.unwrap();
    assert!((now - best_val).abs() < 1e-6, "kept {now}, best {best_val}");
    // Asked not to restore, the last epoch's weights stay.
    let (history, now) = run(false);
    let last_val = history.last().unwrap().val_loss.unwrap();
    assert!((now - last_val).abs() < 1e-6, "kept {now}, last {last_val}");
}

#[test]
fn a_diverging_learning_rate_stops_with_the_step_named() {
    let data = plane(50, 7);
    let mut model = Mlp::<f64>::builder(&[2, 8, 1]).seed(0).build().unwrap();
    let config = TrainConfig {
        epochs: 100,
        batch_size: 10,
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Sgd::new(1e3).unwrap());
    let err = trainer.fit(&mut model, &data, None).unwrap_err();
    match err {
        Error::NonFiniteLoss { step, epoch, loss } => {
            assert!(step > 1 && epoch >= 1 && !loss.is_finite(), "{err}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("at step {step} (epoch {epoch})")),
                "{message}"
            );
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
}

#[test]
fn callbacks_see_every_step_and_epoch_and_can_stop() {
    let data = disc(40, 8);
    let steps = RefCell::new(Vec::new());
    let epochs = RefCell::new(Vec::<EpochRecord>::new());
    let mut model = disc_model(0);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        schedule: Schedule::Warmup {
            steps: 4,
            then: Box::new(Schedule::Constant),
        },
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap())
        .with_callback(OnStep(|s: &wengert_train::StepInfo| {
            steps
                .borrow_mut()
                .push((s.step, s.batch, s.batches, s.batch_size, s.learning_rate))
        }))
        .with_callback(OnEpoch(|r: &EpochRecord| epochs.borrow_mut().push(*r)));
    let history = trainer.fit(&mut model, &data, None).unwrap();
    drop(trainer);
    let steps = steps.into_inner();
    assert_eq!(steps.len(), 9);
    assert_eq!(history.steps, 9);
    // 40 examples in batches of 16: 16, 16, 8.
    assert_eq!(steps[2], (3, 3, 3, 8, 0.0075));
    let rates: Vec<f64> = steps.iter().map(|s| s.4).collect();
    assert_eq!(&rates[..5], &[0.0025, 0.005, 0.0075, 0.01, 0.01]);
    assert_eq!(epochs.into_inner(), history.epochs);

    struct StopAfter(usize);
    impl Callback for StopAfter {
        fn on_epoch(&mut self, record: &EpochRecord) -> Control {
            if record.epoch >= self.0 {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }
    let mut trainer =
        Trainer::new(TrainConfig::default(), Adam::new(0.01).unwrap()).with_callback(StopAfter(2));
    let history = trainer.fit(&mut model, &data, None).unwrap();
    assert_eq!(history.epochs.len(), 2);
    assert_eq!(history.stop_reason, StopReason::Callback);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed: u64| {
        let data = disc(64, 9);
        let mut model = disc_model(seed);
        let config = TrainConfig {
            epochs: 5,
            batch_size: 8,
            seed,
            clip_grad_norm: Some(1.0),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
        let history = trainer.fit(&mut model, &data, Some(&disc(20, 10))).unwrap();
        let losses: Vec<(f64, Option<f64>)> = history
            .epochs
            .iter()
            .map(|r| (r.train_loss, r.val_loss))
            .collect();
        (losses, model)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn threads_kept_awake_or_left_to_sleep_give_the_same_run_on_one_and_two_threads() {
    // Wide enough layers that the products are split between two threads (128×256·256×256).
    let run = |threads: usize, awake: bool| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let data = disc(256, 12);
            let mut model = Mlp::builder(&[2, 256, 256, 2]).seed(5).build().unwrap();
            let config = TrainConfig {
                epochs: 2,
                batch_size: 128,
                ..TrainConfig::default()
            };
            let mut trainer =
                Trainer::new(config, Sgd::new(0.1).unwrap()).keep_threads_awake(awake);
            let history = trainer.fit(&mut model, &data, None).unwrap();
            let losses: Vec<f64> = history.epochs.iter().map(|r| r.train_loss).collect();
            (losses, model)
        })
    };
    let reference = run(1, false);
    assert_eq!(run(2, true), reference);
    assert_eq!(run(2, false), reference);
    assert_eq!(run(1, true), reference);
}

#[test]
fn the_tape_is_cleared_not_regrown() {
    let data = disc(64, 11);
    let mut model = disc_model(0);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
    trainer.fit(&mut model, &data, None).unwrap();
    let one_step = trainer.tape_len();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 8,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
    trainer.fit(&mut model, &data, None).unwrap();
    // 40 steps leave one step's nodes: x, 4 parameters, 2 linear layers, tanh, labels, loss.
    assert_eq!(trainer.tape_len(), one_step);
    assert_eq!(one_step, 10);
}

#[test]
fn bad_configurations_are_refused_before_training() {
    let data = disc(10, 12);
    let mut model = disc_model(0);
    let fit = |config: TrainConfig, model: &mut Mlp<f32>| {
        Trainer::new(config, Adam::new(0.01).unwrap())
            .fit(model, &data, None)
            .unwrap_err()
            .to_string()
    };
    let zero = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    assert!(fit(zero, &mut model).contains("batch size"));
    let mse = TrainConfig {
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    assert!(fit(mse, &mut model).contains("regression targets"));
    let wrong_width = Mlp::<f32>::builder(&[3, 2]).build().unwrap();
    let err = Trainer::new(TrainConfig::default(), Adam::new(0.01).unwrap())
        .fit(&mut wrong_width.clone(), &data, None)
        .unwrap_err();
    assert!(matches!(err, Error::Engine(_)), "{err}");
}

/// A model that records a parameter it does not list.
struct Sneaky(Linear<f32>);

impl Module<f32> for Sneaky {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        let extra = tape.parameter(array![1.0f32])?;
        let y = self.0.forward(tape, params, x)?;
        Ok(tape.mul(y, extra)?)
    }
    fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.0.parameters()
    }
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        self.0.parameters_mut()
    }
}

#[test]
fn a_model_breaking_the_parameter_contract_is_refused() {
    let data = disc(10, 13);
    let mut rng = wengert_train::Rng::seed_from_u64(0);
    let mut model =
        Sneaky(Linear::new(2, 2, wengert_train::Init::GlorotUniform, &mut rng).unwrap());
    let err = Trainer::new(TrainConfig::default(), Adam::new(0.01).unwrap())
        .fit(&mut model, &data, None)
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    assert!(err.to_string().contains("3 parameters"), "{err}");
}

/// A model that lists a parameter its forward pass never takes.
struct Forgetful(Linear<f32>, ndarray::Array1<f32>);

impl Module<f32> for Forgetful {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert_train::Result<NodeId> {
        self.0.forward(tape, params, x)
    }
    fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
        let mut p = self.0.parameters();
        p.push(self.1.view().into_dyn());
        p
    }
    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        let mut p = self.0.parameters_mut();
        p.push(self.1.view_mut().into_dyn());
        p
    }
}

#[test]
fn a_model_that_leaves_a_parameter_untaken_is_refused() {
    let data = disc(10, 13);
    let mut rng = wengert_train::Rng::seed_from_u64(0);
    let linear = Linear::new(2, 2, wengert_train::Init::GlorotUniform, &mut rng).unwrap();
    let mut model = Forgetful(linear, array![1.0f32]);
    let err = Trainer::new(TrainConfig::default(), Adam::new(0.01).unwrap())
        .fit(&mut model, &data, None)
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    assert!(
        err.to_string()
            .contains("took 2 parameters but the model lists 3"),
        "{err}"
    );
}

#[test]
fn the_model_holds_the_trained_weights_and_apply_runs_it_outside_the_trainer() {
    let data = disc(64, 21);
    let mut model = disc_model(4);
    let before = model.clone();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 16,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
    trainer.fit(&mut model, &data, None).unwrap();
    assert_ne!(model, before, "training wrote the weights back");

    // The same logits through `predict` (the trainer's tape) and `apply` (a tape of one's own).
    let predicted = trainer.predict(&model, data.features()).unwrap();
    let mut tape = Tape::new();
    let x = tape.input(data.features().to_owned()).unwrap();
    let y = model.apply(&mut tape, x).unwrap();
    assert_eq!(tape.data(y).unwrap(), predicted.as_slice().unwrap());
    assert_eq!(tape.parameters().count(), 4);
}

#[test]
fn an_adam_update_outside_a_step_is_an_error_not_nan() {
    use wengert_train::{Adam, Optimizer};
    let mut a = Adam::<f64>::new(0.1).unwrap();
    let mut p = ndarray::array![1.0, 2.0].into_dyn();
    a.step(
        &mut [p.view_mut()],
        &[ndarray::array![0.0, -1.0].into_dyn()],
    )
    .unwrap();
    // A fresh optimiser, and one that loaded a saved state, have no step in progress.
    for mut b in [Adam::<f64>::new(0.1).unwrap(), {
        let mut b = Adam::<f64>::new(0.1).unwrap();
        b.load_state(&a.state()).unwrap();
        b
    }] {
        let mut q = [1.0, 2.0];
        assert!(b.update(0, &mut q, &[0.5, 0.5]).is_err());
        assert_eq!(q, [1.0, 2.0], "nothing is written");
    }
}
