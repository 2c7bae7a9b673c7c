//! Criterion benchmarks of W2's training step (784-512-512-10, SGD) on the tape and by hand
//! (`no-tape`), of its inference pass, and of W3's chain of tiny ops. Run with
//! `cargo bench -p wengert-benches --bench train_step`.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wengert_benches::chain::{plain_chain, tape_chain};
use wengert_benches::mlp::{Mlp, NoTape, Sgd, TapeMlp};
use wengert_benches::shared::{Rng, W2_LAYERS, W2_LR, W3_OPS, label_vec, normal_vec};
use wengert_tape::Tape;

fn w2_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("w2_step");
    group.sample_size(20);
    for batch in [32usize, 128] {
        let mut rng = Rng::new(4);
        let x = normal_vec(&mut rng, batch * W2_LAYERS[0]);
        let labels = label_vec(&mut rng, batch, W2_LAYERS[3]);
        let init = Mlp::new(&W2_LAYERS, &mut rng);
        let mut sgd = Sgd { lr: W2_LR };

        let mut tape = TapeMlp::new(&init).expect("valid");
        group.bench_with_input(BenchmarkId::new("tape", batch), &batch, |b, _| {
            b.iter(|| tape.step(&x, &labels, &mut sgd).expect("valid"))
        });
        group.bench_with_input(BenchmarkId::new("tape inference", batch), &batch, |b, _| {
            b.iter(|| tape.infer(&x).map(|l| l[0]).expect("valid"))
        });
        let mut mlp = init.clone();
        let mut hand = NoTape::new();
        group.bench_with_input(BenchmarkId::new("no-tape", batch), &batch, |b, _| {
            b.iter(|| hand.step(&mut mlp, &x, &labels, &mut sgd))
        });
    }
    group.finish();
}

fn w3_chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("w3_chain");
    group.sample_size(20);
    let mut tape = Tape::with_capacity(W3_OPS + 3);
    group.bench_function("tape record+backward", |b| {
        b.iter(|| tape_chain(&mut tape, W3_OPS).expect("valid"))
    });
    let mut values = Vec::with_capacity(W3_OPS + 1);
    group.bench_function("plain f32", |b| b.iter(|| plain_chain(&mut values, W3_OPS)));
    group.finish();
}

criterion_group!(benches, w2_step, w3_chain);
criterion_main!(benches);
