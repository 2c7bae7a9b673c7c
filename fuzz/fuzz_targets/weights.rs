//! The weights, checkpoint and safetensors loaders on untrusted bytes, whole and behind a
//! valid header. They must never panic; what they accept must save back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wengert_io::container::{self, FileKind};
use wengert_io::{
    Checkpoint, LoadOptions, safetensors_from_bytes, weights_from_bytes, weights_to_bytes,
};

fuzz_target!(|data: &[u8]| {
    let options = LoadOptions::default();
    let _ = weights_from_bytes::<f32>(data, &options);
    let _ = safetensors_from_bytes::<f64>(data, &options);
    let file = container::wrap(FileKind::Weights, 1, data);
    if let Ok(w) = weights_from_bytes::<f32>(&file, &options) {
        assert_eq!(weights_to_bytes(&w), file);
    }
    if let Ok(w) = weights_from_bytes::<f64>(&file, &options) {
        assert_eq!(weights_to_bytes(&w), file);
    }
    let file = container::wrap(FileKind::Checkpoint, 1, data);
    if let Ok(c) = Checkpoint::<f32>::from_bytes(&file, &options) {
        assert_eq!(c.to_bytes(), file);
    }
});
