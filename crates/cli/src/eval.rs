//! `wengert eval`: a saved model's accuracy, loss and confusion matrix on labelled data.

use wengert_tape::Tape;
use wengert_train::loaders::{Labels, load_mnist_test};
use wengert_train::{Dataset, EvaluationSum, Loss, MAX_CLASSES, MAX_TABLE_CLASSES, datasets};

use wengert_io::{NODE_OVERHEAD_BYTES, REPLAY_FIXED_BYTES};

use crate::E;
use crate::args::EvalArgs;
use crate::data::load_labelled_csv;
use crate::memory;
use crate::model::Held;
use crate::run_info::{DataSource, RunInfo, file_crc32};
use crate::{destination, model};

/// The split a model that records none is assumed to have: `wengert train`'s defaults.
const DEFAULT_SEED: u64 = 0;
const DEFAULT_TEST_SPLIT: f64 = 0.2;

/// Runs `wengert eval`; the error is a one-line message.
pub fn run(args: &EvalArgs) -> Result<(), String> {
    if let Some(split) = args.test_split
        && !(0.0..1.0).contains(&split)
    {
        return Err(format!(
            "--test-split must be at least 0 and below 1, got {split}"
        ));
    }
    if args.data.is_some() && (args.seed.is_some() || args.test_split.is_some()) {
        return Err(
            "--seed and --test-split choose the model's own test split; they do not apply \
             with --data"
                .into(),
        );
    }
    let saved = model::load(&args.model)?;
    let run = RunInfo::of(&saved).map_err(|e| format!("{}: {e}", args.model.display()))?;
    // The model's outputs are checked before any data is read, and its classes bound how the
    // labels are read.
    let classes = model::scored_classes(&args.model, &saved)?;
    if classes > MAX_CLASSES {
        return Err(format!(
            "{}: the model scores {classes} classes, more than the {MAX_CLASSES} a model may have",
            args.model.display()
        ));
    }
    let (source, data) = load(args, &run, classes)?;
    if data.is_empty() {
        return Err(format!("{source}: no examples to evaluate"));
    }
    let labels = data.labels().expect("a classification set");
    // The trainer's evaluation, summed over the replay's chunks.
    let mut sum =
        EvaluationSum::new(Loss::CrossEntropy, Some(classes)).map_err(|e| e.to_string())?;
    let mut tape = Tape::<E>::new();
    let max_memory = args.max_memory.unwrap_or_else(memory::default_max_memory);
    let size = |n: usize| n as u128;
    let held = |classes: usize| Held {
        // The confusion matrix (a count per pair of classes), the labels as loaded, and the
        // loss's tape of three nodes.
        fixed: size(classes) * size(classes) * size(std::mem::size_of::<u64>())
            + size(data.len()) * size(std::mem::size_of::<usize>())
            + u128::from(REPLAY_FIXED_BYTES + 3 * NODE_OVERHEAD_BYTES),
        // The loss's copy of the logits, the label as a float, the predicted class.
        per_row: u64::try_from(
            (size(classes) + 1) * size(std::mem::size_of::<E>())
                + size(std::mem::size_of::<usize>()),
        )
        .unwrap_or(u64::MAX),
        what: "the confusion matrix",
    };
    model::run(
        &args.model,
        &saved,
        data.features(),
        max_memory,
        held,
        |rows, scores| {
            let classes = scores.logits.ncols();
            let labels = &labels[rows.clone()];
            // A CSV's labels were checked against the model's classes as the file was read,
            // with its lines named; this catches a built-in set the model does not fit.
            if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
                return Err(format!(
                    "{source}: example {} has label {bad}, but the model knows {classes} classes (0 to {})",
                    rows.start + i + 1,
                    classes.saturating_sub(1)
                ));
            }
            sum.add_scores(&mut tape, scores.logits, labels)
                .map_err(|e| format!("{source}: {e}"))
        },
    )?;
    let evaluation = sum.finish();
    let confusion = evaluation.confusion.expect("a classifier's evaluation");
    let correct = confusion.correct();
    // The report is the command's result: written whole, and a failed write is an error.
    let mut report = format!(
        "evaluated {} on {source}: {} examples, {} features, {} classes\n\
         accuracy {:.2}%  ({correct}/{})\n\
         loss {:.4}\n",
        args.model.display(),
        data.len(),
        data.n_features(),
        confusion.classes(),
        100.0 * confusion.accuracy(),
        confusion.total(),
        evaluation.loss,
    );
    if let Some(names) = &run.class_names {
        let shown: Vec<String> = (0..names.len().min(MAX_TABLE_CLASSES))
            .map(|c| format!("{c} {}", run.class_label(c)))
            .collect();
        let more = names.len().saturating_sub(MAX_TABLE_CLASSES);
        let more = if more > 0 {
            format!(", and {more} more")
        } else {
            String::new()
        };
        report.push_str(&format!("classes: {}{more}\n", shown.join(", ")));
    }
    report.push_str(&format!(
        "confusion matrix ({}\n",
        crate::train::report::indent(&confusion.to_string())
    ));
    destination::print(&report)
}

/// The labelled examples: the CSV file, or the model's own test split (its data, seed and
/// split as `wengert train` recorded them), with labels read as the model's classes.
fn load(args: &EvalArgs, run: &RunInfo, classes: usize) -> Result<(String, Dataset<E>), String> {
    let labels = match &run.class_names {
        Some(names) => Labels::Names(names.clone()),
        None => Labels::Indices {
            classes: Some(classes),
        },
    };
    if let Some(path) = &args.data {
        let data = load_labelled_csv(path, &args.label_column, args.header, labels, None)?;
        return Ok((path.display().to_string(), data));
    }
    let seed = args.seed.or(run.seed).unwrap_or(DEFAULT_SEED);
    let split = args
        .test_split
        .or(run.test_split)
        .unwrap_or(DEFAULT_TEST_SPLIT);
    let assumed = if run.seed.is_none() && args.seed.is_none() {
        "; the model records no split, train's defaults assumed"
    } else {
        ""
    };
    let test_split = |all: Dataset<E>| -> Result<Dataset<E>, String> {
        Ok(all.split(split, seed).map_err(|e| e.to_string())?.1)
    };
    match run.data.clone().unwrap_or(DataSource::Digits) {
        DataSource::Digits => {
            let all = datasets::digits::<E>().map_err(|e| e.to_string())?;
            Ok((
                format!(
                    "the UCI digits' test split (embedded; seed {seed}, {split} held out{assumed})"
                ),
                test_split(all)?,
            ))
        }
        DataSource::Csv {
            path,
            crc32,
            label_column,
            header,
        } => {
            // Another file under the same name would split into other examples, some of
            // which the model may have trained on.
            if let Some(trained) = crc32 {
                let now = file_crc32(&path).map_err(|e| {
                    format!("the model's own test split is in the file it was trained on: {e}")
                })?;
                if now != trained {
                    return Err(format!(
                        "{} has changed since the model was trained on it (CRC-32 {now:08x}, \
                         was {trained:08x}): its test split cannot be drawn again; give --data",
                        path.display()
                    ));
                }
            }
            let all =
                load_labelled_csv(&path, &label_column, header, labels, None).map_err(|e| {
                    format!(
                        "the model's own test split is in the file it was trained on: {e} (give \
                     --data to evaluate on another file)"
                    )
                })?;
            Ok((
                format!(
                    "the test split of {} (seed {seed}, {split} held out)",
                    path.display()
                ),
                test_split(all)?,
            ))
        }
        DataSource::Mnist { dir } => {
            let test = load_mnist_test::<E>(&dir).map_err(|e| {
                format!(
                    "the model's own test set is MNIST's t10k files: {e} (give --data to \
                     evaluate on another file)"
                )
            })?;
            Ok((format!("MNIST's test set in {}", dir.display()), test))
        }
    }
}
