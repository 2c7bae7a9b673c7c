//! Softmax and log-softmax along the last axis, stabilised by subtracting each row's maximum.

use crate::{Float, TensorRef};

/// The largest element of a row (`-inf` for an empty row). NaN does not win the comparison,
/// but it still poisons the row's sum, so NaN in gives NaN out.
#[inline]
pub(crate) fn row_max<E: Float>(row: &[E]) -> E {
    row.iter()
        .fold(E::neg_infinity(), |m, &v| if v > m { v } else { m })
}

/// `ln Σ exp(row)`, computed as `max + ln Σ exp(row - max)` so that it never overflows.
#[inline]
pub(crate) fn log_sum_exp<E: Float>(row: &[E]) -> E {
    let m = row_max(row);
    if m == E::infinity() {
        return m;
    }
    let s: E = row.iter().map(|&v| (v - m).exp()).sum();
    m + s.ln()
}

fn rows<E: Float>(x: TensorRef<'_, E>) -> usize {
    x.shape().last_dim()
}

/// `out = softmax(x)` along the last axis.
pub fn softmax<E: Float>(x: TensorRef<'_, E>, out: &mut [E]) {
    let c = rows(x);
    if c == 0 {
        return;
    }
    for (row, dst) in x.data().chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let m = row_max(row);
        let mut s = E::zero();
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = (v - m).exp();
            s += *d;
        }
        let inv = E::one() / s;
        for d in dst {
            *d *= inv;
        }
    }
}

/// `out = log_softmax(x)` along the last axis.
pub fn log_softmax<E: Float>(x: TensorRef<'_, E>, out: &mut [E]) {
    let c = rows(x);
    if c == 0 {
        return;
    }
    for (row, dst) in x.data().chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let lse = log_sum_exp(row);
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = v - lse;
        }
    }
}

/// y = softmax x: dx += y·(dy - Σ dy·y), row by row.
pub fn softmax_vjp<E: Float>(y: TensorRef<'_, E>, g: &[E], gi: &mut [E]) {
    let c = rows(y);
    if c == 0 {
        return;
    }
    for ((yr, gr), dr) in y
        .data()
        .chunks_exact(c)
        .zip(g.chunks_exact(c))
        .zip(gi.chunks_exact_mut(c))
    {
        let dot: E = yr.iter().zip(gr).map(|(&y, &g)| y * g).sum();
        for ((d, &y), &g) in dr.iter_mut().zip(yr).zip(gr) {
            *d += y * (g - dot);
        }
    }
}

/// y = log_softmax x: dx += dy - exp(y)·Σ dy, row by row.
pub fn log_softmax_vjp<E: Float>(y: TensorRef<'_, E>, g: &[E], gi: &mut [E]) {
    let c = rows(y);
    if c == 0 {
        return;
    }
    for ((yr, gr), dr) in y
        .data()
        .chunks_exact(c)
        .zip(g.chunks_exact(c))
        .zip(gi.chunks_exact_mut(c))
    {
        let total: E = gr.iter().copied().sum();
        for ((d, &y), &g) in dr.iter_mut().zip(yr).zip(gr) {
            *d += g - y.exp() * total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    #[test]
    fn softmax_of_huge_logits_is_finite() {
        let s = Shape::new(&[1, 3]).unwrap();
        let x = [1e4f32, -1e4, 1e4];
        let mut out = [0.0f32; 3];
        softmax(TensorRef::trusted(&s, &x), &mut out);
        assert_eq!(out, [0.5, 0.0, 0.5]);
    }

    #[test]
    fn log_sum_exp_does_not_overflow() {
        assert_eq!(log_sum_exp(&[1e4f32, 1e4]), 1e4 + 2f32.ln());
    }
}
