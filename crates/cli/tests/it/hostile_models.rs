//! Crafted `model.tape` files that pass every load-time check but ask `predict` and `eval`
//! for terabytes, for rows that are not one per example, or for no classes at all: each is
//! refused in one line naming the model (and `--max-memory` when memory is the reason)
//! before anything large is allocated; a deep but legitimate model still predicts, in
//! smaller chunks.

use std::path::{Path, PathBuf};

use wengert_io::format::v1::{DataV1, ElementV1, NamedNodeV1, NodeV1, OpV1, TapeFileV1, TensorV1};
use wengert_ops::{Op, Shape, UnaryOp};

use crate::errors::fails;
use crate::{stderr, stdout, wengert};

/// The features of the crafted models' input `x`.
pub const FEATURES: usize = 4;

/// A tape file built node by node, like the ones `wengert train` writes: input `x` of shape
/// `[1, FEATURES]`, outputs `logits` and `probs`. The stored shapes are those its ops infer,
/// so that it loads.
pub struct Crafted {
    features: usize,
    nodes: Vec<NodeV1>,
    shapes: Vec<Shape>,
    parameters: Vec<NamedNodeV1>,
}

impl Crafted {
    /// A tape holding only the input `x` (node 0) of `FEATURES` features.
    pub fn new() -> Self {
        Crafted::with_features(FEATURES)
    }

    /// A tape holding only the input `x` (node 0) of `features` features.
    pub fn with_features(features: usize) -> Self {
        let mut c = Crafted {
            features,
            nodes: Vec::new(),
            shapes: Vec::new(),
            parameters: Vec::new(),
        };
        c.push(
            NodeV1::Input {
                shape: vec![1, features as u64],
            },
            Shape::new(&[1, features]).unwrap(),
        );
        c
    }

    /// The input's features.
    pub fn features(&self) -> usize {
        self.features
    }

    /// A parameter of small values (none, for a shape with a zero axis).
    pub fn parameter(&mut self, dims: &[usize]) -> u32 {
        let shape = Shape::new(dims).unwrap();
        let name = format!("p{}", self.nodes.len());
        self.parameters.push(NamedNodeV1 {
            name,
            node: self.nodes.len() as u32,
        });
        let data = (0..shape.numel()).map(|i| (i % 7) as f32 * 0.1).collect();
        self.push(
            NodeV1::Parameter {
                value: TensorV1 {
                    shape: dims.iter().map(|&d| d as u64).collect(),
                    data: DataV1::F32(data),
                },
            },
            shape,
        )
    }

    /// An op of earlier nodes.
    pub fn op(&mut self, op: OpV1, inputs: &[u32]) -> u32 {
        let engine = match op {
            OpV1::MatMul => Op::MatMul,
            OpV1::Relu => Op::Unary(UnaryOp::Relu),
            OpV1::Softmax => Op::Softmax,
            OpV1::Transpose { axis0, axis1 } => Op::Transpose {
                axis0: axis0 as usize,
                axis1: axis1 as usize,
            },
            OpV1::SumAxis { axis, keep_dim } => Op::SumAxis {
                axis: axis as usize,
                keep_dim,
            },
            ref other => panic!("the crafter has no rule for {other:?}"),
        };
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.shapes[i as usize]).collect();
        let shape = engine.output_shape(&shapes).unwrap();
        self.push(
            NodeV1::Op {
                op,
                inputs: inputs.to_vec(),
                shape: shape.dims().iter().map(|&d| d as u64).collect(),
            },
            shape,
        )
    }

    fn push(&mut self, node: NodeV1, shape: Shape) -> u32 {
        self.nodes.push(node);
        self.shapes.push(shape);
        (self.nodes.len() - 1) as u32
    }

    /// Writes the file with `logits` and `probs = softmax(logits)`.
    pub fn save(mut self, path: &Path, logits: u32) {
        let probs = self.op(OpV1::Softmax, &[logits]);
        let named = |name: &str, node| NamedNodeV1 {
            name: name.to_string(),
            node,
        };
        let file = TapeFileV1 {
            element: ElementV1::F32,
            nodes: self.nodes,
            inputs: vec![named("x", 0)],
            parameters: self.parameters,
            outputs: vec![named("logits", logits), named("probs", probs)],
        };
        std::fs::write(path, file.to_bytes()).unwrap();
    }
}

/// `x · w[F, 0]` then `· p[0, width]`: no weights in the file, `width` scores per example.
pub fn empty_inner(path: &Path, width: usize) {
    empty_inner_with(Crafted::new(), path, width);
}

/// [`empty_inner`] on a tape of the caller's.
pub fn empty_inner_with(mut c: Crafted, path: &Path, width: usize) {
    let w = c.parameter(&[c.features(), 0]);
    let h = c.op(OpV1::MatMul, &[0, w]);
    let p = c.parameter(&[0, width]);
    let logits = c.op(OpV1::MatMul, &[h, p]);
    c.save(path, logits);
}

/// `a[n, 0] · b[0, n]`: n² scores that do not depend on the examples.
pub fn empty_square(path: &Path, n: usize) {
    let mut c = Crafted::new();
    let a = c.parameter(&[n, 0]);
    let b = c.parameter(&[0, n]);
    let logits = c.op(OpV1::MatMul, &[a, b]);
    c.save(path, logits);
}

/// A column of n values times its transpose: n floats in the file, n² scores.
pub fn column_square(path: &Path, n: usize) {
    let mut c = Crafted::new();
    let col = c.parameter(&[n, 1]);
    let row = c.op(OpV1::Transpose { axis0: 0, axis1: 1 }, &[col]);
    let logits = c.op(OpV1::MatMul, &[col, row]);
    c.save(path, logits);
}

/// Each example's feature sum as a column, times its transpose: `[rows, rows]` scores.
pub fn batch_square(path: &Path) {
    batch_square_with(Crafted::new(), path);
}

/// [`batch_square`] on a tape of the caller's.
pub fn batch_square_with(mut c: Crafted, path: &Path) {
    let col = c.op(
        OpV1::SumAxis {
            axis: 1,
            keep_dim: true,
        },
        &[0],
    );
    let row = c.op(OpV1::Transpose { axis0: 0, axis1: 1 }, &[col]);
    let logits = c.op(OpV1::MatMul, &[col, row]);
    c.save(path, logits);
}

/// `depth` ReLUs on the input, then a linear layer to `classes` scores: deep, cheap, legitimate.
pub fn deep(path: &Path, depth: usize, classes: usize) {
    deep_with(Crafted::new(), path, depth, classes);
}

/// [`deep`] on a tape of the caller's.
pub fn deep_with(mut c: Crafted, path: &Path, depth: usize, classes: usize) {
    let mut h = 0;
    for _ in 0..depth {
        h = c.op(OpV1::Relu, &[h]);
    }
    let w = c.parameter(&[c.features(), classes]);
    let logits = c.op(OpV1::MatMul, &[h, w]);
    c.save(path, logits);
}

/// Sums the examples (axis 0) before the layer: one row of scores however many examples.
pub fn one_row(path: &Path) {
    one_row_with(Crafted::new(), path);
}

/// [`one_row`] on a tape of the caller's.
pub fn one_row_with(mut c: Crafted, path: &Path) {
    let total = c.op(
        OpV1::SumAxis {
            axis: 0,
            keep_dim: true,
        },
        &[0],
    );
    let w = c.parameter(&[c.features(), 3]);
    let logits = c.op(OpV1::MatMul, &[total, w]);
    c.save(path, logits);
}

/// Scores that ignore the examples: a `[10, 10]` parameter.
pub fn ten_rows(path: &Path) {
    let mut c = Crafted::new();
    let logits = c.parameter(&[10, 10]);
    c.save(path, logits);
}

/// `x · w[F, 0]`: zero classes.
pub fn no_classes(path: &Path) {
    no_classes_with(Crafted::new(), path);
}

/// [`no_classes`] on a tape of the caller's.
pub fn no_classes_with(mut c: Crafted, path: &Path) {
    let w = c.parameter(&[c.features(), 0]);
    let logits = c.op(OpV1::MatMul, &[0, w]);
    c.save(path, logits);
}

/// `rows` examples of `FEATURES` features, unlabelled and labelled (label 0).
pub fn write_data(dir: &Path, rows: usize) -> (PathBuf, PathBuf) {
    let (mut plain, mut labelled) = (String::new(), String::new());
    for i in 0..rows {
        let row: Vec<String> = (0..FEATURES)
            .map(|j| format!("{}", ((i * 7 + j * 3) % 11) as f32 / 10.0 - 0.5))
            .collect();
        plain.push_str(&format!("{}\n", row.join(",")));
        labelled.push_str(&format!("{},0\n", row.join(",")));
    }
    let (a, b) = (dir.join("features.csv"), dir.join("labelled.csv"));
    std::fs::write(&a, plain).unwrap();
    std::fs::write(&b, labelled).unwrap();
    (a, b)
}

fn predict<'a>(model: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["predict", "--model", model, "--data", "features.csv"];
    args.extend_from_slice(more);
    args
}

fn eval<'a>(model: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["eval", "--model", model, "--data", "labelled.csv"];
    args.extend_from_slice(more);
    args
}

#[test]
fn replays_that_need_more_than_max_memory_are_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(d, 50);
    // Per example 2 · 2^30 scores (logits and probs): 8 GiB.
    empty_inner(&d.join("wide.tape"), 1 << 30);
    // Per example 2 · 2^62 scores: 2^66 bytes, past u64.
    empty_inner(&d.join("wider.tape"), 1 << 62);
    // Deep: 5,000 ReLUs of 4 floats each, 80 KB and 5 MB of records per example.
    deep(&d.join("deep.tape"), 5_000, 3);
    for model in ["wide.tape", "wider.tape", "deep.tape"] {
        for args in [
            predict(model, &["--max-memory", "1M"]),
            eval(model, &["--max-memory", "1M"]),
        ] {
            let err = fails(d, &args, 1);
            assert!(err.contains(model), "{err}");
            if args[0] == "eval" && model != "deep.tape" {
                // Evaluation counts classes before memory: 2^30 is past the class limit.
                assert!(err.contains("classes, more than the 1024"), "{err}");
                continue;
            }
            assert!(err.contains("--max-memory"), "{err}");
            assert!(
                err.contains("more than --max-memory allows (1.0 MiB)"),
                "{err}"
            );
        }
    }
    // What the command holds beside the replay counts too: 2^30 probabilities a row, each
    // written in 9 bytes (a comma and `0.123456`).
    let err = fails(d, &predict("wide.tape", &["--max-memory", "4G"]), 1);
    assert!(
        err.contains("holding the data, the model and the predictions' text needs 476 GiB"),
        "{err}"
    );
    let err = fails(d, &eval("deep.tape", &["--max-memory", "4M"]), 1);
    assert!(
        err.contains("deep.tape: replaying one example beside the data, the model and the confusion matrix needs 5.0 MiB"),
        "{err}"
    );
    // The default budget (half the machine's memory) refuses 2^66 bytes too.
    let err = fails(d, &predict("wider.tape", &[]), 1);
    assert!(err.contains("--max-memory"), "{err}");
}

#[test]
fn a_deep_legitimate_model_predicts_in_smaller_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(d, 40);
    deep(&d.join("deep.tape"), 2_000, 3);
    // About 2 MB of records and 32 KB per example: 8 MiB holds a few hundred, 3 MiB a
    // few dozen; both give every row, the same.
    let mut outputs = Vec::new();
    for budget in ["8M", "3M"] {
        let out = wengert(d, &predict("deep.tape", &["--max-memory", budget]));
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 41, "{text}");
        assert!(text.starts_with("class,prob_0,prob_1,prob_2\n"), "{text}");
        outputs.push(text);
    }
    assert_eq!(outputs[0], outputs[1]);
    let out = wengert(d, &eval("deep.tape", &["--max-memory", "3M"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("40 examples"), "{}", stdout(&out));
}

#[test]
fn outputs_that_are_not_one_row_per_example_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(d, 30);
    empty_square(&d.join("square.tape"), 1 << 20);
    column_square(&d.join("column.tape"), 1 << 16);
    batch_square(&d.join("batch.tape"));
    one_row(&d.join("one.tape"));
    ten_rows(&d.join("ten.tape"));
    for (model, why) in [
        (
            "square.tape",
            "has shape [1048576, 1048576] for 1 example: it must have one row per example",
        ),
        (
            "column.tape",
            "has shape [65536, 65536] for 1 example: it must have one row per example",
        ),
        ("batch.tape", "the class count must not follow the batch"),
        (
            "one.tape",
            "has shape [1, 3] for 30 examples: it must have one row per example",
        ),
        (
            "ten.tape",
            "has shape [10, 10] for 1 example: it must have one row per example",
        ),
    ] {
        for args in [predict(model, &[]), eval(model, &[])] {
            let err = fails(d, &args, 1);
            assert!(err.contains(model), "{err}");
            assert!(err.contains(why), "{model}: {err}");
        }
    }
}

#[test]
fn a_model_with_no_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(d, 5);
    no_classes(&d.join("none.tape"));
    for args in [predict("none.tape", &[]), eval("none.tape", &[])] {
        let err = fails(d, &args, 1);
        assert!(
            err.contains("none.tape: the model's output `logits` has shape [1, 0] for 1 example: it has no classes"),
            "{err}"
        );
        assert!(!err.contains("18446744073709551615"), "{err}");
    }
}

#[test]
fn max_memory_is_checked_as_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (value, why) in [
        ("lots", "is not a size"),
        ("0", "above 0"),
        ("16777216T", "more bytes than"),
    ] {
        let err = fails(
            d,
            &[
                "predict",
                "--model",
                "m",
                "--data",
                "d",
                "--max-memory",
                value,
            ],
            2,
        );
        assert!(err.contains("--max-memory"), "{err}");
        assert!(err.contains(why), "{err}");
    }
}
