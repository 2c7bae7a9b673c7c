//! `cargo xtask msrv`: checks that the code builds with the oldest Rust each package declares
//! (`rust-version`), with that very toolchain: the libraries and the binary, as users build them.
//!
//! The published packages are checked with the workspace's `rust-version`; a package that declares an
//! older one of its own (the GEMM) is checked alone with that. A toolchain that rustup cannot
//! install (no network to its servers) is reported and skipped, not failed: the declared
//! versions are then guarded only by clippy's `incompatible_msrv` lint, which CI's clippy step
//! denies for the standard library's newer APIs.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::run;

/// Runs the task.
pub fn msrv(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("msrv: unexpected argument '{arg}'"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask has no parent directory")?;
    let workspace = rust_version(&root.join("Cargo.toml"))?
        .ok_or("the workspace's Cargo.toml declares no rust-version")?;
    let mut checks = vec![(workspace.clone(), None)];
    let crates = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates/: {e}"))?;
    let mut own: Vec<(String, String)> = Vec::new();
    for entry in crates {
        let manifest = entry.map_err(|e| e.to_string())?.path().join("Cargo.toml");
        if let Some(version) = rust_version(&manifest)? {
            own.push((package_name(&manifest)?, version));
        }
    }
    own.sort();
    checks.extend(own.into_iter().map(|(p, v)| (v, Some(p))));
    let target_dir = root.join("target").join("msrv");
    let target_dir = target_dir.to_str().ok_or("the target path is not UTF-8")?;
    for (version, package) in checks {
        if !install(&version) {
            eprintln!("msrv: skipped Rust {version}: rustup could not install it here");
            continue;
        }
        let toolchain = format!("+{version}");
        // What users build: the libraries and the binary (tests and benches use the project's own
        // toolchain, and would double the check's time in CI).
        let mut args = vec![toolchain.as_str(), "check"];
        match &package {
            Some(p) => args.extend(["--package", p.as_str()]),
            // The packages that are published: the automation and the benchmark runner are
            // built only with the project's own toolchain.
            None => args.extend([
                "--workspace",
                "--exclude",
                "xtask",
                "--exclude",
                "wengert-benches",
            ]),
        }
        args.extend(["--target-dir", target_dir]);
        run("cargo", &args)?;
    }
    Ok(())
}

/// Whether the toolchain is installed now (rustup installs it if it can).
fn install(version: &str) -> bool {
    Command::new("rustup")
        .args(["toolchain", "install", version, "--profile", "minimal"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `rust-version = "..."` a manifest declares itself (not one it inherits).
fn rust_version(manifest: &Path) -> Result<Option<String>, String> {
    field(manifest, "rust-version")
}

fn package_name(manifest: &Path) -> Result<String, String> {
    field(manifest, "name")?.ok_or_else(|| format!("{}: no package name", manifest.display()))
}

/// The first `key = "value"` line of a manifest: enough for the two keys read here, which the
/// project writes on one line each.
fn field(manifest: &Path, key: &str) -> Result<Option<String>, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    Ok(text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_declared_version_and_ignores_an_inherited_one() {
        let dir = std::env::temp_dir().join(format!("xtask-msrv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join("own.toml");
        std::fs::write(&own, "[package]\nname = \"a\"\nrust-version = \"1.87\"\n").unwrap();
        let inherited = dir.join("inherited.toml");
        std::fs::write(
            &inherited,
            "[package]\nname = \"b\"\nrust-version.workspace = true\n",
        )
        .unwrap();
        assert_eq!(rust_version(&own).unwrap().as_deref(), Some("1.87"));
        assert_eq!(rust_version(&inherited).unwrap(), None);
        assert_eq!(package_name(&inherited).unwrap(), "b");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
