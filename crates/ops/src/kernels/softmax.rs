//! Softmax and log-softmax along the last axis, stabilised by subtracting each row's maximum.

use crate::{Float, TensorRef};

/// The largest element of a row (`-inf` for an empty row). NaN does not win the comparison,
/// but it still poisons the row's sum, so NaN in gives NaN out.
#[inline]
pub(crate) fn row_max<E: Float>(row: &[E]) -> E {
    row.iter()
        .fold(E::neg_infinity(), |m, &v| if v > m { v } else { m })
}

/// A row's maximum `m` and `Σ exp(row - m)`, from which `softmax = exp(v - m) / Σ` and
/// `log_softmax = (v - m) - ln Σ` follow without overflow.
///
/// Callers keep `m` and `ln Σ` apart on purpose: folding them into `logsumexp = m + ln Σ`
/// first rounds `ln Σ` to the precision of `m`, which for logits of 1e4 in f32 is an error of
/// up to 5e-4 in every log-probability and in every softmax recovered as `exp(v - logsumexp)`.
/// An infinite maximum makes `v - m` NaN, so such a row comes out NaN.
#[inline]
pub(crate) fn max_and_sum_exp<E: Float>(row: &[E]) -> (E, E) {
    let m = row_max(row);
    let s = row.iter().map(|&v| (v - m).exp()).sum();
    (m, s)
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
        let (m, s) = max_and_sum_exp(row);
        let ln_s = s.ln();
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = (v - m) - ln_s;
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
    fn log_softmax_of_huge_logits_keeps_full_precision() {
        let s = Shape::new(&[1, 3]).unwrap();
        let x = [1e4f32, 1e4, -1e4];
        let mut out = [0.0f32; 3];
        log_softmax(TensorRef::trusted(&s, &x), &mut out);
        assert_eq!(out, [-2f32.ln(), -2f32.ln(), -2e4 - 2f32.ln()]);
    }
}
