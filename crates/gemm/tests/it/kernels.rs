//! The kernels side by side: every kernel this CPU has, on every edge shape of its tiles, gives
//! the exact product of small integers, and the SIMD kernels give the same bits as each other.

use ndarray::{Array2, s};
use wengert_gemm::{GemmScalar, Kernel, gemm_with};
use wengert_testkit::naive_matmul;

use crate::common::{LAYOUTS, Layout, Stored, bits, noise};

#[test]
fn the_kernels_on_offer_are_this_cpus() {
    let kernels = Kernel::available();
    let names: Vec<&str> = kernels.iter().map(|k| k.name()).collect();
    assert_eq!(names.last(), Some(&"portable"), "{names:?}");
    assert!(kernels.contains(&Kernel::default()), "{names:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let simd = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let wide = simd && is_x86_feature_detected!("avx512f");
        let want: &[&str] = match (simd, wide) {
            (true, true) => &["avx512", "avx2", "portable"],
            (true, false) => &["avx2", "portable"],
            _ => &["portable"],
        };
        assert_eq!(names, want);
        if std::env::var("WENGERT_GEMM_KERNEL").is_err() {
            assert_eq!(Kernel::default(), kernels[0], "the widest is the default");
        }
    }
    assert_eq!(Kernel::default().to_string(), Kernel::default().name());
}

/// Rows and columns around every tile size (6 rows; 8 and 16 columns) and k around the unrolled
/// loop's 4 steps, with c in a window of a larger array: exact on small integers, and nothing
/// outside the window written.
fn exact_on_edges<E: GemmScalar + From<f32> + Into<f64>>(kernel: Kernel) {
    let sizes = [1, 2, 3, 5, 6, 7, 8, 9, 12, 15, 16, 17, 31, 33];
    for m in sizes {
        for n in sizes {
            for k in [1, 3, 4, 5, 37] {
                let int = |seed: usize| {
                    move |i: usize, j: usize| ((i * 7 + j * 3 + seed) % 9) as f32 - 4.0
                };
                let a = Array2::from_shape_fn((m, k), |(i, p)| E::from(int(1)(i, p)));
                let b = Array2::from_shape_fn((k, n), |(p, j)| E::from(int(2)(p, j)));
                let wide = |x: &Array2<E>| x.mapv(|v| v.into());
                let ab = naive_matmul(wide(&a).view(), wide(&b).view());
                for beta in [0.0f32, -2.0] {
                    let mut big = Array2::from_elem((m + 2, n + 19), E::from(3.0));
                    gemm_with(
                        kernel,
                        E::from(2.0),
                        a.view(),
                        b.view(),
                        E::from(beta),
                        big.slice_mut(s![1..m + 1, 1..n + 1]),
                    )
                    .expect("the shapes fit");
                    for ((i, j), &x) in big.indexed_iter() {
                        let inside = (1..=m).contains(&i) && (1..=n).contains(&j);
                        let want = if inside {
                            2.0 * ab[[i - 1, j - 1]] + 3.0 * beta as f64
                        } else {
                            3.0
                        };
                        assert_eq!(
                            x.into(),
                            want,
                            "{kernel}: {m}x{k}x{n} beta {beta} at [{i}, {j}]"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_kernel_is_exact_on_every_edge_shape() {
    for kernel in Kernel::available() {
        exact_on_edges::<f32>(kernel);
        exact_on_edges::<f64>(kernel);
    }
}

/// The SIMD kernels fuse each multiply-add and sum in the same order: the same bits, on random
/// values, in every layout, with and without `b` read in place.
fn same_bits_across_simd_kernels<E: GemmScalar + From<f32>>() {
    let simd: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| k.name() != "portable")
        .collect();
    for (m, k, n) in [(5, 300, 37), (64, 70, 90), (150, 530, 40), (31, 9, 1030)] {
        for la in LAYOUTS {
            for lb in [Layout::RowMajor, Layout::Transposed, Layout::Step2] {
                let a = Stored::<E>::new(m, k, la, noise(31));
                let b = Stored::<E>::new(k, n, lb, noise(32));
                let results: Vec<Vec<String>> = simd
                    .iter()
                    .map(|&kernel| {
                        let mut c =
                            Array2::from_shape_fn((m, n), |(i, j)| E::from(noise(33)(i, j)));
                        gemm_with(
                            kernel,
                            E::from(0.5),
                            a.view(),
                            b.view(),
                            E::from(1.5),
                            c.view_mut(),
                        )
                        .expect("the shapes fit");
                        bits(c.view())
                    })
                    .collect();
                for (kernel, r) in simd.iter().zip(&results) {
                    assert!(
                        r == &results[0],
                        "{kernel} vs {}: {m}x{k}x{n} {la:?} {lb:?}",
                        simd[0]
                    );
                }
            }
        }
    }
}

#[test]
fn the_simd_kernels_give_the_same_bits() {
    same_bits_across_simd_kernels::<f32>();
    same_bits_across_simd_kernels::<f64>();
}
