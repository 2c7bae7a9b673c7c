//! `backward_folding`: an update folded into the product that computes a parameter's gradient
//! gives the values `backward` and the same update give (to rounding), leaves every other
//! gradient as `backward` does, folds only a factor used once (and one per product), and is
//! bit-identical across thread counts.

use ndarray::ArrayD;
use wengert_tape::{Error, FoldedUpdate, Mark, NodeId, Tape};

use crate::util::{Rng, on_threads};

/// A small network that uses parameters every way a product can: `w1` as `linear`'s weight,
/// `w2` as matmul's right factor, `l` as its left one, and `b1`, `b2` as biases (sums). The
/// parameters are recorded once, before a mark; each step rewinds there and records again.
struct Net {
    tape: Tape<f64>,
    params: [NodeId; 5],
    mark: Mark,
    x: ArrayD<f64>,
}

const M: usize = 6;

impl Net {
    fn new(seed: u64) -> Net {
        let mut rng = Rng::new(seed);
        let mut tape = Tape::new();
        let w1 = tape.parameter(rng.array(&[7, 5], 0.5)).unwrap();
        let b1 = tape.parameter(rng.array(&[5], 0.5)).unwrap();
        let w2 = tape.parameter(rng.array(&[5, 4], 0.5)).unwrap();
        let b2 = tape.parameter(rng.array(&[4], 0.5)).unwrap();
        let l = tape.parameter(rng.array(&[3, M], 0.5)).unwrap();
        let mark = tape.mark();
        let x = rng.array(&[M, 7], 1.0);
        Net {
            tape,
            params: [w1, b1, w2, b2, l],
            mark,
            x,
        }
    }

    /// Records the forward pass and the loss again; returns the loss.
    fn record(&mut self) -> NodeId {
        let [w1, b1, w2, b2, l] = self.params;
        let tape = &mut self.tape;
        tape.rewind(self.mark).unwrap();
        let x = tape.input(&self.x).unwrap();
        let z1 = tape.linear(x, w1, b1).unwrap();
        let h = tape.tanh(z1).unwrap();
        let z2 = tape.matmul(h, w2).unwrap();
        let z2 = tape.add(z2, b2).unwrap();
        let u = tape.matmul(l, z2).unwrap();
        let t = tape.tanh(u).unwrap();
        let sq = tape.mul(t, t).unwrap();
        tape.sum(sq).unwrap()
    }

    fn values(&self) -> Vec<Vec<f64>> {
        (self.params.iter())
            .map(|&p| self.tape.data(p).unwrap().to_vec())
            .collect()
    }
}

/// `backward`, then `update` on every parameter by hand.
fn step_plain(tape: &mut Tape<f64>, loss: NodeId, update: FoldedUpdate<f64>) {
    tape.backward(loss).unwrap();
    tape.update_parameters(|_, _, value, grad| {
        apply(update, value, grad);
        Ok::<(), Error>(())
    })
    .unwrap();
}

fn apply(update: FoldedUpdate<f64>, value: &mut [f64], grad: &[f64]) {
    for (v, &g) in value.iter_mut().zip(grad) {
        *v = update.keep * *v + update.step * g;
    }
}

/// `backward_folding` with `update` for every parameter it asks about, then `update` on the
/// parameters left; returns the positions it asked about and those left.
fn step_folded(
    tape: &mut Tape<f64>,
    loss: NodeId,
    update: Option<FoldedUpdate<f64>>,
) -> (Vec<usize>, Vec<usize>) {
    let mut asked = Vec::new();
    tape.backward_folding(loss, |k, _| {
        asked.push(k);
        update
    })
    .unwrap();
    let mut left = Vec::new();
    let apply_left = update.unwrap_or(FoldedUpdate::sgd(0.1));
    tape.update_parameters(|k, _, value, grad| {
        left.push(k);
        apply(apply_left, value, grad);
        Ok::<(), Error>(())
    })
    .unwrap();
    (asked, left)
}

fn assert_close(a: &[Vec<f64>], b: &[Vec<f64>], what: &str) {
    for (i, (pa, pb)) in a.iter().zip(b).enumerate() {
        for (&x, &y) in pa.iter().zip(pb) {
            let scale = x.abs().max(y.abs()).max(1.0);
            let near = (x - y).abs() <= 8.0 * f64::EPSILON * scale;
            assert!(near, "{what}: parameter {i}: {x} vs {y}");
        }
    }
}

fn bits(values: &[Vec<f64>]) -> Vec<u64> {
    values.iter().flatten().map(|v| v.to_bits()).collect()
}

#[test]
fn folded_steps_match_backward_then_the_same_update() {
    let decay = FoldedUpdate {
        keep: 0.995,
        step: -0.05,
    };
    for update in [FoldedUpdate::sgd(0.1), decay] {
        let (mut plain, mut folded) = (Net::new(3), Net::new(3));
        let start = plain.values();
        for step in 0..4 {
            let loss = plain.record();
            step_plain(&mut plain.tape, loss, update);
            let loss = folded.record();
            let (asked, left) = step_folded(&mut folded.tape, loss, Some(update));
            // w1 (linear's weight), w2 (a right factor) and l (a left factor) fold; the
            // biases' gradients are sums and are left for the optimiser.
            assert_eq!((asked, left), (vec![0, 2, 4], vec![1, 3]), "step {step}");
            for (k, &p) in folded.params.iter().enumerate() {
                assert_eq!(folded.tape.grad(p).is_some(), k % 2 == 1, "parameter {k}");
            }
            assert_close(&plain.values(), &folded.values(), "values");
        }
        assert_ne!(
            bits(&start),
            bits(&plain.values()),
            "the steps moved the parameters"
        );
    }
}

#[test]
fn the_gradients_left_are_backwards_bit_for_bit() {
    let (mut plain, mut folded) = (Net::new(5), Net::new(5));
    let loss = plain.record();
    plain.tape.backward(loss).unwrap();
    let loss = folded.record();
    folded
        .tape
        .backward_folding(loss, |_, _| Some(FoldedUpdate::sgd(0.1)))
        .unwrap();
    for k in [1, 3] {
        let (a, b) = (plain.params[k], folded.params[k]);
        let (a, b) = (plain.tape.grad(a).unwrap(), folded.tape.grad(b).unwrap());
        assert_eq!(a, b, "parameter {k}");
    }
    assert!(!folded.tape.has_parameter_grads());
}

#[test]
fn declining_every_fold_is_backward() {
    let (mut plain, mut folded) = (Net::new(7), Net::new(7));
    for _ in 0..2 {
        let loss = plain.record();
        step_plain(&mut plain.tape, loss, FoldedUpdate::sgd(0.1));
        let loss = folded.record();
        let (asked, left) = step_folded(&mut folded.tape, loss, None);
        assert_eq!((asked, left), (vec![0, 2, 4], vec![0, 1, 2, 3, 4]));
        assert_eq!(bits(&plain.values()), bits(&folded.values()));
    }
}

/// One step of `loss(tape, w, v)` with every update offered, against `backward` and the same
/// update; returns the positions that folded.
fn compare(
    build: impl Fn(&mut Tape<f64>, NodeId, NodeId) -> NodeId,
    w: ArrayD<f64>,
    v: ArrayD<f64>,
) -> Vec<usize> {
    let update = FoldedUpdate::sgd(0.25);
    let run = |folding: bool| {
        let mut tape = Tape::new();
        let (wi, vi) = (tape.parameter(&w).unwrap(), tape.parameter(&v).unwrap());
        let loss = build(&mut tape, wi, vi);
        let mut asked = Vec::new();
        if folding {
            asked = step_folded(&mut tape, loss, Some(update)).0;
        } else {
            step_plain(&mut tape, loss, update);
        }
        let values = vec![
            tape.data(wi).unwrap().to_vec(),
            tape.data(vi).unwrap().to_vec(),
        ];
        (values, asked)
    };
    let (plain, _) = run(false);
    let (folded, asked) = run(true);
    assert_close(&plain, &folded, "values");
    asked
}

#[test]
fn only_a_factor_used_once_folds_and_one_per_product() {
    let mut rng = Rng::new(11);
    let square =
        || ArrayD::from_shape_vec(vec![3, 3], (0..9).map(|i| i as f64 * 0.1 - 0.4).collect());
    let (a, b) = (square().unwrap(), rng.array(&[3, 3], 0.5));
    // w used by two products: w does not fold; v, used once, does.
    let twice = |t: &mut Tape<f64>, w: NodeId, v: NodeId| {
        let p = t.matmul(v, w).unwrap();
        let q = t.matmul(p, w).unwrap();
        t.sum(q).unwrap()
    };
    assert_eq!(compare(twice, a.clone(), b.clone()), vec![1]);
    // w·w: one product, but w is both factors.
    let squared = |t: &mut Tape<f64>, w: NodeId, v: NodeId| {
        let p = t.matmul(w, w).unwrap();
        let q = t.mul(p, v).unwrap();
        t.sum(q).unwrap()
    };
    assert_eq!(compare(squared, a.clone(), b.clone()), Vec::<usize>::new());
    // w·v, both parameters used once: one of them folds, the other's gradient reads the old
    // value of the first.
    let both = |t: &mut Tape<f64>, w: NodeId, v: NodeId| {
        let p = t.matmul(w, v).unwrap();
        let q = t.tanh(p).unwrap();
        t.sum(q).unwrap()
    };
    assert_eq!(compare(both, a.clone(), b.clone()), vec![0]);
    // w used by a sum and a product, v by the sum alone: neither folds.
    let sum = |t: &mut Tape<f64>, w: NodeId, v: NodeId| {
        let p = t.add(w, v).unwrap();
        let q = t.matmul(p, w).unwrap();
        t.sum(q).unwrap()
    };
    assert_eq!(compare(sum, a, b), Vec::<usize>::new());
}

#[test]
fn a_parameter_off_the_losss_path_gets_the_update_of_a_zero_gradient() {
    let mut rng = Rng::new(13);
    let (w, v) = (rng.array(&[3, 2], 0.5), rng.array(&[2, 2], 0.5));
    let update = FoldedUpdate {
        keep: 0.5,
        step: -0.1,
    };
    let mut tape = Tape::new();
    let (wi, vi) = (tape.parameter(&w).unwrap(), tape.parameter(&v).unwrap());
    // v's only consumer is recorded but the loss does not depend on it.
    let x = tape.input(rng.array(&[4, 3], 1.0)).unwrap();
    let unused = tape.matmul(x, wi).unwrap();
    let _ = tape.matmul(unused, vi).unwrap();
    let y = tape.matmul(x, wi).unwrap();
    let loss = tape.sum(y).unwrap();
    let mut left = Vec::new();
    tape.backward_folding(loss, |_, _| Some(update)).unwrap();
    tape.update_parameters(|k, _, value, grad| {
        left.push(k);
        assert_eq!(grad.iter().all(|&g| g == 0.0), k == 1, "parameter {k}");
        apply(update, value, grad);
        Ok::<(), Error>(())
    })
    .unwrap();
    // w is used twice (no fold, a gradient); v's consumer is never reached: zeros.
    assert_eq!(left, [0, 1]);
    let halved: Vec<f64> = v.iter().map(|&e| e * 0.5).collect();
    assert_eq!(tape.data(vi).unwrap(), &halved[..]);
}

#[test]
fn a_loss_that_cannot_be_swept_is_refused_before_anything_changes() {
    let mut net = Net::new(17);
    let before = net.values();
    let loss = net.record();
    assert!(net.tape.check_loss(loss).is_ok());
    let x = net.tape.input(ndarray::array![1.0, 2.0]).unwrap();
    let mut asked = 0;
    let err = net.tape.backward_folding(x, |_, _| {
        asked += 1;
        Some(FoldedUpdate::sgd(1.0))
    });
    assert!(matches!(err, Err(Error::LossNotScalar { .. })), "{err:?}");
    assert_eq!((asked, net.values()), (0, before));
}

#[test]
fn folded_steps_are_bit_identical_for_1_2_and_4_threads() {
    let run = |threads: usize| -> Vec<u64> {
        on_threads(threads, || {
            let mut rng = Rng::new(19);
            let mut tape = Tape::<f32>::new();
            let w1 = tape.parameter(rng.array(&[300, 200], 0.1).mapv(|v| v as f32));
            let b1 = tape.parameter(rng.array(&[200], 0.1).mapv(|v| v as f32));
            let w2 = tape.parameter(rng.array(&[200, 10], 0.1).mapv(|v| v as f32));
            let (w1, b1, w2) = (w1.unwrap(), b1.unwrap(), w2.unwrap());
            let mark = tape.mark();
            let x = rng.array(&[256, 300], 1.0).mapv(|v| v as f32);
            for _ in 0..3 {
                tape.rewind(mark).unwrap();
                let xi = tape.input(&x).unwrap();
                let z = tape.linear(xi, w1, b1).unwrap();
                let h = tape.relu(z).unwrap();
                let y = tape.matmul(h, w2).unwrap();
                let sq = tape.mul(y, y).unwrap();
                let loss = tape.mean(sq).unwrap();
                tape.backward_folding(loss, |_, _| Some(FoldedUpdate::sgd(0.01)))
                    .unwrap();
                tape.update_parameters(|_, _, value, grad| {
                    for (v, &g) in value.iter_mut().zip(grad) {
                        *v -= 0.01 * g;
                    }
                    Ok::<(), Error>(())
                })
                .unwrap();
            }
            [w1, b1, w2]
                .iter()
                .flat_map(|&p| tape.data(p).unwrap().to_vec())
                .map(f32::to_bits)
                .map(u64::from)
                .collect()
        })
    };
    let one = run(1);
    assert!(one == run(2), "2 threads differ from 1");
    assert!(one == run(4), "4 threads differ from 1");
}

/// A deeper network, folded against `backward` and the same update: two `linear` layers whose
/// second one's input takes a gradient (it reads the old weight before the fold), a narrow last
/// layer (3 outputs: its weight's gradient is computed transposed, through a buffer) with a
/// decaying update, a batch of 600 (three blocks of the inner dimension), and a product whose
/// consumer the loss does not reach, recorded between those it does.
#[test]
fn deep_narrow_and_long_products_fold_to_the_values_of_backward() {
    let mut rng = Rng::new(29);
    let (w0, b0) = (rng.array(&[20, 40], 0.3), rng.array(&[40], 0.3));
    let (w1, b1) = (rng.array(&[40, 3], 0.3), rng.array(&[3], 0.3));
    let v = rng.array(&[20, 5], 0.3);
    let x = rng.array(&[600, 20], 1.0);
    let update = FoldedUpdate {
        keep: 0.9,
        step: -0.05,
    };
    let run = |folding: bool| {
        let mut tape = Tape::<f64>::new();
        let params = [&w0, &b0, &v, &w1, &b1].map(|p| tape.parameter(p).unwrap());
        let [w0, b0, v, w1, b1] = params;
        let x = tape.input(&x).unwrap();
        let z = tape.linear(x, w0, b0).unwrap();
        let h = tape.tanh(z).unwrap();
        let _unused = tape.matmul(x, v).unwrap();
        let y = tape.linear(h, w1, b1).unwrap();
        let sq = tape.mul(y, y).unwrap();
        let loss = tape.mean(sq).unwrap();
        if folding {
            let (asked, left) = step_folded(&mut tape, loss, Some(update));
            // w0, v and w1 were asked; v's product was never reached, so v was left with a
            // zero gradient for the update, with the biases.
            assert_eq!((asked, left), (vec![0, 2, 3], vec![1, 2, 4]));
        } else {
            step_plain(&mut tape, loss, update);
        }
        params.map(|p| tape.data(p).unwrap().to_vec()).to_vec()
    };
    let (plain, folded) = (run(false), run(true));
    assert_close(&plain, &folded, "values");
    let decayed: Vec<f64> = v.iter().map(|&e| 0.9 * e).collect();
    assert_eq!(folded[2], decayed, "v: the update of a zero gradient");
}
