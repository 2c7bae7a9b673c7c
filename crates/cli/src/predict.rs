//! `wengert predict`: a saved model's classes and probabilities for unlabelled examples, as
//! CSV.

use std::fmt::Write as _;
use std::path::Path;

use wengert_train::argmax_rows;
use wengert_train::loaders::load_csv_features;

use crate::args::PredictArgs;
use crate::run_info::RunInfo;
use crate::train::{E, header_option};
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
    let mut csv = String::new();
    model::run(&args.model, &saved, x.view(), |_, scores| {
        if csv.is_empty() {
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
    })?;
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

/// The shortest text that reads back as the same `f32`: plain notation down to 1e-4,
/// scientific below (`3.2e-14`, not thirteen zeros).
fn push_probability(out: &mut String, p: E) {
    if p == 0.0 || p.abs() >= 1e-4 {
        let _ = write!(out, "{p}");
    } else {
        let _ = write!(out, "{p:e}");
    }
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
    fn probabilities_read_back_exactly_and_stay_short() {
        for p in [
            0.0f32,
            1.0,
            0.5,
            0.790_167_7,
            1e-4,
            3.159_814e-14,
            2.041_803_7e-36,
            1e-45,
        ] {
            let mut s = String::new();
            push_probability(&mut s, p);
            assert_eq!(s.parse::<f32>().unwrap().to_bits(), p.to_bits(), "{s}");
            assert!(s.len() <= 16, "{s}");
        }
    }
}
