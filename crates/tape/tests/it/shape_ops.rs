//! The shape and indexing ops' typed errors: positions that name nothing, windows that do not
//! fit, shapes that do not broadcast, axes that do not exist.

use ndarray::array;
use wengert_tape::{Error, Tape};

/// The indexing ops refuse positions that name nothing, and leave the tape as it was.
#[test]
fn bad_positions_are_typed_errors() {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 2.0], [3.0, 4.0]]).unwrap();
    let len = tape.len();
    for bad in [array![0.0, 2.0], array![-1.0, 0.0], array![0.5, 1.0]] {
        let idx = tape.input(bad).unwrap();
        assert!(matches!(
            tape.index_select(x, idx, 0),
            Err(Error::IndexOutOfRange { .. })
        ));
    }
    let index = tape.input(array![[0.0, 3.0]]).unwrap();
    assert!(matches!(
        tape.gather(x, index, 1),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert_eq!(tape.len(), len + 4, "only the inputs were recorded");
    assert!(matches!(
        tape.narrow(x, 1, 1, 2),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        tape.broadcast_to(x, &[3, 2]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        tape.squeeze(x, 2),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        tape.flatten(x, 1, 0),
        Err(Error::InvalidArgument { .. })
    ));
}
