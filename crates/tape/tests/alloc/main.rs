//! Heap allocations per step of a loop that records the ops of more than two inputs (concat,
//! stack, where, a weighted loss) and the layers' ops that keep a buffer per node (the
//! convolutions, on one thread and across rayon's), counted by a global allocator: once the first steps have
//! sized every buffer, rewinding and recording again allocates nothing, through the plain
//! methods and through handles. A test binary of its own, so that no other test allocates
//! while it counts; one test function, for the same reason.

#![allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; every method forwards to the system allocator"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array, array};
use wengert_tape::{
    Conv1dArgs, Conv2dArgs, CrossEntropyOptions, FoldedUpdate, Graph, Reduction, Tape,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: each method forwards its arguments unchanged to `System`, which upholds GlobalAlloc's
// contract; the counter is an atomic that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `new_size`'s rules.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn recording_ops_of_many_inputs_allocates_nothing_in_steady_state() {
    // Through the plain methods.
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![[0.5, -0.25], [0.1, 0.2]]).unwrap();
    let pos = tape.parameter(array![1.0, 2.0]).unwrap();
    let labels = tape.labels(&[1, 0]).unwrap();
    let start = tape.mark();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        tape.rewind(start).unwrap();
        let a = tape.tanh(w).unwrap();
        let b = tape.exp(w).unwrap();
        let joined = tape.concat([a, b, a, w, b, a, w, b, a], 1).unwrap();
        let stacked = tape.stack([a, b, w], 0).unwrap();
        let mask = tape.gt(a, b).unwrap();
        let chosen = tape.where_cond(mask, a, pos).unwrap();
        let s1 = tape.sum(joined).unwrap();
        let s2 = tape.sum(stacked).unwrap();
        let ce = tape
            .cross_entropy_weighted(chosen, labels, pos, CrossEntropyOptions::default())
            .unwrap();
        let bce = tape
            .binary_cross_entropy_with_logits_weighted(a, b, pos, Reduction::Sum)
            .unwrap();
        let l = tape.add(s1, s2).unwrap();
        let l = tape.add(l, ce).unwrap();
        let loss = tape.add(l, bce).unwrap();
        tape.backward(loss).unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(counts.iter().all(|&a| a == 0), "plain methods: {counts:?}");

    // The convolutions: a small one (run on the calling thread) with a bias, a 1-D one without,
    // and one past the kernel's threshold for rayon's threads; each node's patch buffer is
    // kept across rewinds.
    let mut tape = Tape::<f32>::new();
    let ramp = |n: usize| (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0);
    let x = tape
        .input(
            Array::from_iter(ramp(2 * 3 * 6 * 5))
                .into_shape_with_order((2, 3, 6, 5))
                .unwrap(),
        )
        .unwrap();
    let w = tape
        .parameter(
            Array::from_iter(ramp(4 * 3 * 3 * 3))
                .into_shape_with_order((4, 3, 3, 3))
                .unwrap(),
        )
        .unwrap();
    let b = tape.parameter(array![0.1f32, -0.2, 0.3, 0.0]).unwrap();
    let taps = tape
        .parameter(
            Array::from_iter(ramp(2 * 4 * 2))
                .into_shape_with_order((2, 4, 2))
                .unwrap(),
        )
        .unwrap();
    let big_x = tape
        .input(
            Array::from_iter(ramp(8 * 8 * 16 * 16))
                .into_shape_with_order((8, 8, 16, 16))
                .unwrap(),
        )
        .unwrap();
    let big_w = tape
        .parameter(
            Array::from_iter(ramp(16 * 8 * 3 * 3))
                .into_shape_with_order((16, 8, 3, 3))
                .unwrap(),
        )
        .unwrap();
    let padded = Conv2dArgs {
        padding: [1, 1],
        ..Conv2dArgs::default()
    };
    let start = tape.mark();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        tape.rewind(start).unwrap();
        let y = tape.conv2d(x, w, Some(b), padded).unwrap();
        let y = tape.relu(y).unwrap();
        let rows = tape.reshape(y, &[2, 4, 30]).unwrap();
        let z = tape
            .conv1d(rows, taps, None, Conv1dArgs::default())
            .unwrap();
        let big = tape.conv2d(big_x, big_w, None, padded).unwrap();
        let l1 = tape.sum(z).unwrap();
        let l2 = tape.mean(big).unwrap();
        let loss = tape.add(l1, l2).unwrap();
        tape.backward(loss).unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(counts.iter().all(|&a| a == 0), "convolutions: {counts:?}");

    // The embedding (a padding row among repeated tokens) and layer norms after it, as a
    // sequence model starts: each layer norm's statistics are kept in its node's buffer.
    let mut tape = Tape::<f32>::new();
    let table = tape
        .parameter(
            Array::from_iter((0..6 * 4).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0))
                .into_shape_with_order((6, 4))
                .unwrap(),
        )
        .unwrap();
    let tokens = tape
        .input(array![[1.0f32, 5.0, 1.0], [0.0, 3.0, 5.0]])
        .unwrap();
    let gamma = tape.parameter(array![1.0f32, 0.5, -0.5, 2.0]).unwrap();
    let beta = tape.parameter(array![0.0f32, 0.1, 0.2, -0.3]).unwrap();
    let start = tape.mark();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        tape.rewind(start).unwrap();
        let e = tape.embedding(table, tokens, Some(5)).unwrap();
        let h = tape
            .layer_norm(e, Some(gamma), Some(beta), 1, 1e-5)
            .unwrap();
        let h = tape.tanh(h).unwrap();
        let h = tape.layer_norm(h, None, None, 2, 1e-5).unwrap();
        let loss = tape.sum(h).unwrap();
        tape.backward(loss).unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(
        counts.iter().all(|&a| a == 0),
        "embedding and layer norm: {counts:?}"
    );

    // A folding sweep (dense layers, plain SGD's step in the weights' products), its plan kept
    // on the tape; the biases updated after.
    let mut tape = Tape::<f32>::new();
    let ramp = |n: usize| (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 16.0);
    let w1 = tape.parameter(
        Array::from_iter(ramp(6 * 4))
            .into_shape_with_order((6, 4))
            .unwrap(),
    );
    let b1 = tape.parameter(Array::from_iter(ramp(4))).unwrap();
    let w2 = tape.parameter(
        Array::from_iter(ramp(4 * 3))
            .into_shape_with_order((4, 3))
            .unwrap(),
    );
    let (w1, w2) = (w1.unwrap(), w2.unwrap());
    let x = tape.input(
        Array::from_iter(ramp(5 * 6))
            .into_shape_with_order((5, 6))
            .unwrap(),
    );
    let (x, labels) = (x.unwrap(), tape.labels(&[0, 1, 2, 0, 1]).unwrap());
    let start = tape.mark();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        tape.rewind(start).unwrap();
        let h = tape.linear(x, w1, b1).unwrap();
        let h = tape.relu(h).unwrap();
        let logits = tape.matmul(h, w2).unwrap();
        let loss = tape.cross_entropy(logits, labels).unwrap();
        tape.backward_folding(loss, |_, _| Some(FoldedUpdate::sgd(0.1)))
            .unwrap();
        tape.update_parameters(|_, _, value, grad| {
            value.iter_mut().zip(grad).for_each(|(v, g)| *v -= 0.1 * g);
            Ok::<(), wengert_tape::Error>(())
        })
        .unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(counts.iter().all(|&a| a == 0), "folding sweep: {counts:?}");

    // Batch norm as a CNN uses it: in training over [N, C, H, W] with its scale and shift, the
    // running estimates' new values recorded beside it (transpose, reshape, mean, var), then
    // in evaluation by those estimates; each node's statistics kept in its buffer.
    let mut tape = Tape::<f32>::new();
    let x = tape
        .input(
            Array::from_iter((0..4 * 3 * 2 * 5).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0))
                .into_shape_with_order((4, 3, 2, 5))
                .unwrap(),
        )
        .unwrap();
    let gamma = tape.parameter(array![1.0f32, 0.5, -0.5]).unwrap();
    let beta = tape.parameter(array![0.0f32, 0.1, 0.2]).unwrap();
    let running_mean = tape.input(array![0.0f32, 0.5, -0.5]).unwrap();
    let running_var = tape.input(array![1.0f32, 2.0, 0.5]).unwrap();
    let start = tape.mark();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        tape.rewind(start).unwrap();
        let y = tape.batch_norm(x, Some(gamma), Some(beta), 1e-5).unwrap();
        let per_channel = tape.transpose_axes(x, 0, 1).unwrap();
        let per_channel = tape.reshape(per_channel, &[3, 40]).unwrap();
        let mean = tape.mean_axis(per_channel, 1).unwrap();
        let var = tape.var(per_channel, Some(1), 1.0, false).unwrap();
        let z = tape
            .batch_norm_eval(y, Some(gamma), None, mean, var, 1e-5)
            .unwrap();
        let e = tape
            .batch_norm_eval(z, None, Some(beta), running_mean, running_var, 1e-5)
            .unwrap();
        let loss = tape.sum(e).unwrap();
        tape.backward(loss).unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(counts.iter().all(|&a| a == 0), "batch norm: {counts:?}");

    // Through handles: the list methods take the handles' ids without collecting them.
    let g = Graph::<f64>::new();
    let w = g.parameter(array![[0.5, -0.25], [0.1, 0.2]]).unwrap();
    let start = g.mark().unwrap();
    let mut counts = Vec::with_capacity(20);
    for step in 0..23 {
        let before = allocations();
        g.rewind(start).unwrap();
        let a = w.tanh().unwrap();
        let b = w.exp().unwrap();
        let joined = g.concat(&[a, b, a, w], 0).unwrap();
        let stacked = g.stack(&[a, b, w], 2).unwrap();
        let mask = a.gt(&b).unwrap();
        let chosen = mask.where_cond(&a, &b).unwrap();
        let loss = (joined.sum().unwrap() + stacked.sum().unwrap()).unwrap();
        let loss = (loss + chosen.sum().unwrap()).unwrap();
        loss.backward().unwrap();
        if step >= 3 {
            counts.push(allocations() - before);
        }
    }
    assert!(counts.iter().all(|&a| a == 0), "handles: {counts:?}");
}
