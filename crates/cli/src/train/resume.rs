//! Continuing a run: the newest checkpoint in `--resume DIR` that loads, and what a checkpoint
//! of `wengert train` carries besides the trainer's state (the run's settings and the
//! fingerprint of its training set).

use std::path::{Path, PathBuf};

use wengert_io::{Checkpoint, CheckpointDir, LoadOptions, Scalar};
use wengert_train::TrainState;

use super::settings::RunSettings;
use crate::E;

/// The checkpoint entry holding the run's settings (JSON of [`RunSettings`]).
pub const SETTINGS: &str = "cli.settings";

/// The checkpoint entry describing the training set, to refuse resuming on other data.
pub const DATA: &str = "cli.data";

/// A run found to resume: its trainer state, identity, settings and training-set description.
pub struct Resume {
    /// The checkpoint's file.
    pub path: PathBuf,
    /// The trainer's state.
    pub state: TrainState<E>,
    /// The run's identity (`None` for a checkpoint saved before runs had one).
    pub run: Option<String>,
    /// The run's settings.
    pub settings: RunSettings,
    /// The training set's fingerprint.
    pub data: String,
}

/// The newest checkpoint in `dir` that loads, with the run's settings.
pub fn find_resume(dir: &Path, keep: usize) -> Result<Resume, String> {
    let found = CheckpointDir::new(dir, keep)
        .latest::<E>(&LoadOptions::default())
        .map_err(|e| match e {
            wengert_io::Error::Io { .. } => e.to_string(),
            e => format!(
                "{}: no checkpoint there loads; the newest: {e}",
                dir.display()
            ),
        })?
        .ok_or_else(|| {
            format!(
                "{}: no checkpoint to resume from (no checkpoint-<step>.ckpt file)",
                dir.display()
            )
        })?;
    for (path, err) in &found.skipped {
        eprintln!("warning: skipped {}: {err}", path.display());
    }
    let path = found.path;
    let run = found.run;
    let ckpt: Checkpoint<E> = found.checkpoint;
    let text = |name: &str| match ckpt.scalars.get(name) {
        Some(Scalar::Text(t)) => Ok(t.clone()),
        _ => Err(format!(
            "{}: not a checkpoint of `wengert train` (no {name})",
            path.display()
        )),
    };
    let settings: RunSettings = serde_json::from_str(&text(SETTINGS)?)
        .map_err(|e| format!("{}: {SETTINGS}: {e}", path.display()))?;
    let data = text(DATA)?;
    let state =
        TrainState::from_checkpoint(&ckpt).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Resume {
        path,
        state,
        run,
        settings,
        data,
    })
}
