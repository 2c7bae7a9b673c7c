//! W2..W4 and W6 for the engines built in this workspace: wengert and (W2..W4) its hand-written
//! `no-tape` floor (W1 runs in the baselines program, beside matrixmultiply's threads; W5 in
//! `memory`). Each function returns its records; `progress` hears a line per measurement.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use wengert_tape::{Graph, Tape};
use wengert_train::{TrainConfig, Trainer};

use crate::chain::{graph_chain, plain_chain, tape_chain};
use crate::cnn::{CnnData, ConvPasses, TapeCnn, w6_data};
use crate::hvp::HvpMlp;
use crate::mlp::{GraphMlp, LibraryAdam, Mlp, NoTape, Sgd, TapeMlp, library_mlp};
use crate::record::Record;
use crate::shared::{
    Effort, Rng, SEED, Split, W2_BATCHES, W2_LAYERS, W2_LR, W3_OPS, W4_BATCH, W4_BETA1, W4_BETA2,
    W4_EPOCHS, W4_EPS, W4_LAYERS, W4_LR, W6, W6_LR, accuracy, label_vec, median, normal_vec,
};
use wengert_testkit::alloc::allocations;

/// A rayon pool of `threads` workers, for running a measurement on that many.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("could not start {threads} threads: {e}"))
}

/// Runs `body` as a training loop runs: on a thread of `pool`, its other threads kept awake
/// between products ([`wengert_ops::stay_awake`], what wengert-train's `Trainer` does; PyTorch's
/// OpenMP threads spin alike). Every engine's loop runs so, the hand-written floor's included.
pub fn in_pool<R: Send>(pool: &rayon::ThreadPool, body: impl FnOnce() -> R + Send) -> R {
    pool.install(|| wengert_ops::stay_awake(body))
}

fn err(e: wengert_tape::Error) -> String {
    format!("wengert failed: {e}")
}

/// The multiply-adds of one W2 step's products, times two: forward `x·W` for every layer, and
/// backward `dz·Wᵀ` and `hᵀ·dz` for every layer except `dz·Wᵀ` into the input (not needed).
pub fn w2_step_flops(layers: &[usize], batch: usize) -> f64 {
    let macs: usize = layers.windows(2).map(|w| w[0] * w[1]).sum();
    let first = layers[0] * layers[1];
    2.0 * batch as f64 * (3 * macs - first) as f64
}

/// The W2 batch whose Hessian-vector product is measured.
const HVP_BATCH: usize = 128;

/// Per-call milliseconds of `a` and of `b`, after `warmup` untimed calls of each: the medians of
/// `steps` timings each, taken alternately (a, b, a, b, ...) so that both see the same background
/// load and their ratio stays meaningful on a busy machine.
fn ms_per_call_pair(
    warmup: usize,
    steps: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut ta, mut tb) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for _ in 0..steps {
        let t = Instant::now();
        a();
        ta.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        b();
        tb.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (median(&mut ta), median(&mut tb))
}

/// W2: the 784-512-512-10 MLP's training step (SGD) and its inference pass, for each batch size
/// and thread count, on the tape and by hand, their steps interleaved.
pub fn w2(
    effort: Effort,
    threads: &[usize],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for batch in W2_BATCHES {
        let mut rng = Rng::new(SEED);
        let x = normal_vec(&mut rng, batch * W2_LAYERS[0]);
        let labels = label_vec(&mut rng, batch, W2_LAYERS[3]);
        let init = Mlp::new(&W2_LAYERS, &mut rng);
        let flops = w2_step_flops(&W2_LAYERS, batch);
        for &t in threads {
            let pool = pool(t)?;
            let (warmup, steps) = (effort.w2_warmup(), effort.w2_steps());
            let (mut sgd_a, mut sgd_b) = (Sgd { lr: W2_LR }, Sgd { lr: W2_LR });
            let (mlp_a, mut mlp_b) = (init.clone(), init.clone());
            let mut tape = TapeMlp::new(&mlp_a).map_err(err)?;
            let mut hand = NoTape::new();
            let mut failure = None;
            let (train_a, train_b) = in_pool(&pool, || {
                ms_per_call_pair(
                    warmup,
                    steps,
                    || {
                        if let Err(e) = tape.step(&x, &labels, &mut sgd_a) {
                            failure = Some(err(e));
                        }
                    },
                    || {
                        hand.step(&mut mlp_b, &x, &labels, &mut sgd_b);
                    },
                )
            });
            let (infer_a, infer_b) = in_pool(&pool, || {
                ms_per_call_pair(
                    warmup,
                    steps,
                    || {
                        if let Err(e) = tape.infer(&x) {
                            failure = Some(err(e));
                        }
                    },
                    || {
                        hand.forward(&mlp_b, &x);
                    },
                )
            });
            // At batch 128: a Hessian-vector product beside a first-order step (issue 16's
            // target is at most 4×), their calls interleaved as above.
            let hvp = if batch == HVP_BATCH {
                let mut second = HvpMlp::new(&init).map_err(err)?;
                let mut first = TapeMlp::new(&init).map_err(err)?;
                let mut sgd = Sgd { lr: 0.0 };
                let mut step_failure = None;
                let (hvp_ms, step_ms) = in_pool(&pool, || {
                    ms_per_call_pair(
                        warmup,
                        steps,
                        || {
                            if let Err(e) = second.hvp(&x, &labels) {
                                failure = Some(err(e));
                            }
                        },
                        || {
                            if let Err(e) = first.step(&x, &labels, &mut sgd) {
                                step_failure = Some(err(e));
                            }
                        },
                    )
                });
                failure = failure.or(step_failure);
                progress(&format!(
                    "W2 wengert batch={batch} threads={t}: hvp {hvp_ms:.2} ms, {:.2}× a step",
                    hvp_ms / step_ms
                ));
                Some((hvp_ms, hvp_ms / step_ms))
            } else {
                None
            };
            // The same step through the handle API, beside the plain tape methods' (issue 14:
            // the handles keep the figures), their steps interleaved.
            let (graph_ms, methods_ms) = {
                let mut graph = GraphMlp::new(&init).map_err(err)?;
                let mut methods = TapeMlp::new(&init).map_err(err)?;
                let (mut sgd_g, mut sgd_m) = (Sgd { lr: W2_LR }, Sgd { lr: W2_LR });
                let mut graph_failure = None;
                let timed = in_pool(&pool, || {
                    ms_per_call_pair(
                        warmup,
                        steps,
                        || {
                            if let Err(e) = graph.step(&x, &labels, &mut sgd_g) {
                                graph_failure = Some(err(e));
                            }
                        },
                        || {
                            if let Err(e) = methods.step(&x, &labels, &mut sgd_m) {
                                failure = Some(err(e));
                            }
                        },
                    )
                });
                failure = failure.or(graph_failure);
                timed
            };
            progress(&format!(
                "W2 wengert batch={batch} threads={t}: handles {graph_ms:.2} ms/step, \
                 tape methods {methods_ms:.2} ({:.3}×)",
                graph_ms / methods_ms
            ));
            if let Some(e) = failure {
                return Err(e);
            }
            for (engine, train, infer) in
                [("wengert", train_a, infer_a), ("no-tape", train_b, infer_b)]
            {
                let mut record = w2_record(engine, t, batch, train, infer, flops);
                if engine == "wengert" {
                    record
                        .figures
                        .insert("handles_ms_per_step".to_string(), graph_ms);
                    record.figures.insert(
                        "handles_over_tape_methods".to_string(),
                        graph_ms / methods_ms,
                    );
                }
                if let (Some((hvp_ms, ratio)), "wengert") = (hvp, engine) {
                    record.figures.insert("hvp_ms".to_string(), hvp_ms);
                    record.figures.insert("hvp_over_step".to_string(), ratio);
                }
                records.push(record);
                progress(&format!(
                    "W2 {engine} batch={batch} threads={t}: {train:.2} ms/step, forward {infer:.2} ms"
                ));
            }
        }
    }
    Ok(records)
}

fn w2_record(engine: &str, t: usize, batch: usize, train: f64, infer: f64, flops: f64) -> Record {
    Record::new(
        "W2",
        engine,
        t,
        &[("batch", batch as u64)],
        &[
            ("ms_per_step", train),
            ("samples_per_s", batch as f64 / (train / 1e3)),
            ("forward_ms", infer),
            ("matmul_gflops", flops / (train / 1e3) / 1e9),
        ],
    )
}

/// W3: the chain of tiny ops, on the tape and on plain floats; medians over the effort's chains.
pub fn w3(
    effort: Effort,
    threads: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let per_op = |s: &mut Vec<f64>| median(s) / W3_OPS as f64 * 1e9;
    let graph = Graph::from(Tape::with_capacity(W3_OPS + 3));
    let mut tape = Tape::with_capacity(W3_OPS + 3);
    let mut values = Vec::with_capacity(W3_OPS + 1);
    // Chains alternate between the engines (after one untimed chain each), as W2's steps do:
    // the handle API (what W3 reports), the plain tape methods, and plain floats.
    let (mut rec, mut back) = (Vec::new(), Vec::new());
    let (mut tape_rec, mut tape_back) = (Vec::new(), Vec::new());
    let (mut plain_rec, mut plain_back) = (Vec::new(), Vec::new());
    let mut allocs = 0;
    for i in 0..=effort.w3_chains() {
        let before = allocations();
        let (times, _) = graph_chain(&graph, W3_OPS).map_err(err)?;
        let after = allocations();
        let (on_tape, _) = tape_chain(&mut tape, W3_OPS).map_err(err)?;
        let (plain, _) = plain_chain(&mut values, W3_OPS);
        if i > 0 {
            allocs += after - before;
            rec.push(times.record);
            back.push(times.backward);
            tape_rec.push(on_tape.record);
            tape_back.push(on_tape.backward);
            plain_rec.push(plain.record);
            plain_back.push(plain.backward);
        }
    }
    let (r, b) = (per_op(&mut rec), per_op(&mut back));
    let (tr, tb) = (per_op(&mut tape_rec), per_op(&mut tape_back));
    // Counted only where the binary's allocator is the counting one (the runner's is).
    let allocs_per_chain = allocs as f64 / effort.w3_chains() as f64;
    progress(&format!(
        "W3 wengert (handles): record {r:.1} ns/op, backward {b:.1} ns/op, {allocs_per_chain} allocations per chain"
    ));
    progress(&format!(
        "W3 wengert (tape methods): record {tr:.1} ns/op, backward {tb:.1} ns/op"
    ));
    let mut w3 = w3_record("wengert", threads, r, b);
    w3.figures
        .insert("allocs_per_chain".to_string(), allocs_per_chain);
    w3.figures
        .insert("tape_methods_record_ns_per_op".to_string(), tr);
    w3.figures
        .insert("tape_methods_backward_ns_per_op".to_string(), tb);
    let mut records = vec![w3];

    let (r, b) = (per_op(&mut plain_rec), per_op(&mut plain_back));
    progress(&format!(
        "W3 no-tape: record {r:.1} ns/op, backward {b:.1} ns/op"
    ));
    records.push(w3_record("no-tape", threads, r, b));
    Ok(records)
}

fn w3_record(engine: &str, threads: usize, record: f64, backward: f64) -> Record {
    Record::new(
        "W3",
        engine,
        threads,
        &[("ops", W3_OPS as u64)],
        &[
            ("record_ns_per_op", record),
            ("backward_ns_per_op", backward),
        ],
    )
}

/// Trains the digits MLP as W4 says, calling `step` for each batch; returns the seconds taken.
fn w4_train(train: &Split, mut step: impl FnMut(&[f32], &[usize])) -> f64 {
    let features = W4_LAYERS[0];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = Rng::new(SEED ^ 0xD1617);
    let mut xb = Vec::with_capacity(W4_BATCH * features);
    let mut yb = Vec::with_capacity(W4_BATCH);
    let start = Instant::now();
    for _ in 0..W4_EPOCHS {
        rng.shuffle(&mut order);
        for chunk in order.chunks(W4_BATCH) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&train.features[i * features..(i + 1) * features]);
                yb.push(train.labels[i]);
            }
            step(&xb, &yb);
        }
    }
    start.elapsed().as_secs_f64()
}

/// W4's network as wengert-train's trainer takes it: the harness's initial weights in its
/// `Mlp`, the training split as a `Dataset`, W4's settings.
fn w4_library_setup(train: &Split) -> Result<(wengert_train::Dataset<f32>, TrainConfig), String> {
    let features = Array2::from_shape_vec((train.len(), W4_LAYERS[0]), train.features.clone())
        .map_err(|e| format!("W4 data: {e}"))?;
    let classes = W4_LAYERS[W4_LAYERS.len() - 1];
    let data = wengert_train::Dataset::classification(features, train.labels.clone(), classes)
        .map_err(|e| format!("W4 data: {e}"))?;
    let config = TrainConfig {
        epochs: W4_EPOCHS,
        batch_size: W4_BATCH,
        seed: SEED,
        ..TrainConfig::default()
    };
    Ok((data, config))
}

/// W4: digits end to end (Adam, 30 epochs): by wengert-train's `Trainer` with its `Mlp` and
/// `Adam` (what a user runs), and by hand with the same `Adam`; the median time of the
/// effort's runs, and the test accuracy after training.
pub fn w4(
    effort: Effort,
    threads: usize,
    data: &(Split, Split),
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let (train, test) = data;
    let pool = pool(threads)?;
    let (dataset, config) = w4_library_setup(train)?;
    let lr = f64::from(W4_LR);
    debug_assert_eq!((W4_BETA1, W4_BETA2, W4_EPS), (0.9, 0.999, 1e-8));
    let fail = |e: wengert_train::Error| format!("wengert-train failed: {e}");

    // Trainings alternate between the engines, as W2's steps do.
    let (mut times, mut hand_times) = (Vec::new(), Vec::new());
    let (mut acc, mut hand_acc) = (0.0, 0.0);
    for _ in 0..effort.w4_runs() {
        let mut model = library_mlp(&Mlp::new(&W4_LAYERS, &mut Rng::new(SEED)));
        let (seconds, logits) = in_pool(&pool, || {
            // Built inside the pool: a trainer is not `Send` (it may hold any callback).
            let mut trainer = Trainer::new(config.clone(), wengert_train::Adam::new(lr)?);
            let start = Instant::now();
            trainer.fit(&mut model, &dataset, None)?;
            let seconds = start.elapsed().as_secs_f64();
            let x = ArrayView2::from_shape((test.len(), W4_LAYERS[0]), &test.features[..])
                .expect("rows × features");
            Ok((seconds, trainer.predict(&model, x)?))
        })
        .map_err(fail)?;
        times.push(seconds);
        acc = accuracy(logits.as_slice().expect("standard layout"), &test.labels);

        let mut mlp = Mlp::new(&W4_LAYERS, &mut Rng::new(SEED));
        let mut hand = NoTape::new();
        let mut opt = LibraryAdam::new(lr, &mlp);
        hand_times.push(in_pool(&pool, || {
            w4_train(train, |x, y| {
                hand.step(&mut mlp, x, y, &mut opt);
            })
        }));
        hand_acc = accuracy(hand.forward(&mlp, &test.features), &test.labels);
    }
    let mut records = Vec::new();
    for (engine, times, acc) in [
        ("wengert", &mut times, acc),
        ("no-tape", &mut hand_times, hand_acc),
    ] {
        let seconds = median(times);
        progress(&format!(
            "W4 {engine}: {seconds:.3} s, test accuracy {:.2}%",
            acc * 100.0
        ));
        records.push(w4_record(engine, threads, seconds, acc));
    }
    Ok(records)
}

fn w4_record(engine: &str, threads: usize, seconds: f64, accuracy: f64) -> Record {
    Record::new(
        "W4",
        engine,
        threads,
        &[("batch", W4_BATCH as u64), ("epochs", W4_EPOCHS as u64)],
        &[("seconds", seconds), ("test_accuracy", accuracy)],
    )
}

/// W6: the small CNN's training step (SGD) on the tape, for each thread count, its steps taking
/// turns with the convolutions' products alone (`ConvPasses`, on the same kernels and shapes);
/// allocations are counted around the timed steps only.
pub fn w6(
    effort: Effort,
    threads: &[usize],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let CnnData {
        x,
        labels,
        params: init,
    } = w6_data(&W6);
    let flops = W6.conv_step_flops();
    let mut records = Vec::new();
    for &t in threads {
        let pool = pool(t)?;
        let mut cnn = TapeCnn::new(W6, &init).map_err(err)?;
        let mut passes = ConvPasses::new(&W6).map_err(err)?;
        let mut sgd = Sgd { lr: W6_LR };
        let (warmup, steps) = (effort.w6_warmup(), effort.w6_steps());
        let (mut step_ms, mut conv_ms) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
        let mut allocs = 0;
        in_pool(&pool, || -> Result<(), String> {
            for i in 0..warmup + steps {
                let before = allocations();
                let start = Instant::now();
                cnn.step(&x, &labels, &mut sgd).map_err(err)?;
                let elapsed = start.elapsed().as_secs_f64() * 1e3;
                let after = allocations();
                let start = Instant::now();
                passes.run();
                let passes_elapsed = start.elapsed().as_secs_f64() * 1e3;
                if i >= warmup {
                    allocs += after - before;
                    step_ms.push(elapsed);
                    conv_ms.push(passes_elapsed);
                }
            }
            Ok(())
        })?;
        let (step, conv) = (median(&mut step_ms), median(&mut conv_ms));
        // Counted only where the binary's allocator is the counting one (the runner's is).
        let allocs_per_step = allocs as f64 / steps as f64;
        let conv_gflops = flops / (conv / 1e3) / 1e9;
        progress(&format!(
            "W6 wengert threads={t}: {step:.2} ms/step, convolutions alone {conv:.2} ms \
             ({conv_gflops:.1} GFLOP/s), {allocs_per_step} allocations per step"
        ));
        let mut record = w6_record("wengert", t, step, flops);
        record.figures.insert("conv_ms".to_string(), conv);
        record
            .figures
            .insert("conv_gflops".to_string(), conv_gflops);
        record
            .figures
            .insert("allocs_per_step".to_string(), allocs_per_step);
        records.push(record);
    }
    Ok(records)
}

/// A W6 record with the figures every engine reports: the step's time, images per second, and
/// the convolutions' FLOPs over the whole step's time.
fn w6_record(engine: &str, t: usize, step_ms: f64, conv_flops: f64) -> Record {
    Record::new(
        "W6",
        engine,
        t,
        &[("batch", W6.batch as u64)],
        &[
            ("ms_per_step", step_ms),
            ("samples_per_s", W6.batch as f64 / (step_ms / 1e3)),
            ("step_conv_gflops", conv_flops / (step_ms / 1e3) / 1e9),
        ],
    )
}

/// Adds `conv_over_w1` to every wengert W6 record: its convolutions' rate (`conv_gflops`) over
/// the best rate of wengert's W1 products on as many threads in the same run (the kernel's rate
/// on square products). Returns the records it could not complete (no W1 in the run).
pub fn w6_against_w1(records: &mut [Record]) -> usize {
    let best_w1 = |threads: u64, records: &[Record]| {
        records
            .iter()
            .filter(|r| r.workload == "W1" && r.engine == "wengert" && r.threads == threads)
            .filter_map(|r| r.figures.get("gflops").copied())
            .fold(None, |best: Option<f64>, g| {
                Some(best.map_or(g, |b| b.max(g)))
            })
    };
    let mut missing = 0;
    for i in 0..records.len() {
        let r = &records[i];
        if r.workload != "W6" || r.engine != "wengert" {
            continue;
        }
        match (best_w1(r.threads, records), r.figures.get("conv_gflops")) {
            (Some(w1), Some(&conv)) if w1 > 0.0 => {
                records[i]
                    .figures
                    .insert("conv_over_w1".to_string(), conv / w1);
            }
            _ => missing += 1,
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w2_step_at_batch_128_is_0_41_gflop() {
        let gflop = w2_step_flops(&W2_LAYERS, 128) / 1e9;
        assert!((gflop - 0.41).abs() < 0.005, "{gflop}");
        let gflop = w2_step_flops(&W2_LAYERS, 1024) / 1e9;
        assert!((gflop - 3.29).abs() < 0.005, "{gflop}");
    }

    #[test]
    fn w6_is_set_against_the_best_w1_rate_on_as_many_threads() {
        let w1 = |n: u64, t: usize, g: f64| {
            Record::new("W1", "wengert", t, &[("n", n)], &[("gflops", g)])
        };
        let mut w6 = w6_record("wengert", 2, 10.0, W6.conv_step_flops());
        w6.figures.insert("conv_gflops".to_string(), 80.0);
        let mut records = vec![
            w1(128, 2, 60.0),
            w1(512, 2, 100.0),
            w1(512, 1, 50.0),
            Record::new("W1", "gemm", 2, &[("n", 512)], &[("gflops", 400.0)]),
            w6,
        ];
        assert_eq!(w6_against_w1(&mut records), 0);
        assert_eq!(records[4].figures["conv_over_w1"], 0.8);
        let mut alone = vec![records[4].clone()];
        alone[0].figures.remove("conv_over_w1");
        assert_eq!(w6_against_w1(&mut alone), 1);
        assert!(!alone[0].figures.contains_key("conv_over_w1"));
    }

    #[test]
    fn the_w4_loop_visits_every_row_once_per_epoch() {
        let train = Split {
            features: vec![0.0; 100 * W4_LAYERS[0]],
            labels: (0..100).collect(),
        };
        let mut seen = vec![0usize; 100];
        let mut batches = 0;
        w4_train(&train, |x, y| {
            assert_eq!(x.len(), y.len() * W4_LAYERS[0]);
            batches += 1;
            for &l in y {
                seen[l] += 1;
            }
        });
        assert!(seen.iter().all(|&n| n == W4_EPOCHS));
        assert_eq!(batches, W4_EPOCHS * 100usize.div_ceil(W4_BATCH));
    }
}
