//! Successful runs: the files written, reproducibility, the help text.

use serde_json::Value;

use crate::{stderr, stdout, wengert, write_small_csv};

/// A quick run on the embedded digits (small network, two epochs).
const QUICK: &[&str] = &[
    "train", "--hidden", "16", "--epochs", "2", "--lr", "0.01", "--quiet",
];

#[test]
fn train_writes_metrics_csv_json_and_the_svg_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = wengert(dir.path(), &[QUICK, &["--out", "run"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("the UCI digits (embedded)"), "{text}");
    assert!(text.contains("test accuracy"), "{text}");
    assert!(
        text.contains("rows: actual class; columns: predicted class"),
        "{text}"
    );

    let run = dir.path().join("run");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "test_accuracy",
        "train_accuracy",
        "final_loss",
        "epochs",
        "train_seconds",
        "seed",
    ] {
        assert!(
            json.get(key).is_some_and(|v| !v.is_null()),
            "{key} missing from {json}"
        );
    }
    assert_eq!(json["epochs"], 2);
    assert!(json["test_accuracy"].as_f64().unwrap() > 0.5, "{json}");

    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[2].starts_with("2,"));

    let svg = std::fs::read_to_string(run.join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("accuracy") && svg.contains("validation"));
    // The model, a checkpoint per epoch (41 steps each) and the run's lock file, and nothing
    // else (no temporary files).
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".wengert.lock",
            "checkpoint-41.ckpt",
            "checkpoint-82.ckpt",
            "curves.svg",
            "metrics.csv",
            "metrics.json",
            "model.tape"
        ]
    );
}

#[test]
fn the_last_lines_list_every_file_the_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = wengert(
        dir.path(),
        &[QUICK, &["--out", "run", "--keep-checkpoints", "1"]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let tail: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "wrote:")
        .skip(1)
        .collect();
    let listed: Vec<String> = tail
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("run/"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != ".wengert.lock")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "{text}");
    assert_eq!(listed[0], "model.tape", "{text}");
    assert!(
        tail.iter()
            .any(|l| l.contains("run/checkpoint-82.ckpt") && l.contains("--resume run")),
        "{text}"
    );
    assert_eq!(
        tail.last().map(|l| l.trim()),
        Some("(1 older checkpoint of this run removed, as --keep-checkpoints says)"),
        "{text}"
    );
}

#[test]
fn the_same_seed_gives_the_same_metrics_apart_from_time() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str| -> Value {
        let out = wengert(
            dir.path(),
            &[QUICK, &["--seed", "7", "--batch-size", "64", "--out", name]].concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mut v: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(name).join("metrics.json")).unwrap(),
        )
        .unwrap();
        v.as_object_mut().unwrap().remove("train_seconds");
        v
    };
    let (a, b) = (read("a"), read("b"));
    assert_eq!(a, b);
    assert_eq!(a["seed"], 7);
    let other = wengert(
        dir.path(),
        &[QUICK, &["--seed", "8", "--batch-size", "64", "--out", "c"]].concat(),
    );
    assert!(other.status.success());
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c/metrics.json")).unwrap())
            .unwrap();
    assert_ne!(a["final_loss"], c["final_loss"]);
}

#[test]
fn the_default_output_directory_is_runs_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let out = wengert(dir.path(), QUICK);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);
    let name = runs[0].as_ref().unwrap().file_name().into_string().unwrap();
    // YYYYMMDD-HHMMSS
    assert_eq!(name.len(), 15, "{name}");
    assert!(
        runs[0]
            .as_ref()
            .unwrap()
            .path()
            .join("metrics.json")
            .is_file()
    );
}

#[test]
fn a_csv_file_with_every_option() {
    let dir = tempfile::tempdir().unwrap();
    write_small_csv(&dir.path().join("small.csv"));
    for optimizer in ["sgd", "momentum", "adam", "adamw"] {
        let out = wengert(
            dir.path(),
            &[
                "train",
                "--data",
                "small.csv",
                "--label-column",
                "label",
                "--header",
                "yes",
                "--hidden",
                "8,4",
                "--activation",
                "tanh",
                "--optimizer",
                optimizer,
                "--lr",
                "0.05",
                "--weight-decay",
                "0.001",
                "--batch-size",
                "48",
                "--epochs",
                "3",
                "--seed",
                "1",
                "--validation-split",
                "0.2",
                "--test-split",
                "0.25",
                "--patience",
                "2",
                "--threads",
                "1",
                "--out",
                optimizer,
                "--quiet",
            ],
        );
        assert!(out.status.success(), "{optimizer}: {}", stderr(&out));
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(optimizer).join("metrics.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["optimizer"], optimizer);
        assert_eq!(json["sizes"], serde_json::json!([2, 8, 4, 2]));
        assert_eq!(json["test_examples"], 15);
    }
}

#[test]
fn help_documents_every_command_and_option() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[(&str, &[&str])] = &[
        (
            "train",
            &[
                "--data",
                "--mnist",
                "--label-column",
                "--header",
                "--model",
                "--hidden",
                "--channels",
                "--dropout",
                "--activation",
                "--optimizer",
                "--lr",
                "--weight-decay",
                "--batch-size",
                "--epochs",
                "--seed",
                "--validation-split",
                "--test-split",
                "--patience",
                "--threads",
                "--out",
                "--quiet",
                "--keep-checkpoints",
                "--resume",
                "model.tape",
                "checkpoint-<step>.ckpt",
            ],
        ),
        (
            "eval",
            &[
                "--model",
                "--data",
                "--label-column",
                "--header",
                "--seed",
                "--test-split",
            ],
        ),
        (
            "predict",
            &["--model", "--data", "--header", "--output", "prob_0"],
        ),
        (
            "export",
            &[
                "--model",
                "--safetensors",
                "--weights",
                "layers.<i>.weight",
                "conv.<i>.weight",
            ],
        ),
    ];
    let top = stdout(&wengert(dir.path(), &["--help"]));
    for (command, options) in commands {
        assert!(top.contains(command), "{command} missing from:\n{top}");
        let out = wengert(dir.path(), &[command, "--help"]);
        assert!(out.status.success());
        let help = stdout(&out);
        for option in *options {
            assert!(
                help.contains(option),
                "{command}: {option} missing from:\n{help}"
            );
        }
    }
    let out = wengert(dir.path(), &["fly"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unrecognized subcommand"),
        "{}",
        stderr(&out)
    );
}
