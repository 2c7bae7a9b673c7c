//! Stopping and resuming: a run paused at any step, saved to bytes, loaded into a fresh
//! trainer and a fresh model, ends bit for bit where a run that never stopped ends.

use wengert_io::{Checkpoint, LoadOptions};
use wengert_train::{
    Activation, Adam, Control, Dataset, Error, Every, History, Mlp, Module, Optimizer,
    PlateauState, ReduceOnPlateau, Sgd, StopReason, TrainConfig, TrainState, Trainer,
};

use crate::disc;

type MakeOptimizer = fn() -> Box<dyn Optimizer<f32>>;

fn model(seed: u64) -> Mlp<f32> {
    Mlp::builder(&[2, 8, 8, 2])
        .activation(Activation::Tanh)
        .seed(seed)
        .build()
        .unwrap()
}

fn bits(m: &Mlp<f32>) -> Vec<u32> {
    m.parameters()
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

/// A run on 45 examples in batches of 7 (7 batches an epoch, the last of 3), validating.
struct Setup {
    config: TrainConfig,
    train: Dataset<f32>,
    valid: Dataset<f32>,
}

impl Setup {
    fn new(epochs: usize, patience: Option<usize>) -> Self {
        Setup {
            config: TrainConfig {
                epochs,
                batch_size: 7,
                patience,
                seed: 11,
                ..TrainConfig::default()
            },
            train: disc(45, 5),
            valid: disc(60, 6),
        }
    }

    fn straight(&self, make: MakeOptimizer) -> (Mlp<f32>, History) {
        let mut m = model(3);
        let h = Trainer::new(self.config.clone(), make())
            .fit(&mut m, &self.train, Some(&self.valid))
            .unwrap();
        (m, timeless(h))
    }

    /// Runs with a hook that pauses at the first point `every` names, saves the state to
    /// bytes and drops everything; then resumes from the bytes in a fresh trainer and model,
    /// pausing again the same way, until the run ends. Returns the model, the history and
    /// how many pauses there were.
    fn in_pieces(&self, make: MakeOptimizer, every: Every) -> (Mlp<f32>, History, usize) {
        let mut saved: Option<Vec<u8>> = None;
        let mut pauses = 0;
        loop {
            // Resumed pieces start from a model of another seed: resuming must overwrite
            // every weight.
            let mut m = model(if saved.is_none() {
                3
            } else {
                100 + pauses as u64
            });
            let mut slot: Option<Vec<u8>> = None;
            let mut trainer = Trainer::new(self.config.clone(), make());
            trainer.checkpoint_every(every, |s: &TrainState<f32>| {
                slot = Some(s.to_checkpoint().to_bytes());
                Ok(Control::Stop)
            });
            let history = match saved.take() {
                None => trainer.fit(&mut m, &self.train, Some(&self.valid)),
                Some(bytes) => {
                    let ckpt = Checkpoint::from_bytes(&bytes, &LoadOptions::default()).unwrap();
                    let state = TrainState::from_checkpoint(&ckpt).unwrap();
                    trainer.resume(&mut m, &self.train, Some(&self.valid), state)
                }
            }
            .unwrap();
            drop(trainer);
            if history.stop_reason != StopReason::Paused {
                assert!(slot.is_none());
                return (m, timeless(history), pauses);
            }
            saved = Some(slot.expect("a pause hands out the state"));
            pauses += 1;
        }
    }
}

const OPTIMIZERS: [(&str, MakeOptimizer); 5] = [
    ("adam", || Box::new(Adam::new(0.02).unwrap())),
    ("momentum", || {
        Box::new(Sgd::builder(0.05).momentum(0.9).build().unwrap())
    }),
    ("nesterov", || {
        Box::new(
            Sgd::builder(0.05)
                .momentum(0.9)
                .nesterov(true)
                .weight_decay(1e-3)
                .build()
                .unwrap(),
        )
    }),
    ("sgd", || Box::new(Sgd::new(0.1).unwrap())),
    ("adamw", || Box::new(Adam::adamw(0.02).unwrap())),
];

#[test]
fn resuming_mid_epoch_is_bit_identical_for_every_optimizer() {
    let setup = Setup::new(3, None);
    for (name, make) in OPTIMIZERS {
        let (m0, h0) = setup.straight(make);
        // Step 10 is the third batch of the second epoch; then 20 and (at an epoch's end) 21... .
        let (m1, h1, pauses) = setup.in_pieces(make, Every::Steps(10));
        assert_eq!(pauses, 2, "{name}");
        assert_eq!(bits(&m1), bits(&m0), "{name}: weights differ");
        assert_eq!(h1, h0, "{name}: history differs");
        assert_eq!(h1.steps, 21);
    }
}

#[test]
fn resuming_after_every_single_step_is_bit_identical() {
    let setup = Setup::new(2, None);
    let make = OPTIMIZERS[0].1;
    let (m0, h0) = setup.straight(make);
    let (m1, h1, pauses) = setup.in_pieces(make, Every::Steps(1));
    assert_eq!(pauses, 14);
    assert_eq!((bits(&m1), h1), (bits(&m0), h0));
}

#[test]
fn resuming_through_early_stopping_is_bit_identical() {
    // Patience 1 on a small set: the run stops early and restores its best weights.
    let setup = Setup::new(40, Some(1));
    for (name, make) in &OPTIMIZERS[..2] {
        let (m0, h0) = setup.straight(*make);
        assert_eq!(h0.stop_reason, StopReason::EarlyStopping, "{name}");
        assert!(h0.epochs.len() < 40);
        for every in [Every::Epochs(1), Every::Steps(5)] {
            let (m1, h1, pauses) = setup.in_pieces(*make, every);
            assert!(pauses >= h0.epochs.len() - 1, "{name} {every:?}: {pauses}");
            assert_eq!(bits(&m1), bits(&m0), "{name} {every:?}: weights differ");
            assert_eq!(h1, h0, "{name} {every:?}");
        }
    }
}

#[test]
fn a_longer_resumed_run_matches_a_longer_straight_run() {
    // Two epochs, saved at the end; resumed with four epochs configured: as four straight.
    let short = Setup::new(2, Some(3));
    let long = Setup::new(4, Some(3));
    let make = OPTIMIZERS[1].1;
    let mut saved = None;
    let mut m = model(3);
    let mut trainer = Trainer::new(short.config.clone(), make());
    trainer.checkpoint_every(Every::Epochs(1), |s: &TrainState<f32>| {
        saved = Some(s.clone());
        Ok(Control::Continue)
    });
    let h = trainer
        .fit(&mut m, &short.train, Some(&short.valid))
        .unwrap();
    drop(trainer);
    assert_eq!(h.stop_reason, StopReason::Completed);
    let state = saved.unwrap();
    assert_eq!((state.epoch, state.history.steps), (2, 14));

    let mut resumed = model(0);
    let h1 = Trainer::new(long.config.clone(), make())
        .resume(&mut resumed, &long.train, Some(&long.valid), state)
        .unwrap();
    let (m0, h0) = long.straight(make);
    assert_eq!((bits(&resumed), timeless(h1)), (bits(&m0), h0));
}

#[test]
fn resuming_through_reduce_on_plateau_is_bit_identical() {
    // A 5% improvement to count, patience 1, cooldown 1: the rate falls several times, and
    // pauses fall between a bad epoch and the one that lowers the rate, and in cooldowns.
    let mut setup = Setup::new(12, None);
    setup.config.plateau = Some(ReduceOnPlateau {
        factor: 0.5,
        patience: 1,
        threshold: 0.05,
        cooldown: 1,
        ..ReduceOnPlateau::default()
    });
    let rates = |h: &History| h.epochs.iter().map(|r| r.learning_rate).collect::<Vec<_>>();
    for (name, make) in &OPTIMIZERS[..2] {
        let (m0, h0) = setup.straight(*make);
        let mut distinct = rates(&h0);
        distinct.dedup();
        assert!(distinct.len() >= 3, "{name}: rates {:?}", rates(&h0));
        for every in [Every::Epochs(1), Every::Steps(5)] {
            let (m1, h1, pauses) = setup.in_pieces(*make, every);
            assert!(pauses >= 11, "{name} {every:?}: {pauses}");
            assert_eq!(bits(&m1), bits(&m0), "{name} {every:?}: weights differ");
            assert_eq!(h1, h0, "{name} {every:?}");
        }
    }

    // The plateau's memory is what makes it so: resumed with it forgotten, the run differs.
    let make = OPTIMIZERS[0].1;
    let (_, h0) = setup.straight(make);
    let mut saved = None;
    let mut trainer = Trainer::new(setup.config.clone(), make());
    trainer.checkpoint_every(Every::Epochs(1), |s: &TrainState<f32>| {
        if s.plateau.bad_epochs > 0 && saved.is_none() {
            saved = Some(s.clone());
        }
        Ok(Control::Continue)
    });
    trainer
        .fit(&mut model(3), &setup.train, Some(&setup.valid))
        .unwrap();
    drop(trainer);
    let mut state = saved.expect("an epoch without improvement");
    state.plateau = PlateauState::default();
    let h1 = Trainer::new(setup.config.clone(), make())
        .resume(&mut model(0), &setup.train, Some(&setup.valid), state)
        .unwrap();
    assert_ne!(rates(&h1), rates(&h0));
}

/// The state after five steps of the usual setup, with Adam.
fn some_state() -> TrainState<f32> {
    let setup = Setup::new(3, None);
    let mut saved = None;
    let mut trainer = Trainer::new(setup.config.clone(), Adam::new(0.02).unwrap());
    trainer.checkpoint_every(Every::Steps(5), |s: &TrainState<f32>| {
        saved = Some(s.clone());
        Ok(Control::Stop)
    });
    trainer
        .fit(&mut model(3), &setup.train, Some(&setup.valid))
        .unwrap();
    drop(trainer);
    saved.unwrap()
}

#[test]
fn a_state_that_does_not_fit_is_refused_and_changes_nothing() {
    let setup = Setup::new(3, None);
    let state = some_state();
    let err =
        |config: TrainConfig, opt: Box<dyn Optimizer<f32>>, m: &mut Mlp<f32>, d: &Dataset<f32>| {
            let before = m.clone();
            let e = Trainer::new(config, opt)
                .resume(m, d, None, state.clone())
                .unwrap_err();
            assert_eq!(*m, before, "a refused resume changed the model");
            e.to_string()
        };
    let other_batch = TrainConfig {
        batch_size: 4,
        ..setup.config.clone()
    };
    let e = err(
        other_batch.clone(),
        Box::new(Adam::new(0.02).unwrap()),
        &mut model(1),
        &setup.train,
    );
    assert!(
        e.contains("5 batches of its epoch; this trainer's batches hold 4"),
        "{e}"
    );
    let e = err(
        setup.config.clone(),
        Box::new(Sgd::new(0.1).unwrap()),
        &mut model(1),
        &setup.train,
    );
    assert!(e.contains("adam's, not sgd's"), "{e}");
    let e = err(
        setup.config.clone(),
        Box::new(Adam::builder(0.02).betas(0.8, 0.999).build().unwrap()),
        &mut model(1),
        &setup.train,
    );
    assert!(e.contains("beta1 0.9, this optimiser 0.8"), "{e}");
    let e = err(
        setup.config.clone(),
        Box::new(Adam::new(0.02).unwrap()),
        &mut model(1),
        &disc(44, 5),
    );
    assert!(e.contains("45 examples, this training set has 44"), "{e}");
    let mut wide = Mlp::builder(&[2, 9, 8, 2]).build().unwrap();
    let e = err(
        setup.config.clone(),
        Box::new(Adam::new(0.02).unwrap()),
        &mut wide,
        &setup.train,
    );
    assert!(e.contains("the saved parameters have shapes"), "{e}");
}

#[test]
fn a_checkpoint_round_trips_and_a_damaged_one_names_the_entry() {
    let state = some_state();
    assert_eq!((state.epoch, state.batch, state.history.steps), (0, 5, 5));
    assert_eq!(state.optimizer.step, 5);
    let ckpt = state.to_checkpoint();
    assert_eq!(TrainState::from_checkpoint(&ckpt).unwrap(), state);

    let damaged = |f: &dyn Fn(&mut Checkpoint<f32>)| {
        let mut c = ckpt.clone();
        f(&mut c);
        match TrainState::from_checkpoint(&c) {
            Err(Error::Checkpoint(m)) => m,
            other => panic!("expected a checkpoint error, got {other:?}"),
        }
    };
    assert_eq!(
        damaged(&|c| {
            c.scalars.remove("train.epoch");
        }),
        "train.epoch is missing"
    );
    assert_eq!(
        damaged(&|c| {
            c.arrays.remove("train.optimizer.exp_avg.3");
        }),
        "train.optimizer.exp_avg.3 is missing"
    );
    assert!(
        damaged(&|c| {
            c.sections.get_mut("train.history").unwrap().push(1);
        })
        .contains("train.history")
    );
    assert!(
        damaged(&|c| {
            c.sections.get_mut("train.order").unwrap().pop();
        })
        .contains("train.order holds")
    );
    assert!(
        damaged(&|c| {
            c.arrays
                .insert("train.parameters.9".into(), ndarray::ArrayD::zeros(vec![1]));
        })
        .contains("trainer arrays")
    );
    // Entries of others are ignored.
    let mut extra = ckpt.clone();
    extra
        .scalars
        .insert("cli.settings".into(), wengert_io::Scalar::Text("{}".into()));
    assert_eq!(TrainState::from_checkpoint(&extra).unwrap(), state);
}

/// Found by a probe: the trainer used to set the optimiser's rate to the schedule's value
/// before every step and put the base rate back only on the paths it expected, so a
/// checkpoint hook's error left the optimiser at 0.05 instead of its base 0.1, and the next
/// run started from half the rate. The rate now goes into each step and the base never moves.
#[test]
fn a_fit_that_fails_in_a_checkpoint_hook_keeps_the_base_learning_rate() {
    let x = ndarray::array![[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let data = Dataset::classification(x, vec![0, 1, 1, 0], 2).unwrap();
    let config = TrainConfig {
        epochs: 4,
        batch_size: 2,
        schedule: wengert_train::Schedule::Step {
            every: 1,
            gamma: 0.5,
        },
        ..TrainConfig::default()
    };
    let mut m = model(1);
    let mut trainer = Trainer::new(config, Sgd::new(0.1).unwrap());
    trainer.checkpoint_every(Every::Epochs(2), |_: &TrainState<f32>| {
        Err(Error::InvalidConfig("disk full".into()))
    });
    let err = trainer.fit(&mut m, &data, None).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(trainer.optimizer().learning_rate(), 0.1);
}

/// A checkpoint written by the `AdamW` type that `Adam`'s decoupled decay replaced (its state's
/// kind `adamw`, settings beta1, beta2, eps and weight_decay): paused after step 4 of a 6-step
/// run of `disc(24, 9)` in batches of 8, seed 5, on a 2-3-2 network of seed 4, AdamW at 0.02
/// with decay 0.05.
const ADAMW_CHECKPOINT: &[u8] = include_bytes!("data/adamw_step4.ckpt");

/// The weights that run ended with, bit for bit, as the `AdamW` type computed them.
const ADAMW_FINAL_BITS: [u32; 17] = [
    3210645919, 3214717090, 1059037519, 3201566970, 1042732160, 3198906164, 3182864451, 3157171071,
    1028012931, 1058536647, 1043020944, 3202339108, 3215216165, 1060471140, 3209747243, 1033832642,
    3181316288,
];

#[test]
fn an_adamw_checkpoint_saved_before_adam_took_its_decay_resumes_bit_for_bit() {
    let config = TrainConfig {
        epochs: 2,
        batch_size: 8,
        seed: 5,
        ..TrainConfig::default()
    };
    let data = disc(24, 9);
    let adamw = || {
        Adam::builder(0.02)
            .decoupled_weight_decay(0.05)
            .build()
            .unwrap()
    };
    let ckpt = Checkpoint::from_bytes(ADAMW_CHECKPOINT, &LoadOptions::default()).unwrap();
    let state = TrainState::<f32>::from_checkpoint(&ckpt).unwrap();
    assert_eq!(
        (state.optimizer.kind.as_str(), state.optimizer.step),
        ("adamw", 4)
    );

    let mut model = Mlp::builder(&[2, 3, 2]).seed(40).build().unwrap();
    let history = Trainer::new(config.clone(), adamw())
        .resume(&mut model, &data, None, state.clone())
        .unwrap();
    assert_eq!(history.steps, 6);
    assert_eq!(bits(&model), ADAMW_FINAL_BITS);

    // Straight through, today's Adam with decoupled decay ends in the same place.
    let mut straight = Mlp::builder(&[2, 3, 2]).seed(4).build().unwrap();
    Trainer::new(config.clone(), adamw())
        .fit(&mut straight, &data, None)
        .unwrap();
    assert_eq!(bits(&straight), ADAMW_FINAL_BITS);

    // The state names its decay: Adam with L2 decay refuses it.
    let l2 = Adam::builder(0.02).weight_decay(0.05).build().unwrap();
    let err = Trainer::new(config, l2)
        .resume(&mut model, &data, None, state)
        .unwrap_err();
    assert!(err.to_string().contains("adamw's, not adam's"), "{err}");
}
