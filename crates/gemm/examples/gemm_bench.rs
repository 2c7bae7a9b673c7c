//! Times `wengert_gemm::gemm` against matrixmultiply (through ndarray's `general_mat_mul`, as
//! wengert-ops called it before) on square products and on the products of one training step of
//! the W2 network (784-512-512-10, batch 128) and of the W4 network (64-128-10, batch 32), on 1
//! and 2 threads, and against a naive loop on W4's. Prints GFLOP/s, medians.
//!
//! ```text
//! cargo run --release -p wengert-gemm --example gemm_bench [-- --quick] [--f64] [--best]
//! ```
//!
//! `--best` reports the fastest sample instead of the median: on a machine shared with other
//! work, the closest to what the code can do.
//!
//! The engines:
//! - `mm 1t`: matrixmultiply's sgemm/dgemm on the calling thread.
//! - `mm rows 2t`: the kernel wengert-ops used until now: `rayon::join` over four blocks of
//!   output rows, matrixmultiply in each, on a 2-thread pool.
//! - `wengert 1t`: this crate on the calling thread (the global rayon pool has one thread).
//! - `wengert 2t`: this crate on a 2-thread pool.
//! - `naive`: the three loops (i, p, j) on the stored slices, for W4's small products only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, LinalgScalar};
use wengert_gemm::{GemmScalar, gemm};

/// An operand's layout: stored as `[rows, cols]`, or stored transposed and viewed through `.t()`.
#[derive(Clone, Copy)]
enum Layout {
    Plain,
    Transposed,
}

struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a: Layout,
    b: Layout,
}

const fn case(name: &'static str, m: usize, k: usize, n: usize) -> Case {
    Case {
        name,
        m,
        k,
        n,
        a: Layout::Plain,
        b: Layout::Plain,
    }
}

const fn with(c: Case, a: Layout, b: Layout) -> Case {
    Case { a, b, ..c }
}

fn cases() -> Vec<Case> {
    use Layout::{Plain as P, Transposed as T};
    vec![
        case("square", 128, 128, 128),
        case("square", 256, 256, 256),
        case("square", 512, 512, 512),
        case("square", 1024, 1024, 1024),
        with(case("square a.t", 512, 512, 512), T, P),
        with(case("square b.t", 512, 512, 512), P, T),
        case("W2 fwd 1", 128, 784, 512),
        case("W2 fwd 2", 128, 512, 512),
        case("W2 fwd 3", 128, 512, 10),
        with(case("W2 dX3 = g·W3ᵀ", 128, 10, 512), P, T),
        with(case("W2 dW3 = Xᵀ·g", 512, 128, 10), T, P),
        with(case("W2 dX2 = g·W2ᵀ", 128, 512, 512), P, T),
        with(case("W2 dW2 = Xᵀ·g", 512, 128, 512), T, P),
        with(case("W2 dX1 = g·W1ᵀ", 128, 512, 784), P, T),
        with(case("W2 dW1 = Xᵀ·g", 784, 128, 512), T, P),
        case("W4 fwd 1", 32, 64, 128),
        case("W4 fwd 2", 32, 128, 10),
        with(case("W4 dX2 = g·W2ᵀ", 32, 10, 128), P, T),
        with(case("W4 dW2 = Xᵀ·g", 128, 32, 10), T, P),
        with(case("W4 dX1 = g·W1ᵀ", 32, 128, 64), P, T),
        with(case("W4 dW1 = Xᵀ·g", 64, 32, 128), T, P),
    ]
}

fn operand<E: LinalgScalar + From<f32>>(
    rows: usize,
    cols: usize,
    layout: Layout,
    seed: usize,
) -> Array2<E> {
    let value = |i: usize, j: usize| {
        let x = ((i * 31 + j * 17 + seed) % 97) as f64 / 97.0 - 0.5;
        E::from(x as f32)
    };
    match layout {
        Layout::Plain => Array2::from_shape_fn((rows, cols), |(i, j)| value(i, j)),
        Layout::Transposed => Array2::from_shape_fn((cols, rows), |(j, i)| value(i, j)),
    }
}

fn view<E>(x: &Array2<E>, layout: Layout) -> ArrayView2<'_, E> {
    match layout {
        Layout::Plain => x.view(),
        Layout::Transposed => x.t(),
    }
}

/// wengert-ops' kernel until now: four row blocks (whole 8-row panels), matrixmultiply in each.
fn mm_rows<E: LinalgScalar + Send + Sync>(
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    mut c: ArrayViewMut2<'_, E>,
    rows_per_task: usize,
) {
    let rows = a.nrows();
    if rows <= rows_per_task {
        general_mat_mul(E::one(), &a, &b, E::zero(), &mut c);
        return;
    }
    let mid = rows.div_ceil(rows_per_task) / 2 * rows_per_task;
    let (a0, a1) = a.split_at(Axis(0), mid);
    let (c0, c1) = c.split_at(Axis(0), mid);
    rayon::join(
        || mm_rows(a0, b, c0, rows_per_task),
        || mm_rows(a1, b, c1, rows_per_task),
    );
}

/// `c = a·b` by the three loops (i, p, j), reading the stored slices through the views' strides
/// (all non-negative here).
fn naive<E: LinalgScalar>(
    a_stored: &Array2<E>,
    a: ArrayView2<'_, E>,
    b_stored: &Array2<E>,
    b: ArrayView2<'_, E>,
    c: &mut Array2<E>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let (a_data, b_data) = (
        a_stored.as_slice().expect("contiguous"),
        b_stored.as_slice().expect("contiguous"),
    );
    let [ars, acs] = [a.strides()[0] as usize, a.strides()[1] as usize];
    let [brs, bcs] = [b.strides()[0] as usize, b.strides()[1] as usize];
    let c = c.as_slice_mut().expect("contiguous");
    c.fill(E::zero());
    for (i, row) in c.chunks_exact_mut(n).enumerate().take(m) {
        for p in 0..k {
            let aip = a_data[i * ars + p * acs];
            for (j, x) in row.iter_mut().enumerate() {
                *x = *x + aip * b_data[p * brs + j * bcs];
            }
        }
    }
}

/// The median time of one call of each engine. The engines take turns, one sample each per
/// round and in rotating order, so that a load from elsewhere on the machine hits them alike.
///
/// Each engine runs `reps` calls when asked, inside its own pool (entering a pool costs
/// microseconds, which would swamp the small products).
fn median_times(rounds: usize, best: bool, engines: &mut [&mut dyn FnMut(u32)]) -> Vec<Duration> {
    // Warm up, and size each sample to last about a millisecond.
    let per_sample: Vec<u32> = engines
        .iter_mut()
        .map(|f| {
            f(1);
            let start = Instant::now();
            f(1);
            let once = start.elapsed().max(Duration::from_nanos(100));
            (Duration::from_millis(1).as_nanos() / once.as_nanos()).clamp(1, 1000) as u32
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); engines.len()];
    let count = engines.len();
    for round in 0..rounds {
        // Each round starts with the next engine: which engine runs first after a pause or
        // after the other pool's threads were busy measurably changes its time.
        for e in (0..count).map(|i| (round + i) % count) {
            let start = Instant::now();
            engines[e](per_sample[e]);
            samples[e].push(start.elapsed() / per_sample[e]);
        }
    }
    samples
        .into_iter()
        .map(|mut times| {
            times.sort();
            times[if best { 0 } else { times.len() / 2 }]
        })
        .collect()
}

/// `x / y`: above 1 when `y` is the faster.
fn ratio(x: Duration, y: Duration) -> f64 {
    x.as_secs_f64() / y.as_secs_f64()
}

fn run<E: GemmScalar + LinalgScalar + From<f32> + Send + Sync>(
    label: &str,
    rounds: usize,
    best: bool,
) {
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("a rayon pool")
    };
    let two = pool(2);
    let statistic = if best { "best" } else { "median" };
    println!("\n{label}: GFLOP/s, {statistic} of {rounds} samples (higher is better)");
    println!(
        "{:<18} {:>16} {:>9} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8}",
        "product",
        "m×k×n",
        "mm 1t",
        "wengert 1t",
        "mm rows 2t",
        "wengert 2t",
        "1t ratio",
        "2t ratio",
        "naive"
    );
    // The summed medians of the W2 step's nine products and of the W4 step's six, per engine.
    let mut step = [Duration::ZERO; 5];
    let mut small_step = [Duration::ZERO; 5];
    for case in cases() {
        let (m, k, n) = (case.m, case.k, case.n);
        let a_stored = operand::<E>(m, k, case.a, 1);
        let b_stored = operand::<E>(k, n, case.b, 2);
        let (a, b) = (view(&a_stored, case.a), view(&b_stored, case.b));
        let mut c = [(); 5].map(|_| Array2::<E>::zeros((m, n)));
        let [c0, c1, c2, c3, c4] = &mut c;
        let small = case.name.starts_with("W4");
        let rows_per_task = (m.div_ceil(4).div_ceil(8) * 8).max(16);
        let times = median_times(
            rounds,
            best,
            &mut [
                &mut |reps| {
                    for _ in 0..reps {
                        general_mat_mul(E::one(), &a, &b, E::zero(), black_box(&mut *c0));
                    }
                },
                &mut |reps| {
                    // On this thread, as matrixmultiply: the global pool has one thread.
                    for _ in 0..reps {
                        let c = black_box(&mut *c1).view_mut();
                        gemm(E::one(), a, b, E::zero(), c).expect("shapes fit");
                    }
                },
                &mut |reps| {
                    two.install(|| {
                        for _ in 0..reps {
                            mm_rows(a, b, black_box(&mut *c2).view_mut(), rows_per_task);
                        }
                    })
                },
                &mut |reps| {
                    two.install(|| {
                        for _ in 0..reps {
                            let c = black_box(&mut *c3).view_mut();
                            gemm(E::one(), a, b, E::zero(), c).expect("shapes fit");
                        }
                    })
                },
                &mut |reps| {
                    if small {
                        for _ in 0..reps {
                            naive(&a_stored, a, &b_stored, b, black_box(&mut *c4));
                        }
                    }
                },
            ],
        );
        let flops = 2.0 * (m * k * n) as f64;
        let g = |t: Duration| flops / t.as_secs_f64() / 1e9;
        let naive_figure = if small {
            format!("{:.1}", g(times[4]))
        } else {
            "-".to_string()
        };
        println!(
            "{:<18} {:>16} {:>9.1} {:>11.1} {:>11.1} {:>11.1} {:>8.2} {:>8.2} {:>8}",
            case.name,
            format!("{m}×{k}×{n}"),
            g(times[0]),
            g(times[1]),
            g(times[2]),
            g(times[3]),
            ratio(times[0], times[1]),
            ratio(times[2], times[3]),
            naive_figure,
        );
        let total = if small { &mut small_step } else { &mut step };
        if small || case.name.starts_with("W2") {
            for (total, t) in total.iter_mut().zip(&times) {
                *total += *t;
            }
        }
    }
    let us = |t: Duration| t.as_secs_f64() * 1e6;
    println!(
        "{:<35} {:>9.2} {:>11.2} {:>11.2} {:>11.2} {:>8.2} {:>8.2} {:>8.2}",
        "W4 step, all 6 products (µs)",
        us(small_step[0]),
        us(small_step[1]),
        us(small_step[2]),
        us(small_step[3]),
        ratio(small_step[0], small_step[1]),
        ratio(small_step[2], small_step[3]),
        us(small_step[4]),
    );
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    println!(
        "{:<35} {:>9.3} {:>11.3} {:>11.3} {:>11.3} {:>8.2} {:>8.2}",
        "W2 step, all 9 products (ms)",
        ms(step[0]),
        ms(step[1]),
        ms(step[2]),
        ms(step[3]),
        ratio(step[0], step[1]),
        ratio(step[2], step[3]),
    );
}

fn main() {
    // The 1-thread engines run on the main thread; a global pool of one thread makes
    // wengert-gemm run there too, without handing its work to a pool's thread.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("the global pool is built first");
    let rounds = if std::env::args().any(|a| a == "--quick") {
        11
    } else {
        51
    };
    let best = std::env::args().any(|a| a == "--best");
    run::<f32>("f32", rounds, best);
    if std::env::args().any(|a| a == "--f64") {
        run::<f64>("f64", rounds, best);
    }
    println!(
        "\nratio = matrixmultiply's time / wengert-gemm's time (above 1: wengert-gemm is faster)"
    );
}
