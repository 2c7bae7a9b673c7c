//! Bad input: one line on standard error, a non-zero exit code, never a panic.

use std::path::Path;

use crate::{stderr, wengert, write_small_csv};

/// Runs `args` in `dir` and returns the single line of standard error, checking the exit code.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let out = wengert(dir, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "more than one line: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn a_missing_file_or_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["train", "--data", "nope.csv"], 1);
    assert!(err.contains("nope.csv"), "{err}");
    let err = fails(dir.path(), &["train", "--mnist", "nowhere"], 1);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_malformed_row_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.csv"), "1,2,0\n3,4,1\n5,1\n").unwrap();
    let err = fails(dir.path(), &["train", "--data", "short.csv"], 1);
    assert!(
        err.contains("short.csv, line 3: 2 fields, but line 1 has 3"),
        "{err}"
    );
}

#[test]
fn a_non_numeric_value_names_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("text.csv"), "a,b,c\n1,2,0\n3,four,1\n").unwrap();
    let err = fails(dir.path(), &["train", "--data", "text.csv"], 1);
    assert!(
        err.contains("text.csv, line 3: field 2 (`four`) is not a number"),
        "{err}"
    );
}

#[test]
fn a_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("neg.csv"), "1,2,0\n3,4,-1\n").unwrap();
    let err = fails(dir.path(), &["train", "--data", "neg.csv"], 1);
    assert!(
        err.contains("neg.csv, line 2: label `-1` is out of range"),
        "{err}"
    );
    // MNIST labels above 9.
    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let idx = |dims: &[u32], data: &[u8]| {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    };
    for prefix in ["train", "t10k"] {
        std::fs::write(
            mnist.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[2, 1, 1], &[0, 1]),
        )
        .unwrap();
        std::fs::write(
            mnist.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[2], &[3, 12]),
        )
        .unwrap();
    }
    let err = fails(dir.path(), &["train", "--mnist", "mnist"], 1);
    assert!(
        err.contains("label 12 of example 1 is out of range for 10 classes"),
        "{err}"
    );
}

#[test]
fn a_label_column_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    write_small_csv(&dir.path().join("small.csv"));
    let err = fails(
        dir.path(),
        &["train", "--data", "small.csv", "--label-column", "species"],
        1,
    );
    assert!(err.contains("no column named `species`"), "{err}");
    let err = fails(
        dir.path(),
        &["train", "--data", "small.csv", "--label-column", "7"],
        1,
    );
    assert!(err.contains("label column 7 is out of range"), "{err}");
}

#[test]
fn impossible_options() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["train", "--validation-split", "1.5"],
            1,
            "--validation-split",
        ),
        (&["train", "--test-split", "-0.1"], 1, "--test-split"),
        (&["train", "--weight-decay", "-1"], 1, "--weight-decay"),
        (&["train", "--batch-size", "0"], 1, "--batch-size"),
        (&["train", "--epochs", "0"], 1, "--epochs"),
        (&["train", "--hidden", "16,0"], 1, "--hidden"),
        (&["train", "--lr", "-1"], 1, "--lr"),
        (&["train", "--lr", "fast"], 2, "--lr"),
        (&["train", "--optimizer", "lbfgs"], 2, "lbfgs"),
        (&["train", "--activation", "swish"], 2, "swish"),
        (&["train", "--threads", "0"], 1, "--threads"),
        (
            &["train", "--data", "a.csv", "--mnist", "dir"],
            2,
            "--mnist",
        ),
        (
            &["train", "--mnist", "dir", "--label-column", "3"],
            1,
            "--label-column",
        ),
        (&["train", "--frobnicate"], 2, "--frobnicate"),
    ];
    for (args, code, needle) in cases {
        let err = fails(dir.path(), args, *code);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_diverging_learning_rate_is_reported_with_its_step() {
    let dir = tempfile::tempdir().unwrap();
    write_small_csv(&dir.path().join("small.csv"));
    let err = fails(
        dir.path(),
        &[
            "train",
            "--data",
            "small.csv",
            "--optimizer",
            "sgd",
            "--lr",
            "1e30",
            "--quiet",
            "--out",
            "r",
        ],
        1,
    );
    assert!(
        err.contains("training diverged") && err.contains("at step"),
        "{err}"
    );
}
