//! Hostile files: every truncation, every single-byte change, length fields that lie, and a
//! proptest stand-in for the fuzzers (arbitrary and mutated bytes).

use std::time::Instant;

use proptest::prelude::*;
use wengert_io::container::{self, FileKind, HEADER_LEN};
use wengert_io::{
    Checkpoint, Error, LoadOptions, Scalar, TapeModel, Weights, safetensors_from_bytes,
    weights_from_bytes, weights_to_bytes,
};

use crate::common::{model_bytes, small_tape_bytes, values};

fn options() -> LoadOptions {
    LoadOptions::default()
}

fn sample_weights() -> Weights<f32> {
    let mut w = Weights::new();
    w.insert("w1".to_string(), values::<f32>(&[4, 3], 1));
    w.insert("b1".to_string(), values::<f32>(&[3], 2));
    w
}

fn sample_checkpoint() -> Vec<u8> {
    let mut c = Checkpoint::<f64>::default();
    c.arrays.insert("m".into(), values::<f64>(&[2, 3], 3));
    c.scalars.insert("step".into(), Scalar::U64(42));
    c.scalars.insert("lr".into(), Scalar::F64(0.01));
    c.scalars.insert("run".into(), Scalar::Text("xor".into()));
    c.sections.insert("rng".into(), vec![9, 8, 7]);
    c.to_bytes()
}

/// Each loader, by name, on untrusted bytes; `Ok` means the bytes were accepted.
/// A loader of untrusted bytes; `Ok` means they were accepted.
type Loader = fn(&[u8]) -> Result<(), Error>;

fn loaders() -> Vec<(&'static str, Loader)> {
    vec![
        ("tape f32", |b| {
            TapeModel::<f32>::from_bytes(b, &options()).map(drop)
        }),
        ("tape f64", |b| {
            TapeModel::<f64>::from_bytes(b, &options()).map(drop)
        }),
        ("weights", |b| {
            weights_from_bytes::<f32>(b, &options()).map(drop)
        }),
        ("checkpoint", |b| {
            Checkpoint::<f64>::from_bytes(b, &options()).map(drop)
        }),
        ("safetensors", |b| {
            safetensors_from_bytes::<f32>(b, &options()).map(drop)
        }),
    ]
}

/// One valid file of each kind, with its loader.
fn valid_files() -> Vec<(&'static str, Vec<u8>, Loader)> {
    vec![
        ("tape", model_bytes::<f32>(), |b| {
            TapeModel::<f32>::from_bytes(b, &options()).map(drop)
        }),
        ("small tape", small_tape_bytes(), |b| {
            TapeModel::<f32>::from_bytes(b, &options()).map(drop)
        }),
        ("weights", weights_to_bytes(&sample_weights()), |b| {
            weights_from_bytes::<f32>(b, &options()).map(drop)
        }),
        ("checkpoint", sample_checkpoint(), |b| {
            Checkpoint::<f64>::from_bytes(b, &options()).map(drop)
        }),
    ]
}

#[test]
fn every_truncation_is_refused() {
    for (name, bytes, load) in valid_files() {
        load(&bytes).unwrap();
        let started = Instant::now();
        let mut refused = 0;
        for len in 0..bytes.len() {
            let err = load(&bytes[..len]).unwrap_err();
            let expected = if len < HEADER_LEN {
                matches!(err, Error::TooShort { .. })
            } else {
                matches!(err, Error::LengthMismatch { .. })
            };
            assert!(expected, "{name} cut to {len}: {err}");
            refused += 1;
        }
        eprintln!(
            "{name}: {refused} of {} truncations refused in {:?}",
            bytes.len(),
            started.elapsed()
        );
        assert_eq!(refused, bytes.len());
    }
}

#[test]
fn every_single_byte_change_is_refused() {
    for (name, bytes, load) in valid_files() {
        let started = Instant::now();
        let mut refused = 0usize;
        let mut copy = bytes.clone();
        for i in 0..bytes.len() {
            for delta in 1..=255u8 {
                copy[i] = bytes[i] ^ delta;
                let err = load(&copy).unwrap_err();
                // The header's fields are each checked exactly; a payload change is caught
                // by the CRC, which detects every error burst of up to 32 bits.
                assert!(
                    i < HEADER_LEN || matches!(err, Error::ChecksumMismatch { .. }),
                    "{name} byte {i} ^ {delta}: {err}"
                );
                refused += 1;
            }
            copy[i] = bytes[i];
        }
        eprintln!(
            "{name}: {refused} single-byte changes ({} bytes x 255) refused in {:?}",
            bytes.len(),
            started.elapsed()
        );
        assert_eq!(refused, bytes.len() * 255);
    }
}

fn timed(what: &str, f: impl FnOnce() -> Error) -> Error {
    let started = Instant::now();
    let err = f();
    eprintln!("{what}: refused in {:?}: {err}", started.elapsed());
    err
}

#[test]
fn length_fields_claiming_two_to_the_forty_bytes_are_refused_quickly() {
    // The header's payload length.
    let mut bytes = container::wrap(FileKind::Tape, 1, &[0; 8]);
    bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = timed("header length 2^40", || {
        TapeModel::<f32>::from_bytes(&bytes, &options()).unwrap_err()
    });
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");

    // Inside a payload with a valid CRC: the node count, a name's length, a data length.
    let node_count = [&0u32.to_le_bytes()[..], &(1u64 << 40).to_le_bytes()].concat();
    let file = container::wrap(FileKind::Tape, 1, &node_count);
    let err = timed("node count 2^40", || {
        TapeModel::<f32>::from_bytes(&file, &options()).unwrap_err()
    });
    assert!(matches!(err, Error::Decode { .. }), "{err}");

    let name_len = [
        &0u32.to_le_bytes()[..],
        &1u64.to_le_bytes(),
        &(1u64 << 40).to_le_bytes(),
        b"w",
    ]
    .concat();
    let file = container::wrap(FileKind::Weights, 1, &name_len);
    let err = timed("name length 2^40", || {
        weights_from_bytes::<f32>(&file, &options()).unwrap_err()
    });
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");

    let data_len = [
        &0u32.to_le_bytes()[..],
        &1u64.to_le_bytes(),
        &1u64.to_le_bytes(),
        b"w",
        &1u64.to_le_bytes(),
        &(1u64 << 20).to_le_bytes(),
        &0u32.to_le_bytes(),
        &(1u64 << 40).to_le_bytes(),
        &[0; 8],
    ]
    .concat();
    let file = container::wrap(FileKind::Weights, 1, &data_len);
    let err = timed("data length 2^40", || {
        weights_from_bytes::<f32>(&file, &options()).unwrap_err()
    });
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let dir = crate::common::scratch();
    let path = dir.path().join("big.weights");
    wengert_io::save_weights(&path, &sample_weights()).unwrap();
    let err =
        wengert_io::load_weights::<f32>(&path, &LoadOptions::with_max_file_bytes(64)).unwrap_err();
    assert!(matches!(err, Error::FileTooLarge { max: 64, .. }), "{err}");
    let err = wengert_io::load_weights::<f32>(dir.path().join("missing"), &options()).unwrap_err();
    assert!(matches!(err, Error::Io { action: "open", .. }), "{err}");
}

/// Applies one of a few byte-level mutations, as a fuzzer's mutator would.
fn mutate(bytes: &mut Vec<u8>, kind: u8, at: usize, value: u8) {
    if bytes.is_empty() {
        bytes.push(value);
        return;
    }
    let at = at % bytes.len();
    match kind % 5 {
        0 => bytes[at] ^= value.max(1),
        1 => bytes.insert(at, value),
        2 => {
            bytes.remove(at);
        }
        3 => bytes.truncate(at),
        // Overwrite a little-endian u64 with a huge value: lengths are the interesting fields.
        _ => {
            for (k, b) in (u64::MAX >> (value % 48)).to_le_bytes().iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
    }
}

/// Re-wraps a mutated payload in a valid header of the file's own version, so that mutations
/// get past the CRC and reach the decoder and the validator. (Labelled version 1, a version-2
/// payload cut just before its last field is a valid version-1 file, which saves back as
/// version 2: a different file, though not a wrong one.)
fn rewrap(kind: FileKind, file: &[u8], mutations: &[(u8, usize, u8)]) -> Vec<u8> {
    let (version, _) = container::unwrap(file, kind).expect("the file before mutation is valid");
    let mut payload = file[HEADER_LEN..].to_vec();
    for &(k, at, v) in mutations {
        mutate(&mut payload, k, at, v);
    }
    container::wrap(kind, version, &payload)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (_, load) in loaders() {
            let _ = load(&bytes);
            let _ = load(&container::wrap(FileKind::Tape, 1, &bytes));
            let _ = load(&container::wrap(FileKind::Weights, 1, &bytes));
            let _ = load(&container::wrap(FileKind::Checkpoint, 1, &bytes));
        }
    }

    #[test]
    fn mutated_payloads_are_refused_or_load_to_a_canonical_file(
        mutations in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6)
    ) {
        let tape = rewrap(FileKind::Tape, &model_bytes::<f32>(), &mutations);
        if let Ok(model) = TapeModel::<f32>::from_bytes(&tape, &options()) {
            // Whatever is accepted is a valid model, and saving it gives back the same bytes.
            prop_assert_eq!(model.to_bytes(), tape);
        }
        let weights = rewrap(FileKind::Weights, &weights_to_bytes(&sample_weights()), &mutations);
        if let Ok(w) = weights_from_bytes::<f32>(&weights, &options()) {
            prop_assert_eq!(weights_to_bytes(&w), weights);
        }
        let ckpt = rewrap(FileKind::Checkpoint, &sample_checkpoint(), &mutations);
        if let Ok(c) = Checkpoint::<f64>::from_bytes(&ckpt, &options()) {
            prop_assert_eq!(c.to_bytes(), ckpt);
        }
    }

    #[test]
    fn mutated_whole_files_are_refused(
        mutations in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4)
    ) {
        let original = model_bytes::<f32>();
        let mut bytes = original.clone();
        for &(k, at, v) in &mutations {
            mutate(&mut bytes, k, at, v);
        }
        if bytes != original {
            prop_assert!(TapeModel::<f32>::from_bytes(&bytes, &options()).is_err());
        }
        let st = wengert_io::safetensors_to_bytes(&sample_weights()).unwrap();
        let mut st_bytes = st.clone();
        for &(k, at, v) in &mutations {
            mutate(&mut st_bytes, k, at, v);
        }
        let _ = safetensors_from_bytes::<f32>(&st_bytes, &options());
    }
}
