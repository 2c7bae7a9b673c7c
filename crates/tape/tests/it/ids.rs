//! A node id names one node of one tape, or nothing: an id from another tape, or from before a
//! clear or a rewind that removed its node, is an error wherever an id is taken, even when its
//! position is in range (issue 10, section 7: such ids used to read whatever node sat there).

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Error, NodeId, Result, Tape};

/// Every public method that takes an id, tried with `id` on `tape`: each must refuse it with
/// `want`, and none may change the tape.
fn check_refused_everywhere(tape: &mut Tape<f64>, id: NodeId, want: &Error) {
    let len = tape.len();
    let seed = ArrayD::<f64>::ones(IxDyn(&[2]));
    let results: Vec<(&str, Option<Error>)> = vec![
        ("value", tape.value(id).err()),
        ("value_owned", tape.value_owned(id).err()),
        ("data", tape.data(id).err()),
        ("item", tape.item(id).err()),
        ("shape", tape.shape(id).err()),
        ("kind", tape.kind(id).err()),
        ("inputs", tape.inputs(id).err()),
        ("requires_grad", tape.requires_grad(id).err()),
        ("retain_grad", tape.retain_grad(id).err()),
        ("set_value", tape.set_value(id, seed.view()).err()),
        ("tanh", tape.tanh(id).err()),
        ("add", tape.add(id, id).err()),
        ("sum", tape.sum(id).err()),
        ("backward", tape.backward(id).err()),
        (
            "backward_with_seed",
            tape.backward_with_seed(id, seed.view()).err(),
        ),
    ];
    for (method, err) in results {
        assert_eq!(err.as_ref(), Some(want), "{method}");
    }
    assert!(tape.grad(id).is_none());
    assert!(tape.take_grad(id).is_none());
    assert_eq!(tape.len(), len, "nothing was recorded");
}

#[test]
fn an_id_from_another_tape_is_refused_even_in_range() -> Result<()> {
    let mut other = Tape::<f64>::new();
    let foreign = other.input(array![5.0, 6.0])?;
    let mut tape = Tape::<f64>::new();
    let own = tape.parameter(array![1.0, 2.0])?;
    assert_eq!(
        own.index(),
        foreign.index(),
        "same position, different tapes"
    );
    check_refused_everywhere(&mut tape, foreign, &Error::StaleNode { id: 0 });
    // The tape's own id still works, and the foreign one still works on its own tape.
    assert_eq!(tape.value(own)?, array![1.0, 2.0].into_dyn());
    assert_eq!(other.value(foreign)?, array![5.0, 6.0].into_dyn());
    Ok(())
}

#[test]
fn an_id_from_before_a_clear_is_refused() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let old = tape.parameter(array![1.0, 2.0])?;
    tape.clear();
    let new = tape.parameter(array![3.0, 4.0])?;
    assert_eq!(old.index(), new.index());
    check_refused_everywhere(&mut tape, old, &Error::StaleNode { id: 0 });
    assert_eq!(tape.value(new)?, array![3.0, 4.0].into_dyn());
    // Past the end it is still the out-of-range error.
    tape.clear();
    assert_eq!(
        tape.value(old).unwrap_err(),
        Error::UnknownNode { id: 0, len: 0 }
    );
    Ok(())
}

#[test]
fn a_rewind_keeps_the_ids_before_its_mark_and_retires_those_after() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![1.0, -2.0])?;
    let mark = tape.mark();
    let before = tape.mul(w, w)?;
    tape.rewind(mark)?;
    let after = tape.add(w, w)?;
    assert_eq!(before.index(), after.index());
    check_refused_everywhere(&mut tape, before, &Error::StaleNode { id: 1 });
    // The parameter recorded before the mark keeps its id across any number of rewinds.
    for _ in 0..3 {
        tape.rewind(mark)?;
        let sq = tape.mul(w, w)?;
        let loss = tape.sum(sq)?;
        let grads = tape.backward(loss)?;
        assert_eq!(grads.get(w).unwrap(), array![2.0, -4.0].into_dyn());
    }
    Ok(())
}

#[test]
fn gradients_are_read_only_by_the_ids_they_were_swept_for() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![3.0])?;
    let loss = tape.sum(w)?;
    tape.backward(loss)?;
    let mut other = Tape::<f64>::new();
    let foreign = other.parameter(array![7.0])?;
    assert!(tape.grad(w).is_some());
    assert!(
        tape.grad(foreign).is_none(),
        "another tape's id reads no gradient"
    );
    Ok(())
}

#[test]
fn a_mark_from_another_tape_of_the_same_length_is_refused() -> Result<()> {
    let mut a = Tape::<f64>::new();
    a.parameter(array![1.0])?;
    let mark_a = a.mark();
    let mut b = Tape::<f64>::new();
    b.parameter(array![2.0])?;
    b.input(array![3.0])?;
    assert!(matches!(b.rewind(mark_a), Err(Error::StaleMark { .. })));
    assert_eq!(b.len(), 2, "nothing was rewound");
    // A mark taken before a clear, once the tape has grown past it again, is refused too.
    let mut c = Tape::<f64>::new();
    c.parameter(array![1.0])?;
    let mark_c = c.mark();
    c.clear();
    c.parameter(array![1.0])?;
    c.input(array![2.0])?;
    assert!(matches!(c.rewind(mark_c), Err(Error::StaleMark { .. })));
    Ok(())
}
