//! dfdx 0.13: the networks as tuples of `Linear` and `ReLU` built on the `Cpu` device, traced
//! with `forward_mut(x.traced(grads))`, `cross_entropy_with_logits_loss` on one-hot targets, and
//! its `Sgd` and `Adam` optimisers, as its documentation shows. Its own initialisation (uniform
//! in ±1/√fan_in, like PyTorch's) from a seeded device.

use std::time::Instant;

use dfdx::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use dfdx::prelude::*;

use crate::shared::{self, Rng, SEED, Split};
use crate::{Peer, W2Times, ms_per_call, w4_epochs};

/// dfdx on the CPU.
pub struct Dfdx;

type W2Model = (
    Linear<784, 512>,
    ReLU,
    Linear<512, 512>,
    ReLU,
    Linear<512, 10>,
);
type W4Model = (Linear<64, 128>, ReLU, Linear<128, 10>);

fn one_hot(labels: &[usize], classes: usize) -> Vec<f32> {
    let mut v = vec![0.0; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        v[row * classes + l] = 1.0;
    }
    v
}

fn opt_err(err: impl std::fmt::Debug) -> String {
    format!("dfdx: {err:?}")
}

impl Peer for Dfdx {
    const NAME: &'static str = "dfdx";

    fn w2(batch: usize, warmup: usize, steps: usize) -> Result<W2Times, String> {
        let dev = Cpu::seed_from_u64(SEED);
        let mut rng = Rng::new(SEED);
        let x = dev.tensor_from_vec(
            shared::normal_vec(&mut rng, batch * 784),
            (batch, Const::<784>),
        );
        let y = dev.tensor_from_vec(
            one_hot(&shared::label_vec(&mut rng, batch, 10), 10),
            (batch, Const::<10>),
        );
        let mut model = dev.build_module::<W2Model, f32>();
        let mut grads = model.alloc_grads();
        let mut opt = Sgd::new(
            &model,
            SgdConfig {
                lr: f64::from(shared::W2_LR),
                momentum: None,
                weight_decay: None,
            },
        );
        let train_ms = ms_per_call(warmup, steps, || {
            let logits = model.forward_mut(x.clone().traced(grads.clone()));
            let loss = cross_entropy_with_logits_loss(logits, y.clone());
            grads = loss.backward();
            opt.update(&mut model, &grads).map_err(opt_err)?;
            model.zero_grads(&mut grads);
            Ok(())
        })?;
        let forward_ms = ms_per_call(warmup, steps, || {
            std::hint::black_box(model.forward(x.clone()));
            Ok(())
        })?;
        Ok(W2Times {
            train_ms,
            forward_ms,
        })
    }

    fn w3(ops: usize) -> Result<(f64, f64), String> {
        let dev = Cpu::seed_from_u64(SEED);
        let start = Instant::now();
        let w: Tensor<Rank1<1>, f32, _> = dev.tensor([0.9f32]);
        let b: Tensor<Rank1<1>, f32, _> = dev.tensor([0.1f32]);
        let x: Tensor<Rank1<1>, f32, _> = dev.tensor([0.5f32]);
        let mut y = x.leaky_trace();
        for i in 0..ops {
            y = match i % 3 {
                0 => y * w.retaped::<OwnedTape<f32, Cpu>>(),
                1 => y + b.retaped::<OwnedTape<f32, Cpu>>(),
                _ => y.tanh(),
            };
        }
        let loss = y.sum::<Rank0, _>();
        let recorded = Instant::now();
        let grads = loss.backward();
        std::hint::black_box((grads.get(&w).array(), grads.get(&b).array()));
        let done = Instant::now();
        Ok((
            (recorded - start).as_secs_f64(),
            (done - recorded).as_secs_f64(),
        ))
    }

    fn w4(train: &Split, test: &Split) -> Result<(f64, f64), String> {
        let dev = Cpu::seed_from_u64(SEED);
        let mut model = dev.build_module::<W4Model, f32>();
        let mut grads = model.alloc_grads();
        let mut opt = Adam::new(
            &model,
            AdamConfig {
                lr: f64::from(shared::W4_LR),
                betas: [f64::from(shared::W4_BETA1), f64::from(shared::W4_BETA2)],
                eps: f64::from(shared::W4_EPS),
                weight_decay: None,
            },
        );
        let seconds = w4_epochs(train, |xb, yb| {
            let x = dev.tensor_from_vec(xb.to_vec(), (yb.len(), Const::<64>));
            let y = dev.tensor_from_vec(one_hot(yb, 10), (yb.len(), Const::<10>));
            let logits = model.forward_mut(x.traced(grads.clone()));
            let loss = cross_entropy_with_logits_loss(logits, y);
            grads = loss.backward();
            opt.update(&mut model, &grads).map_err(opt_err)?;
            model.zero_grads(&mut grads);
            Ok(())
        })?;
        let x = dev.tensor_from_vec(test.features.clone(), (test.len(), Const::<64>));
        let logits = model.forward(x).as_vec();
        Ok((seconds, shared::accuracy(&logits, &test.labels)))
    }
}
