//! Golden files of format version 1, committed under `tests/data/`: they must keep loading,
//! to the values they were written with, whatever the engine becomes.
//!
//! To regenerate them (only when adding a new version's golden files, never to make a
//! failing test pass): `WENGERT_BLESS_GOLDEN=1 cargo test -p wengert-io golden`.

use std::path::PathBuf;

use ndarray::array;
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
    // While version 1 is the newest, this build must write the committed bytes exactly.
    assert_eq!(committed, written, "{name}: the version-1 encoding changed");
    committed
}

#[test]
fn the_golden_tape_of_version_1_loads_and_replays() {
    let bytes = check_or_bless("golden-v1.tape", &golden_tape());
    assert_eq!(&bytes[12..16], &[1, 0, 0, 0], "format version 1");
    let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap();
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
