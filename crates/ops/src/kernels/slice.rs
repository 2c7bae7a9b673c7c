//! `slice` (a `start:end:step` range per axis, as Python's and NumPy's basic slicing) and
//! `narrow` (PyTorch's `narrow(axis, start, length)`), with VJPs that put the gradient back in
//! place and zeros elsewhere.
//!
//! Bounds: `slice` follows Python — a negative `start` or `end` counts from the end, and a
//! bound still outside `[0, len]` is clamped, so a range past the end is shorter or empty
//! rather than an error; only a step below 1 is an error (PyTorch has no negative steps).
//! `narrow` follows PyTorch — a negative `start` counts from the end, and a range that does not
//! fit in the axis is an error.

use super::unary::store;
use super::walk::walk2;
use crate::{Error, Float, MAX_RANK, Result, Shape, TensorRef};

const SLICE: &str = "slice";
const NARROW: &str = "narrow";

/// One axis of a slice: the elements `start, start + step, …` before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceAxis {
    /// The first element; negative counts from the end.
    pub start: i64,
    /// One past the last element; negative counts from the end. [`i64::MAX`] is "to the end".
    pub end: i64,
    /// The distance between elements taken, at least 1.
    pub step: i64,
}

impl SliceAxis {
    /// The whole axis, `::`.
    pub const FULL: SliceAxis = SliceAxis {
        start: 0,
        end: i64::MAX,
        step: 1,
    };

    /// `start..end` with step 1.
    pub fn range(start: i64, end: i64) -> SliceAxis {
        SliceAxis {
            start,
            end,
            step: 1,
        }
    }

    /// The first element, step and count on an axis of length `len`, by Python's rules.
    pub fn resolve(self, len: usize) -> (usize, usize, usize) {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let clamp = |b: i64| {
            let b = if b < 0 { b.saturating_add(len_i) } else { b };
            b.clamp(0, len_i)
        };
        let (start, end) = (clamp(self.start), clamp(self.end));
        let step = self.step.max(1);
        let count = if end > start {
            (end - start - 1) / step + 1
        } else {
            0
        };
        // Both fit in usize: they lie in [0, len].
        (start as usize, step as usize, count as usize)
    }
}

/// Where a slice starts in its input and the input strides that walk it, with the output
/// shape.
#[derive(Debug, Clone, Copy)]
struct Window {
    base: usize,
    strides: [usize; MAX_RANK],
    out: Shape,
}

/// Resolves one range per leading axis of `x` (axes past `ranges` are taken whole).
fn window(op: &'static str, x: &Shape, ranges: &[SliceAxis]) -> Result<Window> {
    if ranges.len() > x.rank() {
        return Err(Error::WrongRank {
            op,
            expected: "at least one axis per slice range",
            shape: *x,
        });
    }
    let own = x.strides();
    let mut strides = [0usize; MAX_RANK];
    let mut dims = [0usize; MAX_RANK];
    let mut base = 0;
    for axis in 0..x.rank() {
        let r = ranges.get(axis).copied().unwrap_or(SliceAxis::FULL);
        if r.step < 1 {
            return Err(Error::InvalidArgument {
                op,
                argument: "step",
                value: r.step as f64,
                requirement: format!("it must be at least 1 (axis {axis} of {x})"),
            });
        }
        let (start, step, count) = r.resolve(x.dims()[axis]);
        base += start * own[axis];
        strides[axis] = step * own[axis];
        dims[axis] = count;
    }
    Ok(Window {
        base,
        strides,
        out: Shape::new(&dims[..x.rank()])?,
    })
}

/// The output shape of `x` sliced by `ranges`, one per leading axis (later axes whole); a step
/// below 1, or more ranges than axes, is an error.
///
/// ```
/// use wengert_ops::{kernels::slice::{slice_shape, SliceAxis}, Shape};
/// let s = Shape::new(&[5, 4]).unwrap();
/// let r = [SliceAxis { start: -4, end: 100, step: 2 }];
/// assert_eq!(slice_shape(&s, &r).unwrap().dims(), &[2, 4]);
/// ```
pub fn slice_shape(x: &Shape, ranges: &[SliceAxis]) -> Result<Shape> {
    Ok(window(SLICE, x, ranges)?.out)
}

/// `out` = `x` sliced by `ranges` (as [`slice_shape`] checked them).
pub fn slice<E: Float>(x: TensorRef<'_, E>, ranges: &[SliceAxis], out: &mut [E]) {
    if let Ok(w) = window(SLICE, x.shape(), ranges) {
        copy_out(x.data(), &w, out);
    }
}

/// `y = x[ranges]`: `dx = dy` at the sliced positions, 0 elsewhere. Adds into `gi` when `ACC`,
/// overwrites it otherwise.
pub fn slice_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    ranges: &[SliceAxis],
    g: &[E],
    gi: &mut [E],
) {
    if let Ok(w) = window(SLICE, x, ranges) {
        copy_back::<E, ACC>(&w, g, gi);
    }
}

fn copy_out<E: Float>(data: &[E], w: &Window, out: &mut [E]) {
    let base = w.base;
    walk2(w.out.dims(), &w.strides, &[0; MAX_RANK], |i, s, _| {
        out[i] = data[base + s]
    });
}

fn copy_back<E: Float, const ACC: bool>(w: &Window, g: &[E], gi: &mut [E]) {
    if !ACC {
        gi.fill(E::zero());
    }
    let base = w.base;
    // Steps of at least 1 reach every input element at most once.
    walk2(w.out.dims(), &w.strides, &[0; MAX_RANK], |i, s, _| {
        store::<E, ACC>(&mut gi[base + s], g[i])
    });
}

/// The window of `narrow`, or an error naming the argument that does not fit.
fn narrow_window(x: &Shape, axis: usize, start: i64, length: usize) -> Result<Window> {
    let len = x.dim(axis).ok_or(Error::AxisOutOfRange {
        op: NARROW,
        axis,
        shape: *x,
    })?;
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let from = if start < 0 {
        start.saturating_add(len_i)
    } else {
        start
    };
    if !(0..=len_i).contains(&from) {
        return Err(Error::InvalidArgument {
            op: NARROW,
            argument: "start",
            value: start as f64,
            requirement: format!("it must lie in -{len}..={len} for axis {axis} of {x}"),
        });
    }
    let from = from as usize;
    if length > len - from {
        return Err(Error::InvalidArgument {
            op: NARROW,
            argument: "length",
            value: length as f64,
            requirement: format!(
                "start {from} + length must be at most {len}, the length of axis {axis} of {x}"
            ),
        });
    }
    let mut ranges = [SliceAxis::FULL; MAX_RANK];
    // Both fit in i64: they are at most `len`.
    ranges[axis] = SliceAxis::range(from as i64, (from + length) as i64);
    window(NARROW, x, &ranges[..x.rank()])
}

/// The output shape of `narrow`: `x` with `axis` cut to `length` elements from `start`
/// (negative counts from the end); a range that does not fit is an error.
pub fn narrow_shape(x: &Shape, axis: usize, start: i64, length: usize) -> Result<Shape> {
    Ok(narrow_window(x, axis, start, length)?.out)
}

/// `out` = `x.narrow(axis, start, length)` (as [`narrow_shape`] checked).
pub fn narrow<E: Float>(
    x: TensorRef<'_, E>,
    axis: usize,
    start: i64,
    length: usize,
    out: &mut [E],
) {
    if let Ok(w) = narrow_window(x.shape(), axis, start, length) {
        copy_out(x.data(), &w, out);
    }
}

/// y = x.narrow(axis, start, length): dx = dy in the range, 0 elsewhere. Adds into `gi` when
/// `ACC`, overwrites it otherwise.
pub fn narrow_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    axis: usize,
    start: i64,
    length: usize,
    g: &[E],
    gi: &mut [E],
) {
    if let Ok(w) = narrow_window(x, axis, start, length) {
        copy_back::<E, ACC>(&w, g, gi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// Python's `range(*slice(start, end, step).indices(len))` for step > 0, written out.
    fn python_indices(r: SliceAxis, len: usize) -> Vec<usize> {
        let len = len as i64;
        let fix = |b: i64| {
            if b < 0 { (b + len).max(0) } else { b.min(len) }
        };
        let (mut i, end) = (fix(r.start), fix(r.end));
        let mut out = vec![];
        while i < end {
            out.push(i as usize);
            i += r.step;
        }
        out
    }

    fn naive(x: &[f64], s: &Shape, ranges: &[SliceAxis]) -> (Vec<usize>, Vec<f64>) {
        let picks: Vec<Vec<usize>> = (0..s.rank())
            .map(|a| {
                python_indices(
                    ranges.get(a).copied().unwrap_or(SliceAxis::FULL),
                    s.dims()[a],
                )
            })
            .collect();
        let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let n: usize = dims.iter().product();
        let y = (0..n)
            .map(|i| {
                let idx = unravel(i, &dims);
                let src: Vec<usize> = idx.iter().zip(&picks).map(|(&k, p)| p[k]).collect();
                x[ravel(&src, s.dims())]
            })
            .collect();
        (dims, y)
    }

    fn check(dims: &[usize], ranges: &[SliceAxis], seed: u64) -> f64 {
        let s = shape(dims);
        let x = values(s.numel(), seed);
        let out = slice_shape(&s, ranges).unwrap();
        let (want_dims, want) = naive(&x, &s, ranges);
        assert_eq!(out.dims(), &want_dims[..], "{dims:?} {ranges:?}");
        let f = |x: &[f64]| {
            let mut y = vec![0.0; out.numel()];
            slice(TensorRef::trusted(&s, x), ranges, &mut y);
            y
        };
        assert_eq!(f(&x), want);
        let vjp = |_: &[f64], g: &[f64], gi: &mut [f64], acc: bool| {
            if acc {
                slice_vjp::<f64, true>(&s, ranges, g, gi)
            } else {
                slice_vjp::<f64, false>(&s, ranges, g, gi)
            }
        };
        fd_error(&f, &vjp, &x, &values(out.numel(), seed + 1))
    }

    fn r(start: i64, end: i64, step: i64) -> SliceAxis {
        SliceAxis { start, end, step }
    }

    #[test]
    fn slices_follow_python_and_pull_back_in_place() {
        let mut worst = 0.0f64;
        let cases: &[(&[usize], &[SliceAxis])] = &[
            (&[5, 4], &[r(1, 4, 2)]),
            (&[5, 4], &[r(-3, i64::MAX, 1), r(0, 4, 3)]),
            (&[5, 4], &[r(-100, 100, 2), r(-1, -5, 1)]),
            (&[5, 4], &[r(7, 9, 1)]),
            (
                &[2, 3, 4],
                &[SliceAxis::FULL, r(1, 2, 1), r(i64::MIN, i64::MAX, 3)],
            ),
            (&[0, 3], &[r(0, 1, 1), r(1, 3, 1)]),
            (&[3], &[]),
            (&[], &[]),
        ];
        for &(dims, ranges) in cases {
            let err = check(dims, ranges, 3);
            assert!(err < FD_TOL, "{dims:?} {ranges:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst slice: {worst:e}");
    }

    #[test]
    fn narrow_is_a_checked_range() {
        let s = shape(&[3, 5]);
        let x: Vec<f64> = (0..15).map(f64::from).collect();
        let mut y = [0.0; 6];
        assert_eq!(narrow_shape(&s, 1, -3, 2).unwrap().dims(), &[3, 2]);
        narrow(TensorRef::trusted(&s, &x), 1, -3, 2, &mut y);
        assert_eq!(y, [2.0, 3.0, 7.0, 8.0, 12.0, 13.0]);
        let mut gi = [f64::NAN; 15];
        narrow_vjp::<f64, false>(&s, 1, -3, 2, &[1.0; 6], &mut gi);
        assert_eq!(gi.iter().sum::<f64>(), 6.0);
        assert_eq!(&gi[2..4], &[1.0, 1.0]);
        assert_eq!(narrow_shape(&s, 0, 3, 0).unwrap().dims(), &[0, 5]);
        for (axis, start, len, arg) in
            [(1, 4, 2, "length"), (1, 6, 0, "start"), (0, -4, 1, "start")]
        {
            assert!(
                matches!(
                    narrow_shape(&s, axis, start, len),
                    Err(Error::InvalidArgument { op: NARROW, argument, .. }) if argument == arg
                ),
                "{axis} {start} {len}"
            );
        }
        assert!(matches!(
            narrow_shape(&s, 2, 0, 1),
            Err(Error::AxisOutOfRange { axis: 2, .. })
        ));
    }

    #[test]
    fn bad_slices_are_errors() {
        let s = shape(&[3, 5]);
        assert!(matches!(
            slice_shape(&s, &[SliceAxis::FULL, r(0, 3, 0)]),
            Err(Error::InvalidArgument {
                argument: "step",
                ..
            })
        ));
        assert!(matches!(
            slice_shape(&s, &[r(0, 3, -1)]),
            Err(Error::InvalidArgument {
                argument: "step",
                ..
            })
        ));
        assert!(matches!(
            slice_shape(&s, &[SliceAxis::FULL; 3]),
            Err(Error::WrongRank { op: SLICE, .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_slices(
            dims in proptest::collection::vec(0usize..5, 1..4),
            bounds in proptest::collection::vec((-7i64..7, -7i64..7, 1i64..4), 0..4),
            seed in 0u64..1000,
        ) {
            let ranges: Vec<SliceAxis> = bounds
                .iter()
                .take(dims.len())
                .map(|&(start, end, step)| SliceAxis { start, end, step })
                .collect();
            prop_assert!(check(&dims, &ranges, seed) < FD_TOL);
        }
    }
}
