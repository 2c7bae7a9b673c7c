//! A BLIS-style matrix multiply for `f32` and `f64` on ndarray views, built for a training loop:
//! it allocates nothing in steady state and its results do not depend on the number of threads.
//!
//! [`gemm`] computes `c = alpha·a·b + beta·c` for operands of any strides (row-major, transposed,
//! stepped or reversed views: nothing is copied but the packed panels).
//!
//! - **No allocation in steady state.** The panels of `a` and `b` are packed into two
//!   thread-local buffers (about 2.3 MiB per thread for `f32`, 2.1 MiB for `f64`), allocated
//!   the first time a thread works on a product (or when [`prepare_thread`] asks for it) and
//!   reused by every later call on that thread, rayon's workers included. A pool is in steady state once each of
//!   its threads has worked once. Call from inside the pool (`pool.install`) for zero
//!   allocations: entering a rayon pool from outside goes through rayon's global job queue,
//!   which allocates a block every 63 entries (one entry per product here).
//! - **Deterministic.** Every element of `c` is computed by one task, summing the inner
//!   dimension in blocks of a fixed size in a fixed order; how the rows and columns are shared
//!   among threads changes who computes an element, never how. The results are bit-identical for
//!   any rayon pool size.
//! - **Fast.** A register-blocked micro-kernel on AVX-512 or AVX2 and FMA when the CPU has them
//!   (detected at run time: [`Kernel`]), a portable one otherwise. A large product is split once into one task per
//!   thread with `rayon::join`, by blocks of output columns or rows (along the longer side),
//!   never along the inner dimension; the tasks pack their own panels and never wait for each
//!   other. "Large" is 2M multiply-adds (128×128×128) or more, or 64K elements of `c` (whose
//!   writing then takes the time): below that, waking a second thread costs more than it
//!   saves. [`gemm_serial`] keeps any product on the calling thread, for callers whose tasks
//!   are already one product each. Products of at most 64 rows (a training step's, at small
//!   batch sizes) read `b` in place when its columns are contiguous, packing only `a`: with
//!   so few rows a packed panel of `b` would be read too few times to repay its copy. A
//!   narrow `c` (fewer columns than a tile, such as a layer of 10 outputs) is computed as its
//!   transpose, whose few rows fill the kernel's tiles better.
//!
//! `unsafe` is confined to `src/avx2.rs` and `src/avx512.rs` (the micro-kernels' loads and stores
//! through the packed panels, `b` in place and the tile of `c`, a prefetch hint, the loads and
//! stores of the transposing pack of `f32` panels) and the calls that enter those SIMD functions
//! (`src/tile.rs`, `src/scalar.rs`); each block states why it is sound. Packing, blocking and threading
//! are safe code on ndarray views. `examples/gemm_bench.rs` times the crate against
//! matrixmultiply.
//!
//! ```
//! use ndarray::array;
//! use wengert_gemm::gemm;
//!
//! let a = array![[1.0, 2.0], [3.0, 4.0]];
//! let b = array![[5.0, 6.0], [7.0, 8.0]];
//! let mut c = array![[1.0, 1.0], [1.0, 1.0]];
//! // c = 2·a·bᵀ + 1·c, the transpose taken as a view.
//! gemm(2.0, a.view(), b.t(), 1.0, c.view_mut()).unwrap();
//! assert_eq!(c, array![[35.0, 47.0], [79.0, 107.0]]);
//! ```
#![deny(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod awake;
mod driver;
mod error;
mod pack;
mod scalar;
mod tile;

use ndarray::{ArrayView2, ArrayViewMut2};

pub use awake::stay_awake;
pub use error::GemmError;
pub use scalar::GemmScalar;

/// `c = alpha·a·b + beta·c`, in parallel on the current rayon pool for large products.
///
/// `a` is `[m, k]`, `b` is `[k, n]` and `c` is `[m, n]`, each with any strides (a transposed
/// operand is just `x.t()`). As in BLAS, `beta = 0` overwrites `c` without reading it (a NaN
/// there does not leak into the result) and `alpha = 0` scales `c` by `beta` without reading `a`
/// or `b`. Empty dimensions are fine: with `k = 0` the product is zero and `c` becomes `beta·c`.
///
/// The result of every element depends on the shapes and the values only: it is bit-identical
/// whatever the number of threads in the pool.
///
/// # Errors
/// [`GemmError`], naming the three shapes, when the inner dimensions differ or `c` does not have
/// the product's shape. Nothing is written to `c` then.
///
/// ```
/// use ndarray::Array2;
/// use wengert_gemm::gemm;
///
/// let a = Array2::<f32>::ones((2, 3));
/// let b = Array2::<f32>::ones((2, 3));
/// let mut c = Array2::<f32>::zeros((2, 3));
/// let err = gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "gemm: cannot multiply a [2, 3] by b [2, 3] into c [2, 3]: the inner dimensions differ"
/// );
/// ```
pub fn gemm<E: GemmScalar>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) -> Result<(), GemmError> {
    gemm_with(Kernel::default(), alpha, a, b, beta, c)
}

/// [`gemm`] on the given micro-kernel rather than the default one: to compare the kernels, or
/// to test each of them, on one machine.
///
/// Every kernel gives the same bits for the same product (each element sums the same products
/// in the same order, with fused multiply-adds on the SIMD kernels); only the portable kernel,
/// which does not fuse, may differ from them in the last bits.
///
/// ```
/// use ndarray::Array2;
/// use wengert_gemm::{Kernel, gemm_with};
///
/// let a = Array2::<f32>::ones((20, 30));
/// let b = Array2::<f32>::ones((30, 40));
/// for kernel in Kernel::available() {
///     let mut c = Array2::<f32>::zeros((20, 40));
///     gemm_with(kernel, 1.0, a.view(), b.view(), 0.0, c.view_mut()).unwrap();
///     assert!(c.iter().all(|&x| x == 30.0), "{kernel}");
/// }
/// ```
///
/// # Errors
/// As [`gemm`].
pub fn gemm_with<E: GemmScalar>(
    kernel: Kernel,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) -> Result<(), GemmError> {
    GemmError::check(a.dim(), b.dim(), c.dim())?;
    driver::gemm(kernel.0, usize::MAX, alpha, a, b, beta, None, c);
    Ok(())
}

/// [`gemm`] on the calling thread alone, whatever the product's size: for a caller that already
/// shares its work among the pool's threads, one product per task (a convolution's images, say),
/// where splitting each product again would only add joins, and let a thread that finishes
/// early take over part of a product whose operands another core's cache holds.
///
/// The same bits as [`gemm`] on any number of threads.
///
/// ```
/// use ndarray::Array2;
/// use wengert_gemm::{gemm, gemm_serial};
///
/// let a = Array2::from_shape_fn((64, 288), |(i, j)| (i * 7 + j) as f32 / 100.0);
/// let b = Array2::from_shape_fn((288, 196), |(i, j)| (i + j * 3) as f32 / 100.0);
/// let (mut c1, mut c2) = (Array2::zeros((64, 196)), Array2::zeros((64, 196)));
/// gemm(1.0, a.view(), b.view(), 0.0, c1.view_mut()).unwrap();
/// gemm_serial(1.0, a.view(), b.view(), 0.0, c2.view_mut()).unwrap();
/// assert_eq!(c1, c2);
/// ```
///
/// # Errors
/// As [`gemm`].
pub fn gemm_serial<E: GemmScalar>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) -> Result<(), GemmError> {
    GemmError::check(a.dim(), b.dim(), c.dim())?;
    driver::gemm(Kernel::default().0, 1, alpha, a, b, beta, None, c);
    Ok(())
}

/// `c = alpha·a·b + beta·c + bias`, `bias[j]` added to every element of column `j` of `c`: a
/// dense layer's `x·W + b`. The bias is added to each part of `c` as soon as its product is
/// final, while it is still in the core's cache, rather than in a second pass over `c`, with
/// the same rounding: the bits of [`gemm`] followed by adding `bias` to every row. In parallel
/// as [`gemm`], with the same bits on any number of threads.
///
/// ```
/// use ndarray::{Array2, array};
/// use wengert_gemm::gemm_bias;
///
/// let x = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let w = array![[1.0f32, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let mut y = Array2::zeros((2, 3));
/// gemm_bias(1.0, x.view(), w.view(), 0.0, &[0.5, -0.5, 0.0], y.view_mut()).unwrap();
/// assert_eq!(y, array![[1.5, 1.5, 3.0], [3.5, 3.5, 7.0]]);
///
/// let err = gemm_bias(1.0, x.view(), w.view(), 0.0, &[0.5], y.view_mut()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "gemm: cannot multiply a [2, 2] by b [2, 3] into c [2, 3] with a bias [1]: \
///      the bias has 1 elements, not one per column of c"
/// );
/// ```
///
/// # Errors
/// As [`gemm`], and when `bias` does not have one element per column of `c`.
pub fn gemm_bias<E: GemmScalar>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    bias: &[E],
    c: ArrayViewMut2<'_, E>,
) -> Result<(), GemmError> {
    GemmError::check_bias(a.dim(), b.dim(), c.dim(), Some(bias.len()))?;
    let bias = driver::Bias::per_column(bias);
    driver::gemm(
        Kernel::default().0,
        usize::MAX,
        alpha,
        a,
        b,
        beta,
        Some(bias),
        c,
    );
    Ok(())
}

/// A micro-kernel that the running CPU supports: only [`Kernel::default`] and
/// [`Kernel::available`] make one, so holding a `Kernel` means it can run here.
///
/// - `avx512`: 512-bit vectors, when the CPU has AVX-512F (besides AVX2 and FMA).
/// - `avx2`: 256-bit vectors and fused multiply-adds, when the CPU has AVX2 and FMA.
/// - `portable`: plain Rust, on any CPU.
///
/// The default is the widest the CPU runs; the environment variable `WENGERT_GEMM_KERNEL`
/// (`avx2` or `portable`, read once per process) can ask for a narrower one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Kernel(driver::Path);

impl Kernel {
    /// Every kernel this CPU runs, the widest first (`portable` always, last).
    pub fn available() -> Vec<Kernel> {
        driver::Path::available().into_iter().map(Kernel).collect()
    }

    /// The kernel's short name: `avx512`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            driver::Path::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            driver::Path::Avx2Fma => "avx2",
            driver::Path::Portable => "portable",
        }
    }
}

impl Default for Kernel {
    /// The kernel [`gemm`] uses: the widest this CPU runs, or the narrower one that
    /// `WENGERT_GEMM_KERNEL` names.
    fn default() -> Kernel {
        Kernel(driver::Path::detect())
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Allocates the calling thread's packing buffers for `E` (about 2.1-2.3 MiB), so that no product
/// allocates on this thread afterwards, whatever its shape.
///
/// Products allocate nothing once every thread that takes part has worked on one; this makes
/// sure of it in advance, for instance on every thread of a pool:
///
/// ```
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// pool.broadcast(|_| wengert_gemm::prepare_thread::<f32>());
/// ```
pub fn prepare_thread<E: GemmScalar>() {
    driver::prepare_thread::<E>();
}
