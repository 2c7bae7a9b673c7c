//! Where the time of one W2 training step goes (784-512-512-10 MLP, ReLU, bias on every layer,
//! softmax cross-entropy, SGD, batch 128): each of its eight products alone on 1 and 2 threads,
//! against the square n = 512 product (W1's rate), and a hand-written step (as `no-tape` in
//! wengert-benches) whole, its products alone and the rest alone. Everything in one process,
//! interleaved, medians.
//!
//! ```text
//! cargo run --release -p wengert-gemm --example w2_step [-- --quick] [--rounds N] [--best]
//! cargo run --release -p wengert-gemm --example w2_step -- --profile 'fwd 1'
//! ```

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::ThreadPool;
use wengert_gemm::gemm;

const LAYERS: [usize; 4] = [784, 512, 512, 10];
const BATCH: usize = 128;

/// A deterministic stream of values in [-0.5, 0.5).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn matrix(&mut self, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || scale * self.next())
    }
}

/// The network, its batch and every buffer of a step, kept across steps.
struct Step {
    x: Array2<f32>,
    labels: Vec<usize>,
    w: Vec<Array2<f32>>,
    b: Vec<Vec<f32>>,
    /// Per layer, `batch × fan_out`: the output (after ReLU on hidden layers).
    h: Vec<Array2<f32>>,
    /// Per layer, `batch × fan_out`: the loss's gradient with respect to the pre-activation.
    d: Vec<Array2<f32>>,
    gw: Vec<Array2<f32>>,
    gb: Vec<Vec<f32>>,
    /// The learning rate, so small that repeated steps on one batch leave the values (and the
    /// time of the arithmetic) as they are, the update doing the same work; not 0, which
    /// would let the fused update skip its product.
    lr: f32,
    /// The time spent in each product (in the order of [`products`], without the square one)
    /// over `steps` steps.
    in_step: [Duration; 8],
    steps: u32,
}

/// Runs a product, adding its time to `total`.
fn timed(total: &mut Duration, product: impl FnOnce() -> Result<(), wengert_gemm::GemmError>) {
    let start = Instant::now();
    product().unwrap();
    *total += start.elapsed();
}

impl Step {
    fn new() -> Self {
        let mut rng = Lcg(7);
        let pairs = || LAYERS.windows(2);
        Step {
            x: rng.matrix(BATCH, LAYERS[0], 2.0),
            labels: (0..BATCH).map(|i| (i * 7) % LAYERS[3]).collect(),
            w: pairs()
                .map(|p| rng.matrix(p[0], p[1], 2.0 / (p[0] as f32).sqrt()))
                .collect(),
            b: pairs().map(|p| vec![0.01; p[1]]).collect(),
            h: pairs().map(|p| Array2::zeros((BATCH, p[1]))).collect(),
            d: pairs().map(|p| Array2::zeros((BATCH, p[1]))).collect(),
            gw: pairs().map(|p| Array2::zeros((p[0], p[1]))).collect(),
            gb: pairs().map(|p| vec![0.0; p[1]]).collect(),
            lr: black_box(1e-20),
            in_step: [Duration::ZERO; 8],
            steps: 0,
        }
    }

    /// One step, or the parts of it that `parts` names.
    fn run(&mut self, parts: Parts) {
        let layers = self.w.len();
        self.steps += 1;
        for l in 0..layers {
            let (done, h) = self.h.split_at_mut(l);
            let input = if l == 0 {
                self.x.view()
            } else {
                done[l - 1].view()
            };
            if parts.products {
                let t = &mut self.in_step[l];
                timed(t, || {
                    gemm(1.0, input, self.w[l].view(), 0.0, h[0].view_mut())
                });
            }
            if parts.bias_relu {
                let hidden = l + 1 < layers;
                bias_relu(h[0].view_mut(), &self.b[l], hidden);
            }
        }
        if parts.loss {
            softmax_ce(
                self.h[layers - 1].view(),
                &self.labels,
                self.d[layers - 1].view_mut(),
            );
        }
        for l in (0..layers).rev() {
            let input = if l == 0 {
                self.x.view()
            } else {
                self.h[l - 1].view()
            };
            if l > 0 {
                // dX before dW: with the update fused into dW's product, W changes there.
                let (below, here) = self.d.split_at_mut(l);
                if parts.products {
                    let prev = below[l - 1].view_mut();
                    let t = &mut self.in_step[[0, 6, 4][l]];
                    timed(t, || gemm(1.0, here[0].view(), self.w[l].t(), 0.0, prev));
                }
                if parts.mask {
                    relu_mask(below[l - 1].view_mut(), self.h[l - 1].view());
                }
            }
            if parts.products {
                let t = &mut self.in_step[[7, 5, 3][l]];
                let start = Instant::now();
                if parts.fused_sgd {
                    // W = W − lr·(inputᵀ·d): the update in the product's output pass.
                    let w = self.w[l].view_mut();
                    gemm(-self.lr, input.t(), self.d[l].view(), 1.0, w).unwrap();
                } else {
                    let gw = self.gw[l].view_mut();
                    gemm(1.0, input.t(), self.d[l].view(), 0.0, gw).unwrap();
                }
                *t += start.elapsed();
            }
            if parts.bias_grad {
                column_sums(self.d[l].view(), &mut self.gb[l]);
            }
        }
        if parts.sgd {
            for l in 0..layers {
                if !parts.fused_sgd {
                    let (w, gw) = (self.w[l].as_slice_mut(), self.gw[l].as_slice());
                    sgd(self.lr, w.unwrap(), gw.unwrap());
                }
                sgd(self.lr, &mut self.b[l], &self.gb[l]);
            }
        }
    }
}

/// Which parts of a step run.
#[derive(Clone, Copy, Default)]
struct Parts {
    /// The eight matrix products.
    products: bool,
    /// Bias and ReLU after each forward product.
    bias_relu: bool,
    /// Softmax cross-entropy and its gradient.
    loss: bool,
    /// The ReLU's mask on the backward products' results.
    mask: bool,
    /// The biases' gradients (column sums).
    bias_grad: bool,
    /// SGD on every parameter.
    sgd: bool,
    /// SGD on the weights inside their gradients' products (alpha = −lr, beta = 1, into W).
    fused_sgd: bool,
}

const ALL: Parts = Parts {
    products: true,
    bias_relu: true,
    loss: true,
    mask: true,
    bias_grad: true,
    sgd: true,
    fused_sgd: false,
};

const NONE: Parts = Parts {
    products: false,
    bias_relu: false,
    loss: false,
    mask: false,
    bias_grad: false,
    sgd: false,
    fused_sgd: false,
};

/// The step variants timed, with their labels.
fn variants() -> Vec<(&'static str, Parts)> {
    let rest = Parts {
        products: false,
        ..ALL
    };
    vec![
        ("step, whole", ALL),
        (
            "step, products only",
            Parts {
                products: true,
                ..NONE
            },
        ),
        ("step, rest only", rest),
        (
            "  rest: bias + ReLU",
            Parts {
                bias_relu: true,
                ..NONE
            },
        ),
        ("  rest: softmax CE", Parts { loss: true, ..NONE }),
        ("  rest: ReLU mask", Parts { mask: true, ..NONE }),
        (
            "  rest: bias grads",
            Parts {
                bias_grad: true,
                ..NONE
            },
        ),
        ("  rest: SGD", Parts { sgd: true, ..NONE }),
        (
            "step, SGD fused in dW",
            Parts {
                fused_sgd: true,
                ..ALL
            },
        ),
        // What fusing bias and ReLU into the forward products could save at most.
        (
            "step, without bias + ReLU",
            Parts {
                bias_relu: false,
                ..ALL
            },
        ),
    ]
}

// The loops below work on slices and select rather than branch, so that they vectorise: the
// floor of the step's work outside the products. (Written as `if h <= 0 { *d = 0 }` the mask
// branches on data and costs about 5 ns an element here.)

fn bias_relu(mut z: ArrayViewMut2<'_, f32>, b: &[f32], relu: bool) {
    let z = z.as_slice_mut().expect("row-major");
    for row in z.chunks_exact_mut(b.len()) {
        if relu {
            for (v, &bias) in row.iter_mut().zip(b) {
                let s = *v + bias;
                *v = if s > 0.0 { s } else { 0.0 };
            }
        } else {
            for (v, &bias) in row.iter_mut().zip(b) {
                *v += bias;
            }
        }
    }
}

fn softmax_ce(z: ArrayView2<'_, f32>, labels: &[usize], mut d: ArrayViewMut2<'_, f32>) -> f32 {
    let scale = 1.0 / labels.len() as f32;
    let mut total = 0.0;
    for ((z, mut d), &label) in z.rows().into_iter().zip(d.rows_mut()).zip(labels) {
        let max = z.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lse = max + z.iter().map(|&v| (v - max).exp()).sum::<f32>().ln();
        total += lse - z[label];
        for (dv, &v) in d.iter_mut().zip(&z) {
            *dv = (v - lse).exp() * scale;
        }
        d[label] -= scale;
    }
    total * scale
}

fn column_sums(d: ArrayView2<'_, f32>, out: &mut [f32]) {
    out.fill(0.0);
    for row in d.as_slice().expect("row-major").chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

fn relu_mask(mut d: ArrayViewMut2<'_, f32>, h: ArrayView2<'_, f32>) {
    let d = d.as_slice_mut().expect("row-major");
    for (d, &h) in d.iter_mut().zip(h.as_slice().expect("row-major")) {
        *d = if h > 0.0 { *d } else { 0.0 };
    }
}

fn sgd(lr: f32, p: &mut [f32], g: &[f32]) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * g;
    }
}

/// One product of the step: `c = a·b`, with `a` or `b` transposed views as the step passes
/// them.
struct Product {
    name: &'static str,
    a: Array2<f32>,
    a_t: bool,
    b: Array2<f32>,
    b_t: bool,
    c: Array2<f32>,
}

impl Product {
    fn new(name: &'static str, (m, k, n): (usize, usize, usize), a_t: bool, b_t: bool) -> Self {
        let mut rng = Lcg(m as u64 * 31 + k as u64 * 7 + n as u64);
        let a = if a_t {
            rng.matrix(k, m, 1.0)
        } else {
            rng.matrix(m, k, 1.0)
        };
        let b = if b_t {
            rng.matrix(n, k, 1.0)
        } else {
            rng.matrix(k, n, 1.0)
        };
        Product {
            name,
            a,
            a_t,
            b,
            b_t,
            c: Array2::zeros((m, n)),
        }
    }

    fn dims(&self) -> (usize, usize, usize) {
        let (m, n) = self.c.dim();
        let k = if self.a_t {
            self.a.nrows()
        } else {
            self.a.ncols()
        };
        (m, k, n)
    }

    fn flops(&self) -> f64 {
        let (m, k, n) = self.dims();
        2.0 * (m * k * n) as f64
    }

    fn run(&mut self) {
        let a = if self.a_t { self.a.t() } else { self.a.view() };
        let b = if self.b_t { self.b.t() } else { self.b.view() };
        gemm(1.0, a, b, 0.0, black_box(&mut self.c).view_mut()).unwrap();
    }
}

fn products() -> Vec<Product> {
    let [i, h1, h2, o] = LAYERS;
    vec![
        Product::new("square 512", (512, 512, 512), false, false),
        Product::new("fwd 1 x·W1", (BATCH, i, h1), false, false),
        Product::new("fwd 2 h1·W2", (BATCH, h1, h2), false, false),
        Product::new("fwd 3 h2·W3", (BATCH, h2, o), false, false),
        Product::new("dW3 = h2ᵀ·d3", (h2, BATCH, o), true, false),
        Product::new("dX3 = d3·W3ᵀ", (BATCH, o, h2), false, true),
        Product::new("dW2 = h1ᵀ·d2", (h1, BATCH, h2), true, false),
        Product::new("dX2 = d2·W2ᵀ", (BATCH, h2, h1), false, true),
        Product::new("dW1 = xᵀ·d1", (i, BATCH, h1), true, false),
    ]
}

/// The median (or best) time of one call of each engine; the engines take turns, one sample
/// each per round.
fn times(rounds: usize, best: bool, engines: &mut [Box<dyn FnMut(u32) + '_>]) -> Vec<Duration> {
    let reps: Vec<u32> = engines
        .iter_mut()
        .map(|f| {
            f(2);
            let start = Instant::now();
            f(1);
            let once = start.elapsed().max(Duration::from_nanos(100));
            (Duration::from_millis(2).as_nanos() / once.as_nanos()).clamp(1, 1000) as u32
        })
        .collect();
    let count = engines.len();
    let mut samples = vec![Vec::with_capacity(rounds); count];
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = Lcg(3);
    for _ in 0..rounds {
        // A new order every round, so that no engine always follows the same one (which one ran
        // before, on which threads, moves a time by up to 25% here), and one untimed call
        // before each sample: the samples time calls that find the caches and threads warm.
        for i in (1..count).rev() {
            order.swap(i, ((rng.next() + 0.5) * (i + 1) as f32) as usize % (i + 1));
        }
        for &e in &order {
            engines[e](1);
            let start = Instant::now();
            engines[e](reps[e]);
            samples[e].push(start.elapsed() / reps[e]);
        }
    }
    samples
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[if best { 0 } else { t.len() / 2 }]
        })
        .collect()
}

fn pool(threads: usize) -> ThreadPool {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    pool.broadcast(|_| wengert_gemm::prepare_thread::<f32>());
    pool
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if args.iter().any(|a| a == "--quick") {
            11
        } else {
            41
        });
    let best = args.iter().any(|a| a == "--best");
    let pools = [pool(1), pool(2)];
    let products = products();
    let flops: Vec<f64> = products.iter().map(Product::flops).collect();
    let dims: Vec<_> = products.iter().map(Product::dims).collect();
    let names: Vec<_> = products.iter().map(|p| p.name).collect();
    let variants = variants();
    let mut steps: Vec<Step> = (0..2 * variants.len()).map(|_| Step::new()).collect();
    for s in &mut steps {
        pools[1].install(|| s.run(ALL));
        (s.in_step, s.steps) = ([Duration::ZERO; 8], 0);
    }
    if std::env::var("DEBUGVALS").is_ok() {
        for (name, arrs) in [("h", &steps[0].h), ("d", &steps[0].d), ("w", &steps[0].w)] {
            for (i, a) in arrs.iter().enumerate() {
                let tiny = a.iter().filter(|v| v.abs() < 1e-30 && **v != 0.0).count();
                let zeros = a.iter().filter(|v| **v == 0.0).count();
                let max = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                println!(
                    "{name}{i}: {:?} tiny {tiny} zeros {zeros} max {max}",
                    a.dim()
                );
            }
        }
        return;
    }

    if let Some(name) = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1))
    {
        // For `perf record`: three seconds of one product on 2 threads, or of a step variant.
        let start = Instant::now();
        if let Some(mut p) = products
            .into_iter()
            .find(|p| p.name.contains(name.as_str()))
        {
            pools[1].install(|| {
                while start.elapsed() < Duration::from_secs(3) {
                    p.run()
                }
            });
        } else if let Some(&(_, parts)) = variants.iter().find(|v| v.0.contains(name.as_str())) {
            pools[1].install(|| {
                while start.elapsed() < Duration::from_secs(3) {
                    steps[0].run(parts)
                }
            });
        }
        return;
    }
    let cells: Vec<RefCell<Product>> = products.into_iter().map(RefCell::new).collect();
    // Each product on 1 and 2 threads (its two engines never run at once).
    let mut engines: Vec<Box<dyn FnMut(u32) + '_>> = Vec::new();
    for cell in &cells {
        for pool in &pools {
            engines.push(Box::new(move |reps| {
                let p: &mut Product = &mut cell.borrow_mut();
                pool.install(|| (0..reps).for_each(|_| p.run()))
            }));
        }
    }
    // The step's variants on 1 and 2 threads.
    for (s, (pool, (_, parts))) in steps.iter_mut().zip(
        pools
            .iter()
            .flat_map(|pool| variants.iter().map(move |&v| (pool, v))),
    ) {
        engines.push(Box::new(move |reps| {
            pool.install(|| (0..reps).for_each(|_| s.run(parts)))
        }));
    }

    let t = times(rounds, best, &mut engines);
    drop(engines);
    let v = variants.len();
    // Mean time of each product inside the whole step, on 1 and 2 threads.
    let in_step = |s: &Step, i: usize| s.in_step[i] / s.steps;
    let (whole1, whole2) = (&steps[0], &steps[v]);
    let statistic = if best { "best" } else { "median" };
    println!("W2 step's products, batch {BATCH}: {statistic} of {rounds} rounds");
    println!(
        "{:<16} {:>13} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "product", "m×k×n", "GF/s 1t", "GF/s 2t", "µs 1t", "µs 2t", "in step 1t", "in step 2t"
    );
    let in_step_us = |s: &Step, i: usize| {
        if i == 0 {
            String::new()
        } else {
            format!("{:.1}", in_step(s, i - 1).as_secs_f64() * 1e6)
        }
    };
    let mut sum = [Duration::ZERO; 2];
    for (i, name) in names.iter().enumerate() {
        let (m, k, n) = dims[i];
        let (t1, t2) = (t[2 * i], t[2 * i + 1]);
        let g = |t: Duration| flops[i] / t.as_secs_f64() / 1e9;
        println!(
            "{:<16} {:>13} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10}",
            name,
            format!("{m}×{k}×{n}"),
            g(t1),
            g(t2),
            t1.as_secs_f64() * 1e6,
            t2.as_secs_f64() * 1e6,
            in_step_us(whole1, i),
            in_step_us(whole2, i),
        );
        if i > 0 {
            sum[0] += t1;
            sum[1] += t2;
        }
    }
    let step_flops: f64 = flops[1..].iter().sum();
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    let rate = |t: Duration| step_flops / t.as_secs_f64() / 1e9;
    println!(
        "{:<30} {:>9.1} {:>9.1} {:>9.3} {:>9.3}  (ms)",
        "8 products, sum of medians",
        rate(sum[0]),
        rate(sum[1]),
        ms(sum[0]),
        ms(sum[1])
    );
    let s = &t[2 * names.len()..];
    let in_step_sum = |s: &Step| (0..8).map(|i| in_step(s, i)).sum::<Duration>();
    println!(
        "{:<30} {:>9} {:>9} {:>9.3} {:>9.3}  (ms)",
        "8 products in the step (means)",
        "",
        "",
        ms(in_step_sum(whole1)),
        ms(in_step_sum(whole2))
    );
    for (j, (label, _)) in variants.iter().enumerate() {
        println!(
            "{:<30} {:>9} {:>9} {:>9.3} {:>9.3}  (ms)",
            label,
            "",
            "",
            ms(s[j]),
            ms(s[v + j])
        );
    }
    let w1 = |threads: usize| flops[0] / t[threads - 1].as_secs_f64();
    for threads in [1, 2] {
        let at_w1 = step_flops / w1(threads) * 1e3;
        let whole = ms(s[v * (threads - 1)]);
        println!(
            "{threads}t: products at the square-512 rate {at_w1:.3} ms; step / that = {:.2}; \
             whole − products only = {:.3} ms",
            whole / at_w1,
            whole - ms(s[v * (threads - 1) + 1]),
        );
    }
}
