//! One run per output directory: a run locks its directory for its life, a fresh run never
//! writes into another run's directory, a resumed run touches only its own checkpoints, and a
//! run killed at any moment resumes to the same end.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::errors::fails;
use crate::{stderr, stdout, wengert, write_small_csv};

/// A quick run on the embedded digits: 41 steps per epoch.
const QUICK: &[&str] = &[
    "train",
    "--hidden",
    "8",
    "--lr",
    "0.01",
    "--quiet",
    "--patience",
    "0",
];

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = wengert(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Waits until `cond` holds, for at most a minute.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether another process holds the lock of the run directory `dir`.
fn locked(dir: &Path) -> bool {
    match std::fs::File::open(dir.join(".wengert.lock")) {
        Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[test]
fn of_two_runs_with_the_same_out_one_is_refused_and_the_other_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_small_csv(&d.join("small.csv"));
    let csv = std::fs::read(d.join("small.csv")).unwrap();
    // The first run reads its data from standard input, which is held open: it has locked its
    // directory (before reading any data) and waits.
    let mut first = Command::new(env!("CARGO_BIN_EXE_wengert"))
        .args(["train", "--data", "/dev/stdin", "--hidden", "8"])
        .args(["--epochs", "3", "--quiet", "--out", "same"])
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first run's lock", || locked(&d.join("same")));
    let err = fails(d, &[QUICK, &["--epochs", "1", "--out", "same"]].concat(), 1);
    assert!(
        err.contains(&format!(
            "--out same: another run (process {}) is writing there",
            first.id()
        )),
        "{err}"
    );
    // Resuming it while it runs is refused as well.
    let err = fails(d, &["train", "--resume", "same", "--epochs", "9"], 1);
    assert!(err.contains("another run"), "{err}");
    let mut input = first.stdin.take().unwrap();
    input.write_all(&csv).unwrap();
    drop(input);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let left = names(&d.join("same"));
    assert!(left.contains(&"model.tape".to_string()), "{left:?}");
    assert_eq!(left.iter().filter(|n| n.ends_with(".ckpt")).count(), 3);
}

#[test]
fn runs_started_together_get_a_default_directory_each() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_wengert"))
                .args([QUICK, &["--epochs", "1"]].concat())
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let runs = names(&d.join("runs"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    for run in &runs {
        let dir = d.join("runs").join(run);
        assert!(dir.join("model.tape").is_file(), "{run}");
        assert_eq!(
            names(&dir).iter().filter(|n| n.ends_with(".ckpt")).count(),
            1,
            "{run}"
        );
    }
}

#[test]
fn a_fresh_run_in_another_runs_directory_is_refused_and_leaves_it_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_ok(d, &[QUICK, &["--epochs", "2", "--out", "r"]].concat());
    // Every file but the lock's (which names its last holder).
    let contents = || -> Vec<(String, Vec<u8>)> {
        names(&d.join("r"))
            .into_iter()
            .filter(|n| n != ".wengert.lock")
            .map(|n| (n.clone(), std::fs::read(d.join("r").join(&n)).unwrap()))
            .collect()
    };
    let before = contents();
    let err = fails(d, &[QUICK, &["--epochs", "3", "--out", "r"]].concat(), 1);
    assert!(
        err.contains("--out r holds another run (checkpoint-41.ckpt, checkpoint-82.ckpt, "),
        "{err}"
    );
    assert!(err.contains("`wengert train --resume r`"), "{err}");
    assert!(before == contents(), "the refused run changed r");
    // Its results alone (the checkpoints deleted) are a run too.
    for ckpt in ["checkpoint-41.ckpt", "checkpoint-82.ckpt"] {
        std::fs::remove_file(d.join("r").join(ckpt)).unwrap();
    }
    let err = fails(d, &[QUICK, &["--out", "r"]].concat(), 1);
    assert!(err.contains("(model.tape, metrics.json)"), "{err}");
    // Resuming into a directory holding another run is refused the same way.
    run_ok(d, &[QUICK, &["--epochs", "1", "--out", "s"]].concat());
    let err = fails(
        d,
        &["train", "--resume", "s", "--epochs", "2", "--out", "r"],
        1,
    );
    assert!(err.contains("--out r holds another run"), "{err}");
}

#[test]
fn resuming_prunes_only_the_runs_own_checkpoints_and_files_named_like_one_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Files named like checkpoints that are not ones: in the way of nothing (this used to
    // abort the first save with "cannot remove r/checkpoint-1.ckpt").
    std::fs::create_dir(d.join("r")).unwrap();
    std::fs::write(d.join("r/checkpoint-01.ckpt"), b"notes").unwrap();
    std::fs::write(d.join("r/checkpoint-7.ckpt"), b"more notes").unwrap();
    run_ok(
        d,
        &[
            QUICK,
            &["--epochs", "2", "--keep-checkpoints", "2", "--out", "r"],
        ]
        .concat(),
    );
    // Another run's checkpoint among them, with the lowest step: pruning would take it
    // first if it took any file by its name.
    run_ok(d, &[QUICK, &["--epochs", "1", "--out", "other"]].concat());
    let foreign = std::fs::read(d.join("other/checkpoint-41.ckpt")).unwrap();
    std::fs::write(d.join("r/checkpoint-1.ckpt"), &foreign).unwrap();
    run_ok(d, &["train", "--resume", "r", "--epochs", "5", "--quiet"]);
    let ckpts: Vec<String> = names(&d.join("r"))
        .into_iter()
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    assert_eq!(
        ckpts,
        [
            "checkpoint-01.ckpt",
            "checkpoint-1.ckpt",
            "checkpoint-123.ckpt",
            "checkpoint-164.ckpt",
            "checkpoint-205.ckpt",
            "checkpoint-7.ckpt"
        ]
    );
    assert_eq!(
        std::fs::read(d.join("r/checkpoint-1.ckpt")).unwrap(),
        foreign
    );
    assert_eq!(
        std::fs::read(d.join("r/checkpoint-01.ckpt")).unwrap(),
        b"notes"
    );
}

#[test]
fn out_is_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("afile"), b"x").unwrap();
    let err = fails(d, &[QUICK, &["--out", "afile"]].concat(), 1);
    assert!(err.contains("--out afile is not a directory"), "{err}");
    let err = fails(d, &[QUICK, &["--out", "afile/sub"]].concat(), 1);
    assert!(
        err.contains("--out afile/sub: cannot create the directory"),
        "{err}"
    );
    // A directory that cannot be written (unless this runs as root, whom permissions do not
    // stop).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let err = fails(d, &[QUICK, &["--out", "ro"]].concat(), 1);
            assert!(err.contains("--out ro is not writable"), "{err}");
        }
    }
    // A failed run leaves no empty default directory behind.
    let err = fails(d, &["train", "--data", "missing.csv", "--quiet"], 1);
    assert!(err.contains("missing.csv"), "{err}");
    assert_eq!(names(&d.join("runs")), Vec::<String>::new());
}

#[test]
fn a_run_killed_mid_way_resumes_to_the_same_bytes_and_its_debris_is_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = [QUICK, &["--epochs", "20", "--seed", "4"]].concat();
    run_ok(d, &[&run[..], &["--out", "straight"]].concat());
    let mut child = Command::new(env!("CARGO_BIN_EXE_wengert"))
        .args([&run[..], &["--out", "killed"]].concat())
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the second checkpoint", || {
        d.join("killed/checkpoint-82.ckpt").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !d.join("killed/model.tape").exists(),
        "the run ended before it was killed"
    );
    // What a write killed mid-way leaves; and someone else's file of a like name.
    std::fs::write(d.join("killed/.checkpoint-123.ckpt.4000000.0.tmp"), b"half").unwrap();
    std::fs::write(d.join("killed/.notes.tmp"), b"mine").unwrap();
    run_ok(
        d,
        &["train", "--resume", "killed", "--epochs", "20", "--quiet"],
    );
    for file in ["model.tape", "metrics.csv"] {
        let strip = |dir: &str| -> Vec<u8> {
            let bytes = std::fs::read(d.join(dir).join(file)).unwrap();
            if file == "metrics.csv" {
                // Without the seconds column.
                String::from_utf8(bytes)
                    .unwrap()
                    .lines()
                    .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
                    .collect::<String>()
                    .into_bytes()
            } else {
                bytes
            }
        };
        assert!(strip("killed") == strip("straight"), "{file} differs");
    }
    let left = names(&d.join("killed"));
    assert!(
        !left
            .iter()
            .any(|n| n.ends_with(".tmp") && n != ".notes.tmp"),
        "debris left: {left:?}"
    );
    assert!(left.contains(&".notes.tmp".to_string()));
}
