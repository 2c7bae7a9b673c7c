//! Saving and loading: `train` writes model.tape and checkpoints, `--resume` continues a run
//! to the very same end, and `eval`, `predict` and `export` use a saved model in a new
//! process; damaged files are refused with one line.

use std::path::Path;

use serde_json::Value;
use wengert_io::{LoadOptions, TapeModel, load_weights};

use crate::errors::fails;
use crate::{stderr, stdout, wengert, write_small_csv};

/// A quick run on the embedded digits.
const QUICK: &[&str] = &[
    "train",
    "--hidden",
    "16",
    "--lr",
    "0.01",
    "--batch-size",
    "64",
    "--quiet",
];

/// The small CSV problem with a learning rate that makes early stopping end the run at
/// epoch 11 (best epoch 9) with patience 2.
const STOPS_EARLY: &[&str] = &[
    "train",
    "--data",
    "small.csv",
    "--hidden",
    "8",
    "--lr",
    "0.3",
    "--patience",
    "2",
    "--batch-size",
    "8",
    "--quiet",
];

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = wengert(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// metrics.json without the time.
fn metrics(run: &Path) -> Value {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("train_seconds");
    v
}

/// metrics.csv without its seconds column.
fn metrics_csv(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// Asserts that two runs ended the same: metrics (apart from time) and the model's bytes.
fn same_end(a: &Path, b: &Path) {
    assert_eq!(metrics(a), metrics(b));
    assert_eq!(metrics_csv(a), metrics_csv(b));
    assert!(
        std::fs::read(a.join("model.tape")).unwrap()
            == std::fs::read(b.join("model.tape")).unwrap(),
        "the models differ"
    );
}

fn checkpoints(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    // By step: checkpoint-<step>.ckpt.
    names.sort_by_key(|n| {
        n.trim_start_matches("checkpoint-")
            .trim_end_matches(".ckpt")
            .parse::<u64>()
            .unwrap()
    });
    names
}

#[test]
fn a_resumed_run_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(
        d,
        &[
            QUICK,
            &["--epochs", "2", "--patience", "2", "--out", "resumed"],
        ]
        .concat(),
    );
    // Only --epochs is given again: the other settings come from the checkpoint.
    let text = run_ok(
        d,
        &["train", "--resume", "resumed", "--epochs", "4", "--quiet"],
    );
    assert!(
        text.contains("resuming from resumed/checkpoint-42.ckpt (epoch 2, step 42)"),
        "{text}"
    );
    run_ok(
        d,
        &[
            QUICK,
            &["--epochs", "4", "--patience", "2", "--out", "straight"],
        ]
        .concat(),
    );
    same_end(&d.join("resumed"), &d.join("straight"));
    assert_eq!(metrics(&d.join("straight"))["epochs"], 4);
    // The last three checkpoints are kept, in both.
    let kept = [
        "checkpoint-42.ckpt",
        "checkpoint-63.ckpt",
        "checkpoint-84.ckpt",
    ];
    assert_eq!(checkpoints(&d.join("resumed")), kept);
    assert_eq!(checkpoints(&d.join("straight")), kept);
}

#[test]
fn early_stopping_ends_a_resumed_run_where_it_ends_a_straight_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_small_csv(&d.join("small.csv"));
    run_ok(
        d,
        &[STOPS_EARLY, &["--epochs", "30", "--out", "straight"]].concat(),
    );
    let straight = metrics(&d.join("straight"));
    assert_eq!(
        (
            &straight["epochs"],
            &straight["best_epoch"],
            &straight["stopped_early"]
        ),
        (&Value::from(11), &Value::from(9), &Value::from(true))
    );
    // Stopped after 5 epochs (before the best), after 10 (one epoch without improvement) and
    // after 11 (stopped early already): each resumed to 30 ends as the straight run.
    for first in ["5", "10", "11"] {
        let name = format!("from{first}");
        run_ok(
            d,
            &[STOPS_EARLY, &["--epochs", first, "--out", &name]].concat(),
        );
        run_ok(
            d,
            &["train", "--resume", &name, "--epochs", "30", "--quiet"],
        );
        same_end(&d.join(&name), &d.join("straight"));
    }
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_and_the_run_still_ends_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_small_csv(&d.join("small.csv"));
    run_ok(
        d,
        &[STOPS_EARLY, &["--epochs", "30", "--out", "straight"]].concat(),
    );
    run_ok(
        d,
        &[
            STOPS_EARLY,
            &["--epochs", "4", "--keep-checkpoints", "2", "--out", "r"],
        ]
        .concat(),
    );
    let names = checkpoints(&d.join("r"));
    assert_eq!(names, ["checkpoint-18.ckpt", "checkpoint-24.ckpt"]);
    let newest = d.join("r").join(&names[1]);
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let out = wengert(d, &["train", "--resume", "r", "--epochs", "30", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: skipped r/checkpoint-24.ckpt: checksum mismatch"),
        "{err}"
    );
    assert!(stdout(&out).contains("resuming from r/checkpoint-18.ckpt (epoch 3"));
    same_end(&d.join("r"), &d.join("straight"));
}

#[test]
fn resuming_refuses_other_settings_data_or_nothing_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_small_csv(&d.join("small.csv"));
    run_ok(d, &[STOPS_EARLY, &["--epochs", "2", "--out", "r"]].concat());
    // Repeating a setting with its own value is fine; another value is not.
    run_ok(
        d,
        &[
            "train",
            "--resume",
            "r",
            "--epochs",
            "3",
            "--hidden",
            "8",
            "--data",
            "small.csv",
            "--quiet",
        ],
    );
    // From another directory, with the data's path as seen from there.
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    run_ok(
        &d.join("elsewhere"),
        &[
            "train",
            "--resume",
            "../r",
            "--epochs",
            "4",
            "--data",
            "../small.csv",
            "--quiet",
        ],
    );
    let err = fails(
        d,
        &["train", "--resume", "r", "--epochs", "5", "--hidden", "16"],
        1,
    );
    assert!(
        err.contains("--hidden [16] differs from the resumed run's [8]"),
        "{err}"
    );
    let err = fails(
        d,
        &["train", "--resume", "r", "--epochs", "4", "--lr", "0.1"],
        1,
    );
    assert!(
        err.contains("--lr 0.1 differs from the resumed run's 0.3"),
        "{err}"
    );
    let err = fails(d, &["train", "--resume", "r", "--epochs", "2"], 1);
    assert!(err.contains("--epochs 2 is fewer than the 4"), "{err}");
    // The data file changed under the run.
    let text = std::fs::read_to_string(d.join("small.csv")).unwrap();
    std::fs::write(d.join("small.csv"), text + "0.25,0.5,1\n").unwrap();
    let err = fails(d, &["train", "--resume", "r", "--epochs", "4"], 1);
    assert!(err.contains("did the data file change?"), "{err}");
    // Nothing to resume.
    std::fs::create_dir(d.join("empty")).unwrap();
    let err = fails(d, &["train", "--resume", "empty"], 1);
    assert!(err.contains("no checkpoint to resume from"), "{err}");
    let err = fails(d, &["train", "--resume", "nowhere"], 1);
    assert!(err.contains("nowhere"), "{err}");
    // Every checkpoint damaged.
    for name in checkpoints(&d.join("r")) {
        std::fs::write(d.join("r").join(name), b"garbage").unwrap();
    }
    let err = fails(d, &["train", "--resume", "r", "--epochs", "4"], 1);
    assert!(err.contains("no checkpoint there loads"), "{err}");
    let err = fails(d, &["train", "--keep-checkpoints", "0"], 1);
    assert!(err.contains("--keep-checkpoints"), "{err}");
}

#[test]
fn eval_in_a_new_process_reproduces_the_test_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(
        d,
        &[QUICK, &["--epochs", "2", "--seed", "3", "--out", "run"]].concat(),
    );
    let m = metrics(&d.join("run"));
    // Without --data: the digits' test split, drawn with the same seed.
    let text = run_ok(d, &["eval", "--model", "run/model.tape", "--seed", "3"]);
    let accuracy = m["test_accuracy"].as_f64().unwrap();
    let examples = m["test_examples"].as_u64().unwrap();
    let correct = (accuracy * examples as f64).round() as u64;
    assert!(
        text.contains(&format!(
            "accuracy {:.2}%  ({correct}/{examples})",
            100.0 * accuracy
        )),
        "{text}\n{m}"
    );
    let loss = m["test_loss"].as_f64().unwrap();
    assert!(text.contains(&format!("loss {loss:.4}")), "{text}\n{m}");
    let confusion = m["test_confusion"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{:>3}", c.as_u64().unwrap()))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(&confusion), "{text}");
}

#[test]
fn eval_and_predict_on_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_small_csv(&d.join("small.csv"));
    run_ok(
        d,
        &[
            "train",
            "--data",
            "small.csv",
            "--hidden",
            "8",
            "--lr",
            "0.05",
            "--epochs",
            "20",
            "--quiet",
            "--out",
            "run",
        ],
    );
    // A labelled file, the label in its first column, named.
    let labelled: String = std::fs::read_to_string(d.join("small.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let (features, label) = l.rsplit_once(',').unwrap();
            format!("{label},{features}\n")
        })
        .collect();
    std::fs::write(d.join("labelled.csv"), &labelled).unwrap();
    let text = run_ok(
        d,
        &[
            "eval",
            "--model",
            "run/model.tape",
            "--data",
            "labelled.csv",
            "--label-column",
            "label",
        ],
    );
    assert!(
        text.contains("60 examples, 2 features, 2 classes"),
        "{text}"
    );
    let accuracy: f64 = text
        .split("accuracy ")
        .nth(1)
        .and_then(|t| t.split('%').next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    assert!(accuracy > 80.0, "{text}");

    // Features only, no header: one row of predictions per example, probabilities that add
    // up to 1, the class the likeliest.
    let features: String = labelled
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.split_once(',').unwrap().1))
        .collect();
    std::fs::write(d.join("features.csv"), &features).unwrap();
    let csv = run_ok(
        d,
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "features.csv",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "class,prob_0,prob_1");
    assert_eq!(lines.len(), 61);
    for line in &lines[1..] {
        // Every probability is written with six decimals.
        for field in line.split(',').skip(1) {
            let decimals = field.split_once('.').map(|(_, d)| d.len());
            assert_eq!(decimals, Some(6), "{line}");
        }
        let fields: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        let (class, probs) = (fields[0] as usize, &fields[1..]);
        // Each rounded by at most 5e-7, beside the softmax's own rounding in f32.
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 2e-6, "{line}");
        assert!(probs[class] >= probs[1 - class], "{line}");
    }
    // --output writes the same bytes, atomically (no temporary file left).
    run_ok(
        d,
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "features.csv",
            "--output",
            "p.csv",
        ],
    );
    assert_eq!(std::fs::read_to_string(d.join("p.csv")).unwrap(), csv);
    assert!(
        !std::fs::read_dir(d)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".tmp") })
    );
    // The labelled file is refused with a hint; so is a file of the wrong width.
    let err = fails(
        d,
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "labelled.csv",
        ],
        1,
    );
    assert!(err.contains("feature columns only"), "{err}");
    std::fs::write(d.join("one.csv"), "1\n2\n").unwrap();
    let err = fails(
        d,
        &["predict", "--model", "run/model.tape", "--data", "one.csv"],
        1,
    );
    assert!(
        err.contains("1 feature columns, but the model run/model.tape takes 2"),
        "{err}"
    );
    // Without --data, the model's own test split of the file it was trained on.
    let text = run_ok(d, &["eval", "--model", "run/model.tape"]);
    assert!(
        text.contains("small.csv (seed 0, 0.2 held out): 12 examples"),
        "{text}"
    );
    // A bad label is named by its line in the file (blank lines and a header counted).
    std::fs::write(d.join("three.csv"), "a,b,y\n1,2,0\n\n3,4,1\n3,4,2\n").unwrap();
    let err = fails(
        d,
        &["eval", "--model", "run/model.tape", "--data", "three.csv"],
        1,
    );
    assert!(
        err.contains("three.csv, line 5: label `2` is out of range"),
        "{err}"
    );
    assert!(err.contains("the model knows 2 classes"), "{err}");
}

#[test]
fn export_writes_safetensors_that_the_safetensors_crate_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(
        d,
        &[
            "train", "--hidden", "12,8", "--epochs", "1", "--quiet", "--out", "run",
        ],
    );
    run_ok(
        d,
        &[
            "export",
            "--model",
            "run/model.tape",
            "--safetensors",
            "w.safetensors",
            "--weights",
            "w.weights",
        ],
    );
    let model = TapeModel::<f32>::load(d.join("run/model.tape"), &LoadOptions::default()).unwrap();
    let expected = model.weights();
    let names: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "input.mean",
            "input.std",
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let bytes = std::fs::read(d.join("w.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), expected.len());
    for (name, array) in &expected {
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(view.shape(), array.shape(), "{name}");
        let values: Vec<u32> = view
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want: Vec<u32> = array.iter().map(|x| x.to_bits()).collect();
        assert_eq!(values, want, "{name}");
    }
    assert_eq!(file.tensor("layers.0.weight").unwrap().shape(), [64, 12]);
    assert_eq!(
        load_weights::<f32>(d.join("w.weights"), &LoadOptions::default()).unwrap(),
        expected
    );
    let err = fails(d, &["export", "--model", "run/model.tape"], 2);
    assert!(err.contains("--safetensors"), "{err}");
}

#[test]
fn damaged_or_wrong_model_files_give_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, &[QUICK, &["--epochs", "1", "--out", "run"]].concat());
    run_ok(
        d,
        &[
            "export",
            "--model",
            "run/model.tape",
            "--weights",
            "w.weights",
        ],
    );
    let good = std::fs::read(d.join("run/model.tape")).unwrap();
    std::fs::write(d.join("features.csv"), "1,2\n").unwrap();
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for cut in [0, 5, 27, 28, good.len() / 2, good.len() - 1] {
        cases.push((
            format!("cut{cut}.tape"),
            good[..cut].to_vec(),
            "truncated|too few|payload",
        ));
    }
    for at in [0, 9, 13, 20, 25, 40, good.len() / 3, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        cases.push((
            format!("flip{at}.tape"),
            bad,
            "magic|expected a tape file|version|payload|checksum",
        ));
    }
    let mut longer = good.clone();
    longer.push(0);
    cases.push(("longer.tape".into(), longer, "payload"));
    for (name, bytes, _) in &cases {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let checkpoint = checkpoints(&d.join("run")).pop().unwrap();
    let special: [(String, &str); 4] = [
        ("missing.tape".into(), "cannot open missing.tape"),
        ("run".into(), "cannot read run"),
        (
            "w.weights".into(),
            "expected a tape file, but the header says \"WGHT\"",
        ),
        (
            format!("run/{checkpoint}"),
            "expected a tape file, but the header says \"CKPT\"",
        ),
    ];
    let commands = |model: &str| -> [Vec<String>; 3] {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        [
            v(&["eval", "--model", model]),
            v(&["predict", "--model", model, "--data", "features.csv"]),
            v(&[
                "export",
                "--model",
                model,
                "--safetensors",
                "out.safetensors",
            ]),
        ]
    };
    for (name, _, expected) in &cases {
        for command in commands(name) {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let err = fails(d, &args, 1);
            assert!(err.contains(name.as_str()), "{args:?}: {err}");
            assert!(
                expected.split('|').any(|e| err.contains(e)),
                "{args:?}: {err}"
            );
        }
    }
    for (name, expected) in &special {
        for command in commands(name) {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let err = fails(d, &args, 1);
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }
    assert!(!d.join("out.safetensors").exists());
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(d, &[QUICK, &["--epochs", "1", "--out", "run"]].concat());
    std::fs::write(d.join("features.csv"), "0,".repeat(63) + "0\n").unwrap();
    for args in [
        &["eval", "--model", "run/model.tape"][..],
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "features.csv",
        ][..],
        &[QUICK, &["--epochs", "1", "--out", "again"]].concat()[..],
    ] {
        // Standard output closed before the command writes to it, as `| head -0` would.
        let mut child = Command::new(env!("CARGO_BIN_EXE_wengert"))
            .args(args)
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
