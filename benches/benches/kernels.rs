//! Criterion benchmarks of wengert's kernels: the matrix product with plain and transposed
//! operands (as the forward pass and the VJPs use them), elementwise ops, and softmax
//! cross-entropy with its VJP. Run with `cargo bench -p wengert-benches --bench kernels`.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use wengert_benches::shared::{Rng, label_vec, normal_vec};
use wengert_ops::gemm;
use wengert_ops::{BinaryOp, Op, Shape, TensorRef, UnaryOp};

fn matrix(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_vec((rows, cols), normal_vec(rng, rows * cols)).expect("rows·cols values")
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    let mut rng = Rng::new(1);
    for n in [128usize, 256, 512] {
        let a = matrix(&mut rng, n, n);
        let b = matrix(&mut rng, n, n);
        let mut out = Array2::<f32>::zeros((n, n));
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.bench_with_input(BenchmarkId::new("a·b", n), &n, |bench, _| {
            bench.iter(|| gemm(1.0, a.view(), b.view(), 0.0, out.view_mut()))
        });
        group.bench_with_input(BenchmarkId::new("a·bᵀ", n), &n, |bench, _| {
            bench.iter(|| gemm(1.0, a.view(), b.t(), 0.0, out.view_mut()))
        });
        group.bench_with_input(BenchmarkId::new("aᵀ·b", n), &n, |bench, _| {
            bench.iter(|| gemm(1.0, a.t(), b.view(), 0.0, out.view_mut()))
        });
    }
    // W2's shapes at batch 128: forward x·W₁, and the VJPs dz·W₁ᵀ and xᵀ·dz.
    let (batch, fan_in, fan_out) = (128, 784, 512);
    let x = matrix(&mut rng, batch, fan_in);
    let w = matrix(&mut rng, fan_in, fan_out);
    let dz = matrix(&mut rng, batch, fan_out);
    let mut z = Array2::<f32>::zeros((batch, fan_out));
    let mut dx = Array2::<f32>::zeros((batch, fan_in));
    let mut dw = Array2::<f32>::zeros((fan_in, fan_out));
    group.throughput(Throughput::Elements((2 * batch * fan_in * fan_out) as u64));
    group.bench_function("w2 x·W 128x784x512", |bench| {
        bench.iter(|| gemm(1.0, x.view(), w.view(), 0.0, z.view_mut()))
    });
    group.bench_function("w2 dz·Wᵀ 128x512x784", |bench| {
        bench.iter(|| gemm(1.0, dz.view(), w.t(), 0.0, dx.view_mut()))
    });
    group.bench_function("w2 xᵀ·dz 784x128x512", |bench| {
        bench.iter(|| gemm(1.0, x.t(), dz.view(), 0.0, dw.view_mut()))
    });
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise");
    let mut rng = Rng::new(2);
    let (rows, cols) = (128usize, 512usize);
    let shape = Shape::matrix(rows, cols).expect("small");
    let bias_shape = Shape::vector(cols);
    let x = normal_vec(&mut rng, rows * cols);
    let bias = normal_vec(&mut rng, cols);
    let g = normal_vec(&mut rng, rows * cols);
    let xs = TensorRef::trusted(&shape, &x);
    let bs = TensorRef::trusted(&bias_shape, &bias);
    let mut out = vec![0.0f32; rows * cols];
    let mut gi = vec![0.0f32; rows * cols];
    let mut gb = vec![0.0f32; cols];
    group.throughput(Throughput::Elements((rows * cols) as u64));
    group.bench_function("add bias [128,512]+[512]", |bench| {
        bench.iter(|| {
            Op::Binary(BinaryOp::Add)
                .forward(&[xs, bs], &mut out)
                .expect("shapes checked")
        })
    });
    let ys = TensorRef::trusted(&shape, &out);
    group.bench_function("add bias vjp to bias", |bench| {
        bench.iter(|| Op::Binary(BinaryOp::Add).vjp(&[xs, bs], ys, &g, 1, &mut gb))
    });
    let mut y = vec![0.0f32; rows * cols];
    group.bench_function("relu [128,512]", |bench| {
        bench.iter(|| {
            Op::Unary(UnaryOp::Relu)
                .forward(&[xs], &mut y)
                .expect("unary")
        })
    });
    let ys = TensorRef::trusted(&shape, &y);
    group.bench_function("relu vjp", |bench| {
        bench.iter(|| Op::Unary(UnaryOp::Relu).vjp(&[xs], ys, &g, 0, &mut gi))
    });
    let mut t = vec![0.0f32; rows * cols];
    group.bench_function("tanh [128,512]", |bench| {
        bench.iter(|| {
            Op::Unary(UnaryOp::Tanh)
                .forward(&[xs], &mut t)
                .expect("unary")
        })
    });
    group.finish();
}

fn softmax_cross_entropy(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_entropy");
    let mut rng = Rng::new(3);
    for batch in [128usize, 1024] {
        let classes = 10;
        let zs = Shape::matrix(batch, classes).expect("small");
        let ls = Shape::vector(batch);
        let z = normal_vec(&mut rng, batch * classes);
        let labels: Vec<f32> = label_vec(&mut rng, batch, classes)
            .into_iter()
            .map(|l| l as f32)
            .collect();
        let inputs = [
            TensorRef::trusted(&zs, &z),
            TensorRef::trusted(&ls, &labels),
        ];
        let mut loss = [0.0f32];
        let mut dz = vec![0.0f32; batch * classes];
        group.throughput(Throughput::Elements((batch * classes) as u64));
        group.bench_with_input(BenchmarkId::new("forward", batch), &batch, |bench, _| {
            bench.iter(|| {
                Op::CrossEntropy
                    .forward(&inputs, &mut loss)
                    .expect("valid labels");
                black_box(loss[0])
            })
        });
        let out = TensorRef::trusted(&Shape::SCALAR, &[1.0f32]);
        group.bench_with_input(BenchmarkId::new("vjp", batch), &batch, |bench, _| {
            bench.iter(|| Op::CrossEntropy.vjp(&inputs, out, &[1.0], 0, &mut dz))
        });
    }
    group.finish();
}

criterion_group!(benches, matmul, elementwise, softmax_cross_entropy);
criterion_main!(benches);
