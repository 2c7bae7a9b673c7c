//! W3, the tape's overhead: a chain of tiny ops on one-element tensors, `y = y·w; y = y + b;
//! y = tanh(y)` repeated until [`W3_OPS`](crate::shared::W3_OPS) ops are recorded, then the
//! gradients of `y` with respect to `w` and `b`.

use std::time::Instant;

use wengert_tape::{Graph, Result, Shaped, Tape};

/// The chain's starting value and parameters: tanh keeps `y` in (-1, 1), so nothing overflows
/// however long the chain.
const X: f32 = 0.5;
const W: f32 = 0.9;
const B: f32 = 0.1;

/// Seconds spent recording (with the forward computation) and in the backward sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainTimes {
    /// Clearing the tape, recording the leaves and every op.
    pub record: f64,
    /// The reverse sweep to `w` and `b`.
    pub backward: f64,
}

/// Records the chain of `ops` ops on `tape` and sweeps back; returns the times and `(dy/dw,
/// dy/db)`.
pub fn tape_chain(tape: &mut Tape<f32>, ops: usize) -> Result<(ChainTimes, [f32; 2])> {
    let start = Instant::now();
    tape.clear();
    let mut y = tape.input(Shaped(&[1], &[X]))?;
    let w = tape.parameter(Shaped(&[1], &[W]))?;
    let b = tape.parameter(Shaped(&[1], &[B]))?;
    for i in 0..ops {
        y = match i % 3 {
            0 => tape.mul(y, w)?,
            1 => tape.add(y, b)?,
            _ => tape.tanh(y)?,
        };
    }
    let recorded = Instant::now();
    let grads = tape.backward(y)?;
    let dw = grads.data(w).expect("w has a gradient")[0];
    let db = grads.data(b).expect("b has a gradient")[0];
    let done = Instant::now();
    let times = ChainTimes {
        record: (recorded - start).as_secs_f64(),
        backward: (done - recorded).as_secs_f64(),
    };
    Ok((times, [dw, db]))
}

/// The same chain recorded through the handle API ([`Graph`] and its `Var`s:
/// `y.mul(&w)?`, `y.add(&b)?`, `y.tanh()?`), which is what users write; W3 reports this one.
pub fn graph_chain(graph: &Graph<f32>, ops: usize) -> Result<(ChainTimes, [f32; 2])> {
    let start = Instant::now();
    graph.clear()?;
    let mut y = graph.input(Shaped(&[1], &[X]))?;
    let w = graph.parameter(Shaped(&[1], &[W]))?;
    let b = graph.parameter(Shaped(&[1], &[B]))?;
    for i in 0..ops {
        y = match i % 3 {
            0 => y.mul(&w)?,
            1 => y.add(&b)?,
            _ => y.tanh()?,
        };
    }
    let recorded = Instant::now();
    let grads = y.backward()?;
    let (dw, db) = (grads[&w][0], grads[&b][0]);
    let done = Instant::now();
    let times = ChainTimes {
        record: (recorded - start).as_secs_f64(),
        backward: (done - recorded).as_secs_f64(),
    };
    Ok((times, [dw, db]))
}

/// The same chain on plain `f32`s with every intermediate kept (what a tape must keep) in a
/// reused buffer, and its reverse sweep by hand: the floor for any engine on this workload.
pub fn plain_chain(values: &mut Vec<f32>, ops: usize) -> (ChainTimes, [f32; 2]) {
    let start = Instant::now();
    values.clear();
    let mut y = X;
    values.push(y);
    for i in 0..ops {
        y = match i % 3 {
            0 => y * W,
            1 => y + B,
            _ => y.tanh(),
        };
        values.push(y);
    }
    let recorded = Instant::now();
    let (mut g, mut dw, mut db) = (1.0f32, 0.0f32, 0.0f32);
    for i in (0..ops).rev() {
        match i % 3 {
            0 => {
                dw += g * values[i];
                g *= W;
            }
            1 => db += g,
            _ => g *= 1.0 - values[i + 1] * values[i + 1],
        }
    }
    let done = Instant::now();
    let times = ChainTimes {
        record: (recorded - start).as_secs_f64(),
        backward: (done - recorded).as_secs_f64(),
    };
    (std::hint::black_box(times), [dw, db])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tape_and_the_plain_chain_agree() {
        let mut tape = Tape::new();
        let graph = Graph::new();
        let mut values = Vec::new();
        for ops in [1, 2, 3, 7, 300] {
            let (_, on_tape) = tape_chain(&mut tape, ops).unwrap();
            let (_, through_handles) = graph_chain(&graph, ops).unwrap();
            assert_eq!(on_tape, through_handles, "{ops}");
            let (_, plain) = plain_chain(&mut values, ops);
            for (a, b) in on_tape.iter().zip(plain) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{ops}: {a} {b}");
            }
        }
        // After one op, y = x·w: dy/dw = x, dy/db = 0.
        let (_, g) = plain_chain(&mut values, 1);
        assert_eq!(g, [X, 0.0]);
    }
}
