//! Golden files of each format version, committed under `tests/data/`: they must keep
//! loading, to the values they were written with, whatever the engine becomes.
//!
//! To regenerate them (only when adding a new version's golden files, never to make a
//! failing test pass): `WENGERT_BLESS_GOLDEN=1 cargo test -p wengert-io golden`.

use std::path::PathBuf;

use ndarray::array;
use wengert_io::format::v1::TapeFileV1;
use wengert_io::{Checkpoint, LoadOptions, ReplayOptions, Scalar, TapeModel, Weights};
use wengert_tape::Tape;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// y = sigmoid(x · w + b), in f32, with exactly representable values.
fn golden_tape() -> Vec<u8> {
    crate::common::small_tape_bytes()
}

fn golden_weights() -> Weights<f64> {
    let mut w = Weights::new();
    w.insert("bias".into(), array![0.5, -1.5].into_dyn());
    w.insert("kernel".into(), array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
    w
}

fn golden_checkpoint() -> Checkpoint<f32> {
    let mut c = Checkpoint::default();
    c.arrays.insert("w".into(), array![0.25f32, 0.5].into_dyn());
    c.scalars.insert("epoch".into(), Scalar::U64(3));
    c.scalars.insert("lr".into(), Scalar::F64(0.01));
    c.scalars.insert("offset".into(), Scalar::I64(-7));
    c.scalars
        .insert("run".into(), Scalar::Text("golden".into()));
    c.sections.insert("rng".into(), vec![1, 2, 3, 4]);
    c
}

/// Checks the committed file against what this build writes, or rewrites it when blessing.
fn check_or_bless(name: &str, written: &[u8]) -> Vec<u8> {
    let path = data(name);
    if std::env::var_os("WENGERT_BLESS_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, written).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    // The newest version of each kind: this build must write the committed bytes exactly.
    assert_eq!(committed, written, "{name}: the encoding changed");
    committed
}

/// The small tape with metadata, as version 2 writes it.
fn golden_tape_v2() -> Vec<u8> {
    let model = TapeModel::<f32>::from_bytes(&golden_tape(), &LoadOptions::default()).unwrap();
    let mut model = model;
    model.set_metadata("classes", "setosa\nversicolor").unwrap();
    model.set_metadata("seed", "3").unwrap();
    model.to_bytes()
}

#[test]
fn the_golden_tape_of_version_1_loads_and_replays() {
    // Version 2 is written now: the version-1 file is only read, never rewritten.
    let bytes = std::fs::read(data("golden-v1.tape")).unwrap();
    assert_eq!(&bytes[12..16], &[1, 0, 0, 0], "format version 1");
    // Version 1's encoding itself has not changed: its types read and write the same bytes.
    let file = TapeFileV1::from_bytes(&bytes).unwrap();
    assert_eq!(file.to_bytes(), bytes);
    let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap();
    assert!(model.metadata().is_empty());
    check_small_tape(&model);
    // Saved again, it is the same tape in version 2, with no metadata.
    let again = TapeModel::<f32>::from_bytes(&model.to_bytes(), &LoadOptions::default()).unwrap();
    assert_eq!(again, model);
}

#[test]
fn the_golden_tape_of_version_2_loads_with_its_metadata() {
    let bytes = check_or_bless("golden-v2.tape", &golden_tape_v2());
    assert_eq!(&bytes[12..16], &[2, 0, 0, 0], "format version 2");
    let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap();
    assert_eq!(model.metadata_value("seed"), Some("3"));
    assert_eq!(model.metadata_value("classes"), Some("setosa\nversicolor"));
    assert_eq!(model.metadata().len(), 2);
    check_small_tape(&model);
}

/// The small tape's names, weights and replay.
fn check_small_tape(model: &TapeModel<f32>) {
    assert_eq!(model.input_names().collect::<Vec<_>>(), ["x"]);
    assert_eq!(model.parameter_names().collect::<Vec<_>>(), ["w", "b"]);
    assert_eq!(model.output_names().collect::<Vec<_>>(), ["y"]);
    assert_eq!(
        model.parameter("w").unwrap(),
        &array![[0.5f32, -0.25], [1.0, 0.75]].into_dyn()
    );
    assert_eq!(
        model.parameter("b").unwrap(),
        &array![0.125f32, -2.0].into_dyn()
    );
    let mut tape = Tape::new();
    let replay = model
        .replay(
            &mut tape,
            [("x", array![[2.0f32, 0.0]])],
            &ReplayOptions::default(),
        )
        .unwrap();
    // z = [2·0.5 + 0.125, 2·(-0.25) - 2] = [1.125, -2.5]
    let y = tape.data(replay.node("y").unwrap()).unwrap();
    let expected = [1.125f64, -2.5].map(|z| 1.0 / (1.0 + (-z).exp()));
    for (got, want) in y.iter().zip(expected) {
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn the_golden_weights_of_version_1_load() {
    let bytes = check_or_bless(
        "golden-v1.weights",
        &wengert_io::weights_to_bytes(&golden_weights()),
    );
    let w = wengert_io::weights_from_bytes::<f64>(&bytes, &LoadOptions::default()).unwrap();
    assert_eq!(w, golden_weights());
}

#[test]
fn the_golden_checkpoint_of_version_1_loads() {
    let bytes = check_or_bless("golden-v1.ckpt", &golden_checkpoint().to_bytes());
    let c = Checkpoint::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap();
    assert_eq!(c, golden_checkpoint());
    assert_eq!(c.u64("epoch").unwrap(), 3);
}
