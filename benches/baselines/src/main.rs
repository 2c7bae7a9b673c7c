//! W1's baselines, measured in the same run as wengert by `cargo xtask bench`:
//!
//! - `matrixmultiply-threaded`: matrixmultiply's sgemm with its own `threading` feature (reached
//!   through ndarray's `general_mat_mul`, which calls it directly for contiguous f32), on the
//!   number of threads in `MATMUL_NUM_THREADS`;
//! - `gemm`: the gemm crate on one thread and on rayon;
//! - `fma-peak`: the machine's fused multiply-add throughput, from a loop of independent FMAs.
//!
//! Prints one JSON record per line on stdout (and progress as plain lines).
//! Usage: `wengert-bench-baselines --threads N [--quick] [--only W1,...]`.

#[path = "../../src/shared.rs"]
mod shared;

mod fma;

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;

use shared::{Effort, Rng, SEED, W1_SIZES, normal_vec, record_json, time_median};

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
    let only = value("--only").unwrap_or_else(|| "W1".to_string());
    if !only.split(',').any(|w| w.eq_ignore_ascii_case("W1")) {
        return;
    }
    let env_threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_default();
    if env_threads != threads.to_string() {
        println!(
            "warning: MATMUL_NUM_THREADS is '{env_threads}', not {threads}: the threaded figure \
             runs on matrixmultiply's choice"
        );
    }
    let counts: Vec<usize> = if threads > 1 {
        vec![1, threads]
    } else {
        vec![1]
    };

    for &t in &counts {
        let gflops = fma::peak_gflops(t, effort.w1_seconds());
        println!("W1 fma-peak threads={t}: {gflops:.1} GFLOP/s");
        println!(
            "{}",
            record_json("W1", "fma-peak", t, &[], &[("gflops", gflops)])
        );
    }

    let mut rng = Rng::new(SEED);
    for n in W1_SIZES {
        let a = Array2::from_shape_vec((n, n), normal_vec(&mut rng, n * n)).expect("n·n");
        let b = Array2::from_shape_vec((n, n), normal_vec(&mut rng, n * n)).expect("n·n");
        let mut c = Array2::<f32>::zeros((n, n));
        let flops = 2.0 * (n as f64).powi(3);
        let budget = effort.w1_seconds();
        let emit = |engine: &str, t: usize, seconds: f64| {
            let gflops = flops / seconds / 1e9;
            println!("W1 {engine} n={n} threads={t}: {gflops:.1} GFLOP/s");
            println!(
                "{}",
                record_json("W1", engine, t, &[("n", n as u64)], &[("gflops", gflops)])
            );
        };
        if threads > 1 {
            let s = time_median(budget, || general_mat_mul(1.0, &a, &b, 0.0, &mut c));
            emit("matrixmultiply-threaded", threads, s);
        }
        for &t in &counts {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a rayon pool");
            let parallelism = if t == 1 {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(t)
            };
            let s = time_median(budget, || {
                pool.install(|| gemm_crate(&a, &b, &mut c, parallelism))
            });
            emit("gemm", t, s);
        }
    }
}

/// `c = a·b` on the gemm crate, all three matrices square and row-major.
fn gemm_crate(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>, par: gemm::Parallelism) {
    let n = a.nrows();
    assert!(a.is_standard_layout() && b.is_standard_layout() && c.is_standard_layout());
    assert!(a.dim() == (n, n) && b.dim() == (n, n) && c.dim() == (n, n));
    let row = n as isize;
    // SAFETY: the three matrices are distinct, contiguous, row-major n×n arrays (asserted above),
    // so every (i, j) the strides below reach (column stride 1, row stride n) is inside its
    // buffer; `c` is borrowed mutably, so nothing else reads or writes it meanwhile.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            row,
            false,
            a.as_ptr(),
            1,
            row,
            b.as_ptr(),
            1,
            row,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gemm_crate_call_computes_a_product() {
        let n = 33;
        let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 3 + j) % 7) as f32 - 3.0);
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((i + 2 * j) % 5) as f32 - 2.0);
        let mut c = Array2::from_elem((n, n), f32::NAN);
        gemm_crate(&a, &b, &mut c, gemm::Parallelism::None);
        // Small integers: exact in f32 whatever the summation order.
        assert_eq!(c, a.dot(&b));
        let mut d = Array2::zeros((n, n));
        gemm_crate(&a, &b, &mut d, gemm::Parallelism::Rayon(2));
        assert_eq!(d, c);
    }
}
