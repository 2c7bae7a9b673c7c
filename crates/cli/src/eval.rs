//! `wengert eval`: a saved model's accuracy, loss and confusion matrix on labelled data.

use wengert_tape::Tape;
use wengert_train::{ConfusionMatrix, Dataset, argmax_rows, datasets};

use wengert_io::{NODE_OVERHEAD_BYTES, REPLAY_FIXED_BYTES};

use crate::args::EvalArgs;
use crate::memory;
use crate::model::{self, Held};
use crate::train::{E, load_labelled_csv};

/// Runs `wengert eval`; the error is a one-line message.
pub fn run(args: &EvalArgs) -> Result<(), String> {
    if !(0.0..1.0).contains(&args.test_split) {
        return Err(format!(
            "--test-split must be at least 0 and below 1, got {}",
            args.test_split
        ));
    }
    let saved = model::load(&args.model)?;
    let (source, data) = load(args)?;
    if data.is_empty() {
        return Err(format!("{source}: no examples to evaluate"));
    }
    let labels = data.labels().expect("a classification set");
    let mut confusion: Option<ConfusionMatrix> = None;
    let mut loss_sum = 0.0;
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
            let labels = &labels[rows];
            if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
                return Err(format!(
                    "{source}: example {} has label {bad}, but the model knows {classes} classes (0 to {})",
                    i + 1,
                    classes - 1
                ));
            }
            // The loss as the trainer computes it: mean cross-entropy per chunk, weighted by rows.
            tape.clear();
            let loss = (|| -> wengert_ops::Result<E> {
                let logits = tape.input(scores.logits)?;
                let targets = tape.labels(labels)?;
                let loss = tape.cross_entropy(logits, targets)?;
                tape.item(loss)
            })()
            .map_err(|e| e.to_string())?;
            loss_sum += f64::from(loss) * labels.len() as f64;
            let m = confusion.get_or_insert_with(|| ConfusionMatrix::new(classes));
            for (&actual, predicted) in labels.iter().zip(argmax_rows(scores.logits.view())) {
                m.add(actual, predicted);
            }
            Ok(())
        },
    )?;
    let confusion = confusion.expect("at least one chunk");
    let correct: u64 = (0..confusion.classes()).map(|c| confusion.get(c, c)).sum();
    say!(
        "evaluated {} on {source}: {} examples, {} features, {} classes",
        args.model.display(),
        data.len(),
        data.n_features(),
        confusion.classes()
    );
    say!(
        "accuracy {:.2}%  ({correct}/{})",
        100.0 * confusion.accuracy(),
        confusion.total()
    );
    say!("loss {:.4}", loss_sum / data.len() as f64);
    say!(
        "confusion matrix ({}",
        crate::train::indent(&confusion.to_string())
    );
    Ok(())
}

/// The labelled examples: the CSV file, or the digits' test split.
fn load(args: &EvalArgs) -> Result<(String, Dataset<E>), String> {
    match &args.data {
        Some(path) => {
            let data = load_labelled_csv(path, &args.label_column, args.header)?;
            Ok((path.display().to_string(), data))
        }
        None => {
            let all = datasets::digits::<E>().map_err(|e| e.to_string())?;
            let (_, test) = all
                .split(args.test_split, args.seed)
                .map_err(|e| e.to_string())?;
            Ok((
                format!(
                    "the UCI digits' test split (embedded; seed {}, {} held out)",
                    args.seed, args.test_split
                ),
                test,
            ))
        }
    }
}
