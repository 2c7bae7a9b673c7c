//! Helpers shared by the tests: a seeded generator for fixed "random" inputs, and (from
//! `wengert-testkit`) the naive matrix product to check the fast one against.

use ndarray::{ArrayD, IxDyn};
use wengert_testkit::SplitMix64;

pub use wengert_testkit::naive_matmul;

/// The draws the tests make, from the workspace's one SplitMix64.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.unit_f64()
    }

    /// An integer in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    /// An array of values uniform in [-scale, scale).
    pub fn array(&mut self, dims: &[usize], scale: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(dims), || self.uniform(-scale, scale))
    }

    /// An array of small integers in -4..=4: products and sums of these are exact in f64 (and
    /// in f32 up to 2²⁴), so a fast product can be compared with a naive one bit for bit.
    pub fn integers(&mut self, dims: &[usize]) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(dims), || self.below(9) as f64 - 4.0)
    }
}

/// `f` run on a rayon pool of `threads` threads (to compare results across thread counts).
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}
