//! What the handle API and the gradient requests promise a user: a forward pass written with
//! `Var` methods and operators, gradients with respect to data, the refusals PyTorch makes.

use ndarray::{ArrayD, IxDyn, array};
use wengert_tape::{Error, Graph, Tape};

#[test]
fn a_small_network_through_handles_matches_the_tape_methods_bit_for_bit() {
    let g = Graph::<f32>::new();
    let x = g
        .input(array![[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.75]])
        .unwrap();
    let labels = g.labels(&[2, 0]).unwrap();
    let w = g
        .parameter(ArrayD::from_shape_fn(IxDyn(&[3, 3]), |i| {
            (i[0] as f32 - i[1] as f32) / 4.0
        }))
        .unwrap();
    let b = g.parameter(array![0.1f32, -0.2, 0.3]).unwrap();
    let h = x.matmul(&w).unwrap().add(&b).unwrap().relu().unwrap();
    let z = ((h * h).unwrap() - 0.5f32).unwrap();
    let loss = z.cross_entropy(&labels).unwrap();
    let via_handles = {
        let grads = loss.backward().unwrap();
        (grads[&w].to_vec(), grads[&b].to_vec())
    };

    let mut t = Tape::<f32>::new();
    let x = t
        .input(array![[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.75]])
        .unwrap();
    let labels = t.labels(&[2, 0]).unwrap();
    let w = t
        .parameter(ArrayD::from_shape_fn(IxDyn(&[3, 3]), |i| {
            (i[0] as f32 - i[1] as f32) / 4.0
        }))
        .unwrap();
    let b = t.parameter(array![0.1f32, -0.2, 0.3]).unwrap();
    let h = t.matmul(x, w).unwrap();
    let h = t.add(h, b).unwrap();
    let h = t.relu(h).unwrap();
    let z = t.mul(h, h).unwrap();
    let z = t.add_scalar(z, -0.5).unwrap();
    let loss = t.cross_entropy(z, labels).unwrap();
    let grads = t.backward(loss).unwrap();
    assert_eq!(via_handles.0, grads.data(w).unwrap());
    assert_eq!(via_handles.1, grads.data(b).unwrap());
}

#[test]
fn the_gradient_with_respect_to_data_is_returned_when_asked_for() {
    // L = Σ (x·w)²: dL/dx = 2(x·w)·wᵀ.
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![[1.0, 2.0]]).unwrap();
    let untouched = tape.input(array![[1.0, 2.0]]).unwrap();
    tape.retain_grad(x).unwrap();
    let w = tape.parameter(array![[0.5], [-1.0]]).unwrap();
    let xw = tape.matmul(x, w).unwrap(); // -1.5
    let other = tape.matmul(untouched, w).unwrap();
    let both = tape.add(xw, other).unwrap(); // -3
    let sq = tape.mul(both, both).unwrap();
    let loss = tape.sum(sq).unwrap();
    let grads = tape.backward(loss).unwrap();
    // dL/dx = 2·(-3)·[0.5, -1] = [-3, 6]; data not asked for gets none.
    assert_eq!(grads.data(x).unwrap(), &[-3.0, 6.0]);
    assert_eq!(grads.get(untouched), None);
    // dL/dw = 2·(-3)·(x + untouched)ᵀ.
    assert_eq!(grads.data(w).unwrap(), &[-12.0, -24.0]);
}

#[test]
fn asking_for_a_data_gradient_after_its_use_is_refused() {
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![1.0, 2.0]).unwrap();
    let _y = tape.exp(x).unwrap();
    assert_eq!(
        tape.retain_grad(x).unwrap_err(),
        Error::LeafAlreadyUsed { id: 0 }
    );
    // An op's gradient can still be kept after later ops use it (PyTorch's retain_grad).
    let w = tape.parameter(array![3.0]).unwrap();
    let z = tape.mul(w, w).unwrap();
    let loss = tape.sum(z).unwrap();
    tape.retain_grad(z).unwrap();
    assert_eq!(tape.backward(loss).unwrap().data(z).unwrap(), &[1.0]);
}

#[test]
fn backward_from_a_result_no_gradient_reaches_is_an_error() {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![1.0, 2.0]).unwrap();
    let x = tape.input(array![3.0, 4.0]).unwrap();
    let under_no_grad = tape.no_grad(|t| t.sum(w)).unwrap();
    assert_eq!(
        tape.backward(under_no_grad).unwrap_err(),
        Error::NoGradient {
            id: under_no_grad.index() as u32
        }
    );
    let from_data_only = tape.sum(x).unwrap();
    assert!(matches!(
        tape.backward(from_data_only),
        Err(Error::NoGradient { .. })
    ));
    let seed = array![1.0].into_dyn();
    assert!(matches!(
        tape.backward_with_seed(from_data_only, seed.view()),
        Err(Error::NoGradient { .. })
    ));
}

#[test]
fn a_one_element_seed_fits_a_scalar_output() {
    let mut tape = Tape::<f64>::new();
    let w = tape.parameter(array![1.0, 2.0]).unwrap();
    let sq = tape.mul(w, w).unwrap();
    let loss = tape.sum(sq).unwrap(); // shape []
    for seed in [
        ndarray::arr0(0.5).into_dyn(),
        array![0.5].into_dyn(),
        array![[0.5]].into_dyn(),
    ] {
        let grads = tape.backward_with_seed(loss, seed.view()).unwrap();
        assert_eq!(grads.data(w).unwrap(), &[1.0, 2.0], "{:?}", seed.shape());
    }
    let wrong = array![0.5, 0.5].into_dyn();
    assert!(matches!(
        tape.backward_with_seed(loss, wrong.view()),
        Err(Error::SeedShape { .. })
    ));
}

#[test]
fn parameters_recorded_before_a_mark_keep_their_handles_across_rewinds() {
    let g = Graph::<f64>::new();
    let w = g.parameter(array![1.0, -2.0]).unwrap();
    let start = g.mark().unwrap();
    for _ in 0..200 {
        g.rewind(start).unwrap();
        (w * w).unwrap().sum().unwrap().backward().unwrap();
        g.tape_mut()
            .unwrap()
            .update_parameters(|_, _, value, grad| {
                value.iter_mut().zip(grad).for_each(|(v, g)| *v -= 0.1 * g);
                Ok::<(), Error>(())
            })
            .unwrap();
    }
    assert!(w.value().unwrap().iter().all(|v| v.abs() < 1e-9));
}
