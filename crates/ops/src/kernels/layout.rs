//! Ops that move elements without changing them: transpose (reshape is a plain copy).

use super::walk::walk2;
use crate::shape::MAX_RANK;
use crate::{Error, Float, Result, Shape, TensorRef};

/// The shape of `x` with `axis0` and `axis1` exchanged.
pub fn transpose_shape(x: &Shape, axis0: usize, axis1: usize) -> Result<Shape> {
    for axis in [axis0, axis1] {
        if axis >= x.rank() {
            return Err(Error::AxisOutOfRange {
                op: "transpose",
                axis,
                shape: *x,
            });
        }
    }
    Ok(x.swapped(axis0, axis1))
}

/// Strides that read the *input* in the order of the output's elements.
fn source_strides(input: &Shape, axis0: usize, axis1: usize) -> [usize; MAX_RANK] {
    let mut strides = input.strides();
    strides.swap(axis0, axis1);
    strides
}

/// `out = x` with two axes exchanged.
pub fn transpose<E: Float>(x: TensorRef<'_, E>, axis0: usize, axis1: usize, out: &mut [E]) {
    let out_shape = x.shape().swapped(axis0, axis1);
    let src = source_strides(x.shape(), axis0, axis1);
    let data = x.data();
    walk2(out_shape.dims(), &src, &[0; MAX_RANK], |i, s, _| {
        out[i] = data[s]
    });
}

/// Adds `g` (shaped like the output) with the axes exchanged back to `gi`.
pub fn transpose_vjp<E: Float>(output: &Shape, axis0: usize, axis1: usize, g: &[E], gi: &mut [E]) {
    let input = output.swapped(axis0, axis1);
    let dst = source_strides(&input, axis0, axis1);
    walk2(output.dims(), &dst, &[0; MAX_RANK], |i, d, _| gi[d] += g[i]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_a_matrix() {
        let s = Shape::new(&[2, 3]).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 6];
        transpose(TensorRef::trusted(&s, &x), 0, 1, &mut out);
        assert_eq!(out, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
