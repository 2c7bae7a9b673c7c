//! The kernels of issue 12 (convolution, pooling, normalisation, embedding) chained as a small
//! model through the public API, as the wiring will chain them: the gradient of the whole chain,
//! from its VJPs in reverse order, against central finite differences, and `f32` against `f64`.

use wengert_ops::kernels::conv::{
    Conv1dArgs, Conv2dArgs, conv_vjp_bias, conv1d, conv1d_shape, conv1d_vjp_input,
    conv1d_vjp_weight, conv2d, conv2d_shape, conv2d_vjp_input, conv2d_vjp_weight,
};
use wengert_ops::kernels::embedding::{embedding, embedding_shape, embedding_vjp};
use wengert_ops::kernels::norm::{
    BatchNormArgs, NormGrads, batch_norm_saved_len, batch_norm_train, batch_norm_vjp, layer_norm,
    layer_norm_saved_len, layer_norm_vjp,
};
use wengert_ops::kernels::pool::{
    Pool2dArgs, adaptive_avg_pool2d, adaptive_avg_pool2d_shape, adaptive_avg_pool2d_vjp,
    avg_pool2d, avg_pool2d_shape, avg_pool2d_vjp, max_pool2d, max_pool2d_shape, max_pool2d_vjp,
};
use wengert_ops::{Float, Shape, TensorRef};

fn shape(d: &[usize]) -> Shape {
    Shape::new(d).unwrap()
}

/// Deterministic values in (-1, 1).
fn data(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let v =
                (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0x2545_F491);
            ((v >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn cast<E: Float>(x: &[f64]) -> Vec<E> {
    x.iter().map(|&v| E::from_f64(v)).collect()
}

/// conv 2→4 3×3 pad 1 (bias) → max-pool 2 → batch norm (γ, β) → conv 4→4 3×3 pad 1 groups 2
/// → avg-pool 2 pad 1 → adaptive avg-pool 1×1 → layer norm over the 4 channels; the loss is
/// `Σ out·c`. Returns the loss and, when `grads`, the gradients of the input and of the first
/// convolution's weight and bias.
struct Cnn {
    x: Shape,
    w1: Shape,
    w2: Shape,
    a1: Conv2dArgs,
    a2: Conv2dArgs,
    pool: Pool2dArgs,
    avg: Pool2dArgs,
}

impl Cnn {
    fn new() -> Cnn {
        Cnn {
            x: shape(&[3, 2, 8, 8]),
            w1: shape(&[4, 2, 3, 3]),
            w2: shape(&[4, 2, 3, 3]),
            a1: Conv2dArgs {
                padding: [1, 1],
                ..Default::default()
            },
            a2: Conv2dArgs {
                padding: [1, 1],
                groups: 2,
                ..Default::default()
            },
            pool: Pool2dArgs::new([2, 2]),
            avg: Pool2dArgs {
                padding: [1, 1],
                ..Pool2dArgs::new([2, 2])
            },
        }
    }

    #[allow(clippy::type_complexity)]
    fn run<E: Float>(&self, x: &[E], w1: &[E], b1: &[E], p: &[E]) -> (E, Vec<E>, Vec<E>, Vec<E>) {
        let s1 = conv2d_shape(&self.x, &self.w1, Some(&Shape::vector(4)), self.a1).unwrap();
        let s2 = max_pool2d_shape(&s1, self.pool).unwrap();
        let s3 = conv2d_shape(&s2, &self.w2, None, self.a2).unwrap();
        let s4 = avg_pool2d_shape(&s3, self.avg).unwrap();
        let s5 = adaptive_avg_pool2d_shape(&s4, [1, 1]).unwrap();
        let s6 = shape(&[3, 4]);
        let (gamma, beta, w2, c) = (&p[..4], &p[4..8], &p[8..80], &p[80..92]);
        let mut scratch = Vec::new();
        let mut y1 = vec![E::zero(); s1.numel()];
        conv2d(
            TensorRef::new(&self.x, x).unwrap(),
            TensorRef::new(&self.w1, w1).unwrap(),
            Some(b1),
            self.a1,
            &mut scratch,
            &mut y1,
        );
        let mut y2 = vec![E::zero(); s2.numel()];
        max_pool2d(TensorRef::new(&s1, &y1).unwrap(), self.pool, &mut y2);
        let mut y2n = vec![E::zero(); s2.numel()];
        let mut saved_bn = vec![E::zero(); batch_norm_saved_len(&s2)];
        let bn = BatchNormArgs::default();
        batch_norm_train(
            TensorRef::new(&s2, &y2).unwrap(),
            Some(gamma),
            Some(beta),
            bn,
            None,
            &mut saved_bn,
            &mut y2n,
        );
        let mut y3 = vec![E::zero(); s3.numel()];
        conv2d(
            TensorRef::new(&s2, &y2n).unwrap(),
            TensorRef::new(&self.w2, w2).unwrap(),
            None,
            self.a2,
            &mut scratch,
            &mut y3,
        );
        let mut y4 = vec![E::zero(); s4.numel()];
        avg_pool2d(TensorRef::new(&s3, &y3).unwrap(), self.avg, &mut y4);
        let mut y5 = vec![E::zero(); s5.numel()];
        adaptive_avg_pool2d(TensorRef::new(&s4, &y4).unwrap(), [1, 1], &mut y5);
        let mut y6 = vec![E::zero(); s6.numel()];
        let mut saved_ln = vec![E::zero(); layer_norm_saved_len(&s6, 1)];
        layer_norm(
            TensorRef::new(&s6, &y5).unwrap(),
            1,
            None,
            None,
            1e-5,
            &mut saved_ln,
            &mut y6,
        );
        let loss = y6
            .iter()
            .zip(c)
            .fold(E::zero(), |acc, (&y, &c)| acc + y * c);

        // Backward, each VJP overwriting its input's gradient.
        let d6 = c.to_vec();
        let mut d5 = vec![E::zero(); y5.len()];
        let g = NormGrads {
            x: Some(&mut d5[..]),
            ..Default::default()
        };
        layer_norm_vjp::<E, false>(
            TensorRef::new(&s6, &y5).unwrap(),
            1,
            None,
            &saved_ln,
            &d6,
            g,
        );
        let mut d4 = vec![E::zero(); y4.len()];
        adaptive_avg_pool2d_vjp::<E, false>(&s4, [1, 1], &d5, &mut d4);
        let mut d3 = vec![E::zero(); y3.len()];
        avg_pool2d_vjp::<E, false>(&s3, self.avg, &d4, &mut d3);
        let mut d2n = vec![E::zero(); y2n.len()];
        conv2d_vjp_input::<E, false>(
            &s2,
            TensorRef::new(&self.w2, w2).unwrap(),
            self.a2,
            &d3,
            &mut scratch,
            &mut d2n,
        );
        let mut d2 = vec![E::zero(); y2.len()];
        let g = NormGrads {
            x: Some(&mut d2[..]),
            ..Default::default()
        };
        batch_norm_vjp::<E, false>(
            TensorRef::new(&s2, &y2).unwrap(),
            Some(gamma),
            &saved_bn,
            true,
            &d2n,
            g,
        );
        let mut d1 = vec![E::zero(); y1.len()];
        max_pool2d_vjp::<E, false>(TensorRef::new(&s1, &y1).unwrap(), self.pool, &d2, &mut d1);
        let mut dx = vec![E::zero(); x.len()];
        conv2d_vjp_input::<E, false>(
            &self.x,
            TensorRef::new(&self.w1, w1).unwrap(),
            self.a1,
            &d1,
            &mut scratch,
            &mut dx,
        );
        let mut dw1 = vec![E::zero(); w1.len()];
        conv2d_vjp_weight::<E, false>(
            TensorRef::new(&self.x, x).unwrap(),
            &self.w1,
            self.a1,
            &d1,
            &mut scratch,
            &mut dw1,
        );
        let mut db1 = vec![E::zero(); b1.len()];
        conv_vjp_bias::<E, false>(&s1, &d1, &mut db1);
        (loss, dx, dw1, db1)
    }
}

#[test]
fn a_small_cnn_backpropagates_through_every_kernel() {
    let m = Cnn::new();
    let (x, w1, b1, p) = (
        data(m.x.numel(), 1),
        data(m.w1.numel(), 2),
        data(4, 3),
        data(92, 4),
    );
    let (_, dx, dw1, db1) = m.run(&x, &w1, &b1, &p);
    let mut worst = 0.0f64;
    for (which, grad) in [(0, &dx), (1, &dw1), (2, &db1)] {
        let base = [&x, &w1, &b1][which];
        for (i, &analytic) in grad.iter().enumerate() {
            let h = 1e-6;
            let mut v = base.clone();
            v[i] += h;
            let f = |v: &[f64]| match which {
                0 => m.run(v, &w1, &b1, &p).0,
                1 => m.run(&x, v, &b1, &p).0,
                _ => m.run(&x, &w1, v, &p).0,
            };
            let up = f(&v);
            v[i] -= 2.0 * h;
            let numeric = (up - f(&v)) / (2.0 * h);
            let err = (numeric - analytic).abs() / numeric.abs().max(1.0);
            worst = worst.max(err);
            assert!(
                err < 1e-6,
                "input {which} at {i}: numeric {numeric}, analytic {analytic}"
            );
        }
    }
    eprintln!("fd worst small cnn: {worst:e}");
}

#[test]
fn the_cnn_in_f32_agrees_with_f64() {
    let m = Cnn::new();
    let (x, w1, b1, p) = (
        data(m.x.numel(), 5),
        data(m.w1.numel(), 6),
        data(4, 7),
        data(92, 8),
    );
    let (l64, dx64, dw64, db64) = m.run(&x, &w1, &b1, &p);
    let (l32, dx32, dw32, db32) = m.run(&cast::<f32>(&x), &cast(&w1), &cast(&b1), &cast(&p));
    assert!((l64 - f64::from(l32)).abs() < 1e-4, "{l64} {l32}");
    for (a, b) in [(dx64, dx32), (dw64, dw32), (db64, db32)] {
        for (a, b) in a.iter().zip(&b) {
            assert!(
                (a - f64::from(*b)).abs() < 1e-3 * a.abs().max(1.0),
                "{a} {b}"
            );
        }
    }
}

#[test]
fn a_character_model_front_end_embeds_then_convolves_along_time() {
    // Tokens [2, 5] → embedding [N, L, D] → transposed to [N, D, L] (PyTorch's
    // `emb(x).transpose(1, 2)`) → conv1d along the sequence; then back again.
    let (table_s, idx_s) = (shape(&[7, 3]), shape(&[2, 5]));
    let table = data(21, 9);
    let idx = [1.0, 6.0, 0.0, 6.0, 2.0, 3.0, 3.0, 5.0, 4.0, 1.0];
    let es = embedding_shape(&idx_s, &table_s, Some(0)).unwrap();
    let mut e = vec![0.0; es.numel()];
    embedding(TensorRef::new(&table_s, &table).unwrap(), &idx, &mut e).unwrap();
    // [N, L, D] → [N, D, L].
    let (n, l, d) = (2, 5, 3);
    let mut ncl = vec![0.0; e.len()];
    for b in 0..n {
        for t in 0..l {
            for c in 0..d {
                ncl[(b * d + c) * l + t] = e[(b * l + t) * d + c];
            }
        }
    }
    let (xs, ws) = (shape(&[n, d, l]), shape(&[4, 3, 2]));
    let a = Conv1dArgs {
        padding: 1,
        dilation: 2,
        ..Default::default()
    };
    let ys = conv1d_shape(&xs, &ws, None, a).unwrap();
    // Length 5 padded to 7, a kernel of 2 taps dilated to span 3: 5 positions.
    assert_eq!(ys.dims(), &[2, 4, 5]);
    let w = data(ws.numel(), 10);
    let mut y = vec![0.0; ys.numel()];
    let mut scratch = Vec::new();
    conv1d(
        TensorRef::new(&xs, &ncl).unwrap(),
        TensorRef::new(&ws, &w).unwrap(),
        None,
        a,
        &mut scratch,
        &mut y,
    );
    // Backward to the table and the weight: dy = 1.
    let g = vec![1.0; y.len()];
    let mut dncl = vec![0.0; ncl.len()];
    conv1d_vjp_input::<f64, false>(
        &xs,
        TensorRef::new(&ws, &w).unwrap(),
        a,
        &g,
        &mut scratch,
        &mut dncl,
    );
    let mut dw = vec![0.0; w.len()];
    conv1d_vjp_weight::<f64, false>(
        TensorRef::new(&xs, &ncl).unwrap(),
        &ws,
        a,
        &g,
        &mut scratch,
        &mut dw,
    );
    let mut de = vec![0.0; e.len()];
    for b in 0..n {
        for t in 0..l {
            for c in 0..d {
                de[(b * l + t) * d + c] = dncl[(b * d + c) * l + t];
            }
        }
    }
    let mut dtable = vec![f64::NAN; table.len()];
    embedding_vjp::<f64, false>(&table_s, &idx, Some(0), &de, &mut dtable);
    // The padding row (0) learns nothing; row 6, used twice, gets both positions' gradients.
    assert_eq!(&dtable[..3], &[0.0; 3]);
    for c in 0..d {
        let want = de[d + c] + de[3 * d + c];
        assert!((dtable[6 * d + c] - want).abs() < 1e-15);
    }
    // The loss Σy is linear in the weight: dW is the sum of what each tap read.
    let total: f64 = dw.iter().zip(&w).map(|(g, w)| g * w).sum();
    assert!((total - y.iter().sum::<f64>()).abs() < 1e-12);
}
