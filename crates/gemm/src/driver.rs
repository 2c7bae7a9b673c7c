//! The blocked loops around the micro-kernel, the split of the work among threads, and the
//! thread-local packing buffers.
//!
//! A product is split once, with `rayon::join`, into one task per thread: by blocks of columns
//! of `c` when it is at least as wide as tall, by blocks of rows otherwise. Each task runs the
//! five loops of BLIS on its part: for each block of `NC` columns and each block of at most `KC`
//! steps of `k` (in order), it packs that block of `b` into its thread's buffer, then `MC` rows of
//! `a` at a time into another, and runs the micro-kernel on every tile. No task ever splits `k`,
//! and the blocks of `k` depend on `k` alone, so every element of `c` is summed the same way
//! whatever the split. The tasks share nothing, so they never wait for one another.

use std::cell::RefCell;
use std::ops::Range;
use std::thread::LocalKey;

use ndarray::{ArrayView2, ArrayViewMut2, Axis, s};

use crate::pack::{pack_a, pack_b};
use crate::scalar::private::Sealed;
use crate::tile::{PanelB, TileJob, tile};

/// Below this many multiply-adds a product runs on the calling thread: forking would cost more
/// than it saves. Waking a sleeping rayon worker costs tens of microseconds; measured on 2 cores
/// (Zen 3) with 50 µs of other work between products, 2 threads lose below about 2M
/// multiply-adds (64×128×128: 49 µs against 39 on one thread) and win above (128×128×256:
/// 98 µs against 128). Back to back, with the worker awake, 2 threads win from about 1M.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// A product with this many elements of `c` or more is shared among threads whatever its
/// multiply-adds: with a short inner dimension (below 32 here) its time goes to writing `c`,
/// whose cache lines, in a training step, were last touched long before, and two cores fetch
/// them twice as fast. W2's 128×10·10×512 (the output layer's input gradient): 53 → 32-37 µs
/// alone, 162-184 → 122-141 µs inside a step, on 2 threads.
const PARALLEL_MIN_OUTPUTS: usize = 1 << 16;

/// Products of at most this many rows read `b` in place rather than packed (when its columns
/// are contiguous and the kernel is AVX2's): see [`serial`].
const B_IN_PLACE_MAX_ROWS: usize = 64;

/// Packed panels start on a cache line, so that no vector load of the kernel straddles two.
const ALIGN_BYTES: usize = 64;

/// Which micro-kernel runs: chosen once per process from the CPU's features (see
/// [`Path::detect`]), or by the caller through [`crate::Kernel`]. (Public only to appear in the
/// sealed trait's signatures; the module is private.)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Path {
    /// 512-bit vectors (AVX-512F), on a CPU that also has AVX2 and FMA (the packing uses them).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 256-bit vectors and fused multiply-adds.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// Plain Rust, vectorised by LLVM for the baseline target.
    Portable,
}

/// The environment variable that overrides the default kernel: `avx512`, `avx2` or `portable`.
pub(crate) const KERNEL_VAR: &str = "WENGERT_GEMM_KERNEL";

impl Path {
    /// The default kernel: the widest this CPU runs, unless [`KERNEL_VAR`] names a narrower
    /// one (a wider one than the CPU has, or an unknown name, is ignored). Read once.
    pub(crate) fn detect() -> Path {
        static DEFAULT: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *DEFAULT.get_or_init(|| {
            let widest = Path::widest();
            match std::env::var(KERNEL_VAR).as_deref() {
                Ok("portable") => Path::Portable,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if widest != Path::Portable => Path::Avx2Fma,
                _ => widest,
            }
        })
    }

    /// The widest kernel this CPU runs.
    pub(crate) fn widest() -> Path {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            if is_x86_feature_detected!("avx512f") {
                return Path::Avx512;
            }
            return Path::Avx2Fma;
        }
        Path::Portable
    }

    /// Every kernel this CPU runs, the widest first.
    pub(crate) fn available() -> Vec<Path> {
        let all = [
            #[cfg(target_arch = "x86_64")]
            Path::Avx512,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2Fma,
            Path::Portable,
        ];
        let widest = Path::widest();
        let from = all.iter().position(|&p| p == widest).unwrap_or(0);
        all[from..].to_vec()
    }
}

/// A vector added to `c` after the product, one element per column of `c` (a dense layer's
/// bias, added to every row) or, once the product is computed transposed, one per row.
#[derive(Clone, Copy)]
pub(crate) struct Bias<'v, E> {
    values: &'v [E],
    per_column: bool,
}

impl<'v, E: Sealed> Bias<'v, E> {
    /// `values[j]` added to column `j` of `c`.
    pub(crate) fn per_column(values: &'v [E]) -> Self {
        Bias {
            values,
            per_column: true,
        }
    }

    /// The same bias for `cᵀ`: one element per row.
    fn transposed(self) -> Self {
        Bias {
            per_column: !self.per_column,
            ..self
        }
    }

    /// The parts of the bias for the two parts of `c` split at `mid` along `axis`.
    fn split(self, axis: Axis, mid: usize) -> (Self, Self) {
        if (axis == Axis(1)) == self.per_column {
            let (left, right) = self.values.split_at(mid);
            (
                Bias {
                    values: left,
                    ..self
                },
                Bias {
                    values: right,
                    ..self
                },
            )
        } else {
            (self, self)
        }
    }

    /// The part of the bias for the tile `c[rows, cols]` (its columns' elements, or its rows'),
    /// and whether it goes by columns.
    pub(crate) fn tile(self, rows: Range<usize>, cols: Range<usize>) -> (&'v [E], bool) {
        let range = if self.per_column { cols } else { rows };
        (&self.values[range], self.per_column)
    }

    /// Adds the bias to `c[rows, cols]` in a pass of its own (a product with nothing to
    /// multiply: the kernel never runs).
    fn add_to(self, c: &mut ArrayViewMut2<'_, E>, rows: Range<usize>, cols: Range<usize>) {
        let mut block = c.slice_mut(s![rows.clone(), cols.clone()]);
        if self.per_column {
            let bias = &self.values[cols];
            for mut row in block.rows_mut() {
                for (x, &b) in row.iter_mut().zip(bias) {
                    *x = *x + b;
                }
            }
        } else {
            for (mut row, &b) in block.rows_mut().into_iter().zip(&self.values[rows]) {
                row.map_inplace(|x| *x = *x + b);
            }
        }
    }
}

/// `c = alpha·a·b + beta·c`, then `+ bias` when there is one, on at most `max_threads` of the
/// pool's threads (1: on the calling thread alone); the shapes are already checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<E: Sealed>(
    path: Path,
    max_threads: usize,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    bias: Option<Bias<'_, E>>,
    c: ArrayViewMut2<'_, E>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == E::ZERO {
        let mut c = c;
        scale(beta, c.view_mut());
        if let Some(bias) = bias {
            bias.add_to(&mut c, 0..m, 0..n);
        }
        return;
    }
    // Which way round to compute: `c = a·b`, or `cᵀ = bᵀ·aᵀ` (every element sums the same
    // products in the same order either way, so the result is the same).
    let column_major_c = c.strides()[1] != 1 && c.strides()[0] == 1;
    let (a, b, c, bias, m, n) = if wants_transpose::<E>(path, m, n, column_major_c) {
        (
            b.reversed_axes(),
            a.reversed_axes(),
            c.reversed_axes(),
            bias.map(Bias::transposed),
            n,
            m,
        )
    } else {
        (a, b, c, bias, m, n)
    };
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = if macs < PARALLEL_MIN_MACS && m.saturating_mul(n) < PARALLEL_MIN_OUTPUTS {
        1
    } else {
        rayon::current_num_threads().min(max_threads.max(1))
    };
    // The results are the same either way; the choice depends on the shape and layout only.
    let b_in_place = path != Path::Portable && b.strides()[1] == 1 && m <= B_IN_PLACE_MAX_ROWS;
    if threads > 1 && rayon::current_thread_index().is_none() {
        // From outside the pool every `rayon::join` would inject a job through rayon's global
        // queue, which allocates a block every 63 jobs: enter the pool once instead.
        return rayon::scope(|_| blocked(path, b_in_place, alpha, a, b, beta, bias, c, threads));
    }
    blocked(path, b_in_place, alpha, a, b, beta, bias, c, threads);
}

/// Whether to compute `cᵀ = bᵀ·aᵀ` rather than `c = a·b` (`c` being `m × n`).
///
/// - A narrow `c` (fewer than `NR` columns, at least `2·NR` rows: a layer's output of 10
///   classes, or its weight's gradient) would fill only part of every tile's `NR` lanes; its
///   transpose has few rows instead, which the kernel multiplies exactly (an edge tile skips
///   the missing rows), and the long side's operand is packed by the faster routines of `b`
///   (or read in place). The tiles then go through a small buffer, a minor cost for so few
///   elements. W2's 128×512·512×10 and (128×512)ᵀ·128×10 went from 24 to 31-42 and from 23 to
///   32-44 GFLOP/s (same process, interleaved, medians).
/// - Otherwise a column-major `c` is transposed, so that its tiles are written in place.
fn wants_transpose<E: Sealed>(path: Path, m: usize, n: usize, column_major_c: bool) -> bool {
    let narrow =
        |rows: usize, cols: usize| path != Path::Portable && cols < E::NR && rows >= 2 * E::NR;
    if narrow(m, n) {
        true
    } else if narrow(n, m) {
        false
    } else {
        column_major_c
    }
}

/// The blocked loops of [`gemm`], shared among up to `threads` tasks: by columns of `c` when
/// it is at least as wide as tall, by rows otherwise. Each task packs its own blocks of `a` and
/// `b`, so the tasks never wait for one another: one fork per call.
#[allow(clippy::too_many_arguments)]
fn blocked<E: Sealed>(
    path: Path,
    b_in_place: bool,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    bias: Option<Bias<'_, E>>,
    c: ArrayViewMut2<'_, E>,
    threads: usize,
) {
    let split = |axis, mid| match bias {
        Some(bias) => {
            let (left, right) = bias.split(axis, mid);
            (Some(left), Some(right))
        }
        None => (None, None),
    };
    let (m, n) = c.dim();
    let row_panels = m.div_ceil(E::MR);
    let col_panels = n.div_ceil(E::NR);
    let left = threads / 2;
    // Splitting columns packs `a` once per task, splitting rows packs `b` once per task: split
    // the longer side, so that the copy packed twice is the smaller.
    if threads > 1 && col_panels >= 2 && (n >= m || row_panels < 2) {
        let mid = (col_panels * left / threads).max(1) * E::NR;
        let (b0, b1) = b.split_at(Axis(1), mid);
        let (c0, c1) = c.split_at(Axis(1), mid);
        let (bias0, bias1) = split(Axis(1), mid);
        rayon::join(
            || blocked(path, b_in_place, alpha, a, b0, beta, bias0, c0, left),
            || {
                blocked(
                    path,
                    b_in_place,
                    alpha,
                    a,
                    b1,
                    beta,
                    bias1,
                    c1,
                    threads - left,
                )
            },
        );
    } else if threads > 1 && row_panels >= 2 {
        let mid = (row_panels * left / threads).max(1) * E::MR;
        let (a0, a1) = a.split_at(Axis(0), mid);
        let (c0, c1) = c.split_at(Axis(0), mid);
        let (bias0, bias1) = split(Axis(0), mid);
        rayon::join(
            || blocked(path, b_in_place, alpha, a0, b, beta, bias0, c0, left),
            || {
                blocked(
                    path,
                    b_in_place,
                    alpha,
                    a1,
                    b,
                    beta,
                    bias1,
                    c1,
                    threads - left,
                )
            },
        );
    } else {
        serial(path, b_in_place, alpha, a, b, beta, bias, c);
    }
}

/// One task: the five loops of BLIS around the micro-kernel, on this thread's buffers.
///
/// With `b_in_place` (the AVX2 kernel, `b`'s columns contiguous) the kernel reads the panels
/// of `b` where they are, and only the last one, when `NR` does not divide the columns, is
/// packed. Packing pays for itself by reuse: a packed element of `b` is read by `m / MR` tiles,
/// and for a product of a few rows (a training step at batch 32: 32×64·64×128, 32×128·128×10)
/// copying it cost as much as those reads saved. The kernel does the same operations either way.
///
/// A bias is added by the kernel of the last block of `k`, to each tile before it is stored.
#[allow(clippy::too_many_arguments)]
fn serial<E: Sealed>(
    path: Path,
    b_in_place: bool,
    alpha: E,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    bias: Option<Bias<'_, E>>,
    mut c: ArrayViewMut2<'_, E>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    // `k` in blocks of equal depth (the last maybe one shorter), at most KC: a short last block
    // would pay a whole pass over `c` for little work. The blocks depend on `k` alone, never on
    // how the work is shared, so neither does any element's sum.
    let k_block = k.div_ceil(k.div_ceil(E::KC));
    // Rows in blocks of about equal height, whole panels, at most MC: each block streams the
    // whole packed block of `b` through the cache again, so a thin last block costs nearly
    // as much as a full one.
    let m_block = m.div_ceil(m.div_ceil(E::MC)).div_ceil(E::MR) * E::MR;
    with_buffer(E::b_buffer(), E::NC * E::KC, |b_buf| {
        with_buffer(E::a_buffer(), E::MC * E::KC, |a_buf| {
            for jc in (0..n).step_by(E::NC) {
                let nc = E::NC.min(n - jc);
                let panels = nc.div_ceil(E::NR);
                for pc in (0..k).step_by(k_block) {
                    let kc = k_block.min(k - pc);
                    let b_packed = if b_in_place {
                        // Only the last panel, if partial, into the buffer's first panel.
                        let last = (panels - 1) * E::NR;
                        if last + E::NR > nc {
                            let edge = b.slice(s![pc..pc + kc, jc + last..jc + nc]);
                            pack_b(path, edge, &mut b_buf[..kc * E::NR]);
                        }
                        &b_buf[..kc * E::NR]
                    } else {
                        let b_packed = &mut b_buf[..panels * E::NR * kc];
                        pack_b(path, b.slice(s![pc..pc + kc, jc..jc + nc]), b_packed);
                        b_packed
                    };
                    let job = TileJob {
                        path,
                        kc,
                        alpha,
                        beta: if pc == 0 { beta } else { E::ONE },
                        bias: if pc + kc == k { bias } else { None },
                    };
                    for ic in (0..m).step_by(m_block) {
                        let mc = m_block.min(m - ic);
                        let a_packed = &mut a_buf[..mc.div_ceil(E::MR) * E::MR * kc];
                        pack_a(path, a.slice(s![ic..ic + mc, pc..pc + kc]), a_packed);
                        for jr in 0..panels {
                            let j0 = jc + jr * E::NR;
                            let b_panel = if !b_in_place {
                                PanelB::Packed(&b_packed[jr * kc * E::NR..][..kc * E::NR])
                            } else if j0 + E::NR <= jc + nc {
                                PanelB::InPlace {
                                    b: &b,
                                    at: (pc, j0),
                                }
                            } else {
                                PanelB::Packed(b_packed)
                            };
                            for (ir, a_panel) in a_packed.chunks_exact(kc * E::MR).enumerate() {
                                tile(job, a_panel, b_panel, &mut c, ic + ir * E::MR, j0);
                            }
                        }
                    }
                }
            }
        })
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

/// Allocates this thread's buffers for `E`, at the size every product asks for.
pub(crate) fn prepare_thread<E: Sealed>() {
    with_buffer(E::a_buffer(), E::MC * E::KC, |_| ());
    with_buffer(E::b_buffer(), E::NC * E::KC, |_| ());
}

/// Runs `f` on `len` elements of this thread's buffer `key`, aligned to a cache line, growing
/// the buffer (never shrinking it) the first time. Every product asks for the largest block,
/// whatever its shape: which part of a product a thread runs varies from call to call, and a
/// buffer that grew with it would allocate in steady state. The contents are stale: the packing
/// overwrites all it uses.
///
/// If the buffer were in use on this thread already, a temporary one would serve instead.
/// That does not happen (no task waits for another while it holds a buffer), but a call that
/// cannot fail is cheaper to reason about than a `RefCell` that could panic.
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
    use wengert_testkit::naive_matmul;

    #[test]
    fn the_split_thresholds_the_architecture_quotes_are_the_codes() {
        use wengert_testkit::architecture_figure;
        assert_eq!(
            architecture_figure("PARALLEL_MIN_MACS"),
            PARALLEL_MIN_MACS as u64
        );
        assert_eq!(
            architecture_figure("PARALLEL_MIN_OUTPUTS"),
            PARALLEL_MIN_OUTPUTS as u64
        );
    }

    /// The portable kernel agrees with the reference (exactly, on small integers), whatever
    /// kernel this machine would pick, over shapes that cross every block boundary of f64.
    #[test]
    fn the_portable_kernel_matches_a_naive_product() {
        for (m, k, n) in [(1, 1, 1), (7, 5, 9), (61, 257, 1030), (130, 300, 17)] {
            let a = Array2::from_shape_fn((m, k), |(i, p)| ((i * 7 + p * 3) % 11) as f64 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(p, j)| ((p * 5 + j * 2) % 13) as f64 - 6.0);
            let mut c = Array2::from_elem((m, n), f64::NAN);
            gemm(
                Path::Portable,
                usize::MAX,
                1.0,
                a.view(),
                b.view(),
                0.0,
                None,
                c.view_mut(),
            );
            assert_eq!(c, naive_matmul(a.view(), b.view()), "{m}x{k}x{n}");
            let a32 = a.mapv(|x| x as f32);
            let b32 = b.mapv(|x| x as f32);
            let mut c32 = Array2::from_elem((m, n), 1.0f32);
            gemm(
                Path::Portable,
                usize::MAX,
                2.0,
                b32.t(),
                a32.t(),
                1.0,
                None,
                c32.view_mut().reversed_axes(),
            );
            let want = naive_matmul(a.view(), b.view()).mapv(|x| (2.0 * x + 1.0) as f32);
            assert_eq!(c32, want, "{m}x{k}x{n} f32");
        }
    }
}
