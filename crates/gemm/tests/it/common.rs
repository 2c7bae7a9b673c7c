//! Operands in every layout, the naive reference and the error bound.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use proptest::prelude::*;
use std::cell::Cell;

use wengert_gemm::{GemmError, GemmScalar, Kernel, gemm_with};

thread_local! {
    /// The kernel [`gemm`] calls on this thread: set by [`each_kernel`].
    static KERNEL: Cell<Option<Kernel>> = const { Cell::new(None) };
}

/// `wengert_gemm::gemm` on the kernel [`each_kernel`] is running on this thread (the default
/// kernel outside it).
pub fn gemm<E: GemmScalar>(
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) -> Result<(), GemmError> {
    gemm_with(current_kernel(), alpha, a, b, beta, c)
}

/// The kernel [`gemm`] calls on this thread.
pub fn current_kernel() -> Kernel {
    KERNEL.get().unwrap_or_default()
}

/// Runs `test` once on every kernel this CPU has (AVX-512, AVX2 and portable on a CPU with
/// AVX-512), with [`gemm`] calling that kernel; a failure names it.
pub fn each_kernel(test: impl Fn()) {
    for kernel in Kernel::available() {
        KERNEL.set(Some(kernel));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&test));
        KERNEL.set(None);
        if let Err(panic) = outcome {
            eprintln!("failed on the {kernel} kernel");
            std::panic::resume_unwind(panic);
        }
    }
}

/// How an operand is stored and viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major, viewed as is.
    RowMajor,
    /// Stored transposed, viewed through `.t()` (column-major).
    Transposed,
    /// Every second row and column of a larger array (`s![..;2, ..;2]`).
    Step2,
    /// Stored upside down and back to front, viewed through `s![..;-1, ..;-1]`.
    Reversed,
    /// Stored upside down, viewed through `s![..;-1, ..]`: contiguous rows, a negative stride
    /// between them.
    RowsReversed,
}

pub const LAYOUTS: [Layout; 5] = [
    Layout::RowMajor,
    Layout::Transposed,
    Layout::Step2,
    Layout::Reversed,
    Layout::RowsReversed,
];

pub fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(LAYOUTS.to_vec())
}

/// A matrix of logical shape `[rows, cols]` with values `value(i, j)`, stored so that
/// [`Stored::view`] sees it in `layout`.
pub struct Stored<E> {
    data: Array2<E>,
    layout: Layout,
}

impl<E: GemmScalar + From<f32>> Stored<E> {
    pub fn new(
        rows: usize,
        cols: usize,
        layout: Layout,
        value: impl Fn(usize, usize) -> f32,
    ) -> Self {
        let v = |i: usize, j: usize| E::from(value(i, j));
        let nan = E::from(f32::NAN);
        let data = match layout {
            Layout::RowMajor => Array2::from_shape_fn((rows, cols), |(i, j)| v(i, j)),
            Layout::Transposed => Array2::from_shape_fn((cols, rows), |(j, i)| v(i, j)),
            // The skipped elements are NaN: reading one would show in the result.
            Layout::Step2 => Array2::from_shape_fn((2 * rows, 2 * cols), |(i, j)| {
                if i % 2 == 0 && j % 2 == 0 {
                    v(i / 2, j / 2)
                } else {
                    nan
                }
            }),
            Layout::Reversed => {
                Array2::from_shape_fn((rows, cols), |(i, j)| v(rows - 1 - i, cols - 1 - j))
            }
            Layout::RowsReversed => {
                Array2::from_shape_fn((rows, cols), |(i, j)| v(rows - 1 - i, j))
            }
        };
        Stored { data, layout }
    }

    pub fn view(&self) -> ArrayView2<'_, E> {
        match self.layout {
            Layout::RowMajor => self.data.view(),
            Layout::Transposed => self.data.t(),
            Layout::Step2 => self.data.slice(s![..;2, ..;2]),
            Layout::Reversed => self.data.slice(s![..;-1, ..;-1]),
            Layout::RowsReversed => self.data.slice(s![..;-1, ..]),
        }
    }

    pub fn view_mut(&mut self) -> ArrayViewMut2<'_, E> {
        match self.layout {
            Layout::RowMajor => self.data.view_mut(),
            Layout::Transposed => self.data.view_mut().reversed_axes(),
            Layout::Step2 => self.data.slice_mut(s![..;2, ..;2]),
            Layout::Reversed => self.data.slice_mut(s![..;-1, ..;-1]),
            Layout::RowsReversed => self.data.slice_mut(s![..;-1, ..]),
        }
    }
}

/// Deterministic pseudo-random values in [-1, 1), different for each seed.
pub fn noise(seed: u64) -> impl Fn(usize, usize) -> f32 {
    move |i, j| {
        let mut x = seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 32;
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Converts an element to f64 for the reference.
pub fn wide<E: GemmScalar + Into<f64>>(x: E) -> f64 {
    x.into()
}

/// Checks `c = alpha·a·b + beta·c0` element by element against a naive f64 sum, within the
/// classic bound of a k-term dot product: `(k + 2)·u·(|alpha|·Σ|a||b| + |beta|·|c0|)`, doubled.
pub fn assert_close<E: GemmScalar + Into<f64>>(
    alpha: f64,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: f64,
    c0: &Array2<f64>,
    c: ArrayView2<'_, E>,
    unit_roundoff: f64,
) {
    let k = a.ncols();
    let a = a.mapv(wide);
    let b = b.mapv(wide);
    for ((i, j), &got) in c.indexed_iter() {
        let (mut sum, mut abs) = (0.0, 0.0);
        for p in 0..k {
            sum += a[[i, p]] * b[[p, j]];
            abs += (a[[i, p]] * b[[p, j]]).abs();
        }
        let old = if beta == 0.0 { 0.0 } else { beta * c0[[i, j]] };
        let want = alpha * sum + old;
        let bound = 2.0 * (k as f64 + 2.0) * unit_roundoff * (alpha.abs() * abs + old.abs());
        let got = wide(got);
        assert!(
            (got - want).abs() <= bound,
            "c[{i}, {j}] = {got}, want {want} ± {bound} (k = {k})"
        );
    }
}

/// Each element's bits, as text (`==` on floats would take -0.0 for 0.0 and never match NaN).
pub fn bits<E: std::fmt::Debug>(x: ArrayView2<'_, E>) -> Vec<String> {
    x.iter().map(|v| format!("{v:?}")).collect()
}
