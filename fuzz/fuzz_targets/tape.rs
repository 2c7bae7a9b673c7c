//! The tape loader on untrusted bytes: as a whole file, and as a payload of each format
//! version behind a valid header (so that mutations get past the CRC to the decoder and the
//! validator). It must never panic; whatever it accepts must save back to bytes that load and
//! save again unchanged, and a payload of the newest version to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wengert_io::container::{self, FileKind};
use wengert_io::{Element, LoadOptions, TapeModel};

fuzz_target!(|data: &[u8]| {
    let options = LoadOptions::default();
    let _ = TapeModel::<f32>::from_bytes(data, &options);
    for version in 1..=FileKind::Tape.newest_version() {
        let file = container::wrap(FileKind::Tape, version, data);
        round_trip::<f32>(&file, version, &options);
        round_trip::<f64>(&file, version, &options);
    }
});

fn round_trip<E: Element>(file: &[u8], version: u32, options: &LoadOptions) {
    let Ok(model) = TapeModel::<E>::from_bytes(file, options) else {
        return;
    };
    let saved = model.to_bytes();
    if version == FileKind::Tape.newest_version() {
        assert_eq!(saved, file);
    } else {
        // An older version is saved as the newest: compared as bytes, since a NaN
        // parameter is not equal to itself.
        let again = TapeModel::<E>::from_bytes(&saved, options).expect("a saved tape loads");
        assert_eq!(again.to_bytes(), saved);
    }
}
