//! [`CheckpointDir`]: a run's checkpoints in one directory, `checkpoint-<step>.ckpt`, the
//! last K of the run kept, resumed from the newest one that validates. Every checkpoint it
//! saves carries the run's identity, so that a run prunes and overwrites only its own.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::container::LoadOptions;
use crate::element::Element;
use crate::{Checkpoint, Error, Result, Scalar};

/// The directory a run saves its checkpoints in.
///
/// Each `CheckpointDir` is one run, with an identity (a new one from [`new`](Self::new), an
/// earlier run's from [`continuing`](Self::continuing)) that [`save`](Self::save) writes into
/// every checkpoint as the text scalar [`RUN_ID`](Self::RUN_ID). After a save only the run's
/// own checkpoints are pruned to the newest `keep`; another run's files, and files that are
/// named like checkpoints but are not (`checkpoint-01.ckpt`), are never touched.
///
/// ```
/// use wengert_io::{Checkpoint, CheckpointDir, LoadOptions, Scalar};
///
/// # fn main() -> wengert_io::Result<()> {
/// # let tmp = std::env::temp_dir().join(format!("wengert-ckpt-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&tmp).unwrap();
/// let mut dir = CheckpointDir::new(&tmp, 2);
/// for step in [10, 20, 30] {
///     let mut ckpt = Checkpoint::<f32>::default();
///     ckpt.scalars.insert("step".into(), Scalar::U64(step));
///     dir.save(step, &ckpt)?;
/// }
/// assert_eq!(dir.steps()?, [20, 30]); // the last two are kept
/// let resumed = dir.latest::<f32>(&LoadOptions::default())?.unwrap();
/// assert_eq!(resumed.step, 30);
/// assert_eq!(resumed.run.as_deref(), Some(dir.run_id()));
/// # std::fs::remove_dir_all(&tmp).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
    run: String,
    /// The steps of this run's checkpoints in the directory, oldest first.
    own: Vec<u64>,
}

/// A checkpoint found by [`CheckpointDir::latest`], with the newer ones that did not load.
#[derive(Debug)]
pub struct Resumed<E: Element> {
    /// The checkpoint's step (from its file name).
    pub step: u64,
    /// Its file.
    pub path: PathBuf,
    /// Its contents, without the run identity entry.
    pub checkpoint: Checkpoint<E>,
    /// The identity of the run that saved it (`None` if it was saved without one).
    pub run: Option<String>,
    /// Newer checkpoints that failed to load, newest first, with the reason.
    pub skipped: Vec<(PathBuf, Error)>,
}

const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".ckpt";

impl CheckpointDir {
    /// The text scalar holding a checkpoint's run identity. The name is reserved: `save`
    /// writes the run's own identity there, whatever the checkpoint held.
    pub const RUN_ID: &'static str = "run.id";

    /// A new run's checkpoints in `dir`, keeping its newest `keep` (at least one) after each
    /// save. The run's identity is new: no checkpoint already in `dir` is the run's own.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        CheckpointDir {
            dir: dir.into(),
            keep: keep.max(1),
            run: new_run_id(),
            own: Vec::new(),
        }
    }

    /// The run `run` continued in `dir`: the checkpoints there that carry its identity are
    /// its own, to be pruned as it goes on. Each checkpoint in `dir` is loaded to read its
    /// identity; one that does not load belongs to no run.
    pub fn continuing<E: Element>(
        dir: impl Into<PathBuf>,
        keep: usize,
        run: &str,
        options: &LoadOptions,
    ) -> Result<Self> {
        let mut this = CheckpointDir {
            dir: dir.into(),
            keep: keep.max(1),
            run: run.to_string(),
            own: Vec::new(),
        };
        if this.dir.exists() {
            for step in this.steps()? {
                let owner = Checkpoint::<E>::load(this.path_for(step), options)
                    .ok()
                    .and_then(|c| run_of(&c));
                if owner.as_deref() == Some(run) {
                    this.own.push(step);
                }
            }
        }
        Ok(this)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's identity.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The steps of the run's own checkpoints in the directory, oldest first.
    pub fn own_steps(&self) -> &[u64] {
        &self.own
    }

    /// The file of the checkpoint at `step`.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step}{SUFFIX}"))
    }

    /// Saves the checkpoint of `step` atomically with the run's identity, then deletes all
    /// but the run's newest `keep` (only once the new one is safely on disk). A valid
    /// checkpoint of another run at the same step is not overwritten
    /// ([`Error::ForeignCheckpoint`]); a file there that does not load is replaced.
    pub fn save<E: Element>(&mut self, step: u64, checkpoint: &Checkpoint<E>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("create", &self.dir, e))?;
        let path = self.path_for(step);
        if !self.own.contains(&step)
            && let Ok(existing) = Checkpoint::<E>::load(&path, &LoadOptions::default())
        {
            let run = run_of(&existing);
            if run.as_deref() != Some(self.run.as_str()) {
                return Err(Error::ForeignCheckpoint { path, run });
            }
        }
        let mut scalars: BTreeMap<String, Scalar> = checkpoint.scalars.clone();
        scalars.insert(Self::RUN_ID.to_string(), Scalar::Text(self.run.clone()));
        crate::write_atomic(&path, &checkpoint.to_bytes_with_scalars(&scalars))?;
        if let Err(at) = self.own.binary_search(&step) {
            self.own.insert(at, step);
        }
        while self.own.len() > self.keep {
            let oldest = self.own.remove(0);
            let old = self.path_for(oldest);
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                // Already gone: what pruning wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", old, e)),
            }
        }
        Ok(path)
    }

    /// The steps of the checkpoints present, of any run, oldest first. Only the names this
    /// type writes count (`checkpoint-<step>.ckpt`, the step in decimal without leading
    /// zeros); other files (a crashed write's `.tmp` debris among them) are ignored.
    pub fn steps(&self) -> Result<Vec<u64>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            if let Some(step) = entry.file_name().to_str().and_then(step_of) {
                steps.push(step);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    /// The newest checkpoint that loads and validates, of any run, skipping (and reporting)
    /// newer ones that do not; `None` if there is no checkpoint at all. If every checkpoint
    /// fails, the newest one's error is returned.
    pub fn latest<E: Element>(&self, options: &LoadOptions) -> Result<Option<Resumed<E>>> {
        let mut skipped = Vec::new();
        for step in self.steps()?.into_iter().rev() {
            let path = self.path_for(step);
            match Checkpoint::load(&path, options) {
                Ok(mut checkpoint) => {
                    let run = run_of(&checkpoint);
                    checkpoint.scalars.remove(Self::RUN_ID);
                    return Ok(Some(Resumed {
                        step,
                        path,
                        checkpoint,
                        run,
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

/// The step of a checkpoint's file name, if it is one `CheckpointDir` writes: another
/// spelling of a step (`checkpoint-01.ckpt`) names another file, and is not a checkpoint.
fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    // `parse` alone would take `+1`, and `01` for 1.
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step: u64 = digits.parse().ok()?;
    (step.to_string() == digits).then_some(step)
}

/// The identity of the run that saved `checkpoint`.
fn run_of<E: Element>(checkpoint: &Checkpoint<E>) -> Option<String> {
    match checkpoint.scalars.get(CheckpointDir::RUN_ID) {
        Some(Scalar::Text(id)) => Some(id.clone()),
        _ => None,
    }
}

/// A run identity no other run on any machine is likely to have: the time in nanoseconds,
/// the process id, and 64 random bits (the standard library's per-process random hash keys).
fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = std::process::id();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(nanos);
    hasher.write_u32(pid);
    format!("{nanos:016x}-{pid:08x}-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_of_a_step_is_a_checkpoint() {
        assert_eq!(step_of("checkpoint-0.ckpt"), Some(0));
        assert_eq!(step_of("checkpoint-42.ckpt"), Some(42));
        for name in [
            "checkpoint-01.ckpt",
            "checkpoint-00.ckpt",
            "checkpoint-.ckpt",
            "checkpoint-+1.ckpt",
            "checkpoint-1.ckpt.tmp",
            "checkpoint-99999999999999999999.ckpt",
            "checkpoint-x.ckpt",
        ] {
            assert_eq!(step_of(name), None, "{name}");
        }
    }

    #[test]
    fn run_identities_differ_from_one_call_to_the_next() {
        let ids: std::collections::BTreeSet<String> = (0..100).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 100);
    }
}
