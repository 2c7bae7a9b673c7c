//! Gradient accumulation and the gradient reducer: `accumulate` micro-batches step like the
//! whole batch (to rounding), and processes sharing the micro-batches through a reducer end
//! with weights bit-identical to one process accumulating them all, for 1, 2 and 4 of them.

use std::sync::{Arc, Barrier, Mutex};

use wengert_train::reduce::add_into;
use wengert_train::{
    Adam, Control, Dataset, Error, Every, GradientReducer, History, Mlp, Module, Sgd, StopReason,
    TrainConfig, TrainState, Trainer, datasets,
};

use crate::disc;

fn bits(m: &Mlp<f32>) -> Vec<u32> {
    m.parameters()
        .iter()
        .flatten()
        .map(|x| x.to_bits())
        .collect()
}

fn timeless(mut h: History) -> History {
    for r in &mut h.epochs {
        r.seconds = 0.0;
    }
    h
}

/// The largest difference between two models' weights, relative to the largest weight.
fn relative_gap(a: &Mlp<f64>, b: &Mlp<f64>) -> f64 {
    let (pa, pb) = (a.parameters(), b.parameters());
    let (mut gap, mut scale) = (0.0f64, 0.0f64);
    for (x, y) in pa.iter().flatten().zip(pb.iter().flatten()) {
        gap = gap.max((x - y).abs());
        scale = scale.max(x.abs());
    }
    gap / scale
}

#[test]
fn accumulated_micro_batches_step_like_the_whole_batch() {
    let digits = datasets::digits::<f64>().unwrap();
    let (train, _) = digits.split(0.5, 0).unwrap();
    // 898 examples in batches of 64: 14 full batches and one of 2, which fills only the first
    // micro-batch, partly (the others are empty).
    let run = |accumulate: usize| {
        let mut model = Mlp::<f64>::builder(&[64, 16, 10]).seed(3).build().unwrap();
        let config = TrainConfig {
            epochs: 2,
            batch_size: 64,
            accumulate,
            ..TrainConfig::default()
        };
        let history = Trainer::new(config, Sgd::builder(0.1).momentum(0.9).build().unwrap())
            .fit(&mut model, &train, None)
            .unwrap();
        (model, history)
    };
    let (whole, whole_history) = run(1);
    for accumulate in [2, 4, 8, 64] {
        let (model, history) = run(accumulate);
        assert_eq!(history.steps, whole_history.steps);
        let gap = relative_gap(&model, &whole);
        // 30 steps of rounding differences in f64: sums in another order.
        assert!(gap < 1e-11, "accumulate {accumulate}: relative gap {gap:e}");
        assert!(gap > 0.0 || accumulate == 1);
        let (a, b) = (history.last().unwrap(), whole_history.last().unwrap());
        assert!((a.train_loss - b.train_loss).abs() < 1e-11 * b.train_loss);
        assert_eq!(a.train_accuracy, b.train_accuracy);
    }
}

/// A rank's partial gradient sums and totals.
type Partial = (Vec<f32>, Vec<f64>);

/// Ranks in threads of one process, reducing by recursive doubling through shared memory: the
/// contract of [`GradientReducer`] as an embedder would implement it on another transport.
pub(crate) struct SharedReducer {
    rank: usize,
    ranks: usize,
    /// Each rank's partial sums, posted for its partner.
    posted: Arc<Mutex<Vec<Partial>>>,
    barrier: Arc<Barrier>,
}

impl SharedReducer {
    pub(crate) fn group(ranks: usize) -> Vec<SharedReducer> {
        let posted = Arc::new(Mutex::new(vec![(Vec::new(), Vec::new()); ranks]));
        let barrier = Arc::new(Barrier::new(ranks));
        (0..ranks)
            .map(|rank| SharedReducer {
                rank,
                ranks,
                posted: posted.clone(),
                barrier: barrier.clone(),
            })
            .collect()
    }
}

impl GradientReducer<f32> for SharedReducer {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn all_reduce(&mut self, grads: &mut [f32], stats: &mut [f64]) -> wengert_train::Result<()> {
        let mut step = 1;
        while step < self.ranks {
            self.posted.lock().unwrap()[self.rank] = (grads.to_vec(), stats.to_vec());
            self.barrier.wait();
            let partner = self.posted.lock().unwrap()[self.rank ^ step].clone();
            self.barrier.wait();
            if self.rank & step == 0 {
                add_into(grads, &partner.0);
                add_into(stats, &partner.1);
            } else {
                let (mut g, mut s) = partner;
                add_into(&mut g, grads);
                add_into(&mut s, stats);
                grads.copy_from_slice(&g);
                stats.copy_from_slice(&s);
            }
            step *= 2;
        }
        Ok(())
    }
}

/// Trains on `ranks` threads sharing `accumulate` micro-batches per step; every rank's model.
fn shared_run(
    ranks: usize,
    config: &TrainConfig,
    train: &Dataset<f32>,
    valid: &Dataset<f32>,
) -> Vec<(Mlp<f32>, History)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = SharedReducer::group(ranks)
            .into_iter()
            .map(|reducer| {
                let config = config.clone();
                scope.spawn(move || {
                    let mut model = Mlp::builder(&[2, 16, 2]).seed(9).build().unwrap();
                    let history = Trainer::new(config, Adam::new(0.01).unwrap())
                        .with_reducer(reducer)
                        .fit(&mut model, train, Some(valid))
                        .unwrap();
                    (model, history)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn ranks_sharing_the_micro_batches_match_one_process_bit_for_bit() {
    // 150 examples in batches of 24 (the last of 6): 8 micro-batches of 3.
    let (train, valid) = (disc(150, 2), disc(40, 3));
    let config = TrainConfig {
        epochs: 4,
        batch_size: 24,
        accumulate: 8,
        clip_grad_norm: Some(1.0),
        patience: Some(10),
        ..TrainConfig::default()
    };
    let mut reference = Mlp::builder(&[2, 16, 2]).seed(9).build().unwrap();
    let history = Trainer::new(config.clone(), Adam::new(0.01).unwrap())
        .fit(&mut reference, &train, Some(&valid))
        .unwrap();
    for ranks in [1, 2, 4, 8] {
        for (rank, (model, h)) in shared_run(ranks, &config, &train, &valid)
            .into_iter()
            .enumerate()
        {
            assert_eq!(bits(&model), bits(&reference), "rank {rank} of {ranks}");
            assert_eq!(
                timeless(h),
                timeless(history.clone()),
                "rank {rank} of {ranks}"
            );
        }
    }
}

#[test]
fn layouts_the_tree_cannot_share_are_refused() {
    let train = disc(40, 1);
    let fit = |batch_size: usize, accumulate: usize, ranks: usize| {
        let mut model = Mlp::builder(&[2, 4, 2]).seed(0).build().unwrap();
        let config = TrainConfig {
            epochs: 1,
            batch_size,
            accumulate,
            ..TrainConfig::default()
        };
        let mut reducers = SharedReducer::group(ranks);
        let mut trainer = Trainer::new(config, Adam::new(0.01).unwrap());
        if ranks > 1 {
            trainer = trainer.with_reducer(reducers.remove(0));
        }
        trainer.fit(&mut model, &train, None)
    };
    for (batch, accumulate, ranks, says) in [
        (8, 0, 1, "at least 1"),
        (10, 4, 1, "does not split into 4"),
        (12, 6, 4, "cannot share 6"),
        (12, 3, 3, "power of two"),
    ] {
        match fit(batch, accumulate, ranks) {
            Err(Error::InvalidConfig(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("batch {batch}, accumulate {accumulate}: {other:?}"),
        }
    }
}

#[test]
fn an_accumulating_run_resumes_bit_for_bit() {
    let train = disc(70, 4);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        accumulate: 4,
        ..TrainConfig::default()
    };
    let mut straight = Mlp::builder(&[2, 8, 2]).seed(2).build().unwrap();
    let expected = Trainer::new(config.clone(), Adam::new(0.02).unwrap())
        .fit(&mut straight, &train, None)
        .unwrap();

    let mut saved: Option<TrainState<f32>> = None;
    let mut model = Mlp::builder(&[2, 8, 2]).seed(2).build().unwrap();
    let mut first = Trainer::new(config.clone(), Adam::new(0.02).unwrap());
    first.checkpoint_every(Every::Steps(7), |s: &TrainState<f32>| {
        saved = Some(s.clone());
        Ok(Control::Stop)
    });
    let paused = first.fit(&mut model, &train, None).unwrap();
    assert_eq!(paused.stop_reason, StopReason::Paused);
    drop(first);

    let mut model = Mlp::builder(&[2, 8, 2]).seed(50).build().unwrap();
    let resumed = Trainer::new(config, Adam::new(0.02).unwrap())
        .resume(&mut model, &train, None, saved.unwrap())
        .unwrap();
    assert_eq!(bits(&model), bits(&straight));
    assert_eq!(timeless(resumed), timeless(expected));
}
