//! Elementwise binary ops with NumPy broadcasting, and their VJPs (which sum the output
//! gradient back down to each input's shape).

use super::unary::store;
use super::walk::walk2;
use crate::shape::MAX_RANK;
use crate::{Error, Float, Result, Shape, TensorRef};

/// The broadcast of two shapes under NumPy's rules: align trailing axes; each pair of lengths
/// must be equal or one of them 1.
///
/// ```
/// use wengert_ops::{kernels::binary::broadcast_shape, Shape};
/// let a = Shape::new(&[4, 1, 3]).unwrap();
/// let b = Shape::new(&[5, 1]).unwrap();
/// assert_eq!(broadcast_shape("add", &a, &b).unwrap().dims(), &[4, 5, 3]);
/// ```
#[inline]
pub fn broadcast_shape(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
    if a.same_as(b) {
        return Ok(*a);
    }
    let rank = a.rank().max(b.rank());
    let mut dims = [0usize; MAX_RANK];
    for (i, d) in dims[..rank].iter_mut().enumerate() {
        let da = aligned_dim(a, rank, i);
        let db = aligned_dim(b, rank, i);
        *d = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: *a,
                    rhs: *b,
                });
            }
        };
    }
    Shape::new(&dims[..rank])
}

/// Length of `shape`'s axis that lines up with axis `i` of a rank-`rank` result (1 if none).
fn aligned_dim(shape: &Shape, rank: usize, i: usize) -> usize {
    let offset = rank - shape.rank();
    if i < offset {
        1
    } else {
        shape.dims()[i - offset]
    }
}

/// Strides that read `input` at each index of `out` (0 on broadcast axes).
pub(crate) fn broadcast_strides(input: &Shape, out: &Shape) -> [usize; MAX_RANK] {
    let own = input.strides();
    let offset = out.rank() - input.rank();
    let mut strides = [0usize; MAX_RANK];
    for (axis, &d) in input.dims().iter().enumerate() {
        if d != 1 {
            strides[axis + offset] = own[axis];
        }
    }
    strides
}

/// How `a` and `b` relate to the output, from the cheapest case to the general one.
enum Layout {
    Same,
    ScalarRhs,
    ScalarLhs,
    /// `b` is one row of the output, repeated down its leading axes (a bias); the field is the
    /// row's length.
    RowRhs(usize),
    /// `a` is one row of the output, repeated.
    RowLhs(usize),
    /// Anything else: walked with each input's broadcast strides.
    General,
}

/// Whether `x`, with its leading axes of length 1 dropped, is the output's last axes: then the
/// output is rows of `x.numel()` elements, each lined up with `x`.
#[inline]
fn is_row(x: &Shape, out: &Shape) -> bool {
    let dims = x.dims();
    let tail = &dims[dims.iter().take_while(|&&d| d == 1).count()..];
    x.numel() > 0 && !tail.is_empty() && out.dims().ends_with(tail)
}

/// Decided on element counts alone, which is exact for shapes that broadcast to `out`: an input
/// with as many elements as the output was broadcast along no axis of length above 1, so its
/// row-major order is the output's.
#[inline(always)]
fn layout(a: &Shape, b: &Shape, out: &Shape) -> Layout {
    let n = out.numel();
    match (a.numel() == n, b.numel() == n) {
        (true, true) => Layout::Same,
        (true, false) if b.numel() == 1 => Layout::ScalarRhs,
        (false, true) if a.numel() == 1 => Layout::ScalarLhs,
        (true, false) if is_row(b, out) => Layout::RowRhs(b.numel()),
        (false, true) if is_row(a, out) => Layout::RowLhs(a.numel()),
        _ => Layout::General,
    }
}

/// `out = f(a, b)` elementwise with broadcasting; `shape` is the broadcast of the inputs' shapes.
#[inline]
pub fn forward<E: Float>(
    a: TensorRef<'_, E>,
    b: TensorRef<'_, E>,
    shape: &Shape,
    out: &mut [E],
    f: impl Fn(E, E) -> E,
) {
    let (ad, bd) = (a.data(), b.data());
    match layout(a.shape(), b.shape(), shape) {
        Layout::Same => {
            for ((o, &x), &y) in out.iter_mut().zip(ad).zip(bd) {
                *o = f(x, y);
            }
        }
        Layout::ScalarRhs => {
            let y = bd[0];
            for (o, &x) in out.iter_mut().zip(ad) {
                *o = f(x, y);
            }
        }
        Layout::ScalarLhs => {
            let x = ad[0];
            for (o, &y) in out.iter_mut().zip(bd) {
                *o = f(x, y);
            }
        }
        Layout::RowRhs(cols) => {
            for (o, x) in out.chunks_exact_mut(cols).zip(ad.chunks_exact(cols)) {
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(bd) {
                    *o = f(x, y);
                }
            }
        }
        Layout::RowLhs(cols) => {
            for (o, y) in out.chunks_exact_mut(cols).zip(bd.chunks_exact(cols)) {
                for ((o, &x), &y) in o.iter_mut().zip(ad).zip(y) {
                    *o = f(x, y);
                }
            }
        }
        Layout::General => {
            let (sa, sb) = (
                broadcast_strides(a.shape(), shape),
                broadcast_strides(b.shape(), shape),
            );
            walk2(shape.dims(), &sa, &sb, |i, ia, ib| {
                out[i] = f(ad[ia], bd[ib])
            })
        }
    }
}

/// Adds the pull-back through input `index` to `gi` (`ACC`), or writes it over what `gi` held:
/// `da(g, a, b, c)` for the left input, `db(g, a, b, c)` for the right, summed over the axes
/// that input was broadcast along.
#[inline]
pub fn vjp<E: Float, const ACC: bool>(
    inputs: &[TensorRef<'_, E>],
    output: TensorRef<'_, E>,
    g: &[E],
    index: usize,
    gi: &mut [E],
    da: impl Fn(E, E, E, E) -> E,
    db: impl Fn(E, E, E, E) -> E,
) {
    let (a, b) = (inputs[0], inputs[1]);
    let (ad, bd, cd) = (a.data(), b.data(), output.data());
    let rule = |g, x, y, c| {
        if index == 0 {
            da(g, x, y, c)
        } else {
            db(g, x, y, c)
        }
    };
    match layout(a.shape(), b.shape(), output.shape()) {
        Layout::Same => {
            // Slicing every operand to one length up front lets the loop run without bounds
            // checks, and costs less than zipping four iterators on a small array.
            let n = gi.len();
            let (g, ad, bd, cd) = (&g[..n], &ad[..n], &bd[..n], &cd[..n]);
            for i in 0..n {
                store::<E, ACC>(&mut gi[i], rule(g[i], ad[i], bd[i], cd[i]));
            }
        }
        Layout::ScalarRhs => {
            let y = bd[0];
            if index == 0 {
                for (((d, &g), &x), &c) in gi.iter_mut().zip(g).zip(ad).zip(cd) {
                    store::<E, ACC>(d, rule(g, x, y, c));
                }
            } else {
                let mut acc = E::zero();
                for ((&g, &x), &c) in g.iter().zip(ad).zip(cd) {
                    acc += rule(g, x, y, c);
                }
                store::<E, ACC>(&mut gi[0], acc);
            }
        }
        Layout::ScalarLhs => {
            let x = ad[0];
            if index == 1 {
                for (((d, &g), &y), &c) in gi.iter_mut().zip(g).zip(bd).zip(cd) {
                    store::<E, ACC>(d, rule(g, x, y, c));
                }
            } else {
                let mut acc = E::zero();
                for ((&g, &y), &c) in g.iter().zip(bd).zip(cd) {
                    acc += rule(g, x, y, c);
                }
                store::<E, ACC>(&mut gi[0], acc);
            }
        }
        Layout::RowRhs(cols) => {
            let rows = g
                .chunks_exact(cols)
                .zip(ad.chunks_exact(cols))
                .zip(cd.chunks_exact(cols));
            let rows = rows.map(|((g, x), c)| (g, x, bd, c));
            if index == 0 {
                per_row::<E, ACC>(gi, cols, rows, &rule);
            } else {
                sum_rows::<E, ACC>(gi, rows, &rule);
            }
        }
        Layout::RowLhs(cols) => {
            let rows = g
                .chunks_exact(cols)
                .zip(bd.chunks_exact(cols))
                .zip(cd.chunks_exact(cols));
            let rows = rows.map(|((g, y), c)| (g, ad, y, c));
            if index == 1 {
                per_row::<E, ACC>(gi, cols, rows, &rule);
            } else {
                sum_rows::<E, ACC>(gi, rows, &rule);
            }
        }
        Layout::General => {
            let out = output.shape();
            let (sa, sb) = (
                broadcast_strides(a.shape(), out),
                broadcast_strides(b.shape(), out),
            );
            if !ACC {
                // Several output elements add into one input element: start from zero.
                gi.fill(E::zero());
            }
            walk2(output.shape().dims(), &sa, &sb, |i, ia, ib| {
                let target = if index == 0 { ia } else { ib };
                gi[target] += rule(g[i], ad[ia], bd[ib], cd[i]);
            })
        }
    }
}

/// One row of `(g, a, b, c)` per row of the output, the repeated operand's row in each.
type Rows<'a, E> = (&'a [E], &'a [E], &'a [E], &'a [E]);

/// The gradient of the input that is not repeated: row by row, `gi` (+)= `rule(g, a, b, c)`.
#[inline]
fn per_row<'a, E: Float + 'a, const ACC: bool>(
    gi: &mut [E],
    cols: usize,
    rows: impl Iterator<Item = Rows<'a, E>>,
    rule: &impl Fn(E, E, E, E) -> E,
) {
    for (gi, (g, a, b, c)) in gi.chunks_exact_mut(cols).zip(rows) {
        let (g, a, b, c) = (&g[..cols], &a[..cols], &b[..cols], &c[..cols]);
        for j in 0..cols {
            store::<E, ACC>(&mut gi[j], rule(g[j], a[j], b[j], c[j]));
        }
    }
}

/// The gradient of a repeated row: `gi[j]` (+)= Σ over rows of `rule(g, a, b, c)` at column
/// `j`, adding the rows in order, as the general walk does.
#[inline]
fn sum_rows<'a, E: Float + 'a, const ACC: bool>(
    gi: &mut [E],
    rows: impl Iterator<Item = Rows<'a, E>>,
    rule: &impl Fn(E, E, E, E) -> E,
) {
    let n = gi.len();
    let mut first = !ACC;
    for (g, a, b, c) in rows {
        let (g, a, b, c) = (&g[..n], &a[..n], &b[..n], &c[..n]);
        if first {
            for j in 0..n {
                gi[j] = rule(g[j], a[j], b[j], c[j]);
            }
            first = false;
        } else {
            for j in 0..n {
                gi[j] += rule(g[j], a[j], b[j], c[j]);
            }
        }
    }
    if first {
        // No rows at all: the sum is zero.
        gi.fill(E::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// Two operand shapes and the broadcast shape, or `None` for a mismatch.
    type Case = (&'static [usize], &'static [usize], Option<&'static [usize]>);

    #[test]
    fn broadcasting_follows_numpy() {
        let cases: &[Case] = &[
            (&[2, 3], &[3], Some(&[2, 3])),
            (&[2, 3], &[2, 1], Some(&[2, 3])),
            (&[1], &[4, 5], Some(&[4, 5])),
            (&[], &[4, 5], Some(&[4, 5])),
            (&[2, 3], &[2], None),
            (&[2, 3], &[3, 2], None),
        ];
        for &(a, b, want) in cases {
            let got = broadcast_shape("add", &shape(a), &shape(b));
            match want {
                Some(w) => assert_eq!(got.unwrap().dims(), w, "{a:?} {b:?}"),
                None => assert!(
                    matches!(got, Err(Error::ShapeMismatch { op: "add", .. })),
                    "{a:?} {b:?}"
                ),
            }
        }
    }

    #[test]
    fn bias_add_broadcasts_rows() {
        let (sa, sb) = (shape(&[2, 3]), shape(&[3]));
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [10.0, 20.0, 30.0];
        let mut out = [0.0; 6];
        forward(
            TensorRef::trusted(&sa, &a),
            TensorRef::trusted(&sb, &b),
            &sa,
            &mut out,
            |x, y| x + y,
        );
        assert_eq!(out, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    }

    #[test]
    fn bias_gradient_sums_over_rows() {
        let (sa, sb) = (shape(&[2, 3]), shape(&[3]));
        let a = [1.0; 6];
        let b = [0.0; 3];
        let c = [1.0; 6];
        let g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut gb = [0.0; 3];
        let inputs = [
            TensorRef::trusted(&sa, &a[..]),
            TensorRef::trusted(&sb, &b[..]),
        ];
        let output = TensorRef::trusted(&sa, &c[..]);
        vjp::<f64, true>(
            &inputs,
            output,
            &g,
            1,
            &mut gb,
            |g, _, _, _| g,
            |g, _, _, _| g,
        );
        assert_eq!(gb, [5.0, 7.0, 9.0]);
    }

    /// Broadcasting by the book: for each output element in row-major order, the elements of
    /// `a` and `b` it reads, found through each input's aligned axes.
    fn naive(a: &Shape, b: &Shape, out: &Shape) -> Vec<(usize, usize)> {
        let index_of = |s: &Shape, idx: &[usize]| {
            let offset = out.rank() - s.rank();
            let mut flat = 0;
            for (axis, &d) in s.dims().iter().enumerate() {
                flat = flat * d + if d == 1 { 0 } else { idx[axis + offset] };
            }
            flat
        };
        let mut pairs = Vec::new();
        let mut idx = vec![0; out.rank()];
        for _ in 0..out.numel() {
            pairs.push((index_of(a, &idx), index_of(b, &idx)));
            for axis in (0..out.rank()).rev() {
                idx[axis] += 1;
                if idx[axis] < out.dims()[axis] {
                    break;
                }
                idx[axis] = 0;
            }
        }
        pairs
    }

    #[test]
    fn every_layout_matches_broadcasting_by_the_book() {
        // The fast layouts are chosen by element counts: shapes that differ only by axes of
        // length 1 must still line up element for element.
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[1, 3]),
            (&[1, 3], &[3]),
            (&[2, 1, 3], &[2, 3]),
            (&[2, 3], &[1]),
            (&[1, 1], &[2, 3]),
            (&[], &[2, 3]),
            (&[2, 3], &[]),
            (&[4, 1], &[1, 5]),
            (&[2, 3], &[3]),
            (&[2, 3], &[2, 1]),
            (&[1, 2, 1], &[3, 1, 4]),
            (&[3], &[2, 3]),
            (&[2, 3], &[4, 2, 3]),
            (&[1, 3], &[4, 2, 3]),
            (&[4, 2, 3], &[1, 2, 3]),
            (&[2, 1], &[2, 3]),
            (&[0, 3], &[3]),
            (&[3], &[0, 3]),
        ];
        for &(da, db) in cases {
            let (sa, sb) = (shape(da), shape(db));
            let out = broadcast_shape("mul", &sa, &sb).unwrap();
            let ad: Vec<f64> = (0..sa.numel()).map(|i| 1.0 + i as f64).collect();
            let bd: Vec<f64> = (0..sb.numel()).map(|i| 0.5 - i as f64 / 7.0).collect();
            let pairs = naive(&sa, &sb, &out);
            let mut c = vec![0.0; out.numel()];
            forward(
                TensorRef::trusted(&sa, &ad),
                TensorRef::trusted(&sb, &bd),
                &out,
                &mut c,
                |x, y| x * y,
            );
            for (i, &(ia, ib)) in pairs.iter().enumerate() {
                assert_eq!(c[i], ad[ia] * bd[ib], "{da:?} {db:?} at {i}");
            }
            let g: Vec<f64> = (0..out.numel()).map(|i| 1.0 + i as f64 / 3.0).collect();
            let inputs = [TensorRef::trusted(&sa, &ad), TensorRef::trusted(&sb, &bd)];
            let output = TensorRef::trusted(&out, &c);
            for index in 0..2 {
                let len = [sa.numel(), sb.numel()][index];
                let mut want = vec![0.0; len];
                for (i, &(ia, ib)) in pairs.iter().enumerate() {
                    // d(a·b)/da = b, d(a·b)/db = a.
                    match index {
                        0 => want[ia] += g[i] * bd[ib],
                        _ => want[ib] += g[i] * ad[ia],
                    }
                }
                let da_rule = |g: f64, _: f64, y: f64, _: f64| g * y;
                let db_rule = |g: f64, x: f64, _: f64, _: f64| g * x;
                let mut overwritten = vec![f64::NAN; len];
                vjp::<f64, false>(
                    &inputs,
                    output,
                    &g,
                    index,
                    &mut overwritten,
                    da_rule,
                    db_rule,
                );
                let mut added = vec![1.0; len];
                vjp::<f64, true>(&inputs, output, &g, index, &mut added, da_rule, db_rule);
                for k in 0..len {
                    let tol = 1e-12 * want[k].abs().max(1.0);
                    assert!(
                        (overwritten[k] - want[k]).abs() <= tol,
                        "{da:?} {db:?} {index}"
                    );
                    assert!(
                        (added[k] - 1.0 - want[k]).abs() <= tol,
                        "{da:?} {db:?} {index}"
                    );
                }
            }
        }
    }
}
