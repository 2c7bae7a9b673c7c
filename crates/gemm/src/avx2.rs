//! The AVX2+FMA micro-kernels: a 6×16 tile of `f32` and a 6×8 tile of `f64`, each held in twelve
//! 256-bit accumulators, fed by one broadcast of `a` and two loads of `b` per step of `k`.
//!
//! The only `unsafe` of the crate is here and at the call in `tile.rs`: the intrinsics that read
//! and write memory take raw pointers, and the functions need the CPU features that the caller
//! detects at run time.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, __m256d, _MM_HINT_T0, _mm_prefetch, _mm256_broadcast_sd, _mm256_broadcast_ss,
    _mm256_fmadd_pd, _mm256_fmadd_ps, _mm256_loadu_pd, _mm256_loadu_ps, _mm256_mul_pd,
    _mm256_mul_ps, _mm256_set1_pd, _mm256_set1_ps, _mm256_setzero_pd, _mm256_setzero_ps,
    _mm256_storeu_pd, _mm256_storeu_ps,
};

const MR: usize = 6;

/// `c = alpha·(a·b) + beta·c` for one 6×16 tile of `f32`; `c` is not read when `beta = 0`.
///
/// Each element's products are accumulated with one fused multiply-add per step of `k`, in
/// order, so its result depends only on `kc` and the values.
///
/// # Safety
/// - The CPU supports AVX2 and FMA.
/// - `a` is valid for reading `kc·6` elements (a packed panel of `a`: step `p`, row `i` at
///   `p·6 + i`), `b` for reading `kc·16` (a packed panel of `b`: step `p`, column `j` at
///   `p·16 + j`).
/// - For every row `i < 6`, the 16 elements from `c + i·rsc` are valid for reading and writing,
///   and no other reference to them is alive.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_f32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    const NR: usize = 16;
    prefetch_tile(c.cast(), rsc * 4, NR * 4);
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so `p·16 + 8 + 8 ≤ kc·16` elements of `b` are readable (the contract).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.add(p * NR)),
                _mm256_loadu_ps(b.add(p * NR + 8)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = unsafe { _mm256_broadcast_ss(&*a.add(p * MR + i)) };
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
    }
    let alpha = _mm256_set1_ps(alpha);
    let scale = |ab: __m256, old: Option<__m256>| match old {
        None => _mm256_mul_ps(alpha, ab),
        Some(old) => _mm256_fmadd_ps(alpha, ab, _mm256_mul_ps(_mm256_set1_ps(beta), old)),
    };
    for (i, row) in acc.iter().enumerate() {
        for (h, &ab) in row.iter().enumerate() {
            // SAFETY: i < 6 and h·8 + 8 ≤ 16: inside row i of the tile, readable and writable
            // and not aliased (the contract).
            unsafe {
                let ptr = c.offset(i as isize * rsc).add(h * 8);
                let old = (beta != 0.0).then(|| _mm256_loadu_ps(ptr));
                _mm256_storeu_ps(ptr, scale(ab, old));
            }
        }
    }
}

/// `c = alpha·(a·b) + beta·c` for one 6×8 tile of `f64`; `c` is not read when `beta = 0`.
///
/// # Safety
/// As [`kernel_f32`], with panels of `b` 8 wide (`kc·8` elements) and tile rows of 8 elements.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel_f64(
    kc: usize,
    a: *const f64,
    b: *const f64,
    c: *mut f64,
    rsc: isize,
    alpha: f64,
    beta: f64,
) {
    const NR: usize = 8;
    prefetch_tile(c.cast(), rsc * 8, NR * 8);
    let mut acc = [[_mm256_setzero_pd(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so `p·8 + 4 + 4 ≤ kc·8` elements of `b` are readable (the contract).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_pd(b.add(p * NR)),
                _mm256_loadu_pd(b.add(p * NR + 4)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = unsafe { _mm256_broadcast_sd(&*a.add(p * MR + i)) };
            row[0] = _mm256_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm256_fmadd_pd(ai, b1, row[1]);
        }
    }
    let alpha = _mm256_set1_pd(alpha);
    let scale = |ab: __m256d, old: Option<__m256d>| match old {
        None => _mm256_mul_pd(alpha, ab),
        Some(old) => _mm256_fmadd_pd(alpha, ab, _mm256_mul_pd(_mm256_set1_pd(beta), old)),
    };
    for (i, row) in acc.iter().enumerate() {
        for (h, &ab) in row.iter().enumerate() {
            // SAFETY: i < 6 and h·4 + 4 ≤ 8: inside row i of the tile, readable and writable
            // and not aliased (the contract).
            unsafe {
                let ptr = c.offset(i as isize * rsc).add(h * 4);
                let old = (beta != 0.0).then(|| _mm256_loadu_pd(ptr));
                _mm256_storeu_pd(ptr, scale(ab, old));
            }
        }
    }
}

/// Asks for the tile of `c` (6 rows of `row_bytes` bytes, `stride` bytes apart) to be brought
/// into L1 while the kernel computes, so that its write-back does not wait for memory.
#[inline(always)]
fn prefetch_tile(c: *const i8, stride: isize, row_bytes: usize) {
    for i in 0..MR as isize {
        // `wrapping_offset` and a prefetch: neither dereferences the pointer, so any address
        // is sound (a prefetch of an unmapped one is ignored).
        let row = c.wrapping_offset(i * stride);
        // SAFETY: `_mm_prefetch` needs SSE (in every x86_64 CPU) and never faults.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(row_bytes - 1));
        }
    }
}
