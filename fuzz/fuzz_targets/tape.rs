//! The tape loader on untrusted bytes: as a whole file, and as a payload behind a valid
//! header (so that mutations get past the CRC to the decoder and the validator). It must
//! never panic, and whatever it accepts must save back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wengert_io::container::{self, FileKind};
use wengert_io::{LoadOptions, TapeModel};

fuzz_target!(|data: &[u8]| {
    let options = LoadOptions::default();
    let _ = TapeModel::<f32>::from_bytes(data, &options);
    let file = container::wrap(FileKind::Tape, 1, data);
    if let Ok(model) = TapeModel::<f32>::from_bytes(&file, &options) {
        assert_eq!(model.to_bytes(), file);
    }
    if let Ok(model) = TapeModel::<f64>::from_bytes(&file, &options) {
        assert_eq!(model.to_bytes(), file);
    }
});
