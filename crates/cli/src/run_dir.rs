//! The directory a `wengert train` run writes into: made (the default `runs/<timestamp>`
//! atomically, with a suffix when a run of the same second has the name), checked and locked
//! before any work, so that two runs never share one and a run never writes over another's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use wengert_io::container::MAGIC;
use wengert_io::{CheckpointDir, DirLock, FileKind};

/// The files besides checkpoints that show a directory holds a run's results.
const RESULTS: [&str; 2] = ["model.tape", "metrics.json"];

/// How many `runs/<timestamp>-<n>` names are tried before giving up.
const MAX_SUFFIX: u32 = 10_000;

/// A run's output directory, locked for as long as this value lives.
#[derive(Debug)]
pub struct RunDir {
    lock: DirLock,
    /// Whether this run made the directory (it is removed again if the run fails before
    /// writing anything in it).
    made: bool,
}

impl RunDir {
    /// The directory `dir` given by `option` (`--out`, `--resume`): made if missing, and
    /// locked. The error names the option: not a directory, not writable, or in use by
    /// another run.
    pub fn open(dir: &Path, option: &str) -> Result<RunDir, String> {
        let at = || format!("{option} {}", dir.display());
        let made = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => false,
            Ok(_) => return Err(format!("{} is not a directory", at())),
            Err(_) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("{}: cannot create the directory: {e}", at()))?;
                true
            }
        };
        let lock = lock(dir, option)?;
        Ok(RunDir { lock, made })
    }

    /// A new directory `runs/<UTC timestamp>` (`-2`, `-3`, ... appended when the name is
    /// taken), made with an exclusive create so that two runs never get the same one.
    pub fn new_default() -> Result<RunDir, String> {
        let runs = Path::new("runs");
        std::fs::create_dir_all(runs)
            .map_err(|e| format!("cannot create the directory runs: {e}"))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let dir = make_unique_dir(&runs.join(utc_timestamp(secs)))?;
        let lock = lock(&dir, "--out")?;
        Ok(RunDir { lock, made: true })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.lock.dir()
    }

    /// Refuses a directory that holds another run: a checkpoint, `model.tape` or
    /// `metrics.json`. Files named like checkpoints that are not wengert checkpoints are not
    /// a run's.
    pub fn refuse_another_run(&self, option: &str) -> Result<(), String> {
        let dir = self.path();
        let listing = CheckpointDir::new(dir, 1);
        let mut found: Vec<String> = listing
            .steps()
            .map_err(|e| format!("{option} {}: {e}", dir.display()))?
            .into_iter()
            .map(|step| listing.path_for(step))
            .filter(|path| is_checkpoint(path))
            .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        found.extend(
            RESULTS
                .iter()
                .filter(|name| dir.join(name).exists())
                .map(|name| name.to_string()),
        );
        if found.is_empty() {
            return Ok(());
        }
        if found.len() > 3 {
            let more = found.len() - 2;
            found.truncate(2);
            found.push(format!("{more} more"));
        }
        Err(format!(
            "{option} {d} holds another run ({}): continue it with `wengert train --resume {d}`, \
             or choose another {option}",
            found.join(", "),
            d = dir.display(),
        ))
    }

    /// Removes the directory if this run made it and wrote nothing in it (the run failed
    /// before its first checkpoint). Best effort.
    pub fn discard_if_unused(self) {
        let dir = self.path().to_path_buf();
        let only_the_lock = std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name() == DirLock::FILE_NAME)
        });
        if self.made && only_the_lock {
            // The lock file goes first, while still held: no other run can have locked it.
            let _ = std::fs::remove_file(dir.join(DirLock::FILE_NAME));
            drop(self.lock);
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Locks the directory of a run to resume, `--resume DIR`, so that a run still writing there
/// is not resumed under its feet. A directory that cannot hold a lock file (read-only) is
/// read unlocked: `None`.
pub fn lock_source(dir: &Path) -> Result<Option<RunDir>, String> {
    if !dir.is_dir() {
        return Err(format!("--resume {}: no such directory", dir.display()));
    }
    match DirLock::acquire(dir) {
        Ok(lock) => Ok(Some(RunDir { lock, made: false })),
        Err(e @ wengert_io::Error::Locked { .. }) => Err(locked_message(dir, "--resume", &e)),
        Err(_) => Ok(None),
    }
}

/// Locks `dir` for this run; the error says which option named it and why it cannot be used.
fn lock(dir: &Path, option: &str) -> Result<DirLock, String> {
    DirLock::acquire(dir).map_err(|e| match e {
        wengert_io::Error::Locked { .. } => locked_message(dir, option, &e),
        e => format!("{option} {} is not writable: {e}", dir.display()),
    })
}

/// The refusal of a directory another run holds locked.
fn locked_message(dir: &Path, option: &str, err: &wengert_io::Error) -> String {
    let holder = match err {
        wengert_io::Error::Locked {
            holder: Some(pid), ..
        } => format!(" (process {pid})"),
        _ => String::new(),
    };
    format!(
        "{option} {}: another run{holder} is writing there; wait for it to end, or choose another directory",
        dir.display()
    )
}

/// Creates `base`, or `base-2`, `base-3`, ... if it exists: whichever this call makes is
/// its own (the create fails if another process made it first; nothing checks and then
/// creates).
fn make_unique_dir(base: &Path) -> Result<PathBuf, String> {
    for n in 1..=MAX_SUFFIX {
        let dir = if n == 1 {
            base.to_path_buf()
        } else {
            PathBuf::from(format!("{}-{n}", base.display()))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create the directory {}: {e}",
                    dir.display()
                ));
            }
        }
    }
    Err(format!(
        "cannot create a directory {}: {MAX_SUFFIX} runs of that second exist; give --out",
        base.display()
    ))
}

/// Whether `path` starts as a wengert checkpoint does (its header's magic and kind): a
/// damaged checkpoint is still one, another file of that name is not.
fn is_checkpoint(path: &Path) -> bool {
    let mut head = [0u8; 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[..8] == MAGIC
        && head[8..12] == FileKind::Checkpoint.tag()
}

/// `YYYYMMDD-HHMMSS` in UTC for seconds since the Unix epoch.
fn utc_timestamp(secs: u64) -> String {
    // Past year 9999 `time` has no date (nor does this name's format); such a clock is wrong.
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "19700101-000000");
        assert_eq!(utc_timestamp(951_782_400), "20000229-000000");
        assert_eq!(utc_timestamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_timestamp(4_107_542_399), "21000228-235959");
        assert_eq!(utc_timestamp(4_107_542_400), "21000301-000000");
        assert_eq!(utc_timestamp(u64::MAX), "19700101-000000");
    }

    #[test]
    fn a_taken_name_gets_the_next_suffix_and_each_call_its_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("20231114-221320");
        let made: Vec<PathBuf> = (0..3).map(|_| make_unique_dir(&base).unwrap()).collect();
        let names: Vec<String> = made
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["20231114-221320", "20231114-221320-2", "20231114-221320-3"]
        );
    }

    #[test]
    fn threads_racing_for_one_name_each_get_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("same-second");
        let made: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| make_unique_dir(&base).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: std::collections::BTreeSet<_> = made.iter().collect();
        assert_eq!(distinct.len(), 8);
    }
}
