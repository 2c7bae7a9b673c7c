//! The runner behind `cargo xtask bench`: measures W1..W6 (W7 when asked) on wengert and its
//! baselines in one run, prints the table, and writes the records.
//!
//! ```text
//! wengert-bench run [--quick] [--json PATH] [--only W1,W3] [--data DIGITS.csv.gz]
//!                   [--baselines BIN] [--peers BIN] [--pytorch SCRIPT] [--jax SCRIPT]
//! wengert-bench check PATH          # checks a file written by --json
//! wengert-bench w5-child ENGINE N   # internal: W5 in a fresh process on N threads
//! wengert-bench w7-rank N [--quick] # internal: one rank of W7 (under mpirun), N threads
//! wengert-bench scaling W7.json ... # docs/SCALING.md's model, fitted to W7 records
//! ```
//!
//! `cargo xtask bench` builds this binary, the baselines program and (with `--peers`) the peers
//! program in release mode, then runs this with the paths filled in.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use wengert_benches::memory::w5_child;
use wengert_benches::record::{Record, check_json_text, parse_lines, to_json_text};
use wengert_benches::shared::{Effort, Split, digits_split};
use wengert_benches::{table, w7, workloads};

// W5 counts the allocations of its steps.
wengert_testkit::count_allocations!();

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => Options::parse(&args[1..]).and_then(|o| run(&o)),
        Some("check") => check(args.get(1)),
        Some("w5-child") => child(&args[1..]),
        Some("w7-rank") => w7_rank(&args[1..]),
        Some("scaling") => scaling(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wengert-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: wengert-bench run [--quick] [--json PATH] [--only W1,W2,...] \
[--data DIGITS.csv.gz] [--baselines BIN] [--peers BIN] [--pytorch SCRIPT] [--jax SCRIPT]
       wengert-bench check PATH";

#[derive(Debug)]
struct Options {
    effort: Effort,
    json: Option<PathBuf>,
    only: Vec<String>,
    data: PathBuf,
    baselines: Option<PathBuf>,
    peers: Option<PathBuf>,
    pytorch: Option<PathBuf>,
    jax: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            effort: Effort::from_args(args),
            json: None,
            only: ["W1", "W2", "W3", "W4", "W5", "W6"]
                .map(String::from)
                .to_vec(),
            data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz"),
            baselines: None,
            peers: None,
            pytorch: None,
            jax: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or(format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {}
                "--json" => o.json = Some(value()?.into()),
                "--only" => o.only = value()?.split(',').map(|s| s.to_uppercase()).collect(),
                "--data" => o.data = value()?.into(),
                "--baselines" => o.baselines = Some(value()?.into()),
                "--peers" => o.peers = Some(value()?.into()),
                "--pytorch" => o.pytorch = Some(value()?.into()),
                "--jax" => o.jax = Some(value()?.into()),
                other => return Err(format!("unknown option '{other}'\n{USAGE}")),
            }
        }
        Ok(o)
    }

    fn wants(&self, workload: &str) -> bool {
        self.only.iter().any(|w| w == workload)
    }

    /// Arguments passed on to the baselines and peers programs.
    fn forwarded(&self, threads: usize) -> Vec<String> {
        self.forwarded_only(threads, &self.only)
    }

    /// The argument lists of the Python peers' runs (they measure W1..W4 and W6): one per
    /// thread count wengert measures a workload on, with those workloads: on all threads (the
    /// last of `thread_counts`) every one, on fewer W1, and W2 and W6 where `step_threads`
    /// holds that count (a full run).
    fn python_runs(&self, thread_counts: &[usize], step_threads: &[usize]) -> Vec<Vec<String>> {
        let all = thread_counts.last().copied().unwrap_or(1);
        let mut runs = Vec::new();
        for &t in thread_counts {
            let only: Vec<String> = self
                .only
                .iter()
                .filter(|w| ["W1", "W2", "W3", "W4", "W6"].contains(&w.as_str()))
                .filter(|w| {
                    t == all
                        || *w == "W1"
                        || (matches!(w.as_str(), "W2" | "W6") && step_threads.contains(&t))
                })
                .cloned()
                .collect();
            if !only.is_empty() {
                runs.push(self.forwarded_only(t, &only));
            }
        }
        runs
    }

    /// [`forwarded`](Options::forwarded) with the workloads `only`.
    fn forwarded_only(&self, threads: usize, only: &[String]) -> Vec<String> {
        let mut args = vec![
            "--threads".to_string(),
            threads.to_string(),
            "--only".to_string(),
            only.join(","),
            "--data".to_string(),
            self.data.display().to_string(),
        ];
        if self.effort == Effort::Quick {
            args.push("--quick".to_string());
        }
        args
    }
}

type Job<'a> = Box<dyn FnOnce(&mut dyn FnMut(&str)) -> Result<Vec<Record>, String> + 'a>;

/// The load averages of `/proc/loadavg` (1, 5 and 15 minutes), if readable.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn run(o: &Options) -> Result<(), String> {
    let start = Instant::now();
    let load_before = load_average();
    eprintln!(
        "load average before the run: {load_before} (other work on the machine skews every figure)"
    );
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let thread_counts: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    // The training steps (W2, W6) on 1 thread and all in a full run, on all with `--quick`.
    let step_threads: Vec<usize> = match o.effort {
        Effort::Full => thread_counts.clone(),
        Effort::Quick => vec![all],
    };
    let effort = o.effort;
    let data = if o.wants("W4") {
        Some(load_digits(&o.data)?)
    } else {
        None
    };

    let mut jobs: Vec<(String, Job<'_>)> = Vec::new();
    if o.wants("W1") {
        // Every engine of W1 in the baselines program, which interleaves them; one process per
        // thread count, since matrixmultiply reads its thread count once per process.
        let bin = o.baselines.as_ref().ok_or(
            "W1 runs in the baselines program: pass --baselines BIN (`cargo xtask bench` does), \
             or leave W1 out with --only",
        )?;
        for &t in &thread_counts {
            let args = o.forwarded(t);
            jobs.push((
                format!(
                    "W1 matmul on {t} thread(s): wengert, matrixmultiply, gemm, FMA peak, interleaved"
                ),
                Box::new(move |p| external(bin, &args, &[("MATMUL_NUM_THREADS", t.to_string())], p)),
            ));
        }
    }
    if o.wants("W2") {
        jobs.push((
            "W2 MLP step: wengert, no-tape".into(),
            Box::new(|p| workloads::w2(effort, &step_threads, p)),
        ));
    }
    if o.wants("W3") {
        jobs.push((
            "W3 tiny ops: wengert, no-tape".into(),
            Box::new(move |p| workloads::w3(effort, all, p)),
        ));
    }
    if let Some(data) = &data {
        jobs.push((
            "W4 digits: wengert, no-tape".into(),
            Box::new(move |p| workloads::w4(effort, all, data, p)),
        ));
    }
    if o.wants("W5") {
        jobs.push((
            "W5 memory: wengert, no-tape (one child process each)".into(),
            Box::new(move |p| w5(all, p)),
        ));
    }
    if o.wants("W6") {
        jobs.push((
            "W6 CNN step: wengert, its convolutions alone".into(),
            Box::new(|p| workloads::w6(effort, &step_threads, p)),
        ));
    }
    if o.wants("W7") {
        jobs.push((
            "W7 data-parallel step over MPI: wengert (one mpirun per configuration)".into(),
            Box::new(move |p| w7(effort, all, p)),
        ));
    }
    if let Some(bin) = &o.peers {
        let args = o.forwarded(all);
        jobs.push((
            "peers: candle, dfdx".into(),
            Box::new(move |p| optional(external(bin, &args, &[], p), "peers", p)),
        ));
    }
    let python_runs = o.python_runs(&thread_counts, &step_threads);
    if let Some(script) = &o.pytorch {
        let runs = python_runs.clone();
        jobs.push((
            "peers: pytorch (eager)".into(),
            Box::new(move |p| python_peer(&PYTORCH, script, &runs, p)),
        ));
    }
    if let Some(script) = &o.jax {
        let runs = python_runs.clone();
        jobs.push((
            "peers: jax (jit; compile time reported apart)".into(),
            Box::new(move |p| python_peer(&JAX, script, &runs, p)),
        ));
    }

    let total = jobs.len();
    let mut records = Vec::new();
    for (i, (label, job)) in jobs.into_iter().enumerate() {
        eprintln!(
            "[{}/{total}] {label}  ({:.0} s elapsed)",
            i + 1,
            start.elapsed().as_secs_f64()
        );
        let mut progress = |line: &str| eprintln!("      {line}");
        records.extend(job(&mut progress)?);
    }

    if workloads::w6_against_w1(&mut records) > 0 {
        eprintln!(
            "W6: conv_over_w1 left out (W1 was not measured in this run on the same thread count)"
        );
    }
    println!("{}", table::render(&records));
    println!(
        "load average (1, 5, 15 min) before the run: {load_before}; after: {}",
        load_average()
    );
    if let Some(path) = &o.json {
        let text = to_json_text(&records);
        std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        check_json_text(&text)?;
        eprintln!("wrote {} records to {}", records.len(), path.display());
    }
    eprintln!(
        "bench finished in {:.0} s ({} mode)",
        start.elapsed().as_secs_f64(),
        if effort == Effort::Quick {
            "quick"
        } else {
            "full"
        }
    );
    Ok(())
}

fn load_digits(path: &Path) -> Result<(Split, Split), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut csv = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut csv)
        .map_err(|e| format!("cannot decompress {}: {e}", path.display()))?;
    digits_split(&csv)
}

/// Runs another benchmark program, streaming its progress lines and collecting its records.
fn external(
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut records = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading {}: {e}", program.display()))?;
        records.extend(parse_lines(&line, &mut *progress)?);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{} failed ({status})", program.display()));
    }
    Ok(records)
}

/// A peer that fails is reported and skipped: the engine's own figures still stand.
fn optional(
    result: Result<Vec<Record>, String>,
    what: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    match result {
        Ok(records) => Ok(records),
        Err(e) => {
            progress(&format!("{what}: skipped: {e}"));
            Ok(Vec::new())
        }
    }
}

/// A peer written in Python: the module its script needs, and the engine name it reports.
struct PythonPeer {
    engine: &'static str,
    module: &'static str,
}

const PYTORCH: PythonPeer = PythonPeer {
    engine: "pytorch",
    module: "torch",
};

const JAX: PythonPeer = PythonPeer {
    engine: "jax",
    module: "jax",
};

/// Runs `script` with `python3` once per argument list in `runs`, when `import MODULE` works;
/// skipped with the reason otherwise, and a failing run is reported and skipped.
fn python_peer(
    peer: &PythonPeer,
    script: &Path,
    runs: &[Vec<String>],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let (engine, module) = (peer.engine, peer.module);
    let probe = Command::new("python3")
        .args([
            "-c",
            &format!("import {module}; print({module}.__version__)"),
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            progress(&format!("{engine}: {module} {version}"));
            let mut records = Vec::new();
            for args in runs {
                let mut full = vec![script.display().to_string()];
                full.extend(args.iter().cloned());
                let python = PathBuf::from("python3");
                records.extend(optional(
                    external(&python, &full, &[], progress),
                    engine,
                    progress,
                )?);
            }
            Ok(records)
        }
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why.lines().last().unwrap_or("import failed");
            progress(&format!(
                "{engine}: skipped (`import {module}` failed in python3: {why})"
            ));
            Ok(Vec::new())
        }
        Err(e) => {
            progress(&format!("{engine}: skipped (no python3: {e})"));
            Ok(Vec::new())
        }
    }
}

fn w5(threads: usize, progress: &mut dyn FnMut(&str)) -> Result<Vec<Record>, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut records = Vec::new();
    for engine in ["wengert", "no-tape"] {
        let args = [
            "w5-child".to_string(),
            engine.to_string(),
            threads.to_string(),
        ];
        let got = external(&me, &args, &[], progress)?;
        for r in &got {
            progress(&format!(
                "W5 {engine}: peak RSS {:.1} MiB, {:.1} allocations per step",
                r.figures["peak_rss_mib"], r.figures["allocs_per_step"]
            ));
        }
        records.extend(got);
    }
    Ok(records)
}

/// W7 under `mpirun`, once per configuration; skipped with the reason when this binary was
/// built without MPI or `mpirun` cannot be started.
fn w7(effort: Effort, cores: usize, progress: &mut dyn FnMut(&str)) -> Result<Vec<Record>, String> {
    if !cfg!(feature = "mpi") {
        progress(
            "W7: skipped (this runner was built without the `mpi` feature; \
             `cargo xtask bench --only W7` builds it with MPI)",
        );
        return Ok(Vec::new());
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut records = Vec::new();
    for (processes, threads) in w7::configurations(cores) {
        let mut args: Vec<String> = [
            "--allow-run-as-root",
            "--oversubscribe",
            // Open MPI binds each rank to one core when there are at most two: that would put
            // a two-thread rank's workers on one core.
            "--bind-to",
            "none",
            "-np",
        ]
        .map(String::from)
        .to_vec();
        args.push(processes.to_string());
        args.push(me.display().to_string());
        args.extend(["w7-rank".to_string(), threads.to_string()]);
        if effort == Effort::Quick {
            args.push("--quick".to_string());
        }
        let got = match external(Path::new("mpirun"), &args, &[], progress) {
            Ok(got) => got,
            Err(e) if e.starts_with("cannot start") => {
                progress(&format!(
                    "W7: skipped ({e}; install MPI as the README says)"
                ));
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        for r in &got {
            let overlapped = if r.params.get("overlap") == Some(&1) {
                ", overlapped"
            } else {
                ""
            };
            progress(&format!(
                "W7 {processes} process(es) x {threads} thread(s){overlapped}: {:.2} ms/step, \
                 {:.0}% reducing",
                r.figures["ms_per_step"],
                100.0 * r.figures["reduce_share"]
            ));
        }
        records.extend(got);
    }
    // The workload's target: spreading over processes keeps at least 90% of the throughput of
    // one process using as many threads.
    let rate = |processes: u64, threads: u64| {
        records
            .iter()
            .find(|r| {
                r.params.get("processes") == Some(&processes)
                    && r.threads == threads
                    && r.params.get("overlap") != Some(&1)
            })
            .map(|r| r.figures["samples_per_s"])
    };
    let cores = cores as u64;
    if let (Some(spread), Some(threaded)) = (rate(cores, 1), rate(1, cores)) {
        progress(&format!(
            "W7 {cores} x 1 ÷ 1 x {cores} throughput: {:.2} (target at least 0.90)",
            spread / threaded
        ));
    }
    Ok(records)
}

#[cfg(feature = "mpi")]
fn w7_rank(args: &[String]) -> Result<(), String> {
    let threads: usize = args
        .first()
        .and_then(|t| t.parse().ok())
        .ok_or("w7-rank needs a thread count")?;
    for record in w7::w7_rank(threads, Effort::from_args(args))? {
        println!("{}", record.to_json());
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn w7_rank(_args: &[String]) -> Result<(), String> {
    Err("w7-rank needs the runner built with the `mpi` feature".into())
}

/// `scaling FILE...`: the cost model of docs/SCALING.md fitted to the W7 records in the files
/// (`--json` output of a W7 run, or JSON lines a rank printed).
fn scaling(paths: &[String]) -> Result<(), String> {
    if paths.is_empty() {
        return Err("scaling needs W7 records: the --json file of `--only W7`".into());
    }
    let mut records = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        records.extend(match check_json_text(&text) {
            Ok(records) => records,
            Err(_) => parse_lines(&text, &mut |_: &str| {}).map_err(|e| format!("{path}: {e}"))?,
        });
    }
    let report = wengert_benches::scaling::report(&records, |batch| {
        workloads::w2_step_flops(&wengert_benches::shared::W2_LAYERS, batch)
    })?;
    println!("{report}");
    Ok(())
}

fn child(args: &[String]) -> Result<(), String> {
    let engine = args.first().ok_or("w5-child needs an engine")?;
    let threads: usize = args
        .get(1)
        .and_then(|t| t.parse().ok())
        .ok_or("w5-child needs a thread count")?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| e.to_string())?;
    let record = w5_child(engine, threads)?;
    println!("{}", record.to_json());
    Ok(())
}

fn check(path: Option<&String>) -> Result<(), String> {
    let path = path.ok_or("check needs the path of a --json file")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let records = check_json_text(&text).map_err(|e| format!("{path}: {e}"))?;
    let workloads: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.workload.as_str()).collect();
    println!(
        "{path}: {} valid records ({})",
        records.len(),
        workloads.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_lists(runs: &[Vec<String>]) -> Vec<(String, String)> {
        runs.iter()
            .map(|args| (args[1].clone(), args[3].clone()))
            .collect()
    }

    #[test]
    fn the_python_peers_run_on_the_thread_counts_wengert_measures() {
        let o = Options::parse(&[]).unwrap();
        let full = o.python_runs(&[1, 2], &[1, 2]);
        assert_eq!(
            only_lists(&full),
            [
                ("1".into(), "W1,W2,W6".into()),
                ("2".into(), "W1,W2,W3,W4,W6".into())
            ]
        );
        let quick = o.python_runs(&[1, 2], &[2]);
        assert_eq!(
            only_lists(&quick),
            [
                ("1".into(), "W1".into()),
                ("2".into(), "W1,W2,W3,W4,W6".into())
            ]
        );
        let args: Vec<String> = ["--only", "W5,W6"].map(String::from).to_vec();
        let o = Options::parse(&args).unwrap();
        assert_eq!(
            only_lists(&o.python_runs(&[1, 2], &[2])),
            [("2".into(), "W6".into())]
        );
        assert_eq!(
            only_lists(&o.python_runs(&[1], &[1])),
            [("1".into(), "W6".into())]
        );
    }
}
