//! Losses that reduce by the mean, as PyTorch's do: mean squared error and softmax
//! cross-entropy from logits and integer class labels.

use super::softmax::max_and_sum_exp;
use crate::{Error, Float, Result, Shape, TensorRef};

const MSE: &str = "mse";
const CROSS_ENTROPY: &str = "cross_entropy";

/// Prediction and target must have the same, non-empty shape.
pub fn mse_shape(p: &Shape, t: &Shape) -> Result<Shape> {
    if !p.same_as(t) {
        return Err(Error::ShapeMismatch {
            op: MSE,
            lhs: *p,
            rhs: *t,
        });
    }
    if p.numel() == 0 {
        return Err(Error::EmptyBatch { op: MSE, shape: *p });
    }
    Ok(Shape::SCALAR)
}

/// `mean((p - t)²)`.
pub fn mse<E: Float>(p: &[E], t: &[E]) -> E {
    let mut lanes = [E::zero(); 4];
    for (i, (&a, &b)) in p.iter().zip(t).enumerate() {
        let d = a - b;
        lanes[i % 4] += d * d;
    }
    ((lanes[0] + lanes[2]) + (lanes[1] + lanes[3])) / E::from_usize(p.len())
}

/// L = mean (p - t)²: dp += dL·2(p - t)/n, dt -= the same.
pub fn mse_vjp<E: Float>(p: &[E], t: &[E], g: E, index: usize, gi: &mut [E]) {
    let scale = g * E::from_f64(2.0) / E::from_usize(p.len());
    let sign = if index == 0 { E::one() } else { -E::one() };
    for ((d, &a), &b) in gi.iter_mut().zip(p).zip(t) {
        *d += sign * scale * (a - b);
    }
}

/// Logits `[batch, classes]` and labels `[batch]`, with at least one of each.
pub fn cross_entropy_shape(z: &Shape, labels: &Shape) -> Result<Shape> {
    if z.rank() != 2 {
        return Err(Error::WrongRank {
            op: CROSS_ENTROPY,
            expected: "2 (batch, classes)",
            shape: *z,
        });
    }
    if labels.rank() != 1 || labels.dims()[0] != z.dims()[0] {
        return Err(Error::ShapeMismatch {
            op: CROSS_ENTROPY,
            lhs: *z,
            rhs: *labels,
        });
    }
    if z.numel() == 0 {
        return Err(Error::EmptyBatch {
            op: CROSS_ENTROPY,
            shape: *z,
        });
    }
    Ok(Shape::SCALAR)
}

/// The class a stored label names, or an error saying why it names none.
fn class<E: Float>(row: usize, label: E, classes: usize) -> Result<usize> {
    let v = label.to_f64();
    if !(v >= 0.0 && v.fract() == 0.0) {
        return Err(Error::LabelNotAClass {
            op: CROSS_ENTROPY,
            row,
            label: v,
        });
    }
    if v >= classes as f64 {
        return Err(Error::LabelOutOfRange {
            op: CROSS_ENTROPY,
            row,
            label: v,
            classes,
        });
    }
    Ok(v as usize)
}

/// `mean_b (logsumexp(z_b) - z_b[label_b])`, finite for any finite logits.
pub fn cross_entropy<E: Float>(z: TensorRef<'_, E>, labels: TensorRef<'_, E>) -> Result<E> {
    let c = z.shape().last_dim();
    let mut total = 0.0f64;
    for (row, (zr, &label)) in z.data().chunks_exact(c).zip(labels.data()).enumerate() {
        let k = class(row, label, c)?;
        // (m - z_k) + ln Σ rather than logsumexp - z_k: see `max_and_sum_exp`.
        let (m, s) = max_and_sum_exp(zr);
        total += ((m - zr[k]) + s.ln()).to_f64();
    }
    Ok(E::from_f64(total / labels.data().len() as f64))
}

/// dz += dL·(softmax(z) - onehot(label)) / batch, row by row.
pub fn cross_entropy_vjp<E: Float>(
    z: TensorRef<'_, E>,
    labels: TensorRef<'_, E>,
    g: E,
    gi: &mut [E],
) {
    let c = z.shape().last_dim();
    let scale = g / E::from_usize(labels.data().len());
    for (row, ((zr, dr), &label)) in z
        .data()
        .chunks_exact(c)
        .zip(gi.chunks_exact_mut(c))
        .zip(labels.data())
        .enumerate()
    {
        let (m, s) = max_and_sum_exp(zr);
        let inv = E::one() / s;
        for (d, &v) in dr.iter_mut().zip(zr) {
            *d += scale * ((v - m).exp() * inv);
        }
        // The forward pass validated every label; a bad one here leaves only the softmax term.
        if let Ok(k) = class(row, label, c) {
            dr[k] -= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let zs = Shape::new(&[2, 4]).unwrap();
        let ls = Shape::vector(2);
        let z = [0.0f64; 8];
        let labels = [1.0, 3.0];
        let loss = cross_entropy(
            TensorRef::trusted(&zs, &z),
            TensorRef::trusted(&ls, &labels),
        )
        .unwrap();
        assert!((loss - 4f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn bad_labels_are_errors() {
        let zs = Shape::new(&[1, 3]).unwrap();
        let ls = Shape::vector(1);
        let z = [0.0f64; 3];
        for (label, want_range) in [(3.0, true), (-1.0, false), (0.5, false), (f64::NAN, false)] {
            let err = cross_entropy(
                TensorRef::trusted(&zs, &z),
                TensorRef::trusted(&ls, &[label]),
            )
            .unwrap_err();
            assert_eq!(
                matches!(err, Error::LabelOutOfRange { .. }),
                want_range,
                "{label}"
            );
        }
    }
}
