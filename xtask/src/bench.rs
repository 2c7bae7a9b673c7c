//! `cargo xtask bench`: builds the benchmark programs in release mode and runs them.
//!
//! xtask itself runs in the dev profile (it only orchestrates). It builds, with `--release` and
//! the environment's RUSTFLAGS (none, normally: every program is built alike):
//! 1. `wengert-bench` (package `wengert-benches`, in the workspace, the workspace's release
//!    profile): W2..W6 on wengert, W2..W5 also on the hand-written `no-tape` network;
//! 2. `wengert-bench-baselines` (`benches/baselines`, its own workspace so that matrixmultiply's
//!    `threading` feature stays out of the engine's build) into `target/bench-baselines`: W1,
//!    wengert's kernel beside matrixmultiply, the gemm crate and the FMA peak in one process;
//! 3. with `--peers`, `wengert-bench-peers` (`benches/peers`: candle and dfdx, its own workspace)
//!    into `target/bench-peers`; PyTorch (eager) runs from `benches/peers/pytorch_bench.py`
//!    when `python3 -c "import torch"` works, and JAX (jit, compile time reported apart) from
//!    `benches/peers/jax_bench.py` when `python3 -c "import jax"` works; each is skipped with a
//!    message otherwise;
//!
//! 4. with `--only` naming W7, `wengert-bench` again with the `mpi` feature (MPI's library is
//!    needed to build it, `mpirun` to run W7);
//!
//! then runs `wengert-bench run` with the other programs' paths, which measures everything in
//! one run, prints the table and writes `--json`.

use std::path::{Path, PathBuf};

use crate::run;

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Options of `cargo xtask bench`, everything else passed on to the runner.
struct BenchArgs {
    peers: bool,
    /// `--only` names W7, which needs the runner built with MPI.
    mpi: bool,
    json: Option<PathBuf>,
    passed: Vec<String>,
}

fn parse(args: &[String]) -> Result<BenchArgs, String> {
    let mut parsed = BenchArgs {
        peers: false,
        mpi: false,
        json: None,
        passed: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--peers" => parsed.peers = true,
            "--quick" => parsed.passed.push(arg.clone()),
            "--json" => {
                let path = it.next().ok_or("--json needs a path")?;
                // The runner works from the workspace root: make the path absolute first.
                let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
                parsed.json = Some(cwd.join(path));
            }
            "--only" => {
                let list = it.next().ok_or("--only needs a list such as W1,W3")?;
                parsed.mpi = list.split(',').any(|w| w.eq_ignore_ascii_case("W7"));
                parsed.passed.extend(["--only".to_string(), list.clone()]);
            }
            other => return Err(format!("bench: unknown option '{other}'")),
        }
    }
    Ok(parsed)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Builds the programs and runs the workloads.
pub fn bench(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let root = root();
    let target = root.join("target");
    std::env::set_current_dir(&root).map_err(|e| e.to_string())?;

    let mut build = vec![
        "build",
        "--release",
        "-p",
        "wengert-benches",
        "--bin",
        "wengert-bench",
    ];
    if args.mpi {
        // W7 runs the runner's ranks under mpirun: build it against the system's MPI (see the
        // README's MPI section for the packages).
        build.extend(["--features", "mpi"]);
    }
    run("cargo", &build)?;
    let baselines_target = target.join("bench-baselines");
    build_outside("benches/baselines/Cargo.toml", &baselines_target)?;
    let mut runner_args = vec!["run".to_string()];
    runner_args.extend(args.passed.iter().cloned());
    runner_args.extend([
        "--data".to_string(),
        path_str(&root.join("benches/data/digits.csv.gz")),
        "--baselines".to_string(),
        path_str(&baselines_target.join("release/wengert-bench-baselines")),
    ]);
    if args.peers {
        let peers_target = target.join("bench-peers");
        build_outside("benches/peers/Cargo.toml", &peers_target)?;
        runner_args.extend([
            "--peers".to_string(),
            path_str(&peers_target.join("release/wengert-bench-peers")),
            "--pytorch".to_string(),
            path_str(&root.join("benches/peers/pytorch_bench.py")),
            "--jax".to_string(),
            path_str(&root.join("benches/peers/jax_bench.py")),
        ]);
    }
    if let Some(json) = &args.json {
        runner_args.extend(["--json".to_string(), path_str(json)]);
    }
    let runner = path_str(&target.join("release/wengert-bench"));
    let refs: Vec<&str> = runner_args.iter().map(String::as_str).collect();
    run(&runner, &refs)
}

/// Builds a package that has its own workspace, into its own target directory.
fn build_outside(manifest: &str, target_dir: &Path) -> Result<(), String> {
    let target_dir = path_str(target_dir);
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--manifest-path",
            manifest,
            "--target-dir",
            &target_dir,
        ],
    )
}

/// `cargo xtask bench-check PATH`: checks the records a `--json` run wrote.
pub fn check(args: &[String]) -> Result<(), String> {
    let path = args
        .first()
        .ok_or("bench-check needs the path of a --json file")?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let path = path_str(&cwd.join(path));
    std::env::set_current_dir(root()).map_err(|e| e.to_string())?;
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "wengert-benches",
            "--bin",
            "wengert-bench",
        ],
    )?;
    run(
        &path_str(&root().join("target/release/wengert-bench")),
        &["check", &path],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_between_xtask_and_the_runner() {
        let args: Vec<String> = ["--quick", "--peers", "--json", "out.json", "--only", "W1"]
            .map(String::from)
            .to_vec();
        let parsed = parse(&args).unwrap();
        assert!(parsed.peers);
        assert!(parsed.json.unwrap().is_absolute());
        assert_eq!(parsed.passed, ["--quick", "--only", "W1"]);
        assert!(parse(&["--fast".to_string()]).is_err());
        assert!(parse(&["--json".to_string()]).is_err());
    }

    #[test]
    fn the_root_holds_the_workspace_and_the_bench_data() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("benches/data/digits.csv.gz").is_file());
        for script in ["pytorch_bench.py", "jax_bench.py"] {
            assert!(root().join("benches/peers").join(script).is_file());
        }
    }
}
