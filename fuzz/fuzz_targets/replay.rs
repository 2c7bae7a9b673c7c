//! Loading *and replaying* untrusted tapes under a memory budget. The first byte picks the
//! batch fed to every input (the recorded one, or 0 to 3 examples); the rest is the file,
//! tried whole and as a payload behind a valid header. Whatever loads is replayed with a
//! 64 MiB budget: it must never panic, abort or allocate past the budget (libFuzzer's RSS
//! limit catches the last), and a replay that succeeds holds no more than the budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};
use wengert_io::container::{self, FileKind};
use wengert_io::{LoadOptions, ReplayOptions, TapeModel};
use wengert_tape::Tape;

/// The replay budget: far below the RSS limit `cargo xtask fuzz` sets (2 GiB).
const BUDGET: u64 = 64 << 20;

/// The largest input value the target makes itself (the replay, not the target, is tested).
const MAX_FED: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&batch, bytes)) = data.split_first() else {
        return;
    };
    let options = LoadOptions::default();
    let file = container::wrap(FileKind::Tape, 1, bytes);
    for candidate in [bytes, &file[..]] {
        if let Ok(model) = TapeModel::<f32>::from_bytes(candidate, &options) {
            replay(&model, batch);
        }
    }
});

fn replay(model: &TapeModel<f32>, batch: u8) {
    let mut fed = Vec::new();
    for name in model.input_names() {
        let Some(shape) = model.input_shape(name) else {
            return;
        };
        let mut dims = shape.dims().to_vec();
        if batch & 4 != 0 && !dims.is_empty() {
            dims[0] = usize::from(batch & 3);
        }
        match dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
            Some(n) if n <= MAX_FED => {
                // Small whole numbers, so that a labels input is sometimes valid.
                let values = (0..n).map(|i| (i % 3) as f32).collect();
                let Ok(value) = ArrayD::from_shape_vec(IxDyn(&dims), values) else {
                    return;
                };
                fed.push((name, value));
            }
            _ => return,
        }
    }
    let mut tape = Tape::<f32>::new();
    let budget = ReplayOptions::with_max_bytes(BUDGET);
    if model.replay(&mut tape, fed, &budget).is_ok() {
        let elements: u128 = tape
            .ids()
            .map(|id| tape.shape(id).map_or(0, |s| s.numel() as u128))
            .sum();
        assert!(elements * 4 <= u128::from(BUDGET), "{elements} elements");
    }
}
