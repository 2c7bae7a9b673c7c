//! The AVX2+FMA micro-kernels: a 6×16 tile of `f32` and a 6×8 tile of `f64`, each held in twelve
//! 256-bit accumulators, fed by one broadcast of `a` and two loads of `b` per step of `k`.
//! Partial tiles (at the bottom and right edges of `c`) are written with masked loads and
//! stores, which touch only the elements inside the tile.
//!
//! The `unsafe` of the crate is here, in `avx512.rs` and at the calls in `tile.rs` and
//! `scalar.rs`: the intrinsics that read and write memory take raw pointers, and the functions
//! need the CPU features that the caller detects at run time.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, __m256d, __m256i, _MM_HINT_T0, _mm_prefetch, _mm256_add_pd, _mm256_add_ps,
    _mm256_broadcast_sd, _mm256_broadcast_ss, _mm256_cmpgt_epi32, _mm256_cmpgt_epi64,
    _mm256_fmadd_pd, _mm256_fmadd_ps, _mm256_loadu_pd, _mm256_loadu_ps, _mm256_maskload_pd,
    _mm256_maskload_ps, _mm256_maskstore_pd, _mm256_maskstore_ps, _mm256_mul_pd, _mm256_mul_ps,
    _mm256_permute2f128_ps, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_pd, _mm256_set1_ps,
    _mm256_setr_epi32, _mm256_setr_epi64x, _mm256_setzero_pd, _mm256_setzero_ps, _mm256_shuffle_ps,
    _mm256_storeu_pd, _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

const MR: usize = 6;

/// Where a kernel writes: a tile of `rows × cols` elements of `c` (at most `MR × NR`), row `i`
/// starting at `ptr + i·rsc`, its elements contiguous.
/// (Public only to appear in the sealed trait's signature; the module is private.)
#[derive(Clone, Copy)]
pub struct Dst<T> {
    /// The tile's first element.
    pub ptr: *mut T,
    /// The distance between rows, in elements.
    pub rsc: isize,
    /// Rows in the tile, at most `MR`.
    pub rows: usize,
    /// Columns in the tile, at most `NR`.
    pub cols: usize,
    /// Added to the tile after `alpha·ab + beta·c`.
    pub addend: Addend<T>,
}

/// What a kernel adds to its tile once `alpha·ab + beta·c` is computed, rounding once more (a
/// bias): the bits of adding it in a pass over `c` afterwards, without the pass.
/// (Public only to appear in the sealed trait's signature; the module is private.)
#[derive(Clone, Copy)]
pub enum Addend<T> {
    /// Nothing.
    Nothing,
    /// `ptr[j]` to every element of the tile's column `j`.
    Columns(*const T),
    /// `ptr[i]` to every element of the tile's row `i`.
    Rows(*const T),
}

/// Where a kernel reads `b`: element `(p, j)` (step `p` of `k`, column `j` of the tile) at
/// `ptr + p·rs + j`, the `NR` columns of a step contiguous: a packed panel (`rs = NR`) or `b`
/// in place (its row stride).
#[derive(Clone, Copy)]
pub struct SrcB<T> {
    /// Element `(0, 0)`.
    pub ptr: *const T,
    /// The distance between steps of `k`, in elements.
    pub rs: isize,
}

/// `c = alpha·(a·b) + beta·c` for one tile of at most 6×16 `f32`; `c` is not read when
/// `beta = 0`.
///
/// Each element's products are accumulated with one fused multiply-add per step of `k`, in
/// order, and scaled by the same instructions whether the tile is whole or partial, so its
/// result depends only on `kc` and the values.
///
/// With `PACKED_B`, `b` is a packed panel and its row stride is taken as 16, a constant the
/// compiler folds into the addressing; without, `b.rs` is used. Only the first `ROWS` rows of
/// the panel of `a` are multiplied: a tile at the bottom edge of `c` skips the padding rows'
/// multiply-adds. Either way each element sees the same operations in the same order.
///
/// # Safety
/// - The CPU supports AVX2 and FMA.
/// - `a` is valid for reading `kc·6` elements (a packed panel of `a`: step `p`, row `i` at
///   `p·6 + i`); for every step `p < kc` the 16 elements from `b.ptr + p·rs` are valid for
///   reading (`rs = 16` with `PACKED_B`, `b.rs` without).
/// - `c.rows ≤ ROWS ≤ 6`, `c.cols ≤ 16`, and for every row `i < c.rows` the `c.cols` elements from
///   `c.ptr + i·c.rsc` are valid for reading and writing, with no other reference to them alive.
/// - `c.addend` is `Columns(p)` with `c.cols` elements readable from `p`, `Rows(p)` with
///   `c.rows` elements readable from `p`, or `Nothing`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_f32<const PACKED_B: bool, const ROWS: usize>(
    kc: usize,
    a: *const f32,
    b: SrcB<f32>,
    c: Dst<f32>,
    alpha: f32,
    beta: f32,
) {
    const NR: usize = 16;
    debug_assert!(c.rows <= ROWS && ROWS <= MR && c.cols <= NR);
    let coefficients = [alpha, beta];
    let coefficients = out_of_registers(&coefficients);
    prefetch_tile(kc, c.ptr.cast(), c.rsc * 4, c.rows, c.cols * 4);
    let b_rs = if PACKED_B { NR as isize } else { b.rs };
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    let step = |acc: &mut [[__m256; 2]; ROWS], p: usize| {
        let p = p as isize;
        // SAFETY: p < kc, so the 16 elements from `b.ptr + p·b_rs` are readable (the contract).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.ptr.offset(p * b_rs)),
                _mm256_loadu_ps(b.ptr.offset(p * b_rs + 8)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = unsafe { _mm256_broadcast_ss(&*a.offset(p * MR as isize).add(i)) };
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
    };
    // Four steps a round: fewer loop branches and pointer updates between the multiply-adds.
    let mut p = 0;
    while p + 4 <= kc {
        step(&mut acc, p);
        step(&mut acc, p + 1);
        step(&mut acc, p + 2);
        step(&mut acc, p + 3);
        p += 4;
    }
    while p < kc {
        step(&mut acc, p);
        p += 1;
    }
    let [alpha, beta] = *coefficients;
    let alpha = _mm256_set1_ps(alpha);
    let scale = |ab: __m256, old: Option<__m256>| match old {
        None => _mm256_mul_ps(alpha, ab),
        Some(old) => _mm256_fmadd_ps(alpha, ab, _mm256_mul_ps(_mm256_set1_ps(beta), old)),
    };
    for (i, row) in acc.iter().enumerate().take(c.rows) {
        for (h, &ab) in row.iter().enumerate() {
            let cols = c.cols.saturating_sub(h * 8).min(8);
            if cols == 0 {
                break;
            }
            // SAFETY: i < rows and h·8 < cols, so `ptr` is inside row i of the tile; the
            // (masked) loads and stores touch its next min(8, cols − h·8) elements only, which
            // the contract makes readable, writable and unaliased.
            unsafe {
                let ptr = c.ptr.offset(i as isize * c.rsc).add(h * 8);
                // The addend's lanes for this vector: its columns (the same elements as the
                // row's, readable by the contract), or row i's element broadcast.
                let addend = |mask: Option<__m256i>| match c.addend {
                    Addend::Nothing => None,
                    Addend::Columns(p) => Some(match mask {
                        None => _mm256_loadu_ps(p.add(h * 8)),
                        Some(mask) => _mm256_maskload_ps(p.add(h * 8), mask),
                    }),
                    Addend::Rows(p) => Some(_mm256_broadcast_ss(&*p.add(i))),
                };
                let plus = |v: __m256, add: Option<__m256>| match add {
                    None => v,
                    // `+ 0` would turn a -0 into +0: only an addend is added.
                    Some(add) => _mm256_add_ps(v, add),
                };
                if cols == 8 {
                    let old = (beta != 0.0).then(|| _mm256_loadu_ps(ptr));
                    _mm256_storeu_ps(ptr, plus(scale(ab, old), addend(None)));
                } else {
                    let mask = lanes_below_32(cols);
                    let old = (beta != 0.0).then(|| _mm256_maskload_ps(ptr, mask));
                    _mm256_maskstore_ps(ptr, mask, plus(scale(ab, old), addend(Some(mask))));
                }
            }
        }
    }
}

/// `c = alpha·(a·b) + beta·c` for one tile of at most 6×8 `f64`; `c` is not read when
/// `beta = 0`.
///
/// # Safety
/// As [`kernel_f32`], with `b` 8 columns wide (packed: `rs = 8`) and `c.cols ≤ 8`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_f64<const PACKED_B: bool, const ROWS: usize>(
    kc: usize,
    a: *const f64,
    b: SrcB<f64>,
    c: Dst<f64>,
    alpha: f64,
    beta: f64,
) {
    const NR: usize = 8;
    debug_assert!(c.rows <= ROWS && ROWS <= MR && c.cols <= NR);
    let coefficients = [alpha, beta];
    let coefficients = out_of_registers(&coefficients);
    prefetch_tile(kc, c.ptr.cast(), c.rsc * 8, c.rows, c.cols * 8);
    let b_rs = if PACKED_B { NR as isize } else { b.rs };
    let mut acc = [[_mm256_setzero_pd(); 2]; ROWS];
    let step = |acc: &mut [[__m256d; 2]; ROWS], p: usize| {
        let p = p as isize;
        // SAFETY: p < kc, so the 8 elements from `b.ptr + p·b_rs` are readable (the contract).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_pd(b.ptr.offset(p * b_rs)),
                _mm256_loadu_pd(b.ptr.offset(p * b_rs + 4)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = unsafe { _mm256_broadcast_sd(&*a.offset(p * MR as isize).add(i)) };
            row[0] = _mm256_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm256_fmadd_pd(ai, b1, row[1]);
        }
    };
    let mut p = 0;
    while p + 4 <= kc {
        step(&mut acc, p);
        step(&mut acc, p + 1);
        step(&mut acc, p + 2);
        step(&mut acc, p + 3);
        p += 4;
    }
    while p < kc {
        step(&mut acc, p);
        p += 1;
    }
    let [alpha, beta] = *coefficients;
    let alpha = _mm256_set1_pd(alpha);
    let scale = |ab: __m256d, old: Option<__m256d>| match old {
        None => _mm256_mul_pd(alpha, ab),
        Some(old) => _mm256_fmadd_pd(alpha, ab, _mm256_mul_pd(_mm256_set1_pd(beta), old)),
    };
    for (i, row) in acc.iter().enumerate().take(c.rows) {
        for (h, &ab) in row.iter().enumerate() {
            let cols = c.cols.saturating_sub(h * 4).min(4);
            if cols == 0 {
                break;
            }
            // SAFETY: i < rows and h·4 < cols, so `ptr` is inside row i of the tile; the
            // (masked) loads and stores touch its next min(4, cols − h·4) elements only, which
            // the contract makes readable, writable and unaliased.
            unsafe {
                let ptr = c.ptr.offset(i as isize * c.rsc).add(h * 4);
                let addend = |mask: Option<__m256i>| match c.addend {
                    Addend::Nothing => None,
                    Addend::Columns(p) => Some(match mask {
                        None => _mm256_loadu_pd(p.add(h * 4)),
                        Some(mask) => _mm256_maskload_pd(p.add(h * 4), mask),
                    }),
                    Addend::Rows(p) => Some(_mm256_broadcast_sd(&*p.add(i))),
                };
                let plus = |v: __m256d, add: Option<__m256d>| match add {
                    None => v,
                    Some(add) => _mm256_add_pd(v, add),
                };
                if cols == 4 {
                    let old = (beta != 0.0).then(|| _mm256_loadu_pd(ptr));
                    _mm256_storeu_pd(ptr, plus(scale(ab, old), addend(None)));
                } else {
                    let mask = lanes_below_64(cols);
                    let old = (beta != 0.0).then(|| _mm256_maskload_pd(ptr, mask));
                    _mm256_maskstore_pd(ptr, mask, plus(scale(ab, old), addend(Some(mask))));
                }
            }
        }
    }
}

/// `alpha` and `beta` behind a reference the optimiser cannot see through, so that the kernel
/// reads them after its loop. Held in a register across the loop, they took one of the sixteen
/// that the twelve accumulators, two loads of `b` and a broadcast of `a` need, and LLVM spilled
/// an accumulator to the stack instead: a store and a load in every round of four steps. Out of
/// the registers, the loop runs without touching the stack: 82 → 88 GFLOP/s on one Zen 3 core
/// at 512³ and 1024³ (the two binaries alternated).
fn out_of_registers<T>(coefficients: &[T; 2]) -> &[T; 2] {
    std::hint::black_box(coefficients)
}

/// A mask of eight 32-bit lanes, set for the lanes `< n`.
#[target_feature(enable = "avx2")]
fn lanes_below_32(n: usize) -> __m256i {
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), index)
}

/// A mask of four 64-bit lanes, set for the lanes `< n`.
#[target_feature(enable = "avx2")]
fn lanes_below_64(n: usize) -> __m256i {
    let index = _mm256_setr_epi64x(0, 1, 2, 3);
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), index)
}

/// Asks for the tile of `c` (`rows` rows of `row_bytes` bytes, `stride` bytes apart) to be
/// brought into L1 while the kernel computes `kc` steps, so that its write-back does not wait
/// for memory. A short kernel would not hide the wait anyway: it goes without.
#[inline(always)]
pub(crate) fn prefetch_tile(kc: usize, c: *const i8, stride: isize, rows: usize, row_bytes: usize) {
    if kc < 32 || row_bytes == 0 {
        return;
    }
    for i in 0..rows as isize {
        // `wrapping_offset` and a prefetch: neither dereferences the pointer.
        let row = c.wrapping_offset(i * stride);
        // SAFETY: `_mm_prefetch` needs SSE (in every x86_64 CPU) and is only a hint: it never
        // faults and changes no memory, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(row_bytes - 1));
        }
    }
}

/// Asks for the `bytes` bytes from `ptr` to be brought into L1, one hint per cache line. Only a
/// hint: any address will do, nothing is read or written.
#[inline(always)]
pub(crate) fn prefetch_bytes(ptr: *const i8, bytes: usize) {
    let mut at = 0;
    while at < bytes {
        // SAFETY: as in `prefetch`: `_mm_prefetch` is a hint that never faults and changes no
        // memory, whatever the address; `wrapping_add` does not dereference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(at)) };
        at += 64;
    }
}

/// Packs sixteen lanes of `f32`, all of one length `k`, into a panel of `b`: `out[p·16 + l] =
/// lanes[l][p]`. Eight steps of eight lanes at a time go through an 8×8 transpose in registers,
/// where a scalar loop would move one element at a time.
///
/// Returns `false`, touching nothing, when the lanes or `out` are too short; the caller then
/// packs them its own way.
///
/// # Safety
/// The CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn interleave16_f32(lanes: &[&[f32]], out: &mut [f32]) -> bool {
    const W: usize = 16;
    let k = lanes.first().map_or(0, |l| l.len());
    if lanes.len() != W || lanes.iter().any(|l| l.len() != k) || out.len() < k * W {
        return false;
    }
    let full = k - k % 8;
    for half in 0..2 {
        let src: [*const f32; 8] = std::array::from_fn(|l| lanes[half * 8 + l].as_ptr());
        let dst = out[half * 8..].as_mut_ptr();
        for p in (0..full).step_by(8) {
            let mut rows = [_mm256_setzero_ps(); 8];
            for (row, lane) in rows.iter_mut().zip(&src) {
                // SAFETY: p + 8 ≤ k, and every lane holds k elements (checked above).
                *row = unsafe { _mm256_loadu_ps(lane.add(p)) };
            }
            for (s, step) in transpose8(rows).into_iter().enumerate() {
                // SAFETY: (p + s)·16 + half·8 + 8 ≤ k·16 ≤ out.len() (checked above), and `out`
                // is borrowed mutably.
                unsafe { _mm256_storeu_ps(dst.add((p + s) * W), step) };
            }
        }
    }
    for p in full..k {
        for (l, lane) in lanes.iter().enumerate() {
            out[p * W + l] = lane[p];
        }
    }
    true
}

/// The 8×8 transpose: row `s` of the result holds element `s` of every input row.
#[target_feature(enable = "avx")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}
