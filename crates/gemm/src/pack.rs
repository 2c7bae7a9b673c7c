//! Packing blocks of `a` and `b` into the panel layouts the micro-kernels read: contiguous,
//! one step of `k` after another, zero-padded to whole panels. Packing reads every layout
//! (contiguous rows, contiguous columns, any other strides) with safe slices and iterators.

use ndarray::ArrayView2;

use crate::scalar::private::Sealed;

/// Packs `b` (`kc × nc`) into `ceil(nc / NR)` panels of `kc × NR`: panel `q` holds columns
/// `q·NR ..`, element `(p, j)` at `q·kc·NR + p·NR + j`. Columns past `nc` are zeros.
pub(crate) fn pack_b<E: Sealed>(b: ArrayView2<'_, E>, out: &mut [E]) {
    let (kc, nc) = b.dim();
    let nr = E::NR;
    let panel = kc * nr;
    debug_assert!(out.len() >= nc.div_ceil(nr) * panel);
    let tail = nc % nr;
    if tail != 0 {
        // The padding columns of the last panel.
        let last = &mut out[(nc / nr) * panel..][..panel];
        for step in last.chunks_exact_mut(nr) {
            step[tail..].fill(E::ZERO);
        }
    }
    let [rs, cs] = [b.strides()[0], b.strides()[1]];
    if cs == 1 || (rs != 1 && cs.unsigned_abs() <= rs.unsigned_abs()) {
        // Along rows: a row of `b` is one step of every panel.
        for (p, row) in b.rows().into_iter().enumerate() {
            match row.to_slice() {
                Some(row) => {
                    for (q, chunk) in row.chunks(nr).enumerate() {
                        out[q * panel + p * nr..][..chunk.len()].copy_from_slice(chunk);
                    }
                }
                None => {
                    for (j, &x) in row.iter().enumerate() {
                        out[(j / nr) * panel + p * nr + j % nr] = x;
                    }
                }
            }
        }
    } else {
        // Along columns (a transposed `b`): a column is one lane of one panel.
        for (j, col) in b.columns().into_iter().enumerate() {
            let lane = out[(j / nr) * panel + j % nr..].iter_mut().step_by(nr);
            match col.to_slice() {
                Some(col) => lane.zip(col).for_each(|(o, &x)| *o = x),
                None => lane.zip(col.iter()).for_each(|(o, &x)| *o = x),
            }
        }
    }
}

/// Packs `a` (`mc × kc`) into `ceil(mc / MR)` panels of `MR × kc`: panel `q` holds rows
/// `q·MR ..`, element `(i, p)` at `q·kc·MR + p·MR + i`. Rows past `mc` are zeros.
pub(crate) fn pack_a<E: Sealed>(a: ArrayView2<'_, E>, out: &mut [E]) {
    let (mc, kc) = a.dim();
    let mr = E::MR;
    let panel = kc * mr;
    debug_assert!(out.len() >= mc.div_ceil(mr) * panel);
    let tail = mc % mr;
    if tail != 0 {
        let last = &mut out[(mc / mr) * panel..][..panel];
        for step in last.chunks_exact_mut(mr) {
            step[tail..].fill(E::ZERO);
        }
    }
    let [rs, cs] = [a.strides()[0], a.strides()[1]];
    if rs == 1 || (cs != 1 && rs.unsigned_abs() <= cs.unsigned_abs()) {
        // Along columns (a transposed `a`): a column of `a` is one step of every panel.
        for (p, col) in a.columns().into_iter().enumerate() {
            match col.to_slice() {
                Some(col) => {
                    for (q, chunk) in col.chunks(mr).enumerate() {
                        out[q * panel + p * mr..][..chunk.len()].copy_from_slice(chunk);
                    }
                }
                None => {
                    for (i, &x) in col.iter().enumerate() {
                        out[(i / mr) * panel + p * mr + i % mr] = x;
                    }
                }
            }
        }
    } else {
        // Along rows: a row of `a` is one lane of one panel.
        for (i, row) in a.rows().into_iter().enumerate() {
            let lane = out[(i / mr) * panel + i % mr..].iter_mut().step_by(mr);
            match row.to_slice() {
                Some(row) => lane.zip(row).for_each(|(o, &x)| *o = x),
                None => lane.zip(row.iter()).for_each(|(o, &x)| *o = x),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    #[test]
    fn b_panels_hold_steps_of_nr_columns_padded_with_zeros() {
        let b = Array2::from_shape_fn((3, 20), |(p, j)| (p * 100 + j + 1) as f32);
        let bt = b.t().to_owned();
        let reversed = b.slice(s![..;-1, ..;-1]).to_owned();
        let layouts = [b.view(), bt.t(), reversed.slice(s![..;-1, ..;-1])];
        for v in layouts {
            let mut out = vec![-1.0f32; 2 * 3 * 16];
            pack_b(v, &mut out);
            for q in 0..2 {
                for p in 0..3 {
                    for j in 0..16 {
                        let col = q * 16 + j;
                        let want = if col < 20 { b[[p, col]] } else { 0.0 };
                        assert_eq!(out[q * 48 + p * 16 + j], want, "q {q} p {p} j {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_panels_hold_steps_of_mr_rows_padded_with_zeros() {
        let a = Array2::from_shape_fn((8, 3), |(i, p)| (i * 100 + p + 1) as f64);
        let at = a.t().to_owned();
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
            pack_a(v, &mut out);
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
