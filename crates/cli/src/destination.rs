//! Where a command writes what the user asked for: standard output (`-`, `/dev/stdout`), a
//! device or pipe written in place (`/dev/null`, a named pipe), or a file replaced atomically
//! (a symbolic link is written through to its target). Nothing the command reads is written
//! over, and no two outputs go to one file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The names that mean standard output.
const STDOUT: [&str; 4] = ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

/// Whether `path` means standard output.
pub fn is_stdout(path: &Path) -> bool {
    STDOUT.iter().any(|s| path.as_os_str() == *s)
}

/// Checks the command's outputs before it does any work: none is a directory, none is one
/// of its inputs (through a link or under another name), and no two are the same file.
/// Each item is the option and the path it gave.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), String> {
    for (i, &(option, path)) in outputs.iter().enumerate() {
        if is_stdout(path) {
            if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| is_stdout(p)) {
                return Err(format!(
                    "{other} and {option} both write to standard output; give each output its own file"
                ));
            }
            continue;
        }
        if path.is_dir() {
            return Err(format!(
                "{option} {} is a directory; name a file",
                path.display()
            ));
        }
        for &(input, read) in inputs {
            if same_file(path, read) {
                return Err(format!(
                    "{option} {} is the file {input} reads; writing it would destroy it, choose another file",
                    path.display()
                ));
            }
        }
        for &(other, other_path) in &outputs[..i] {
            if !is_stdout(other_path) && same_file(path, other_path) {
                return Err(format!(
                    "{other} and {option} both name {}; give each output its own file",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` where `path` (given by `option`) says: standard output, a device or pipe in
/// place, or a file replaced atomically.
pub fn write(option: &str, path: &Path, bytes: &[u8]) -> Result<(), String> {
    if is_stdout(path) {
        return print_bytes(bytes);
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "{option} {} is a directory; name a file",
            path.display()
        )),
        // A device or a pipe cannot be replaced without destroying it: it is written to.
        Ok(meta) if !meta.is_file() => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut file| file.write_all(bytes).and_then(|()| file.flush()))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        _ => wengert_io::write_atomic(path, bytes).map_err(|e| match e {
            wengert_io::Error::Io { .. } => e.to_string(),
            e => format!("{option} {}: {e}", path.display()),
        }),
    }
}

/// Writes `text` to standard output: a reader that stops early (`| head`) is not an error,
/// any other failure (a full disk) is.
pub fn print(text: &str) -> Result<(), String> {
    print_bytes(text.as_bytes())
}

fn print_bytes(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| format!("cannot write to standard output: {e}")),
    }
}

/// Whether a write to `a` would land on the file `b` names: the same path once links are
/// followed, or (where both exist) the same file under two names.
fn same_file(a: &Path, b: &Path) -> bool {
    if landing(a) == landing(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    false
}

/// Where a write to `path` lands, as an absolute path: its canonical form if it exists, else
/// its directory's canonical form and its name.
fn landing(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_file_are_the_same_output() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("model.tape"), b"m").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(same_file(
            &d.join("model.tape"),
            &d.join("sub/../model.tape")
        ));
        assert!(same_file(&d.join("new.bin"), &d.join("sub/../new.bin")));
        assert!(!same_file(&d.join("a.bin"), &d.join("b.bin")));
        std::fs::hard_link(d.join("model.tape"), d.join("alias")).unwrap();
        assert!(same_file(&d.join("alias"), &d.join("model.tape")));
    }

    #[test]
    fn standard_output_is_named_by_a_dash_or_its_device() {
        for name in STDOUT {
            assert!(is_stdout(Path::new(name)), "{name}");
        }
        assert!(!is_stdout(Path::new("./-")));
        assert!(!is_stdout(Path::new("/dev/stderr")));
    }
}
