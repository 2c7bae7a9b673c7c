//! Packing blocks of `a` and `b` into the panel layouts the micro-kernels read: contiguous,
//! one step of `k` after another, zero-padded to whole panels. Packing reads every layout
//! (contiguous rows, contiguous columns, any other strides) with safe slices and iterators.

use ndarray::{ArrayView2, s};

use crate::driver::Path;
use crate::scalar::private::Sealed;

/// Calls `$f::<W>(args)` with the width `$width` (an `MR` or `NR`) as a constant.
macro_rules! with_width {
    ($width:expr, $f:ident($($arg:expr),*)) => {
        match $width {
            6 => $f::<E, 6>($($arg),*),
            8 => $f::<E, 8>($($arg),*),
            16 => $f::<E, 16>($($arg),*),
            w => unreachable!("no panel is {w} wide"),
        }
    };
}

/// Packs `b` (`kc × nc`) into `ceil(nc / NR)` panels of `kc × NR`: panel `q` holds columns
/// `q·NR ..`, element `(p, j)` at `q·kc·NR + p·NR + j`. Columns past `nc` are zeros.
pub(crate) fn pack_b<E: Sealed>(path: Path, b: ArrayView2<'_, E>, out: &mut [E]) {
    let [rs, cs] = [b.strides()[0], b.strides()[1]];
    if cs == 1 || (rs != 1 && cs.unsigned_abs() <= rs.unsigned_abs()) {
        // A row of `b` is one step of every panel.
        with_width!(E::NR, pack_steps(b, out));
    } else {
        // A column of `b` (a transposed `b`) is one lane of one panel.
        pack_lanes(path, b.reversed_axes(), E::NR, out);
    }
}

/// Packs `a` (`mc × kc`) into `ceil(mc / MR)` panels of `MR × kc`: panel `q` holds rows
/// `q·MR ..`, element `(i, p)` at `q·kc·MR + p·MR + i`. Rows past `mc` are zeros.
pub(crate) fn pack_a<E: Sealed>(path: Path, a: ArrayView2<'_, E>, out: &mut [E]) {
    let [rs, cs] = [a.strides()[0], a.strides()[1]];
    if rs == 1 || (cs != 1 && rs.unsigned_abs() <= cs.unsigned_abs()) {
        // A column of `a` (a transposed `a`) is one step of every panel.
        with_width!(E::MR, pack_steps(a.reversed_axes(), out));
    } else {
        // A row of `a` is one lane of one panel.
        pack_lanes(path, a, E::MR, out);
    }
}

/// Packs `x` (`k × w`, one step of `k` per row) into panels `WIDTH` wide: element `(p, l)` at
/// `(l / WIDTH)·k·WIDTH + p·WIDTH + l % WIDTH`, the lanes past `w` zero.
fn pack_steps<E: Sealed, const WIDTH: usize>(x: ArrayView2<'_, E>, out: &mut [E]) {
    let (k, w) = x.dim();
    let panel = k * WIDTH;
    let last = (w / WIDTH) * panel;
    for (p, step) in x.rows().into_iter().enumerate() {
        prefetch_step(&x, p + PREFETCH_STEPS_AHEAD);
        match step.to_slice() {
            Some(step) => {
                // Chunks of a WIDTH known at compile time: copied inline, not by `memcpy`.
                let mut chunks = step.chunks_exact(WIDTH);
                for (q, chunk) in chunks.by_ref().enumerate() {
                    out[q * panel + p * WIDTH..][..WIDTH].copy_from_slice(chunk);
                }
                let tail = chunks.remainder();
                if !tail.is_empty() {
                    // The last panel's step with its padding: a loop of fixed length, not a
                    // `memcpy` and a `memset` of a few elements each.
                    let dst = &mut out[last + p * WIDTH..][..WIDTH];
                    for (l, o) in dst.iter_mut().enumerate() {
                        *o = tail.get(l).copied().unwrap_or(E::ZERO);
                    }
                }
            }
            None => {
                for (l, &v) in step.iter().enumerate() {
                    out[(l / WIDTH) * panel + p * WIDTH + l % WIDTH] = v;
                }
                if w % WIDTH != 0 {
                    out[last + p * WIDTH + w % WIDTH..][..WIDTH - w % WIDTH].fill(E::ZERO);
                }
            }
        }
    }
}

/// How many steps ahead [`pack_steps`] asks for the rows it will copy (for `b`, and for an `a`
/// stored by columns, which it packs too). The rows of a block of `b` (a layer's weight, 1-2
/// MiB, not in L2 when a training step comes back to it) are each a short run in a page of its
/// own; the hardware prefetcher, which starts afresh on each page, leaves the copy waiting on
/// L3. Measured on the W2 step's forward products (2 threads): 128×784·784×512 99 → 109
/// GFLOP/s, 128×512·512×512 107 → 117; 4, 8 and 16 steps ahead do alike.
const PREFETCH_STEPS_AHEAD: usize = 8;

/// Asks for row `p` of `x` (if there is one, and if long enough to be worth it) to be brought
/// into cache: a hint, which changes nothing else.
fn prefetch_step<E: Sealed>(x: &ArrayView2<'_, E>, p: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = x.ncols() * size_of::<E>();
        // A contiguous run of at least 4 cache lines: shorter ones are not worth a hint each.
        if x.strides()[1] == 1
            && bytes >= 256
            && let Some(row) = x.get_ptr((p, 0))
        {
            crate::avx2::prefetch_bytes(row.cast(), bytes);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, p);
}

/// Packs `x` (`w × k`, one lane of a panel per row) into panels `width` wide, as
/// [`pack_steps`] packs its transpose: element `(l, p)` at
/// `(l / width)·k·width + p·width + l % width`, the lanes past `w` zero.
fn pack_lanes<E: Sealed>(path: Path, x: ArrayView2<'_, E>, width: usize, out: &mut [E]) {
    let (w, k) = x.dim();
    let panel = k * width;
    for (q, dst) in out
        .chunks_exact_mut(panel)
        .take(w.div_ceil(width))
        .enumerate()
    {
        let lanes = x.slice(s![q * width..w.min((q + 1) * width), ..]);
        let mut slices: [&[E]; MAX_WIDTH] = [&[]; MAX_WIDTH];
        let mut contiguous = true;
        for (slot, lane) in slices.iter_mut().zip(lanes.rows()) {
            match lane.to_slice() {
                Some(lane) => *slot = lane,
                None => contiguous = false,
            }
        }
        let n = lanes.nrows();
        if n < width {
            // The padding lanes of the last panel.
            dst.fill(E::ZERO);
        }
        if contiguous && n == width && E::interleave_fast(path, &slices[..n], dst) {
            // Packed with SIMD shuffles.
        } else if contiguous {
            match (n, width) {
                (6, 6) => interleave::<E, 6>(&slices, dst),
                (8, 8) => interleave::<E, 8>(&slices, dst),
                (16, 16) => interleave::<E, 16>(&slices, dst),
                _ => interleave_some(&slices[..n], width, dst),
            }
        } else {
            for (l, lane) in lanes.rows().into_iter().enumerate() {
                let column = dst[l..].iter_mut().step_by(width);
                column.zip(lane.iter()).for_each(|(o, &v)| *o = v);
            }
        }
    }
}

/// The widest panel of any type (`NR` of `f32`).
const MAX_WIDTH: usize = 16;

/// `out[p·W + l] = lanes[l][p]` for the first `W` lanes, all of one length: a full panel.
fn interleave<E: Copy, const W: usize>(lanes: &[&[E]; MAX_WIDTH], out: &mut [E]) {
    let k = lanes[0].len();
    let lanes: [&[E]; W] = std::array::from_fn(|l| &lanes[l][..k]);
    let (out, _) = out.split_at_mut(k * W);
    // Eight steps at a time: fixed-size blocks in, fixed-size blocks out, no bounds checks in
    // between, which the compiler turns into straight moves.
    let mut steps = out.chunks_exact_mut(8 * W);
    for (block, dst) in steps.by_ref().enumerate() {
        let p = block * 8;
        let src: [[E; 8]; W] =
            std::array::from_fn(|l| lanes[l][p..p + 8].try_into().expect("8 steps"));
        for (t, step) in dst.chunks_exact_mut(W).enumerate() {
            for (o, lane) in step.iter_mut().zip(&src) {
                *o = lane[t];
            }
        }
    }
    let done = k - k % 8;
    for (t, step) in steps.into_remainder().chunks_exact_mut(W).enumerate() {
        for (o, lane) in step.iter_mut().zip(&lanes) {
            *o = lane[done + t];
        }
    }
}

/// `out[p·width + l] = lanes[l][p]`: the last, partial panel.
fn interleave_some<E: Copy>(lanes: &[&[E]], width: usize, out: &mut [E]) {
    for (l, lane) in lanes.iter().enumerate() {
        let column = out[l..].iter_mut().step_by(width);
        column.zip(lane.iter()).for_each(|(o, &v)| *o = v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn b_panels_hold_steps_of_nr_columns_padded_with_zeros() {
        // k = 3 (shorter than one block of the SIMD transpose) and 19 (two blocks and a tail).
        for k in [3, 19] {
            let b = Array2::from_shape_fn((k, 20), |(p, j)| (p * 100 + j + 1) as f32);
            // Stored transposed (row-major `bᵀ`), so that `bt.t()` is column-major. (`to_owned`
            // of a transposed view would keep its memory order, and the view be row-major.)
            let bt = Array2::from_shape_fn((20, k), |(j, p)| b[[p, j]]);
            assert_eq!(bt.t().strides(), [1, k as isize]);
            let reversed = b.slice(s![..;-1, ..;-1]).to_owned();
            let layouts = [b.view(), bt.t(), reversed.slice(s![..;-1, ..;-1])];
            for v in layouts {
                for path in [Path::detect(), Path::Portable] {
                    let mut out = vec![-1.0f32; 2 * k * 16];
                    pack_b(path, v, &mut out);
                    for q in 0..2 {
                        for p in 0..k {
                            for j in 0..16 {
                                let col = q * 16 + j;
                                let want = if col < 20 { b[[p, col]] } else { 0.0 };
                                let got = out[q * k * 16 + p * 16 + j];
                                assert_eq!(got, want, "k {k} q {q} p {p} j {j}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_panels_hold_steps_of_mr_rows_padded_with_zeros() {
        let a = Array2::from_shape_fn((8, 3), |(i, p)| (i * 100 + p + 1) as f64);
        let at = Array2::from_shape_fn((3, 8), |(p, i)| a[[i, p]]);
        assert_eq!(at.t().strides(), [1, 8]);
        let stepped = Array2::from_shape_fn((16, 6), |(i, p)| {
            if i % 2 == 0 && p % 2 == 0 {
                a[[i / 2, p / 2]]
            } else {
                f64::NAN
            }
        });
        let layouts = [a.view(), at.t(), stepped.slice(s![..;2, ..;2])];
        for v in layouts {
            let mut out = vec![-1.0f64; 2 * 3 * 6];
            pack_a(Path::detect(), v, &mut out);
            for q in 0..2 {
                for p in 0..3 {
                    for i in 0..6 {
                        let row = q * 6 + i;
                        let want = if row < 8 { a[[row, p]] } else { 0.0 };
                        assert_eq!(out[q * 18 + p * 6 + i], want, "q {q} p {p} i {i}");
                    }
                }
            }
        }
    }
}
