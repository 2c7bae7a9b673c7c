//! The saved model: `model.tape`, recorded from a trained network (an MLP or a CNN) with the
//! input standardisation inside it, and run again on new examples by `eval` and `predict`.

use std::path::Path;

use ndarray::{ArrayView2, Axis};
use wengert_io::{LoadOptions, ReplayOptions, TapeModel};
use wengert_ops::Shape;
use wengert_tape::Tape;
use wengert_train::recipe::{Classifier, INPUT, LOGITS, PROBS};
use wengert_train::{Module, Standardizer};

use crate::E;
use crate::memory;
use crate::run_info::RunInfo;

/// The most examples per replay: a large data set is replayed in chunks of this many, or fewer
/// when the model's cost per example and `--max-memory` need it.
const CHUNK: usize = 1024;

/// Saves the trained `model` behind `scaler` to `path` atomically, as the library's
/// classifier recipe ([`Classifier`]: input `x` of raw features, outputs `logits` and
/// `probs`), with the parameters under PyTorch's names and `run` as metadata.
pub fn save(
    path: &Path,
    model: &impl Module<E>,
    scaler: &Standardizer<E>,
    run: &RunInfo,
) -> Result<(), String> {
    let mut recipe = Classifier::new(model, scaler).parameter_names(model.parameter_names());
    for (key, value) in run.to_metadata() {
        recipe = recipe.metadata(key, value);
    }
    recipe.save(path).map_err(|e| match e {
        wengert_train::Error::File(e) => io_message(path, &e),
        e => format!("cannot record the model: {e}"),
    })
}

/// Loads a saved model and checks that it is one `train` writes: an input `x` of shape
/// `[batch, features]` and outputs `logits` and `probs`.
pub fn load(path: &Path) -> Result<TapeModel<E>, String> {
    let model =
        TapeModel::<E>::load(path, &LoadOptions::default()).map_err(|e| io_message(path, &e))?;
    let shape = model.input_shape(INPUT).ok_or_else(|| {
        format!(
            "{}: the model has no input named `{INPUT}`; it was not written by `wengert train`",
            path.display()
        )
    })?;
    if shape.rank() != 2 {
        return Err(format!(
            "{}: the model's input `{INPUT}` has shape {:?}, not [batch, features]",
            path.display(),
            shape.dims()
        ));
    }
    for output in [LOGITS, PROBS] {
        if !model.output_names().any(|n| n == output) {
            return Err(format!(
                "{}: the model has no output named `{output}`; it was not written by `wengert train`",
                path.display()
            ));
        }
    }
    // Read now, so that a malformed record fails here with the file named.
    RunInfo::of(&model).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(model)
}

/// The number of features the model takes.
pub fn features(model: &TapeModel<E>) -> usize {
    model.input_shape(INPUT).map_or(0, |s| s.dims()[1])
}

/// A wengert-io error as one line naming the file (an I/O error names it already).
pub fn io_message(path: &Path, err: &wengert_io::Error) -> String {
    match err {
        wengert_io::Error::Io { .. } => err.to_string(),
        _ => format!("{}: {err}", path.display()),
    }
}

/// What a model makes of a chunk of examples, read in place on the replay's tape.
pub struct Scores<'t> {
    /// `[rows, classes]`.
    pub logits: ArrayView2<'t, E>,
    /// `[rows, classes]`, each row summing to 1.
    pub probs: ArrayView2<'t, E>,
}

/// What a command holds beside the model's replay, for its memory budget.
pub struct Held {
    /// Bytes held whatever the chunk size (the predictions' text, a confusion matrix, labels).
    pub fixed: u128,
    /// Bytes held per example of a chunk (copies and per-row results).
    pub per_row: u64,
    /// What they are, for a refusal (`"the predictions' text"`).
    pub what: &'static str,
}

/// Runs the model on `x` (`[rows, features]`, raw) in chunks, calling `each` with every
/// chunk's rows and scores. The chunk size is the largest, up to `CHUNK`, at which the
/// data, the model, one chunk's replay and what the caller holds (`held`, given the number of
/// classes) fit in `max_memory` bytes; everything is planned before the first replay, so a
/// model that cannot fit one example is refused up front, naming `--max-memory`. Every chunk
/// must give exactly one row of scores per example, with the same number of classes (at
/// least one).
pub fn run(
    path: &Path,
    model: &TapeModel<E>,
    x: ArrayView2<'_, E>,
    max_memory: u64,
    held: impl FnOnce(usize) -> Held,
    mut each: impl FnMut(std::ops::Range<usize>, &Scores<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let expected = features(model);
    if x.ncols() != expected {
        return Err(format!(
            "the data have {} feature columns, but the model {} takes {expected}",
            x.ncols(),
            path.display()
        ));
    }
    if x.nrows() == 0 {
        return Ok(());
    }
    let outputs = [LOGITS, PROBS];
    let classes = scored_classes(path, model)?;
    let held = held(classes);
    let element = std::mem::size_of::<E>() as u128;
    let resident = x.len() as u128 * element + model.parameter_bytes() + held.fixed;
    let over = |needed: u128, what: &str| {
        format!(
            "{}: {what} needs {}, more than --max-memory allows ({}); raise --max-memory",
            path.display(),
            memory::human_exact(needed),
            memory::human(u128::from(max_memory)),
        )
    };
    let Some(replay_budget) = u128::from(max_memory)
        .checked_sub(resident)
        .and_then(|left| u64::try_from(left).ok())
    else {
        return Err(over(
            resident,
            &format!("holding the data, the model and {}", held.what),
        ));
    };
    let options = ReplayOptions::with_max_bytes(replay_budget);
    let chunk = model
        .largest_batch(
            &[(INPUT, &[expected])],
            Some(&outputs),
            &options,
            CHUNK.min(x.nrows()),
            held.per_row,
        )
        .map_err(|e| match e {
            wengert_io::Error::ReplayTooLarge { needed, .. } => over(
                resident + needed,
                &format!(
                    "replaying one example beside the data, the model and {}",
                    held.what
                ),
            ),
            other => io_message(path, &other),
        })?;
    let mut tape = Tape::<E>::new();
    for (k, rows) in x.axis_chunks_iter(Axis(0), chunk).enumerate() {
        tape.clear();
        let range = k * chunk..k * chunk + rows.nrows();
        let replay = model
            .replay_outputs(
                &mut tape,
                [(INPUT, rows.as_standard_layout().into_owned())],
                &outputs,
                &options,
            )
            .map_err(|e| match e {
                wengert_io::Error::ReplayTooLarge { needed, .. } => over(
                    resident + needed,
                    &format!("replaying {} examples", rows.nrows()),
                ),
                other => io_message(path, &other),
            })?;
        let shape_of = |name: &str| {
            let id = replay.get(name)?;
            tape.shape(id).ok()
        };
        if classes != checked_classes(path, rows.nrows(), shape_of)? {
            return Err(format!(
                "{}: the model's outputs have {classes} class{} for one example but not for {}: \
                 the class count must not follow the batch",
                path.display(),
                if classes == 1 { "" } else { "es" },
                rows.nrows()
            ));
        }
        let matrix = |name: &str| -> Result<ArrayView2<'_, E>, String> {
            let id = replay.node(name).map_err(|e| io_message(path, &e))?;
            tape.value(id)
                .map_err(|e| e.to_string())?
                .into_dimensionality()
                .map_err(|_| {
                    format!(
                        "{}: the model's output `{name}` is not [batch, classes]",
                        path.display()
                    )
                })
        };
        let scores = Scores {
            logits: matrix(LOGITS)?,
            probs: matrix(PROBS)?,
        };
        each(range, &scores)?;
    }
    Ok(())
}

/// The number of classes the model scores, from its outputs' shapes for one example (planned,
/// not run): `logits` and `probs` must each be `[1, classes]` with at least one class.
pub fn scored_classes(path: &Path, model: &TapeModel<E>) -> Result<usize, String> {
    let one = model
        .plan_replay(&[(INPUT, &[1, features(model)])], Some(&[LOGITS, PROBS]))
        .map_err(|e| {
            format!(
                "{}: the model cannot run on one example: {e}",
                path.display()
            )
        })?;
    checked_classes(path, 1, |name| one.output_shape(name))
}

/// The number of classes the outputs `logits` and `probs` give, each of shape
/// `[rows, classes]` with at least one class; anything else is refused: a prediction must be
/// one row per example, each row a score per class.
fn checked_classes(
    path: &Path,
    rows: usize,
    shape_of: impl Fn(&str) -> Option<Shape>,
) -> Result<usize, String> {
    let mut found = None;
    for name in [LOGITS, PROBS] {
        let shape = shape_of(name).ok_or_else(|| {
            format!(
                "{}: the model does not compute its output `{name}`",
                path.display()
            )
        })?;
        let refuse = |why: &str| {
            Err(format!(
                "{}: the model's output `{name}` has shape {shape} for {rows} example{}: {why}",
                path.display(),
                if rows == 1 { "" } else { "s" }
            ))
        };
        let &[batch, classes] = shape.dims() else {
            return refuse("it must be [examples, classes]");
        };
        if batch != rows {
            return refuse("it must have one row per example");
        }
        if classes == 0 {
            return refuse("it has no classes");
        }
        if found.is_some_and(|c| c != classes) {
            return refuse(&format!("`{LOGITS}` has {} classes", found.unwrap_or(0)));
        }
        found = Some(classes);
    }
    Ok(found.unwrap_or(0))
}
