//! `pad`: widen every axis with a constant (`torch.nn.functional.pad(mode="constant")`, with
//! one `(before, after)` pair per axis in axis order rather than PyTorch's last-axis-first
//! list; pads are counts, so PyTorch's negative pads, which crop, are `slice`'s job here).

use super::unary::store;
use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const PAD: &str = "pad";

/// The output shape: each axis grows by its `before + after`. There must be exactly one pair
/// per axis.
///
/// ```
/// use wengert_ops::{kernels::pad::pad_shape, Shape};
/// let s = Shape::new(&[2, 3]).unwrap();
/// assert_eq!(pad_shape(&s, &[(0, 1), (2, 2)]).unwrap().dims(), &[3, 7]);
/// ```
pub fn pad_shape(x: &Shape, pads: &[(usize, usize)]) -> Result<Shape> {
    if pads.len() != x.rank() {
        return Err(Error::InvalidArgument {
            op: PAD,
            argument: "pads",
            value: pads.len() as f64,
            requirement: format!("one (before, after) pair per axis of {x} is needed"),
        });
    }
    let mut dims = [0usize; MAX_RANK];
    for (axis, (&d, &(before, after))) in x.dims().iter().zip(pads).enumerate() {
        dims[axis] = d
            .checked_add(before)
            .and_then(|d| d.checked_add(after))
            .ok_or(Error::TooManyElements { shape: *x })?;
    }
    Shape::new(&dims[..x.rank()])
}

/// The offset of `x`'s first element in the output, and the output's strides (which walk `x`'s
/// elements in the output).
fn placement(x: &Shape, pads: &[(usize, usize)]) -> Option<(usize, [usize; MAX_RANK])> {
    let out = pad_shape(x, pads).ok()?;
    let strides = out.strides();
    let base = pads
        .iter()
        .zip(&strides)
        .map(|(&(before, _), &s)| before * s)
        .sum();
    Some((base, strides))
}

/// `out` = `x` surrounded by `value` (as [`pad_shape`] checked).
pub fn pad<E: Float>(x: TensorRef<'_, E>, pads: &[(usize, usize)], value: E, out: &mut [E]) {
    let Some((base, strides)) = placement(x.shape(), pads) else {
        return;
    };
    out.fill(value);
    let data = x.data();
    walk2(x.shape().dims(), &strides, &[0; MAX_RANK], |i, o, _| {
        out[base + o] = data[i]
    });
}

/// y = pad(x): dx = dy at `x`'s place in the output (the padding takes no gradient; the
/// constant is not an input). Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn pad_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    pads: &[(usize, usize)],
    g: &[E],
    gi: &mut [E],
) {
    let Some((base, strides)) = placement(x, pads) else {
        return;
    };
    walk2(x.dims(), &strides, &[0; MAX_RANK], |i, o, _| {
        store::<E, ACC>(&mut gi[i], g[base + o])
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    /// A shape and its pads.
    type Case = (&'static [usize], &'static [(usize, usize)]);

    fn check(dims: &[usize], pads: &[(usize, usize)], seed: u64) -> f64 {
        let s = Shape::new(dims).unwrap();
        let out = pad_shape(&s, pads).unwrap();
        let x = values(s.numel(), seed);
        let f = |x: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            pad(TensorRef::trusted(&s, x), pads, 0.5, &mut y);
            y
        };
        // By the book: an output element inside the original block reads it, others are 0.5.
        let want: Vec<f64> = (0..out.numel())
            .map(|i| {
                let idx = unravel(i, out.dims());
                let inside: Option<Vec<usize>> = idx
                    .iter()
                    .zip(pads)
                    .zip(dims)
                    .map(|((&k, &(b, _)), &d)| (k >= b && k - b < d).then(|| k - b))
                    .collect();
                inside.map_or(0.5, |src| x[ravel(&src, dims)])
            })
            .collect();
        assert_eq!(f(&x), want, "{dims:?} {pads:?}");
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                pad_vjp::<f64, true>(&s, pads, g, gi)
            } else {
                pad_vjp::<f64, false>(&s, pads, g, gi)
            }
        };
        fd_error(&f, &vjp, &x, &values(out.numel(), seed + 1))
    }

    #[test]
    fn pads_match_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[Case] = &[
            (&[2, 3], &[(1, 0), (2, 1)]),
            (&[2, 3], &[(0, 0), (0, 0)]),
            (&[4], &[(3, 3)]),
            (&[0, 2], &[(1, 1), (0, 1)]),
            (&[], &[]),
            (&[1, 2, 1], &[(0, 1), (1, 0), (2, 2)]),
        ];
        for &(dims, pads) in cases {
            let err = check(dims, pads, 2);
            assert!(err < FD_TOL, "{dims:?} {pads:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst pad: {worst:e}");
    }

    #[test]
    fn bad_pads_are_errors() {
        let s = Shape::new(&[2, 3]).unwrap();
        assert!(matches!(
            pad_shape(&s, &[(1, 1)]),
            Err(Error::InvalidArgument {
                argument: "pads",
                ..
            })
        ));
        assert!(matches!(
            pad_shape(&s, &[(0, 0), (usize::MAX, 1)]),
            Err(Error::TooManyElements { .. })
        ));
        assert!(matches!(
            pad_shape(&s, &[(usize::MAX / 4, 0), (usize::MAX / 4, 0)]),
            Err(Error::TooManyElements { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_pads(
            dims in proptest::collection::vec(0usize..4, 0..4),
            pads in proptest::collection::vec((0usize..3, 0usize..3), 4),
            seed in 0u64..1000,
        ) {
            prop_assert!(check(&dims, &pads[..dims.len()], seed) < FD_TOL);
        }
    }
}
