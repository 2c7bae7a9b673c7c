//! A small convolutional network on the UCI handwritten digits shipped with wengert, each
//! example seen as a 1×8×8 image, trained by the `Trainer` beside the MLP of `wengert train`
//! on the same splits; prints both test accuracies for each seed and their means.
//! Run it with `cargo run --release --example cnn_digits -p wengert` (add a number of seeds,
//! `-- 2`, for a shorter run; 5 by default).

use wengert::train::{
    Activation, Adam, Conv2d, Dataset, Dropout, Flatten, Init, Linear, MaxPool2d, Mlp, Module, Rng,
    Sequential, Standardizer, TrainConfig, Trainer, Unflatten, datasets,
};

/// The network, in PyTorch's terms:
///
/// ```text
/// Unflatten(1, (1, 8, 8))                      [N, 64] -> [N, 1, 8, 8]
/// Conv2d(1, 16, 3, padding=1), ReLU            -> [N, 16, 8, 8]
/// Conv2d(16, 32, 3, padding=1), ReLU           -> [N, 32, 8, 8]
/// MaxPool2d(2)                                 -> [N, 32, 4, 4]
/// Flatten, Dropout(0.25), Linear(512, 10)      -> logits [N, 10]
/// ```
fn cnn(seed: u64) -> wengert::train::Result<Sequential<f32>> {
    let mut rng = Rng::seed_from_u64(seed);
    Ok(Sequential::new()
        .push(Unflatten::new(1, &[1, 8, 8])?)
        .push(Conv2d::builder(1, 16, 3).padding(1).build(&mut rng)?)
        .push(Activation::Relu)
        .push(Conv2d::builder(16, 32, 3).padding(1).build(&mut rng)?)
        .push(Activation::Relu)
        .push(MaxPool2d::new(2)?)
        .push(Flatten)
        .push(Dropout::new(0.25)?)
        .push(Linear::new(32 * 4 * 4, 10, Init::GlorotUniform, &mut rng)?))
}

/// The splits of `wengert train --seed <seed>`: 20% for testing, 10% of the rest to decide
/// when to stop; each pixel standardised with the training set's statistics.
fn splits(digits: &Dataset<f32>, seed: u64) -> wengert::train::Result<[Dataset<f32>; 3]> {
    let (rest, test) = digits.split(0.2, seed)?;
    let (train, valid) = rest.split(0.1, seed)?;
    let scaler = Standardizer::fit(train.features());
    Ok([
        train.scaled(&scaler)?,
        valid.scaled(&scaler)?,
        test.scaled(&scaler)?,
    ])
}

/// The test accuracy of `model` trained with `wengert train`'s defaults (Adam at 1e-3,
/// batches of 32, up to `epochs` (100 for the figures), stopping 10 epochs after the best
/// validation loss and keeping its weights), and the epochs it ran.
fn fit_and_test(
    model: &mut impl Module<f32>,
    seed: u64,
    epochs: usize,
    [train, valid, test]: [&Dataset<f32>; 3],
) -> wengert::train::Result<(f64, usize)> {
    let config = TrainConfig {
        epochs,
        batch_size: 32,
        patience: Some(10),
        seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, Adam::new(1e-3)?);
    let history = trainer.fit(model, train, Some(valid))?;
    let accuracy = trainer.evaluate(model, test)?.accuracy.unwrap_or(0.0);
    Ok((accuracy, history.epochs.len()))
}

fn main() -> wengert::train::Result<()> {
    let seeds: u64 = match std::env::args().nth(1) {
        None => 5,
        Some(n) => n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            wengert::train::Error::InvalidConfig(format!(
                "the number of seeds must be a positive whole number, got `{n}`"
            ))
        })?,
    };
    let digits = datasets::digits::<f32>()?;
    let model = cnn(0)?;
    println!(
        "a CNN of {} parameters beside an MLP 64-128-64-10 of {}, on the digits as 1×8×8 images\n",
        model.parameter_count(),
        Mlp::<f32>::builder(&[64, 128, 64, 10]).parameter_count()?
    );
    println!("seed   CNN test accuracy (epochs)   MLP test accuracy (epochs)");
    let (mut cnn_sum, mut mlp_sum) = (0.0, 0.0);
    for seed in 0..seeds {
        let [train, valid, test] = splits(&digits, seed)?;
        let sets = [&train, &valid, &test];
        let (cnn_accuracy, cnn_epochs) = fit_and_test(&mut cnn(seed)?, seed, 100, sets)?;
        let mut mlp = Mlp::builder(&[64, 128, 64, 10]).seed(seed).build()?;
        let (mlp_accuracy, mlp_epochs) = fit_and_test(&mut mlp, seed, 100, sets)?;
        println!(
            "{seed:4}   {:>17.2}% ({cnn_epochs:3})        {:>17.2}% ({mlp_epochs:3})",
            100.0 * cnn_accuracy,
            100.0 * mlp_accuracy
        );
        cnn_sum += cnn_accuracy;
        mlp_sum += mlp_accuracy;
    }
    let n = seeds as f64;
    println!(
        "mean   {:>17.2}%              {:>17.2}%",
        100.0 * cnn_sum / n,
        100.0 * mlp_sum / n
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's network and training, cut to three epochs (a debug build): already far
    /// above chance (10%) on the held-out digits, and the dropout layer off when testing (the
    /// same accuracy twice).
    #[test]
    fn three_epochs_of_the_cnn_classify_most_held_out_digits() {
        let digits = datasets::digits::<f32>().unwrap();
        let [train, valid, test] = splits(&digits, 0).unwrap();
        let mut model = cnn(0).unwrap();
        let (accuracy, epochs) = fit_and_test(&mut model, 0, 3, [&train, &valid, &test]).unwrap();
        assert_eq!(epochs, 3);
        assert!(accuracy > 0.85, "test accuracy {accuracy}");
        let again = Trainer::new(TrainConfig::default(), Adam::new(1e-3).unwrap())
            .evaluate(&model, &test)
            .unwrap()
            .accuracy;
        assert_eq!(again, Some(accuracy));
    }
}
