//! [`DirLock`]: one writer per directory, for as long as it lives.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An exclusive lock on a directory: while one is held, [`DirLock::acquire`] on the same
/// directory fails with [`Error::Locked`], in this process or any other.
///
/// The lock is the operating system's advisory lock on the file [`DirLock::FILE_NAME`] in the
/// directory: it is released when the `DirLock` is dropped or the process ends, however it
/// ends (a killed process leaves no stale lock). The file itself stays, holding the process id
/// of the last holder; it is never deleted, since deleting a lock file lets two processes lock
/// two different files of the same name.
///
/// ```
/// use wengert_io::{DirLock, Error};
///
/// # let tmp = std::env::temp_dir().join(format!("wengert-lock-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&tmp).unwrap();
/// let lock = DirLock::acquire(&tmp)?;
/// assert!(matches!(DirLock::acquire(&tmp), Err(Error::Locked { .. })));
/// drop(lock);
/// let again = DirLock::acquire(&tmp)?;
/// # drop(again);
/// # std::fs::remove_dir_all(&tmp).unwrap();
/// # Ok::<(), wengert_io::Error>(())
/// ```
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    // Held open for the lock's life: closing it releases the lock.
    _file: File,
}

impl DirLock {
    /// The lock file's name in the locked directory.
    pub const FILE_NAME: &'static str = ".wengert.lock";

    /// Locks the existing directory `dir`, without waiting: [`Error::Locked`] if another
    /// holder has it, [`Error::Io`] if the lock file cannot be created (the directory is
    /// missing or not writable) or the file system cannot lock.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<DirLock> {
        let dir = dir.as_ref();
        let path = dir.join(Self::FILE_NAME);
        // Not truncated on open: the holder's process id must survive a refused attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("create the lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io("write", &path, e))?;
        Ok(DirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_caller_learns_the_holders_process_id() {
        let tmp = tempfile::tempdir().unwrap();
        let _held = DirLock::acquire(tmp.path()).unwrap();
        match DirLock::acquire(tmp.path()) {
            Err(Error::Locked { dir, holder }) => {
                assert_eq!(dir, tmp.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_lock_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DirLock::acquire(tmp.path().join("nowhere")).unwrap_err();
        assert!(err.to_string().contains(DirLock::FILE_NAME), "{err}");
    }
}
