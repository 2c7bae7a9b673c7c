//! Sums and means, over everything or along one axis.

use crate::{Error, Float, Result, Shape, TensorRef};

/// The sum of `x`, accumulated in eight interleaved lanes that are then added pairwise.
///
/// The lanes make the loop vectorisable and cut the rounding error's growth by about eight
/// against a single running sum; the fixed order keeps the result deterministic.
pub fn sum<E: Float>(x: &[E]) -> E {
    let mut lanes = [E::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += v;
    }
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

/// The output shape of a reduction along `axis`; a mean over an empty axis is an error.
pub fn axis_output_shape(
    op: &'static str,
    x: &Shape,
    axis: usize,
    keep_dim: bool,
    mean: bool,
) -> Result<Shape> {
    let Some(len) = x.dim(axis) else {
        return Err(Error::AxisOutOfRange {
            op,
            axis,
            shape: *x,
        });
    };
    if mean && len == 0 {
        return Err(Error::EmptyBatch { op, shape: *x });
    }
    if keep_dim {
        x.with_dim(axis, 1)
    } else {
        x.without_axis(axis)
    }
}

/// Splits `shape` around `axis` into (outer, len, inner) element counts.
fn split(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    )
}

/// Sums (or, with `mean`, averages) `x` along `axis` into `out`.
pub fn sum_axis<E: Float>(x: TensorRef<'_, E>, axis: usize, mean: bool, out: &mut [E]) {
    let (outer, len, inner) = split(x.shape(), axis);
    let data = x.data();
    out.fill(E::zero());
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        for a in 0..len {
            let src = &data[(o * len + a) * inner..(o * len + a + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    }
    if mean {
        let scale = E::one() / E::from_usize(len);
        for d in out {
            *d *= scale;
        }
    }
}

/// Adds `g`, broadcast back along `axis` (and divided by its length for a mean), to `gi`.
pub fn sum_axis_vjp<E: Float>(x: &Shape, axis: usize, mean: bool, g: &[E], gi: &mut [E]) {
    let (outer, len, inner) = split(x, axis);
    let scale = if mean {
        E::one() / E::from_usize(len)
    } else {
        E::one()
    };
    for o in 0..outer {
        let src = &g[o * inner..(o + 1) * inner];
        for a in 0..len {
            let dst = &mut gi[(o * len + a) * inner..(o * len + a + 1) * inner];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_is_exact_on_integers() {
        let x: Vec<f64> = (1..=1001).map(f64::from).collect();
        assert_eq!(sum(&x), 501_501.0);
        assert_eq!(sum::<f32>(&[]), 0.0);
    }

    #[test]
    fn lane_sum_beats_a_running_sum_in_f32() {
        let x = vec![0.1f32; 1 << 20];
        let exact = 0.1f32 as f64 * (1 << 20) as f64;
        let naive: f32 = x.iter().fold(0.0, |a, &b| a + b);
        let lanes = sum(&x);
        assert!((lanes as f64 - exact).abs() < (naive as f64 - exact).abs());
    }

    #[test]
    fn sum_along_the_middle_axis() {
        let s = Shape::new(&[2, 3, 2]).unwrap();
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let mut out = [0.0; 4];
        sum_axis(TensorRef::trusted(&s, &x), 1, false, &mut out);
        assert_eq!(out, [6.0, 9.0, 24.0, 27.0]);
    }
}
