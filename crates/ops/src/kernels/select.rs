//! `where(cond, a, b)`: elementwise choice between two arrays by a mask, the three operands
//! broadcast together as NumPy does (`torch.where`). A condition element is true when it is
//! not 0 (NaN is true, as NumPy's and PyTorch's conversion to bool has it).

use super::binary::{broadcast_shape, broadcast_strides};
use super::unary::store;
use super::walk::walk3;
use crate::{Float, MAX_RANK, Result, Shape, TensorRef};

const WHERE: &str = "where";

/// The broadcast of the three shapes (NumPy's rules), or a
/// [`ShapeMismatch`](crate::Error::ShapeMismatch) naming two that do not fit.
pub fn where_shape(cond: &Shape, a: &Shape, b: &Shape) -> Result<Shape> {
    let ab = broadcast_shape(WHERE, a, b)?;
    broadcast_shape(WHERE, cond, &ab)
}

/// The strides that read each operand at each index of `out`.
fn strides(shapes: [&Shape; 3], out: &Shape) -> [[usize; MAX_RANK]; 3] {
    shapes.map(|s| broadcast_strides(s, out))
}

/// `out` = `a` where `cond` is not 0, else `b` (shapes as [`where_shape`] checked: `shape` is
/// their broadcast).
pub fn select<E: Float>(
    cond: TensorRef<'_, E>,
    a: TensorRef<'_, E>,
    b: TensorRef<'_, E>,
    shape: &Shape,
    out: &mut [E],
) {
    let (c, ad, bd) = (cond.data(), a.data(), b.data());
    if c.len() == out.len() && ad.len() == out.len() && bd.len() == out.len() {
        // No operand broadcast: element by element.
        for (((o, &c), &x), &y) in out.iter_mut().zip(c).zip(ad).zip(bd) {
            *o = if c != E::zero() { x } else { y };
        }
        return;
    }
    let [sc, sa, sb] = strides([cond.shape(), a.shape(), b.shape()], shape);
    walk3(shape.dims(), [&sc, &sa, &sb], |i, [pc, pa, pb]| {
        out[i] = if c[pc] != E::zero() { ad[pa] } else { bd[pb] };
    });
}

/// y = where(c, a, b): `da = g` where `c ≠ 0`, `db = g` where `c = 0`, each summed over the
/// positions the input was broadcast to, in row-major order of `y` (deterministic); the
/// condition (`index` 0) gets no gradient. `shape` is `y`'s, `input` the shape of input
/// `index`. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn select_vjp<E: Float, const ACC: bool>(
    cond: TensorRef<'_, E>,
    input: &Shape,
    shape: &Shape,
    g: &[E],
    index: usize,
    gi: &mut [E],
) {
    let c = cond.data();
    // Input 1 takes the gradient where the condition holds, input 2 where it does not.
    let takes = |c: E| (c != E::zero()) == (index == 1);
    if index == 0 {
        if !ACC {
            gi.fill(E::zero());
        }
        return;
    }
    if c.len() == g.len() && gi.len() == g.len() {
        for ((d, &c), &g) in gi.iter_mut().zip(c).zip(g) {
            store::<E, ACC>(d, if takes(c) { g } else { E::zero() });
        }
        return;
    }
    if !ACC {
        gi.fill(E::zero());
    }
    let [sc, sx, none] = strides([cond.shape(), input, &Shape::SCALAR], shape);
    walk3(shape.dims(), [&sc, &sx, &none], |i, [pc, px, _]| {
        if takes(c[pc]) {
            gi[px] += g[i];
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, ravel, unravel, values};

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// The element of an operand of dims `from` that output index `idx` reads.
    fn read(x: &[f64], from: &[usize], idx: &[usize]) -> f64 {
        let off = idx.len() - from.len();
        let src: Vec<usize> = from
            .iter()
            .enumerate()
            .map(|(a, &d)| if d == 1 { 0 } else { idx[a + off] })
            .collect();
        x[ravel(&src, from)]
    }

    /// Checks the forward against the definition and each input's VJP against finite
    /// differences; returns the largest FD error.
    fn check(dc: &[usize], da: &[usize], db: &[usize], seed: u64) -> f64 {
        let (sc, sa, sb) = (shape(dc), shape(da), shape(db));
        let out = where_shape(&sc, &sa, &sb).unwrap();
        // A condition of zeros and non-zeros (NaN among them, which counts as true).
        let cond: Vec<f64> = values(sc.numel(), seed)
            .iter()
            .enumerate()
            .map(|(i, v)| match i % 5 {
                0 => f64::NAN,
                _ if *v < 0.0 => 0.0,
                _ => *v,
            })
            .collect();
        let (a, b) = (values(sa.numel(), seed + 1), values(sb.numel(), seed + 2));
        let run = |a: &[f64], b: &[f64]| {
            let mut y = vec![0.0; out.numel()];
            select(
                TensorRef::trusted(&sc, &cond),
                TensorRef::trusted(&sa, a),
                TensorRef::trusted(&sb, b),
                &out,
                &mut y,
            );
            y
        };
        let y = run(&a, &b);
        for (i, &got) in y.iter().enumerate() {
            let idx = unravel(i, out.dims());
            let c = read(&cond, dc, &idx);
            let want = if c != 0.0 {
                read(&a, da, &idx)
            } else {
                read(&b, db, &idx)
            };
            assert_eq!(got, want, "at {idx:?}");
        }
        let g = values(out.numel(), seed + 3);
        let c = TensorRef::trusted(&sc, &cond);
        let ea = fd_error(
            &|x| run(x, &b),
            &|_, g, gi, acc| {
                if acc {
                    select_vjp::<f64, true>(c, &sa, &out, g, 1, gi)
                } else {
                    select_vjp::<f64, false>(c, &sa, &out, g, 1, gi)
                }
            },
            &a,
            &g,
        );
        let eb = fd_error(
            &|x| run(&a, x),
            &|_, g, gi, acc| {
                if acc {
                    select_vjp::<f64, true>(c, &sb, &out, g, 2, gi)
                } else {
                    select_vjp::<f64, false>(c, &sb, &out, g, 2, gi)
                }
            },
            &b,
            &g,
        );
        let mut none = vec![f64::NAN; sc.numel()];
        select_vjp::<f64, false>(c, &sc, &out, &g, 0, &mut none);
        assert!(none.iter().all(|&v| v == 0.0));
        ea.max(eb)
    }

    #[test]
    fn chooses_by_the_mask_and_sends_each_input_its_share() {
        let cases: [(&[usize], &[usize], &[usize]); 7] = [
            (&[2, 3], &[2, 3], &[2, 3]),
            (&[2, 3], &[3], &[]),
            (&[2, 1], &[1, 3], &[2, 3]),
            (&[], &[4], &[2, 4]),
            (&[3, 1, 2], &[4, 1], &[1]),
            (&[0, 3], &[3], &[1, 3]),
            (&[5], &[5], &[1]),
        ];
        let mut worst = 0.0f64;
        for (seed, (c, a, b)) in cases.into_iter().enumerate() {
            worst = worst.max(check(c, a, b, seed as u64));
        }
        assert!(worst < FD_TOL, "FD error {worst:e}");
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_an_error_naming_the_op() {
        let err = where_shape(&shape(&[2, 3]), &shape(&[4]), &shape(&[3])).unwrap_err();
        assert!(err.to_string().starts_with("where"), "{err}");
        assert!(where_shape(&shape(&[2]), &shape(&[3]), &shape(&[3])).is_err());
    }
}
