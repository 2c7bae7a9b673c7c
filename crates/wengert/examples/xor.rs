//! Trains a 2-4-1 tanh network on XOR by full-batch gradient descent and prints the loss
//! falling. Run it with `cargo run --release --example xor`.

use wengert::Graph;
use wengert::ndarray::{Array, Array2, array};
use wengert::train::{Optimizer, Result, Sgd};

fn main() -> Result<()> {
    let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![[0.0], [1.0], [1.0], [0.0]];
    let (final_loss, steps) = train_xor(&x, &y, 0.5, 5000, |step, loss| {
        if step % 500 == 0 {
            println!("step {step:5}  loss {loss:.6}");
        }
    })?;
    println!("final loss {final_loss:.3e} after {steps} steps");
    Ok(())
}

/// Full-batch gradient descent on mean squared error; returns the final loss and step count.
/// The data and parameters are recorded once, before a mark; each step rewinds to it, records
/// the forward pass, and SGD updates the parameters where they live on the tape.
fn train_xor(
    x: &Array2<f64>,
    y: &Array2<f64>,
    lr: f64,
    steps: usize,
    mut report: impl FnMut(usize, f64),
) -> Result<(f64, usize)> {
    let g = Graph::<f64>::new();
    let (xs, ys) = (g.input(x)?, g.input(y)?);
    // Fixed, asymmetric starting weights: XOR needs the hidden units to differ.
    let w1 = g.parameter(array![[0.8, -0.6, 0.4, -0.9], [-0.7, 0.5, 0.9, -0.3]])?;
    let b1 = g.parameter(Array::from_elem(4, 0.1))?;
    let w2 = g.parameter(array![[0.7], [-0.8], [0.6], [-0.5]])?;
    let b2 = g.parameter(array![0.0])?;
    let (start, mut sgd) = (g.mark()?, Sgd::new(lr)?);
    let mut loss_value = f64::NAN;
    for step in 0..steps {
        g.rewind(start)?;
        let h = xs.matmul(&w1)?.add(&b1)?.tanh()?;
        let loss = h.matmul(&w2)?.add(&b2)?.tanh()?.mse(&ys)?;
        loss_value = loss.item()?;
        report(step, loss_value);
        if loss_value < 1e-4 {
            return Ok((loss_value, step));
        }
        loss.backward()?;
        sgd.step_graph(&g)?;
    }
    Ok((loss_value, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_reaches_a_loss_below_1e_3() {
        let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let y = array![[0.0], [1.0], [1.0], [0.0]];
        let (loss, _) = train_xor(&x, &y, 0.5, 5000, |_, _| {}).unwrap();
        assert!(loss < 1e-3, "loss {loss}");
    }
}
