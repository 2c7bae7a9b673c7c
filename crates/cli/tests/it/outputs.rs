//! Outputs never destroy what they should not: standard output is written to (never
//! replaced), a symbolic link is written through, an input or a second output is never written
//! over, safetensors carry their metadata, and a result that cannot be written is an error.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::errors::fails;
use crate::{stderr, stdout, wengert};

/// A model and a features file in `d`.
fn model_and_features(d: &Path) {
    let out = wengert(
        d,
        &[
            "train", "--hidden", "8", "--epochs", "1", "--quiet", "--out", "run",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let row = vec!["1"; 64].join(",");
    std::fs::write(d.join("features.csv"), format!("{row}\n{row}\n{row}\n")).unwrap();
}

fn predict(d: &Path, output: &[&str]) -> std::process::Output {
    let args = [
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "features.csv",
        ][..],
        output,
    ]
    .concat();
    wengert(d, &args)
}

#[test]
fn a_dash_or_dev_stdout_writes_to_standard_output_and_replaces_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    let plain = predict(d, &[]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert_eq!(stdout(&plain).lines().count(), 4);
    for name in ["-", "/dev/stdout"] {
        let out = predict(d, &["--output", name]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(out.stdout, plain.stdout, "{name}");
    }
    assert!(!d.join("-").exists());
    #[cfg(unix)]
    assert!(
        std::fs::symlink_metadata("/dev/stdout")
            .unwrap()
            .file_type()
            .is_symlink(),
        "/dev/stdout was replaced"
    );
    // A device is written to in place.
    let out = predict(d, &["--output", "/dev/null"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_output_is_written_through_to_its_target() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    std::fs::create_dir(d.join("results")).unwrap();
    std::fs::write(d.join("results/p.csv"), b"old").unwrap();
    symlink("results/p.csv", d.join("latest.csv")).unwrap();
    let out = predict(d, &["--output", "latest.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = std::fs::symlink_metadata(d.join("latest.csv")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let written = std::fs::read_to_string(d.join("results/p.csv")).unwrap();
    assert!(written.starts_with("class,prob_0"), "{written}");
    symlink("results/w.weights", d.join("w")).unwrap();
    let out = wengert(
        d,
        &["export", "--model", "run/model.tape", "--weights", "w"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("results/w.weights").is_file());
    assert!(
        std::fs::symlink_metadata(d.join("w"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn an_output_is_never_an_input_nor_another_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    let model = std::fs::read(d.join("run/model.tape")).unwrap();
    let features = std::fs::read(d.join("features.csv")).unwrap();
    let export = |extra: &[&'static str]| -> Vec<&'static str> {
        [&["export", "--model", "run/model.tape"][..], extra].concat()
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            export(&["--safetensors", "run/model.tape"]),
            "--safetensors run/model.tape is the file --model reads",
        ),
        (
            export(&["--weights", "./run/../run/model.tape"]),
            "--weights ./run/../run/model.tape is the file --model reads",
        ),
        (
            export(&["--safetensors", "out.bin", "--weights", "./out.bin"]),
            "--safetensors and --weights both name ./out.bin",
        ),
        (
            export(&["--safetensors", "run"]),
            "--safetensors run is a directory",
        ),
        (
            export(&["--safetensors", "-", "--weights", "/dev/stdout"]),
            "--safetensors and --weights both write to standard output",
        ),
        (
            vec![
                "predict",
                "--model",
                "run/model.tape",
                "--data",
                "features.csv",
                "--output",
                "features.csv",
            ],
            "--output features.csv is the file --data reads",
        ),
        (
            vec![
                "predict",
                "--model",
                "run/model.tape",
                "--data",
                "features.csv",
                "--output",
                "run/model.tape",
            ],
            "--output run/model.tape is the file --model reads",
        ),
    ];
    for (args, expected) in &cases {
        let err = fails(d, args, 1);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(std::fs::read(d.join("run/model.tape")).unwrap() == model);
    assert!(std::fs::read(d.join("features.csv")).unwrap() == features);
    assert!(!d.join("out.bin").exists());
}

#[test]
fn safetensors_export_carries_its_format_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    let out = wengert(
        d,
        &[
            "export",
            "--model",
            "run/model.tape",
            "--safetensors",
            "w.safetensors",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(d.join("w.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata["format"], "pt");
    assert!(
        metadata["layout"].contains("layers.<i>.weight is [inputs, outputs]"),
        "{metadata:?}"
    );
}

/// The tensors of a safetensors file: name, shape and `f32` values.
fn read_safetensors(bytes: &[u8]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let tensors = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn pytorch_layout_writes_linear_weights_as_outputs_by_inputs_that_compute_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    let export = |layout: &str, file: &str| {
        let out = wengert(
            d,
            &[
                "export",
                "--model",
                "run/model.tape",
                "--safetensors",
                file,
                "--layout",
                layout,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = std::fs::read(d.join(file)).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        (read_safetensors(&bytes), header.metadata().clone().unwrap())
    };
    let (torch, metadata) = export("pytorch", "torch.safetensors");
    let (ours, _) = export("wengert", "ours.safetensors");
    assert!(
        metadata["layout"]
            .contains("layers.<i>.weight is [outputs, inputs], as torch.nn.Linear.weight"),
        "{metadata:?}"
    );
    // The model is 64 -> 8 -> 10 (digits, --hidden 8): nn.Linear(64, 8), nn.Linear(8, 10).
    let shapes: Vec<(&str, &[usize])> = torch
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_slice()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("input.mean", &[64][..]),
            ("input.std", &[64][..]),
            ("layers.0.bias", &[8][..]),
            ("layers.0.weight", &[8, 64][..]),
            ("layers.1.bias", &[10][..]),
            ("layers.1.weight", &[10, 8][..]),
        ]
    );
    // The same numbers, each weight matrix transposed.
    for ((name, shape, values), (_, our_shape, our_values)) in torch.iter().zip(&ours) {
        if name.ends_with(".weight") {
            let (outputs, inputs) = (shape[0], shape[1]);
            assert_eq!(our_shape, &[inputs, outputs]);
            for o in 0..outputs {
                for i in 0..inputs {
                    assert_eq!(values[o * inputs + i], our_values[i * outputs + o]);
                }
            }
        } else {
            assert_eq!((shape, values), (our_shape, our_values), "{name}");
        }
    }
    // What PyTorch computes with them, `(x - mean) / std`, then `relu(x·Wᵀ + b)` and
    // `x·Wᵀ + b`, then softmax, is what `predict` prints.
    let tensor = |name: &str| &torch.iter().find(|t| t.0 == name).unwrap().2;
    let linear = |x: &[f32], layer: usize| -> Vec<f32> {
        let (w, b) = (
            tensor(&format!("layers.{layer}.weight")),
            tensor(&format!("layers.{layer}.bias")),
        );
        (0..b.len())
            .map(|o| b[o] + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f32>())
            .collect()
    };
    let (mean, std) = (tensor("input.mean"), tensor("input.std"));
    let x: Vec<f32> = (0..64).map(|i| (1.0 - mean[i]) / std[i]).collect();
    let hidden: Vec<f32> = linear(&x, 0).into_iter().map(|h| h.max(0.0)).collect();
    let logits = linear(&hidden, 1);
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - top).exp()).sum();
    let probs: Vec<f32> = logits.iter().map(|l| (l - top).exp() / sum).collect();
    let predicted = stdout(&predict(d, &[]));
    let row: Vec<f32> = predicted
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(row.len(), 10);
    for (p, q) in probs.iter().zip(&row) {
        assert!((p - q).abs() < 2e-6, "{probs:?} vs {row:?}");
    }
}

#[test]
fn a_layout_applies_to_safetensors_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = wengert(
        d,
        &[
            "export",
            "--model",
            "m.tape",
            "--weights",
            "w",
            "--layout",
            "pytorch",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--safetensors"), "{}", stderr(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn a_result_that_cannot_be_written_to_standard_output_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    model_and_features(d);
    let commands: [&[&str]; 3] = [
        &["eval", "--model", "run/model.tape"],
        &[
            "predict",
            "--model",
            "run/model.tape",
            "--data",
            "features.csv",
        ],
        &["export", "--model", "run/model.tape", "--safetensors", "-"],
    ];
    for args in commands {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_wengert"))
            .args(args)
            .current_dir(d)
            .stdout(Stdio::from(full))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("cannot write to standard output: No space left on device"),
            "{args:?}: {err}"
        );
    }
}
