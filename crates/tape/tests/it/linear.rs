//! `linear(x, w, b)`: the bits of `add(matmul(x, w), b)` in the value and in every gradient,
//! at f32 on the shapes of a training step (a narrow output computed transposed, products
//! shared between threads, blocks of k) and on random ones, as a leaf of a network and in the
//! middle of one; shapes that do not fit are refused naming them.

use ndarray::ArrayD;
use proptest::prelude::*;
use wengert_tape::{Error, NodeId, Tape};

use crate::util::Rng;

/// Which of x, w and b are parameters (the others inputs).
type Learns = [bool; 3];

/// The loss `Σ c ⊙ relu(layer)` of one layer recorded fused or as two ops, with its value,
/// the layer's value and the gradients of the parameters among x, w and b.
fn run(
    fused: bool,
    learns: Learns,
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    b: &ArrayD<f32>,
) -> Vec<Vec<f32>> {
    let mut tape = Tape::<f32>::new();
    let leaf = |tape: &mut Tape<f32>, learn: bool, v: &ArrayD<f32>| -> NodeId {
        if learn {
            tape.parameter(v).unwrap()
        } else {
            tape.input(v).unwrap()
        }
    };
    let (xi, wi, bi) = (
        leaf(&mut tape, learns[0], x),
        leaf(&mut tape, learns[1], w),
        leaf(&mut tape, learns[2], b),
    );
    let y = if fused {
        tape.linear(xi, wi, bi).unwrap()
    } else {
        let xw = tape.matmul(xi, wi).unwrap();
        tape.add(xw, bi).unwrap()
    };
    let h = tape.relu(y).unwrap();
    let weights = tape.shape(y).unwrap().dims().to_vec();
    let c = ArrayD::from_shape_fn(weights, |i| ((i[0] * 7 + i[1] * 3) % 11) as f32 - 5.0);
    let c = tape.input(&c).unwrap();
    let hc = tape.mul(h, c).unwrap();
    let loss = tape.sum(hc).unwrap();
    let mut out = vec![
        tape.data(loss).unwrap().to_vec(),
        tape.data(y).unwrap().to_vec(),
    ];
    let grads = tape.backward(loss).unwrap();
    for (id, learn) in [(xi, learns[0]), (wi, learns[1]), (bi, learns[2])] {
        if learn {
            out.push(grads.data(id).unwrap().to_vec());
        }
    }
    out
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|x| x.iter().map(|f| f.to_bits()).collect())
        .collect()
}

fn draw(rng: &mut Rng, (m, k, n): (usize, usize, usize)) -> [ArrayD<f32>; 3] {
    [&[m, k][..], &[k, n], &[n]].map(|dims| rng.array(dims, 1.0).mapv(|v| v as f32))
}

#[test]
fn the_fused_layer_has_the_bits_of_matmul_then_add() {
    let mut rng = Rng::new(82);
    // W2's layers at batch 32 and 128, its narrow output layer at batch 1024 (computed
    // transposed, shared between threads), a short k, a single row.
    for shape in [
        (32, 784, 512),
        (128, 512, 512),
        (1024, 512, 10),
        (300, 7, 40),
        (1, 20, 3),
    ] {
        let [x, w, b] = draw(&mut rng, shape);
        for learns in [
            [false, true, true],
            [true, true, true],
            [true, false, false],
        ] {
            let fused = run(true, learns, &x, &w, &b);
            let plain = run(false, learns, &x, &w, &b);
            assert_eq!(
                bits(&fused),
                bits(&plain),
                "{shape:?}, parameters {learns:?}"
            );
        }
    }
}

#[test]
fn shapes_that_do_not_fit_are_named() {
    let mut tape = Tape::<f64>::new();
    let x = tape.input(ndarray::Array2::<f64>::zeros((4, 3))).unwrap();
    let w = tape
        .parameter(ndarray::Array2::<f64>::zeros((3, 5)))
        .unwrap();
    let b5 = tape.parameter(ndarray::Array1::<f64>::zeros(5)).unwrap();
    let b4 = tape.parameter(ndarray::Array1::<f64>::zeros(4)).unwrap();
    let err = tape.linear(x, w, b4).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { op: "linear", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("[4, 5]") && err.to_string().contains("[4]"),
        "{err}"
    );
    let err = tape.linear(w, x, b5).unwrap_err();
    assert!(
        err.to_string().contains("[3, 5]") && err.to_string().contains("[4, 3]"),
        "{err}"
    );
    let err = tape.linear(b5, w, b5).unwrap_err();
    assert!(
        matches!(err, Error::WrongRank { op: "linear", .. }),
        "{err}"
    );
    assert!(tape.linear(x, w, b5).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_layer_has_the_bits_of_matmul_then_add(
        m in 1usize..70,
        k in 1usize..300,
        n in 1usize..40,
        seed in any::<u64>(),
        learns in any::<[bool; 3]>(),
    ) {
        prop_assume!(learns.iter().any(|&l| l));
        let [x, w, b] = draw(&mut Rng::new(seed), (m, k, n));
        prop_assert_eq!(bits(&run(true, learns, &x, &w, &b)), bits(&run(false, learns, &x, &w, &b)));
    }
}
