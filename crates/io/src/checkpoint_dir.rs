//! [`CheckpointDir`]: a run's checkpoints in one directory, `checkpoint-<step>.ckpt`, the
//! last K kept, resumed from the newest one that validates.

use std::path::{Path, PathBuf};

use crate::container::LoadOptions;
use crate::element::Element;
use crate::{Checkpoint, Error, Result};

/// The directory a trainer saves its checkpoints in.
///
/// ```
/// use wengert_io::{Checkpoint, CheckpointDir, LoadOptions, Scalar};
///
/// # fn main() -> wengert_io::Result<()> {
/// # let tmp = std::env::temp_dir().join(format!("wengert-ckpt-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&tmp).unwrap();
/// let dir = CheckpointDir::new(&tmp, 2);
/// for step in [10, 20, 30] {
///     let mut ckpt = Checkpoint::<f32>::default();
///     ckpt.scalars.insert("step".into(), Scalar::U64(step));
///     dir.save(step, &ckpt)?;
/// }
/// assert_eq!(dir.steps()?, [20, 30]); // the last two are kept
/// let resumed = dir.latest::<f32>(&LoadOptions::default())?.unwrap();
/// assert_eq!(resumed.step, 30);
/// # std::fs::remove_dir_all(&tmp).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
}

/// A checkpoint found by [`CheckpointDir::latest`], with the newer ones that did not load.
#[derive(Debug)]
pub struct Resumed<E: Element> {
    /// The checkpoint's step (from its file name).
    pub step: u64,
    /// Its file.
    pub path: PathBuf,
    /// Its contents.
    pub checkpoint: Checkpoint<E>,
    /// Newer checkpoints that failed to load, newest first, with the reason.
    pub skipped: Vec<(PathBuf, Error)>,
}

const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".ckpt";

impl CheckpointDir {
    /// Checkpoints in `dir`, keeping the newest `keep` (at least one) after each save.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        CheckpointDir {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the checkpoint at `step`.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step}{SUFFIX}"))
    }

    /// Saves the checkpoint of `step` atomically, then deletes all but the newest `keep`
    /// (only once the new one is safely on disk).
    pub fn save<E: Element>(&self, step: u64, checkpoint: &Checkpoint<E>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("create", &self.dir, e))?;
        let path = self.path_for(step);
        checkpoint.save(&path)?;
        let steps = self.steps()?;
        let excess = steps.len().saturating_sub(self.keep);
        for &old in &steps[..excess] {
            let old = self.path_for(old);
            std::fs::remove_file(&old).map_err(|e| Error::io("remove", old, e))?;
        }
        Ok(path)
    }

    /// The steps of the checkpoints present, oldest first. Other files (a crashed write's
    /// `.tmp` debris among them) are ignored.
    pub fn steps(&self) -> Result<Vec<u64>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let step = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u64>().ok());
            if let Some(step) = step {
                steps.push(step);
            }
        }
        steps.sort_unstable();
        steps.dedup();
        Ok(steps)
    }

    /// The newest checkpoint that loads and validates, skipping (and reporting) newer ones
    /// that do not; `None` if there is no checkpoint at all. If every checkpoint fails, the
    /// newest one's error is returned.
    pub fn latest<E: Element>(&self, options: &LoadOptions) -> Result<Option<Resumed<E>>> {
        let mut skipped = Vec::new();
        for step in self.steps()?.into_iter().rev() {
            let path = self.path_for(step);
            match Checkpoint::load(&path, options) {
                Ok(checkpoint) => {
                    return Ok(Some(Resumed {
                        step,
                        path,
                        checkpoint,
                        skipped,
                    }));
                }
                Err(err) => skipped.push((path, err)),
            }
        }
        match skipped.into_iter().next() {
            Some((_, newest_error)) => Err(newest_error),
            None => Ok(None),
        }
    }
}
