//! Hand-crafted invalid tapes: each fault is refused with its own error variant.

use std::mem::discriminant;

use wengert_io::container::{self, FileKind};
use wengert_io::format::v1::{DataV1, ElementV1, NamedNodeV1, NodeV1, OpV1, TapeFileV1, TensorV1};
use wengert_io::format::v2::{MetadataV2, TapeFileV2};
use wengert_io::{Error, LoadOptions, TapeModel};

/// x[2,3] · w[3,2], then relu: a valid file to break one field at a time.
fn valid() -> TapeFileV1 {
    let named = |name: &str, node| NamedNodeV1 {
        name: name.to_string(),
        node,
    };
    TapeFileV1 {
        element: ElementV1::F32,
        nodes: vec![
            NodeV1::Input { shape: vec![2, 3] },
            NodeV1::Parameter {
                value: TensorV1 {
                    shape: vec![3, 2],
                    data: DataV1::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                },
            },
            NodeV1::Op {
                op: OpV1::MatMul,
                inputs: vec![0, 1],
                shape: vec![2, 2],
            },
            NodeV1::Op {
                op: OpV1::Relu,
                inputs: vec![2],
                shape: vec![2, 2],
            },
        ],
        inputs: vec![named("x", 0)],
        parameters: vec![named("w", 1)],
        outputs: vec![named("y", 3)],
    }
}

fn load(file: &TapeFileV1) -> Result<TapeModel<f32>, Error> {
    TapeModel::<f32>::from_bytes(&file.to_bytes(), &LoadOptions::default())
}

fn with(change: impl FnOnce(&mut TapeFileV1)) -> Error {
    let mut file = valid();
    change(&mut file);
    load(&file).unwrap_err()
}

fn set_inputs(file: &mut TapeFileV1, node: usize, ids: Vec<u32>) {
    if let NodeV1::Op { inputs, .. } = &mut file.nodes[node] {
        *inputs = ids;
    }
}

#[test]
fn the_base_file_is_valid() {
    let model = load(&valid()).unwrap();
    assert_eq!(model.len(), 4);
    let plan = model.plan_replay(&[("x", &[2, 3])], None).unwrap();
    assert_eq!(plan.elements(), 6 + 6 + 4 + 4);
}

#[test]
fn each_fault_the_issue_names_has_its_own_error() {
    let forward = with(|f| {
        f.nodes.swap(2, 3);
        set_inputs(f, 2, vec![3]);
        set_inputs(f, 3, vec![0, 1]);
    });
    assert!(
        matches!(forward, Error::ForwardReference { node: 2, input: 3 }),
        "{forward}"
    );
    let self_loop = with(|f| set_inputs(f, 3, vec![3]));
    assert!(
        matches!(self_loop, Error::SelfReference { node: 3 }),
        "{self_loop}"
    );
    let out_of_range = with(|f| set_inputs(f, 2, vec![0, 99]));
    assert!(
        matches!(out_of_range, Error::NodeOutOfRange { id: 99, len: 4, .. }),
        "{out_of_range}"
    );
    let arity = with(|f| set_inputs(f, 2, vec![0]));
    assert!(
        matches!(
            arity,
            Error::WrongArity {
                node: 2,
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{arity}"
    );
    let data_length = with(|f| {
        f.nodes[1] = NodeV1::Parameter {
            value: TensorV1 {
                shape: vec![3, 2],
                data: DataV1::F32(vec![1.0; 5]),
            },
        }
    });
    assert!(
        matches!(
            data_length,
            Error::DataLength {
                expected: 6,
                found: 5,
                ..
            }
        ),
        "{data_length}"
    );
    let overflow = with(|f| {
        f.nodes[1] = NodeV1::Parameter {
            value: TensorV1 {
                shape: vec![1 << 40, 1 << 40],
                data: DataV1::F32(vec![]),
            },
        }
    });
    assert!(
        matches!(overflow, Error::ElementCountOverflow { .. }),
        "{overflow}"
    );
    let trailing = {
        let mut payload = container::unwrap(&valid().to_bytes(), FileKind::Tape)
            .unwrap()
            .1
            .to_vec();
        payload.push(0);
        let bytes = container::wrap(FileKind::Tape, 1, &payload);
        TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap_err()
    };
    assert!(
        matches!(trailing, Error::TrailingBytes { count: 1 }),
        "{trailing}"
    );

    let all = [
        &forward,
        &self_loop,
        &out_of_range,
        &arity,
        &data_length,
        &overflow,
        &trailing,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(discriminant(*a), discriminant(*b), "{a} / {b}");
        }
    }
}

#[test]
fn shapes_are_inferred_again_and_compared() {
    let stored = with(|f| {
        if let NodeV1::Op { shape, .. } = &mut f.nodes[3] {
            *shape = vec![4];
        }
    });
    assert!(
        matches!(stored, Error::ShapeMismatch { node: 3, .. }),
        "{stored}"
    );
    let inferred = with(|f| f.nodes[0] = NodeV1::Input { shape: vec![2, 5] });
    assert!(
        matches!(inferred, Error::ShapeInference { node: 2, .. }),
        "{inferred}"
    );
    let rank = with(|f| f.nodes[0] = NodeV1::Input { shape: vec![1; 7] });
    assert!(matches!(rank, Error::RankTooHigh { rank: 7, .. }), "{rank}");
    let reshape = with(|f| {
        f.nodes[3] = NodeV1::Op {
            op: OpV1::Reshape(vec![u64::MAX, 2]),
            inputs: vec![2],
            shape: vec![4],
        }
    });
    assert!(
        matches!(reshape, Error::ElementCountOverflow { .. }),
        "{reshape}"
    );
    let axis = with(|f| {
        f.nodes[3] = NodeV1::Op {
            op: OpV1::SumAxis {
                axis: u32::MAX,
                keep_dim: false,
            },
            inputs: vec![2],
            shape: vec![2],
        }
    });
    assert!(matches!(axis, Error::ShapeInference { .. }), "{axis}");
}

#[test]
fn element_types_must_agree() {
    let whole = with(|f| f.element = ElementV1::F64);
    assert!(
        matches!(whole, Error::ElementTypeMismatch { .. }),
        "{whole}"
    );
    let one = with(|f| {
        f.nodes[1] = NodeV1::Parameter {
            value: TensorV1 {
                shape: vec![3, 2],
                data: DataV1::F64(vec![1.0; 6]),
            },
        }
    });
    assert!(matches!(one, Error::ElementTypeMismatch { .. }), "{one}");
}

#[test]
fn names_are_checked() {
    let dup = with(|f| f.outputs[0].name = "x".into());
    assert!(matches!(dup, Error::DuplicateName { .. }), "{dup}");
    let empty = with(|f| f.outputs[0].name.clear());
    assert!(matches!(empty, Error::EmptyName), "{empty}");
    let range = with(|f| f.outputs[0].node = 4);
    assert!(
        matches!(range, Error::NodeOutOfRange { id: 4, .. }),
        "{range}"
    );
    let role = with(|f| f.inputs[0].node = 1);
    assert!(matches!(role, Error::WrongRole { .. }), "{role}");
    let unnamed = with(|f| f.parameters.clear());
    assert!(
        matches!(
            unnamed,
            Error::Unnamed {
                node: 1,
                role: "parameter"
            }
        ),
        "{unnamed}"
    );
    let twice = with(|f| {
        f.inputs.push(NamedNodeV1 {
            name: "x2".into(),
            node: 0,
        })
    });
    assert!(matches!(twice, Error::Unnamed { node: 0, .. }), "{twice}");
}

#[test]
fn an_unknown_version_is_refused() {
    let mut bytes = valid().to_bytes();
    bytes[12] = 3;
    let err = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { version: 3, .. }),
        "{err}"
    );
}

#[test]
fn a_version_1_payload_labelled_version_2_is_refused() {
    // The header's version decides the decoder; the payload lacks version 2's metadata.
    let v1 = valid().to_bytes();
    let relabelled = container::wrap(FileKind::Tape, 2, &v1[container::HEADER_LEN..]);
    let err = TapeModel::<f32>::from_bytes(&relabelled, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

#[test]
fn bad_metadata_in_a_version_2_file_is_refused() {
    let v2 = |metadata: Vec<(&str, &str)>| {
        let mut file = TapeFileV2::from(valid());
        file.metadata = metadata
            .into_iter()
            .map(|(key, value)| MetadataV2 {
                key: key.into(),
                value: value.into(),
            })
            .collect();
        TapeModel::<f32>::from_bytes(&file.to_bytes(), &LoadOptions::default())
    };
    let model = v2(vec![("classes", "a\nb"), ("seed", "3")]).unwrap();
    assert_eq!(model.metadata_value("seed"), Some("3"));
    for bad in [
        vec![("", "x")],
        vec![("has space", "x")],
        vec![("b", "x"), ("a", "y")],
        vec![("a", "x"), ("a", "y")],
    ] {
        let err = v2(bad.clone()).unwrap_err();
        assert!(matches!(err, Error::Metadata { .. }), "{bad:?}: {err}");
    }
    let huge = "x".repeat(wengert_io::MAX_METADATA_BYTES + 1);
    let err = v2(vec![("a", huge.as_str())]).unwrap_err();
    assert!(matches!(err, Error::Metadata { .. }), "{err}");
}
