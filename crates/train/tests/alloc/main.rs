//! Heap allocations per training step, counted by a global allocator: once the first epoch has
//! sized every buffer, a step of the `Trainer` allocates nothing. A test binary of its own, so
//! that no other test allocates while it counts; one test function, for the same reason.

use ndarray::Array2;
use wengert_tape::{NodeId, Tape};
use wengert_testkit::alloc::allocations;
use wengert_train::{
    Adam, Batch, Callback, Control, Dataset, Loss, Mlp, Optimizer, ReduceOnPlateau, Rng, Schedule,
    Sgd, StepInfo, TrainConfig, Trainer, datasets,
};

wengert_testkit::count_allocations!();

/// Notes the allocation count after every step, into room reserved beforehand.
struct StepAllocations {
    /// `(epoch, allocations so far)` per step.
    seen: Vec<(usize, u64)>,
}

impl Callback for &mut StepAllocations {
    fn on_step(&mut self, step: &StepInfo) -> Control {
        if self.seen.len() < self.seen.capacity() {
            self.seen.push((step.epoch, allocations()));
        }
        Control::Continue
    }
}

/// A loss closure, as `Trainer::with_loss_fn` takes it.
type LossClosure = fn(&mut Tape<f32>, NodeId, &Batch<'_>) -> wengert_train::Result<NodeId>;

/// Trains `model` on `data` inside `pool` and returns the allocations of every step after the
/// first epoch that follows a step of the same epoch.
fn steady_steps<O: Optimizer<f32> + Send>(
    pool: &rayon::ThreadPool,
    config: TrainConfig,
    optimizer: O,
    model: &mut Mlp<f32>,
    data: &Dataset<f32>,
) -> Vec<u64> {
    steady_steps_with(pool, config, optimizer, None, model, data)
}

/// [`steady_steps`] with a loss closure in place of the configured loss.
fn steady_steps_with<O: Optimizer<f32> + Send>(
    pool: &rayon::ThreadPool,
    config: TrainConfig,
    optimizer: O,
    loss_fn: Option<LossClosure>,
    model: &mut Mlp<f32>,
    data: &Dataset<f32>,
) -> Vec<u64> {
    let mut counter = StepAllocations {
        seen: Vec::with_capacity(100_000),
    };
    // From outside a rayon pool, a product split across threads enters it through rayon's
    // global queue, which allocates; a training loop runs inside the pool.
    pool.install(|| {
        let mut trainer = Trainer::new(config, optimizer).with_callback(&mut counter);
        if let Some(f) = loss_fn {
            trainer = trainer.with_loss_fn(f);
        }
        trainer.fit(model, data, None).unwrap();
    });
    counter
        .seen
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[0].0 > 1)
        .map(|w| w[1].1 - w[0].1)
        .collect()
}

/// `y = x·[1, -2, 0.5, ...] + 0.3` over random inputs.
fn plane(n: usize, features: usize) -> Dataset<f32> {
    let mut rng = Rng::seed_from_u64(7);
    let x = Array2::from_shape_fn((n, features), |_| rng.normal() as f32);
    let y = Array2::from_shape_fn((n, 1), |(i, _)| {
        (0..features)
            .map(|j| x[[i, j]] * (j as f32 - 1.5))
            .sum::<f32>()
            + 0.3
    });
    Dataset::regression(x, y).unwrap()
}

/// A pool of `threads` workers.
fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn a_training_step_allocates_nothing_in_steady_state() {
    // The pools live for the whole test: the workers of a dropped pool wind down on their own
    // time and may allocate while a later case counts (the counter is global); 5 runs in 200
    // counted one such allocation when each case built and dropped its own pool.
    let pools = [pool(1), pool(2)];
    // W4's shapes: digits, 64 -> 128 -> 10, batch 32 (the last batch of an epoch is smaller).
    let digits = datasets::digits::<f32>().unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        ..TrainConfig::default()
    };
    for threads in [1, 2] {
        let mut model = Mlp::builder(&[64, 128, 10]).seed(0).build().unwrap();
        let steps = steady_steps(
            &pools[threads - 1],
            config.clone(),
            Adam::new(1e-3).unwrap(),
            &mut model,
            &digits,
        );
        assert!(steps.len() > 100, "{} steps counted", steps.len());
        assert!(
            steps.iter().all(|&a| a == 0),
            "Adam on {threads} threads: allocations per step {steps:?}"
        );
    }

    // Clipping, momentum and decoupled weight decay.
    let clipped = TrainConfig {
        clip_grad_norm: Some(0.5),
        ..config.clone()
    };
    let mut model = Mlp::builder(&[64, 128, 10]).seed(1).build().unwrap();
    let steps = steady_steps(
        &pools[1],
        clipped.clone(),
        Sgd::builder(0.01).momentum(0.9).build().unwrap(),
        &mut model,
        &digits,
    );
    assert!(steps.iter().all(|&a| a == 0), "SGD, clipped: {steps:?}");
    let mut model = Mlp::builder(&[64, 128, 10]).seed(1).build().unwrap();
    let steps = steady_steps(
        &pools[1],
        clipped,
        Adam::adamw(1e-3).unwrap(),
        &mut model,
        &digits,
    );
    assert!(steps.iter().all(|&a| a == 0), "AdamW, clipped: {steps:?}");

    // Gradient accumulation: 4 micro-batches of 8 summed along the tree, then one update.
    let accumulated = TrainConfig {
        accumulate: 4,
        clip_grad_norm: Some(0.5),
        ..config.clone()
    };
    let mut model = Mlp::builder(&[64, 128, 10]).seed(3).build().unwrap();
    let steps = steady_steps(
        &pools[1],
        accumulated,
        Adam::new(1e-3).unwrap(),
        &mut model,
        &digits,
    );
    assert!(steps.len() > 100, "{} steps counted", steps.len());
    assert!(steps.iter().all(|&a| a == 0), "accumulating: {steps:?}");

    // Every loss the trainer offers: cross-entropy above, the regressions here (RMSE's root is
    // a built-in op, no custom op's buffers), in one piece and accumulated.
    let data = plane(300, 4);
    for loss in [Loss::Mse, Loss::Rmse] {
        for accumulate in [1, 4] {
            let config = TrainConfig {
                loss,
                batch_size: 16,
                accumulate,
                ..config.clone()
            };
            let mut model = Mlp::builder(&[4, 8, 1]).seed(2).build().unwrap();
            let steps = steady_steps(
                &pools[0],
                config,
                Adam::new(1e-2).unwrap(),
                &mut model,
                &data,
            );
            assert!(steps.len() > 30);
            assert!(
                steps.iter().all(|&a| a == 0),
                "{loss} regression, accumulate {accumulate}: {steps:?}"
            );
        }
    }

    // A loss closure: cross-entropy plus an L1 penalty on every parameter, recorded from the
    // batch's nodes, in one piece and accumulated; with a schedule function and a plateau.
    fn ce_l1(
        tape: &mut Tape<f32>,
        out: NodeId,
        batch: &Batch<'_>,
    ) -> wengert_train::Result<NodeId> {
        let mut loss = tape.cross_entropy(out, batch.target())?;
        for &p in batch.parameters() {
            let a = tape.abs(p)?;
            let s = tape.sum(a)?;
            let penalty = tape.mul_scalar(s, 1e-4)?;
            loss = tape.add(loss, penalty)?;
        }
        Ok(loss)
    }
    for accumulate in [1, 4] {
        let config = TrainConfig {
            accumulate,
            schedule: Schedule::per_step(|step| 1.0 / (1.0 + 1e-3 * step as f64)),
            plateau: Some(ReduceOnPlateau::default()),
            ..config.clone()
        };
        let mut model = Mlp::builder(&[64, 128, 10]).seed(4).build().unwrap();
        let steps = steady_steps_with(
            &pools[1],
            config,
            Adam::new(1e-3).unwrap(),
            Some(ce_l1),
            &mut model,
            &digits,
        );
        assert!(steps.len() > 100, "{} steps counted", steps.len());
        assert!(
            steps.iter().all(|&a| a == 0),
            "a loss closure, accumulate {accumulate}: {steps:?}"
        );
    }

    // A loop by hand through the handle API (the guide's sine regression), with clipping on the
    // tape's own gradients: rewind, forward, backward, clip, step.
    let per_step = handle_loop_allocations(40);
    assert!(
        per_step.iter().all(|&a| a == 0),
        "handle API loop: {per_step:?}"
    );
}

/// Allocations in each of `steps` steps of a hand-written loop on a `Graph`, after warm-up.
fn handle_loop_allocations(steps: usize) -> Vec<u64> {
    use ndarray::{Array, Axis};
    use wengert_tape::Graph;
    use wengert_train::{Init, clip_grad_norm};

    let xs = Array::linspace(-3.0f32, 3.0, 64).insert_axis(Axis(1));
    let g = Graph::<f32>::new();
    let (x, y) = (g.input(&xs).unwrap(), g.input(xs.mapv(f32::sin)).unwrap());
    let mut rng = Rng::seed_from_u64(0);
    let w1 = g
        .parameter(
            Init::GlorotUniform
                .sample::<f32>(&[1, 32], 1, 32, &mut rng)
                .unwrap(),
        )
        .unwrap();
    let w2 = g
        .parameter(
            Init::GlorotUniform
                .sample::<f32>(&[32, 1], 32, 1, &mut rng)
                .unwrap(),
        )
        .unwrap();
    let b1 = g.parameter(Array::<f32, _>::zeros(32)).unwrap();
    let b2 = g.parameter(Array::<f32, _>::zeros(1)).unwrap();
    let start = g.mark().unwrap();
    let mut adam = Adam::new(0.01).unwrap();
    let mut counts = Vec::with_capacity(steps);
    for step in 0..steps + 3 {
        let before = allocations();
        g.rewind(start).unwrap();
        let h = x.matmul(&w1).unwrap().add(&b1).unwrap().tanh().unwrap();
        let loss = h.matmul(&w2).unwrap().add(&b2).unwrap().mse(&y).unwrap();
        loss.backward().unwrap();
        clip_grad_norm(&mut *g.tape_mut().unwrap(), 1.0);
        adam.step_graph(&g).unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    counts
}
