//! The blocked loops around the micro-kernel, the split of the work among threads, and the
//! thread-local packing buffers.
//!
//! For each block of `NC` columns of `b` and each block of `KC` steps of `k` (in order), the
//! block of `b` is packed once (in parallel) into the calling thread's buffer; then the rows of
//! `c` (or, for short and wide products, its columns) are shared among tasks with `rayon::join`.
//! Each task packs `MC` rows of `a` at a time into its own thread's buffer and runs the
//! micro-kernel on every tile. No task ever splits `k`, and the blocks of `k` are fixed by the
//! shape, so every element of `c` is summed the same way whatever the split.

use std::cell::RefCell;
use std::thread::LocalKey;

use ndarray::{ArrayView2, ArrayViewMut2, Axis, s};

use crate::pack::{pack_a, pack_b};
use crate::scalar::private::Sealed;
use crate::tile::{TileJob, tile};

/// Below this many multiply-adds a product runs on the calling thread: forking would cost more
/// than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Packed panels start on a cache line, so that no vector load of the kernel straddles two.
const ALIGN_BYTES: usize = 64;

/// Which micro-kernel runs: chosen once per call from the CPU's features.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Path {
    /// 256-bit vectors and fused multiply-adds.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// Plain Rust, vectorised by LLVM for the baseline target.
    Portable,
}

impl Path {
    /// The fastest kernel this CPU runs.
    pub(crate) fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Path::Avx2Fma;
        }
        Path::Portable
    }
}

/// `c = alpha·a·b + beta·c` on the given kernel; the shapes are already checked.
pub(crate) fn gemm<E: Sealed>(
    path: Path,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == E::ZERO {
        scale(beta, c);
        return;
    }
    if c.strides()[1] != 1 && c.strides()[0] == 1 {
        // A column-major `c`: compute cᵀ = bᵀ·aᵀ instead, whose rows are contiguous so that
        // whole tiles are written in place. Each element sums the same products in the same
        // order, so the result is the same.
        return gemm(
            path,
            alpha,
            b.reversed_axes(),
            a.reversed_axes(),
            beta,
            c.reversed_axes(),
        );
    }
    let threads = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    if threads > 1 && rayon::current_thread_index().is_none() {
        // From outside the pool every `rayon::join` would inject a job through rayon's global
        // queue, which allocates a block every 63 jobs: enter the pool once instead.
        return rayon::scope(|_| blocked(path, alpha, a, b, beta, c, threads));
    }
    blocked(path, alpha, a, b, beta, c, threads);
}

/// The blocked loops of [`gemm`], on up to `threads` tasks.
fn blocked<E: Sealed>(
    path: Path,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    mut c: ArrayViewMut2<'_, E>,
    threads: usize,
) {
    let (k, n) = b.dim();
    // `k` in blocks of equal depth (the last maybe one shorter), at most KC: a short last block
    // would pay a whole pass over `c` for little work. The blocks depend on `k` alone.
    let k_block = k.div_ceil(k.div_ceil(E::KC));
    let b_len = n.min(E::NC).div_ceil(E::NR) * E::NR * k_block;
    with_buffer(E::b_buffer(), b_len, |b_buf| {
        for jc in (0..n).step_by(E::NC) {
            let nc = E::NC.min(n - jc);
            for pc in (0..k).step_by(k_block) {
                let kc = k_block.min(k - pc);
                let packed = &mut b_buf[..nc.div_ceil(E::NR) * E::NR * kc];
                pack_b_parallel(b.slice(s![pc..pc + kc, jc..jc + nc]), packed, threads);
                let job = TileJob {
                    path,
                    kc,
                    alpha,
                    beta: if pc == 0 { beta } else { E::ONE },
                };
                let a_block = a.slice(s![.., pc..pc + kc]);
                let c_block = c.slice_mut(s![.., jc..jc + nc]);
                compute(job, a_block, packed, c_block, threads);
            }
        }
    });
}

/// `c = beta·c`, overwriting with zeros (NaN included) when `beta = 0`.
fn scale<E: Sealed>(beta: E, mut c: ArrayViewMut2<'_, E>) {
    if beta == E::ZERO {
        c.fill(E::ZERO);
    } else if beta != E::ONE {
        c.map_inplace(|x| *x = beta * *x);
    }
}

/// Packs a block of `b`, its panels shared among up to `threads` tasks.
fn pack_b_parallel<E: Sealed>(b: ArrayView2<'_, E>, out: &mut [E], threads: usize) {
    let panels = b.ncols().div_ceil(E::NR);
    if threads <= 1 || panels < 2 {
        pack_b(b, out);
        return;
    }
    let left = threads / 2;
    let mid = (panels * left / threads).max(1);
    let (b0, b1) = b.split_at(Axis(1), mid * E::NR);
    let (out0, out1) = out.split_at_mut(mid * E::NR * b.nrows());
    rayon::join(
        || pack_b_parallel(b0, out0, left),
        || pack_b_parallel(b1, out1, threads - left),
    );
}

/// `c = alpha·a·b + beta·c` for one block of `k` (`b` packed), shared among up to `threads`
/// tasks: by rows while there are enough of them, else by columns.
fn compute<E: Sealed>(
    job: TileJob<E>,
    a: ArrayView2<'_, E>,
    b: &[E],
    c: ArrayViewMut2<'_, E>,
    threads: usize,
) {
    let row_panels = c.nrows().div_ceil(E::MR);
    let col_panels = c.ncols().div_ceil(E::NR);
    let left = threads / 2;
    if threads <= 1 || (row_panels < 2 && col_panels < 2) {
        compute_serial(job, a, b, c);
    } else if row_panels >= 4 * threads || row_panels >= col_panels {
        let mid = (row_panels * left / threads).max(1) * E::MR;
        let (a0, a1) = a.split_at(Axis(0), mid);
        let (c0, c1) = c.split_at(Axis(0), mid);
        rayon::join(
            || compute(job, a0, b, c0, left),
            || compute(job, a1, b, c1, threads - left),
        );
    } else {
        let mid = (col_panels * left / threads).max(1);
        let (b0, b1) = b.split_at(mid * E::NR * job.kc);
        let (c0, c1) = c.split_at(Axis(1), mid * E::NR);
        rayon::join(
            || compute(job, a, b0, c0, left),
            || compute(job, a, b1, c1, threads - left),
        );
    }
}

/// One task: packs `MC` rows of `a` at a time and runs the kernel on every tile of `c`.
fn compute_serial<E: Sealed>(
    job: TileJob<E>,
    a: ArrayView2<'_, E>,
    b: &[E],
    mut c: ArrayViewMut2<'_, E>,
) {
    let (m, nc) = c.dim();
    let kc = job.kc;
    // The buffer is made big enough for any block at once: which task a thread runs (and so
    // how much of `a` it packs) changes from call to call, and it must not grow in steady state.
    with_buffer(E::a_buffer(), E::MC * E::KC, |a_buf| {
        for ic in (0..m).step_by(E::MC) {
            let mc = E::MC.min(m - ic);
            let packed = &mut a_buf[..mc.div_ceil(E::MR) * E::MR * kc];
            pack_a(a.slice(s![ic..ic + mc, ..]), packed);
            let b_panels = b.chunks_exact(kc * E::NR).take(nc.div_ceil(E::NR));
            for (jr, b_panel) in b_panels.enumerate() {
                for (ir, a_panel) in packed.chunks_exact(kc * E::MR).enumerate() {
                    tile(job, a_panel, b_panel, &mut c, ic + ir * E::MR, jr * E::NR);
                }
            }
        }
    });
}

/// Grows this thread's buffers to the largest block of `E`.
pub(crate) fn prepare_thread<E: Sealed>() {
    let b_len = E::NC * E::KC;
    with_buffer(E::a_buffer(), E::MC * E::KC, |_| ());
    with_buffer(E::b_buffer(), b_len, |_| ());
}

/// Runs `f` on `len` elements of this thread's buffer `key`, grown (never shrunk) to fit and
/// aligned to a cache line. The contents are stale: the packing overwrites all it uses.
///
/// If the buffer is in use on this thread already (a task of another product, run by rayon on
/// this thread while it waited in a join), a temporary buffer serves instead: correct, and the
/// only case in which a steady-state call allocates.
fn with_buffer<E: Sealed, R>(
    key: &'static LocalKey<RefCell<Vec<E>>>,
    len: usize,
    f: impl FnOnce(&mut [E]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(aligned(&mut buf, len)),
        Err(_) => f(aligned(&mut Vec::new(), len)),
    })
}

fn aligned<E: Sealed>(buf: &mut Vec<E>, len: usize) -> &mut [E] {
    let slack = ALIGN_BYTES / size_of::<E>();
    if buf.len() < len + slack {
        buf.resize(len + slack, E::ZERO);
    }
    let offset = buf.as_ptr().align_offset(ALIGN_BYTES);
    let offset = if offset < slack { offset } else { 0 };
    &mut buf[offset..offset + len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    /// The portable kernel agrees with the reference (exactly, on small integers), whatever
    /// kernel this machine would pick, over shapes that cross every block boundary of f64.
    #[test]
    fn the_portable_kernel_matches_a_naive_product() {
        for (m, k, n) in [(1, 1, 1), (7, 5, 9), (61, 257, 1030), (130, 300, 17)] {
            let a = Array2::from_shape_fn((m, k), |(i, p)| ((i * 7 + p * 3) % 11) as f64 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(p, j)| ((p * 5 + j * 2) % 13) as f64 - 6.0);
            let mut c = Array2::from_elem((m, n), f64::NAN);
            gemm(Path::Portable, 1.0, a.view(), b.view(), 0.0, c.view_mut());
            assert_eq!(c, naive(&a, &b), "{m}x{k}x{n}");
            let a32 = a.mapv(|x| x as f32);
            let b32 = b.mapv(|x| x as f32);
            let mut c32 = Array2::from_elem((m, n), 1.0f32);
            gemm(
                Path::Portable,
                2.0,
                b32.t(),
                a32.t(),
                1.0,
                c32.view_mut().reversed_axes(),
            );
            let want = naive(&a, &b).mapv(|x| (2.0 * x + 1.0) as f32);
            assert_eq!(c32, want, "{m}x{k}x{n} f32");
        }
    }
}
