//! The AVX-512 micro-kernels: the same tiles as `avx2.rs` (6×16 `f32`, 6×8 `f64`) on the same
//! packed panels, each row of the tile in one 512-bit accumulator, fed by one load of `b` and
//! one broadcast of `a` per row and step of `k`. Half the instructions of the AVX2 kernel for
//! the same multiply-adds; partial tiles are read and written under a lane mask.
//!
//! Each element of `c` sees the same operations in the same order as in the AVX2 kernel (one
//! fused multiply-add per step of `k`, then `alpha·ab + beta·c` by the same instructions), so
//! the two kernels give bit-identical results; `tests/it/kernels.rs` checks it.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __m512d, __mmask8, __mmask16, _mm512_add_pd, _mm512_add_ps, _mm512_fmadd_pd,
    _mm512_fmadd_ps, _mm512_loadu_pd, _mm512_loadu_ps, _mm512_mask_storeu_pd,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_pd, _mm512_maskz_loadu_ps, _mm512_mul_pd,
    _mm512_mul_ps, _mm512_set1_pd, _mm512_set1_ps, _mm512_setzero_pd, _mm512_setzero_ps,
};

use crate::avx2::{Addend, Dst, SrcB, prefetch_tile};

const MR: usize = 6;

/// `c = alpha·(a·b) + beta·c` for one tile of at most 6×16 `f32`; `c` is not read when
/// `beta = 0`. Only the first `ROWS` rows of the panel of `a` are multiplied.
///
/// # Safety
/// - The CPU supports AVX-512F.
/// - As [`crate::avx2::kernel_f32`] for `a`, `b` (16 columns; packed: `rs = 16`) and `c`.
#[target_feature(enable = "avx512f")]
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
    prefetch_tile(kc, c.ptr.cast(), c.rsc * 4, c.rows, c.cols * 4);
    let b_rs = if PACKED_B { NR as isize } else { b.rs };
    let mut acc = [_mm512_setzero_ps(); ROWS];
    let step = |acc: &mut [__m512; ROWS], p: usize| {
        let p = p as isize;
        // SAFETY: p < kc, so the 16 elements from `b.ptr + p·b_rs` are readable (the contract).
        let bp = unsafe { _mm512_loadu_ps(b.ptr.offset(p * b_rs)) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = _mm512_set1_ps(unsafe { *a.offset(p * MR as isize).add(i) });
            *row = _mm512_fmadd_ps(ai, bp, *row);
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
    let alpha = _mm512_set1_ps(alpha);
    let mask: __mmask16 = if c.cols >= NR {
        !0
    } else {
        (1u16 << c.cols) - 1
    };
    for (i, &ab) in acc.iter().enumerate().take(c.rows) {
        // SAFETY: i < rows, so `ptr` is row i of the tile; under `mask` the load and store
        // touch its first c.cols elements only, which the contract makes readable, writable
        // and unaliased (masked-off lanes are neither read nor written, and do not fault).
        unsafe {
            let ptr = c.ptr.offset(i as isize * c.rsc);
            let out = if beta == 0.0 {
                _mm512_mul_ps(alpha, ab)
            } else {
                let old = if mask == !0 {
                    _mm512_loadu_ps(ptr)
                } else {
                    _mm512_maskz_loadu_ps(mask, ptr)
                };
                _mm512_fmadd_ps(alpha, ab, _mm512_mul_ps(_mm512_set1_ps(beta), old))
            };
            // The addend's lanes: its first c.cols elements (readable by the contract), or
            // row i's element broadcast.
            let out = match c.addend {
                Addend::Nothing => out,
                Addend::Columns(p) => _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask, p)),
                Addend::Rows(p) => _mm512_add_ps(out, _mm512_set1_ps(*p.add(i))),
            };
            _mm512_mask_storeu_ps(ptr, mask, out);
        }
    }
}

/// `c = alpha·(a·b) + beta·c` for one tile of at most 6×8 `f64`; `c` is not read when
/// `beta = 0`.
///
/// # Safety
/// As [`kernel_f32`], with `b` 8 columns wide (packed: `rs = 8`) and `c.cols ≤ 8`.
#[target_feature(enable = "avx512f")]
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
    prefetch_tile(kc, c.ptr.cast(), c.rsc * 8, c.rows, c.cols * 8);
    let b_rs = if PACKED_B { NR as isize } else { b.rs };
    let mut acc = [_mm512_setzero_pd(); ROWS];
    let step = |acc: &mut [__m512d; ROWS], p: usize| {
        let p = p as isize;
        // SAFETY: p < kc, so the 8 elements from `b.ptr + p·b_rs` are readable (the contract).
        let bp = unsafe { _mm512_loadu_pd(b.ptr.offset(p * b_rs)) };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: p·6 + i < kc·6 elements of `a` are readable (the contract).
            let ai = _mm512_set1_pd(unsafe { *a.offset(p * MR as isize).add(i) });
            *row = _mm512_fmadd_pd(ai, bp, *row);
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
    let alpha = _mm512_set1_pd(alpha);
    let mask: __mmask8 = if c.cols >= NR {
        !0
    } else {
        (1u8 << c.cols) - 1
    };
    for (i, &ab) in acc.iter().enumerate().take(c.rows) {
        // SAFETY: as in `kernel_f32`: row i of the tile, its first c.cols elements only.
        unsafe {
            let ptr = c.ptr.offset(i as isize * c.rsc);
            let out = if beta == 0.0 {
                _mm512_mul_pd(alpha, ab)
            } else {
                let old = if mask == !0 {
                    _mm512_loadu_pd(ptr)
                } else {
                    _mm512_maskz_loadu_pd(mask, ptr)
                };
                _mm512_fmadd_pd(alpha, ab, _mm512_mul_pd(_mm512_set1_pd(beta), old))
            };
            let out = match c.addend {
                Addend::Nothing => out,
                Addend::Columns(p) => _mm512_add_pd(out, _mm512_maskz_loadu_pd(mask, p)),
                Addend::Rows(p) => _mm512_add_pd(out, _mm512_set1_pd(*p.add(i))),
            };
            _mm512_mask_storeu_pd(ptr, mask, out);
        }
    }
}
