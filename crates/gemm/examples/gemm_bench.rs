//! Times `wengert_gemm::gemm` against matrixmultiply (through ndarray's `general_mat_mul`, as
//! wengert-ops called it before) on square products and on the products of one training step of
//! the W2 network (784-512-512-10, batch 128), on 1 and 2 threads. Prints GFLOP/s, medians.
//!
//! ```text
//! cargo run --release -p wengert-gemm --example gemm_bench [-- --quick]
//! ```
//!
//! The engines:
//! - `mm 1t`: matrixmultiply's sgemm/dgemm on the calling thread.
//! - `mm rows 2t`: the kernel wengert-ops used until now: `rayon::join` over four blocks of
//!   output rows, matrixmultiply in each, on a 2-thread pool.
//! - `wengert 1t`, `wengert 2t`: this crate on rayon pools of 1 and 2 threads.

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

/// The median time of one call, from samples of enough calls to last about a millisecond.
fn median_time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(100));
    let per_sample = (Duration::from_millis(1).as_nanos() / once.as_nanos()).max(1) as u32;
    let samples = (budget.as_nanos() / (once.as_nanos() * u128::from(per_sample))).clamp(5, 200);
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_sample {
                f();
            }
            start.elapsed() / per_sample
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn run<E: GemmScalar + LinalgScalar + From<f32> + Send + Sync>(label: &str, quick: bool) {
    let budget = Duration::from_millis(if quick { 60 } else { 400 });
    let pools: Vec<rayon::ThreadPool> = [1, 2]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a rayon pool")
        })
        .collect();
    println!("\n{label}: GFLOP/s, median per call (higher is better)");
    println!(
        "{:<18} {:>16} {:>9} {:>11} {:>11} {:>11} {:>8} {:>8}",
        "product",
        "m×k×n",
        "mm 1t",
        "wengert 1t",
        "mm rows 2t",
        "wengert 2t",
        "1t ratio",
        "2t ratio"
    );
    for case in cases() {
        let (m, k, n) = (case.m, case.k, case.n);
        let a = operand::<E>(m, k, case.a, 1);
        let b = operand::<E>(k, n, case.b, 2);
        let (a, b) = (view(&a, case.a), view(&b, case.b));
        let mut c = Array2::<E>::zeros((m, n));
        let rows_per_task = (m.div_ceil(4).div_ceil(8) * 8).max(16);
        let flops = 2.0 * (m * k * n) as f64;
        let gflops = |t: Duration| flops / t.as_secs_f64() / 1e9;
        let mm1 = median_time(budget, || {
            general_mat_mul(E::one(), &a, &b, E::zero(), &mut c);
            black_box(&c);
        });
        let ours1 = pools[0].install(|| {
            median_time(budget, || {
                gemm(E::one(), a, b, E::zero(), c.view_mut()).expect("shapes fit");
                black_box(&c);
            })
        });
        let mm2 = pools[1].install(|| {
            median_time(budget, || {
                mm_rows(a, b, c.view_mut(), rows_per_task);
                black_box(&c);
            })
        });
        let ours2 = pools[1].install(|| {
            median_time(budget, || {
                gemm(E::one(), a, b, E::zero(), c.view_mut()).expect("shapes fit");
                black_box(&c);
            })
        });
        println!(
            "{:<18} {:>16} {:>9.1} {:>11.1} {:>11.1} {:>11.1} {:>8.2} {:>8.2}",
            case.name,
            format!("{m}×{k}×{n}"),
            gflops(mm1),
            gflops(ours1),
            gflops(mm2),
            gflops(ours2),
            mm1.as_secs_f64() / ours1.as_secs_f64(),
            mm2.as_secs_f64() / ours2.as_secs_f64(),
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let f64_too = std::env::args().any(|a| a == "--f64");
    run::<f32>("f32", quick);
    if f64_too {
        run::<f64>("f64", quick);
    }
    println!(
        "\nratio = matrixmultiply's time / wengert-gemm's time (above 1: wengert-gemm is faster)"
    );
}
