//! Scratch: times the library trainer on W4's shape (not committed).
use std::time::Instant;
use wengert_train::{Adam, Mlp, TrainConfig, Trainer, datasets};

fn main() {
    let digits = datasets::digits::<f32>().unwrap();
    let (train, test) = digits.split(0.2, 0).unwrap();
    let reps: usize = std::env::args().nth(1).map_or(5, |s| s.parse().unwrap());
    let mut times = Vec::new();
    let mut acc = 0.0;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(std::env::args().nth(2).map_or(2, |s| s.parse().unwrap()))
        .build()
        .unwrap();
    for _ in 0..reps {
        let mut model = Mlp::builder(&[64, 128, 10]).seed(0).build().unwrap();
        let config = TrainConfig {
            epochs: 30,
            batch_size: 32,
            ..TrainConfig::default()
        };
        let (h, el, mut trainer) = pool.install(|| {
            let mut trainer = Trainer::new(config, Adam::new(1e-3));
            let t = Instant::now();
            let h = trainer.fit(&mut model, &train, None).unwrap();
            (h, t.elapsed().as_secs_f64(), ())
        });
        let _ = &mut trainer;
        let mut trainer = Trainer::new(TrainConfig::default(), Adam::new(1e-3));
        times.push(el);
        assert_eq!(h.steps, 30 * train.len().div_ceil(32));
        acc = trainer.evaluate(&model, &test).unwrap().accuracy.unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "trainer W4: median {:.4} s (min {:.4}) acc {:.4} over {reps}",
        times[reps / 2],
        times[0],
        acc
    );
}
