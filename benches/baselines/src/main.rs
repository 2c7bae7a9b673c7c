//! W1, every engine in one process, their repetitions taking turns (round after round, each
//! engine's turn a call and then the timed call: `shared::interleaved_warm_medians`), so that
//! every engine sees the same background load and the ratios hold on a busy machine, and each
//! timed call finds its thread pool awake, as back-to-back calls (the Python peers') do. The
//! rounds run on a thread of the rayon pool, as a training loop does (W2's, the trainer's). On
//! the one thread count `--threads`:
//!
//! - `wengert`: `wengert_gemm::gemm`, the kernel behind wengert-ops' matmul, in a rayon pool of
//!   that many threads: `C = A·B`, and with a transposed operand as the VJPs call it (`A·Bᵀ`,
//!   `Aᵀ·B`); on a CPU with more than one SIMD kernel (AVX-512 and AVX2), the plain product on
//!   each kernel besides the default one too, as the figure `gflops_<kernel>` (`gflops_avx2`);
//! - `matrixmultiply` (1 thread) or `matrixmultiply-threaded`: matrixmultiply's sgemm (reached
//!   through ndarray's `general_mat_mul`, which calls it directly for contiguous f32) with its
//!   own `threading` feature, on the threads of `MATMUL_NUM_THREADS`. matrixmultiply reads that
//!   once per process: hence one process per thread count;
//! - `gemm`: the gemm crate in the same pool;
//! - `fma-peak`: the machine's fused multiply-add throughput, from a loop of independent FMAs on
//!   every thread of the pool: one block per round, the gauge of the load the products met.
//!
//! Prints one JSON record per line on stdout (and progress as plain lines).
//! Usage: `wengert-bench-baselines --threads N [--quick] [--only W1,...]`.

#[path = "../../src/shared.rs"]
mod shared;

mod fma;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use wengert_gemm::Kernel;

use shared::{Effort, Rng, SEED, W1_SIZES, interleaved_warm_medians, normal_vec, record_json};

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
            "warning: MATMUL_NUM_THREADS is '{env_threads}', not {threads}: matrixmultiply runs \
             on its own choice of threads"
        );
    }
    let mm = if threads == 1 {
        "matrixmultiply"
    } else {
        "matrixmultiply-threaded"
    };
    let parallelism = if threads == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    let has_fma = fma::available();
    if !has_fma {
        println!("W1: this CPU has no FMA instructions: the FMA peak is not measured");
    }

    // wengert's SIMD kernels besides the default one, each measured on the plain product.
    let other_kernels: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|&k| k != Kernel::default() && k.name() != "portable")
        .collect();

    let mut rng = Rng::new(SEED);
    for n in W1_SIZES {
        let a = Array2::from_shape_vec((n, n), normal_vec(&mut rng, n * n)).expect("n·n");
        let b = Array2::from_shape_vec((n, n), normal_vec(&mut rng, n * n)).expect("n·n");
        // One output per engine: each call below holds its own mutably.
        let zeros = || Array2::<f32>::zeros((n, n));
        let (mut c_plain, mut c_a_bt, mut c_at_b) = (zeros(), zeros(), zeros());
        let (mut c_mm, mut c_gemm) = (zeros(), zeros());
        let mut plain = || pool.install(|| wengert(a.view(), b.view(), &mut c_plain));
        let mut a_bt = || pool.install(|| wengert(a.view(), b.t(), &mut c_a_bt));
        let mut at_b = || pool.install(|| wengert(a.t(), b.view(), &mut c_at_b));
        let mut matrixmultiply = || general_mat_mul(1.0, &a, &b, 0.0, &mut c_mm);
        let mut gemm = || pool.install(|| gemm_crate(&a, &b, &mut c_gemm, parallelism));
        let mut peak = || fma::run_on(&pool);
        let mut c_others: Vec<Array2<f32>> = other_kernels.iter().map(|_| zeros()).collect();
        let (a, b, pool) = (&a, &b, &pool);
        let mut others: Vec<Box<dyn FnMut() + Send + '_>> = other_kernels
            .iter()
            .zip(&mut c_others)
            .map(|(&kernel, c)| {
                Box::new(move || pool.install(|| wengert_on(kernel, a.view(), b.view(), c)))
                    as Box<dyn FnMut() + Send>
            })
            .collect();
        let mut calls: Vec<&mut (dyn FnMut() + Send)> = vec![
            &mut plain,
            &mut a_bt,
            &mut at_b,
            &mut matrixmultiply,
            &mut gemm,
        ];
        for other in &mut others {
            calls.push(other.as_mut());
        }
        let peak_at = calls.len();
        if has_fma {
            calls.push(&mut peak);
        }
        // As much time per engine as W1's budget gives one configuration.
        let budget = effort.w1_seconds() * calls.len() as f64;
        // Timed from a thread of the pool, as a training loop runs (the trainer's, W2's): a
        // product called from outside would pay for handing itself to the pool and back.
        let seconds = pool.install(|| {
            let mut calls: Vec<&mut dyn FnMut()> = (calls.iter_mut())
                .map(|call| &mut **call as &mut dyn FnMut())
                .collect();
            interleaved_warm_medians(budget, &mut calls)
        });

        let flops = 2.0 * (n as f64).powi(3);
        let gflops = |i: usize| flops / seconds[i] / 1e9;
        let peak_gflops =
            has_fma.then(|| threads as f64 * fma::block_flops(fma::ITERS) / seconds[peak_at] / 1e9);
        println!(
            "W1 n={n} threads={threads}: wengert {:.1} GFLOP/s (A·Bᵀ {:.1}, Aᵀ·B {:.1}), \
             {mm} {:.1}, gemm {:.1}, FMA peak {}{}",
            gflops(0),
            gflops(1),
            gflops(2),
            gflops(3),
            gflops(4),
            peak_gflops.map_or("-".to_string(), |p| format!("{p:.1}")),
            other_kernels
                .iter()
                .enumerate()
                .map(|(i, k)| format!(", wengert on {k} {:.1}", gflops(5 + i)))
                .collect::<String>(),
        );
        let params = [("n", n as u64)];
        let other_names: Vec<String> = other_kernels
            .iter()
            .map(|k| format!("gflops_{k}"))
            .collect();
        let mut wengert_figures = vec![
            ("gflops", gflops(0)),
            ("gflops_a_bt", gflops(1)),
            ("gflops_at_b", gflops(2)),
        ];
        for (i, name) in other_names.iter().enumerate() {
            wengert_figures.push((name.as_str(), gflops(5 + i)));
        }
        let mut records = vec![
            record_json("W1", "wengert", threads, &params, &wengert_figures),
            record_json("W1", mm, threads, &params, &[("gflops", gflops(3))]),
            record_json("W1", "gemm", threads, &params, &[("gflops", gflops(4))]),
        ];
        if let Some(p) = peak_gflops {
            records.push(record_json(
                "W1",
                "fma-peak",
                threads,
                &params,
                &[("gflops", p)],
            ));
        }
        for record in records {
            println!("{record}");
        }
    }
}

/// `c = a·b` on the given kernel of wengert's, on the current rayon pool.
fn wengert_on(kernel: Kernel, a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut Array2<f32>) {
    wengert_gemm::gemm_with(kernel, 1.0, a, b, 0.0, c.view_mut())
        .expect("square operands of one size fit");
}

/// `c = a·b` on wengert's kernel, on the current rayon pool, any operand a (transposed) view.
fn wengert(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut Array2<f32>) {
    wengert_gemm::gemm(1.0, a, b, 0.0, c.view_mut()).expect("square operands of one size fit");
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

    #[test]
    fn wengerts_calls_compute_the_plain_and_transposed_products() {
        let n = 37;
        let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((2 * i + j) % 5) as f32 - 2.0);
        let mut c = Array2::from_elem((n, n), f32::NAN);
        wengert(a.view(), b.view(), &mut c);
        assert_eq!(c, a.dot(&b));
        wengert(a.view(), b.t(), &mut c);
        assert_eq!(c, a.dot(&b.t()));
        wengert(a.t(), b.view(), &mut c);
        assert_eq!(c, a.t().dot(&b));
    }
}
