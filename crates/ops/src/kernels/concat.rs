//! `concat` and `stack` of any number of arrays along an axis (`torch.cat`, `torch.stack`).
//!
//! Both lay their output out as `outer` runs of one block per input, in input order: for
//! `concat` along axis `a` a block is input `i`'s `len_i·inner` elements of one outer index; for
//! `stack` it is a whole `inner`-element slab. The forward copies each input's blocks in; the
//! VJP of input `i` copies its blocks back out. Nothing is allocated.

use super::unary::store;
use crate::{Error, Float, MAX_RANK, Operands, Result, Shape, Shapes};

const CONCAT: &str = "concat";
const STACK: &str = "stack";

/// An error for an op given no inputs.
fn no_inputs(op: &str) -> Error {
    Error::WrongArity {
        op: op.to_string(),
        expected: 1,
        got: 0,
    }
}

/// The output shape of `concat` along `axis`: the inputs have one rank (at least 1) and the
/// same lengths on every other axis; the output's `axis` is the sum of theirs. At least one
/// input is needed.
pub fn concat_shape<'s>(inputs: &(impl Shapes<'s> + ?Sized), axis: usize) -> Result<Shape> {
    if inputs.count() == 0 {
        return Err(no_inputs(CONCAT));
    }
    let first = inputs.shape(0);
    if axis >= first.rank() {
        return Err(Error::AxisOutOfRange {
            op: CONCAT,
            axis,
            shape: *first,
        });
    }
    let mut total = 0usize;
    for s in (0..inputs.count()).map(|k| inputs.shape(k)) {
        let fits = s.rank() == first.rank()
            && s.dims()
                .iter()
                .zip(first.dims())
                .enumerate()
                .all(|(a, (x, y))| a == axis || x == y);
        if !fits {
            return Err(Error::ShapeMismatch {
                op: CONCAT,
                lhs: *first,
                rhs: *s,
            });
        }
        total = total
            .checked_add(s.dims()[axis])
            .ok_or(Error::TooManyElements { shape: *s })?;
    }
    first.with_dim(axis, total)
}

/// The output shape of `stack` along `axis` (`0..=rank`): the inputs have one shape, and the
/// output has a new axis of length `inputs.len()` at `axis`.
pub fn stack_shape<'s>(inputs: &(impl Shapes<'s> + ?Sized), axis: usize) -> Result<Shape> {
    if inputs.count() == 0 {
        return Err(no_inputs(STACK));
    }
    let first = inputs.shape(0);
    if axis > first.rank() {
        return Err(Error::AxisOutOfRange {
            op: STACK,
            axis,
            shape: *first,
        });
    }
    if let Some(s) = (0..inputs.count())
        .map(|k| inputs.shape(k))
        .find(|s| !s.same_as(first))
    {
        return Err(Error::ShapeMismatch {
            op: STACK,
            lhs: *first,
            rhs: *s,
        });
    }
    let rank = first.rank() + 1;
    if rank > MAX_RANK {
        return Err(Error::RankTooHigh {
            rank,
            max: MAX_RANK,
        });
    }
    let mut dims = [0usize; MAX_RANK];
    dims[..axis].copy_from_slice(&first.dims()[..axis]);
    dims[axis] = inputs.count();
    dims[axis + 1..rank].copy_from_slice(&first.dims()[axis..]);
    Shape::new(&dims[..rank])
}

/// The number of outer runs, and the block length of a `shape`-shaped input: `concat` splits at
/// `axis` (the block holds the axis), `stack` before it (the block is everything from it on).
#[inline]
fn blocks(shape: &Shape, axis: usize) -> (usize, usize) {
    let d = shape.dims();
    (d[..axis].iter().product(), d[axis..].iter().product())
}

/// Copies every input's blocks into `out`, run by run.
fn interleave<'a, E: Float>(inputs: &(impl Operands<'a, E> + ?Sized), axis: usize, out: &mut [E]) {
    if inputs.count() == 0 {
        return;
    }
    let (outer, _) = blocks(inputs.get(0).shape(), axis);
    let mut at = 0;
    for o in 0..outer {
        for x in (0..inputs.count()).map(|k| inputs.get(k)) {
            let block = blocks(x.shape(), axis).1;
            out[at..at + block].copy_from_slice(&x.data()[o * block..(o + 1) * block]);
            at += block;
        }
    }
}

/// Copies input `index`'s blocks out of `g` into `gi` (adding when `ACC`).
fn deinterleave<'a, E: Float, const ACC: bool>(
    inputs: &(impl Operands<'a, E> + ?Sized),
    axis: usize,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    let block_of = |k: usize| blocks(inputs.get(k).shape(), axis).1;
    let (outer, block) = blocks(inputs.get(index).shape(), axis);
    let run: usize = (0..inputs.count()).map(block_of).sum();
    let before: usize = (0..index).map(block_of).sum();
    for o in 0..outer {
        let src = &g[o * run + before..o * run + before + block];
        for (d, &s) in gi[o * block..(o + 1) * block].iter_mut().zip(src) {
            store::<E, ACC>(d, s);
        }
    }
}

/// `out` = the inputs joined along `axis` (shapes as [`concat_shape`] checked).
pub fn concat<'a, E: Float>(inputs: &(impl Operands<'a, E> + ?Sized), axis: usize, out: &mut [E]) {
    interleave(inputs, axis, out);
}

/// y = concat(x_0, …, x_n): dx_index = the block of dy that x_index filled. Adds into `gi`
/// when `ACC`, overwrites it otherwise.
pub fn concat_vjp<'a, E: Float, const ACC: bool>(
    inputs: &(impl Operands<'a, E> + ?Sized),
    axis: usize,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    deinterleave::<E, ACC>(inputs, axis, g, index, gi);
}

/// `out` = the inputs stacked along a new axis `axis` (shapes as [`stack_shape`] checked).
pub fn stack<'a, E: Float>(inputs: &(impl Operands<'a, E> + ?Sized), axis: usize, out: &mut [E]) {
    // Stacking at `axis` is concatenating along the same axis of the inputs seen with a new
    // axis of length 1 there: the blocks are the inputs' slabs from `axis` on.
    interleave(inputs, axis, out);
}

/// y = stack(x_0, …, x_n): dx_index = dy's slice `index` along the new axis. Adds into `gi`
/// when `ACC`, overwrites it otherwise.
pub fn stack_vjp<'a, E: Float, const ACC: bool>(
    inputs: &(impl Operands<'a, E> + ?Sized),
    axis: usize,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    deinterleave::<E, ACC>(inputs, axis, g, index, gi);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TensorRef;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// `concat` by the book: each output element's multi-index, its input found by walking the
    /// axis offsets.
    fn naive_concat(xs: &[Vec<f64>], shapes: &[Shape], axis: usize, out: &Shape) -> Vec<f64> {
        (0..out.numel())
            .map(|i| {
                let mut idx = unravel(i, out.dims());
                let mut input = 0;
                while idx[axis] >= shapes[input].dims()[axis] {
                    idx[axis] -= shapes[input].dims()[axis];
                    input += 1;
                }
                xs[input][ravel(&idx, shapes[input].dims())]
            })
            .collect()
    }

    /// `stack` by the book: drop the new axis's index to find the input and its element.
    fn naive_stack(xs: &[Vec<f64>], s: &Shape, axis: usize, out: &Shape) -> Vec<f64> {
        (0..out.numel())
            .map(|i| {
                let mut idx = unravel(i, out.dims());
                let input = idx.remove(axis);
                xs[input][ravel(&idx, s.dims())]
            })
            .collect()
    }

    /// Checks the forward against `naive` and each input's VJP against finite differences.
    fn check(shapes: &[Shape], axis: usize, stacked: bool, seed: u64) -> f64 {
        let refs: Vec<&Shape> = shapes.iter().collect();
        let out = if stacked {
            stack_shape(&refs, axis).unwrap()
        } else {
            concat_shape(&refs, axis).unwrap()
        };
        let xs: Vec<Vec<f64>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| values(s.numel(), seed + i as u64))
            .collect();
        let run = |xs: &[Vec<f64>]| {
            let ts: Vec<TensorRef<'_, f64>> = shapes
                .iter()
                .zip(xs)
                .map(|(s, x)| TensorRef::trusted(s, x))
                .collect();
            let mut y = vec![0.0; out.numel()];
            if stacked {
                stack(&ts, axis, &mut y)
            } else {
                concat(&ts, axis, &mut y)
            }
            y
        };
        let want = if stacked {
            naive_stack(&xs, &shapes[0], axis, &out)
        } else {
            naive_concat(&xs, shapes, axis, &out)
        };
        assert_eq!(run(&xs), want, "{shapes:?} {axis} {stacked}");
        let g = values(out.numel(), seed + 99);
        let mut worst = 0.0f64;
        for index in 0..shapes.len() {
            let with = |v: &[f64]| {
                let mut xs = xs.clone();
                xs[index] = v.to_vec();
                xs
            };
            let f = |v: &[f64]| run(&with(v));
            let vjp = |v: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
                let xs = with(v);
                let ts: Vec<TensorRef<'_, f64>> = shapes
                    .iter()
                    .zip(&xs)
                    .map(|(s, x)| TensorRef::trusted(s, x))
                    .collect();
                match (stacked, acc) {
                    (false, true) => concat_vjp::<f64, true>(&ts, axis, g, index, gi),
                    (false, false) => concat_vjp::<f64, false>(&ts, axis, g, index, gi),
                    (true, true) => stack_vjp::<f64, true>(&ts, axis, g, index, gi),
                    (true, false) => stack_vjp::<f64, false>(&ts, axis, g, index, gi),
                }
            };
            worst = worst.max(fd_error(&f, &vjp, &xs[index], &g));
        }
        worst
    }

    #[test]
    fn concat_and_stack_match_the_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        let cases: &[(&[&[usize]], usize)] = &[
            (&[&[2, 3], &[4, 3]], 0),
            (&[&[2, 3], &[2, 1], &[2, 0], &[2, 2]], 1),
            (&[&[2, 1, 3], &[2, 4, 3]], 1),
            (&[&[5]], 0),
            (&[&[0, 3], &[2, 3]], 0),
        ];
        for &(dims, axis) in cases {
            let shapes: Vec<Shape> = dims.iter().map(|d| shape(d)).collect();
            worst = worst.max(check(&shapes, axis, false, 1));
        }
        let cases: &[(&[usize], usize, usize)] = &[
            (&[2, 3], 0, 3),
            (&[2, 3], 1, 2),
            (&[2, 3], 2, 4),
            (&[], 0, 3),
            (&[0, 2], 1, 2),
            (&[4], 1, 1),
        ];
        for &(d, axis, n) in cases {
            worst = worst.max(check(&vec![shape(d); n], axis, true, 2));
        }
        assert!(worst < FD_TOL, "{worst}");
        eprintln!("fd worst concat/stack: {worst:e}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let (a, b) = (shape(&[2, 3]), shape(&[3, 3]));
        assert!(concat_shape(&[&a, &b], 0).is_ok());
        assert!(matches!(
            concat_shape(&[&a, &b], 1),
            Err(Error::ShapeMismatch { op: CONCAT, .. })
        ));
        assert!(matches!(
            concat_shape(&[&a, &shape(&[2, 3, 1])], 0),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            concat_shape(&[&a], 2),
            Err(Error::AxisOutOfRange { axis: 2, .. })
        ));
        assert!(matches!(
            concat_shape(&[&Shape::SCALAR], 0),
            Err(Error::AxisOutOfRange { .. })
        ));
        assert!(matches!(
            concat_shape(&[], 0),
            Err(Error::WrongArity { got: 0, .. })
        ));
        assert!(matches!(
            stack_shape(&[], 0),
            Err(Error::WrongArity { got: 0, .. })
        ));
        assert!(matches!(
            stack_shape(&[&a, &b], 0),
            Err(Error::ShapeMismatch { op: STACK, .. })
        ));
        assert!(matches!(
            stack_shape(&[&a], 3),
            Err(Error::AxisOutOfRange { axis: 3, .. })
        ));
        let six = shape(&[1; 6]);
        assert!(matches!(
            stack_shape(&[&six], 0),
            Err(Error::RankTooHigh { rank: 7, .. })
        ));
        let huge = shape(&[usize::MAX / 2 + 1, 0]);
        assert!(matches!(
            concat_shape(&[&huge, &huge], 0),
            Err(Error::TooManyElements { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn random_shapes(
            dims in proptest::collection::vec(0usize..4, 1..4),
            lens in proptest::collection::vec(0usize..4, 1..4),
            axis_pick in 0usize..4,
            seed in 0u64..1000,
        ) {
            let axis = axis_pick % dims.len();
            let shapes: Vec<Shape> = lens
                .iter()
                .map(|&l| {
                    let mut d = dims.clone();
                    d[axis] = l;
                    shape(&d)
                })
                .collect();
            prop_assert!(check(&shapes, axis, false, seed) < FD_TOL);
            let n = lens.len();
            prop_assert!(check(&vec![shape(&dims); n], axis_pick % (dims.len() + 1), true, seed) < FD_TOL);
        }
    }
}
