//! One micro-tile of `c`: the portable kernel, and the choice between writing the tile in place
//! (the AVX2 kernel, whole or partial tiles, when the columns of `c` are contiguous) and going
//! through a small buffer (other layouts, the portable kernel). The AVX2 kernel reads `b` packed
//! or in place (see `driver::serial`).

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, s};

#[cfg(target_arch = "x86_64")]
use crate::avx2::{Addend, Dst, SrcB};
use crate::driver::{Bias, Path};
use crate::scalar::TILE_MAX;
use crate::scalar::private::Sealed;

/// What every tile of one block shares.
#[derive(Clone, Copy)]
pub(crate) struct TileJob<'b, E> {
    pub(crate) path: Path,
    pub(crate) kc: usize,
    pub(crate) alpha: E,
    /// `beta` for the first block of `k`, 1 for the others (they add to what the first wrote).
    pub(crate) beta: E,
    /// The bias, added by the last block of `k` (the others have none).
    pub(crate) bias: Option<Bias<'b, E>>,
}

/// A panel of `b` (`kc × NR`) as one tile reads it.
#[derive(Clone, Copy)]
pub(crate) enum PanelB<'p, E> {
    /// Packed: `kc·NR` elements, step `p` at `p·NR`.
    Packed(&'p [E]),
    /// In place: `kc` rows and `NR` columns of `b` from `b[at]` on, its columns contiguous.
    /// The AVX2 kernel only.
    InPlace {
        b: &'p ArrayView2<'p, E>,
        at: (usize, usize),
    },
}

/// `c[i0.., j0..] = alpha·(a·b) + beta·c[i0.., j0..]` for the tile of at most `MR × NR` elements
/// there, with `a` a packed panel of depth `job.kc`.
pub(crate) fn tile<E: Sealed>(
    job: TileJob<'_, E>,
    a: &[E],
    b: PanelB<'_, E>,
    c: &mut ArrayViewMut2<'_, E>,
    i0: usize,
    j0: usize,
) {
    let mr = E::MR.min(c.nrows() - i0);
    let nr = E::NR.min(c.ncols() - j0);
    let kc = job.kc;
    assert!(a.len() >= kc * E::MR);
    // This tile's part of the bias: `nr` elements for its columns, or `mr` for its rows.
    let bias = job.bias.map(|bias| bias.tile(i0..i0 + mr, j0..j0 + nr));
    #[cfg(target_arch = "x86_64")]
    if job.path != Path::Portable {
        // Where the kernel reads `b`, checked here for the SAFETY comment below.
        let (src, packed) = match b {
            PanelB::Packed(b) => {
                assert!(b.len() >= kc * E::NR);
                let src = SrcB {
                    ptr: b.as_ptr(),
                    rs: E::NR as isize,
                };
                (src, true)
            }
            PanelB::InPlace { b, at } => {
                // A pointer to the corner, not a sliced view: slicing costs more than a tile.
                assert!(at.0 + kc <= b.nrows() && at.1 + E::NR <= b.ncols());
                assert_eq!(b.strides()[1], 1);
                let src = SrcB {
                    ptr: b.get_ptr(at).expect("the panel is inside b"),
                    rs: b.strides()[0],
                };
                (src, false)
            }
        };
        let kernel = |dst: Dst<E>| {
            #[allow(unsafe_code)]
            // SAFETY: the AVX2 path is chosen only when the CPU has AVX2 and FMA, the AVX-512
            // one only when it has AVX-512F besides (`Path::widest`); `a` holds kc·MR
            // elements (asserted above); for p < kc the NR elements of step p of `b` are those
            // of a packed panel of kc·NR elements (asserted), or b[at.0 + p, at.1 + j] for
            // j < NR, inside `b` (asserted) and contiguous (its column stride is 1, asserted).
            // `dst` is a dst.rows × dst.cols tile the kernel may write (see the callers).
            unsafe {
                let (a, alpha, beta) = (a.as_ptr(), job.alpha, job.beta);
                match (job.path == Path::Avx512, packed) {
                    (true, true) => E::kernel_avx512::<true>(kc, a, src, dst, alpha, beta),
                    (true, false) => E::kernel_avx512::<false>(kc, a, src, dst, alpha, beta),
                    (false, true) => E::kernel_avx2::<true>(kc, a, src, dst, alpha, beta),
                    (false, false) => E::kernel_avx2::<false>(kc, a, src, dst, alpha, beta),
                }
            }
        };
        if c.strides()[1] == 1 {
            // Rows i0..i0+mr and columns j0..j0+nr are inside `c` (mr and nr are clipped to its
            // shape), whose columns are contiguous, so each tile row is nr elements from
            // `ptr + i·rsc`; `c` is borrowed mutably, so nothing else aliases them. The
            // addend's slice holds nr elements for columns, mr for rows (`Bias::tile`).
            let addend = match bias {
                None => Addend::Nothing,
                Some((values, true)) => Addend::Columns(values.as_ptr()),
                Some((values, false)) => Addend::Rows(values.as_ptr()),
            };
            kernel(Dst {
                ptr: c
                    .get_mut_ptr((i0, j0))
                    .expect("the tile's corner is inside c"),
                rsc: c.strides()[0],
                rows: mr,
                cols: nr,
                addend,
            });
        } else {
            // Columns that are not contiguous: through an MR × NR buffer, a local borrowed by
            // no one, each of whose mr ≤ MR rows is NR elements from `buf + i·NR`.
            through_buffer(job.beta, bias, c, i0, j0, |buf| {
                kernel(Dst {
                    ptr: buf.as_mut_ptr(),
                    rsc: E::NR as isize,
                    rows: mr,
                    cols: E::NR,
                    addend: Addend::Nothing,
                })
            });
        }
        return;
    }
    let PanelB::Packed(b) = b else {
        unreachable!("`b` in place goes to the AVX2 kernel only")
    };
    through_buffer(job.beta, bias, c, i0, j0, |buf| {
        E::kernel_portable(kc, a, b, job.alpha, job.beta, buf)
    });
}

/// Runs `kernel` on an `MR × NR` row-major buffer holding the tile of `c` at `(i0, j0)` (when
/// `beta` is not 0: the kernel reads it then), adds the tile's bias (`(values, per_column)`)
/// if any, and copies the tile back into `c`.
fn through_buffer<E: Sealed>(
    beta: E,
    bias: Option<(&[E], bool)>,
    c: &mut ArrayViewMut2<'_, E>,
    i0: usize,
    j0: usize,
    kernel: impl FnOnce(&mut [E]),
) {
    let mr = E::MR.min(c.nrows() - i0);
    let nr = E::NR.min(c.ncols() - j0);
    let mut buf = [E::ZERO; TILE_MAX];
    let mut c_tile = c.slice_mut(s![i0..i0 + mr, j0..j0 + nr]);
    if beta != E::ZERO {
        let mut buf_view = ArrayViewMut2::from_shape((mr, nr).strides((E::NR, 1)), &mut buf[..])
            .expect("an MR × NR tile fits the buffer");
        buf_view.assign(&c_tile);
    }
    kernel(&mut buf);
    if let Some((values, per_column)) = bias {
        for (i, row) in buf.chunks_exact_mut(E::NR).take(mr).enumerate() {
            for (j, x) in row[..nr].iter_mut().enumerate() {
                *x = *x + if per_column { values[j] } else { values[i] };
            }
        }
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
