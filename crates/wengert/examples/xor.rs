//! Trains a 2-4-1 tanh network on XOR by full-batch gradient descent and prints the loss
//! falling. Run it with `cargo run --release --example xor`.

use wengert::ndarray::{Array, Array2, array};
use wengert::{Result, Tape};

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
fn train_xor(
    x: &Array2<f64>,
    y: &Array2<f64>,
    lr: f64,
    steps: usize,
    mut report: impl FnMut(usize, f64),
) -> Result<(f64, usize)> {
    // Fixed, asymmetric starting weights: XOR needs the hidden units to differ.
    let mut w1 = array![[0.8, -0.6, 0.4, -0.9], [-0.7, 0.5, 0.9, -0.3]].into_dyn();
    let mut b1 = Array::from_elem(4, 0.1).into_dyn();
    let mut w2 = array![[0.7], [-0.8], [0.6], [-0.5]].into_dyn();
    let mut b2 = array![0.0].into_dyn();
    let mut tape = Tape::<f64>::new();
    let mut loss_value = f64::NAN;
    for step in 0..steps {
        tape.clear();
        let xs = tape.input(x)?;
        let ys = tape.input(y)?;
        let p = [
            tape.parameter(&w1)?,
            tape.parameter(&b1)?,
            tape.parameter(&w2)?,
            tape.parameter(&b2)?,
        ];
        let z1 = tape.matmul(xs, p[0])?;
        let z1 = tape.add(z1, p[1])?;
        let h = tape.tanh(z1)?;
        let z2 = tape.matmul(h, p[2])?;
        let out = tape.add(z2, p[3])?;
        let out = tape.tanh(out)?;
        let loss = tape.mse(out, ys)?;
        loss_value = tape.item(loss)?;
        report(step, loss_value);
        if loss_value < 1e-4 {
            return Ok((loss_value, step));
        }
        let grads = tape.backward(loss)?;
        for (param, id) in [&mut w1, &mut b1, &mut w2, &mut b2].into_iter().zip(p) {
            param.scaled_add(-lr, &grads.get(id).expect("every parameter has a gradient"));
        }
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
