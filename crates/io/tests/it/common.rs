//! A small classifier recorded on a tape, touching most ops, shared by the tests.

use ndarray::{ArrayD, IxDyn};
use wengert_io::{Element, TapeSaver};
use wengert_tape::{NodeId, Tape};

/// Deterministic pseudo-random values in [-1, 1).
pub fn values<E: Element>(shape: &[usize], seed: u64) -> ArrayD<E> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        E::from_f64((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
    })
}

/// Labels in `0..3` for a batch.
pub fn labels(batch: usize) -> Vec<usize> {
    (0..batch).map(|i| (i * 7 + 1) % 3).collect()
}

/// The ids a recording hands out.
pub struct Net {
    pub x: NodeId,
    pub y: NodeId,
    pub w1: NodeId,
    pub b1: NodeId,
    pub w2: NodeId,
    pub b2: NodeId,
    pub logits: NodeId,
    pub probs: NodeId,
    pub loss: NodeId,
}

/// Records the classifier on `tape` for a batch of `batch` examples.
pub fn record<E: Element>(tape: &mut Tape<E>, batch: usize) -> Net {
    let x = tape.input(values::<E>(&[batch, 4], 1)).unwrap();
    let y = tape.labels(&labels(batch)).unwrap();
    let w1 = tape.parameter(values::<E>(&[4, 8], 2)).unwrap();
    let b1 = tape.parameter(values::<E>(&[8], 3)).unwrap();
    let w2 = tape.parameter(values::<E>(&[8, 3], 4)).unwrap();
    let b2 = tape.parameter(values::<E>(&[3], 5)).unwrap();
    let z1 = tape.matmul(x, w1).unwrap();
    let z1 = tape.add(z1, b1).unwrap();
    let h = tape.tanh(z1).unwrap();
    // Shuffle features through a batch-keeping reshape and a transpose.
    let h3 = tape.reshape(h, &[batch, 2, 4]).unwrap();
    let ht = tape.transpose_axes(h3, 1, 2).unwrap();
    let h = tape.reshape(ht, &[batch, 8]).unwrap();
    let h = tape.relu(h).unwrap();
    let centre = tape.mean_axis_keepdim(h, 1).unwrap();
    let h = tape.sub(h, centre).unwrap();
    let h = tape.mul_scalar(h, E::from_f64(1.5)).unwrap();
    let h = tape.add_scalar(h, E::from_f64(0.25)).unwrap();
    let z2 = tape.matmul(h, w2).unwrap();
    let logits = tape.add(z2, b2).unwrap();
    let probs = tape.softmax(logits).unwrap();
    let loss = tape.cross_entropy(logits, y).unwrap();
    Net {
        x,
        y,
        w1,
        b1,
        w2,
        b2,
        logits,
        probs,
        loss,
    }
}

/// The classifier's file bytes, with every leaf named.
pub fn model_bytes<E: Element>() -> Vec<u8> {
    let mut tape = Tape::<E>::new();
    let net = record(&mut tape, 5);
    saver(&tape, &net).to_bytes().unwrap()
}

pub fn saver<'t, E: Element>(tape: &'t Tape<E>, net: &Net) -> TapeSaver<'t, E> {
    TapeSaver::new(tape)
        .input("x", net.x)
        .input("labels", net.y)
        .parameter("w1", net.w1)
        .parameter("b1", net.b1)
        .parameter("w2", net.w2)
        .parameter("b2", net.b2)
        .output("logits", net.logits)
        .output("probs", net.probs)
        .output("loss", net.loss)
}

/// A scratch directory removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A small tape file (the golden one's recipe): y = sigmoid(x · w + b), in f32.
pub fn small_tape_bytes() -> Vec<u8> {
    let mut tape = Tape::<f32>::new();
    let x = tape
        .input(ndarray::array![[1.0f32, 2.0], [-1.0, 0.5]])
        .unwrap();
    let w = tape
        .parameter(ndarray::array![[0.5f32, -0.25], [1.0, 0.75]])
        .unwrap();
    let b = tape.parameter(ndarray::array![0.125f32, -2.0]).unwrap();
    let xw = tape.matmul(x, w).unwrap();
    let z = tape.add(xw, b).unwrap();
    let y = tape.sigmoid(z).unwrap();
    TapeSaver::new(&tape)
        .input("x", x)
        .parameter("w", w)
        .parameter("b", b)
        .output("y", y)
        .to_bytes()
        .unwrap()
}
