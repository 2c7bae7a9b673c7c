//! One optimiser step: record the batch, differentiate, clip, update.

use wengert_ops::Float;

use super::Trainer;
use crate::optim::{add_squares, clip_factor};
use crate::reduce::STATS;
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
        let loss_kind = self.config.loss;
        let bound = &mut self.bound;
        let recorded = bound.record_batch(model, loss_kind, data, indices, mode)?;
        let loss = bound.loss_value(recorded)?;
        let hits = bound.hits(loss_kind, recorded)?;
        if !loss.is_finite() {
            return Ok((loss, hits));
        }
        bound.tape.backward(recorded.loss)?;

        let tape = &mut bound.tape;
        let scale = self.config.clip_grad_norm.and_then(|max_norm| {
            let mut sum = 0.0;
            for g in bound.at.ids.iter().filter_map(|&id| tape.grad(id)) {
                add_squares(&mut sum, g.iter());
            }
            clip_scale(sum, max_norm)
        });
        self.optimizer.begin_step(lr, &bound.at.shapes)?;
        let (optimizer, clipped) = (&mut self.optimizer, &mut self.clipped);
        tape.update_parameters(|index, _, value, grad| {
            optimizer.update(index, value, scaled(grad, scale, clipped))
        })?;
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
        let loss_kind = self.config.loss;
        let bound = &mut self.bound;
        let mut leaf = |j: usize, grads: &mut [E], stats: &mut [f64; STATS]| -> Result<()> {
            grads.fill(E::zero());
            *stats = [0.0; STATS];
            let part = &indices[(j * micro).min(batch)..((j + 1) * micro).min(batch)];
            if part.is_empty() {
                return Ok(());
            }
            // The micro-batch's place in the step, not in this process's share: the same
            // seed whatever the number of processes.
            let micro_batch = u32::try_from(j).map_err(|_| {
                Error::InvalidConfig(format!("micro-batch {j} is past the 2^32 a step can hold"))
            })?;
            let mode = Mode::training_step(seed, step as u64, micro_batch);
            let recorded = bound.record_batch(model, loss_kind, data, part, mode)?;
            let loss = bound.loss_value(recorded)?;
            let hits = bound.hits(loss_kind, recorded)?;
            // The micro-batch's share of the batch's mean loss.
            let weight = part.len() as f64 / batch as f64;
            *stats = [loss * weight, hits as f64];
            if !loss.is_finite() {
                return Ok(());
            }
            bound.tape.backward(recorded.loss)?;
            let w = E::from_f64(weight);
            let mut at = 0;
            for (&id, shape) in bound.at.ids.iter().zip(&bound.at.shapes) {
                let n = shape.numel();
                if let Some(g) = bound.tape.grad(id) {
                    for (d, &x) in grads[at..at + n].iter_mut().zip(g.iter()) {
                        *d = x * w;
                    }
                }
                at += n;
            }
            Ok(())
        };
        self.tree.sum(total, first, first + owned, &mut leaf)?;
        let (grads, stats) = self.tree.result();
        self.reducer.all_reduce(grads, &mut stats[..])?;
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
