//! Optimisers whose update folds into the sweep's products (plain SGD, with or without weight
//! decay): `backward_step` takes the step `backward` and `step_tape` take, to rounding, and
//! bit for bit when nothing folds (momentum, Adam); the trainer folds where it can and takes
//! the same steps as its unfolded path.

use std::cell::RefCell;
use std::rc::Rc;

use ndarray::{Array2, array};
use wengert_ops::{Float, FoldedUpdate, Shape};
use wengert_tape::{Graph, NodeId, Tape};
use wengert_train::{
    Adam, Linear, Loss, Mlp, Optimizer, OptimizerState, Rng, Sgd, TrainConfig, Trainer,
};

use crate::disc;

/// A two-layer network on a tape, parameters recorded first: `w1, b1, w2, b2`.
struct Net {
    tape: Tape<f64>,
    params: [NodeId; 4],
    mark: wengert_tape::Mark,
    x: Array2<f64>,
    labels: Vec<usize>,
}

impl Net {
    fn new() -> Net {
        let mut rng = Rng::seed_from_u64(23);
        let mut array = |rows, cols| Array2::from_shape_fn((rows, cols), |_| rng.normal() * 0.5);
        let (w1, b1, w2, b2) = (array(5, 8), array(1, 8), array(8, 3), array(1, 3));
        let x = array(16, 5);
        let mut tape = Tape::new();
        let w1 = tape.parameter(w1).unwrap();
        let b1 = tape
            .parameter(b1.into_shape_with_order(8).unwrap())
            .unwrap();
        let w2 = tape.parameter(w2).unwrap();
        let b2 = tape
            .parameter(b2.into_shape_with_order(3).unwrap())
            .unwrap();
        let mark = tape.mark();
        let labels = (0..16).map(|i| i % 3).collect();
        Net {
            tape,
            params: [w1, b1, w2, b2],
            mark,
            x,
            labels,
        }
    }

    fn record(&mut self) -> NodeId {
        let [w1, b1, w2, b2] = self.params;
        let t = &mut self.tape;
        t.rewind(self.mark).unwrap();
        let x = t.input(&self.x).unwrap();
        let h = t.linear(x, w1, b1).unwrap();
        let h = t.relu(h).unwrap();
        let logits = t.linear(h, w2, b2).unwrap();
        let y = t.labels(&self.labels).unwrap();
        t.cross_entropy(logits, y).unwrap()
    }

    fn values(&self) -> Vec<f64> {
        (self.params.iter())
            .flat_map(|&p| self.tape.data(p).unwrap().to_vec())
            .collect()
    }
}

/// Five steps with `opt`, by `backward_step` or by `backward` and `step_tape`.
fn train(mut opt: impl Optimizer<f64>, folding: bool) -> Vec<f64> {
    let mut net = Net::new();
    for _ in 0..5 {
        let loss = net.record();
        if folding {
            opt.backward_step(&mut net.tape, loss).unwrap();
        } else {
            net.tape.backward(loss).unwrap();
            opt.step_tape(&mut net.tape).unwrap();
        }
    }
    net.values()
}

#[test]
fn backward_step_takes_the_step_of_backward_and_step_tape() {
    let plain = || Sgd::<f64>::new(0.1).unwrap();
    let decay = || Sgd::<f64>::builder(0.1).weight_decay(0.01).build().unwrap();
    for (name, folded, unfolded) in [
        ("sgd", train(plain(), true), train(plain(), false)),
        ("decay", train(decay(), true), train(decay(), false)),
    ] {
        for (a, b) in folded.iter().zip(&unfolded) {
            assert!(
                (a - b).abs() <= 1e-14 * a.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
        assert_ne!(
            folded,
            Net::new().values(),
            "{name}: the steps moved the parameters"
        );
    }
    // Nothing folds with momentum or Adam: the very same bits.
    let momentum = || Sgd::<f64>::builder(0.1).momentum(0.9).build().unwrap();
    assert_eq!(train(momentum(), true), train(momentum(), false));
    let adam = || Adam::<f64>::new(0.01).unwrap();
    assert_eq!(train(adam(), true), train(adam(), false));
}

#[test]
fn plain_sgd_folds_the_weights_and_leaves_the_biases() {
    let sgd = Sgd::<f64>::builder(0.1).weight_decay(0.01).build().unwrap();
    assert_eq!(
        Optimizer::<f64>::folded_update(&sgd, 0),
        Some(FoldedUpdate {
            keep: 1.0 - 0.1 * 0.01,
            step: -0.1
        })
    );
    let mut counting = Counting::new(sgd);
    let mut net = Net::new();
    for _ in 0..3 {
        let loss = net.record();
        counting.backward_step(&mut net.tape, loss).unwrap();
    }
    // w1 and w2 (positions 0 and 2) folded into their products; the biases were updated.
    assert_eq!(*counting.updated.borrow(), [1, 3, 1, 3, 1, 3]);
    let momentum = Sgd::<f64>::builder(0.1).momentum(0.9).build().unwrap();
    assert_eq!(Optimizer::<f64>::folded_update(&momentum, 0), None);
}

#[test]
fn a_decay_the_element_type_cannot_keep_is_not_folded() {
    let decayed = |lr: f64, wd: f64| Sgd::<f32>::builder(lr).weight_decay(wd).build().unwrap();
    // 1 - 1e-3 is an f32 to 3e-5 relative of its decay: folded.
    let kept = Optimizer::<f32>::folded_update(&decayed(0.1, 0.01), 0).unwrap();
    assert!(
        ((1.0 - f64::from(kept.keep)) / 1e-3 - 1.0).abs() < 1e-3,
        "{kept:?}"
    );
    // 1 - 1e-7 is 1 - 1.19e-7 in f32, and 1 - 1e-8 is 1: left to the update.
    assert_eq!(
        Optimizer::<f32>::folded_update(&decayed(1e-3, 1e-4), 0),
        None
    );
    assert_eq!(
        Optimizer::<f32>::folded_update(&decayed(1e-4, 1e-4), 0),
        None
    );
    // f64 holds it: folded.
    let f64_sgd = Sgd::<f64>::builder(1e-4)
        .weight_decay(1e-4)
        .build()
        .unwrap();
    assert!(Optimizer::<f64>::folded_update(&f64_sgd, 0).is_some());
    // No decay: always folded, keep exactly 1.
    let plain = Optimizer::<f32>::folded_update(&decayed(1e-4, 0.0), 0).unwrap();
    assert_eq!(plain, FoldedUpdate::sgd(1e-4));
}

#[test]
fn a_loss_that_cannot_be_swept_leaves_the_optimiser_and_the_parameters_as_they_were() {
    let mut net = Net::new();
    let before = net.values();
    net.record();
    let not_a_loss = net.tape.input(array![1.0, 2.0]).unwrap();
    let mut adam = Adam::<f64>::new(0.01).unwrap();
    let err = adam.backward_step(&mut net.tape, not_a_loss).unwrap_err();
    assert!(err.to_string().contains("exactly one element"), "{err}");
    assert_eq!(adam.state().step, 0);
    assert_eq!(net.values(), before);
}

#[test]
fn backward_step_graph_trains_through_the_handles() {
    let g = Graph::<f64>::new();
    let w = g.parameter(array![[1.0], [-2.0]]).unwrap();
    let mark = g.mark().unwrap();
    let mut sgd = Sgd::new(0.1).unwrap();
    for _ in 0..200 {
        g.rewind(mark).unwrap();
        let x = g.input(array![[1.0, 0.0], [0.0, 1.0]]).unwrap();
        let y = x.matmul(&w).unwrap();
        let loss = y.mul(&y).unwrap().sum().unwrap();
        sgd.backward_step_graph(&loss).unwrap();
    }
    assert!(w.value().unwrap().iter().all(|v| v.abs() < 1e-9));
}

/// Trains the disc problem for two epochs with `sgd`, clipping at a norm no gradient reaches
/// (the unfolded path) or not at all (the folded one); returns the weights and the positions
/// of the parameters the trainer asked the optimiser to update, each once.
fn disc_weights(clip: Option<f64>) -> (Vec<f32>, Vec<usize>) {
    let mut model: Mlp<f32> = Mlp::builder(&[2, 16, 2]).seed(5).build().unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 20,
        loss: Loss::CrossEntropy,
        clip_grad_norm: clip,
        ..TrainConfig::default()
    };
    let counting = Counting::new(Sgd::new(0.05).unwrap());
    let updated = Rc::clone(&counting.updated);
    let mut trainer = Trainer::new(config, counting);
    trainer.fit(&mut model, &disc(200, 1), None).unwrap();
    let weights = (model.layers.iter())
        .flat_map(|l: &Linear<f32>| l.weight.iter().chain(&l.bias).copied().collect::<Vec<_>>())
        .collect();
    let mut updated = updated.take();
    updated.sort_unstable();
    updated.dedup();
    (weights, updated)
}

#[test]
fn the_trainer_takes_the_same_steps_folded_as_unfolded() {
    let (folded, biases) = disc_weights(None);
    let (unfolded, all) = disc_weights(Some(1e30));
    // Without clipping the weights' steps were taken in the sweep.
    assert_eq!((biases, all), (vec![1, 3], vec![0, 1, 2, 3]));
    for (a, b) in folded.iter().zip(&unfolded) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
    let clipped = disc_weights(Some(1e-3)).0;
    assert_ne!(folded, clipped, "clipping changes the steps");
}

/// An optimiser that notes which parameters it was asked to update.
struct Counting<O> {
    inner: O,
    updated: Rc<RefCell<Vec<usize>>>,
}

impl<O> Counting<O> {
    fn new(inner: O) -> Self {
        Counting {
            inner,
            updated: Rc::default(),
        }
    }
}

impl<E: Float, O: Optimizer<E>> Optimizer<E> for Counting<O> {
    fn begin_step(&mut self, lr: f64, shapes: &[Shape]) -> wengert_train::Result<()> {
        self.inner.begin_step(lr, shapes)
    }

    fn update(&mut self, index: usize, param: &mut [E], grad: &[E]) -> wengert_train::Result<()> {
        self.updated.borrow_mut().push(index);
        self.inner.update(index, param, grad)
    }

    fn folded_update(&self, index: usize) -> Option<FoldedUpdate<E>> {
        self.inner.folded_update(index)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn name(&self) -> &'static str {
        "counting"
    }

    fn state(&self) -> OptimizerState<E> {
        self.inner.state()
    }

    fn load_state(&mut self, state: &OptimizerState<E>) -> wengert_train::Result<()> {
        self.inner.load_state(state)
    }
}
