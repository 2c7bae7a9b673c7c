//! Fits a small network to a noisy sine wave with mean squared error, then prints a few
//! predictions beside the truth. Run it with `cargo run --release --example regression`.

use std::f64::consts::PI;

use wengert::ndarray::Array2;
use wengert::train::{
    Activation, Adam, Dataset, Loss, Mlp, OnEpoch, Rng, Schedule, TrainConfig, Trainer,
};

fn main() -> wengert::train::Result<()> {
    let (rmse, samples) = fit_sine(300, 400, true)?;
    println!("\n   x      sin(x)   predicted");
    for (x, truth, predicted) in samples {
        println!("{x:6.2}  {truth:8.4}  {predicted:8.4}");
    }
    println!("validation RMSE {rmse:.4}");
    Ok(())
}

/// `n` points of `y = sin x + noise` on `[-π, π]`.
fn sine(n: usize, seed: u64) -> wengert::train::Result<Dataset<f64>> {
    let mut rng = Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, 1), |_| rng.uniform_in(-PI, PI));
    let y = x.mapv(|v: f64| v.sin() + 0.05 * rng.normal());
    Dataset::regression(x, y)
}

/// An input, the truth at it, and the model's prediction.
type Sample = (f64, f64, f64);

/// Trains for `epochs` epochs; returns the validation RMSE and a few samples.
fn fit_sine(n: usize, epochs: usize, verbose: bool) -> wengert::train::Result<(f64, Vec<Sample>)> {
    let (train, valid) = sine(n, 0)?.split(0.2, 0)?;
    let mut model = Mlp::builder(&[1, 32, 32, 1])
        .activation(Activation::Tanh)
        .seed(0)
        .build()?;
    let config = TrainConfig {
        epochs,
        batch_size: 32,
        loss: Loss::Rmse,
        schedule: Schedule::Cosine {
            epochs,
            min_lr: 1e-4,
        },
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(0.01)?);
    if verbose {
        trainer.add_callback(OnEpoch(|r: &wengert::train::EpochRecord| {
            if r.epoch.is_multiple_of(50) {
                println!(
                    "epoch {:4}  train RMSE {:.4}  validation RMSE {:.4}",
                    r.epoch,
                    r.train_loss,
                    r.val_loss.unwrap_or(f64::NAN)
                );
            }
        }));
    }
    trainer.fit(&mut model, &train, Some(&valid))?;
    let rmse = trainer.evaluate(&model, &valid)?.loss;
    let xs = Array2::from_shape_vec((5, 1), vec![-3.0, -1.5, 0.0, 1.5, 3.0]).expect("5 values");
    let predicted = trainer.predict(&model, xs.view())?;
    let samples = xs
        .iter()
        .zip(predicted.iter())
        .map(|(&x, &p)| (x, x.sin(), p))
        .collect();
    Ok((rmse, samples))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_network_fits_the_sine_to_within_the_noise() {
        let (rmse, _) = super::fit_sine(200, 150, false).unwrap();
        assert!(rmse < 0.1, "validation RMSE {rmse}");
    }
}
