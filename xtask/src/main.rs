//! Project automation, run as `cargo xtask <task>` (matklad's cargo-xtask convention).
//!
//! - `cargo xtask ci`: the core of CI (`.ci/run` adds the rest): the format check, clippy with
//!   warnings denied, the tests.
//! - `cargo xtask bench`: the reference workloads W1..W6 (W7 with `--only W7`) on wengert beside
//!   its baselines, and with `--peers` beside candle, dfdx, PyTorch and JAX
//!   (see `docs/BENCHMARKS.md`); `cargo xtask bench-check PATH` checks a file it wrote.
//! - `cargo xtask msrv`: builds with the oldest Rust each package declares.
//! - `cargo xtask publish-check`: the documentation with broken links denied, and
//!   `cargo publish --dry-run` of every published package.

mod bench;

mod fuzz;
mod msrv;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::bench(&args[1..]),
        Some("bench-check") => bench::check(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("msrv") => msrv::msrv(&args[1..]),
        Some("publish-check") => publish_check(),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  ci           format check, clippy (-D warnings) and the test suite: the core of .ci/run
  bench        the reference workloads W1..W6, wengert beside its baselines (release build);
               --peers adds candle, dfdx, and PyTorch and JAX when python3 imports them
               [--quick] [--peers] [--json PATH] [--only W1,W2,...]
  bench-check  PATH: checks the records a `bench --json PATH` run wrote
  fuzz         the fuzz targets under fuzz/, for a bounded time each [--seconds N] [TARGET...]
  msrv         checks the build with the oldest Rust each package declares (rust-version)
  publish-check  cargo doc with warnings (broken links) denied, then cargo publish --dry-run";

/// The steps of CI, in order; the first failure stops the run.
fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["test", "--workspace"])?;
    Ok(())
}

/// The documentation with every rustdoc warning (a broken intra-doc link among them) denied,
/// then a dry run of publishing every package that is published, in dependency order.
fn publish_check() -> Result<(), String> {
    // The flag goes to this child alone, so that it changes no other build's fingerprint.
    let status = Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo doc` with warnings denied failed ({status})"
        ));
    }
    // Cargo unpacks the packages it verifies into its home, keyed by the path of the
    // temporary registry they are published to, and never unpacks the same name and version
    // there again: a fixed target directory would verify a later run against the first run's
    // sources. A directory of its own each run gives the registry a path of its own.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("publish-check")
        .join(format!("{stamp}-{}", std::process::id()));
    let target_dir = target.to_str().ok_or("the target path is not UTF-8")?;
    let result = run(
        "cargo",
        &[
            "publish",
            "--dry-run",
            "--workspace",
            "--allow-dirty",
            "--target-dir",
            target_dir,
        ],
    );
    // The packages' builds are not reused (the next run has another directory).
    let _ = std::fs::remove_dir_all(&target);
    result
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}
