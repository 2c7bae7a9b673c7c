//! Writing a file so that a crash at any moment leaves either the old file or the new one,
//! never a mixture: write a temporary file in the same directory, sync it, rename it over the
//! target, then sync the directory so that the rename itself is durable.
//!
//! The target is where the path leads: a symbolic link is followed and its target replaced
//! (the link stays a link), and a path that leads to something other than a regular file (a
//! directory, a device such as `/dev/stdout`, a pipe) is refused rather than replaced. The
//! temporary file is `.NAME.PID.N.tmp`, locked while it is written; a write removes the
//! unlocked ones it finds in its directory, the debris of writes that were killed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// How many symbolic links a path may pass through (Linux's own limit).
const MAX_LINKS: usize = 40;

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
/// as it was. A symbolic link is written through: its target is replaced, in the target's
/// directory. A path leading to anything but a regular file is refused
/// ([`Error::NotARegularFile`]).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let target = resolve_links(path)?;
    let dir = parent_dir(&target);
    remove_debris(&dir);
    let (tmp_path, mut file) = create_temp(&target, &dir)?;
    let written = write(&mut file)
        .map_err(|e| Error::io("write", &tmp_path, e))
        .and_then(|()| file.sync_all().map_err(|e| Error::io("sync", &tmp_path, e)));
    if let Err(err) = written {
        // Best effort: the error being reported is the write's, not the clean-up's.
        let _ = std::fs::remove_file(&tmp_path);
        return Err(err);
    }
    // Renamed while still locked, so that no other writer takes it for debris.
    if let Err(e) = std::fs::rename(&tmp_path, &target) {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(Error::io("rename into", &target, e));
    }
    drop(file);
    sync_dir(&dir)
}

/// Where a write to `path` lands: `path` itself, or the end of its chain of symbolic links
/// (a link's relative target is read from the link's directory). The end need not exist,
/// but if it does it must be a regular file.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(Error::io("inspect", &current, e)),
        };
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&current)
                .map_err(|e| Error::io("read the link", &current, e))?;
            current = parent_dir(&current).join(link);
        } else if meta.is_file() {
            return Ok(current);
        } else {
            return Err(Error::NotARegularFile {
                path: current,
                kind: describe(&meta.file_type()),
            });
        }
    }
    Err(Error::io(
        "follow the links of",
        path,
        std::io::Error::other("too many levels of symbolic links"),
    ))
}

/// What a file that is not a regular file is, for a message.
fn describe(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_fifo() {
            return "a pipe";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a fresh temporary file beside the target, `.NAME.PID.N.tmp`, and locks it for as
/// long as it is open: a lock that [`remove_debris`] tells a live write from a dead one by.
fn create_temp(path: &Path, dir: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wengert".to_string());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
        let file = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create a temporary file for", path, e)),
        };
        file.lock()
            .map_err(|e| Error::io("lock the temporary file", &tmp, e))?;
        // Between the create and the lock, another write may have taken the file for debris
        // and removed it: then the name no longer leads to this file, and a new one is made.
        if names_file(&tmp, &file) {
            return Ok((tmp, file));
        }
    }
}

/// Removes the debris of killed writes in `dir`: the temporary files of the pattern
/// [`create_temp`] uses whose lock nobody holds. Best effort: a file that cannot be read,
/// locked or removed is left.
fn remove_debris(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // Only regular files: opening a named pipe of that name would wait for a writer.
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && names_file(&path, &file) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether `name` is `.NAME.PID.N.tmp`: a temporary file of [`create_temp`].
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = rest.rsplitn(3, '.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(n), Some(pid), Some(stem)) if digits(n) && digits(pid) && !stem.is_empty()
    )
}

/// Whether `path` still names the open `file` (and not another file, or nothing).
fn names_file(path: &Path, file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::symlink_metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
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
    fn only_the_writers_own_temporary_names_are_debris() {
        for name in [".model.tape.123.0.tmp", ".a.b.c.9.12.tmp", ".x.1.2.tmp"] {
            assert!(is_temp_name(name), "{name}");
        }
        for name in [
            "model.tape.123.0.tmp",
            ".model.tape.123.tmp",
            "..1.2.tmp",
            ".x.1a.2.tmp",
            ".x.1.2.tmp~",
            ".notes.tmp",
            ".x.1.2.temp",
        ] {
            assert!(!is_temp_name(name), "{name}");
        }
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
