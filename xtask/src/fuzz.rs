//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets under `fuzz/`
//! (the tape loader, the weights loaders, and the replay of whatever tape loads, under a
//! memory budget and libFuzzer's RSS limit) for a bounded time each, if cargo-fuzz is
//! installed.
//!
//! With a nightly toolchain the targets run with AddressSanitizer; on stable, `-s none` and
//! `RUSTC_BOOTSTRAP=1` (libfuzzer-sys needs a few unstable flags) still find panics, hangs and
//! aborts. New inputs go to `fuzz/corpus/TARGET` (not committed); `fuzz/seeds/TARGET` holds
//! the committed seeds, and crashes land in `fuzz/artifacts/TARGET`.

use std::path::PathBuf;
use std::process::Command;

const TARGETS: [&str; 3] = ["tape", "replay", "weights"];
const DEFAULT_SECONDS: u64 = 60;

/// Runs the fuzz task with its arguments (those after `fuzz`).
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("usage: cargo xtask fuzz [--seconds N] [tape|replay|weights]");
                return Ok(());
            }
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds: '{value}' is not a number"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "fuzz: unknown argument '{other}' (targets: {})",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    if !succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        eprintln!(
            "xtask fuzz: cargo-fuzz is not installed; skipping (install it with `cargo install cargo-fuzz`)"
        );
        return Ok(());
    }
    let nightly = succeeds(Command::new("cargo").args(["+nightly", "--version"]));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut report = Vec::new();
    for target in &targets {
        let corpus = format!("corpus/{target}");
        std::fs::create_dir_all(dir.join(&corpus)).map_err(|e| format!("{corpus}: {e}"))?;
        let mut command = Command::new("cargo");
        if nightly {
            command.args(["+nightly", "fuzz", "run"]);
        } else {
            command
                .args(["fuzz", "run", "-s", "none"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        command.current_dir(&dir).args([
            target.as_str(),
            corpus.as_str(),
            &format!("seeds/{target}"),
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ]);
        eprintln!(
            "$ (cd fuzz && {}cargo {})",
            if nightly { "" } else { "RUSTC_BOOTSTRAP=1 " },
            command
                .get_args()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let output = command
            .output()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let executions = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".to_string(), |n| n.trim().to_string());
        if output.status.success() {
            report.push(format!(
                "{target}: {executions} executions in {seconds} s, no crash"
            ));
        } else {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            return Err(format!(
                "fuzz target '{target}' failed after {executions} executions (see fuzz/artifacts/{target})"
            ));
        }
    }
    for line in &report {
        println!("{line}");
    }
    Ok(())
}

fn succeeds(command: &mut Command) -> bool {
    command
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
