//! Helpers shared by the tests: a seeded generator for fixed "random" inputs and a naive
//! matrix product to check the fast one against.

use ndarray::{Array2, ArrayD, IxDyn};

/// SplitMix64: a few lines, seeded, the same numbers on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// An integer in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
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

/// `a·b` by the textbook triple loop, over row-major copies (fast enough unoptimised).
pub fn naive_matmul(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let a: Vec<f64> = a.iter().copied().collect();
    let b: Vec<f64> = b.iter().copied().collect();
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += aip * b[p * n + j];
            }
        }
    }
    Array2::from_shape_vec((m, n), c).expect("sized m·n")
}
