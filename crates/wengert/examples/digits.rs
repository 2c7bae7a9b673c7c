//! Trains an MLP on the UCI handwritten digits shipped with wengert and prints the test
//! accuracy and confusion matrix: the library behind `wengert train`, in a page.
//! Run it with `cargo run --release --example digits`.

use wengert::train::{
    Adam, EpochRecord, Mlp, OnEpoch, Standardizer, TrainConfig, Trainer, datasets,
};

fn main() -> wengert::train::Result<()> {
    let digits = datasets::digits::<f32>()?;
    // 20% for testing, then 10% of the rest to decide when to stop.
    let (rest, test) = digits.split(0.2, 0)?;
    let (train, valid) = rest.split(0.1, 0)?;
    // Standardise each pixel with the training set's statistics.
    let scaler = Standardizer::fit(train.features());
    let (train, valid, test) = (
        train.scaled(&scaler)?,
        valid.scaled(&scaler)?,
        test.scaled(&scaler)?,
    );

    let mut model = Mlp::builder(&[64, 128, 64, 10]).seed(0).build()?;
    let config = TrainConfig {
        epochs: 100,
        batch_size: 32,
        patience: Some(10), // stop when the validation loss stalls, keep the best weights
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::new(config, Adam::new(1e-3)?).with_callback(OnEpoch(|r: &EpochRecord| {
            println!(
                "epoch {:3}  loss {:.4}  validation accuracy {:.2}%",
                r.epoch,
                r.train_loss,
                100.0 * r.val_accuracy.unwrap_or(0.0)
            )
        }));
    let history = trainer.fit(&mut model, &train, Some(&valid))?;
    let eval = trainer.evaluate(&model, &test)?;
    println!(
        "\nbest epoch {:?} of {}; test accuracy {:.2}%",
        history.best_epoch,
        history.epochs.len(),
        100.0 * eval.accuracy.unwrap_or(0.0)
    );
    if let Some(confusion) = eval.confusion {
        println!("{confusion}");
    }
    Ok(())
}
