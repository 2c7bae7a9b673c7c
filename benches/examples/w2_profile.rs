//! W2's training step run over and over on one engine, for `perf record` (where the harness
//! interleaves engines and batch sizes, a profile wants one of them alone):
//!
//! ```sh
//! cargo build --release -p wengert-benches --example w2_profile
//! perf record -g target/release/examples/w2_profile tape 1024 2 200
//! ```
//!
//! Arguments: the engine (`tape` or `no-tape`), the batch, the threads, the steps, and how the
//! pool's other threads wait between products: `asleep` (rayon's own way, the default),
//! `awake` (the loop inside `wengert_ops::stay_awake`, as the harness and the trainer run it)
//! or `alternate` (blocks of ten steps each way in turn, both medians printed: the measure of
//! what keeping them awake is worth). Prints the median step time.

use std::time::Instant;

use wengert_benches::mlp::{Mlp, NoTape, Sgd, TapeMlp};
use wengert_benches::shared::{Rng, SEED, W2_LAYERS, W2_LR, label_vec, median, normal_vec};

/// Steps per block when `alternate`.
const BLOCK: usize = 10;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: w2_profile tape|no-tape BATCH THREADS STEPS [asleep|awake|alternate]";
    let number = |i: usize| -> Result<usize, String> {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| usage.to_string())
    };
    let (engine, batch, threads, steps) = (
        args.first().cloned().unwrap_or_default(),
        number(1)?,
        number(2)?,
        number(3)?,
    );
    let waiting = args.get(4).map_or("asleep", String::as_str);
    if !["tape", "no-tape"].contains(&engine.as_str())
        || !["asleep", "awake", "alternate"].contains(&waiting)
    {
        return Err(usage.into());
    }
    let mut rng = Rng::new(SEED);
    let mut mlp = Mlp::new(&W2_LAYERS, &mut rng);
    let x = normal_vec(&mut rng, batch * W2_LAYERS[0]);
    let labels = label_vec(&mut rng, batch, W2_LAYERS[3]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let mut sgd = Sgd { lr: W2_LR };
    let (mut asleep, mut awake) = (Vec::new(), Vec::new());
    pool.install(|| -> Result<(), String> {
        let mut tape = TapeMlp::new(&mlp).map_err(|e| e.to_string())?;
        let mut hand = NoTape::new();
        // `count` timed steps after one untimed, which wakes the pool and warms the caches.
        let mut run = |times: &mut Vec<f64>, count: usize| -> Result<(), String> {
            for i in 0..=count {
                let start = Instant::now();
                if engine == "tape" {
                    tape.step(&x, &labels, &mut sgd)
                        .map_err(|e| e.to_string())?;
                } else {
                    hand.step(&mut mlp, &x, &labels, &mut sgd);
                }
                if i > 0 {
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            Ok(())
        };
        match waiting {
            "asleep" => run(&mut asleep, steps),
            "awake" => wengert_ops::stay_awake(|| run(&mut awake, steps)),
            _ => {
                for _ in 0..steps.div_ceil(BLOCK) {
                    run(&mut asleep, BLOCK)?;
                    wengert_ops::stay_awake(|| run(&mut awake, BLOCK))?;
                }
                Ok(())
            }
        }
    })?;
    for (name, times) in [("asleep", &mut asleep), ("awake", &mut awake)] {
        if !times.is_empty() {
            println!(
                "{engine}, batch {batch}, {threads} threads, threads {name}: median {:.3} ms over {} steps",
                median(times) * 1e3,
                times.len()
            );
        }
    }
    Ok(())
}
