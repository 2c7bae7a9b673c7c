//! The element types, and what the driver needs of each: block sizes, kernels, buffers.

use std::cell::RefCell;
use std::fmt::Debug;
use std::ops::{Add, Mul};
use std::thread::LocalKey;

use crate::tile;

/// An element type the GEMM supports: `f32` or `f64` (the trait is sealed).
pub trait GemmScalar: Copy + Debug + PartialEq + Send + Sync + 'static + private::Sealed {}

impl GemmScalar for f32 {}
impl GemmScalar for f64 {}

/// The largest micro-tile of any type, `MR·NR`: the size of the stack buffer for edge tiles.
pub(crate) const TILE_MAX: usize = 96;

pub(crate) mod private {
    use super::*;

    /// Everything type-specific, hidden from users.
    pub trait Sealed:
        Copy + PartialEq + Send + Sync + 'static + Add<Output = Self> + Mul<Output = Self>
    {
        /// Rows of a micro-tile (and of a packed panel of `a`).
        const MR: usize;
        /// Columns of a micro-tile (and of a packed panel of `b`).
        const NR: usize;
        /// The inner dimension of a block: packed panels of `a` and `b` this deep stay in cache.
        const KC: usize;
        /// Rows of `a` packed at once (a multiple of `MR`; the block stays in L2).
        const MC: usize;
        /// Columns of `b` packed at once (a multiple of `NR`; the block stays in L3).
        const NC: usize;
        /// 0.
        const ZERO: Self;
        /// 1.
        const ONE: Self;

        /// The portable micro-kernel: `tile = alpha·(a·b) + beta·tile` on packed panels, with
        /// `tile` an `MR × NR` row-major buffer (not read when `beta = 0`).
        fn kernel_portable(
            kc: usize,
            a: &[Self],
            b: &[Self],
            alpha: Self,
            beta: Self,
            tile: &mut [Self],
        );

        /// The AVX2+FMA micro-kernel, on a packed panel of `b` (`PACKED_B`) or `b` in place,
        /// multiplying only the tile's `c.rows` rows.
        ///
        /// # Safety
        /// As [`crate::avx2::kernel_f32`].
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        unsafe fn kernel_avx2<const PACKED_B: bool>(
            kc: usize,
            a: *const Self,
            b: crate::avx2::SrcB<Self>,
            c: crate::avx2::Dst<Self>,
            alpha: Self,
            beta: Self,
        );

        /// The AVX-512 micro-kernel, as [`Sealed::kernel_avx2`].
        ///
        /// # Safety
        /// As [`crate::avx512::kernel_f32`].
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        unsafe fn kernel_avx512<const PACKED_B: bool>(
            kc: usize,
            a: *const Self,
            b: crate::avx2::SrcB<Self>,
            c: crate::avx2::Dst<Self>,
            alpha: Self,
            beta: Self,
        );

        /// Packs a full panel of `NR` contiguous lanes with SIMD shuffles if this type and
        /// `path` have a way to (`f32` on AVX2); `false` if not, with `out` untouched.
        fn interleave_fast(path: crate::driver::Path, lanes: &[&[Self]], out: &mut [Self]) -> bool;

        /// This thread's buffer for packed blocks of `a`.
        fn a_buffer() -> &'static LocalKey<RefCell<Vec<Self>>>;
        /// This thread's buffer for packed blocks of `b`.
        fn b_buffer() -> &'static LocalKey<RefCell<Vec<Self>>>;
    }
}

macro_rules! sealed {
    ($t:ty, nr: $nr:expr, kc: $kc:expr, mc: $mc:expr, nc: $nc:expr, kernel: $avx2:ident, fast: $fast:expr) => {
        impl private::Sealed for $t {
            const MR: usize = 6;
            const NR: usize = $nr;
            const KC: usize = $kc;
            const MC: usize = $mc;
            const NC: usize = $nc;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;

            fn kernel_portable(
                kc: usize,
                a: &[Self],
                b: &[Self],
                alpha: Self,
                beta: Self,
                tile: &mut [Self],
            ) {
                tile::portable::<$t, 6, $nr>(kc, a, b, alpha, beta, tile)
            }

            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            #[inline(always)]
            unsafe fn kernel_avx2<const PACKED_B: bool>(
                kc: usize,
                a: *const Self,
                b: crate::avx2::SrcB<Self>,
                c: crate::avx2::Dst<Self>,
                alpha: Self,
                beta: Self,
            ) {
                use crate::avx2::$avx2 as kernel;
                // SAFETY: the caller upholds the kernel's contract, this function's own, and
                // `ROWS = c.rows` (at most MR by the contract) satisfies `c.rows ≤ ROWS ≤ MR`.
                unsafe {
                    match c.rows {
                        6 => kernel::<PACKED_B, 6>(kc, a, b, c, alpha, beta),
                        5 => kernel::<PACKED_B, 5>(kc, a, b, c, alpha, beta),
                        4 => kernel::<PACKED_B, 4>(kc, a, b, c, alpha, beta),
                        3 => kernel::<PACKED_B, 3>(kc, a, b, c, alpha, beta),
                        2 => kernel::<PACKED_B, 2>(kc, a, b, c, alpha, beta),
                        1 => kernel::<PACKED_B, 1>(kc, a, b, c, alpha, beta),
                        rows => unreachable!("a tile of {rows} rows"),
                    }
                }
            }

            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            #[inline(always)]
            unsafe fn kernel_avx512<const PACKED_B: bool>(
                kc: usize,
                a: *const Self,
                b: crate::avx2::SrcB<Self>,
                c: crate::avx2::Dst<Self>,
                alpha: Self,
                beta: Self,
            ) {
                use crate::avx512::$avx2 as kernel;
                // SAFETY: as in `kernel_avx2`.
                unsafe {
                    match c.rows {
                        6 => kernel::<PACKED_B, 6>(kc, a, b, c, alpha, beta),
                        5 => kernel::<PACKED_B, 5>(kc, a, b, c, alpha, beta),
                        4 => kernel::<PACKED_B, 4>(kc, a, b, c, alpha, beta),
                        3 => kernel::<PACKED_B, 3>(kc, a, b, c, alpha, beta),
                        2 => kernel::<PACKED_B, 2>(kc, a, b, c, alpha, beta),
                        1 => kernel::<PACKED_B, 1>(kc, a, b, c, alpha, beta),
                        rows => unreachable!("a tile of {rows} rows"),
                    }
                }
            }

            fn interleave_fast(
                path: crate::driver::Path,
                lanes: &[&[Self]],
                out: &mut [Self],
            ) -> bool {
                ($fast)(path, lanes, out)
            }

            fn a_buffer() -> &'static LocalKey<RefCell<Vec<Self>>> {
                thread_local!(static A: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) });
                &A
            }

            fn b_buffer() -> &'static LocalKey<RefCell<Vec<Self>>> {
                thread_local!(static B: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) });
                &B
            }
        }
        const _: () = assert!(6 * $nr <= TILE_MAX && $mc % 6 == 0 && $nc % $nr == 0);
    };
}

// f32 blocks `k` at 512 (two passes over `c` where 256 made four for W2's k = 784: 5-7% faster
// on two Zen 3 cores, PERFORMANCE.md), with NC halved to keep `b`'s buffer at 2 MiB. f64 keeps
// 256 (not measured otherwise).
sealed!(f32, nr: 16, kc: 512, mc: 144, nc: 1024, kernel: kernel_f32, fast: interleave16_f32);
sealed!(f64, nr: 8, kc: 256, mc: 72, nc: 1024, kernel: kernel_f64, fast: |_, _, _| false);

/// Packs a panel of sixteen `f32` lanes with AVX2 shuffles when the CPU has them.
fn interleave16_f32(path: crate::driver::Path, lanes: &[&[f32]], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if path != crate::driver::Path::Portable {
        #[allow(unsafe_code)]
        // SAFETY: both SIMD paths are chosen only when the CPU has AVX2 (and FMA).
        return unsafe { crate::avx2::interleave16_f32(lanes, out) };
    }
    let _ = (path, lanes, out);
    false
}
