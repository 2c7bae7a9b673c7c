//! `--accumulate`, and `mpirun -np N wengert train` on loopback (with the `mpi` feature):
//! weights bit-identical to one process accumulating the same micro-batches, resuming on
//! another number of ranks, and a job that ends with an error, never a hang, when a rank is
//! killed, fails or disagrees. Without the feature the MPI tests print why they are skipped.

use crate::{stderr, wengert};

/// A short run on the embedded digits: 3 epochs in batches of 32, as 4 micro-batches of 8.
const RUN: [&str; 10] = [
    "train",
    "--seed",
    "3",
    "--batch-size",
    "32",
    "--accumulate",
    "4",
    "--hidden",
    "16",
    "--quiet",
];

#[test]
fn accumulate_must_divide_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = wengert(
        dir.path(),
        &[
            "train",
            "--batch-size",
            "30",
            "--accumulate",
            "4",
            "--quiet",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--accumulate must be at least 1 and divide --batch-size 30"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_accumulating_run_keeps_its_setting_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = RUN.to_vec();
    args.extend(["--epochs", "1", "--out", "run"]);
    let out = wengert(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wengert(
        dir.path(),
        &[
            "train",
            "--resume",
            "run",
            "--epochs",
            "2",
            "--accumulate",
            "2",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--accumulate 2 differs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bucket_size_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for size in ["-1", "2048", "NaN"] {
        let mut args = RUN.to_vec();
        args.extend(["--epochs", "1", "--bucket-mib", size]);
        let out = wengert(dir.path(), &args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("--bucket-mib must be between 0 and 1024"),
            "{}",
            stderr(&out)
        );
    }
}

#[cfg(not(feature = "mpi"))]
#[test]
fn mpi_tests_need_the_mpi_feature() {
    println!(
        "skipped: the MPI tests need `--features mpi` (cargo test -p wengert-cli --features mpi)"
    );
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::RUN;
    use crate::{stderr, stdout, wengert};

    /// `mpirun` on loopback, as root too, with more ranks than cores.
    fn mpirun(dir: &Path) -> Command {
        let mut cmd = Command::new("mpirun");
        cmd.args(["--allow-run-as-root", "--oversubscribe"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `mpirun -np ranks wengert args`.
    fn on_ranks(dir: &Path, ranks: usize, args: &[&str]) -> Output {
        let mut cmd = mpirun(dir);
        cmd.args(["-np", &ranks.to_string(), env!("CARGO_BIN_EXE_wengert")])
            .args(args);
        finish(cmd.spawn().expect("mpirun runs"), Duration::from_secs(120))
    }

    /// Waits for `child` at most `limit`: a job that hangs fails the test rather than CI.
    fn finish(mut child: Child, limit: Duration) -> Output {
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("mpirun still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    #[test]
    fn two_and_four_ranks_match_one_accumulating_process_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        fn run<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
            let mut args = RUN.to_vec();
            args.extend(["--epochs", epochs, "--out", out]);
            args
        }
        check_ok(&wengert(dir.path(), &run("one", "3")));
        for ranks in [2, 4] {
            let out = format!("n{ranks}");
            let job = on_ranks(dir.path(), ranks, &run(&out, "3"));
            check_ok(&job);
            // Rank 0 alone reports.
            assert_eq!(stdout(&job).matches("training an MLP").count(), 1);
            assert_eq!(
                read(&dir.path().join("one/model.tape")),
                read(&dir.path().join(format!("{out}/model.tape"))),
                "{ranks} ranks"
            );
        }

        // Stopped after 2 epochs on 4 ranks, resumed to 3 on 2: still the same bits.
        check_ok(&on_ranks(dir.path(), 4, &run("stop", "2")));
        let resumed = on_ranks(
            dir.path(),
            2,
            &["train", "--resume", "stop", "--epochs", "3"],
        );
        check_ok(&resumed);
        assert!(stdout(&resumed).contains("resuming from"));
        assert_eq!(
            read(&dir.path().join("one/model.tape")),
            read(&dir.path().join("stop/model.tape"))
        );
    }

    #[test]
    fn reducing_in_buckets_during_the_sweep_keeps_the_bits() {
        let dir = tempfile::tempdir().unwrap();
        fn run<'a>(out: &'a str, bucket_mib: &'a str) -> Vec<&'a str> {
            let mut args = RUN.to_vec();
            args.extend(["--epochs", "2", "--out", out, "--bucket-mib", bucket_mib]);
            args
        }
        // The reference: one process, reducing (trivially) after the sweep.
        check_ok(&wengert(dir.path(), &run("once", "0")));
        // The 64-16-10 network's parameters hold 1024, 16, 160 and 10 elements: 105 bytes
        // make 2 buckets (the last two parameters, then the first two), 10 bytes 4.
        check_ok(&wengert(dir.path(), &run("local", "0.0001")));
        check_ok(&on_ranks(dir.path(), 2, &run("n2", "0.0001")));
        check_ok(&on_ranks(dir.path(), 4, &run("n4", "0.00001")));
        check_ok(&on_ranks(dir.path(), 4, &run("n4once", "0")));
        let reference = read(&dir.path().join("once/model.tape"));
        for out in ["local", "n2", "n4", "n4once"] {
            assert_eq!(
                reference,
                read(&dir.path().join(format!("{out}/model.tape"))),
                "{out}"
            );
        }
    }

    #[test]
    fn without_accumulate_each_rank_takes_one_micro_batch() {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "train", "--hidden", "8", "--epochs", "1", "--quiet", "--out",
        ];
        let mut one = args.to_vec();
        one.extend(["one", "--accumulate", "2"]);
        check_ok(&wengert(dir.path(), &one));
        let mut two = args.to_vec();
        two.push("two");
        check_ok(&on_ranks(dir.path(), 2, &two));
        assert_eq!(
            read(&dir.path().join("one/model.tape")),
            read(&dir.path().join("two/model.tape"))
        );
        // Three processes cannot share a tree of micro-batches.
        let job = on_ranks(dir.path(), 3, &args[..6]);
        assert!(!job.status.success());
        assert!(
            stderr(&job).contains("needs a power of two"),
            "{}",
            stderr(&job)
        );
    }

    #[test]
    fn ranks_with_other_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let exe = env!("CARGO_BIN_EXE_wengert");
        let mut cmd = mpirun(dir.path());
        cmd.args(["-np", "1", exe])
            .args(RUN)
            .args([":", "-np", "1", exe])
            .args(RUN)
            .args(["--lr", "0.5"]);
        let job = finish(cmd.spawn().unwrap(), Duration::from_secs(60));
        assert!(!job.status.success());
        assert!(
            stderr(&job).contains("rank 1 differs from rank 0 in its settings"),
            "{}",
            stderr(&job)
        );
    }

    #[test]
    fn a_failing_rank_ends_the_job_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        // Rank 0 cannot make its run directory (checked before any data is read); rank 1,
        // which holds no directory, goes on to its first step and waits there for rank 0.
        let mut args = RUN.to_vec();
        args.extend(["--epochs", "50", "--patience", "0", "--out", "file/run"]);
        let job = on_ranks(dir.path(), 2, &args);
        assert!(!job.status.success());
        assert!(
            stderr(&job)
                .contains("error: rank 0 of 2: --out file/run: cannot create the directory"),
            "{}",
            stderr(&job)
        );
    }

    #[test]
    fn a_killed_rank_ends_the_job_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = RUN.to_vec();
        args.extend(["--epochs", "100000", "--patience", "0", "--out", "run"]);
        let mut cmd = mpirun(dir.path());
        cmd.args(["-np", "2", env!("CARGO_BIN_EXE_wengert")])
            .args(&args);
        let child = cmd.spawn().unwrap();
        // Both ranks running, then one killed.
        let start = Instant::now();
        let ranks = loop {
            let ranks = children(child.id());
            if ranks.len() == 2 || start.elapsed() > Duration::from_secs(60) {
                break ranks;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(ranks.len(), 2, "the ranks did not start");
        std::thread::sleep(Duration::from_millis(500));
        let killed = Instant::now();
        assert!(
            Command::new("kill")
                .args(["-9", &ranks[1].to_string()])
                .status()
                .unwrap()
                .success()
        );
        let job = finish(child, Duration::from_secs(60));
        assert!(!job.status.success());
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the job took {:?} to end",
            killed.elapsed()
        );
        assert!(stderr(&job).contains("signal 9"), "{}", stderr(&job));
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Fails with the job's output unless it succeeded.
    fn check_ok(out: &Output) {
        assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    }

    /// The `wengert` processes whose parent is `parent`, by pid.
    fn children(parent: u32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = tail.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if head.ends_with("(wengert") && ppid == Some(parent) {
                found.extend(
                    head.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<u32>().ok()),
                );
            }
        }
        found.sort_unstable();
        found
    }
}
