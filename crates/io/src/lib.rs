//! Saving and loading for wengert: trained tapes, weights and checkpoints on disk.
//!
//! - [`TapeSaver`] and [`TapeModel`]: a recorded computation with its parameters, saved with
//!   names for its inputs, parameters and outputs; loaded, it [`replay`](TapeModel::replay)s
//!   on new inputs (another batch size too) onto a fresh [`Tape`](wengert_tape::Tape), ready
//!   to predict or to train further. A replay is planned first ([`ReplayPlan`]): every
//!   node's shape at the inputs fed, and the bytes it will hold, refused past a budget
//!   ([`ReplayOptions`]) before anything is allocated.
//! - [`save_weights`] / [`load_weights`]: a named map of arrays; [`export_safetensors`] /
//!   [`import_safetensors`] for PyTorch, JAX and candle.
//! - [`Checkpoint`]: named arrays, scalars and opaque sections, for a trainer's state;
//!   [`CheckpointDir`] keeps a run's last K, each marked with the run's identity, and resumes
//!   from the newest that validates; [`DirLock`] keeps a directory to one run at a time.
//! - [`write_atomic`]: every file is written to a temporary file, synced and renamed into
//!   place (through a symbolic link, to its target), so that a crash leaves the previous file
//!   intact.
//!
//! Every file is a [`container`]: magic bytes, kind, format version, payload length and
//! CRC-32, then a bincode payload of the version's own [`format`](mod@format) types. Loading never trusts
//! the file: the size, the header, the encoding (under a byte limit) and the meaning are all
//! checked, and every fault is an [`Error`] with a reason. `docs/FORMAT.md` gives the bytes.
//!
//! ```
//! use ndarray::array;
//! use wengert_io::{LoadOptions, ReplayOptions, TapeModel, TapeSaver};
//! use wengert_tape::Tape;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("wengert-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("model.tape");
//!
//! let mut tape = Tape::<f64>::new();
//! let x = tape.input(array![[1.0, 2.0]])?;
//! let w = tape.parameter(array![[0.5], [-1.0]])?;
//! let z = tape.matmul(x, w)?;
//! let y = tape.tanh(z)?;
//! TapeSaver::new(&tape).input("x", x).parameter("w", w).output("y", y).save(&path)?;
//!
//! let model = TapeModel::<f64>::load(&path, &LoadOptions::default())?;
//! let mut fresh = Tape::new();
//! let replay = model.replay(&mut fresh, [("x", array![[1.0, 2.0]])], &ReplayOptions::default())?;
//! assert_eq!(fresh.data(replay.node("y")?)?, tape.data(y)?);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod atomic;
mod checkpoint;
mod checkpoint_dir;
mod codec;
pub mod container;
mod crc32;
mod dir_lock;
mod element;
mod error;
pub mod format;
mod le_bytes;
mod metadata;
mod model;
mod op_v2;
mod plan;
mod replay;
mod safetensors_io;
mod saver;
mod weights;

pub use atomic::{write_atomic, write_atomic_with};
pub use checkpoint::{Checkpoint, Scalar};
pub use checkpoint_dir::{CheckpointDir, Resumed};
pub use container::{FileKind, LoadOptions};
pub use crc32::crc32;
pub use dir_lock::DirLock;
pub use element::Element;
pub use error::{Error, Result};
pub use metadata::{MAX_METADATA_BYTES, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES};
pub use model::TapeModel;
pub use plan::{
    DEFAULT_MAX_REPLAY_BYTES, LISTED_INPUT_BYTES, NODE_OVERHEAD_BYTES, REPLAY_FIXED_BYTES,
    ReplayOptions, ReplayPlan,
};
pub use replay::Replay;
pub use safetensors_io::{
    export_safetensors, export_safetensors_with_metadata, import_safetensors,
    safetensors_from_bytes, safetensors_to_bytes, safetensors_to_bytes_with_metadata,
};
pub use saver::TapeSaver;
pub use weights::{Weights, load_weights, save_weights, weights_from_bytes, weights_to_bytes};
