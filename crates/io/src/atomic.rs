//! Writing a file so that a crash at any moment leaves either the old file or the new one,
//! never a mixture: write a temporary file in the same directory, sync it, rename it over the
//! target, then sync the directory so that the rename itself is durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Replaces `path` with `bytes` atomically.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("wengert-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("greeting.txt");
/// wengert_io::write_atomic(&path, b"hello").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Replaces `path` atomically with what `write` writes to the file it is given (so that large
/// files can be streamed). If `write` fails, the temporary file is removed and `path` is left
/// as it was.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    let (tmp_path, mut file) = create_temp(path, &dir)?;
    let written = write(&mut file)
        .map_err(|e| Error::io("write", &tmp_path, e))
        .and_then(|()| file.sync_all().map_err(|e| Error::io("sync", &tmp_path, e)));
    drop(file);
    if let Err(err) = written {
        // Best effort: the error being reported is the write's, not the clean-up's.
        let _ = std::fs::remove_file(&tmp_path);
        return Err(err);
    }
    if let Err(e) = std::fs::rename(&tmp_path, path) {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(Error::io("rename into", path, e));
    }
    sync_dir(&dir)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a fresh temporary file beside the target; its name starts with a dot and ends in
/// `.tmp` so that it is recognisable as debris after a crash.
fn create_temp(path: &Path, dir: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wengert".to_string());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", tmp, e)),
        }
    }
}

/// Makes a rename in `dir` durable. Only Unix can open a directory to sync it; elsewhere the
/// file system's own ordering is all there is.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_debris() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |file| {
            file.write_all(b"ne")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    action: "write",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("model.tape")), PathBuf::from("."));
        assert_eq!(
            parent_dir(Path::new("out/model.tape")),
            PathBuf::from("out")
        );
    }
}
