//! candle: the networks on `Var`s with `matmul`, `broadcast_add` and `relu`, candle-nn's
//! `Conv2d` (W6) and `cross_entropy`, candle-core's `max_pool2d`, and candle-nn's `SGD` and
//! `AdamW` (weight decay 0, which is Adam) optimisers.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Conv2d, Conv2dConfig, Module, Optimizer, ParamsAdamW, SGD};

use crate::shared::{self, Rng, SEED, Split};
use crate::{Peer, W2Times, ms_per_call, w4_epochs};

/// candle on the CPU.
pub struct Candle;

fn e(err: candle_core::Error) -> String {
    format!("candle: {err}")
}

/// The MLP's weights (`[fan_in, fan_out]`) and biases as variables, from the shared init.
fn mlp(layers: &[usize], dev: &Device) -> Result<Vec<(Var, Var)>, String> {
    shared::mlp_init(&mut Rng::new(SEED), layers)
        .into_iter()
        .zip(layers.windows(2))
        .map(|((w, b), dims)| {
            Ok((
                Var::from_vec(w, (dims[0], dims[1]), dev).map_err(e)?,
                Var::from_vec(b, dims[1], dev).map_err(e)?,
            ))
        })
        .collect()
}

fn forward(params: &[(Var, Var)], x: &Tensor, track: bool) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (l, (w, b)) in params.iter().enumerate() {
        let (w, b) = if track {
            (w.as_tensor().clone(), b.as_tensor().clone())
        } else {
            (w.as_tensor().detach(), b.as_tensor().detach())
        };
        h = h.matmul(&w)?.broadcast_add(&b)?;
        if l + 1 < params.len() {
            h = h.relu()?;
        }
    }
    Ok(h)
}

fn vars(params: &[(Var, Var)]) -> Vec<Var> {
    params
        .iter()
        .flat_map(|(w, b)| [w.clone(), b.clone()])
        .collect()
}

fn labels(labels: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
    let l: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    Tensor::from_vec(l, labels.len(), dev)
}

/// W6's parameters as variables, from the shared init: two convolutions (OIHW), two linear
/// layers (`[fan_in, fan_out]`).
fn cnn(rng: &mut Rng, dev: &Device) -> Result<Vec<(Var, Var)>, String> {
    let spec = shared::W6;
    shared::cnn_init(rng, &spec)
        .into_iter()
        .zip(spec.param_shapes())
        .map(|((w, b), (dims, outputs))| {
            Ok((
                Var::from_vec(w, dims, dev).map_err(e)?,
                Var::from_vec(b, outputs, dev).map_err(e)?,
            ))
        })
        .collect()
}

fn cnn_forward(params: &[(Var, Var)], x: &Tensor) -> candle_core::Result<Tensor> {
    let config = Conv2dConfig {
        padding: 1,
        ..Conv2dConfig::default()
    };
    let mut h = x.clone();
    for (w, b) in &params[..2] {
        let conv = Conv2d::new(w.as_tensor().clone(), Some(b.as_tensor().clone()), config);
        h = conv.forward(&h)?.relu()?.max_pool2d(2)?;
    }
    forward(&params[2..], &h.flatten_from(1)?, true)
}

impl Peer for Candle {
    const NAME: &'static str = "candle";

    fn w2(batch: usize, warmup: usize, steps: usize) -> Result<W2Times, String> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(SEED);
        let inputs = shared::W2_LAYERS[0];
        let x = Tensor::from_vec(
            shared::normal_vec(&mut rng, batch * inputs),
            (batch, inputs),
            &dev,
        )
        .map_err(e)?;
        let y = labels(&shared::label_vec(&mut rng, batch, 10), &dev).map_err(e)?;
        let params = mlp(&shared::W2_LAYERS, &dev)?;
        let mut sgd = SGD::new(vars(&params), f64::from(shared::W2_LR)).map_err(e)?;
        let train_ms = ms_per_call(warmup, steps, || {
            let logits = forward(&params, &x, true).map_err(e)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(e)?;
            sgd.backward_step(&loss).map_err(e)
        })?;
        let forward_ms = ms_per_call(warmup, steps, || {
            forward(&params, &x, false).map(drop).map_err(e)
        })?;
        Ok(W2Times {
            train_ms,
            forward_ms,
        })
    }

    fn w6(warmup: usize, steps: usize) -> Result<f64, String> {
        let dev = Device::Cpu;
        let spec = shared::W6;
        let mut rng = Rng::new(SEED);
        let x = Tensor::from_vec(
            shared::normal_vec(&mut rng, spec.batch * spec.image_len()),
            (spec.batch, spec.channels[0], spec.side, spec.side),
            &dev,
        )
        .map_err(e)?;
        let y = labels(&shared::label_vec(&mut rng, spec.batch, spec.classes), &dev).map_err(e)?;
        // The runner's draws: images, labels, then the parameters.
        let params = cnn(&mut rng, &dev)?;
        let mut sgd = SGD::new(vars(&params), f64::from(shared::W6_LR)).map_err(e)?;
        ms_per_call(warmup, steps, || {
            let logits = cnn_forward(&params, &x).map_err(e)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(e)?;
            sgd.backward_step(&loss).map_err(e)
        })
    }

    fn w3(ops: usize) -> Result<(f64, f64), String> {
        let dev = Device::Cpu;
        let start = Instant::now();
        let mut y = Tensor::new(&[0.5f32], &dev).map_err(e)?;
        let w = Var::new(&[0.9f32], &dev).map_err(e)?;
        let b = Var::new(&[0.1f32], &dev).map_err(e)?;
        for i in 0..ops {
            y = match i % 3 {
                0 => y.mul(w.as_tensor()),
                1 => y.add(b.as_tensor()),
                _ => y.tanh(),
            }
            .map_err(e)?;
        }
        let recorded = Instant::now();
        let grads = y.backward().map_err(e)?;
        let dw = grads
            .get(w.as_tensor())
            .ok_or("candle: no gradient for w")?;
        let db = grads
            .get(b.as_tensor())
            .ok_or("candle: no gradient for b")?;
        std::hint::black_box((dw, db));
        let done = Instant::now();
        Ok((
            (recorded - start).as_secs_f64(),
            (done - recorded).as_secs_f64(),
        ))
    }

    fn w4(train: &Split, test: &Split) -> Result<(f64, f64), String> {
        let dev = Device::Cpu;
        let params = mlp(&shared::W4_LAYERS, &dev)?;
        let config = ParamsAdamW {
            lr: f64::from(shared::W4_LR),
            beta1: f64::from(shared::W4_BETA1),
            beta2: f64::from(shared::W4_BETA2),
            eps: f64::from(shared::W4_EPS),
            weight_decay: 0.0,
        };
        let mut adam = AdamW::new(vars(&params), config).map_err(e)?;
        let features = shared::W4_LAYERS[0];
        let seconds = w4_epochs(train, |xb, yb| {
            let x = Tensor::from_slice(xb, (yb.len(), features), &dev).map_err(e)?;
            let y = labels(yb, &dev).map_err(e)?;
            let logits = forward(&params, &x, true).map_err(e)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(e)?;
            adam.backward_step(&loss).map_err(e)
        })?;
        let x = Tensor::from_slice(&test.features, (test.len(), features), &dev).map_err(e)?;
        let logits = forward(&params, &x, false).map_err(e)?;
        let logits: Vec<f32> = logits.flatten_all().and_then(|t| t.to_vec1()).map_err(e)?;
        Ok((seconds, shared::accuracy(&logits, &test.labels)))
    }
}
