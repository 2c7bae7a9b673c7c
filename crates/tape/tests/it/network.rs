//! Whole computations as a user records them: an MLP gradchecked end to end, a million-node
//! chain on a small stack, fan-out, and the guarantees of the sweep (bit-identical repeats and
//! thread counts, clear and re-record, no_grad, detach, retain_grad, take_grad, seeds).

use ndarray::{Array2, ArrayD, IxDyn, array};
use wengert_tape::gradcheck::GradcheckMethod;
use wengert_tape::{GradcheckOptions, NodeId, Result, Tape, gradcheck};

use crate::util::{Rng, on_threads};

/// Which loss ends the MLP.
#[derive(Clone, Copy, Debug)]
pub enum Loss {
    CrossEntropy,
    Mse,
}

/// A batch for a 3-layer MLP `x → tanh(x·W1 + b1) → relu(·W2 + b2) → ·W3 + b3 → loss`.
pub struct Mlp {
    pub x: ArrayD<f64>,
    pub labels: Vec<usize>,
    pub targets: ArrayD<f64>,
    /// W1, b1, W2, b2, W3, b3.
    pub params: Vec<ArrayD<f64>>,
}

impl Mlp {
    pub fn new(seed: u64, batch: usize, sizes: [usize; 4]) -> Mlp {
        let mut rng = Rng::new(seed);
        let [d0, d1, d2, d3] = sizes;
        let mut params = Vec::new();
        for (fan_in, fan_out) in [(d0, d1), (d1, d2), (d2, d3)] {
            let scale = (3.0 / fan_in as f64).sqrt();
            params.push(rng.array(&[fan_in, fan_out], scale));
            params.push(rng.array(&[fan_out], 0.5));
        }
        Mlp {
            x: rng.array(&[batch, d0], 1.0),
            labels: (0..batch).map(|_| rng.below(d3)).collect(),
            targets: rng.array(&[batch, d3], 1.0),
            params,
        }
    }

    /// Records the network on `tape` from parameter nodes `p` (W1, b1, W2, b2, W3, b3) and
    /// returns the loss and the second layer's pre-activation (to check it avoids ReLU's kink).
    pub fn record(&self, tape: &mut Tape<f64>, p: &[NodeId], loss: Loss) -> Result<[NodeId; 2]> {
        let x = tape.input(&self.x)?;
        let z1 = tape.matmul(x, p[0])?;
        let z1 = tape.add(z1, p[1])?;
        let h1 = tape.tanh(z1)?;
        let z2 = tape.matmul(h1, p[2])?;
        let z2 = tape.add(z2, p[3])?;
        let h2 = tape.relu(z2)?;
        let z3 = tape.matmul(h2, p[4])?;
        let out = tape.add(z3, p[5])?;
        let loss = match loss {
            Loss::CrossEntropy => {
                let labels = tape.labels(&self.labels)?;
                tape.cross_entropy(out, labels)?
            }
            Loss::Mse => {
                let targets = tape.input(&self.targets)?;
                tape.mse(out, targets)?
            }
        };
        Ok([loss, z2])
    }

    /// Records the parameters and the network on a fresh tape.
    pub fn tape(&self, loss: Loss) -> Result<(Tape<f64>, Vec<NodeId>, NodeId)> {
        let mut tape = Tape::new();
        let p = self
            .params
            .iter()
            .map(|w| tape.parameter(w))
            .collect::<Result<Vec<_>>>()?;
        let [loss, _] = self.record(&mut tape, &p, loss)?;
        Ok((tape, p, loss))
    }

    /// The loss's value and every parameter's gradient, as raw bits.
    pub fn loss_and_gradient_bits(&self, loss: Loss) -> Result<Vec<u64>> {
        let (mut tape, params, l) = self.tape(loss)?;
        let mut bits = vec![tape.item(l)?.to_bits()];
        let grads = tape.backward(l)?;
        for p in params {
            bits.extend(grads.data(p).unwrap().iter().map(|g| g.to_bits()));
        }
        Ok(bits)
    }
}

#[test]
fn a_three_layer_mlp_passes_gradcheck_with_either_loss() -> Result<()> {
    let mlp = Mlp::new(7, 6, [3, 5, 4, 3]);
    for loss in [Loss::CrossEntropy, Loss::Mse] {
        // The check is only meaningful if no ReLU input sits within a step of its kink.
        let (mut tape, p, _) = mlp.tape(loss)?;
        let [_, z2] = mlp.record(&mut tape, &p, loss)?;
        let nearest = tape
            .data(z2)?
            .iter()
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        assert!(nearest > 1e-3, "a ReLU input is {nearest} from its kink");

        let report = gradcheck(
            |t, p| Ok(mlp.record(t, p, loss)?[0]),
            &mlp.params,
            &GradcheckOptions::default(),
        )?;
        assert_eq!(report.method, GradcheckMethod::FullJacobian);
        assert_eq!(report.checked, 15 + 5 + 20 + 4 + 12 + 3);
        assert!(report.passed(), "{loss:?}: {report:?}");
    }
    Ok(())
}

/// Records `x → tanh((x + 0.1)·w)` repeated and backpropagates through it, on a 256 KiB stack:
/// the sweep is a loop, so depth costs no stack.
#[test]
fn a_million_node_chain_backpropagates_on_a_small_stack() {
    const STEPS: usize = 333_333;
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| -> Result<()> {
            let (x0, w0) = (0.5, 0.9);
            let mut tape = Tape::<f64>::with_capacity(3 * STEPS + 2);
            let x = tape.parameter(vec![x0])?;
            let w = tape.parameter(vec![w0])?;
            let mut y = x;
            for _ in 0..STEPS {
                y = tape.add_scalar(y, 0.1)?;
                y = tape.mul(y, w)?;
                y = tape.tanh(y)?;
            }
            assert_eq!(tape.len(), 3 * STEPS + 2);
            assert!(tape.len() > 1_000_000);

            // The same chain by hand, forward then backward.
            let mut v = x0;
            let mut trace = Vec::with_capacity(STEPS);
            for _ in 0..STEPS {
                let a = v + 0.1;
                v = (a * w0).tanh();
                trace.push((a, v));
            }
            let (mut gx, mut gw) = (1.0, 0.0);
            for &(a, v) in trace.iter().rev() {
                gx *= 1.0 - v * v;
                gw += gx * a;
                gx *= w0;
            }

            assert_eq!(tape.item(y)?, v);
            let grads = tape.backward(y)?;
            let (tx, tw) = (grads.data(x).unwrap()[0], grads.data(w).unwrap()[0]);
            assert!((tw - gw).abs() <= 1e-12 * gw.abs(), "{tw} vs {gw}");
            assert!((tx - gx).abs() <= 1e-12 * gx.abs(), "{tx} vs {gx}");
            assert!(
                gw.abs() > 0.1,
                "the weight's gradient sums every step: {gw}"
            );
            Ok(())
        })
        .expect("spawn the worker");
    worker.join().expect("no stack overflow").unwrap();
}

#[test]
fn fan_out_accumulates() -> Result<()> {
    // y = x·x: dy/dx = 2x, with both operands the same node.
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![1.5, -2.0, 0.25])?;
    let y = tape.mul(x, x)?;
    let loss = tape.sum(y)?;
    assert_eq!(tape.backward(loss)?.data(x).unwrap(), &[3.0, -4.0, 0.5]);

    // h = 2x used by three consumers: L = Σ eʰ + Σ h·w - Σ h, so dL/dx = 2(eʰ + w - 1).
    let record = |t: &mut Tape<f64>, p: &[NodeId]| -> Result<NodeId> {
        let h = t.mul_scalar(p[0], 2.0)?;
        let a = t.exp(h)?;
        let b = t.mul(h, p[1])?;
        let c = t.neg(h)?;
        let ab = t.add(a, b)?;
        let abc = t.add(ab, c)?;
        t.sum(abc)
    };
    let xs = array![0.3, -0.7, 1.1].into_dyn();
    let ws = array![0.5, 2.0, -1.0].into_dyn();
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(&xs)?;
    let w = tape.parameter(&ws)?;
    let loss = record(&mut tape, &[x, w])?;
    let grads = tape.backward(loss)?;
    for ((&g, &xv), &wv) in grads.data(x).unwrap().iter().zip(&xs).zip(&ws) {
        let want = 2.0 * ((2.0 * xv).exp() + wv - 1.0);
        assert!(
            (g - want).abs() <= 1e-15 * want.abs().max(1.0),
            "{g} vs {want}"
        );
    }
    let report = gradcheck(record, &[xs, ws], &GradcheckOptions::default())?;
    assert!(report.passed(), "{report:?}");
    Ok(())
}

#[test]
fn backward_twice_gives_bit_identical_gradients() -> Result<()> {
    let mlp = Mlp::new(11, 16, [8, 16, 16, 4]);
    let (mut tape, params, loss) = mlp.tape(Loss::CrossEntropy)?;
    let bits = |tape: &Tape<f64>| -> Vec<u64> {
        params
            .iter()
            .flat_map(|&p| {
                tape.grad(p)
                    .unwrap()
                    .iter()
                    .map(|g| g.to_bits())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    tape.backward(loss)?;
    let first = bits(&tape);
    tape.backward(loss)?;
    assert_eq!(first, bits(&tape));
    Ok(())
}

#[test]
fn results_are_bit_identical_for_1_2_and_4_threads() {
    // 256×300 · 300×200 and its VJPs are well above the size at which matmul goes parallel.
    let mlp = Mlp::new(3, 256, [300, 200, 64, 10]);
    let run = |threads: usize| -> Vec<u64> {
        on_threads(threads, || {
            let mut bits = mlp.loss_and_gradient_bits(Loss::CrossEntropy).unwrap();
            bits.extend(mlp.loss_and_gradient_bits(Loss::Mse).unwrap());
            bits
        })
    };
    let one = run(1);
    assert_eq!(
        one.len(),
        2 * (1 + 300 * 200 + 200 + 200 * 64 + 64 + 64 * 10 + 10)
    );
    assert!(one == run(2), "2 threads differ from 1");
    assert!(one == run(4), "4 threads differ from 1");
}

#[test]
fn clear_then_re_record_gives_the_same_results() -> Result<()> {
    let mlp = Mlp::new(5, 8, [4, 8, 8, 3]);
    let (mut tape, params, loss) = mlp.tape(Loss::CrossEntropy)?;
    let first_loss = tape.item(loss)?;
    let first: Vec<ArrayD<f64>> = {
        let grads = tape.backward(loss)?;
        params
            .iter()
            .map(|&p| grads.get(p).unwrap().to_owned())
            .collect()
    };
    let len = tape.len();
    // Where each node's value lives: after a clear, the same buffers are filled again.
    let addresses = |tape: &Tape<f64>| -> Vec<*const f64> {
        tape.ids()
            .map(|id| tape.data(id).unwrap().as_ptr())
            .collect()
    };
    let first_addresses = addresses(&tape);
    for _ in 0..3 {
        tape.clear();
        assert!(tape.is_empty());
        let p = mlp
            .params
            .iter()
            .map(|w| tape.parameter(w))
            .collect::<Result<Vec<_>>>()?;
        let positions = |ids: &[NodeId]| ids.iter().map(|id| id.index()).collect::<Vec<_>>();
        assert_eq!(
            positions(&p),
            positions(&params),
            "positions are handed out again from 0"
        );
        assert_ne!(p, params, "ids from before the clear name no node now");
        let [loss, _] = mlp.record(&mut tape, &p, Loss::CrossEntropy)?;
        assert_eq!(tape.len(), len);
        assert_eq!(
            addresses(&tape),
            first_addresses,
            "value buffers are reused"
        );
        assert_eq!(tape.item(loss)?.to_bits(), first_loss.to_bits());
        let grads = tape.backward(loss)?;
        for (&id, want) in p.iter().zip(&first) {
            assert_eq!(grads.get(id).unwrap(), want.view());
        }
    }
    Ok(())
}

#[test]
fn no_grad_records_values_without_gradients() -> Result<()> {
    let mlp = Mlp::new(9, 4, [3, 4, 4, 2]);
    let (mut tape, params, loss) = mlp.tape(Loss::Mse)?;
    let with_grad = tape.item(loss)?;
    let [inference, z2] = tape.no_grad(|t| mlp.record(t, &params, Loss::Mse))?;
    // Same value, bit for bit, but nothing downstream wants a gradient.
    assert_eq!(tape.item(inference)?.to_bits(), with_grad.to_bits());
    assert!(!tape.requires_grad(inference)? && !tape.requires_grad(z2)?);
    // Recording is back on afterwards.
    let after = tape.tanh(params[1])?;
    assert!(tape.requires_grad(after)?);
    // A loss recorded under no_grad has nothing to send back: sweeping from it is an error, as
    // in PyTorch, not a set of zeros that looks like a converged model.
    let err = tape.backward(inference).unwrap_err();
    assert!(
        matches!(err, wengert_tape::Error::NoGradient { .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn detach_stops_the_gradient_of_a_whole_branch() -> Result<()> {
    // L = Σ tanh(x)·stop(tanh(x)·w): w gets nothing, x only the live branch's share.
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![0.5, -1.0])?;
    let w = tape.parameter(array![2.0, 3.0])?;
    let h = tape.tanh(x)?;
    let branch = tape.mul(h, w)?;
    let stopped = tape.detach(branch)?;
    let y = tape.mul(h, stopped)?;
    let loss = tape.sum(y)?;
    let grads = tape.backward(loss)?;
    assert_eq!(grads.data(w).unwrap(), &[0.0, 0.0]);
    for (i, (&g, xv)) in grads
        .data(x)
        .unwrap()
        .iter()
        .zip([0.5f64, -1.0])
        .enumerate()
    {
        let t = xv.tanh();
        let want = (1.0 - t * t) * t * [2.0, 3.0][i];
        assert!((g - want).abs() <= 1e-15, "{g} vs {want}");
    }
    Ok(())
}

#[test]
fn retain_grad_keeps_an_intermediate_gradient() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![[1.0, 2.0]])?;
    let w = tape.parameter(array![[0.5], [-0.25]])?;
    let z = tape.matmul(x, w)?; // [[0.0]]
    let h = tape.tanh(z)?;
    let loss = tape.mul_scalar(h, 3.0)?;
    let loss = tape.sum(loss)?;
    tape.retain_grad(h)?;
    let grads = tape.backward(loss)?;
    assert_eq!(grads.get(h).unwrap(), array![[3.0]].into_dyn());
    // Intermediates nobody asked for are released, and so are inputs' (they have none).
    assert!(grads.get(z).is_none());
    assert!(grads.get(x).is_none());
    assert_eq!(grads.data(w).unwrap(), &[3.0, 6.0]);
    Ok(())
}

#[test]
fn take_grad_moves_the_gradient_out() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![[1.0, -2.0], [3.0, 0.5]])?;
    let unused = tape.parameter(vec![7.0])?;
    let y = tape.mul(w, w)?;
    let loss = tape.mean(y)?;
    tape.backward(loss)?;
    let g = tape.take_grad(w).expect("a parameter's gradient");
    assert_eq!(g, array![[0.5, -1.0], [1.5, 0.25]].into_dyn());
    assert!(tape.take_grad(w).is_none(), "taken once");
    assert!(tape.grad(w).is_none());
    // A parameter the loss does not use gets zeros, not nothing.
    assert_eq!(tape.take_grad(unused).unwrap(), array![0.0].into_dyn());
    // The next sweep fills it again.
    tape.backward(loss)?;
    assert_eq!(tape.grad(w).unwrap(), g.view());
    Ok(())
}

#[test]
fn backward_with_seed_is_a_vector_jacobian_product() -> Result<()> {
    let xs = Array2::from_shape_fn((3, 4), |(i, j)| (i as f64 - j as f64) / 3.0).into_dyn();
    let seed = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64 - 5.5).into_dyn();
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(&xs)?;
    let y = tape.softmax(x)?;
    let vjp = tape
        .backward_with_seed(y, seed.view())?
        .get(x)
        .unwrap()
        .to_owned();
    // The same product as the gradient of Σ seed·y.
    let s = tape.input(&seed)?;
    let weighted = tape.mul(y, s)?;
    let loss = tape.sum(weighted)?;
    let grads = tape.backward(loss)?;
    let via_loss = grads.get(x).unwrap();
    for (a, b) in vjp.iter().zip(via_loss.iter()) {
        assert!((a - b).abs() <= 1e-15, "{a} vs {b}");
    }
    // A seed of ones on a scalar is plain backward.
    let ones = ArrayD::from_elem(IxDyn(&[]), 1.0);
    let again = tape
        .backward_with_seed(loss, ones.view())?
        .get(x)
        .unwrap()
        .to_owned();
    assert_eq!(again, vjp);
    Ok(())
}

#[test]
fn only_the_inputs_that_need_a_gradient_get_one() -> Result<()> {
    // Labels recorded as a parameter still get no gradient through cross-entropy (a zero one,
    // as for any parameter the loss does not reach), while the logits get theirs.
    let mut tape = Tape::<f64>::new();
    let logits = tape.parameter(array![[2.0, 0.5, -1.0]])?;
    let labels = tape.parameter(array![1.0])?;
    let loss = tape.cross_entropy(logits, labels)?;
    let grads = tape.backward(loss)?;
    assert_eq!(grads.data(labels).unwrap(), &[0.0]);
    let dz = grads.data(logits).unwrap();
    assert!(dz[1] < 0.0 && dz[0] > 0.0 && dz[2] > 0.0, "{dz:?}");

    // An op recorded under no_grad passes nothing back, even from a parameter.
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![3.0])?;
    let frozen = tape.no_grad(|t| t.mul(w, w))?;
    let live = tape.mul(w, frozen)?; // d/dw (w · c) = c = 9
    let loss = tape.sum(live)?;
    assert_eq!(tape.backward(loss)?.data(w).unwrap(), &[9.0]);

    // One input needing a gradient and one not: only the first is written.
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![1.0, 2.0])?;
    let w = tape.parameter(array![0.5, -0.5])?;
    let y = tape.div(x, w)?; // d/dw (x / w) = -x / w²
    let loss = tape.sum(y)?;
    assert_eq!(tape.backward(loss)?.data(w).unwrap(), &[-4.0, -8.0]);
    assert!(!tape.requires_grad(x)?);
    Ok(())
}
