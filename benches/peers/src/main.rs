//! wengert's Rust peers on the reference workloads: candle (candle-core + candle-nn) and dfdx,
//! each written the way its documentation shows, on W2 (MLP training step and inference), W3
//! (tiny ops) and W4 (digits end to end); candle also on W6 (the small CNN's step: dfdx's
//! `Conv2D` layer needs its `nightly` feature, so dfdx skips W6).
//!
//! Built and run only by `cargo xtask bench --peers`. Prints one JSON record per line on stdout
//! (and progress as plain lines). Usage:
//! `wengert-bench-peers --threads N [--quick] [--only W2,W3,W4,W6] --data DIGITS.csv.gz`.

#[path = "../../src/shared.rs"]
mod shared;

mod candle_peer;
mod dfdx_peer;

use std::io::Read;
use std::time::Instant;

use shared::{Effort, Split, W2_BATCHES, digits_split, median, record_json};

/// Timings a peer reports for one W2 batch size, in milliseconds.
pub struct W2Times {
    /// The median training step.
    pub train_ms: f64,
    /// The median inference pass.
    pub forward_ms: f64,
}

/// What each peer implements.
pub trait Peer {
    /// The engine name of its records.
    const NAME: &'static str;
    /// W2 at `batch`: medians over `steps` after `warmup`.
    fn w2(batch: usize, warmup: usize, steps: usize) -> Result<W2Times, String>;
    /// W3: (record, backward) seconds of one chain of `ops` ops.
    fn w3(ops: usize) -> Result<(f64, f64), String>;
    /// W4: training seconds and test accuracy.
    fn w4(train: &Split, test: &Split) -> Result<(f64, f64), String>;
    /// W6: the median milliseconds of the CNN's step over `steps` after `warmup`.
    fn w6(warmup: usize, steps: usize) -> Result<f64, String> {
        let _ = (warmup, steps);
        Err("no convolution layer on a stable compiler".to_string())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let effort = Effort::from_args(&args);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let threads: usize = value("--threads")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let only = value("--only").unwrap_or_else(|| "W2,W3,W4,W6".to_string());
    let wants = move |w: &str| only.split(',').any(|x| x.eq_ignore_ascii_case(w));
    let data = match value("--data").map(|p| load_digits(&p)) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            println!("W4 skipped: {e}");
            None
        }
        None => None,
    };
    // Every peer runs on rayon's global pool (candle's and dfdx's CPU kernels use it).
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        println!("warning: could not size rayon's pool: {e}");
    }
    // candle's backward pass walks the graph recursively: W3's 10,000-deep chain needs a large
    // stack, so every measurement runs on a thread with one.
    let work = move || {
        run::<candle_peer::Candle>(effort, threads, &wants, data.as_ref());
        run::<dfdx_peer::Dfdx>(effort, threads, &wants, data.as_ref());
    };
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(work)
        .expect("a measuring thread")
        .join()
        .expect("the measuring thread finished");
}

fn run<P: Peer>(
    effort: Effort,
    threads: usize,
    wants: &dyn Fn(&str) -> bool,
    data: Option<&(Split, Split)>,
) {
    let name = P::NAME;
    if wants("W2") {
        for batch in W2_BATCHES {
            match P::w2(batch, effort.w2_warmup(), effort.w2_steps()) {
                Ok(t) => {
                    println!(
                        "W2 {name} batch={batch}: {:.2} ms/step, forward {:.2} ms",
                        t.train_ms, t.forward_ms
                    );
                    let flops = step_flops(batch);
                    println!(
                        "{}",
                        record_json(
                            "W2",
                            name,
                            threads,
                            &[("batch", batch as u64)],
                            &[
                                ("ms_per_step", t.train_ms),
                                ("samples_per_s", batch as f64 / (t.train_ms / 1e3)),
                                ("forward_ms", t.forward_ms),
                                ("matmul_gflops", flops / (t.train_ms / 1e3) / 1e9),
                            ],
                        )
                    );
                }
                Err(e) => println!("W2 {name} batch={batch} failed: {e}"),
            }
        }
    }
    if wants("W3") {
        let ops = shared::W3_OPS;
        let mut rec = Vec::new();
        let mut back = Vec::new();
        let mut failed = None;
        for i in 0..=effort.w3_chains() {
            match P::w3(ops) {
                Ok((r, b)) if i > 0 => {
                    rec.push(r);
                    back.push(b);
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                let r = median(&mut rec) / ops as f64 * 1e9;
                let b = median(&mut back) / ops as f64 * 1e9;
                println!("W3 {name}: record {r:.1} ns/op, backward {b:.1} ns/op");
                println!(
                    "{}",
                    record_json(
                        "W3",
                        name,
                        threads,
                        &[("ops", ops as u64)],
                        &[("record_ns_per_op", r), ("backward_ns_per_op", b)],
                    )
                );
            }
            Some(e) => println!("W3 {name} failed: {e}"),
        }
    }
    if wants("W6") {
        match P::w6(effort.w6_warmup(), effort.w6_steps()) {
            Ok(ms) => {
                println!("W6 {name} threads={threads}: {ms:.2} ms/step");
                let flops = shared::W6.conv_step_flops();
                println!(
                    "{}",
                    record_json(
                        "W6",
                        name,
                        threads,
                        &[("batch", shared::W6.batch as u64)],
                        &[
                            ("ms_per_step", ms),
                            ("samples_per_s", shared::W6.batch as f64 / (ms / 1e3)),
                            ("step_conv_gflops", flops / (ms / 1e3) / 1e9),
                        ],
                    )
                );
            }
            Err(e) => println!("W6 {name} skipped: {e}"),
        }
    }
    if let (true, Some((train, test))) = (wants("W4"), data) {
        let mut times = Vec::new();
        let mut acc = 0.0;
        for _ in 0..effort.w4_runs() {
            match P::w4(train, test) {
                Ok((s, a)) => {
                    times.push(s);
                    acc = a;
                }
                Err(e) => {
                    println!("W4 {name} failed: {e}");
                    return;
                }
            }
        }
        let seconds = median(&mut times);
        println!(
            "W4 {name}: {seconds:.3} s, test accuracy {:.2}%",
            acc * 100.0
        );
        println!(
            "{}",
            record_json(
                "W4",
                name,
                threads,
                &[
                    ("batch", shared::W4_BATCH as u64),
                    ("epochs", shared::W4_EPOCHS as u64)
                ],
                &[("seconds", seconds), ("test_accuracy", acc)],
            )
        );
    }
}

/// The same count as the runner's `w2_step_flops`.
fn step_flops(batch: usize) -> f64 {
    let layers = shared::W2_LAYERS;
    let macs: usize = layers.windows(2).map(|w| w[0] * w[1]).sum();
    2.0 * batch as f64 * (3 * macs - layers[0] * layers[1]) as f64
}

fn load_digits(path: &str) -> Result<(Split, Split), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let mut csv = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut csv)
        .map_err(|e| format!("cannot decompress {path}: {e}"))?;
    digits_split(&csv)
}

/// Median milliseconds of `step` over `steps` calls after `warmup`.
pub fn ms_per_call(
    warmup: usize,
    steps: usize,
    mut step: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    for _ in 0..warmup {
        step()?;
    }
    let mut samples = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        step()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut samples))
}

/// Visits the training split in W4's order (seeded reshuffle every epoch, batches of 32),
/// calling `step` with each batch's rows and labels; returns the seconds taken.
pub fn w4_epochs(
    train: &Split,
    mut step: impl FnMut(&[f32], &[usize]) -> Result<(), String>,
) -> Result<f64, String> {
    let features = shared::W4_LAYERS[0];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = shared::Rng::new(shared::SEED ^ 0xD1617);
    let mut xb = Vec::new();
    let mut yb = Vec::new();
    let start = Instant::now();
    for _ in 0..shared::W4_EPOCHS {
        rng.shuffle(&mut order);
        for chunk in order.chunks(shared::W4_BATCH) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&train.features[i * features..(i + 1) * features]);
                yb.push(train.labels[i]);
            }
            step(&xb, &yb)?;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}
