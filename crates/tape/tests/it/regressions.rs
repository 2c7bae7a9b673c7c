//! Regressions found in review: stale marks around custom ops, shapes whose element count
//! overflows after a reduction, repeated inputs, broadcast layouts, the gradient mask.

use ndarray::{ArrayViewD, ArrayViewMutD, array};
use wengert_ops::{CustomOp, Error, Float, Result, Shape};
use wengert_tape::{Shaped, Tape};

struct Sum3;
impl<E: Float> CustomOp<E> for Sum3 {
    fn name(&self) -> &str {
        "sum3"
    }
    fn arity(&self) -> usize {
        3
    }
    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape> {
        Ok(*inputs[0])
    }
    fn forward(&self, inputs: &[ArrayViewD<'_, E>], mut out: ArrayViewMutD<'_, E>) -> Result<()> {
        ndarray::Zip::from(&mut out)
            .and(&inputs[0])
            .and(&inputs[1])
            .and(&inputs[2])
            .for_each(|y, &a, &b, &c| *y = a * b * c);
        Ok(())
    }
    fn vjp(
        &self,
        inputs: &[ArrayViewD<'_, E>],
        _o: ArrayViewD<'_, E>,
        g: ArrayViewD<'_, E>,
        k: usize,
        mut gi: ArrayViewMutD<'_, E>,
    ) {
        let (i, j) = match k {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        ndarray::Zip::from(&mut gi)
            .and(&inputs[i])
            .and(&inputs[j])
            .and(&g)
            .for_each(|d, &x, &y, &g| *d += g * x * y);
    }
}

#[test]
fn stale_mark_after_custom_op_does_not_panic() {
    let mut tape = Tape::<f64>::new();
    let op = tape.register_custom(Box::new(Sum3));
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let m1 = tape.mark();
    let _r = tape.relu(x).unwrap();
    let m2 = tape.mark(); // nodes 2, listed_inputs 0
    tape.rewind(m1).unwrap();
    let c = tape.custom(op, &[x, x, x]).unwrap(); // node 1 is now custom, listed_inputs 3
    let _ = c;
    // m2 is stale: node 1 is no longer what m2 saw.
    let r = tape.rewind(m2);
    assert!(r.is_err(), "stale mark accepted");
}

#[test]
fn stale_mark_then_backward() {
    let mut tape = Tape::<f64>::new();
    let op = tape.register_custom(Box::new(Sum3));
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let m1 = tape.mark();
    let r = tape.relu(x).unwrap();
    let _ = r;
    let m2 = tape.mark();
    tape.rewind(m1).unwrap();
    let c = tape.custom(op, &[x, x, x]).unwrap();
    let _ = c;
    assert!(tape.rewind(m2).is_err(), "stale mark accepted");
    // The tape is as it was: the custom node and its inputs are intact.
    assert_eq!(tape.inputs(c).unwrap(), &[x, x, x]);
    let s = tape.sum(c).unwrap();
    assert_eq!(tape.backward(s).unwrap().data(x).unwrap(), &[3.0, 12.0]);
}

#[test]
fn custom_three_inputs_same_node() {
    let mut tape = Tape::<f64>::new();
    let op = tape.register_custom(Box::new(Sum3));
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let y = tape.parameter(array![3.0, 5.0]).unwrap();
    for _ in 0..2 {
        let c = tape.custom(op, &[x, y, x]).unwrap(); // x² y
        let s = tape.sum(c).unwrap();
        let g = tape.backward(s).unwrap();
        assert_eq!(g.data(x).unwrap(), &[6.0, 20.0]);
        assert_eq!(g.data(y).unwrap(), &[1.0, 4.0]);
    }
}

#[test]
fn square_by_mul_broadcast_and_same() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]]).unwrap();
    let b = tape.parameter(array![10.0, 20.0]).unwrap();
    let start = tape.mark();
    for _ in 0..3 {
        tape.rewind(start).unwrap();
        let xx = tape.mul(x, x).unwrap();
        let bb = tape.mul(b, b).unwrap(); // same
        let s1 = tape.add(xx, bb).unwrap(); // RowRhs
        let s2 = tape.add(b, xx).unwrap(); // RowLhs
        let s3 = tape.mul(s1, s2).unwrap();
        let l = tape.sum(s3).unwrap();
        let g = tape.backward(l).unwrap();
        // L = Σ (x² + b²)(b + x²) elementwise with b broadcast along rows
        let xs = [[1.0, 2.0], [3.0, 4.0]];
        let bs = [10.0, 20.0];
        let mut gx = vec![];
        let mut gb = [0.0; 2];
        for row in xs {
            for j in 0..2 {
                let (xv, bv) = (row[j], bs[j]);
                let p = xv * xv + bv * bv;
                let q = bv + xv * xv;
                gx.push(2.0 * xv * q + p * 2.0 * xv);
                gb[j] += 2.0 * bv * q + p;
            }
        }
        assert_eq!(g.data(x).unwrap(), &gx[..]);
        assert_eq!(g.data(b).unwrap(), &gb[..]);
    }
}

#[test]
fn failed_forward_appends_nothing() {
    let mut tape = Tape::<f64>::new();
    let z = tape.parameter(array![[1.0, 2.0]]).unwrap();
    let before = tape.len();
    let labels = tape.labels(&[5]).unwrap();
    let r = tape.cross_entropy(z, labels);
    assert!(r.is_err());
    assert_eq!(tape.len(), before + 1);
    let y = tape.relu(z).unwrap();
    assert_eq!(tape.data(y).unwrap(), &[1.0, 2.0]);
}

#[test]
fn sum_axis_of_empty_huge_shape() {
    let mut tape = Tape::<f64>::new();
    let big = 1usize << 33;
    let x = tape.input(Shaped(&[0, big, big], &[])).unwrap();
    let r = tape.sum_axis(x, 0);
    assert!(matches!(r, Err(Error::TooManyElements { .. })), "{r:?}");
    // Keeping the axis with length 1 overflows the same way.
    let r = tape.sum_axis_keepdim(x, 0);
    assert!(matches!(r, Err(Error::TooManyElements { .. })), "{r:?}");
    // An empty shape with huge axes transposes without overflowing its strides.
    let t = tape.transpose_axes(x, 0, 2).unwrap();
    assert_eq!(tape.shape(t).unwrap().dims(), &[big, big, 0]);
}

#[test]
fn no_grad_and_detach_mask() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let d = tape.no_grad(|t| t.mul(x, x)).unwrap();
    let e = tape.detach(x).unwrap();
    let m = tape.mul(d, x).unwrap();
    let m2 = tape.mul(m, e).unwrap();
    let l = tape.sum(m2).unwrap();
    let g = tape.backward(l).unwrap();
    // L = Σ x² · x · x with only the middle x differentiated: dL = x³
    assert_eq!(g.data(x).unwrap(), &[1.0, 8.0]);
}

#[test]
fn a_mark_past_a_built_in_op_of_many_inputs_rewinds_and_a_stale_one_is_refused() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![1.0, 2.0]).unwrap();
    let m1 = tape.mark();
    let c = tape.concat([x, x, x], 0).unwrap(); // listed_inputs 3
    let m2 = tape.mark();
    let _r = tape.relu(c).unwrap();
    tape.rewind(m2).unwrap();
    assert_eq!(tape.inputs(c).unwrap(), &[x, x, x]);
    tape.rewind(m1).unwrap();
    let s = tape.stack([x, x], 0).unwrap(); // node 1 again, two inputs held inline
    assert!(tape.rewind(m2).is_err(), "stale mark accepted");
    assert_eq!(tape.inputs(s).unwrap(), &[x, x]);
    let w = tape.where_cond(x, x, s).unwrap(); // listed_inputs 3, from 0
    assert_eq!(tape.inputs(w).unwrap(), &[x, x, s]);
    let loss = tape.sum(w).unwrap();
    // The mask holds everywhere: `x` broadcast over two rows, `s` none.
    assert_eq!(tape.backward(loss).unwrap().data(x).unwrap(), &[2.0, 2.0]);
}
