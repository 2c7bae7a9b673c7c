//! W2's training step run over and over on one engine, for `perf record` (where the harness
//! interleaves engines and batch sizes, a profile wants one of them alone):
//!
//! ```sh
//! cargo build --release -p wengert-benches --example w2_profile
//! perf record -g target/release/examples/w2_profile tape 1024 2 200
//! ```
//!
//! Arguments: the engine (`tape` or `no-tape`), the batch, the threads and the steps. Prints
//! the median step time.

use std::time::Instant;

use wengert_benches::mlp::{Mlp, NoTape, Sgd, TapeMlp};
use wengert_benches::shared::{Rng, SEED, W2_LAYERS, W2_LR, label_vec, normal_vec};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: w2_profile tape|no-tape BATCH THREADS STEPS";
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
    let mut rng = Rng::new(SEED);
    let mut mlp = Mlp::new(&W2_LAYERS, &mut rng);
    let x = normal_vec(&mut rng, batch * W2_LAYERS[0]);
    let labels = label_vec(&mut rng, batch, W2_LAYERS[3]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let mut sgd = Sgd { lr: W2_LR };
    let mut times = Vec::with_capacity(steps);
    pool.install(|| -> Result<(), String> {
        match engine.as_str() {
            "tape" => {
                let mut tape = TapeMlp::new(&mlp).map_err(|e| e.to_string())?;
                for _ in 0..steps {
                    let start = Instant::now();
                    tape.step(&x, &labels, &mut sgd)
                        .map_err(|e| e.to_string())?;
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            "no-tape" => {
                let mut hand = NoTape::new();
                for _ in 0..steps {
                    let start = Instant::now();
                    hand.step(&mut mlp, &x, &labels, &mut sgd);
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            _ => return Err(usage.into()),
        }
        Ok(())
    })?;
    times.sort_by(f64::total_cmp);
    println!(
        "{engine}, batch {batch}, {threads} threads: median {:.3} ms over {steps} steps",
        times[steps / 2] * 1e3
    );
    Ok(())
}
