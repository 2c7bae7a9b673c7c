//! `wengert train --model cnn` and `--dropout`: the CNN trains on the digits and on MNIST's IDX
//! files, its `model.tape` holds the convolutions and `eval`, `predict` and `export` run it
//! unchanged; a resumed CNN run with dropout ends as an uninterrupted one.

use std::path::Path;

use serde_json::Value;
use wengert_io::{LoadOptions, TapeModel};

use crate::errors::fails;
use crate::{stderr, stdout, wengert};

/// A short CNN run on the embedded digits, small enough for a debug build.
const QUICK_CNN: &[&str] = &[
    "train",
    "--model",
    "cnn",
    "--channels",
    "4,8",
    "--lr",
    "0.01",
    "--batch-size",
    "64",
    "--quiet",
];

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = wengert(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn metrics(run: &Path) -> Value {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("train_seconds");
    v
}

/// The percentage after `label` in a report (`test accuracy  97.50%`).
fn percent_after(text: &str, label: &str) -> f64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("{label} in {text}"))
        + label.len()..];
    rest.trim_start()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_cnn_on_the_digits_is_saved_with_its_convolutions_and_evaluated_predicted_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = run_ok(
        d,
        &[
            QUICK_CNN,
            &["--epochs", "3", "--dropout", "0.25", "--out", "run"],
        ]
        .concat(),
    );
    assert!(
        text.contains(
            "training a CNN on 1x8x8 images: conv 4, pool, conv 8, pool, then [32, 10] \
             (666 parameters, relu, dropout 0.25)"
        ),
        "{text}"
    );
    let summary = metrics(&d.join("run"));
    assert_eq!(summary["model"], "cnn");
    assert_eq!(summary["image"], serde_json::json!([8, 8]));
    assert_eq!(summary["channels"], serde_json::json!([4, 8]));
    assert_eq!(summary["sizes"], serde_json::json!([32, 10]));
    assert_eq!(summary["dropout"], 0.25);
    let test_accuracy = summary["test_accuracy"].as_f64().unwrap();
    // Three epochs of a tiny CNN with dropout are far above chance (10%).
    assert!(test_accuracy > 0.7, "{test_accuracy}");

    // The saved model holds the convolutions and the pooling, and is named as PyTorch names.
    let model = TapeModel::<f32>::load(d.join("run/model.tape"), &LoadOptions::default()).unwrap();
    let names: Vec<&str> = model.parameter_names().collect();
    assert_eq!(
        names,
        [
            "input.mean",
            "input.std",
            "conv.0.weight",
            "conv.0.bias",
            "conv.1.weight",
            "conv.1.bias",
            "layers.0.weight",
            "layers.0.bias"
        ]
    );
    let weights = model.weights();
    assert_eq!(weights["conv.1.weight"].shape(), &[8, 4, 3, 3]);

    // eval in a new process scores the run's own test split as train did.
    let text = run_ok(d, &["eval", "--model", "run/model.tape"]);
    let reported = percent_after(&text, "accuracy");
    assert!((reported - 100.0 * test_accuracy).abs() < 0.006, "{text}");

    // predict on raw pixels agrees with eval: the digits' test split written as a CSV with
    // labels (for eval) and without (for predict).
    let digits = wengert_train::datasets::digits::<f32>().unwrap();
    let (_, test) = digits.split(0.2, 0).unwrap();
    let labels = test.labels().unwrap();
    let mut labelled = String::new();
    let mut features = String::new();
    for (row, label) in test.features().rows().into_iter().zip(labels) {
        let pixels: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        features.push_str(&format!("{}\n", pixels.join(",")));
        labelled.push_str(&format!("{},{label}\n", pixels.join(",")));
    }
    std::fs::write(d.join("pixels.csv"), features).unwrap();
    std::fs::write(d.join("labelled.csv"), labelled).unwrap();
    let text = run_ok(
        d,
        &[
            "eval",
            "--model",
            "run/model.tape",
            "--data",
            "labelled.csv",
        ],
    );
    assert!(
        (percent_after(&text, "accuracy") - reported).abs() < 1e-9,
        "{text}"
    );
    let predictions = run_ok(
        d,
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "pixels.csv",
        ],
    );
    let mut lines = predictions.lines();
    assert!(lines.next().unwrap().starts_with("class,prob_0,"));
    let right = lines
        .zip(labels)
        .filter(|(line, label)| line.split(',').next() == Some(&label.to_string()))
        .count();
    assert_eq!(right, (test_accuracy * test.len() as f64).round() as usize);

    // export writes the convolutions as PyTorch's Conv2d holds them, and transposes only the
    // fully connected weights for --layout pytorch.
    run_ok(
        d,
        &[
            "export",
            "--model",
            "run/model.tape",
            "--safetensors",
            "torch.safetensors",
            "--layout",
            "pytorch",
        ],
    );
    let bytes = std::fs::read(d.join("torch.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("conv.0.weight").unwrap().shape(), &[4, 1, 3, 3]);
    assert_eq!(file.tensor("layers.0.weight").unwrap().shape(), &[10, 32]);
    let conv = file.tensor("conv.1.weight").unwrap();
    let first = f32::from_le_bytes(conv.data()[..4].try_into().unwrap());
    assert_eq!(first, weights["conv.1.weight"][[0, 0, 0, 0]]);
}

#[test]
fn a_resumed_cnn_run_with_dropout_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with_dropout = [QUICK_CNN, &["--dropout", "0.3", "--patience", "0"]].concat();
    run_ok(
        d,
        &[&with_dropout[..], &["--epochs", "1", "--out", "resumed"]].concat(),
    );
    run_ok(
        d,
        &["train", "--resume", "resumed", "--epochs", "2", "--quiet"],
    );
    run_ok(
        d,
        &[&with_dropout[..], &["--epochs", "2", "--out", "straight"]].concat(),
    );
    assert_eq!(metrics(&d.join("resumed")), metrics(&d.join("straight")));
    assert!(
        std::fs::read(d.join("resumed/model.tape")).unwrap()
            == std::fs::read(d.join("straight/model.tape")).unwrap(),
        "the models differ"
    );
    // The resumed run keeps its network: another one is refused, naming the option.
    for (option, value) in [
        ("--model", "mlp"),
        ("--channels", "4,16"),
        ("--dropout", "0.5"),
    ] {
        let err = fails(
            d,
            &[
                "train", "--resume", "resumed", "--epochs", "3", option, value,
            ],
            1,
        );
        assert!(
            err.contains(&format!("{option} ")) && err.contains("differs from the resumed run"),
            "{err}"
        );
    }
}

#[test]
fn dropout_changes_training_but_not_the_mlp_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mlp = [
        "train",
        "--hidden",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--quiet",
    ];
    run_ok(d, &[&mlp[..], &["--out", "plain"]].concat());
    run_ok(
        d,
        &[
            &mlp[..],
            &["--model", "mlp", "--dropout", "0", "--out", "zero"],
        ]
        .concat(),
    );
    run_ok(
        d,
        &[&mlp[..], &["--dropout", "0.5", "--out", "half"]].concat(),
    );
    let (plain, zero, half) = (
        metrics(&d.join("plain")),
        metrics(&d.join("zero")),
        metrics(&d.join("half")),
    );
    // --model mlp and --dropout 0 are the defaults: the same run, bit for bit.
    assert_eq!(plain, zero);
    assert_eq!(plain["model"], "mlp");
    assert_eq!(plain["sizes"], serde_json::json!([64, 16, 10]));
    assert_ne!(plain["final_loss"], half["final_loss"]);
    assert_eq!(half["dropout"], 0.5);
}

#[test]
fn cnn_options_that_cannot_work_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 3 feature columns and a label: not a square image.
    let rows: String = (0..20).map(|i| format!("{i},1,2,{}\n", i % 2)).collect();
    std::fs::write(d.join("three.csv"), rows).unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["train", "--channels", "8"],
            1,
            "--channels applies to --model cnn",
        ),
        (
            &["train", "--model", "cnn", "--channels", "8,0"],
            1,
            "--channels widths must be positive",
        ),
        (
            &["train", "--dropout", "1"],
            1,
            "--dropout must be at least 0 and below 1",
        ),
        (
            &["train", "--dropout", "-0.1"],
            1,
            "--dropout must be at least 0 and below 1",
        ),
        (&["train", "--dropout", "NaN"], 1, "--dropout"),
        (&["train", "--model", "rnn"], 2, "rnn"),
        (
            &[
                "train",
                "--model",
                "cnn",
                "--channels",
                "4,4,4,4",
                "--quiet",
            ],
            1,
            "--channels [4, 4, 4, 4]: 4 blocks halve the 8x8 images to nothing",
        ),
        (
            &["train", "--model", "cnn", "--data", "three.csv", "--quiet"],
            1,
            "3 columns are not a square",
        ),
        // 1.7·10¹⁰ parameters: refused before a weight is drawn, naming the memory.
        (
            &[
                "train",
                "--model",
                "cnn",
                "--channels",
                "100000000",
                "--quiet",
            ],
            1,
            "--channels [100000000]: a CNN on 1x8x8 images: conv 100000000, pool, then \
             [1600000000, 10] on the UCI digits (embedded) has 17000000010 parameters and needs \
             about 262.6 TB to train, more than the",
        ),
        (
            &[
                "train",
                "--model",
                "cnn",
                "--channels",
                "1099511627776,1099511627776",
            ],
            1,
            "more parameters than this machine can address",
        ),
    ];
    for (args, code, needle) in cases {
        let err = fails(d, args, *code);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// An IDX file of unsigned bytes.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// `count` images of 4x6 pixels, class 1 bright in the right half and class 0 in the left,
/// with labels.
fn bars(count: usize) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let label = (i % 2) as u8;
        for _row in 0..4 {
            for column in 0..6 {
                let bright = (column >= 3) == (label == 1);
                pixels.push(if bright {
                    200 + (i % 50) as u8
                } else {
                    (i * 7 % 40) as u8
                });
            }
        }
        labels.push(label);
    }
    (
        idx(&[count as u32, 4, 6], &pixels),
        idx(&[count as u32], &labels),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_cnn_trains_on_mnist_idx_files_of_their_own_image_size_and_eval_reads_t10k() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mnist = d.join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let (images, labels) = bars(200);
    // The training images gzipped, the rest plain: the image size comes from either.
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), labels).unwrap();
    let (images, labels) = bars(40);
    std::fs::write(mnist.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    let text = run_ok(
        d,
        &[
            "train",
            "--mnist",
            "mnist",
            "--model",
            "cnn",
            "--channels",
            "2",
            "--epochs",
            "5",
            "--lr",
            "0.02",
            "--quiet",
            "--out",
            "run",
        ],
    );
    assert!(
        text.contains("training a CNN on 1x4x6 images: conv 2, pool, then [12, 10]"),
        "{text}"
    );
    let summary = metrics(&d.join("run"));
    assert_eq!(summary["test_examples"], 40);
    assert_eq!(summary["test_accuracy"], 1.0, "{summary}");
    let text = run_ok(d, &["eval", "--model", "run/model.tape"]);
    assert!(
        text.contains("40 examples, 24 features, 10 classes"),
        "{text}"
    );
    assert!(text.contains("accuracy 100.00%"), "{text}");
}

#[test]
fn hostile_mnist_headers_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (good_images, good_labels) = bars(10);
    let huge = idx(&[u32::MAX, 28, 28], &[]);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
        (
            "magic",
            b"\x1f\x8b\x08\x03rest-of-it".to_vec(),
            good_labels.clone(),
            "not an IDX file",
        ),
        ("huge", huge, good_labels.clone(), "more than"),
        (
            "rank",
            idx(&[10, 24], &[0; 240]),
            good_labels.clone(),
            "images need 3 dimensions",
        ),
        (
            "count",
            good_images.clone(),
            idx(&[9], &[0; 9]),
            "9 labels for 10 images",
        ),
        (
            "truncated",
            good_images[..100].to_vec(),
            good_labels.clone(),
            "the file holds",
        ),
        (
            "signed",
            [&[0u8, 0, 9, 3][..], &good_images[4..]].concat(),
            good_labels,
            "type code 0x09",
        ),
    ];
    for (name, images, labels, needle) in cases {
        let mnist = d.join(name);
        std::fs::create_dir(&mnist).unwrap();
        for prefix in ["train", "t10k"] {
            std::fs::write(mnist.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
            std::fs::write(mnist.join(format!("{prefix}-labels-idx1-ubyte")), &labels).unwrap();
        }
        let err = fails(
            d,
            &["train", "--mnist", name, "--model", "cnn", "--quiet"],
            1,
        );
        assert!(err.contains(needle), "{name}: {err}");
    }
}
