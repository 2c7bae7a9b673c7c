//! The same product on rayon pools of 1, 2 and 4 threads gives bit-identical results.

use ndarray::Array2;
use wengert_gemm::{GemmScalar, Kernel, gemm_serial, gemm_with};

use crate::common::{Layout, Stored, noise};

fn on_pool<E: GemmScalar + From<f32>>(
    kernel: Kernel,
    threads: usize,
    (m, k, n): (usize, usize, usize),
    layouts: [Layout; 2],
) -> Array2<E> {
    let a = Stored::<E>::new(m, k, layouts[0], noise(21));
    let b = Stored::<E>::new(k, n, layouts[1], noise(22));
    let mut c = Array2::from_shape_fn((m, n), |(i, j)| E::from(noise(23)(i, j)));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    pool.install(|| {
        gemm_with(
            kernel,
            E::from(0.75),
            a.view(),
            b.view(),
            E::from(-0.5),
            c.view_mut(),
        )
    })
    .expect("the shapes fit");
    c
}

fn same_bits<E: GemmScalar + From<f32>>(shape: (usize, usize, usize), layouts: [Layout; 2]) {
    // The pools' threads do not see `common::each_kernel`'s choice: the kernel goes by hand.
    for kernel in Kernel::available() {
        same_bits_on::<E>(kernel, shape, layouts);
    }
}

fn same_bits_on<E: GemmScalar + From<f32>>(
    kernel: Kernel,
    shape: (usize, usize, usize),
    layouts: [Layout; 2],
) {
    let one = on_pool::<E>(kernel, 1, shape, layouts);
    for threads in [2, 4] {
        let many = on_pool::<E>(kernel, threads, shape, layouts);
        // `==` on floats would accept 0.0 for -0.0; the bits must match.
        let differ = one
            .iter()
            .zip(&many)
            .filter(|(x, y)| format!("{x:?}") != format!("{y:?}"))
            .count();
        assert_eq!(
            differ, 0,
            "{kernel}: {shape:?} {layouts:?} on {threads} threads"
        );
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    use Layout::*;
    // Split by rows (tall), by columns (short and wide), with partial tiles and blocks of k.
    for shape in [
        (128, 784, 512),
        (200, 300, 90),
        (10, 530, 700),
        (6, 64, 4000),
        // At most 64 rows with `b` row-major: `b` read in place, split by columns.
        (40, 200, 400),
        // Narrow (computed transposed) and large enough to be split: W2's output layer at
        // batch 1024, and its transpose.
        (1024, 512, 10),
        (10, 512, 1024),
        // A short inner dimension and a large `c`: split although its multiply-adds are few.
        (256, 10, 512),
        // Wider than two blocks of `b` (NC = 1024 columns for f32 and f64).
        (70, 300, 2100),
    ] {
        for layouts in [
            [RowMajor, RowMajor],
            [Transposed, RowMajor],
            [RowMajor, Transposed],
        ] {
            same_bits::<f32>(shape, layouts);
            same_bits::<f64>(shape, layouts);
        }
    }
}

/// `gemm_serial` inside a pool of 2 threads gives `gemm`'s bits, on products large enough
/// that `gemm` shares them among the threads (and on one that it does not).
#[test]
fn the_serial_entry_gives_the_shared_products_bits() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool");
    for (m, k, n) in [(64, 288, 196), (128, 784, 512), (1024, 512, 10), (5, 7, 3)] {
        let a = Stored::<f32>::new(m, k, Layout::RowMajor, noise(31));
        let b = Stored::<f32>::new(k, n, Layout::Transposed, noise(32));
        let start = Array2::from_shape_fn((m, n), |(i, j)| noise(33)(i, j));
        let (mut shared, mut serial) = (start.clone(), start);
        pool.install(|| {
            wengert_gemm::gemm(0.75, a.view(), b.view(), -0.5, shared.view_mut())?;
            gemm_serial(0.75, a.view(), b.view(), -0.5, serial.view_mut())
        })
        .expect("the shapes fit");
        let bits = |c: &Array2<f32>| c.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&shared), bits(&serial), "{m}x{k}x{n}");
    }
    let wrong = Array2::<f32>::zeros((2, 3));
    let err = gemm_serial(
        1.0,
        wrong.view(),
        wrong.view(),
        0.0,
        Array2::zeros((2, 3)).view_mut(),
    );
    assert!(err.is_err());
}
