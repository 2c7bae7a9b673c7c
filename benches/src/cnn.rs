//! W6's small CNN on wengert's tape ([`TapeCnn`]), and its convolutions' products alone on the
//! same kernels ([`ConvPasses`]), to measure their rate apart from the rest of the step.
//!
//! The network ([`CnnSpec`]): `conv(3×3, pad 1)`, ReLU, 2×2 max-pool, twice; flatten; a linear
//! layer with ReLU; a linear layer; softmax cross-entropy averaged over the batch.

use wengert_ops::kernels::conv::{conv2d, conv2d_vjp_input, conv2d_vjp_weight};
use wengert_ops::{Conv2dArgs, Pool2dArgs, Shape, TensorRef};
use wengert_tape::{Mark, NodeId, Result, Shaped, Tape};

use crate::mlp::Optimizer;
use crate::shared::{CnnSpec, Rng, cnn_init, normal_vec};

/// The convolutions' arguments: 3×3 kernels, stride 1, one pixel of zero padding.
const CONV: Conv2dArgs = Conv2dArgs {
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
};

/// 2×2 max pooling, stride 2.
fn pool() -> Pool2dArgs {
    Pool2dArgs::new([2, 2])
}

/// The network on wengert's tape, trained as [`TapeMlp`](crate::mlp::TapeMlp) is: parameters
/// recorded once before a mark, every step rewinds to it, records the forward pass and the
/// loss, sweeps back and updates the parameters in place. A warm step allocates nothing (the
/// convolutions keep their patch buffers across rewinds).
#[derive(Debug)]
pub struct TapeCnn {
    tape: Tape<f32>,
    /// Each layer's weight and bias ids (two convolutions, then two linear layers); parameter
    /// `i` has id `i`.
    layers: [(NodeId, NodeId); 4],
    mark: Mark,
    spec: CnnSpec,
}

impl TapeCnn {
    /// Records `params` (as [`cnn_init`] lays them out for `spec`) on a new tape.
    pub fn new(spec: CnnSpec, params: &[(Vec<f32>, Vec<f32>)]) -> Result<Self> {
        let mut tape = Tape::new();
        let mut ids = Vec::with_capacity(4);
        for ((dims, outputs), (w, b)) in spec.param_shapes().into_iter().zip(params) {
            let w = tape.parameter(Shaped(&dims[..], w))?;
            let b = tape.parameter(Shaped(&[outputs], b))?;
            ids.push((w, b));
        }
        let layers = [ids[0], ids[1], ids[2], ids[3]];
        let mark = tape.mark();
        Ok(TapeCnn {
            tape,
            layers,
            mark,
            spec,
        })
    }

    /// Rewinds to the parameters and records the forward pass of `x` (`batch` images); returns
    /// the logits' id.
    fn forward(&mut self, x: &[f32]) -> Result<NodeId> {
        let tape = &mut self.tape;
        let s = self.spec;
        tape.rewind(self.mark)?;
        let mut h = tape.input(Shaped(&[s.batch, s.channels[0], s.side, s.side], x))?;
        for &(w, b) in &self.layers[..2] {
            h = tape.conv2d(h, w, Some(b), CONV)?;
            h = tape.relu(h)?;
            h = tape.max_pool2d(h, pool())?;
        }
        h = tape.flatten(h, 1, 3)?;
        let (w, b) = self.layers[2];
        let z = tape.linear(h, w, b)?;
        h = tape.relu(z)?;
        let (w, b) = self.layers[3];
        tape.linear(h, w, b)
    }

    /// One training step on `x` (`batch` images, NCHW) and `labels`; returns the loss.
    pub fn step(&mut self, x: &[f32], labels: &[usize], opt: &mut impl Optimizer) -> Result<f32> {
        let logits = self.forward(x)?;
        let y = self.tape.labels(labels)?;
        let loss = self.tape.cross_entropy(logits, y)?;
        let value = self.tape.item(loss)?;
        opt.begin_step();
        // The dense layers' weights take plain SGD's step inside their gradients' products.
        self.tape.backward_folding(loss, |i, _| opt.folded(i))?;
        self.tape
            .update_parameters(|i, _, value, grad| {
                opt.update(i, value, grad);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        Ok(value)
    }

    /// Every parameter's values, in order (to compare runs).
    pub fn parameters(&self) -> Result<Vec<Vec<f32>>> {
        self.layers
            .iter()
            .flat_map(|&(w, b)| [w, b])
            .map(|id| self.tape.data(id).map(<[f32]>::to_vec))
            .collect()
    }
}

/// One convolution's operands and buffers, shaped as in the step.
#[derive(Debug)]
struct ConvLayer {
    x_shape: Shape,
    w_shape: Shape,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    out: Vec<f32>,
    /// Stands for the gradient arriving at the output.
    g: Vec<f32>,
    gw: Vec<f32>,
    /// The input's gradient, when the step computes it.
    gi: Option<Vec<f32>>,
}

/// The products of W6's convolutions alone: each convolution's forward pass and weight
/// gradient, and the second's input gradient, on wengert-ops' kernels (the ones the tape's
/// `conv2d` and its VJPs call) with the step's shapes, every buffer kept. What the step spends
/// beside them (pooling, ReLU, the linear layers, recording) is left out, so their FLOPs over
/// this time is the convolutions' own rate.
#[derive(Debug)]
pub struct ConvPasses {
    layers: [ConvLayer; 2],
    scratch: Vec<f32>,
}

impl ConvPasses {
    /// Operands for `spec`'s two convolutions, from a seeded stream.
    pub fn new(spec: &CnnSpec) -> Result<Self> {
        let mut rng = Rng::new(crate::shared::SEED ^ 0xC0);
        let [c0, c1, c2] = spec.channels;
        let (n, s) = (spec.batch, spec.side);
        let mut layer = |c: usize, o: usize, side: usize, input_grad: bool| -> Result<ConvLayer> {
            let x_shape = Shape::new(&[n, c, side, side])?;
            let w_shape = Shape::new(&[o, c, 3, 3])?;
            let out_len = n * o * side * side;
            Ok(ConvLayer {
                x: normal_vec(&mut rng, x_shape.numel()),
                w: normal_vec(&mut rng, w_shape.numel()),
                b: normal_vec(&mut rng, o),
                out: vec![0.0; out_len],
                g: normal_vec(&mut rng, out_len),
                gw: vec![0.0; w_shape.numel()],
                gi: input_grad.then(|| vec![0.0; x_shape.numel()]),
                x_shape,
                w_shape,
            })
        };
        let first = layer(c0, c1, s, false)?;
        let second = layer(c1, c2, s / 2, true)?;
        Ok(ConvPasses {
            layers: [first, second],
            scratch: Vec::new(),
        })
    }

    /// Runs every pass once.
    pub fn run(&mut self) {
        for l in &mut self.layers {
            let x = TensorRef::trusted(&l.x_shape, &l.x);
            let w = TensorRef::trusted(&l.w_shape, &l.w);
            conv2d(x, w, Some(&l.b), CONV, &mut self.scratch, &mut l.out);
            conv2d_vjp_weight::<f32, false>(
                x,
                &l.w_shape,
                CONV,
                &l.g,
                &mut self.scratch,
                &mut l.gw,
            );
            if let Some(gi) = &mut l.gi {
                conv2d_vjp_input::<f32, false>(&l.x_shape, w, CONV, &l.g, &mut self.scratch, gi);
            }
        }
    }
}

/// A batch and the initial parameters of a CNN.
#[derive(Debug, Clone)]
pub struct CnnData {
    /// The images, NCHW.
    pub x: Vec<f32>,
    /// One class per image.
    pub labels: Vec<usize>,
    /// Weights and biases as [`cnn_init`] lays them out.
    pub params: Vec<(Vec<f32>, Vec<f32>)>,
}

/// A W6 batch and initial parameters for `spec`, drawn as W2 draws its own: the images, the
/// labels, then the parameters, from one stream seeded with [`SEED`](crate::shared::SEED).
pub fn w6_data(spec: &CnnSpec) -> CnnData {
    let mut rng = Rng::new(crate::shared::SEED);
    let x = normal_vec(&mut rng, spec.batch * spec.image_len());
    let labels = crate::shared::label_vec(&mut rng, spec.batch, spec.classes);
    let params = cnn_init(&mut rng, spec);
    CnnData { x, labels, params }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Sgd;
    use crate::shared::W6;

    /// W6's network at a size a debug build trains in milliseconds.
    const SMALL: CnnSpec = CnnSpec {
        batch: 6,
        side: 8,
        channels: [1, 3, 4],
        hidden: 5,
        classes: 3,
    };

    #[test]
    fn w6_convolutions_are_1_45_gflop_per_step() {
        assert_eq!(W6.flat(), 3136);
        let gflop = W6.conv_step_flops() / 1e9;
        assert!((gflop - 1.445).abs() < 0.001, "{gflop}");
        let params = cnn_init(&mut Rng::new(1), &W6);
        let lens: Vec<usize> = params.iter().map(|(w, b)| w.len() + b.len()).collect();
        assert_eq!(lens, [32 * 9 + 32, 64 * 288 + 64, 3136 * 128 + 128, 1290]);
    }

    #[test]
    fn training_lowers_the_loss() {
        let CnnData { x, labels, params } = w6_data(&SMALL);
        let mut cnn = TapeCnn::new(SMALL, &params).unwrap();
        let mut sgd = Sgd { lr: 0.1 };
        let first = cnn.step(&x, &labels, &mut sgd).unwrap();
        // log(3) for a network that knows nothing.
        assert!((first - 3f32.ln()).abs() < 0.3, "{first}");
        let mut last = first;
        for _ in 0..200 {
            last = cnn.step(&x, &labels, &mut sgd).unwrap();
        }
        assert!(last < 0.5 * first, "{first} -> {last}");
    }

    #[test]
    fn a_step_moves_each_parameter_against_its_finite_difference_gradient() {
        // The tape's gradient (read off the SGD update) against central differences of the
        // loss, at f32: a step of the whole network, not of each op alone.
        let CnnData { x, labels, params } = w6_data(&SMALL);
        let lr = 1.0;
        let mut cnn = TapeCnn::new(SMALL, &params).unwrap();
        cnn.step(&x, &labels, &mut Sgd { lr }).unwrap();
        let after = cnn.parameters().unwrap();
        let flat_before: Vec<&Vec<f32>> = params.iter().flat_map(|(w, b)| [w, b]).collect();
        let loss_at = |k: usize, i: usize, delta: f32| {
            let mut p = params.clone();
            let (w, b) = &mut p[k / 2];
            let v = if k.is_multiple_of(2) { w } else { b };
            v[i] += delta;
            let mut cnn = TapeCnn::new(SMALL, &p).unwrap();
            cnn.step(&x, &labels, &mut Sgd { lr: 0.0 }).unwrap()
        };
        for (k, (before, after)) in flat_before.iter().zip(&after).enumerate() {
            for i in [0, before.len() / 2, before.len() - 1] {
                let grad = (before[i] - after[i]) / lr;
                // Small enough not to cross a ReLU or pooling kink, large enough for f32.
                let h = 2e-3;
                let numeric = (loss_at(k, i, h) - loss_at(k, i, -h)) / (2.0 * h);
                assert!(
                    (grad - numeric).abs() < 2e-3 + 0.05 * numeric.abs(),
                    "parameter {k}[{i}]: tape {grad}, finite difference {numeric}"
                );
            }
        }
    }

    #[test]
    fn steps_are_bit_identical_on_one_and_two_threads() {
        let CnnData { x, labels, params } = w6_data(&SMALL);
        let run = |threads: usize| {
            let pool = crate::workloads::pool(threads).unwrap();
            pool.install(|| {
                let mut cnn = TapeCnn::new(SMALL, &params).unwrap();
                for _ in 0..3 {
                    cnn.step(&x, &labels, &mut Sgd { lr: 0.1 }).unwrap();
                }
                cnn.parameters().unwrap()
            })
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn the_conv_passes_write_every_output() {
        let mut passes = ConvPasses::new(&SMALL).unwrap();
        passes.run();
        for l in &passes.layers {
            assert!(l.out.iter().any(|&v| v != 0.0));
            assert!(l.gw.iter().any(|&v| v != 0.0));
        }
        assert!(passes.layers[0].gi.is_none());
        assert!(
            passes.layers[1]
                .gi
                .as_ref()
                .unwrap()
                .iter()
                .any(|&v| v != 0.0)
        );
    }
}
