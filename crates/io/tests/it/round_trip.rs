//! Save, load, save again; replay bit for bit; other batch sizes; training further.

use ndarray::array;
use wengert_io::{Element, Error, LoadOptions, ReplayOptions, TapeModel, TapeSaver};
use wengert_tape::Tape;

use crate::common::{labels, model_bytes, record, saver, scratch, values};

fn bits<E: Element>(data: &[E]) -> Vec<u64> {
    data.iter()
        .map(|&x| wengert_ops::Float::to_f64(x).to_bits())
        .collect()
}

fn save_load_save_gives_identical_bytes<E: Element>() {
    let dir = scratch();
    let path = dir.path().join("model.tape");
    let mut tape = Tape::<E>::new();
    let net = record(&mut tape, 5);
    saver(&tape, &net).save(&path).unwrap();
    let first = std::fs::read(&path).unwrap();
    let model = TapeModel::<E>::load(&path, &LoadOptions::default()).unwrap();
    model.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first);
    assert_eq!(model.to_bytes(), first);
    assert_eq!(first, model_bytes::<E>());
}

#[test]
fn save_load_save_gives_identical_bytes_f32() {
    save_load_save_gives_identical_bytes::<f32>();
}

#[test]
fn save_load_save_gives_identical_bytes_f64() {
    save_load_save_gives_identical_bytes::<f64>();
}

fn replay_is_bit_identical<E: Element>() {
    let mut tape = Tape::<E>::new();
    let net = record(&mut tape, 5);
    let bytes = saver(&tape, &net).to_bytes().unwrap();
    let model = TapeModel::<E>::from_bytes(&bytes, &LoadOptions::default()).unwrap();

    let mut fresh = Tape::<E>::new();
    let y = tape.value_owned(net.y).unwrap();
    let replay = model
        .replay(
            &mut fresh,
            [("x", values::<E>(&[5, 4], 1)), ("labels", y)],
            &ReplayOptions::default(),
        )
        .unwrap();
    assert_eq!(fresh.len(), tape.len());
    for (name, old) in [
        ("logits", net.logits),
        ("probs", net.probs),
        ("loss", net.loss),
    ] {
        let new = replay.node(name).unwrap();
        assert_eq!(
            bits(fresh.data(new).unwrap()),
            bits(tape.data(old).unwrap())
        );
    }
    // The replay trains: its gradients are the original's, bit for bit.
    let g_old = tape.backward(net.loss).unwrap();
    let g_new = fresh.backward(replay.node("loss").unwrap()).unwrap();
    for (name, old) in [
        ("w1", net.w1),
        ("b1", net.b1),
        ("w2", net.w2),
        ("b2", net.b2),
    ] {
        let new = replay.node(name).unwrap();
        let (a, b) = (g_old.get(old).unwrap(), g_new.get(new).unwrap());
        assert_eq!(
            bits(a.as_slice().unwrap()),
            bits(b.as_slice().unwrap()),
            "{name}"
        );
    }
    // A replayed tape saves under the names it was loaded with, to the same bytes.
    let again = TapeSaver::new(&fresh)
        .names_from(&replay)
        .to_bytes()
        .unwrap();
    assert_eq!(again, bytes);
}

#[test]
fn a_loaded_tape_replays_to_bit_identical_outputs_and_gradients_f32() {
    replay_is_bit_identical::<f32>();
}

#[test]
fn a_loaded_tape_replays_to_bit_identical_outputs_and_gradients_f64() {
    replay_is_bit_identical::<f64>();
}

#[test]
fn another_batch_size_replays_through_the_reshapes() {
    let model =
        TapeModel::<f64>::from_bytes(&model_bytes::<f64>(), &LoadOptions::default()).unwrap();
    for batch in [1, 2, 9] {
        let mut fresh = Tape::<f64>::new();
        let replay = model
            .replay(
                &mut fresh,
                [
                    ("x", values::<f64>(&[batch, 4], 7)),
                    (
                        "labels",
                        ndarray::Array1::from_iter(labels(batch).iter().map(|&l| l as f64))
                            .into_dyn(),
                    ),
                ],
                &ReplayOptions::default(),
            )
            .unwrap();
        // The same computation recorded directly at this batch size agrees bit for bit.
        let mut direct = Tape::<f64>::new();
        let net = crate::common::record(&mut direct, batch);
        let x = values::<f64>(&[batch, 4], 7);
        let mut again = Tape::<f64>::new();
        let replay_direct = model
            .replay(
                &mut again,
                [
                    ("x", x.clone()),
                    ("labels", direct.value_owned(net.y).unwrap()),
                ],
                &ReplayOptions::default(),
            )
            .unwrap();
        let logits = fresh.value_owned(replay.node("logits").unwrap()).unwrap();
        assert_eq!(logits.shape(), &[batch, 3]);
        assert_eq!(
            again
                .value_owned(replay_direct.node("logits").unwrap())
                .unwrap(),
            logits
        );
        let loss = fresh.item(replay.node("loss").unwrap()).unwrap();
        assert!(loss.is_finite() && loss > 0.0);
    }
}

#[test]
fn predicting_needs_only_the_inputs_the_wanted_outputs_use() {
    let model =
        TapeModel::<f32>::from_bytes(&model_bytes::<f32>(), &LoadOptions::default()).unwrap();
    let mut tape = Tape::<f32>::new();
    let replay = model
        .replay_outputs(
            &mut tape,
            [("x", values::<f32>(&[3, 4], 1))],
            &["probs"],
            &ReplayOptions::default(),
        )
        .unwrap();
    let probs = tape.value_owned(replay.node("probs").unwrap()).unwrap();
    assert_eq!(probs.shape(), &[3, 3]);
    assert!(replay.get("loss").is_none());
    // The loss needs the labels, which were not fed.
    let mut tape = Tape::<f32>::new();
    let err = model
        .replay(
            &mut tape,
            [("x", values::<f32>(&[3, 4], 1))],
            &ReplayOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingInput { name } if name == "labels"),
        "{err}"
    );
    let err = model
        .replay(
            &mut tape,
            [("nope", values::<f32>(&[3, 4], 1))],
            &ReplayOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnknownName { .. }), "{err}");
}

#[test]
fn a_label_out_of_range_at_replay_is_the_engines_error() {
    let model =
        TapeModel::<f32>::from_bytes(&model_bytes::<f32>(), &LoadOptions::default()).unwrap();
    let mut tape = Tape::<f32>::new();
    let err = model
        .replay(
            &mut tape,
            [
                ("x", values::<f32>(&[2, 4], 1)),
                ("labels", array![0.0f32, 3.0].into_dyn()),
            ],
            &ReplayOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Engine { .. }), "{err}");
}

#[test]
fn training_further_updates_the_saved_parameters() {
    let mut model =
        TapeModel::<f64>::from_bytes(&model_bytes::<f64>(), &LoadOptions::default()).unwrap();
    let x = values::<f64>(&[5, 4], 1);
    let y = ndarray::Array1::from_iter(labels(5).iter().map(|&l| l as f64)).into_dyn();
    let loss_of = |model: &TapeModel<f64>| {
        let mut tape = Tape::<f64>::new();
        let r = model
            .replay(
                &mut tape,
                [("x", x.clone()), ("labels", y.clone())],
                &ReplayOptions::default(),
            )
            .unwrap();
        let loss = r.node("loss").unwrap();
        let value = tape.item(loss).unwrap();
        let grads = tape.backward(loss).unwrap();
        let steps: Vec<(String, ndarray::ArrayD<f64>)> = r
            .parameters()
            .map(|(name, id)| {
                let w = model.parameter(name).unwrap();
                (name.to_string(), w - &(&grads.get(id).unwrap() * 0.5))
            })
            .collect();
        (value, steps)
    };
    let (before, steps) = loss_of(&model);
    for (name, value) in steps {
        model.set_parameter(&name, value).unwrap();
    }
    let (after, _) = loss_of(&model);
    assert!(after < before, "{after} >= {before}");
    // The trained model saves and loads with its new values.
    let loaded = TapeModel::<f64>::from_bytes(&model.to_bytes(), &LoadOptions::default()).unwrap();
    assert_eq!(loaded, model);
    let err = model
        .set_parameter("w1", ndarray::Array2::<f64>::zeros((2, 2)).into_dyn())
        .unwrap_err();
    assert!(matches!(err, Error::ParameterShape { .. }), "{err}");
}

#[test]
fn weights_move_between_a_model_and_a_weights_file() {
    let mut model =
        TapeModel::<f32>::from_bytes(&model_bytes::<f32>(), &LoadOptions::default()).unwrap();
    let mut weights = model.weights();
    assert_eq!(weights.keys().collect::<Vec<_>>(), ["b1", "b2", "w1", "w2"]);
    weights.get_mut("b2").unwrap().fill(0.5);
    let bytes = wengert_io::weights_to_bytes(&weights);
    let back = wengert_io::weights_from_bytes::<f32>(&bytes, &LoadOptions::default()).unwrap();
    model.set_weights(&back).unwrap();
    assert_eq!(
        model.parameter("b2").unwrap(),
        &array![0.5f32, 0.5, 0.5].into_dyn()
    );
}

#[test]
fn a_tape_with_a_custom_op_cannot_be_saved() {
    #[derive(Debug)]
    struct Square;
    impl wengert_ops::CustomOp<f64> for Square {
        fn name(&self) -> &str {
            "square"
        }
        fn arity(&self) -> usize {
            1
        }
        fn output_shape(
            &self,
            inputs: &[&wengert_ops::Shape],
        ) -> wengert_ops::Result<wengert_ops::Shape> {
            Ok(*inputs[0])
        }
        fn forward(
            &self,
            inputs: &[ndarray::ArrayViewD<'_, f64>],
            mut out: ndarray::ArrayViewMutD<'_, f64>,
        ) -> wengert_ops::Result<()> {
            out.assign(&(&inputs[0] * &inputs[0]));
            Ok(())
        }
        fn vjp(
            &self,
            inputs: &[ndarray::ArrayViewD<'_, f64>],
            _output: ndarray::ArrayViewD<'_, f64>,
            grad_output: ndarray::ArrayViewD<'_, f64>,
            _index: usize,
            mut grad_input: ndarray::ArrayViewMutD<'_, f64>,
        ) {
            grad_input += &(&grad_output * &inputs[0] * 2.0);
        }
    }
    let mut tape = Tape::<f64>::new();
    let x = tape.input(array![1.0, 2.0]).unwrap();
    let op = tape.register_custom(Box::new(Square));
    let y = tape.custom(op, &[x]).unwrap();
    let err = TapeSaver::new(&tape).output("y", y).to_bytes().unwrap_err();
    assert!(
        matches!(&err, Error::CustomOp { node: 1, name } if name == "square"),
        "{err}"
    );
}

#[test]
fn unnamed_leaves_are_named_after_their_ids_and_names_are_checked() {
    let mut tape = Tape::<f32>::new();
    let x = tape.input(array![1.0f32, 2.0]).unwrap();
    let w = tape.parameter(array![3.0f32, 4.0]).unwrap();
    let y = tape.mul(x, w).unwrap();
    let model = TapeSaver::new(&tape).output("y", y).model().unwrap();
    assert_eq!(model.input_names().collect::<Vec<_>>(), ["%0"]);
    assert_eq!(model.parameter_names().collect::<Vec<_>>(), ["%1"]);
    let err = TapeSaver::new(&tape).input("w", w).model().unwrap_err();
    assert!(matches!(err, Error::WrongRole { .. }), "{err}");
    let err = TapeSaver::new(&tape)
        .input("a", x)
        .output("a", y)
        .model()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateName { .. }), "{err}");
}
