//! `wengert eval`: a saved model's accuracy, loss and confusion matrix on labelled data.

use wengert_tape::Tape;
use wengert_train::{ConfusionMatrix, Dataset, argmax_rows, datasets};

use crate::args::EvalArgs;
use crate::train::{E, load_labelled_csv};
use crate::{destination, model};

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
    model::run(&args.model, &saved, data.features(), |rows, scores| {
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
            let logits = tape.input(&scores.logits)?;
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
    })?;
    let confusion = confusion.expect("at least one chunk");
    let correct: u64 = (0..confusion.classes()).map(|c| confusion.get(c, c)).sum();
    // The report is the command's result: written whole, and a failed write is an error.
    let report = format!(
        "evaluated {} on {source}: {} examples, {} features, {} classes\n\
         accuracy {:.2}%  ({correct}/{})\n\
         loss {:.4}\n\
         confusion matrix ({}\n",
        args.model.display(),
        data.len(),
        data.n_features(),
        confusion.classes(),
        100.0 * confusion.accuracy(),
        confusion.total(),
        loss_sum / data.len() as f64,
        crate::train::indent(&confusion.to_string())
    );
    destination::print(&report)
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
