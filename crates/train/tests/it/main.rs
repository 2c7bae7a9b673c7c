//! Integration tests of wengert-train: what a user does, end to end.

mod accumulate;
mod architecture;
mod batch_norm;
mod data;
mod folding;
mod layers;
mod loaders;
mod modules;
mod objectives;
mod resume;
mod training;

use ndarray::Array2;
use wengert_train::{Dataset, Rng};

/// Points in the square [-1, 1]², labelled 1 inside the circle of radius 0.6 and 0 outside: a
/// problem no linear model solves.
pub fn disc(n: usize, seed: u64) -> Dataset<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 2));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (rng.uniform_in(-1.0, 1.0), rng.uniform_in(-1.0, 1.0));
        x[[i, 0]] = a as f32;
        x[[i, 1]] = b as f32;
        labels.push(usize::from(a * a + b * b < 0.36));
    }
    Dataset::classification(x, labels, 2).unwrap()
}

/// `y = 2·x₀ - 3·x₁ + 0.5` with a little noise.
pub fn plane(n: usize, seed: u64) -> Dataset<f64> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 2));
    let mut y = Array2::zeros((n, 1));
    for i in 0..n {
        let (a, b) = (rng.uniform_in(-1.0, 1.0), rng.uniform_in(-1.0, 1.0));
        x[[i, 0]] = a;
        x[[i, 1]] = b;
        y[[i, 0]] = 2.0 * a - 3.0 * b + 0.5 + 0.01 * rng.normal();
    }
    Dataset::regression(x, y).unwrap()
}
