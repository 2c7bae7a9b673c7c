//! Steady-state calls allocate nothing: counted by a global allocator that wraps the system's.
//!
//! This is a binary of its own, holding one test, so that no other test's threads allocate
//! while the count runs.

use ndarray::Array2;
use wengert_gemm::gemm;
use wengert_testkit::alloc::allocations;

wengert_testkit::count_allocations!();

/// The parameters and activations of the W2 network (784-512-512-10, batch 128, f32).
struct Net {
    x: Array2<f32>,
    w: [Array2<f32>; 3],
    h: [Array2<f32>; 3],
    d: [Array2<f32>; 3],
    dw: [Array2<f32>; 3],
}

impl Net {
    fn new() -> Net {
        let m = |r: usize, c: usize| Array2::from_shape_fn((r, c), |(i, j)| ((i + j) % 7) as f32);
        Net {
            x: m(128, 784),
            w: [m(784, 512), m(512, 512), m(512, 10)],
            h: [m(128, 512), m(128, 512), m(128, 10)],
            d: [m(128, 784), m(128, 512), m(128, 512)],
            dw: [m(784, 512), m(512, 512), m(512, 10)],
        }
    }

    /// The products of one training step: forward, then both VJPs of each layer on transposed
    /// views (`h[2]` stands for the loss's gradient), accumulating into the weight gradients.
    fn step(&mut self) {
        let Net { x, w, h, d, dw } = self;
        let [h0, h1, h2] = h;
        let [dx, d0, d1] = d;
        gemm(1.0, x.view(), w[0].view(), 0.0, h0.view_mut()).unwrap();
        gemm(1.0, h0.view(), w[1].view(), 0.0, h1.view_mut()).unwrap();
        gemm(1.0, h1.view(), w[2].view(), 0.0, h2.view_mut()).unwrap();
        gemm(1.0, h1.t(), h2.view(), 1.0, dw[2].view_mut()).unwrap();
        gemm(1.0, h2.view(), w[2].t(), 0.0, d1.view_mut()).unwrap();
        gemm(1.0, h0.t(), d1.view(), 1.0, dw[1].view_mut()).unwrap();
        gemm(1.0, d1.view(), w[1].t(), 0.0, d0.view_mut()).unwrap();
        gemm(1.0, x.t(), d0.view(), 1.0, dw[0].view_mut()).unwrap();
        gemm(1.0, d0.view(), w[0].t(), 0.0, dx.view_mut()).unwrap();
    }

    /// A few small products, below the size at which the work is split among threads.
    fn small(&mut self) {
        let a = self.x.slice(ndarray::s![..8, ..16]);
        let b = self.w[0].slice(ndarray::s![..16, ..8]);
        let c = self.h[0].slice_mut(ndarray::s![..8, ..8]);
        gemm(1.0, a, b, 0.0, c).unwrap();
    }
}

/// Allocations made by `steps` calls of `f` after one warm-up call.
fn steady_state(steps: usize, mut f: impl FnMut()) -> u64 {
    f();
    let before = allocations();
    for _ in 0..steps {
        f();
    }
    allocations() - before
}

#[test]
fn steady_state_products_allocate_nothing() {
    let mut net = Net::new();
    // On the calling thread, with no pool involved.
    assert_eq!(steady_state(20, || net.small()), 0, "small products");
    for threads in [1, 2, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Which thread runs which task varies from call to call: every thread gets its buffers
        // first, so that the count does not depend on a thread's first task.
        pool.broadcast(|_| wengert_gemm::prepare_thread::<f32>());
        // Counted inside the pool: entering a pool from outside (`install`) is rayon's own
        // business, and a training loop enters it once.
        let count = pool.install(|| steady_state(20, || net.step()));
        assert_eq!(count, 0, "a W2 step on {threads} threads");
    }
}
