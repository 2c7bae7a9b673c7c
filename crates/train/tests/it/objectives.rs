//! The trainer's objective and rate as a user writes them: a loss closure (an L1 penalty, the
//! built-in expressions by hand), a schedule as a function of the step, and reduce-on-plateau
//! driven by the validation loss.

use std::cell::RefCell;

use ndarray::Array2;
use wengert_io::{Checkpoint, LoadOptions};
use wengert_ops::Shape;
use wengert_tape::{NodeId, Tape};
use wengert_train::{
    Adam, Batch, Control, Dataset, Error, Every, History, Init, Linear, Loss, Mlp, Module,
    Optimizer, OptimizerState, PlateauState, ReduceOnPlateau, Rng, Schedule, Sgd, StopReason,
    TrainConfig, TrainState, Trainer,
};

use crate::accumulate::SharedReducer;
use crate::{disc, plane};

fn bits<E: wengert_ops::Float, M: Module<E>>(m: &M) -> Vec<u64> {
    m.parameters()
        .iter()
        .flatten()
        .map(|x| wengert_ops::Float::to_f64(*x).to_bits())
        .collect()
}

fn timeless(mut h: History) -> History {
    for r in &mut h.epochs {
        r.seconds = 0.0;
    }
    h
}

/// `λ·Σ|p|` over every parameter, added to `loss`.
fn add_l1<E: wengert_ops::Float>(
    tape: &mut Tape<E>,
    mut loss: NodeId,
    batch: &Batch<'_>,
    lambda: f64,
) -> wengert_train::Result<NodeId> {
    for &p in batch.parameters() {
        let a = tape.abs(p)?;
        let s = tape.sum(a)?;
        let penalty = tape.mul_scalar(s, E::from_f64(lambda))?;
        loss = tape.add(loss, penalty)?;
    }
    Ok(loss)
}

/// Mean squared error plus `λ·Σ|p|`.
fn mse_l1(
    lambda: f64,
) -> impl FnMut(&mut Tape<f64>, NodeId, &Batch<'_>) -> wengert_train::Result<NodeId> {
    move |tape, output, batch| {
        let mse = tape.mse(output, batch.target())?;
        add_l1(tape, mse, batch, lambda)
    }
}

/// `y = 2·x₀ - 3·x₁` plus noise, over 10 features of which the other 8 do not matter.
fn two_of_ten(n: usize) -> Dataset<f64> {
    let mut rng = Rng::seed_from_u64(4);
    let x = Array2::from_shape_fn((n, 10), |_| rng.normal());
    let y = Array2::from_shape_fn((n, 1), |(i, _)| {
        2.0 * x[[i, 0]] - 3.0 * x[[i, 1]] + 0.5 * rng.normal()
    });
    Dataset::regression(x, y).unwrap()
}

fn linear(inputs: usize, init: Init) -> Linear<f64> {
    Linear::new(inputs, 1, init, &mut Rng::seed_from_u64(1)).unwrap()
}

#[test]
fn an_l1_penalty_makes_a_regression_sparser_than_without() {
    let data = two_of_ten(40);
    let config = TrainConfig {
        epochs: 150,
        batch_size: 40,
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    let fit = |penalty: Option<f64>| {
        let mut model = linear(10, Init::Zeros);
        let trainer = Trainer::new(config.clone(), Sgd::new(0.05).unwrap());
        let mut trainer = match penalty {
            Some(lambda) => trainer.with_loss_fn(mse_l1(lambda)),
            None => trainer,
        };
        trainer.fit(&mut model, &data, None).unwrap();
        model.weight.column(0).to_vec()
    };
    let (plain, penalised) = (fit(None), fit(Some(0.2)));
    let small = |w: &[f64]| w[2..].iter().filter(|x| x.abs() < 0.02).count();
    let l1 = |w: &[f64]| w[2..].iter().map(|x| x.abs()).sum::<f64>();
    // The eight weights that should be 0: most near it with the penalty, none without.
    assert!(small(&penalised) >= 6, "{penalised:?}");
    assert!(
        small(&penalised) > small(&plain),
        "{plain:?} vs {penalised:?}"
    );
    assert!(
        l1(&penalised) < l1(&plain) / 3.0,
        "{plain:?} vs {penalised:?}"
    );
    // The two that matter survive, shrunk towards 0 by about λ.
    assert!(penalised[0] > 1.5 && penalised[1] < -2.5, "{penalised:?}");
    assert!(penalised[0] < plain[0] && penalised[1] > plain[1]);
}

#[test]
fn the_penalty_adds_lambda_times_the_sign_to_the_gradient() {
    // One plain SGD step at rate 1, with and without the penalty: the difference of the
    // weights is the penalty's gradient, λ·sign(w) (0 at 0, as PyTorch's: the bias here).
    let data = plane(12, 3);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 12,
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    let lambda = 0.25;
    let start = linear(2, Init::GlorotUniform);
    let step = |penalty: bool| {
        let mut model = start.clone();
        let trainer = Trainer::new(config.clone(), Sgd::new(1.0).unwrap());
        let mut trainer = if penalty {
            trainer.with_loss_fn(mse_l1(lambda))
        } else {
            trainer
        };
        trainer.fit(&mut model, &data, None).unwrap();
        model
    };
    let (plain, penalised) = (step(false), step(true));
    let before = start.parameters();
    for ((w0, a), b) in before
        .iter()
        .flatten()
        .zip(plain.parameters().iter().flatten())
        .zip(penalised.parameters().iter().flatten())
    {
        let hand = lambda * w0.signum() * f64::from(u8::from(*w0 != 0.0));
        assert!((a - b - hand).abs() < 1e-14, "w {w0}: {a} - {b} vs {hand}");
    }
    assert!(start.bias.iter().all(|&b| b == 0.0));
}

/// A built-in loss and a closure recording the same expression, trained the same way.
fn same_run<E: wengert_ops::Float>(
    data: &Dataset<E>,
    valid: &Dataset<E>,
    config: &TrainConfig,
    sizes: &[usize],
    closure: fn(&mut Tape<E>, NodeId, &Batch<'_>) -> wengert_train::Result<NodeId>,
) {
    let run = |custom: bool| {
        let mut model = Mlp::<E>::builder(sizes).seed(5).build().unwrap();
        let trainer = Trainer::new(config.clone(), Adam::new(0.02).unwrap());
        let mut trainer = if custom {
            trainer.with_loss_fn(closure)
        } else {
            trainer
        };
        let history = trainer.fit(&mut model, data, Some(valid)).unwrap();
        let evaluation = trainer.evaluate(&model, valid).unwrap();
        (bits(&model), timeless(history), evaluation)
    };
    let (builtin, by_closure) = (run(false), run(true));
    assert!(builtin.1.epochs.iter().all(|r| r.val_loss.is_some()));
    assert_eq!(builtin, by_closure, "{config:?}");
}

#[test]
fn a_closure_of_the_builtin_expression_trains_to_the_same_bits() {
    let ce = |tape: &mut Tape<f32>, out: NodeId, batch: &Batch<'_>| -> wengert_train::Result<_> {
        Ok(tape.cross_entropy(out, batch.target())?)
    };
    let mse = |tape: &mut Tape<f64>, out: NodeId, batch: &Batch<'_>| -> wengert_train::Result<_> {
        Ok(tape.mse(out, batch.target())?)
    };
    let (train, valid) = (disc(60, 1), disc(30, 2));
    let (xtrain, xvalid) = (plane(50, 3), plane(20, 4));
    for accumulate in [1, 4] {
        // Evaluation in chunks of 7: a closure's chunks average as the built-in's.
        let config = TrainConfig {
            epochs: 3,
            batch_size: 8,
            accumulate,
            eval_batch_size: 7,
            ..TrainConfig::default()
        };
        same_run(&train, &valid, &config, &[2, 6, 2], ce);
        let config = TrainConfig {
            loss: Loss::Mse,
            ..config
        };
        same_run(&xtrain, &xvalid, &config, &[2, 6, 1], mse);
    }
}

/// Cross-entropy plus an L1 penalty of 1e-3.
fn ce_l1(tape: &mut Tape<f32>, out: NodeId, batch: &Batch<'_>) -> wengert_train::Result<NodeId> {
    let ce = tape.cross_entropy(out, batch.target())?;
    add_l1(tape, ce, batch, 1e-3)
}

#[test]
fn ranks_sharing_a_closure_losss_steps_match_one_process_bit_for_bit() {
    let (train, valid) = (disc(90, 7), disc(30, 8));
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        accumulate: 4,
        ..TrainConfig::default()
    };
    let model = || Mlp::<f32>::builder(&[2, 8, 2]).seed(2).build().unwrap();
    let mut reference = model();
    let history = Trainer::new(config.clone(), Adam::new(0.01).unwrap())
        .with_loss_fn(ce_l1)
        .fit(&mut reference, &train, Some(&valid))
        .unwrap();
    let ranks: Vec<(Mlp<f32>, History)> = std::thread::scope(|scope| {
        let handles: Vec<_> = SharedReducer::group(2)
            .into_iter()
            .map(|reducer| {
                let (config, train, valid) = (config.clone(), &train, &valid);
                scope.spawn(move || {
                    let mut m = model();
                    let h = Trainer::new(config, Adam::new(0.01).unwrap())
                        .with_reducer(reducer)
                        .with_loss_fn(ce_l1)
                        .fit(&mut m, train, Some(valid))
                        .unwrap();
                    (m, h)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, (m, h)) in ranks.into_iter().enumerate() {
        assert_eq!(bits(&m), bits(&reference), "rank {rank}");
        assert_eq!(timeless(h), timeless(history.clone()), "rank {rank}");
    }
}

#[test]
fn a_closure_losss_run_resumes_bit_for_bit_and_only_with_a_closure() {
    let (train, valid) = (disc(45, 5), disc(20, 6));
    let config = TrainConfig {
        epochs: 4,
        batch_size: 7,
        ..TrainConfig::default()
    };
    let model = || Mlp::<f32>::builder(&[2, 6, 2]).seed(3).build().unwrap();
    let mut straight = model();
    let history = Trainer::new(config.clone(), Adam::new(0.02).unwrap())
        .with_loss_fn(ce_l1)
        .fit(&mut straight, &train, Some(&valid))
        .unwrap();

    let mut saved = None;
    let mut first = Trainer::new(config.clone(), Adam::new(0.02).unwrap()).with_loss_fn(ce_l1);
    first.checkpoint_every(Every::Steps(10), |s: &TrainState<f32>| {
        saved = Some(s.to_checkpoint().to_bytes());
        Ok(Control::Stop)
    });
    let paused = first.fit(&mut model(), &train, Some(&valid)).unwrap();
    drop(first);
    assert_eq!(paused.stop_reason, StopReason::Paused);
    let state = || {
        let c = Checkpoint::from_bytes(saved.as_ref().unwrap(), &LoadOptions::default()).unwrap();
        TrainState::<f32>::from_checkpoint(&c).unwrap()
    };
    assert_eq!(state().loss, "custom");

    // Without the closure, the run is refused, saying why; with it, it ends bit for bit.
    let mut m = model();
    let err = Trainer::new(config.clone(), Adam::new(0.02).unwrap())
        .resume(&mut m, &train, Some(&valid), state())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("the custom loss, this trainer the cross_entropy loss")
            && message.contains("with_loss_fn"),
        "{message}"
    );
    let resumed = Trainer::new(config.clone(), Adam::new(0.02).unwrap())
        .with_loss_fn(ce_l1)
        .resume(&mut m, &train, Some(&valid), state())
        .unwrap();
    assert_eq!(bits(&m), bits(&straight));
    assert_eq!(timeless(resumed), timeless(history));

    // And the reverse: a built-in loss's state is not continued by a closure.
    let mut s = state();
    s.loss = "cross_entropy".into();
    let err = Trainer::new(config, Adam::new(0.02).unwrap())
        .with_loss_fn(ce_l1)
        .resume(&mut model(), &train, Some(&valid), s)
        .unwrap_err();
    assert!(
        err.to_string().contains("this trainer the custom loss"),
        "{err}"
    );
}

#[test]
fn a_closure_loss_on_regression_targets_needs_no_regression_loss_configured() {
    // The configured loss (cross-entropy by default) does not apply: the targets are the
    // data's, and a validation set must hold the same kind.
    let data = plane(20, 1);
    let mut model = Mlp::<f64>::builder(&[2, 1]).seed(0).build().unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 5,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Sgd::new(0.1).unwrap()).with_loss_fn(mse_l1(0.0));
    let history = trainer.fit(&mut model, &data, None).unwrap();
    assert_eq!(history.last().unwrap().train_accuracy, None);
    let labels = Dataset::classification(Array2::zeros((3, 2)), vec![0, 1, 0], 2).unwrap();
    let err = trainer.fit(&mut model, &data, Some(&labels)).unwrap_err();
    assert!(
        err.to_string()
            .contains("training set has regression targets, the validation set class labels"),
        "{err}"
    );
}

/// An SGD that notes the rate of every step.
struct Noting<'r> {
    inner: Sgd<f64>,
    rates: &'r RefCell<Vec<f64>>,
}

impl Optimizer<f64> for Noting<'_> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> wengert_train::Result<()> {
        self.rates.borrow_mut().push(lr);
        self.inner.begin_step(lr, shapes)
    }

    fn update(
        &mut self,
        index: usize,
        param: &mut [f64],
        grad: &[f64],
    ) -> wengert_train::Result<()> {
        self.inner.update(index, param, grad)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn state(&self) -> OptimizerState<f64> {
        self.inner.state()
    }

    fn load_state(&mut self, state: &OptimizerState<f64>) -> wengert_train::Result<()> {
        self.inner.load_state(state)
    }
}

/// The rates the optimiser was handed over a run of `epochs` epochs of 3 steps (9 examples in
/// batches of 3, so that step `s` is in epoch `s / 3`).
fn rates_of(schedule: Schedule, epochs: usize) -> wengert_train::Result<Vec<f64>> {
    let rates = RefCell::new(Vec::new());
    let data = plane(9, 2);
    let config = TrainConfig {
        epochs,
        batch_size: 3,
        loss: Loss::Mse,
        schedule,
        ..TrainConfig::default()
    };
    let mut model = Mlp::<f64>::builder(&[2, 1]).seed(0).build()?;
    let optimizer = Noting {
        inner: Sgd::new(0.1)?,
        rates: &rates,
    };
    Trainer::new(config, optimizer).fit(&mut model, &data, None)?;
    Ok(rates.into_inner())
}

#[test]
fn a_step_function_schedule_sets_the_optimisers_rate_every_step() {
    let step_function = Schedule::per_step(|step| match step {
        0..=3 => 1.0,
        4..=6 => 0.5,
        _ => 0.125,
    });
    let got = rates_of(step_function, 3).unwrap();
    assert_eq!(got, [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.0125, 0.0125]);
    // Of the epoch and the step: 1/(epoch + 1), minus a tenth per step within the epoch.
    let both = Schedule::lambda(|epoch, step| 1.0 / (epoch + 1) as f64 - 0.1 * (step % 3) as f64);
    let got = rates_of(both, 2).unwrap();
    let want: Vec<f64> = (0..6)
        .map(|s| 0.1 * (1.0 / (s / 3 + 1) as f64 - 0.1 * (s % 3) as f64))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_schedule_that_gives_a_rate_no_optimiser_takes_is_refused_naming_the_step() {
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        let schedule = Schedule::per_step(move |step| if step == 4 { bad } else { 1.0 });
        let err = rates_of(schedule, 3).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("rate {} for step 5 (epoch 2)", 0.1 * bad)),
            "{err}"
        );
    }
}

/// The rates a [`ReduceOnPlateau`] gives epoch after epoch for `losses`, from `lr`.
fn replayed(plateau: &ReduceOnPlateau, losses: &[f64], mut lr: f64) -> Vec<f64> {
    let mut state = PlateauState::default();
    let mut rates = vec![lr];
    for &loss in &losses[..losses.len() - 1] {
        lr = plateau.end_epoch(&mut state, loss, lr);
        rates.push(lr);
    }
    rates
}

#[test]
fn reduce_on_plateau_follows_the_validation_loss() {
    // A validation set of other points with their labels flipped: as the model learns the
    // training set, its validation loss stops improving while the training loss still does.
    let train = disc(80, 1);
    let flipped = disc(40, 2);
    let labels: Vec<usize> = flipped.labels().unwrap().iter().map(|l| 1 - l).collect();
    let valid = Dataset::classification(flipped.features().to_owned(), labels, 2).unwrap();
    let plateau = ReduceOnPlateau {
        factor: 0.5,
        patience: 1,
        cooldown: 1,
        min_lr: 0.004,
        ..ReduceOnPlateau::default()
    };
    let config = TrainConfig {
        epochs: 16,
        batch_size: 16,
        plateau: Some(plateau),
        ..TrainConfig::default()
    };
    let mut model = Mlp::<f32>::builder(&[2, 16, 2]).seed(0).build().unwrap();
    let history = Trainer::new(config, Adam::new(0.03).unwrap())
        .fit(&mut model, &train, Some(&valid))
        .unwrap();
    let rates: Vec<f64> = history.epochs.iter().map(|r| r.learning_rate).collect();
    let val: Vec<f64> = history.epochs.iter().map(|r| r.val_loss.unwrap()).collect();
    let train_losses: Vec<f64> = history.epochs.iter().map(|r| r.train_loss).collect();
    // Each epoch ran at the rate the rule gives for the validation losses before it.
    assert_eq!(rates, replayed(&plateau, &val, 0.03), "val {val:?}");
    // It lowered the rate down to the minimum, and the training loss alone would not have.
    assert_eq!(*rates.last().unwrap(), 0.004, "{rates:?}");
    assert_ne!(rates, replayed(&plateau, &train_losses, 0.03));
}

#[test]
fn without_a_validation_set_the_plateau_follows_the_training_loss() {
    // At a rate of 1e-9 nothing improves by the threshold: every epoch after the first is
    // bad. Patience 2, cooldown 1: lowered after epochs 4 and 8, then held at the minimum.
    let plateau = ReduceOnPlateau {
        factor: 0.5,
        patience: 2,
        cooldown: 1,
        min_lr: 0.25e-9,
        // PyTorch's default eps (1e-8) would skip every reduction of a rate this small.
        eps: 0.0,
        ..ReduceOnPlateau::default()
    };
    let config = TrainConfig {
        epochs: 13,
        batch_size: 16,
        plateau: Some(plateau),
        ..TrainConfig::default()
    };
    let mut model = Mlp::<f32>::builder(&[2, 4, 2]).seed(0).build().unwrap();
    let history = Trainer::new(config, Sgd::new(1e-9).unwrap())
        .fit(&mut model, &disc(32, 3), None)
        .unwrap();
    let rates: Vec<f64> = history.epochs.iter().map(|r| r.learning_rate).collect();
    let (a, b, c) = (1e-9, 1e-9 * 0.5, 1e-9 * 0.5 * 0.5);
    assert_eq!(rates, [a, a, a, a, b, b, b, b, c, c, c, c, c]);
}

#[test]
fn a_plateau_setting_that_cannot_work_is_refused_before_training() {
    let config = TrainConfig {
        plateau: Some(ReduceOnPlateau {
            factor: 2.0,
            ..ReduceOnPlateau::default()
        }),
        ..TrainConfig::default()
    };
    let mut model = Mlp::<f32>::builder(&[2, 2]).build().unwrap();
    let before = model.clone();
    let err = Trainer::new(config, Sgd::new(0.1).unwrap())
        .fit(&mut model, &disc(8, 0), None)
        .unwrap_err();
    assert!(err.to_string().contains("factor must be"), "{err}");
    assert_eq!(model, before);
}

#[test]
fn a_state_of_the_first_layout_reads_with_no_loss_name_and_a_fresh_plateau() {
    let mut saved = None;
    let mut trainer = Trainer::new(
        TrainConfig {
            epochs: 2,
            batch_size: 4,
            ..TrainConfig::default()
        },
        Sgd::new(0.1).unwrap(),
    );
    trainer.checkpoint_every(Every::Epochs(1), |s: &TrainState<f32>| {
        saved = Some(s.to_checkpoint());
        Ok(Control::Stop)
    });
    trainer
        .fit(
            &mut Mlp::builder(&[2, 2]).build().unwrap(),
            &disc(8, 0),
            None,
        )
        .unwrap();
    drop(trainer);
    let mut c: Checkpoint<f32> = saved.unwrap();
    assert_eq!(
        TrainState::from_checkpoint(&c).unwrap().loss,
        "cross_entropy"
    );
    c.scalars
        .insert("train.layout".into(), wengert_io::Scalar::U64(1));
    c.scalars
        .retain(|k, _| !k.starts_with("train.plateau.") && k != "train.loss");
    let s = TrainState::from_checkpoint(&c).unwrap();
    assert_eq!((s.loss.as_str(), s.plateau), ("", PlateauState::default()));
    c.scalars
        .insert("train.layout".into(), wengert_io::Scalar::U64(3));
    let err = TrainState::from_checkpoint(&c).unwrap_err();
    assert!(
        err.to_string().contains("layout 3 is not supported"),
        "{err}"
    );
}

#[test]
fn a_closure_whose_loss_does_not_reach_the_parameters_is_refused() {
    let data = plane(8, 0);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 4,
        ..TrainConfig::default()
    };
    let mut model = Mlp::<f64>::builder(&[2, 1]).seed(0).build().unwrap();
    let before = model.clone();
    let err = Trainer::new(config, Sgd::new(0.1).unwrap())
        .with_loss_fn(|tape: &mut Tape<f64>, _out: NodeId, batch: &Batch<'_>| {
            Ok(tape.mean(batch.target())?)
        })
        .fit(&mut model, &data, None)
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    assert!(err.to_string().contains("depends on no parameter"), "{err}");
    assert_eq!(model, before);
}
