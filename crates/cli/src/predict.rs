//! `wengert predict`: a saved model's classes and probabilities for unlabelled examples, as
//! CSV.

use std::fmt::Write as _;
use std::path::Path;

use wengert_train::argmax_rows;
use wengert_train::loaders::load_csv_features;
use wengert_train::recipe::PROBS;

use crate::E;
use crate::args::PredictArgs;
use crate::data::header_option;
use crate::memory;
use crate::model::Held;
use crate::run_info::RunInfo;
use crate::{destination, model};

/// Runs `wengert predict`; the error is a one-line message.
pub fn run(args: &PredictArgs) -> Result<(), String> {
    let output = args.output.as_deref().unwrap_or(Path::new("-"));
    destination::check_outputs(
        &[("--output", output)],
        &[("--model", &args.model), ("--data", &args.data)],
    )?;
    let saved = model::load(&args.model)?;
    let names = RunInfo::of(&saved)
        .map_err(|e| format!("{}: {e}", args.model.display()))?
        .class_names;
    // A model trained on class names predicts names; the names are checked printable on load.
    let class = |c: usize| match names.as_ref().and_then(|n| n.get(c)) {
        Some(name) => csv_field(name),
        None => c.to_string(),
    };
    let x = load_csv_features::<E>(&args.data, header_option(args.header))
        .map_err(|e| e.to_string())?;
    if x.ncols() == model::features(&saved) + 1 {
        // The likeliest mistake: a labelled file. Say so rather than only count columns.
        return Err(format!(
            "{} has {} columns, one more than the {} features the model takes: predict reads \
             feature columns only (drop the label column, or use `wengert eval`)",
            args.data.display(),
            x.ncols(),
            x.ncols() - 1
        ));
    }
    let rows = x.nrows();
    let max_memory = args.max_memory.unwrap_or_else(memory::default_max_memory);
    // A class is written by name when the model has names: the longest bounds the text.
    let longest_name = names
        .as_ref()
        .and_then(|n| n.iter().map(String::len).max())
        .unwrap_or(0);
    let held = |classes| Held {
        fixed: text_bound(rows, classes, longest_name),
        // The chunk's predicted classes.
        per_row: std::mem::size_of::<usize>() as u64,
        what: "the predictions' text",
    };
    let mut csv = String::new();
    model::run(
        &args.model,
        &saved,
        x.view(),
        max_memory,
        held,
        |_, scores| {
            if let Some(&p) = scores
                .probs
                .iter()
                .find(|p| !(0.0..=1.0).contains(*p) && !p.is_nan())
            {
                return Err(format!(
                    "{}: the model's output `{}` holds {p}, which is not a probability",
                    args.model.display(),
                    PROBS
                ));
            }
            if csv.is_empty() {
                // The whole text at its bound, so that it never grows by copying.
                let bound = text_bound(rows, scores.probs.ncols(), longest_name);
                csv.reserve_exact(usize::try_from(bound).unwrap_or(usize::MAX));
                csv.push_str("class");
                for c in 0..scores.probs.ncols() {
                    match names.as_ref().and_then(|n| n.get(c)) {
                        Some(name) => {
                            let _ = write!(csv, ",{}", csv_field(&format!("prob_{name}")));
                        }
                        None => {
                            let _ = write!(csv, ",prob_{c}");
                        }
                    }
                }
                csv.push('\n');
            }
            let classes = argmax_rows(scores.logits.view());
            for (class_index, probs) in classes.into_iter().zip(scores.probs.rows()) {
                csv.push_str(&class(class_index));
                for &p in probs {
                    csv.push(',');
                    push_probability(&mut csv, p);
                }
                csv.push('\n');
            }
            Ok(())
        },
    )?;
    destination::write("--output", output, csv.as_bytes())
}

/// `text` as one CSV field: quoted (with quotes doubled) when it holds a comma, a quote or
/// space at either end, as it is otherwise.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) || text.trim() != text {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The most bytes the predictions' text takes: the header (`class,prob_0,...`), then per row
/// a class (an index of at most 20 digits, or a name of at most `longest_name` bytes, quoted
/// with its quotes doubled at worst) and per class a comma and a probability in at most
/// [`PROBABILITY_WIDTH`] characters (see [`push_probability`]), and a newline.
fn text_bound(rows: usize, classes: usize, longest_name: usize) -> u128 {
    let classes = classes as u128;
    let quoted = |len: u128| 2 * len + 2;
    let class_field = quoted(longest_name as u128).max(20);
    let header = 6 + classes * (1 + quoted(5 + longest_name as u128).max(25));
    header + rows as u128 * (1 + class_field + (1 + PROBABILITY_WIDTH as u128) * classes)
}

/// Decimals of every probability written: one format for every row and class, which lines up
/// and reads the same whatever the value (`0.000012`, not `1.2e-5`).
pub const PROBABILITY_DECIMALS: usize = 6;

/// The most characters a probability takes: `1.000000` (a model's NaN is written `NaN`).
const PROBABILITY_WIDTH: usize = 2 + PROBABILITY_DECIMALS;

/// A probability in `[0, 1]` with [`PROBABILITY_DECIMALS`] decimals, rounded to the nearest.
fn push_probability(out: &mut String, p: E) {
    let _ = write!(out, "{p:.PROBABILITY_DECIMALS$}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_quoted_only_when_a_csv_reader_needs_it() {
        assert_eq!(csv_field("setosa"), "setosa");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(" pad"), "\" pad\"");
    }

    #[test]
    fn the_text_bound_holds_quoted_class_names() {
        let name = "\"".repeat(7);
        let mut row = csv_field(&name);
        row.push(',');
        push_probability(&mut row, 1.0);
        row.push('\n');
        assert!(row.len() as u128 <= text_bound(1, 1, 7) - text_bound(0, 1, 7));
        let header = format!("class,{}\n", csv_field(&format!("prob_{name}")));
        assert!(header.len() as u128 <= text_bound(0, 1, 7));
    }

    #[test]
    fn the_text_bound_holds_the_longest_rows() {
        let mut worst = String::from("18446744073709551615");
        for p in [1.0f32, 0.999_999_9, 1.175_494_2e-38, f32::NAN] {
            worst.push(',');
            push_probability(&mut worst, p);
        }
        worst.push('\n');
        assert!(
            worst.len() as u128 <= text_bound(1, 4, 0) - text_bound(0, 4, 0),
            "{worst}"
        );
    }

    #[test]
    fn every_probability_has_the_same_decimals() {
        let cases = [
            (0.0f32, "0.000000"),
            (1.0, "1.000000"),
            (0.5, "0.500000"),
            (0.790_167_7, "0.790168"),
            (1.2e-5, "0.000012"),
            (3.159_814e-14, "0.000000"),
            (0.999_999_9, "1.000000"),
        ];
        for (p, text) in cases {
            let mut s = String::new();
            push_probability(&mut s, p);
            assert_eq!(s, text, "{p}");
            assert!(s.len() <= PROBABILITY_WIDTH);
        }
    }
}
