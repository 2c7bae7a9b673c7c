//! One micro-tile of `c`: the portable kernel, and the choice between writing the tile in place
//! (the AVX2 kernel, whole or partial tiles, when the columns of `c` are contiguous) and going
//! through a small buffer (other layouts, the portable kernel).

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, s};

#[cfg(target_arch = "x86_64")]
use crate::avx2::Dst;
use crate::driver::Path;
use crate::scalar::TILE_MAX;
use crate::scalar::private::Sealed;

/// What every tile of one block shares.
#[derive(Clone, Copy)]
pub(crate) struct TileJob<E> {
    pub(crate) path: Path,
    pub(crate) kc: usize,
    pub(crate) alpha: E,
    /// `beta` for the first block of `k`, 1 for the others (they add to what the first wrote).
    pub(crate) beta: E,
}

/// `c[i0.., j0..] = alpha·(a·b) + beta·c[i0.., j0..]` for the tile of at most `MR × NR` elements
/// there, with `a` and `b` packed panels of depth `job.kc`.
pub(crate) fn tile<E: Sealed>(
    job: TileJob<E>,
    a: &[E],
    b: &[E],
    c: &mut ArrayViewMut2<'_, E>,
    i0: usize,
    j0: usize,
) {
    let mr = E::MR.min(c.nrows() - i0);
    let nr = E::NR.min(c.ncols() - j0);
    assert!(a.len() >= job.kc * E::MR && b.len() >= job.kc * E::NR);
    #[cfg(target_arch = "x86_64")]
    if job.path == Path::Avx2Fma && c.strides()[1] == 1 {
        let dst = Dst {
            ptr: c
                .get_mut_ptr((i0, j0))
                .expect("the tile's corner is inside c"),
            rsc: c.strides()[0],
            rows: mr,
            cols: nr,
        };
        #[allow(unsafe_code)]
        // SAFETY: the path is chosen only when the CPU has AVX2 and FMA; `a` and `b` hold
        // `kc·MR` and `kc·NR` elements (asserted above); rows i0..i0+mr and columns j0..j0+nr
        // are inside `c` (mr and nr are clipped to its shape, at most MR and NR), whose columns
        // are contiguous, so each tile row is nr elements from `ptr + i·rsc`; `c` is borrowed
        // mutably, so nothing else aliases them.
        unsafe {
            E::kernel_avx2(job.kc, a.as_ptr(), b.as_ptr(), dst, job.alpha, job.beta)
        };
        return;
    }
    // Columns that are not contiguous, or the portable kernel: through an MR × NR buffer.
    let mut buf = [E::ZERO; TILE_MAX];
    let mut buf_view = ArrayViewMut2::from_shape((mr, nr).strides((E::NR, 1)), &mut buf[..])
        .expect("an MR × NR tile fits the buffer");
    let mut c_tile = c.slice_mut(s![i0..i0 + mr, j0..j0 + nr]);
    if job.beta != E::ZERO {
        buf_view.assign(&c_tile);
    }
    match job.path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx2Fma => {
            let dst = Dst {
                ptr: buf.as_mut_ptr(),
                rsc: E::NR as isize,
                rows: E::MR,
                cols: E::NR,
            };
            #[allow(unsafe_code)]
            // SAFETY: the CPU has AVX2 and FMA (the path's invariant); `a` and `b` are long
            // enough (asserted above); `buf` holds TILE_MAX ≥ MR·NR elements, so each of the
            // MR rows is NR elements from `buf + i·NR`; `buf` is a local, borrowed by no one.
            unsafe {
                E::kernel_avx2(job.kc, a.as_ptr(), b.as_ptr(), dst, job.alpha, job.beta)
            };
        }
        Path::Portable => E::kernel_portable(job.kc, a, b, job.alpha, job.beta, &mut buf),
    }
    let buf_view = ArrayView2::from_shape((mr, nr).strides((E::NR, 1)), &buf[..])
        .expect("an MR × NR tile fits the buffer");
    c_tile.assign(&buf_view);
}

/// The portable micro-kernel on an `MR × NR` tile of accumulators that LLVM keeps in vector
/// registers where it can: `tile = alpha·(a·b) + beta·tile`, products added one step of `k` at a
/// time, in order (not fused: without hardware FMA a fused multiply-add is a slow library call).
pub(crate) fn portable<E: Sealed, const MR: usize, const NR: usize>(
    kc: usize,
    a: &[E],
    b: &[E],
    alpha: E,
    beta: E,
    tile: &mut [E],
) {
    let mut acc = [[E::ZERO; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x = *x + ai * bj;
            }
        }
    }
    for (out, row) in tile.chunks_exact_mut(NR).zip(&acc) {
        for (o, &ab) in out.iter_mut().zip(row) {
            *o = if beta == E::ZERO {
                alpha * ab
            } else {
                alpha * ab + beta * *o
            };
        }
    }
}
