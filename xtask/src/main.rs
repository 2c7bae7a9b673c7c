//! Project automation, run as `cargo xtask <task>` (matklad's cargo-xtask convention).
//!
//! - `cargo xtask ci`: what CI runs: the format check, clippy with warnings denied, the tests.
//! - `cargo xtask bench`: the reference workloads W1..W5 on wengert beside its baselines
//!   (see `docs/BENCHMARKS.md`); `cargo xtask bench-check PATH` checks a file it wrote.

mod bench;

mod fuzz;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::bench(&args[1..]),
        Some("bench-check") => bench::check(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
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
  ci           format check, clippy (-D warnings), and the test suite, as CI runs them
  bench        the reference workloads W1..W5, wengert beside its baselines (release build)
               [--quick] [--peers] [--json PATH] [--only W1,W2,...]
  bench-check  PATH: checks the records a `bench --json PATH` run wrote";

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
