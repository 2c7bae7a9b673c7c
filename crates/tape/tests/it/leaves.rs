//! Leaves: what a user hands in (owned, borrowed, transposed, sliced arrays, vectors, scalars,
//! shape-and-data pairs) arrives on the tape in row-major order, and owned standard-layout arrays
//! are moved in without a copy.

use ndarray::{Array2, ArrayD, Axis, IxDyn, Slice, array};
use wengert_tape::{Error, Result, Shaped, Tape};

#[test]
fn an_owned_array_is_moved_in_not_copied() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let w = Array2::from_shape_fn((64, 32), |(i, j)| (i * 32 + j) as f64);
    let address = w.as_ptr();
    let id = tape.parameter(w)?;
    assert_eq!(tape.data(id)?.as_ptr(), address);
    let v = vec![1.0, 2.0, 3.0];
    let address = v.as_ptr();
    let id = tape.input(v)?;
    assert_eq!(tape.data(id)?.as_ptr(), address);
    Ok(())
}

#[test]
fn every_kind_of_leaf_arrives_in_row_major_order() -> Result<()> {
    let m = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let mut tape = Tape::<f64>::new();
    let borrowed = tape.input(&m)?;
    let view = tape.input(m.view())?;
    // Column-major storage: the transpose of the transpose.
    let transposed = tape.input(m.t().as_standard_layout().into_owned().reversed_axes())?;
    // A standard-layout array that starts part-way into its buffer.
    let mut rows = array![[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    rows.slice_axis_inplace(Axis(0), Slice::from(1..));
    let offset = tape.input(rows)?;
    // Every other column: not contiguous.
    let mut wide = array![[1.0, 9.0, 2.0, 9.0, 3.0], [4.0, 9.0, 5.0, 9.0, 6.0]];
    wide.slice_axis_inplace(Axis(1), Slice::new(0, None, 2));
    let strided = tape.input(wide)?;
    let shaped = tape.input(Shaped(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))?;
    for id in [borrowed, view, transposed, offset, strided, shaped] {
        assert_eq!(tape.shape(id)?.dims(), &[2, 3], "{id}");
        assert_eq!(tape.data(id)?, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "{id}");
    }
    let scalar = tape.input(2.5)?;
    assert_eq!(tape.shape(scalar)?.rank(), 0);
    let slice = tape.input(&[1.0, 2.0][..])?;
    assert_eq!(tape.shape(slice)?.dims(), &[2]);
    Ok(())
}

#[test]
fn a_bad_leaf_is_an_error_and_records_nothing() -> Result<()> {
    let mut tape = Tape::<f32>::new();
    let x = tape.input(vec![1.0f32])?;
    assert!(matches!(
        tape.input(Shaped(&[2, 2], &[1.0f32; 3])),
        Err(Error::DataLength { len: 3, .. })
    ));
    assert!(matches!(
        tape.parameter(ArrayD::<f32>::zeros(IxDyn(&[1; 7]))),
        Err(Error::RankTooHigh { rank: 7, max: 6 })
    ));
    assert_eq!(tape.len(), 1);
    let y = tape.input(vec![2.0f32])?;
    assert_eq!(y.index(), x.index() + 1);
    assert_eq!(tape.data(y)?, &[2.0]);
    Ok(())
}
