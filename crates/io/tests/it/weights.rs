//! Weights files and safetensors: round trips, and the `safetensors` crate reading ours.

use ndarray::array;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use wengert_io::container::{self, FileKind};
use wengert_io::format::v1::{DataV1, ElementV1, NamedTensorV1, TensorV1, WeightsFileV1};
use wengert_io::{
    Error, LoadOptions, Weights, export_safetensors, import_safetensors, load_weights,
    safetensors_from_bytes, safetensors_to_bytes, save_weights, weights_from_bytes,
};

use crate::common::{scratch, values};

fn sample<E: wengert_io::Element>() -> Weights<E> {
    let mut w = Weights::new();
    w.insert("layer1.weight".to_string(), values::<E>(&[4, 3], 1));
    w.insert("layer1.bias".to_string(), values::<E>(&[3], 2));
    w.insert(
        "scale".to_string(),
        ndarray::arr0(E::from_f64(-0.0)).into_dyn(),
    );
    w.insert("empty".to_string(), values::<E>(&[0, 5], 3));
    // Not in standard layout in memory: saved in row-major order all the same.
    w.insert(
        "transposed".to_string(),
        values::<E>(&[2, 3], 4).reversed_axes(),
    );
    w
}

#[test]
fn weights_round_trip_through_a_file() {
    let dir = scratch();
    let path = dir.path().join("w.weights");
    let w = sample::<f64>();
    save_weights(&path, &w).unwrap();
    let first = std::fs::read(&path).unwrap();
    let back = load_weights::<f64>(&path, &LoadOptions::default()).unwrap();
    assert_eq!(back, w);
    save_weights(&path, &back).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first);
    let err = load_weights::<f32>(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::ElementTypeMismatch { .. }), "{err}");
}

#[test]
fn the_wrong_kind_of_file_is_named_as_such() {
    let bytes = wengert_io::weights_to_bytes(&sample::<f32>());
    let err =
        wengert_io::TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKind {
                expected: FileKind::Tape,
                ..
            }
        ),
        "{err}"
    );
    let err = weights_from_bytes::<f32>(
        b"PK\x03\x04 a zip file, not ours, long enough",
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
}

#[test]
fn names_must_be_unique_and_sorted() {
    let tensor = |name: &str| NamedTensorV1 {
        name: name.to_string(),
        tensor: TensorV1 {
            shape: vec![1],
            data: DataV1::F32(vec![1.0]),
        },
    };
    let load = |names: &[&str]| {
        let file = WeightsFileV1 {
            element: ElementV1::F32,
            tensors: names.iter().map(|n| tensor(n)).collect(),
        };
        weights_from_bytes::<f32>(&file.to_bytes(), &LoadOptions::default())
    };
    assert_eq!(load(&["a", "b"]).unwrap().len(), 2);
    assert!(matches!(
        load(&["a", "a"]),
        Err(Error::DuplicateName { .. })
    ));
    assert!(matches!(
        load(&["b", "a"]),
        Err(Error::NamesOutOfOrder { .. })
    ));
    assert!(matches!(load(&[""]), Err(Error::EmptyName)));
}

#[test]
fn the_safetensors_crate_reads_what_wengert_writes() {
    let dir = scratch();
    let path = dir.path().join("model.safetensors");
    let w = sample::<f32>();
    export_safetensors(&path, &w).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), w.len());
    for (name, array) in &w {
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::F32);
        assert_eq!(view.shape(), array.shape());
        let read: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let expected: Vec<f32> = array.iter().copied().collect();
        assert_eq!(
            read.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            expected.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
    // And wengert reads it back, as f32 exactly and as f64 widened exactly.
    assert_eq!(
        import_safetensors::<f32>(&path, &LoadOptions::default()).unwrap(),
        w
    );
    let wide = import_safetensors::<f64>(&path, &LoadOptions::default()).unwrap();
    assert_eq!(wide["layer1.bias"], w["layer1.bias"].mapv(f64::from));
}

#[test]
fn wengert_reads_what_the_safetensors_crate_writes_and_refuses_what_it_cannot() {
    use safetensors::tensor::TensorView;
    let data: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let ints = [7u8, 8];
    let views = vec![
        ("a", TensorView::new(Dtype::F64, vec![2], &data).unwrap()),
        ("i", TensorView::new(Dtype::U8, vec![2], &ints).unwrap()),
    ];
    let bytes = safetensors::serialize(views[..1].to_vec(), None).unwrap();
    let w = safetensors_from_bytes::<f64>(&bytes, &LoadOptions::default()).unwrap();
    assert_eq!(w["a"], array![1.5, -2.0].into_dyn());
    let err = safetensors_from_bytes::<f32>(&bytes, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedDtype { .. }), "{err}");
    let bytes = safetensors::serialize(views, None).unwrap();
    let err = safetensors_from_bytes::<f64>(&bytes, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedDtype { .. }), "{err}");
    let exported = safetensors_to_bytes(&sample::<f64>()).unwrap();
    for len in 0..exported.len() {
        assert!(safetensors_from_bytes::<f64>(&exported[..len], &LoadOptions::default()).is_err());
    }
}

#[test]
fn the_container_round_trips_any_payload() {
    let file = container::wrap(FileKind::Checkpoint, 1, b"");
    assert_eq!(
        container::unwrap(&file, FileKind::Checkpoint).unwrap(),
        (1, &b""[..])
    );
}
