//! Data sets: the embedded digits, splits, prediction.

use wengert_train::{Adam, Mlp, TrainConfig, Trainer, argmax_rows, datasets};

#[test]
fn the_digits_have_ten_balanced_classes_of_64_pixels() {
    let digits = datasets::digits::<f64>().unwrap();
    assert_eq!(digits.n_features(), 64);
    let mut counts = [0usize; 10];
    for &l in digits.labels().unwrap() {
        counts[l] += 1;
    }
    assert!(
        counts.iter().all(|&c| (170..=190).contains(&c)),
        "{counts:?}"
    );
    assert!(
        digits
            .features()
            .iter()
            .all(|&p| (0.0..=16.0).contains(&p) && p.fract() == 0.0)
    );
}

#[test]
fn predict_gives_the_logits_evaluate_scores() {
    let data = crate::disc(50, 20);
    let mut model = Mlp::<f32>::builder(&[2, 8, 2]).seed(0).build().unwrap();
    let mut trainer = Trainer::new(
        TrainConfig {
            epochs: 5,
            ..TrainConfig::default()
        },
        Adam::new(0.01).unwrap(),
    );
    trainer.fit(&mut model, &data, None).unwrap();
    let logits = trainer.predict(&model, data.features()).unwrap();
    assert_eq!(logits.dim(), (50, 2));
    let predicted = argmax_rows(logits.view());
    let acc = wengert_train::accuracy(&predicted, data.labels().unwrap());
    assert_eq!(Some(acc), trainer.evaluate(&model, &data).unwrap().accuracy);
}
