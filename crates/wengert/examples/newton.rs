//! Fits a small L2-regularised logistic regression twice: by Newton's method, whose Hessian
//! comes from the recorded gradient (`Tape::hessian`), and by gradient descent; prints how many
//! steps each needs to bring the gradient's norm below 1e-8. Run it with
//! `cargo run --release --example newton`.

use wengert::ndarray::{Array1, Array2};
use wengert::{NodeId, Result, Tape};

/// Points, features and the regularisation of the problem.
const POINTS: usize = 60;
const FEATURES: usize = 3;
const L2: f64 = 0.05;
const TOLERANCE: f64 = 1e-8;

fn main() -> Result<()> {
    let (x, y) = data();
    let newton = fit(&x, &y, Method::Newton, 100)?;
    let descent = fit(&x, &y, Method::GradientDescent { lr: 1.0 }, 100_000)?;
    println!("Newton:           {newton:5} steps");
    println!("gradient descent: {descent:5} steps");
    Ok(())
}

/// Features (with a constant column for the bias) and 0/1 labels from a noisy linear rule,
/// drawn by a fixed linear congruential generator: the same data on every run.
fn data() -> (Array2<f64>, Array1<f64>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Array2::zeros((POINTS, FEATURES));
    let mut y = Array1::zeros(POINTS);
    for i in 0..POINTS {
        x[[i, 0]] = 1.0;
        x[[i, 1]] = 4.0 * uniform() - 2.0;
        x[[i, 2]] = 4.0 * uniform() - 2.0;
        let score = 0.5 + 1.5 * x[[i, 1]] - 2.0 * x[[i, 2]] + 1.5 * (uniform() - 0.5);
        y[i] = f64::from(score > 0.0);
    }
    (x, y)
}

/// How the weights move.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// `w ← w - H⁻¹·∇L`.
    Newton,
    /// `w ← w - lr·∇L`.
    GradientDescent { lr: f64 },
}

/// `L(w) = mean(softplus(x·w) - y·(x·w)) + L2/2·|w|²`, the logistic loss with labels in {0, 1}.
fn loss(tape: &mut Tape<f64>, x: NodeId, y: NodeId, w: NodeId) -> Result<NodeId> {
    let z = tape.matmul(x, w)?;
    let sp = tape.softplus(z)?;
    let yz = tape.mul(y, z)?;
    let per_point = tape.sub(sp, yz)?;
    let data = tape.mean(per_point)?;
    let sq = tape.square(w)?;
    let norm = tape.sum(sq)?;
    let reg = tape.mul_scalar(norm, L2 / 2.0)?;
    tape.add(data, reg)
}

/// The steps `method` takes from `w = 0` until the gradient's norm is below [`TOLERANCE`]
/// (`max_steps` if it never gets there).
fn fit(x: &Array2<f64>, y: &Array1<f64>, method: Method, max_steps: usize) -> Result<usize> {
    let mut tape = Tape::<f64>::new();
    let xs = tape.input(x.clone())?;
    let ys = tape.input(y.clone().into_shape_with_order((POINTS, 1)).unwrap())?;
    let w = tape.parameter(Array2::<f64>::zeros((FEATURES, 1)))?;
    let start = tape.mark();
    for step in 0..max_steps {
        tape.rewind(start)?;
        let l = loss(&mut tape, xs, ys, w)?;
        let g = tape.record_grad(l, &[w])?[0];
        let grad = Array1::from(tape.data(g)?.to_vec());
        if grad.dot(&grad).sqrt() < TOLERANCE {
            return Ok(step);
        }
        let delta = match method {
            Method::Newton => solve(tape.hessian(l, w)?, grad),
            Method::GradientDescent { lr } => grad * lr,
        };
        let next = &tape.value(w)?.to_owned()
            - &delta
                .into_shape_with_order((FEATURES, 1))
                .unwrap()
                .into_dyn();
        tape.set_value(w, next.view())?;
    }
    Ok(max_steps)
}

/// `A⁻¹·b` by Gaussian elimination with partial pivoting (`A` is small and positive definite).
fn solve(mut a: Array2<f64>, mut b: Array1<f64>) -> Array1<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[[i, col]].abs().total_cmp(&a[[j, col]].abs()))
            .unwrap();
        for k in 0..n {
            a.swap([col, k], [pivot, k]);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[[row, col]] / a[[col, col]];
            for k in col..n {
                a[[row, k]] -= f * a[[col, k]];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = Array1::zeros(n);
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[[row, k]] * x[k]).sum();
        x[row] = (b[row] - rest) / a[[row, row]];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_converges_in_fewer_steps_than_gradient_descent() {
        let (x, y) = data();
        let newton = fit(&x, &y, Method::Newton, 100).unwrap();
        let descent = fit(&x, &y, Method::GradientDescent { lr: 1.0 }, 100_000).unwrap();
        assert!(newton <= 10, "Newton took {newton} steps");
        assert!(newton * 10 < descent, "Newton {newton}, descent {descent}");
    }
}
