//! One optimiser step: record the batch, differentiate, clip, update.

use wengert_ops::Float;

use super::Trainer;
use crate::objective::Objective;
use crate::optim::{add_squares, clip_factor};
use crate::reduce::{BucketSink, STATS, Spine, plan_buckets};
use crate::{Dataset, Error, Mode, Module, Result};

/// What a step reports: the batch's mean loss (before the update) and, for a classifier, how
/// many of its examples the model classified right.
pub(super) type StepResult = (f64, usize);

impl<E: Float> Trainer<'_, E> {
    /// Optimiser step `step` (counted from 0 over the run) at rate `lr` on the examples of
    /// `data` at `indices`: in one piece, or in micro-batches when accumulating or sharing
    /// the work with other processes. Each forward pass is in training mode, its seed a
    /// function of the run's seed, the step and the micro-batch ([`Mode::training_step`]).
    pub(super) fn step<M: Module<E>>(
        &mut self,
        model: &M,
        data: &Dataset<E>,
        indices: &[usize],
        lr: f64,
        step: usize,
    ) -> Result<StepResult> {
        if self.config.accumulate == 1 && self.reducer.ranks() == 1 {
            let mode = Mode::training_step(self.config.seed, step as u64, 0);
            self.step_whole(model, data, indices, lr, mode)
        } else {
            self.step_accumulated(model, data, indices, lr, step)
        }
    }

    /// The step on the whole batch, from the gradients the sweep left on the tape.
    fn step_whole<M: Module<E>>(
        &mut self,
        model: &M,
        data: &Dataset<E>,
        indices: &[usize],
        lr: f64,
        mode: Mode,
    ) -> Result<StepResult> {
        let mut objective = Objective::of(self.config.loss, &mut self.loss_fn);
        let bound = &mut self.bound;
        let recorded = bound.record_batch(model, &mut objective, data, indices, mode)?;
        let loss = bound.loss_value(recorded)?;
        let hits = bound.hits(data, recorded)?;
        if !loss.is_finite() {
            return Ok((loss, hits));
        }
        let tape = &mut bound.tape;
        let scale = match self.config.clip_grad_norm {
            // No update waits for the others' gradients: those the optimiser can fold into
            // the products computing them (plain SGD's) are done inside the sweep.
            None => {
                tape.check_loss(recorded.loss)?;
                self.optimizer.begin_step(lr, &bound.at.shapes)?;
                let optimizer = &self.optimizer;
                tape.backward_folding(recorded.loss, |index, _| optimizer.folded_update(index))?;
                None
            }
            Some(max_norm) => {
                tape.backward(recorded.loss)?;
                let mut sum = 0.0;
                for g in bound.at.ids.iter().filter_map(|&id| tape.grad(id)) {
                    add_squares(&mut sum, g.iter());
                }
                self.optimizer.begin_step(lr, &bound.at.shapes)?;
                clip_scale(sum, max_norm)
            }
        };
        let (optimizer, clipped) = (&mut self.optimizer, &mut self.clipped);
        tape.update_parameters(|index, _, value, grad| {
            optimizer.update(index, value, scaled(grad, scale, clipped))
        })?;
        bound.at.buffers.commit(tape, 1)?;
        Ok((loss, hits))
    }

    /// The step in micro-batches: this process sums the gradients of the ones it owns along
    /// the tree, the reducer sums those of all processes, then one update.
    fn step_accumulated<M: Module<E>>(
        &mut self,
        model: &M,
        data: &Dataset<E>,
        indices: &[usize],
        lr: f64,
        step: usize,
    ) -> Result<StepResult> {
        let seed = self.config.seed;
        let accumulate = self.config.accumulate;
        let micro = self.config.batch_size / accumulate;
        let owned = accumulate / self.reducer.ranks();
        let first = self.reducer.rank() * owned;
        let batch = indices.len();
        let total = self.bound.parameter_count();
        let mut objective = Objective::of(self.config.loss, &mut self.loss_fn);
        let ranks = self.reducer.ranks();
        let bucket_elements = self.bucket_bytes / std::mem::size_of::<E>().max(1);
        fill_layout(
            &self.bound.at.shapes,
            &mut self.param_sizes,
            &mut self.param_offsets,
        );
        let (sizes, offsets) = (&self.param_sizes, &self.param_offsets);
        let buckets = (bucket_elements > 0).then(|| Buckets::plan(sizes, bucket_elements));
        let bound = &mut self.bound;
        // Micro-batch `j`: its weighted gradient into the spine's leaf, its totals into
        // `stats`; `sink`: on the last leaf of an overlapped step, where each bucket goes as
        // soon as the sweep has finished it.
        let mut micro_batch = |j: usize,
                               spine: &mut Spine<'_, E>,
                               stats: &mut [f64; STATS],
                               buckets: Option<(&Buckets, &mut Sink<'_, E>)>|
         -> Result<()> {
            spine.leaf().fill(E::zero());
            *stats = [0.0; STATS];
            let part = &indices[(j * micro).min(batch)..((j + 1) * micro).min(batch)];
            let recorded = if part.is_empty() {
                None
            } else {
                // The micro-batch's place in the step, not in this process's share: the same
                // seed whatever the number of processes.
                let micro_batch = u32::try_from(j).map_err(|_| {
                    Error::InvalidConfig(format!(
                        "micro-batch {j} is past the 2^32 a step can hold"
                    ))
                })?;
                let mode = Mode::training_step(seed, step as u64, micro_batch);
                let recorded = bound.record_batch(model, &mut objective, data, part, mode)?;
                let loss = bound.loss_value(recorded)?;
                let hits = bound.hits(data, recorded)?;
                // The micro-batch's share of the batch's mean loss.
                let weight = part.len() as f64 / batch as f64;
                *stats = [loss * weight, hits as f64];
                loss.is_finite().then_some((recorded, E::from_f64(weight)))
            };
            let Some((recorded, w)) = recorded else {
                // No gradient (nothing to do, or a non-finite loss): zeros, every bucket final.
                if let Some((buckets, sink)) = buckets {
                    for (b, range) in buckets.ranges.iter().enumerate() {
                        sink.ready(b, spine.finish(range.clone()))?;
                    }
                }
                return Ok(());
            };
            let Some((buckets, sink)) = buckets else {
                bound.tape.backward(recorded.loss)?;
                let grads = spine.leaf();
                for (&id, &at) in bound.at.ids.iter().zip(offsets) {
                    if let Some(g) = bound.tape.grad(id) {
                        for (d, &x) in grads[at..].iter_mut().zip(g.iter()) {
                            *d = x * w;
                        }
                    }
                }
                return bound.at.buffers.commit(&mut bound.tape, ranks);
            };
            let mut left = buckets.sizes.clone();
            let mut failure = None;
            bound.tape.backward_with(recorded.loss, |k, _, g| {
                if failure.is_some() {
                    return;
                }
                let at = offsets[k];
                for (d, &x) in spine.leaf()[at..at + g.len()].iter_mut().zip(g) {
                    *d = x * w;
                }
                let b = buckets.of_param[k];
                left[b] -= 1;
                let handed = if left[b] == 0 {
                    sink.ready(b, spine.finish(buckets.ranges[b].clone()))
                } else {
                    sink.progress()
                };
                if let Err(e) = handed {
                    failure = Some(e);
                }
            })?;
            failure.map_or(Ok(()), Err)?;
            bound.at.buffers.commit(&mut bound.tape, ranks)
        };
        let (grads, stats) = if let Some(buckets) = buckets {
            self.reduced.resize(total, E::zero());
            let mut stats = [0.0; STATS];
            let tree = &mut self.tree;
            self.reducer.all_reduce_overlapped(
                &buckets.ranges,
                &mut self.reduced,
                &mut stats,
                &mut |sink, out| {
                    let last = first + owned - 1;
                    tree.sum_deferring_last(total, first, first + owned, &mut |j, spine, s| {
                        if j == last && spine.deferred() {
                            micro_batch(j, spine, s, Some((&buckets, &mut *sink)))
                        } else {
                            micro_batch(j, spine, s, None)
                        }
                    })?;
                    out.copy_from_slice(&tree.result().1[..]);
                    Ok(())
                },
            )?;
            (&mut self.reduced[..], stats)
        } else {
            self.tree
                .sum(total, first, first + owned, &mut |j, spine, stats| {
                    micro_batch(j, spine, stats, None)
                })?;
            let (grads, stats) = self.tree.result();
            self.reducer.all_reduce(grads, &mut stats[..])?;
            (grads, *stats)
        };
        let (loss, hits) = (stats[0], stats[1] as usize);
        if !loss.is_finite() {
            return Ok((loss, hits));
        }

        let scale = self.config.clip_grad_norm.and_then(|max_norm| {
            let mut sum = 0.0;
            add_squares(&mut sum, grads.iter());
            clip_scale(sum, max_norm)
        });
        self.optimizer.begin_step(lr, &self.bound.at.shapes)?;
        let (optimizer, clipped) = (&mut self.optimizer, &mut self.clipped);
        let grads = &*grads;
        let mut at = 0;
        let mut failure = None;
        self.bound.tape.update_parameter_values(|id, value| {
            let grad = &grads[at..at + value.len()];
            at += value.len();
            if failure.is_none()
                && let Err(e) = optimizer.update(id.index(), value, scaled(grad, scale, clipped))
            {
                failure = Some(e);
            }
        });
        failure.map_or(Ok((loss, hits)), Err)
    }
}

/// Where an overlapped step's buckets go.
type Sink<'s, E> = dyn BucketSink<E> + 's;

/// The buckets of an overlapped step.
struct Buckets {
    /// Their ranges in the flattened gradient.
    ranges: Vec<std::ops::Range<usize>>,
    /// Each parameter's bucket.
    of_param: Vec<usize>,
    /// How many parameters each holds.
    sizes: Vec<usize>,
}

impl Buckets {
    fn plan(param_sizes: &[usize], bucket_elements: usize) -> Buckets {
        let (ranges, of_param) = plan_buckets(param_sizes, bucket_elements);
        let mut sizes = vec![0; ranges.len()];
        for &b in &of_param {
            sizes[b] += 1;
        }
        Buckets {
            ranges,
            of_param,
            sizes,
        }
    }
}

/// The element counts of parameters of these shapes.
/// Each parameter's element count into `sizes` and its offset in the flattened gradient into
/// `offsets`, reusing both buffers.
fn fill_layout(shapes: &[wengert_ops::Shape], sizes: &mut Vec<usize>, offsets: &mut Vec<usize>) {
    sizes.clear();
    sizes.extend(shapes.iter().map(|s| s.numel()));
    offsets.clear();
    let mut at = 0;
    offsets.extend(sizes.iter().map(|&n| {
        at += n;
        at - n
    }));
}

/// The factor the gradients are scaled by to bring their global norm (the root of
/// `sum_of_squares`) down to `max_norm`, or `None` when they are within it: the one clipping
/// rule of every path, [`clip_grad_norm`](crate::clip_grad_norm)'s.
fn clip_scale<E: Float>(sum_of_squares: f64, max_norm: f64) -> Option<E> {
    clip_factor(sum_of_squares, max_norm).map(E::from_f64)
}

/// `grad` scaled by `scale` into the reused buffer `clipped`, or `grad` itself without one.
fn scaled<'g, E: Float>(grad: &'g [E], scale: Option<E>, clipped: &'g mut Vec<E>) -> &'g [E] {
    match scale {
        Some(c) => {
            clipped.clear();
            clipped.extend(grad.iter().map(|&g| g * c));
            clipped
        }
        None => grad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Adam, Loss, Mlp, Optimizer, Sgd, TrainConfig, clip_grad_norm};
    use ndarray::{Array2, ArrayD};

    #[test]
    fn a_scale_applies_to_a_copy_and_none_passes_the_gradient_through() {
        let mut buf = Vec::new();
        let g = [1.0f32, -2.0];
        assert_eq!(scaled(&g, Some(0.5), &mut buf), [0.5, -1.0]);
        assert_eq!(scaled(&g, None, &mut buf).as_ptr(), g.as_ptr());
        // Norm 5, limit 1: 1 / (5 + 1e-6). Within the limit, no scale.
        assert_eq!(clip_scale::<f64>(25.0, 1.0), Some(1.0 / (5.0 + 1e-6)));
        assert_eq!(clip_scale::<f64>(0.25, 1.0), None);
    }

    /// A batch of 6 regression examples, 3 features.
    fn data() -> Dataset<f64> {
        let x = Array2::from_shape_fn((6, 3), |(i, j)| ((i * 3 + j) as f64 * 0.7).sin());
        let y = Array2::from_shape_fn((6, 1), |(i, _)| i as f64 - 2.0);
        Dataset::regression(x, y).unwrap()
    }

    /// The model after one clipped step taken by the trainer, and after the same step taken
    /// by hand: the gradient through the tape, `clip_grad_norm`, then the optimiser.
    fn trainer_and_by_hand(
        accumulate: usize,
        optimizer: impl Fn() -> Box<dyn Optimizer<f64>>,
    ) -> (Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
        let data = data();
        let config = TrainConfig {
            epochs: 1,
            batch_size: 6,
            loss: Loss::Mse,
            clip_grad_norm: Some(0.1),
            accumulate,
            ..TrainConfig::default()
        };
        let mut model = Mlp::<f64>::builder(&[3, 4, 1]).seed(2).build().unwrap();
        let mut by_hand = model.clone();
        let mut trainer = Trainer::new(config, optimizer());
        trainer.bound.bind(&model).unwrap();
        let order: Vec<usize> = (0..6).collect();
        trainer.step(&model, &data, &order, 0.05, 0).unwrap();
        trainer.bound.write_back(&mut model).unwrap();

        let mut tape = wengert_tape::Tape::new();
        let ids = crate::module::record_parameters(&by_hand, &mut tape).unwrap();
        let x = tape.input(data.features().to_owned()).unwrap();
        let mut params = crate::ParameterIds::new(&ids);
        let out = by_hand.forward(&mut tape, &mut params, x).unwrap();
        let y = tape.input(data.target_rows(&order).unwrap()).unwrap();
        let loss = tape.mse(out, y).unwrap();
        let grads = tape.backward(loss).unwrap();
        let mut grads: Vec<ArrayD<f64>> = ids
            .iter()
            .map(|&id| grads.get(id).unwrap().to_owned())
            .collect();
        let norm = clip_grad_norm(&mut grads, 0.1);
        assert!(norm > 0.1, "the step must clip: norm {norm}");
        let mut opt = optimizer();
        opt.begin_step(0.05, &trainer.bound.at.shapes).unwrap();
        for (i, (mut p, g)) in by_hand.parameters_mut().into_iter().zip(&grads).enumerate() {
            opt.update(i, p.as_slice_mut().unwrap(), g.as_slice().unwrap())
                .unwrap();
        }
        (
            model.parameters().iter().map(|p| p.to_owned()).collect(),
            by_hand.parameters().iter().map(|p| p.to_owned()).collect(),
        )
    }

    #[test]
    fn an_overlapped_step_gives_the_bits_of_a_reduction_after_the_sweep() {
        let data = data();
        let config = TrainConfig {
            epochs: 1,
            batch_size: 6,
            loss: Loss::Mse,
            accumulate: 3,
            ..TrainConfig::default()
        };
        let trained = |bucket_bytes: usize| {
            let mut model = Mlp::<f64>::builder(&[3, 5, 4, 1]).seed(4).build().unwrap();
            let mut trainer = Trainer::new(config.clone(), Adam::new(0.01).unwrap())
                .overlap_reduction(bucket_bytes);
            trainer.bound.bind(&model).unwrap();
            for step in 0..3 {
                let order: Vec<usize> = (0..6).map(|i| (i + step) % 6).collect();
                trainer.step(&model, &data, &order, 0.05, 0).unwrap();
            }
            // A short batch: the last micro-batch is empty.
            trainer.step(&model, &data, &[0, 1, 2], 0.05, 0).unwrap();
            trainer.bound.write_back(&mut model).unwrap();
            model
                .parameters()
                .iter()
                .map(|p| p.to_owned())
                .collect::<Vec<_>>()
        };
        let once = trained(0);
        for bucket_bytes in [1, 40, 200, 1 << 20] {
            assert_eq!(trained(bucket_bytes), once, "{bucket_bytes} bytes");
        }
    }

    #[test]
    fn a_clipped_step_is_clip_grad_norm_then_the_optimisers_update() {
        let sgd = || Box::new(Sgd::new(1.0).unwrap()) as Box<dyn Optimizer<f64>>;
        let adam = || Box::new(Adam::new(1.0).unwrap()) as Box<dyn Optimizer<f64>>;
        // In one piece the same arithmetic runs: the same bits.
        let (trained, by_hand) = trainer_and_by_hand(1, sgd);
        assert_eq!(trained, by_hand);
        let (trained, by_hand) = trainer_and_by_hand(1, adam);
        assert_eq!(trained, by_hand);
        // In micro-batches the gradient is summed in another order: equal up to rounding.
        let (trained, by_hand) = trainer_and_by_hand(3, sgd);
        for (a, b) in trained.iter().zip(&by_hand) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-12, "{x} vs {y}");
            }
        }
    }
}
